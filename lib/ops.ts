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
} from "./kernels/wasm_attention.ts";
import {
  fusedBatchNormTrain,
  fusedGelu,
  fusedLayerNorm,
  fusedNormFor,
  NORM_KERNELS,
} from "./kernels/wasm_norms.ts";
import { WEBGPU_LAYER_NORM_MAX } from "./kernels/webgpu_norms.ts";
import {
  WEBGPU_ATTENTION_MAX_HEAD,
  WEBGPU_ATTENTION_MAX_TOKENS,
} from "./kernels/webgpu_attention.ts";

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

/** The affine part of {@linkcode batchNormTrain}, of the channels' size. */
export interface BatchNormAffine {
  /** Scale per channel (PyTorch's `weight`, gamma). */
  weight: tf.Tensor;
  /** Shift per channel (PyTorch's `bias`, beta). */
  bias: tf.Tensor;
}

/** Options of {@linkcode batchNormTrain}. */
export interface BatchNormTrainOptions {
  /** Added to the variance inside the square root (default 1e-5, PyTorch's). */
  eps?: number;
  /**
   * Receives the batch mean and biased variance over every axis but the last
   * (to move running statistics); it must not dispose them.
   */
  onStats?: (mean: tf.Tensor1D, variance: tf.Tensor1D) => void;
}

/**
 * Training-mode BatchNorm over every axis but the last (channels, as in an
 * NHWC map): (x - mean) / sqrt(var + eps) weight + bias with the batch's
 * mean and biased variance, differentiable through the batch statistics, as
 * PyTorch's `nn.BatchNorm2d` in training mode (the running statistics are
 * the caller's, through `onStats`).
 *
 * @example
 * ```ts
 * import { batchNormTrain, initBackend, tf } from "tokenlab";
 * await initBackend();
 * const x = tf.tensor4d([1, 2, 3, 5], [4, 1, 1, 1]);
 * const y = batchNormTrain(x, { weight: tf.ones([1]), bias: tf.zeros([1]) });
 * console.log(await y.data()); // about [-1.1832, -0.5071, 0.1690, 1.5213]
 * y.dispose();
 * ```
 */
export function batchNormTrain<T extends tf.Tensor>(
  x: T,
  affine: BatchNormAffine,
  options: BatchNormTrainOptions = {},
): T {
  const { weight, bias } = affine;
  const eps = options.eps ?? 1e-5;
  if (fusedNormFor(x, NORM_KERNELS.batchNorm) && weight.dtype === "float32") {
    // On wasm and WebGPU: the moments, the map and its gradient are fused
    // kernels (lib/kernels/wasm_norms.ts, webgpu_norms.ts).
    return fusedBatchNormTrain(x, weight, bias, eps, options.onStats);
  }
  const axes = x.shape.slice(0, -1).map((_, i) => i);
  const { mean, variance } = tf.moments(x, axes);
  options.onStats?.(mean as tf.Tensor1D, variance as tf.Tensor1D);
  const invStd = tf.rsqrt(tf.add(variance, eps));
  return batchNormTrainComposite(x, mean, invStd, weight, bias) as T;
}

/**
 * {@linkcode batchNormTrain} of tfjs ops with a hand-written gradient: it
 * saves only its input and recomputes the normalised map in the backward
 * pass, where autodiff of the composite ops would keep five full-size
 * intermediates per layer alive (the stem's maps are the largest tensors of
 * a step). `mean` and `invStd` are the batch statistics of `x`; the gradient
 * below is the total derivative through them, so none flows back through
 * their own computation.
 */
const batchNormTrainComposite = tf.customGrad(
  ((
    x: tf.Tensor,
    mean: tf.Tensor,
    invStd: tf.Tensor,
    gamma: tf.Tensor,
    beta: tf.Tensor,
    save: tf.GradSaveFunc,
  ): {
    value: tf.Tensor;
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor[];
  } => {
    const y = tf.add(tf.mul(tf.mul(tf.sub(x, mean), invStd), gamma), beta);
    save([x, mean, invStd, gamma]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, m, inv, g] = saved;
        const n = xs.size / xs.shape[xs.rank - 1];
        const axes = xs.shape.slice(0, -1).map((_, i) => i);
        const xhat = tf.mul(tf.sub(xs, m), inv);
        const dBeta = tf.sum(dy, axes);
        const dGamma = tf.sum(tf.mul(dy, xhat), axes);
        // dx = gamma invStd / n (n dy - sum dy - xhat sum(dy xhat))
        const dx = tf.mul(
          tf.mul(g, tf.div(inv, n)),
          tf.sub(tf.sub(tf.mul(dy, n), dBeta), tf.mul(xhat, dGamma)),
        );
        return [dx, tf.zerosLike(m), tf.zerosLike(inv), dGamma, dBeta];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0],
) as unknown as (
  x: tf.Tensor,
  mean: tf.Tensor,
  invStd: tf.Tensor,
  gamma: tf.Tensor,
  beta: tf.Tensor,
) => tf.Tensor;

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

/**
 * `x + y * scale[b]`, with one factor per sample (the first axis): a
 * residual whose branch is scaled per sample, as LV-ViT's drop path followed
 * by its division by `skip_lam` (pass the drop mask already divided).
 * Forward one multiply and one add, backward one multiply (`dy * scale[b]`
 * for the branch, `dy` itself for `x`), where the composite
 * `x + (y * mask) / skipLam` records three kernels forward and two backward
 * of the activation's size. With `skipLam` a power of two the result is
 * bit-identical to the composite.
 *
 * @throws {RangeError} when `x` and `y` differ in shape or `scale` has not
 * one factor per sample
 *
 * @example
 * ```ts
 * import { initBackend, scaledResidual, tf } from "tokenlab";
 * await initBackend();
 * const x = tf.ones([2, 3]), y = tf.fill([2, 3], 4);
 * const z = scaledResidual(x, y, Float32Array.of(0.5, 0));
 * console.log(await z.data()); // [3, 3, 3, 1, 1, 1]
 * tf.dispose([x, y, z]);
 * ```
 */
export function scaledResidual<T extends tf.Tensor>(
  x: T,
  y: T,
  scale: Float32Array,
): T {
  const B = x.shape[0];
  if (
    x.rank < 1 || x.rank !== y.rank || x.shape.some((d, i) => d !== y.shape[i])
  ) {
    throw new RangeError(
      `scaledResidual: expected x and its branch y of one shape with a batch axis, found [${x.shape}] and [${y.shape}]; pass the block's input and its branch's output`,
    );
  }
  if (scale.length !== B) {
    throw new RangeError(
      `scaledResidual: expected one scale per sample (${B}), found ${scale.length}; pass the drop mask of this batch`,
    );
  }
  const c = tf.tensor(scale, [B, ...x.shape.slice(1).map(() => 1)]);
  const op = tf.customGrad(
    ((xi: tf.Tensor, yi: tf.Tensor, save: tf.GradSaveFunc) => {
      save([c]);
      return {
        value: tf.add(xi, tf.mul(yi, c)),
        gradFunc: (dy: tf.Tensor, [cs]: tf.Tensor[]) => [
          tf.reshape(dy, xi.shape),
          tf.mul(dy, cs),
        ],
      };
    }) as unknown as Parameters<typeof tf.customGrad>[0],
  ) as unknown as (a: tf.Tensor, b: tf.Tensor) => tf.Tensor;
  const out = op(x, y);
  c.dispose();
  return out as T;
}
