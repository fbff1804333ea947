/**
 * What every model of the registry is to the rest of tokenlab: the
 * {@linkcode TokenModel} interface that LV-ViT (and the ViT baseline) and the
 * ReLabel-style ResNet implement. The training engine, the evaluation, the
 * annotator, the EMA and the weights functions use a model only through it.
 *
 * @module
 */

import type { tf } from "../tf.ts";
import type { ModelConfig, ParamSpec } from "./config.ts";
import type {
  DenseLogitsOptions,
  ForwardTrainOptions,
  TrainOutput,
} from "./forward_types.ts";
import { TokenlabError } from "../errors.ts";

/** Raised when an input does not fit the model. */
export class ModelInputError extends TokenlabError {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
  }
}

/**
 * A trainable classifier with one prediction per image (`head`) and,
 * optionally, one per token of an h x w grid (`aux_head`): for LV-ViT the
 * patch tokens, for the ResNet the cells of its final feature map. State
 * entries carry official PyTorch names; weights go in and out through
 * `saveWeights`, `loadWeights` and `loadStateDict`.
 *
 * Its members are exactly {@linkcode LvVit}'s public ones, so a TokenModel
 * is accepted wherever an LvVit is asked for.
 *
 * @example
 * ```ts
 * import { createModel, initBackend, type TokenModel, tf } from "tokenlab";
 * await initBackend();
 * const models: TokenModel[] = [createModel("lvvit_xs32"), createModel("resnet_xs32")];
 * const x = tf.zeros([1, 32, 32, 3]);
 * for (const m of models) {
 *   const y = m.predict(x); // [1, 10]
 *   console.log(m.config.family, y.shape, m.grid); // vit [1, 10] 8, then resnet [1, 10] 8
 *   y.dispose();
 *   m.dispose();
 * }
 * x.dispose();
 * ```
 */
export interface TokenModel {
  /** The resolved configuration (`config.family` says which architecture). */
  readonly config: ModelConfig;
  /** Official state-dict entries (names, PyTorch shapes, decay flags), in order. */
  readonly spec: readonly ParamSpec[];
  /** The state by official name: trainable parameters and buffers (tfjs layout). */
  readonly state: ReadonlyMap<string, tf.Variable>;
  /** Side of the token grid (imgSize / patchSize). */
  readonly grid: number;
  /** Whether `dispose` was called. */
  readonly isDisposed: boolean;
  /** An independent copy (new variables, same values and config). */
  clone(): TokenModel;
  /** Trainable parameters (buffers excluded), in state-dict order. */
  trainableVariables(): tf.Variable[];
  /** Parameters weight decay applies to (`spec[i].decay`). */
  decayedVariables(): tf.Variable[];
  /** Number of trainable values, counted from the model's own variables. */
  numParameters(): number;
  /**
   * Evaluation-mode features [B, 1 + N, D]: the vector `head` reads first
   * (LV-ViT's class token, the ResNet's pooled map), then the N grid tokens
   * row-major, which `aux_head` reads.
   */
  features(x: tf.Tensor): tf.Tensor3D;
  /** The training forward: class logits [B, C], token logits [B, N, C] or null, the MixToken box. */
  forwardTrain(x: tf.Tensor, options?: ForwardTrainOptions): TrainOutput;
  /** Evaluation logits [B, C]: head + 0.5 * max over tokens of aux_head (head alone without one). */
  predict(x: tf.Tensor): tf.Tensor2D;
  /** A classifier applied at every grid token, [B, h, w, C] (the annotator's score maps). */
  denseLogits(x: tf.Tensor, options?: DenseLogitsOptions): tf.Tensor4D;
  /** Releases every variable. */
  dispose(): void;
  /** A one-line summary. */
  toString(): string;
}
