/**
 * Layers the models share (internal): the linear map over the last axis,
 * dropout and drop path through the seeded generator, training- and
 * evaluation-mode BatchNorm of NHWC maps with running statistics, and the
 * initial values of a fresh parameter.
 *
 * @module
 */

import { tf } from "../tf.ts";
import {
  fusedBatchNormTrain,
  fusedNormFor,
  NORM_KERNELS,
} from "../kernels/wasm_norms.ts";
import type { Rng } from "../random.ts";
import type { ModelConfig, ParamSpec } from "./config.ts";
import { ModelInputError } from "./model.ts";

/** The trainable state and running statistics, by official name. */
export type State = Map<string, tf.Variable>;

/** What BatchNorm needs to know about the forward it runs in. */
export interface NormContext {
  /** Batch statistics (training) or running ones (evaluation). */
  training: boolean;
  /** Whether training mode moves the running statistics. */
  updateStats: boolean;
}

/** y = x W + b over the last axis; W is stored [in, out]. */
export function linear(
  x: tf.Tensor,
  w: tf.Tensor,
  b: tf.Tensor | undefined,
): tf.Tensor {
  const [inF, outF] = w.shape as [number, number];
  const lead = x.shape.slice(0, -1);
  const flat = tf.reshape(x, [-1, inF]) as tf.Tensor2D; // [rows, in]
  const y = b === undefined
    ? tf.matMul(flat, w as tf.Tensor2D)
    : tf.fused.matMul({ a: flat, b: w as tf.Tensor2D, bias: b }); // [rows, out]
  return tf.reshape(y, [...lead, outF]); // [..., out]
}

/** Inverted dropout with a mask drawn through the seeded generator. */
export function dropout(x: tf.Tensor, rate: number, rng: Rng): tf.Tensor {
  if (rate === 0) return x;
  // tfjs's own generator is seeded from ours, so the run stays reproducible.
  const u = tf.randomUniform(x.shape, 0, 1, "float32", rng.uint32());
  return tf.mul(
    x,
    tf.div(tf.cast(tf.greaterEqual(u, rate), "float32"), 1 - rate),
  );
}

/** Drop path: zeroes a whole sample's branch with probability `rate`. */
export function dropPath(x: tf.Tensor, rate: number, rng: Rng): tf.Tensor {
  if (rate === 0) return x;
  const keep = 1 - rate;
  const B = x.shape[0];
  const mask = new Float32Array(B);
  for (let i = 0; i < B; i++) mask[i] = rng.float() < keep ? 1 / keep : 0;
  const shape = [B, ...x.shape.slice(1).map(() => 1)];
  return tf.mul(x, tf.tensor(mask, shape));
}

/**
 * Training-mode BatchNorm of an NHWC map with a hand-written gradient: it
 * saves only its input and recomputes the normalised map in the backward
 * pass, where autodiff of the composite ops would keep five full-size
 * intermediates per layer alive (the stem's maps are the largest tensors of
 * a step). `mean` and `invStd` are the batch statistics of `x`; the gradient
 * below is the total derivative through them, so none flows back through
 * their own computation.
 */
const batchNormTrain = tf.customGrad(
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
        const axes = [0, 1, 2];
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
) => tf.Tensor4D;

/**
 * BatchNorm over N, H, W of an NHWC map. Training uses the batch statistics
 * and moves the running ones (unbiased variance, as PyTorch); evaluation
 * uses the running ones.
 */
