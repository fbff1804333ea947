/**
 * Small tensor operations the models are built from that tfjs lacks as one
 * call. Each is checked against float64 loops on every backend
 * (`tests/numerics_test.ts`, `checkBackends`).
 *
 * @module
 */

import { tf } from "./tf.ts";
import {
  fusedAttention,
  fusedAttentionAvailable,
  registerFusedAttention,
} from "./kernels/wasm_attention.ts";
import {
  fusedGelu,
  fusedLayerNorm,
  fusedNormFor,
  NORM_KERNELS,
  registerWasmNorms,
} from "./kernels/wasm_norms.ts";
import {
  registerWebGpuNorms,
  WEBGPU_LAYER_NORM_MAX,
} from "./kernels/webgpu_norms.ts";
import {
  registerWebGpuAttention,
  WEBGPU_ATTENTION_MAX_HEAD,
  WEBGPU_ATTENTION_MAX_TOKENS,
} from "./kernels/webgpu_attention.ts";

registerFusedAttention();
registerWasmNorms();
registerWebGpuNorms();
registerWebGpuAttention();

/**
 * Exact GELU, x * Phi(x) = x / 2 * (1 + erf(x / sqrt 2)), as PyTorch's
 * `nn.GELU()` default (not the tanh approximation).
 *
 * @example
 * ```ts
 * import { gelu, initBackend, tf } from "tokenlab";
 * await initBackend();
 * const y = gelu(tf.tensor1d([-1, 0, 1]));
 * console.log(await y.data()); // about [-0.1587, 0, 0.8413]
 * y.dispose();
 * ```
 */
export function gelu<T extends tf.Tensor>(x: T): T {
  // On wasm and WebGPU: one kernel each way (lib/kernels/*_norms.ts).
  if (fusedNormFor(x)) return fusedGelu(x);
  return tf.tidy(() =>
    tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2))))
  ) as T;
}

/**
 * Normalises over the last axis to zero mean and unit (biased) variance, with
 * `eps` inside the square root, as LayerNorm does before its affine part.
 *
 * @example
 * ```ts
 * import { initBackend, layerNorm, tf } from "tokenlab";
 * await initBackend();
 * const y = layerNorm(tf.tensor2d([[1, 2, 3]]));
 * console.log(await y.data()); // about [-1.2247, 0, 1.2247]
 * y.dispose();
 * ```
 */
export function layerNorm<T extends tf.Tensor>(x: T, eps = 1e-5): T {
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(x, -1, true);
    return tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, eps)));
  }) as T;
}

/**
 * LayerNorm over the last axis with its affine part: `layerNorm(x, eps)`
 * times `weight` plus `bias` (both of the last axis's size), PyTorch's
 * `nn.LayerNorm`.
 *
 * @example
 * ```ts
 * import { initBackend, layerNormAffine, tf } from "tokenlab";
 * await initBackend();
 * const y = layerNormAffine(
 *   tf.tensor2d([[1, 2, 3]]),
 *   tf.tensor1d([2, 2, 2]),
 *   tf.tensor1d([1, 1, 1]),
 * );
 * console.log(await y.data()); // about [-1.4495, 1, 3.4495]
 * y.dispose();
 * ```
 */
export function layerNormAffine<T extends tf.Tensor>(
  x: T,
  weight: tf.Tensor,
  bias: tf.Tensor,
  eps = 1e-5,
): T {
  const C = x.shape[x.rank - 1];
  if (
    fusedNormFor(x, NORM_KERNELS.layerNorm) && weight.rank === 1 &&
    bias.rank === 1 && weight.size === C && bias.size === C &&
    weight.dtype === "float32" && bias.dtype === "float32" &&
    !(tf.getBackend() === "webgpu" && C > WEBGPU_LAYER_NORM_MAX)
  ) {
    // On wasm and WebGPU: one kernel each way (lib/kernels/*_norms.ts).
    return fusedLayerNorm(x, weight, bias, eps);
  }
  return tf.tidy(() => tf.add(tf.mul(layerNorm(x, eps), weight), bias)) as T;
}

/**
 * The core of multi-head self-attention, between the qkv projection and the
 * output projection: `qkv` [B, N, 3D] laid out as (3, heads, D / heads) on
 * its last axis (timm's and the official layout) becomes
 * softmax(q k^T / sqrt(D / heads)) v with the heads merged back, [B, N, D].
 * `onProbs`, when given, receives the probabilities [B, heads, N, N] (it
 * must not dispose them). On wasm and WebGPU, without `onProbs`, this is one
 * fused kernel forward and one (wasm) or two (WebGPU) backward
 * (`lib/kernels/wasm_attention.ts`, `webgpu_attention.ts`); elsewhere, or with
 * `onProbs` (whose probabilities must stay differentiable), it is composed
 * of tfjs ops as {@linkcode attentionComposite}.
 *
 * @example
 * ```ts
 * import { attentionCore, initBackend, tf } from "tokenlab";
 * await initBackend();
 * const qkv = tf.randomNormal([2, 5, 3 * 8], 0, 1, "float32", 1) as tf.Tensor3D;
 * const y = attentionCore(qkv, 2);
 * console.log(y.shape); // [2, 5, 8]
 * tf.dispose([qkv, y]);
 * ```
 */
