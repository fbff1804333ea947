/**
 * What the forwards of every model take and return: the options of the
 * training forward and of the dense logits, the training output, and the
 * MixToken hook with its box. Exported through `lvvit.ts`.
 *
 * @module
 */

import type { tf } from "../tf.ts";
import type { Rng } from "../random.ts";

/** A box on the token grid: rows [top, bottom) and columns [left, right). */
export interface TokenBox {
  /** First row inside the box. */
  top: number;
  /** First column inside the box. */
  left: number;
  /** One past the last row inside the box. */
  bottom: number;
  /** One past the last column inside the box. */
  right: number;
}

/**
 * The MixToken hook of the training forward. It sits after the patch
 * embedding, before the class token and the position embedding; its `unmix`
 * is applied to the aux-head predictions after the transformer. The mixing
 * module implements it; without one the forward does not mix.
 */
export interface TokenMixer {
  /** Mixes patch tokens [B, h, w, D]; `box` is null when this step does not mix. */
  mix(
    tokens: tf.Tensor4D,
    rng: Rng,
  ): { tokens: tf.Tensor4D; box: TokenBox | null };
  /** Swaps the predictions [B, h, w, C] inside `box` back to their own images. */
  unmix(predictions: tf.Tensor4D, box: TokenBox): tf.Tensor4D;
}

/** Options of {@linkcode LvVit.forwardTrain}. */
export interface ForwardTrainOptions {
  /** Generator for drop path and dropout (required when either is on, or a mixer draws). */
  rng?: Rng;
  /** MixToken (or another token mixer); none: no mixing. */
  mixer?: TokenMixer;
  /**
   * Called with every block's attention probabilities [B, heads, N+1, N+1]
   * (after softmax, before dropout); TL-Align's hook. The tensor belongs to
   * the forward's scope: use it inside the call, do not keep it.
   */
  onAttention?: (block: number, attention: tf.Tensor4D) => void;
  /** Update BatchNorm running statistics (default true, as PyTorch in train mode). */
  updateStats?: boolean;
}

/** What the training forward returns (the caller disposes the tensors). */
export interface TrainOutput {
  /** Class-token logits [B, C]. */
  cls: tf.Tensor2D;
  /** Per-patch-token logits [B, N, C], un-mixed; null without an aux head. */
  aux: tf.Tensor3D | null;
  /** The MixToken box on the token grid, or null when nothing was mixed. */
  box: TokenBox | null;
}

/** Options of {@linkcode LvVit.denseLogits}. */
export interface DenseLogitsOptions {
  /** Which classifier to apply at every token (default "head"). */
  head?: "head" | "aux_head";
}
