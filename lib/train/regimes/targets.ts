/**
 * A step's targets before any mixing, shared by the regimes: pooled token
 * labels (with ReLabel's S = 1 and the ground-truth refinement) or smoothed
 * one-hot image labels.
 *
 * @module
 */

import { tf } from "../../tf.ts";
import { poolLabels, stackScoreMaps } from "../../labels/pooling.ts";
import {
  refineClassTarget,
  smoothedOneHot,
} from "../../losses/cross_entropy.ts";
import { isReLabel, type ResolvedTrainConfig } from "../config.ts";
import type { RegimeBatch } from "./regime.ts";
import { TrainingError } from "./training_error.ts";

/** The fields of a resolved config that shape the targets. */
export type TargetConfig = Pick<
  ResolvedTrainConfig,
  | "tokenLabel"
  | "tokenLabelSize"
  | "grid"
  | "smoothing"
  | "tokenLabelBoxOrder"
  | "tokenLabelSmoothing"
  | "refine"
  | "auxHead"
>;

/** Options of {@linkcode prepareTargets}. */
export interface PrepareTargetsOptions {
  /** Classes C of the model. */
  numClasses: number;
}

/** A batch's targets (owned: call {@linkcode StepTargets.dispose}). */
export interface StepTargets {
  /** Class-token targets [B, C]. */
  readonly cls: tf.Tensor2D;
  /**
   * Token targets: pooled token labels [B, N, C]; `cls` itself (the same
   * tensor: every token takes the class target, for a token head without
   * token labels, and ReLabel's); or null (no token loss).
   */
  readonly tokens: tf.Tensor | null;
  /** Releases the tensors. */
  dispose(): void;
}

/**
 * The targets of a batch before mixing. With token labels: the score maps
 * pooled over each crop (`poolLabels` with the config's grid, smoothing,
 * smoothing rule and box order); ReLabel (S = 1) trains the class token on
 * the pooled label, and a token head, if any, at every token; `refine`
 * blends the class target with the smoothed ground truth per image
 * (`refineClassTarget`). Without: smoothed one-hot labels, which a token
 * head takes at every token (the official 2-D target case).
 *
 * @throws {TrainingError} for an unlabelled image, or token labels without
 *   score maps or crop boxes in the batch
 *
 * @example
 * ```ts
 * import { initBackend, prepareTargets, resolveTrainConfig } from "tokenlab";
 * await initBackend();
 * const c = resolveTrainConfig({ data: "synthetic", model: "lvvit_xs32" });
 * const batch = {
 *   size: 2, height: 32, width: 32, images: new Float32Array(2 * 32 * 32 * 3),
 *   labels: new Int32Array([0, 2]), keys: ["a", "b"],
 * };
 * const t = await prepareTargets(batch, c, { numClasses: 3 });
 * console.log(await t.cls.data()); // 0.9333.. on each label, 0.0333.. elsewhere
 * t.dispose();
 * ```
 */
export async function prepareTargets(
  batch: RegimeBatch,
  config: TargetConfig,
  options: PrepareTargetsOptions,
): Promise<StepTargets> {
  const { numClasses } = options;
  for (let i = 0; i < batch.size; i++) {
    if (batch.labels[i] < 0) {
      throw new TrainingError(
        `image ${
          batch.keys[i]
        } has no label; training needs a labelled dataset`,
      );
    }
  }
  const owned: tf.Tensor[] = [];
  const done = (cls: tf.Tensor2D, tokens: tf.Tensor | null): StepTargets => ({
    cls,
    tokens,
    dispose: () => tf.dispose(owned),
  });
  try {
    if (!config.tokenLabel) {
      const cls = smoothedOneHot(batch.labels, numClasses, {
        smoothing: config.smoothing,
      });
      owned.push(cls);
      // A token head without token labels learns the image label at every
      // token (the official 2-D target case), so that it does not add an
      // untrained term to the evaluation logits.
      return done(cls, config.auxHead ? cls : null);
    }
    if (batch.maps === undefined || batch.boxes === undefined) {
      throw new TrainingError(
        "the training batch came without score maps or crop boxes; token labeling needs both (a store in `tokenLabelData` and the train transform)",
        { fields: ["tokenLabelData"] },
      );
    }
    const pooled = await poolLabels(stackScoreMaps(batch.maps), batch.boxes, {
      numClasses,
      tokenGrid: config.tokenLabelSize,
      smoothing: config.smoothing,
      smoothingRule: config.tokenLabelSmoothing,
      boxOrder: config.tokenLabelBoxOrder,
      // The refinement blends in the smoothed ground truth, which pooling
      // computes in the same pass.
      ...(config.refine !== "none" ? { labels: batch.labels } : {}),
    });
    owned.push(pooled.cls, pooled.tokens);
    if (pooled.truth) owned.push(pooled.truth);
    let cls = pooled.cls;
    if (config.refine !== "none") {
      cls = refineClassTarget(cls, pooled.truth!, { rule: config.refine });
      owned.push(cls);
    }
    // ReLabel (S = 1): the pooled label is the class target; a token head,
    // if the model has one, takes it at every token.
    const tokens = isReLabel(config)
      ? (config.auxHead ? cls : null)
      : pooled.tokens;
    return done(cls, tokens);
  } catch (e) {
    tf.dispose(owned);
    throw e;
  }
}
