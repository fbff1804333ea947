/**
 * The state plumbing the models share (internal): the PyTorch <-> tfjs
 * layout of a parameter, a freshly initialised state, an independent copy,
 * the trainable and decayed variables, disposal, the generator check of a
 * training forward, and the two heads read from a model's evaluation
 * features.
 *
 * @module
 */

import { tf } from "../tf.ts";
import { Rng } from "../random.ts";
import { initialValues, linear, type NormContext, param } from "./_layers.ts";
import { type ModelConfig, parameterSpec, type ParamSpec } from "./config.ts";
import type { DenseLogitsOptions } from "./forward_types.ts";
import { ModelInputError, type TokenModel } from "./model.ts";

/**
 * Reorders row-major `values` of `shape` so that output axis j is input axis
 * perm[j] (a transpose, in JavaScript: weights are converted once, at load
 * and save).
 */
function permute(
  values: Float32Array,
  shape: readonly number[],
  perm: readonly number[],
): Float32Array {
  const rank = shape.length;
  const outShape = perm.map((p) => shape[p]);
  const inStride = new Array<number>(rank).fill(1);
  for (let d = rank - 2; d >= 0; d--) {
    inStride[d] = inStride[d + 1] * shape[d + 1];
  }
  // The input stride of each output axis, walked in output order.
  const step = perm.map((p) => inStride[p]);
  const out = new Float32Array(values.length);
  const idx = new Array<number>(rank).fill(0);
  let src = 0;
  for (let o = 0; o < out.length; o++) {
    out[o] = values[src];
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]++;
      src += step[d];
      if (idx[d] < outShape[d]) break;
      src -= step[d] * outShape[d];
      idx[d] = 0;
    }
  }
  return out;
}

// PyTorch layout -> tfjs layout: conv [out, in, kh, kw] -> [kh, kw, in, out],
// linear [out, in] -> [in, out]; and the inverse permutations.
const TO_TF = { conv: [2, 3, 1, 0], linear: [1, 0] } as const;
const TO_TORCH = { conv: [3, 2, 0, 1], linear: [1, 0] } as const;

/**
 * Converts PyTorch-layout values of a parameter to the tfjs layout the model
 * computes with: conv [out, in, kh, kw] -> [kh, kw, in, out], linear
 * [out, in] -> [in, out]. Returns the tfjs shape and the reordered values.
 */
export function torchToTfLayout(
  layout: ParamSpec["layout"],
  shape: readonly number[],
  values: Float32Array,
): { shape: number[]; values: Float32Array } {
  if (layout === "plain") return { shape: [...shape], values };
  const perm = TO_TF[layout];
  return {
    shape: perm.map((p) => shape[p]),
    values: permute(values, shape, perm),
  };
}

/** The inverse of {@linkcode torchToTfLayout}, given the PyTorch shape. */
export function tfToTorchLayout(
  layout: ParamSpec["layout"],
  torchShape: readonly number[],
  values: Float32Array,
): Float32Array {
  if (layout === "plain") return values;
  const tfShape = TO_TF[layout].map((p) => torchShape[p]);
  return permute(values, tfShape, TO_TORCH[layout]);
}

/** What a forward runs with: BatchNorm's mode and the generator of its draws. */
export interface RunContext extends NormContext {
  /** The generator of drop path, dropout and mixing (null: none given). */
  rng: Rng | null;
}

/** The forward's generator; refuses a training draw without one. */
export function requireRng(ctx: RunContext, what: string): Rng {
  if (ctx.rng === null) {
    throw new ModelInputError(
      `${what} draws random numbers in training; pass { rng: new Rng(seed) } to forwardTrain`,
    );
  }
  return ctx.rng;
}

/**
 * A freshly initialised state of `config`, in spec order, every draw from
 * `seed`; parameters trainable, buffers not (tfjs layout).
 */
export function initialState(
  config: ModelConfig,
  seed: number,
): Map<string, tf.Variable> {
  const rng = new Rng(seed);
  const state = new Map<string, tf.Variable>();
  for (const p of parameterSpec(config)) {
    const { shape, values } = torchToTfLayout(
      p.layout,
      p.shape,
      initialValues(p, rng),
    );
    // A variable shares its initial tensor's data (a reference, not a
    // copy): the temporary is released so that only the variable holds it.
    const initial = tf.tensor(values, shape, "float32");
    state.set(p.name, tf.variable(initial, p.kind === "param"));
    initial.dispose();
  }
  return state;
}

