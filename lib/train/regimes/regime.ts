/**
 * The interface every regime of training implements: how one step's inputs
 * and targets are prepared from the batch, which options the training
 * forward needs, and how the loss is computed from its output. The
 * training step itself knows no regime: it prepares, differentiates the
 * loss, clips, reads and applies.
 *
 * @module
 */

import type { tf } from "../../tf.ts";
import type { Rng } from "../../random.ts";
import type { Batch } from "../../data/loader.ts";
import type { MixMode } from "../../mixing/cutmix.ts";
import type {
  ForwardTrainOptions,
  TokenBox,
  TrainOutput,
} from "../../models/lvvit.ts";

/** The regimes of {@linkcode regimeFor}. */
export type RegimeName = "plain" | "mixtoken" | "image_mix" | "tl_align";

/** The parts of a batch a regime reads (a loader's `Batch` has them all). */
export type RegimeBatch = Pick<
  Batch,
  "size" | "height" | "width" | "images" | "labels" | "keys" | "maps" | "boxes"
>;

/** The `forwardTrain` options a regime sets (the step adds the `rng`). */
export type RegimeForwardOptions = Pick<
  ForwardTrainOptions,
  "mixer" | "onAttention"
>;

/**
 * A step's loss (scalars created inside `tf.variableGrads`: the step keeps
 * the parts it reads, the rest is freed with the gradient scope).
 */
export interface RegimeLoss {
  /** The loss to differentiate. */
  loss: tf.Scalar;
  /** The unweighted class-token term, when the regime reports its parts. */
  cls?: tf.Scalar;
  /** The unweighted dense token term, when the model has a token head. */
  dense?: tf.Scalar;
}

/** How a step mixed its batch (null in {@linkcode RegimeStep.mixing}: not on pixels). */
export interface StepMixing {
  /** What was done. */
  mode: MixMode;
  /** The weight of each image's own label (area-corrected for boxes). */
  lambda: number;
  /** The box in pixels, or null. */
  box: TokenBox | null;
}

/**
 * One prepared step: its inputs and targets (owned: call
 * {@linkcode RegimeStep.dispose} after the step), the forward options, and
 * the loss.
 */
export interface RegimeStep {
  /** The input images [B, H, W, 3] (mixed, where the regime mixes pixels). */
  readonly images: tf.Tensor4D;
  /**
   * The class-token targets [B, C] as prepared (before a MixToken blend by
   * the box, which happens in the loss; TL-Align: the initial, lambda-mixed
   * class label, which the attention then aligns).
   */
  readonly classTargets: tf.Tensor2D;
  /**
   * The token targets: [B, N, C], the class targets themselves (every token
   * takes its image's label), or null (no token loss).
   */
  readonly tokenTargets: tf.Tensor | null;
  /** How the pixels were mixed, or null when the regime does not mix them. */
  readonly mixing: StepMixing | null;
  /** What `forwardTrain` needs for this step (MixToken's mixer, TL-Align's hook). */
  readonly forward: RegimeForwardOptions;
  /** The loss from the training forward's output; call it inside `tf.variableGrads`. */
  loss(out: TrainOutput): RegimeLoss;
  /** Releases the step's tensors (and its hook's state). */
  dispose(): void;
}

/**
 * A regime of training: one small strategy per way of training (plain,
 * MixToken, image-level CutMix/MixUp, TL-Align), picked by
 * {@linkcode regimeFor}.
 *
 * @example
 * ```ts ignore
 * const regime = regimeFor(config, { numClasses });
 * const step = await regime.prepare(batch, rng);
 * try {
 *   const { value, grads } = tf.variableGrads(() => {
 *     const out = model.forwardTrain(step.images, { rng, ...step.forward });
 *     return step.loss(out).loss;
 *   }, model.trainableVariables());
 *   // ... apply the gradients, dispose value and grads
 * } finally {
 *   step.dispose();
 * }
 * regime.dispose();
 * ```
 */
export interface TrainingRegime {
  /** Which regime this is. */
  readonly name: RegimeName;
  /**
   * Prepares a step from a batch: the images and the targets (pooled token
   * labels or smoothed one-hot, mixed as the regime mixes), drawing every
   * random choice from `rng`, before the forward draws from it.
   */
  prepare(batch: RegimeBatch, rng: Rng): Promise<RegimeStep>;
  /** Releases what the regime owns across steps. */
  dispose(): void;
}
