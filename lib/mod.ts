/**
 * tokenlab: token labeling for vision transformers (LV-ViT, MixToken,
 * TL-Align, score maps) on TensorFlow.js, for Deno notebooks and reports.
 *
 * ```ts
 * import { describeBackend, initBackend, tf } from "tokenlab";
 * const choice = await initBackend(); // webgpu on a GPU, wasm on a CPU
 * console.log(describeBackend(choice));
 * const y = tf.matMul(tf.ones([2, 3]), tf.ones([3, 2]));
 * console.log(await y.array());
 * y.dispose();
 * ```
 *
 * @module
 */

import { tf as tfjs } from "./tf.ts";

export * from "./backend.ts";
export * from "./backend_check.ts";
export { TFJS_VERSION } from "./tf.ts";
export { VERSION } from "./version.ts";

/**
 * TensorFlow.js (`@tensorflow/tfjs`, pinned in `deno.json`) with the kit's
 * backends registered. Use it after {@linkcode initBackend} or
 * {@linkcode ensureBackend}. Its tensor types come along: `tf.Tensor`,
 * `tf.Scalar`, `tf.Tensor1D` to `tf.Tensor4D`, `tf.Variable`, `tf.Rank`,
 * `tf.DataType`, `tf.TensorContainer`, `tf.NamedTensorMap`,
 * `tf.GradSaveFunc`, `tf.Optimizer`.
 */
export const tf: typeof tfjs = tfjs;

/**
 * The tensor types of TensorFlow.js, so that `tf.Tensor` works as a type for
 * users of this entry too. Declared here rather than re-exporting the whole
 * namespace, which would pull tfjs's own declarations into this entry's docs;
 * hidden from the docs for the same reason (see tfjs's API for each type).
 *
 * @ignore
 */
export declare namespace tf {
  /** A tensor of any rank. */
  export type Tensor<R extends Rank = Rank> = tfjs.Tensor<R>;
  /** A rank-0 tensor. */
  export type Scalar = tfjs.Scalar;
  /** A rank-1 tensor. */
  export type Tensor1D = tfjs.Tensor1D;
  /** A rank-2 tensor. */
  export type Tensor2D = tfjs.Tensor2D;
  /** A rank-3 tensor. */
  export type Tensor3D = tfjs.Tensor3D;
  /** A rank-4 tensor. */
  export type Tensor4D = tfjs.Tensor4D;
  /** A tensor rank. */
  export type Rank = tfjs.Rank;
  /** A trainable tensor. */
  export type Variable<R extends Rank = Rank> = tfjs.Variable<R>;
  /** A tensor element type. */
  export type DataType = tfjs.DataType;
  /** Tensors nested in arrays and objects. */
  export type TensorContainer = tfjs.TensorContainer;
  /** Tensors by name. */
  export type NamedTensorMap = tfjs.NamedTensorMap;
  /** The save function handed to a `tf.customGrad` body. */
  export type GradSaveFunc = tfjs.GradSaveFunc;
  /** An optimizer (`tf.train.adam`, ...). */
  export type Optimizer = tfjs.Optimizer;
}