// Which models were disposed. A set beside the classes rather than a private
// field: LvVit stays a structural type, so any TokenModel (what createModel
// returns) is assignable where an LvVit is asked for.
const DISPOSED = new WeakSet<object>();

/** Whether {@linkcode disposeState} was called for `model`. */
export function isDisposed(model: object): boolean {
  return DISPOSED.has(model);
}

/** Releases every variable of `model`'s state, once. */
export function disposeState(
  model: object,
  state: ReadonlyMap<string, tf.Variable>,
): void {
  if (DISPOSED.has(model)) return;
  for (const v of state.values()) v.dispose();
  DISPOSED.add(model);
}

/**
 * A new variable for every entry of `model`'s state (trainable flags kept);
 * refuses a disposed model.
 */
export function cloneState(
  model: object,
  state: ReadonlyMap<string, tf.Variable>,
): Map<string, tf.Variable> {
  if (DISPOSED.has(model)) {
    throw new ModelInputError(
      "this model was disposed and cannot be cloned; clone it before disposing",
    );
  }
  const copy = new Map<string, tf.Variable>();
  // tf.variable shares the (immutable) data by reference count; `assign`
  // swaps a variable's data, so the two models never see each other's writes.
  for (const [name, v] of state) {
    copy.set(name, tf.variable(v, v.trainable));
  }
  return copy;
}

/** The trainable parameters (buffers excluded), in state-dict order. */
export function trainableOf(
  spec: readonly ParamSpec[],
  state: ReadonlyMap<string, tf.Variable>,
): tf.Variable[] {
  return spec.filter((p) => p.kind === "param").map((p) =>
    param(state, p.name)
  );
}

/** The parameters weight decay applies to (`spec[i].decay`). */
export function decayedOf(
  spec: readonly ParamSpec[],
  state: ReadonlyMap<string, tf.Variable>,
): tf.Variable[] {
  return spec.filter((p) => p.decay).map((p) => param(state, p.name));
}

/** Number of values in `variables`. */
export function countValues(variables: readonly tf.Variable[]): number {
  return variables.reduce((n, v) => n + v.size, 0);
}

/** A classifier (`head` or `aux_head`) over the last axis of `x`. */
export function applyHead(
  state: ReadonlyMap<string, tf.Variable>,
  which: "head" | "aux_head",
  x: tf.Tensor,
): tf.Tensor {
  return linear(
    x,
    param(state, `${which}.weight`),
    state.get(`${which}.bias`),
  );
}

/**
 * Evaluation logits [B, C] from features [B, 1+N, D]: head(first) + 0.5 *
 * max over the N others of aux_head (per class); head alone without an aux
 * head. Call it inside `tf.tidy`.
 */
export function predictFromFeatures(
  feats: tf.Tensor3D,
  state: ReadonlyMap<string, tf.Variable>,
  auxHead: boolean,
): tf.Tensor2D {
  const [B, n1, D] = feats.shape;
  const first = tf.reshape(tf.slice(feats, [0, 0, 0], [B, 1, D]), [B, D]); // [B, D]
  const cls = applyHead(state, "head", first) as tf.Tensor2D; // [B, C]
  if (!auxHead) return cls;
  const tokens = tf.slice(feats, [0, 1, 0], [B, n1 - 1, D]); // [B, N, D]
  const aux = applyHead(state, "aux_head", tokens); // [B, N, C]
  return tf.add(cls, tf.mul(tf.max(aux, 1), 0.5)) as tf.Tensor2D;
}

/**
 * Dense class scores [B, h, w, C]: the asked head at each of the N grid
 * tokens of `model.features`, in evaluation mode.
 */
export function denseLogitsOf(
  model: TokenModel,
  x: tf.Tensor,
  options: DenseLogitsOptions,
): tf.Tensor4D {
  const which = options.head ?? "head";
  if (which === "aux_head" && !model.config.auxHead) {
    throw new ModelInputError(
      `${model.config.name} has no aux_head; use { head: "head" }`,
    );
  }
  return tf.tidy(() => {
    const feats = model.features(x); // [B, 1+N, D]
    const [B, n1, D] = feats.shape;
    const g = model.grid;
    const tokens = tf.slice(feats, [0, 1, 0], [B, n1 - 1, D]); // [B, N, D]
    const logits = applyHead(model.state, which, tokens); // [B, N, C]
    return tf.reshape(logits, [
      B,
      g,
      g,
      model.config.numClasses,
    ]) as tf.Tensor4D; // [B, h, w, C]
  });
}
