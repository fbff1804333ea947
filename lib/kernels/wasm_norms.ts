/**
 * Fused GELU, LayerNorm and BatchNorm for the wasm backend, forward and
 * backward, in C (`lib/kernels/c/norms.c`) on tfjs's own heap.
 *
 * tfjs composes each of them from five to fifteen elementwise and reduction
 * kernels, each writing a full tensor, and autodiff doubles that in the
 * backward pass: on a bench-64 training step at batch 64 they took about a
 * quarter of the time once the products ran on OpenBLAS. Each fused kernel
 * is one or two passes over memory:
 * - GELU (exact, erf form): y = x Phi(x); dx = dy (Phi(x) + x phi(x)). erf is
 *   Abramowitz and Stegun 7.1.26, as in tfjs's own Erf kernels.
 * - LayerNorm over the last axis with its affine part; the backward pass
 *   reuses the row means and reciprocal deviations of the forward.
 * - BatchNorm's batch moments (accumulated in double), its affine map, and
 *   its gradient through the batch statistics.
 *
 * `lib/ops.ts` (`gelu`, `layerNormAffine`) and the LV-ViT stem use them on
 * wasm; other backends keep the composite ops.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import {
  addressOf,
  type Info,
  type KernelArgs,
  moduleOn,
  type WasmBackend,
} from "./_wasm_heap.ts";
import { NORM_KERNEL_NAMES } from "./_norm_names.ts";
import { kernelsHere, registerMissingKernels } from "./_registered.ts";

type Attrs = Parameters<ReturnType<typeof tf.engine>["runKernel"]>[2];

interface NormExports {
  gelu_forward(x: number, y: number, n: number): void;
  gelu_backward(dy: number, x: number, dx: number, n: number): void;
  layernorm_forward(
    x: number,
    w: number,
    b: number,
    y: number,
    mean: number,
    rstd: number,
    rows: number,
    C: number,
    eps: number,
  ): void;
  layernorm_backward(
    dy: number,
    x: number,
    w: number,
    mean: number,
    rstd: number,
    dx: number,
    dw: number,
    db: number,
    rows: number,
    C: number,
  ): void;
  batchnorm_moments(
    x: number,
    mean: number,
    variance: number,
    acc: number,
    rows: number,
    C: number,
  ): void;
  batchnorm_apply(
    x: number,
    mean: number,
    invstd: number,
    gamma: number,
    beta: number,
    y: number,
    rows: number,
    C: number,
  ): void;
  batchnorm_backward(
    dy: number,
    x: number,
    mean: number,
    invstd: number,
    gamma: number,
    dx: number,
    dgamma: number,
    dbeta: number,
    acc: number,
    rows: number,
    C: number,
  ): void;
}

const c = (backend: WasmBackend) => moduleOn<NormExports>(backend, "norms");

/** Kernel names, by op (shared with the WebGPU kernels). */
export const NORM_KERNELS = NORM_KERNEL_NAMES;

interface Ctx {
  backend: WasmBackend;
  in: Record<string, Info>;
  attrs: Record<string, number>;
  /** A tensor's byte address on the heap. */
  at: (t: Info) => number;
}

function ctx(args: KernelArgs): Ctx {
  const backend = args.backend as unknown as WasmBackend;
  return {
    backend,
    in: args.inputs as Record<string, Info>,
    attrs: args.attrs as unknown as Record<string, number>,
    at: (t) => addressOf(backend, t),
  };
}

const size = (t: Info) => t.shape.reduce((p, v) => p * v, 1);
const last = (t: Info) => t.shape[t.shape.length - 1];

/** Scratch of `doubles` float64 values, disposed after `body`. */
function withScratch<T>(
  backend: WasmBackend,
  doubles: number,
  body: (address: number) => T,
): T {
  const t = backend.makeOutput([2 * doubles], "float32");
  try {
    return body(addressOf(backend, t));
  } finally {
    backend.disposeData(t.dataId);
  }
}

