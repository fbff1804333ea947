/**
 * What the regimes share (internal): the batch's images and targets as
 * tensors, and the step trained with the token labeling loss.
 */

import { tf } from "../../tf.ts";
import { tokenLabelingLossParts } from "../../losses/cross_entropy.ts";
import type { TrainOutput } from "../../models/lvvit.ts";
import type { ResolvedTrainConfig } from "../config.ts";
import type {
  RegimeBatch,
  RegimeForwardOptions,
  RegimeLoss,
  RegimeStep,
  StepMixing,
} from "./regime.ts";
import {
  prepareTargets,
  type PrepareTargetsOptions,
  type StepTargets,
  type TargetConfig,
} from "./targets.ts";

/**
 * The batch's images [B, H, W, 3] and its targets before mixing (both
 * owned by the caller; nothing is left behind when it throws).
 */
export async function prepareInputs(
  batch: RegimeBatch,
  config: TargetConfig,
  options: PrepareTargetsOptions,
): Promise<{ images: tf.Tensor4D; targets: StepTargets }> {
  const targets = await prepareTargets(batch, config, options);
  try {
    const images = tf.tensor4d(batch.images, [
      batch.size,
      batch.height,
      batch.width,
      3,
    ]);
    return { images, targets };
  } catch (e) {
    targets.dispose();
    throw e;
  }
}

/** The loss weights of the token labeling loss. */
export type LossWeights = Pick<
  ResolvedTrainConfig,
  "clsWeight" | "denseWeight"
>;

/** What a token labeling step is made of (its tensors are handed over). */
export interface TokenStepParts {
  /** Input images [B, H, W, 3]. */
  images: tf.Tensor4D;
  /** Class targets [B, C]. */
  cls: tf.Tensor2D;
  /** Token targets [B, N, C], the class targets, or null. */
  tokens: tf.Tensor | null;
  /** How the pixels were mixed, or null. */
  mixing: StepMixing | null;
  /** Forward options (MixToken's mixer). */
  forward: RegimeForwardOptions;
  /** Releases every tensor of the step. */
  dispose: () => void;
}

/**
 * A step trained with clsWeight * CE(cls) + denseWeight * CE(tokens); the
 * class target is blended by the forward's MixToken box when it has one.
 * The dense part is reported when the model has a token head.
 */
export function tokenLabelingStep(
  parts: TokenStepParts,
  weights: LossWeights,
): RegimeStep {
  const { cls, tokens } = parts;
  return {
    images: parts.images,
    classTargets: cls,
    tokenTargets: tokens,
    mixing: parts.mixing,
    forward: parts.forward,
    loss(out: TrainOutput): RegimeLoss {
      const p = tokenLabelingLossParts(
        { cls: out.cls, aux: out.aux },
        { cls, tokens },
        {
          clsWeight: weights.clsWeight,
          denseWeight: weights.denseWeight,
          box: out.box,
        },
      );
      if (out.aux === null) {
        p.dense.dispose();
        return { loss: p.loss, cls: p.cls };
      }
      return { loss: p.loss, cls: p.cls, dense: p.dense };
    },
    dispose: parts.dispose,
  };
}

/**
 * A step mixed on pixels: the batch's images and targets handed to `mix`,
 * whose step owns them from then on (they are released here if it throws).
 */
export async function mixedStep(
  batch: RegimeBatch,
  config: TargetConfig,
  options: PrepareTargetsOptions,
  mix: (images: tf.Tensor4D, targets: StepTargets) => RegimeStep,
): Promise<RegimeStep> {
  const { images, targets } = await prepareInputs(batch, config, options);
  try {
    return mix(images, targets);
  } catch (e) {
    images.dispose();
    targets.dispose();
    throw e;
  }
}

/**
 * The batch as loaded, not mixed on pixels: its images and targets through
 * the token labeling loss, the forward given `forward` (MixToken's mixer,
 * or nothing).
 */
export async function unmixedStep(
  batch: RegimeBatch,
  config: TargetConfig & LossWeights,
  options: PrepareTargetsOptions,
  forward: RegimeForwardOptions,
): Promise<RegimeStep> {
  const { images, targets } = await prepareInputs(batch, config, options);
  return tokenLabelingStep({
    images,
    cls: targets.cls,
    tokens: targets.tokens,
    mixing: null,
    forward,
    dispose: () => {
      images.dispose();
      targets.dispose();
    },
  }, config);
}
