/**
 * Small tensor operations the models are built from that tfjs lacks as one
 * call. Each is checked against float64 loops on every backend
 * (`tests/numerics_test.ts`, `checkBackends`).
 *
 * @module
 */

import { tf } from "./tf.ts";

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