export function batchNorm(
  x: tf.Tensor4D,
  state: State,
  prefix: string,
  config: Pick<ModelConfig, "bnEps" | "bnMomentum">,
  ctx: NormContext,
): tf.Tensor4D {
  const weight = state.get(`${prefix}.weight`)!;
  const bias = state.get(`${prefix}.bias`)!;
  const runMean = state.get(`${prefix}.running_mean`)!;
  const runVar = state.get(`${prefix}.running_var`)!;
  if (!ctx.training) {
    const scale = tf.mul(weight, tf.rsqrt(tf.add(runVar, config.bnEps)));
    return tf.add(tf.mul(tf.sub(x, runMean), scale), bias) as tf.Tensor4D;
  }
  const n = x.shape[0] * x.shape[1] * x.shape[2];
  const update = (mean: tf.Tensor, variance: tf.Tensor) => {
    const m = config.bnMomentum;
    const unbiased = n > 1 ? n / (n - 1) : 1;
    const count = state.get(`${prefix}.num_batches_tracked`)!;
    tf.tidy(() => {
      runMean.assign(tf.add(tf.mul(runMean, 1 - m), tf.mul(mean, m)));
      runVar.assign(
        tf.add(tf.mul(runVar, 1 - m), tf.mul(variance, m * unbiased)),
      );
      count.assign(tf.add(count, 1));
    });
  };
  if (fusedNormFor(x, NORM_KERNELS.batchNorm) && weight.dtype === "float32") {
    // On wasm and WebGPU: the moments, the map and its gradient are fused
    // kernels (lib/kernels/wasm_norms.ts, webgpu_norms.ts).
    return fusedBatchNormTrain(
      x,
      weight,
      bias,
      config.bnEps,
      ctx.updateStats ? update : undefined,
    );
  }
  const { mean, variance } = tf.moments(x, [0, 1, 2]);
  if (ctx.updateStats) update(mean, variance);
  const invStd = tf.rsqrt(tf.add(variance, config.bnEps));
  return batchNormTrain(x, mean, invStd, weight, bias);
}

/** Initial values of a fresh parameter or buffer, in PyTorch layout. */
export function initialValues(spec: ParamSpec, rng: Rng): Float32Array {
  const size = spec.shape.reduce((a, b) => a * b, 1);
  const v = new Float32Array(size);
  switch (spec.init) {
    case "ones":
      v.fill(1);
      break;
    case "zeros":
      break;
    case "trunc_normal":
      for (let i = 0; i < size; i++) v[i] = rng.truncNormal(0, 0.02);
      break;
    case "fan_in_uniform": {
      const bound = 1 / Math.sqrt(spec.fanIn!);
      for (let i = 0; i < size; i++) v[i] = (2 * rng.float() - 1) * bound;
      break;
    }
  }
  return v;
}

/** How {@linkcode checkImages} words its errors for one model kind. */
export interface CheckImagesOptions {
  /** Whether the model was disposed. */
  disposed: boolean;
  /** What `config.patchSize` is called ("patch size", "total stride"). */
  strideName: string;
  /** Said after "build it with imgSize N" (e.g. what loading a checkpoint does). */
  rebuildNote: string;
}

/** Refuses input the model cannot take: layout, channels, size, dtype. */
export function checkImages(
  x: tf.Tensor,
  config: ModelConfig,
  options: CheckImagesOptions,
): void {
  if (options.disposed) {
    throw new ModelInputError(
      "this model was disposed; create or load it again",
    );
  }
  const { imgSize: s, inChans, patchSize } = config;
  if (x.rank !== 4 || x.shape[3] !== inChans) {
    throw new ModelInputError(
      `expected NHWC images [batch, ${s}, ${s}, ${inChans}], found shape [${x.shape}]${
        x.rank === 4 && x.shape[1] === inChans
          ? "; this looks like NCHW: transpose with tf.transpose(x, [0, 2, 3, 1])"
          : ""
      }`,
    );
  }
  const [, h, w] = x.shape;
  if (h % patchSize !== 0 || w % patchSize !== 0) {
    throw new ModelInputError(
      `image size ${h}x${w} is not divisible by the ${options.strideName} ${patchSize}; resize or crop to a multiple of ${patchSize} (the model expects ${s}x${s})`,
    );
  }
  if (h !== s || w !== s) {
    const g = s / patchSize;
    throw new ModelInputError(
      `this model was built for ${s}x${s} images (${g}x${g} tokens), found ${h}x${w}; build it with imgSize ${h}${options.rebuildNote} or resize the images`,
    );
  }
  if (x.dtype !== "float32") {
    throw new ModelInputError(
      `expected float32 images, found ${x.dtype}; convert with tf.cast(x, "float32") and normalise`,
    );
  }
}