const KERNELS: [string, (a: KernelArgs) => Info | Info[]][] = [
  [NORM_KERNELS.gelu, (args) => {
    const { backend, at, in: { x } } = ctx(args);
    const y = backend.makeOutput([...x.shape], "float32");
    c(backend).gelu_forward(at(x), at(y), size(x));
    return y;
  }],
  [NORM_KERNELS.geluGrad, (args) => {
    const { backend, at, in: { dy, x } } = ctx(args);
    const dx = backend.makeOutput([...x.shape], "float32");
    c(backend).gelu_backward(at(dy), at(x), at(dx), size(x));
    return dx;
  }],
  [NORM_KERNELS.layerNorm, (args) => {
    const { backend, at, in: { x, w, b }, attrs } = ctx(args);
    const C = last(x), rows = size(x) / C;
    const y = backend.makeOutput([...x.shape], "float32");
    const mean = backend.makeOutput([rows], "float32");
    const rstd = backend.makeOutput([rows], "float32");
    c(backend).layernorm_forward(
      at(x),
      at(w),
      at(b),
      at(y),
      at(mean),
      at(rstd),
      rows,
      C,
      attrs.eps,
    );
    return [y, mean, rstd];
  }],
  [NORM_KERNELS.layerNormGrad, (args) => {
    const { backend, at, in: { dy, x, w, mean, rstd } } = ctx(args);
    const C = last(x), rows = size(x) / C;
    const dx = backend.makeOutput([...x.shape], "float32");
    const dw = backend.makeOutput([C], "float32");
    const db = backend.makeOutput([C], "float32");
    c(backend).layernorm_backward(
      at(dy),
      at(x),
      at(w),
      at(mean),
      at(rstd),
      at(dx),
      at(dw),
      at(db),
      rows,
      C,
    );
    return [dx, dw, db];
  }],
  [NORM_KERNELS.moments, (args) => {
    const { backend, at, in: { x } } = ctx(args);
    const C = last(x), rows = size(x) / C;
    const mean = backend.makeOutput([C], "float32");
    const variance = backend.makeOutput([C], "float32");
    withScratch(backend, 2 * C, (acc) =>
      c(backend).batchnorm_moments(
        at(x),
        at(mean),
        at(variance),
        acc,
        rows,
        C,
      ));
    return [mean, variance];
  }],
  [NORM_KERNELS.batchNorm, (args) => {
    const { backend, at, in: { x, mean, invStd, gamma, beta } } = ctx(args);
    const C = last(x), rows = size(x) / C;
    const y = backend.makeOutput([...x.shape], "float32");
    c(backend).batchnorm_apply(
      at(x),
      at(mean),
      at(invStd),
      at(gamma),
      at(beta),
      at(y),
      rows,
      C,
    );
    return y;
  }],
  [NORM_KERNELS.batchNormGrad, (args) => {
    const { backend, at, in: { dy, x, mean, invStd, gamma } } = ctx(args);
    const C = last(x), rows = size(x) / C;
    const dx = backend.makeOutput([...x.shape], "float32");
    const dgamma = backend.makeOutput([C], "float32");
    const dbeta = backend.makeOutput([C], "float32");
    withScratch(backend, 2 * C, (acc) =>
      c(backend).batchnorm_backward(
        at(dy),
        at(x),
        at(mean),
        at(invStd),
        at(gamma),
        at(dx),
        at(dgamma),
        at(dbeta),
        acc,
        rows,
        C,
      ));
    return [dx, dgamma, dbeta];
  }],
];

/**
 * Registers the kernels for the wasm backend (idempotent) and returns their
 * names.
 */
export function registerWasmNorms(): string[] {
  return registerMissingKernels("wasm", KERNELS);
}

/**
 * Whether a fused kernel runs for `x` on the current backend: `kernel`
 * (default GELU's) is registered there (wasm and WebGPU have them all), and
 * `x` is float32 and not empty.
 */
