/**
 * TL-Align (Xiao et al., 2022): token labels that follow the attention. A
 * label embedding Y_0 [B, 1 + N, C] (the class token's lambda-mixed label,
 * each patch token its source image's label) is propagated through every
 * block as Y_l = (A_l Y_(l-1) + Y_(l-1)) / 2, with A_l the head-averaged
 * attention detached from the gradient; the class-token logits are trained
 * against Y_L[:, 0]. It hooks into the training forward through
 * `onAttention` and costs nothing at evaluation.
 *
 * @module
 */

import { tf } from "../tf.ts";
import { stopGradient } from "../ops.ts";
import { LossInputError } from "./cross_entropy.ts";

/** Options of {@linkcode tlAlignInitialLabels}. */
export interface TlAlignInitialOptions {
  /**
   * The class token's label [B, C] (e.g. the lambda-mixed smoothed label).
   * Default: the mean of the patch tokens' labels, which for a CutMix box
   * snapped to the token grid is exactly lambda * own + (1 - lambda) *
   * partner with lambda recomputed from the box area.
   */
  classLabels?: tf.Tensor;
}

/**
 * The initial label embedding Y_0 [B, 1 + N, C]: patch token n of sample b
 * takes `imageLabels[sources[b][n]]` (the label of the image its pixels came
 * from, after mixing), the class token `classLabels` or, by default, the mean
 * of its patch tokens' labels. The caller disposes the result.
 *
 * @throws {LossInputError} on ragged sources, an index outside the batch, or
 *   class labels of the wrong shape
 *
 * @example
 * ```ts
 * import { initBackend, smoothedOneHot, tf, tlAlignInitialLabels } from "tokenlab";
 * await initBackend();
 * const labels = smoothedOneHot([0, 1], 2, { smoothing: 0 });
 * // Image 0 got one token (of 4) from image 1, and image 1 one from image 0.
 * const y0 = tlAlignInitialLabels(labels, [[0, 0, 0, 1], [1, 1, 1, 0]]);
 * console.log(y0.shape); // [2, 5, 2]; y0[0, 0] = [0.75, 0.25]
 * tf.dispose([labels, y0]);
 * ```
 */
export function tlAlignInitialLabels(
  imageLabels: tf.Tensor,
  sources: ArrayLike<ArrayLike<number>>,
  options: TlAlignInitialOptions = {},
): tf.Tensor3D {
  if (imageLabels.rank !== 2 || imageLabels.dtype !== "float32") {
    throw new LossInputError(
      `image labels must be float32 [batch, classes], found ${imageLabels.dtype} [${imageLabels.shape}]`,
    );
  }
  const [B, C] = imageLabels.shape;
  if (sources.length !== B) {
    throw new LossInputError(
      `token sources have ${sources.length} rows but the image labels [${imageLabels.shape}] have batch size ${B}; give one row of source indices per image`,
    );
  }
  const N = B > 0 ? sources[0].length : 0;
  if (N < 1) {
    throw new LossInputError(
      "token sources must have at least one token per image",
    );
  }
  const flat = new Int32Array(B * N);
  for (let b = 0; b < B; b++) {
    if (sources[b].length !== N) {
      throw new LossInputError(
        `token sources are ragged: row ${b} has ${
          sources[b].length
        } tokens, row 0 has ${N}`,
      );
    }
    for (let n = 0; n < N; n++) {
      const s = sources[b][n];
      if (!Number.isInteger(s) || s < 0 || s >= B) {
        throw new LossInputError(
          `token ${n} of image ${b} comes from image ${s}, which is not in the batch [0, ${B})`,
        );
      }
      flat[b * N + n] = s;
    }
  }
  const cls = options.classLabels;
  if (cls !== undefined) {
    if (cls.rank !== 2 || cls.shape[0] !== B || cls.shape[1] !== C) {
      throw new LossInputError(
        `class labels [${cls.shape}] do not match the image labels [${imageLabels.shape}]`,
      );
    }
  }
  return tf.tidy(() => {
    const idx = tf.tensor1d(flat, "int32");
    const tokens = tf.reshape(tf.gather(imageLabels, idx), [B, N, C]); // [B, N, C]
    const head = cls !== undefined
      ? tf.expandDims(cls, 1)
      : tf.mean(tokens, 1, true); // [B, 1, C]
    return tf.concat([head, tokens], 1) as tf.Tensor3D; // [B, 1+N, C]
  });
}

