/**
 * Layers the models share (internal): the typed parameters of a layer,
 * looked up once by official name, the linear map over the last axis,
 * dropout and drop path through the seeded generator, training- and
 * evaluation-mode BatchNorm of NHWC maps with running statistics, and the
 * initial values of a fresh parameter.
 *
 * @module
 */

import { tf } from "../tf.ts";
import { batchNormTrain } from "../ops.ts";
import type { Rng } from "../random.ts";
import type { ModelConfig, ParamSpec } from "./config.ts";
import { ModelInputError } from "./model.ts";

/**
 * The state entry `name`. Models look their parameters up once, when they
 * are built, so a missing entry is a defect of the state, said at once.
 */
export function param(
  state: ReadonlyMap<string, tf.Variable>,
  name: string,
): tf.Variable {
  const v = state.get(name);
  if (v === undefined) {
    throw new Error(
      `the model's state has no entry ${name}, which its config needs; build the model with createModel or its class's create, not from a hand-made state`,
    );
  }
  return v;
}

/** A linear map's weight [in, out] and bias [out] (absent when the config has none). */
export interface LinearParams {
  /** Weight, [in, out] (tfjs layout). */
  weight: tf.Variable;
  /** Bias [out], or undefined when the layer has none. */
  bias: tf.Variable | undefined;
}

/** The linear map `prefix` (`prefix.weight`, and `prefix.bias` when there is one). */
export function linearParams(
  state: ReadonlyMap<string, tf.Variable>,
  prefix: string,
): LinearParams {
  return {
    weight: param(state, `${prefix}.weight`),
    bias: state.get(`${prefix}.bias`),
  };
}

/** A LayerNorm's affine part. */
export interface NormParams {
  /** Scale [D]. */
  weight: tf.Variable;
  /** Shift [D]. */
  bias: tf.Variable;
}

/** The LayerNorm `prefix` (`prefix.weight`, `prefix.bias`). */
export function normParams(
  state: ReadonlyMap<string, tf.Variable>,
  prefix: string,
): NormParams {
  return {
    weight: param(state, `${prefix}.weight`),
    bias: param(state, `${prefix}.bias`),
  };
}

/** A BatchNorm's affine part and running statistics (PyTorch's buffers). */
export interface BatchNormParams {
  /** Scale [C]. */
  weight: tf.Variable;
  /** Shift [C]. */
  bias: tf.Variable;
  /** `running_mean` [C]. */
  runningMean: tf.Variable;
  /** `running_var` [C] (unbiased, as PyTorch keeps it). */
  runningVar: tf.Variable;
  /** `num_batches_tracked`, a scalar. */
  numBatchesTracked: tf.Variable;
}

/** The BatchNorm `prefix` with its buffers. */
export function batchNormParams(
  state: ReadonlyMap<string, tf.Variable>,
  prefix: string,
): BatchNormParams {
  return {
    weight: param(state, `${prefix}.weight`),
    bias: param(state, `${prefix}.bias`),
    runningMean: param(state, `${prefix}.running_mean`),
    runningVar: param(state, `${prefix}.running_var`),
    numBatchesTracked: param(state, `${prefix}.num_batches_tracked`),
  };
}

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

/**
 * The per-sample factors of drop path: `1 / (1 - rate)` for a sample whose
 * branch is kept, 0 for one dropped (probability `rate`), one draw of `rng`
 * per sample.
 */
export function dropPathScale(
  batch: number,
  rate: number,
  rng: Rng,
): Float32Array {
  const keep = 1 - rate;
  const mask = new Float32Array(batch);
  for (let i = 0; i < batch; i++) mask[i] = rng.float() < keep ? 1 / keep : 0;
  return mask;
}

/** Drop path: zeroes a whole sample's branch with probability `rate`. */
export function dropPath(x: tf.Tensor, rate: number, rng: Rng): tf.Tensor {
  if (rate === 0) return x;
  const B = x.shape[0];
  const mask = dropPathScale(B, rate, rng);
  const shape = [B, ...x.shape.slice(1).map(() => 1)];
  return tf.mul(x, tf.tensor(mask, shape));
}

/**
 * BatchNorm over N, H, W of an NHWC map. Training uses the batch statistics
 * and moves the running ones (unbiased variance, as PyTorch); evaluation
 * uses the running ones.
 */
export function batchNorm(
  x: tf.Tensor4D,
  params: BatchNormParams,
  config: Pick<ModelConfig, "bnEps" | "bnMomentum">,
  ctx: NormContext,
): tf.Tensor4D {
  const { weight, bias, runningMean: runMean, runningVar: runVar } = params;
  if (!ctx.training) {
    const scale = tf.mul(weight, tf.rsqrt(tf.add(runVar, config.bnEps)));
    return tf.add(tf.mul(tf.sub(x, runMean), scale), bias) as tf.Tensor4D;
  }
  const n = x.shape[0] * x.shape[1] * x.shape[2];
  const update = (mean: tf.Tensor, variance: tf.Tensor) => {
    const m = config.bnMomentum;
    const unbiased = n > 1 ? n / (n - 1) : 1;
    const count = params.numBatchesTracked;
    tf.tidy(() => {
      runMean.assign(tf.add(tf.mul(runMean, 1 - m), tf.mul(mean, m)));
      runVar.assign(
        tf.add(tf.mul(runVar, 1 - m), tf.mul(variance, m * unbiased)),
      );
      count.assign(tf.add(count, 1));
    });
  };
  return batchNormTrain(x, { weight, bias }, {
    eps: config.bnEps,
    onStats: ctx.updateStats ? update : undefined,
  });
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