export function fusedNormFor(
  x: tf.Tensor,
  kernel: string = NORM_KERNELS.gelu,
): boolean {
  return x.dtype === "float32" && x.size > 0 && x.rank > 0 &&
    kernelsHere(kernel);
}

function run(
  name: string,
  inputs: Record<string, tf.Tensor>,
  attrs: Record<string, number> = {},
): tf.Tensor[] {
  const out = tf.engine().runKernel(
    name,
    inputs,
    attrs as unknown as Attrs,
  ) as tf.Tensor | tf.Tensor[];
  return Array.isArray(out) ? out : [out];
}

type Custom = Parameters<typeof tf.customGrad>[0];

/** The exact (erf) GELU as one kernel each way; see {@linkcode fusedNormFor}. */
export const fusedGelu = tf.customGrad(
  ((x: tf.Tensor, save: tf.GradSaveFunc) => {
    save([x]);
    return {
      value: run(NORM_KERNELS.gelu, { x })[0],
      gradFunc: (dy: tf.Tensor, [xs]: tf.Tensor[]) =>
        run(NORM_KERNELS.geluGrad, { dy, x: xs })[0],
    };
  }) as unknown as Custom,
) as unknown as <T extends tf.Tensor>(x: T) => T;

/**
 * LayerNorm over the last axis with weight and bias (1-D, the last axis's
 * size) as one kernel each way; see {@linkcode fusedNormFor}.
 */
export function fusedLayerNorm<T extends tf.Tensor>(
  x: T,
  weight: tf.Tensor,
  bias: tf.Tensor,
  eps = 1e-5,
): T {
  const op = tf.customGrad(
    ((xi: tf.Tensor, w: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
      const [y, mean, rstd] = run(NORM_KERNELS.layerNorm, { x: xi, w, b }, {
        eps,
      });
      save([xi, w, mean, rstd]);
      return {
        value: y,
        gradFunc: (dy: tf.Tensor, [xs, ws, m, r]: tf.Tensor[]) =>
          run(NORM_KERNELS.layerNormGrad, {
            dy,
            x: xs,
            w: ws,
            mean: m,
            rstd: r,
          }),
      };
    }) as unknown as Custom,
  ) as unknown as (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor) => T;
  return op(x, weight, bias);
}

/**
 * Training-mode BatchNorm over every axis but the last (channels): the batch
 * moments, (x - mean) / sqrt(var + eps) gamma + beta, and the gradient
 * through the batch statistics, one kernel each. `onStats` receives the
 * batch mean and biased variance (for the running statistics; it must not
 * dispose them). See {@linkcode fusedNormFor}.
 */
export function fusedBatchNormTrain<T extends tf.Tensor>(
  x: T,
  gamma: tf.Tensor,
  beta: tf.Tensor,
  eps: number,
  onStats?: (mean: tf.Tensor1D, variance: tf.Tensor1D) => void,
): T {
  const op = tf.customGrad(
    ((xi: tf.Tensor, g: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
      const [mean, variance] = run(NORM_KERNELS.moments, { x: xi });
      onStats?.(mean as tf.Tensor1D, variance as tf.Tensor1D);
      const invStd = tf.rsqrt(tf.add(variance, eps));
      save([xi, mean, invStd, g]);
      return {
        value: run(NORM_KERNELS.batchNorm, {
          x: xi,
          mean,
          invStd,
          gamma: g,
          beta: b,
        })[0],
        gradFunc: (dy: tf.Tensor, [xs, m, inv, gs]: tf.Tensor[]) =>
          run(NORM_KERNELS.batchNormGrad, {
            dy,
            x: xs,
            mean: m,
            invStd: inv,
            gamma: gs,
          }),
      };
    }) as unknown as Custom,
  ) as unknown as (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => T;
  return op(x, gamma, beta);
}