/**
 * One training step's TL-Align state: pass {@linkcode TlAlign.hook} as the
 * forward's `onAttention`, then train the class-token logits against
 * {@linkcode TlAlign.classLabel}. The aligned labels carry no gradient into
 * the attention. Call {@linkcode TlAlign.dispose} after the step.
 *
 * @example
 * ```ts
 * import {
 *   initBackend, LvVit, Rng, smoothedOneHot, softTargetCrossEntropy, tf,
 *   TlAlign, tlAlignInitialLabels,
 * } from "tokenlab";
 * await initBackend();
 * const model = LvVit.create({ imgSize: 16, patchSize: 8, embedDim: 8,
 *   depth: 2, numHeads: 2, stem: "linear", auxHead: false, numClasses: 3 });
 * const x = tf.randomNormal([2, 16, 16, 3], 0, 1, "float32", 1);
 * const labels = smoothedOneHot([0, 2], 3);
 * const y0 = tlAlignInitialLabels(labels, [[0, 0, 1, 0], [1, 1, 0, 1]]);
 * const align = new TlAlign(y0);
 * const { value, grads } = tf.variableGrads(() => {
 *   const out = model.forwardTrain(x, { rng: new Rng(0), onAttention: align.hook });
 *   return softTargetCrossEntropy(out.cls, align.classLabel());
 * }, model.trainableVariables());
 * console.log(await value.data());
 * align.dispose();
 * tf.dispose([x, labels, y0, value, grads]);
 * model.dispose();
 * ```
 */
export class TlAlign {
  #y: tf.Tensor3D;
  #blocks = 0;
  #label: tf.Tensor2D | null = null;
  #disposed = false;

  /** Starts from Y_0 [B, 1 + N, C] (copied: the caller keeps and disposes its own). */
  constructor(y0: tf.Tensor) {
    if (y0.rank !== 3 || y0.dtype !== "float32" || (y0.shape[1] ?? 0) < 2) {
      throw new LossInputError(
        `the initial label embedding must be float32 [batch, 1 + tokens, classes], found ${y0.dtype} [${y0.shape}]`,
      );
    }
    this.#y = tf.keep(tf.clone(y0)) as tf.Tensor3D;
  }

  /**
   * The forward's `onAttention` hook: propagates the labels through one
   * block's attention [B, heads, 1 + N, 1 + N] (blocks in order).
   */
  readonly hook = (block: number, attention: tf.Tensor4D): void => {
    if (this.#disposed) {
      throw new LossInputError(
        "this TlAlign was disposed; make a new one per training step",
      );
    }
    if (block !== this.#blocks) {
      throw new LossInputError(
        `TlAlign expected block ${this.#blocks}, got block ${block}; use a new TlAlign for every forward pass`,
      );
    }
    const [B, , n1] = attention.shape;
    const [yb, yn] = this.#y.shape;
    if (B !== yb || n1 !== yn || attention.shape[3] !== yn) {
      throw new LossInputError(
        `attention [${attention.shape}] does not fit the label embedding [${this.#y.shape}]: batch and 1 + tokens must agree`,
      );
    }
    const next = tf.keep(tf.tidy(() => {
      const a = stopGradient(tf.mean(attention, 1)) as tf.Tensor3D; // [B, N+1, N+1]
      return tf.mul(tf.add(tf.matMul(a, this.#y), this.#y), 0.5); // [B, N+1, C]
    })) as tf.Tensor3D;
    this.#y.dispose();
    this.#y = next;
    this.#blocks++;
  };

  /** How many blocks the labels went through so far. */
  get blocks(): number {
    return this.#blocks;
  }

  /** The current label embedding Y_l [B, 1 + N, C] (owned by this object: do not dispose). */
  labels(): tf.Tensor3D {
    this.#checkAlive();
    return this.#y;
  }

  /**
   * The aligned class-token label Y_L[:, 0] [B, C], detached (owned by this
   * object, released by {@linkcode TlAlign.dispose}).
   *
   * @throws {LossInputError} when no block has run yet (the hook was not passed)
   */
  classLabel(): tf.Tensor2D {
    this.#checkAlive();
    if (this.#blocks === 0) {
      throw new LossInputError(
        "no attention reached TlAlign: pass { onAttention: align.hook } to forwardTrain before asking for the class label",
      );
    }
    this.#label?.dispose();
    const [B, , C] = this.#y.shape;
    this.#label = tf.keep(
      tf.tidy(() =>
        stopGradient(
          tf.reshape(tf.slice(this.#y, [0, 0, 0], [B, 1, C]), [B, C]),
        )
      ),
    ) as tf.Tensor2D;
    return this.#label;
  }

  #checkAlive(): void {
    if (this.#disposed) {
      throw new LossInputError("this TlAlign was disposed");
    }
  }

  /** Releases the labels this object holds. */
  dispose(): void {
    if (this.#disposed) return;
    this.#y.dispose();
    this.#label?.dispose();
    this.#label = null;
    this.#disposed = true;
  }
}