export function attentionCore(
  qkv: tf.Tensor3D,
  heads: number,
  onProbs?: (probs: tf.Tensor4D) => void,
): tf.Tensor3D {
  checkQkv(qkv, heads);
  // The fused kernel's probabilities are not on the tape: with a hook, which
  // may build a loss on them, the composite keeps them differentiable.
  if (
    onProbs === undefined && fusedAttentionAvailable() && fitsFused(qkv, heads)
  ) {
    return fusedAttention(qkv, heads);
  }
  return attentionComposite(qkv, heads, onProbs);
}

/** Whether the fused kernel of the running backend takes these shapes. */
function fitsFused(qkv: tf.Tensor3D, heads: number): boolean {
  if (tf.getBackend() !== "webgpu") return true;
  const [, N, D3] = qkv.shape;
  return qkv.dtype === "float32" && N <= WEBGPU_ATTENTION_MAX_TOKENS &&
    D3 / 3 / heads <= WEBGPU_ATTENTION_MAX_HEAD;
}

function checkQkv(qkv: tf.Tensor3D, heads: number): void {
  const D3 = qkv.shape[2];
  if (qkv.rank !== 3 || D3 % 3 !== 0 || !Number.isInteger(D3 / 3 / heads)) {
    throw new Error(
      `attentionCore: expected qkv [B, N, 3 * D] with D divisible by ${heads} heads, found [${qkv.shape}]`,
    );
  }
}

/**
 * {@linkcode attentionCore} composed of tfjs ops (a transpose, a split, two
 * batched products, a softmax, a transpose), on any backend: the reference
 * the fused kernel is tested against.
 *
 * @example
 * ```ts
 * import { attentionComposite, initBackend, tf } from "tokenlab";
 * await initBackend();
 * const qkv = tf.randomNormal([1, 4, 3 * 6], 0, 1, "float32", 2) as tf.Tensor3D;
 * const y = attentionComposite(qkv, 3);
 * console.log(y.shape); // [1, 4, 6]
 * tf.dispose([qkv, y]);
 * ```
 */
export function attentionComposite(
  qkv: tf.Tensor3D,
  heads: number,
  onProbs?: (probs: tf.Tensor4D) => void,
): tf.Tensor3D {
  checkQkv(qkv, heads);
  const [B, N, D3] = qkv.shape;
  const D = D3 / 3, hd = D / heads;
  return tf.tidy(() => {
    const split = tf.transpose(tf.reshape(qkv, [B, N, 3 * heads, hd]), [
      0,
      2,
      1,
      3,
    ]); // [B, 3H, N, hd]
    const [q, k, v] = tf.split(split, 3, 1) as tf.Tensor4D[]; // [B, H, N, hd]
    const scores = tf.matMul(tf.mul(q, hd ** -0.5), k, false, true); // [B, H, N, N]
    const probs = tf.softmax(scores) as tf.Tensor4D;
    onProbs?.(probs);
    const mixed = tf.matMul(probs, v); // [B, H, N, hd]
    return tf.reshape(tf.transpose(mixed, [0, 2, 1, 3]), [B, N, D]);
  }) as tf.Tensor3D;
}

const stopGradientOp = tf.customGrad(
  ((x: tf.Tensor) => ({
    value: tf.clone(x),
    gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy),
  })) as unknown as Parameters<typeof tf.customGrad>[0],
) as unknown as (x: tf.Tensor) => tf.Tensor;

/**
 * The identity whose gradient is zero (PyTorch's `detach`, TensorFlow's
 * `stop_gradient`): a value computed from `x` is used without training
 * what produced `x`. Returns a new tensor; the caller disposes it.
 *
 * @example
 * ```ts
 * import { initBackend, stopGradient, tf } from "tokenlab";
 * await initBackend();
 * const x = tf.tensor1d([1, 2]);
 * const g = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(x, stopGradient(x))))(x);
 * console.log(await g.data()); // [1, 2]: only the first factor is trained
 * tf.dispose([x, g]);
 * ```
 */
export function stopGradient<T extends tf.Tensor>(x: T): T {
  return stopGradientOp(x) as T;
}
