/**
 * AdamW as PyTorch's `torch.optim.AdamW` (decoupled weight decay, amsgrad
 * off) over parameters that carry their checkpoint names, and gradient
 * clipping as `torch.nn.utils.clip_grad_norm_` / `clip_grad_value_`.
 *
 * A step runs one elementwise pass per bucket of parameters packed into
 * flat vectors (the small ones on wasm and cpu), not one per parameter, so
 * it launches few kernels. On WebGPU the fused kernel of
 * `lib/kernels/webgpu_adamw.ts` updates several parameters in one dispatch
 * (as many as the device's storage buffers allow), so there every parameter
 * is its own bucket (no concat or split).
 *
 * @module
 */

import { tf } from "../tf.ts";
import {
  ADAMW_KERNEL,
  adamwParamsPerDispatchHere,
  type AdamWStepAttrs,
  hasFusedAdamW,
} from "../kernels/webgpu_adamw.ts";
import { TokenlabError } from "../errors.ts";

/** Raised for a bad optimizer setting, gradient or saved state. */
export class OptimizerError extends TokenlabError {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
  }
}

/** One parameter the optimizer updates. */
export interface ParamEntry {
  /** Official state-dict name ("blocks.0.attn.qkv.weight"); keys gradients and state. */
  name: string;
  /** The variable, updated in place with `assign`. */
  variable: tf.Variable;
  /** Whether weight decay applies (not to biases, norms, pos_embed, cls_token). */
  decay: boolean;
}

/** Hyperparameters of {@linkcode AdamW} (PyTorch's names in parentheses). */
export interface AdamWOptions {
  /** Learning rate (lr, default 1e-3); the schedule sets it before each step. */
  lr?: number;
  /** Decoupled weight decay of the decayed parameters (weight_decay, default 0.05 as the official recipe). */
  weightDecay?: number;
  /** Moment decay rates (betas, default [0.9, 0.999]). */
  betas?: [number, number];
  /** Added to the denominator (eps, default 1e-8). */
  eps?: number;
}

/**
 * A snapshot of the optimizer: the hyperparameters and both moments of
 * every parameter, as in a PyTorch optimizer state dict.
 */
export interface OptimizerState {
  /** Steps taken (PyTorch's `state[p]["step"]`, the same for every parameter). */
  step: number;
  /** Learning rate of the last step. */
  lr: number;
  /** Weight decay of the decayed parameters. */
  weightDecay: number;
  /** Moment decay rates. */
  betas: [number, number];
  /** Denominator epsilon. */
  eps: number;
  /** "exp_avg.<name>" and "exp_avg_sq.<name>" for every parameter, row-major in the variable's own shape. */
  moments: Map<string, Float32Array>;
}

/**
 * How parameters are packed into buckets (elements): a parameter of `solo`
 * elements or more is updated on its own, smaller ones are packed together
 * up to `bucket` elements. With the fused AdamW kernel (WebGPU) a step of
 * one parameter is one dispatch, so packing would only add copies: every
 * parameter is alone. On WebGPU without it a kernel launch costs more than a
 * copy, so everything is packed (16 MiB buckets bound the temporaries); on
 * wasm and cpu the copies into and out of a bucket cost more than the
 * launches they save, so only the small parameters (biases, norms) are
 * packed. The arithmetic is elementwise: the packing never changes a result.
 */
function packing(): { solo: number; bucket: number } {
  if (hasFusedAdamW()) return { solo: 1, bucket: 1 };
  return tf.getBackend() === "webgpu"
    ? { solo: 1 << 22, bucket: 1 << 22 }
    : { solo: 1 << 14, bucket: 1 << 18 };
}

/** Parameters updated together: one flat vector per moment. */
interface Bucket {
  decay: boolean;
  entries: ParamEntry[];
  sizes: number[];
  size: number;
  m: tf.Variable;
  v: tf.Variable;
}

/**
 * A non-trainable zero vector. tf.variable shares its initial value's data
 * (by reference count) rather than copying it, so the initial tensor is
 * released here: kept, it would pin the zeros after the first assign.
 */
function zeroVariable(size: number): tf.Variable {
  const zeros = tf.zeros([size]);
  const v = tf.variable(zeros, false);
  zeros.dispose();
  return v;
}

function checkHyper(
  lr: number,
  weightDecay: number,
  betas: readonly number[],
  eps: number,
): void {
  if (!(Number.isFinite(lr) && lr >= 0)) {
    throw new OptimizerError(
      `AdamW lr must be a finite number >= 0, found ${lr}; set it from the schedule before each step`,
    );
  }
  if (!(Number.isFinite(weightDecay) && weightDecay >= 0)) {
    throw new OptimizerError(
      `AdamW weightDecay must be a finite number >= 0, found ${weightDecay} (the official recipe uses 0.05)`,
    );
  }
  if (
    !(Array.isArray(betas) && betas.length === 2 &&
      betas.every((b) => Number.isFinite(b) && b >= 0 && b < 1))
  ) {
    throw new OptimizerError(
      `AdamW betas must be two numbers in [0, 1), found ${
        JSON.stringify(betas)
      }; the default is [0.9, 0.999]`,
    );
  }
  if (!(Number.isFinite(eps) && eps > 0)) {
    throw new OptimizerError(
      `AdamW eps must be a finite number > 0, found ${eps}; the default is 1e-8`,
    );
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * AdamW with PyTorch's arithmetic. Step t (1-based), for every parameter p
 * with gradient g, wd the weight decay for decayed parameters and 0 for the
 * others:
 *
 *     p <- p (1 - lr wd)
 *     m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
 *     p <- p - (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 *
 * The moments live on the device; `state()` reads them for a checkpoint.
 *
 * @example
 * ```ts
 * import { AdamW, initBackend, tf } from "tokenlab";
 * await initBackend();
 * const [w, b] = tf.tidy(() => [tf.variable(tf.ones([2, 2])), tf.variable(tf.zeros([2]))]);
 * const opt = new AdamW([
 *   { name: "fc.weight", variable: w, decay: true },
 *   { name: "fc.bias", variable: b, decay: false },
 * ], { lr: 1e-3, weightDecay: 0.05 });
 * const grads = new Map([["fc.weight", tf.ones([2, 2])], ["fc.bias", tf.ones([2])]]);
 * opt.apply(grads); // one step
 * console.log(opt.step, await w.data()); // 1, each 0.99895: decay, then ~lr
 * tf.dispose([...grads.values()]);
 * opt.dispose();
 * tf.dispose([w, b]);
 * ```
 */
export class AdamW {
  /** Learning rate of the next step (set it from the schedule before each step). */
  lr: number;
  #weightDecay: number;
  #betas: [number, number];
  #eps: number;
  #step = 0;
  readonly #entries: readonly ParamEntry[];
  readonly #buckets: Bucket[];
  #disposed = false;

  /** Creates the optimizer with zero moments for every parameter. */
  constructor(params: readonly ParamEntry[], options: AdamWOptions = {}) {
    const {
      lr = 1e-3,
      weightDecay = 0.05,
      betas = [0.9, 0.999],
      eps = 1e-8,
    } = options;
    checkHyper(lr, weightDecay, betas, eps);
    if (params.length === 0) {
      throw new OptimizerError(
        "AdamW needs at least one parameter, found none; pass model.spec's parameters with their variables",
      );
    }
    const seen = new Set<string>();
    for (const p of params) {
      if (seen.has(p.name)) {
        throw new OptimizerError(
          `parameter "${p.name}" is listed twice; every parameter must appear once`,
        );
      }
      seen.add(p.name);
      if (!(p.variable instanceof tf.Variable) || p.variable.isDisposed) {
        throw new OptimizerError(
          `parameter "${p.name}" must be a live tf.Variable, found ${
            p.variable instanceof tf.Variable
              ? "a disposed one"
              : "something else"
          }`,
        );
      }
      if (p.variable.dtype !== "float32") {
        throw new OptimizerError(
          `parameter "${p.name}" must be float32, found ${p.variable.dtype}`,
        );
      }
    }
    this.lr = lr;
    this.#weightDecay = weightDecay;
    this.#betas = [betas[0], betas[1]];
    this.#eps = eps;
    this.#entries = params.map((p) => ({ ...p }));
    this.#buckets = [];
    const { solo, bucket } = packing();
    // Decayed and plain parameters in separate buckets: one scalar decay
    // factor per bucket, and none at all for the plain ones.
    const add = (decay: boolean, entries: ParamEntry[]) => {
      const sizes = entries.map((e) => e.variable.size);
      const size = sizes.reduce((a, b) => a + b, 0);
      this.#buckets.push({
        decay,
        entries,
        sizes,
        size,
        m: zeroVariable(size),
        v: zeroVariable(size),
      });
    };
    for (const decay of [true, false]) {
      let open: ParamEntry[] = [], size = 0;
      for (const e of this.#entries) {
        if (e.decay !== decay) continue;
        if (e.variable.size >= solo) {
          add(decay, [e]);
          continue;
        }
        if (size > 0 && size + e.variable.size > bucket) {
          add(decay, open);
          open = [];
          size = 0;
        }
        open.push(e);
        size += e.variable.size;
      }
      if (open.length > 0) add(decay, open);
    }
  }

  /** Decoupled weight decay of the decayed parameters. */
  get weightDecay(): number {
    return this.#weightDecay;
  }

  /** Moment decay rates [b1, b2]. */
  get betas(): [number, number] {
    return [this.#betas[0], this.#betas[1]];
  }

  /** Denominator epsilon. */
  get eps(): number {
    return this.#eps;
  }

  /** Optimizer steps taken so far. */
  get step(): number {
    return this.#step;
  }

  #checkLive(): void {
    if (this.#disposed) {
      throw new OptimizerError(
        "this optimizer was disposed; create a new one (and load its state)",
      );
    }
  }

  /**
   * Takes one step with the gradients keyed by parameter name; every
   * parameter needs one of its own shape. The gradients stay the caller's
   * (not disposed here).
   */
  apply(grads: ReadonlyMap<string, tf.Tensor>): void {
    this.#checkLive();
    checkHyper(this.lr, this.#weightDecay, this.#betas, this.#eps);
    for (const e of this.#entries) {
      const g = grads.get(e.name);
      if (g === undefined) {
        throw new OptimizerError(
          `no gradient for parameter "${e.name}"; every parameter of the optimizer needs one (a frozen parameter must be left out of the optimizer)`,
        );
      }
      if (g.isDisposed) {
        throw new OptimizerError(
          `the gradient of "${e.name}" was disposed before the step; dispose gradients after apply()`,
        );
      }
      if (!sameShape(g.shape, e.variable.shape)) {
        throw new OptimizerError(
          `gradient of "${e.name}" has shape [${g.shape}], but the parameter has shape [${e.variable.shape}]`,
        );
      }
      if (g.dtype !== "float32") {
        throw new OptimizerError(
          `gradient of "${e.name}" must be float32, found ${g.dtype}`,
        );
      }
    }
    if (grads.size !== this.#entries.length) {
      const known = new Set(this.#entries.map((e) => e.name));
      const extra = [...grads.keys()].filter((k) => !known.has(k));
      throw new OptimizerError(
        `gradients given for ${extra.length} name(s) the optimizer does not hold: ${
          extra.slice(0, 5).map((k) => `"${k}"`).join(", ")
        }${
          extra.length > 5 ? ", ..." : ""
        }; pass exactly the optimizer's parameters (official state-dict names)`,
      );
    }
    const t = this.#step + 1;
    const [b1, b2] = this.#betas;
    // Scalars in float64, as PyTorch computes them in Python.
    const stepSize = this.lr / (1 - b1 ** t);
    const bc2Sqrt = Math.sqrt(1 - b2 ** t);
    const decayFactor = 1 - this.lr * this.#weightDecay;
    const eps = this.#eps;
    const fused = hasFusedAdamW();
    tf.tidy(() => {
      // With the fused kernel: every parameter is its own bucket, and one
      // dispatch steps `perDispatch` of them.
      const solos = fused
        ? this.#buckets.filter((b) => b.entries.length === 1 && b.size > 0)
        : [];
      const perDispatch = adamwParamsPerDispatchHere();
      for (let at = 0; at < solos.length; at += perDispatch) {
        const chunk = solos.slice(at, at + perDispatch);
        const inputs: Record<string, tf.Tensor> = {};
        chunk.forEach((bucket, j) => {
          const e = bucket.entries[0];
          inputs[`g${j}`] = grads.get(e.name)!;
          inputs[`p${j}`] = e.variable;
          inputs[`m${j}`] = bucket.m;
          inputs[`v${j}`] = bucket.v;
        });
        const attrs = {
          decayFactors: chunk.map((b) => b.decay ? decayFactor : 1),
          beta1: b1,
          oneMinusBeta1: 1 - b1,
          beta2: b2,
          oneMinusBeta2: 1 - b2,
          negStepSize: -stepSize,
          bc2Sqrt,
          eps,
        } satisfies AdamWStepAttrs;
        const out = tf.engine().runKernel(
          ADAMW_KERNEL,
          inputs,
          attrs,
        ) as tf.Tensor[];
        chunk.forEach((bucket, j) => {
          bucket.entries[0].variable.assign(out[3 * j]);
          bucket.m.assign(out[3 * j + 1] as tf.Tensor1D);
          bucket.v.assign(out[3 * j + 2] as tf.Tensor1D);
        });
      }
      const stepped = new Set(solos);
      for (const bucket of this.#buckets) {
        if (stepped.has(bucket)) continue;
        const flat = (xs: tf.Tensor[]): tf.Tensor1D =>
          xs.length === 1
            ? tf.reshape(xs[0], [-1])
            : tf.concat(xs.map((x) => tf.reshape(x, [-1])));
        const g = flat(bucket.entries.map((e) => grads.get(e.name)!));
        let p = flat(bucket.entries.map((e) => e.variable));
        if (bucket.decay) p = tf.mul(p, decayFactor);
        // The same operations, in the same order, as PyTorch's kernels:
        // m*b1 + (1-b1)*g; v*b2 + ((1-b2)*g)*g; sqrt(v)/bc2 + eps;
        // p + (-stepSize*m)/denom.
        const m = tf.add(tf.mul(bucket.m, b1), tf.mul(g, 1 - b1));
        const v = tf.add(tf.mul(bucket.v, b2), tf.mul(tf.mul(g, 1 - b2), g));
        const denom = tf.add(tf.div(tf.sqrt(v), bc2Sqrt), eps);
        const updated = tf.add(p, tf.div(tf.mul(m, -stepSize), denom));
        bucket.m.assign(m);
        bucket.v.assign(v);
        const parts = bucket.entries.length === 1
          ? [updated]
          : tf.split(updated, bucket.sizes);
        bucket.entries.forEach((e, i) =>
          e.variable.assign(tf.reshape(parts[i], e.variable.shape))
        );
      }
    });
    this.#step = t;
  }

  /** Reads the step count, hyperparameters and moments (for a checkpoint). */
  async state(): Promise<OptimizerState> {
    this.#checkLive();
    const moments = new Map<string, Float32Array>();
    for (const bucket of this.#buckets) {
      const m = (await bucket.m.data()) as Float32Array;
      const v = (await bucket.v.data()) as Float32Array;
      let at = 0;
      bucket.entries.forEach((e, i) => {
        const n = bucket.sizes[i];
        moments.set(`exp_avg.${e.name}`, m.slice(at, at + n));
        moments.set(`exp_avg_sq.${e.name}`, v.slice(at, at + n));
        at += n;
      });
    }
    // In the parameters' order, as a state dict lists them.
    const ordered = new Map<string, Float32Array>();
    for (const kind of ["exp_avg", "exp_avg_sq"]) {
      for (const e of this.#entries) {
        const k = `${kind}.${e.name}`;
        ordered.set(k, moments.get(k)!);
      }
    }
    return {
      step: this.#step,
      lr: this.lr,
      weightDecay: this.#weightDecay,
      betas: [this.#betas[0], this.#betas[1]],
      eps: this.#eps,
      moments: ordered,
    };
  }

  /**
   * Restores a state from {@linkcode AdamW.state}: step, hyperparameters
   * (as PyTorch's `load_state_dict` restores its groups') and moments. Every
   * parameter needs both moments of its size; nothing is changed when any
   * check fails.
   */
  load(state: OptimizerState): void {
    this.#checkLive();
    if (!(Number.isInteger(state.step) && state.step >= 0)) {
      throw new OptimizerError(
        `saved optimizer step must be an integer >= 0, found ${state.step}`,
      );
    }
    checkHyper(state.lr, state.weightDecay, state.betas, state.eps);
    if (!(state.moments instanceof Map)) {
      throw new OptimizerError(
        "saved optimizer moments must be a Map from names to Float32Array",
      );
    }
    const expected = new Set<string>();
    for (const e of this.#entries) {
      for (const kind of ["exp_avg", "exp_avg_sq"]) {
        const key = `${kind}.${e.name}`;
        expected.add(key);
        const values = state.moments.get(key);
        if (values === undefined) {
          throw new OptimizerError(
            `the saved optimizer state has no "${key}"; it was saved for other parameters (found ${state.moments.size} moments for the ${this.#entries.length} parameters here, 2 each)`,
          );
        }
        if (!(values instanceof Float32Array)) {
          throw new OptimizerError(
            `saved moment "${key}" must be a Float32Array, found ${
              Object.prototype.toString.call(values)
            }`,
          );
        }
        if (values.length !== e.variable.size) {
          throw new OptimizerError(
            `saved moment "${key}" has ${values.length} values, but parameter "${e.name}" of shape [${e.variable.shape}] has ${e.variable.size}; the state belongs to another model configuration`,
          );
        }
      }
    }
    for (const key of state.moments.keys()) {
      if (!expected.has(key)) {
        throw new OptimizerError(
          `the saved optimizer state has "${key}", which belongs to no parameter of this optimizer; load it into an optimizer over the same parameters`,
        );
      }
    }
    for (const bucket of this.#buckets) {
      for (
        const [kind, target] of [["exp_avg", bucket.m], [
          "exp_avg_sq",
          bucket.v,
        ]] as const
      ) {
        const flat = new Float32Array(bucket.size);
        let at = 0;
        for (const e of bucket.entries) {
          flat.set(state.moments.get(`${kind}.${e.name}`)!, at);
          at += e.variable.size;
        }
        tf.tidy(() => target.assign(tf.tensor1d(flat, "float32")));
      }
    }
    this.#step = state.step;
    this.lr = state.lr;
    this.#weightDecay = state.weightDecay;
    this.#betas = [state.betas[0], state.betas[1]];
    this.#eps = state.eps;
  }

  /** Releases the moments; the parameters stay the caller's. */
  dispose(): void {
    if (this.#disposed) return;
    for (const b of this.#buckets) {
      b.m.dispose();
      b.v.dispose();
    }
    this.#disposed = true;
  }
}

/**
 * Clips gradients as PyTorch does before `optimizer.step()`, and returns
 * new tensors (the caller disposes them, and the norm) with the total L2
 * norm of all gradients before clipping (computed in both modes, for the
 * log). "norm": every gradient times min(1, maxValue / (norm + 1e-6)), as
 * `clip_grad_norm_`, computed on the device (no read back). "value": every
 * element clipped to [-maxValue, maxValue], as `clip_grad_value_`.
 *
 * @example
 * ```ts
 * import { clipGradients, initBackend, tf } from "tokenlab";
 * await initBackend();
 * const raw = new Map([["w", tf.tensor1d([3, 4])]]);
 * const { grads, norm } = clipGradients(raw, 1, "norm");
 * console.log(await norm.data(), await grads.get("w")!.data()); // 5, ~[0.6, 0.8]
 * tf.dispose([norm, ...grads.values(), ...raw.values()]);
 * ```
 */
export function clipGradients(
  grads: ReadonlyMap<string, tf.Tensor>,
  maxValue: number,
  mode: "norm" | "value",
): { grads: Map<string, tf.Tensor>; norm: tf.Scalar } {
  if (!(Number.isFinite(maxValue) && maxValue > 0)) {
    throw new OptimizerError(
      `clipping needs a finite maxValue > 0, found ${maxValue}; leave clipping off instead of passing 0`,
    );
  }
  if (mode !== "norm" && mode !== "value") {
    throw new OptimizerError(
      `clipping mode must be "norm" (clip_grad_norm_) or "value" (clip_grad_value_), found ${
        JSON.stringify(mode)
      }`,
    );
  }
  for (const [name, g] of grads) {
    if (g.isDisposed) {
      throw new OptimizerError(
        `the gradient of "${name}" was disposed before clipping`,
      );
    }
  }
  const names = [...grads.keys()];
  const out = tf.tidy(() => {
    const list = names.map((n) => grads.get(n)!);
    const norm = list.length === 0
      ? tf.scalar(0)
      : tf.sqrt(tf.addN(list.map((g) => tf.sum(tf.square(g))))) as tf.Scalar;
    let clipped: tf.Tensor[];
    if (mode === "norm") {
      const coef = tf.minimum(tf.div(maxValue, tf.add(norm, 1e-6)), 1);
      clipped = list.map((g) => tf.mul(g, coef));
    } else {
      clipped = list.map((g) => tf.clipByValue(g, -maxValue, maxValue));
    }
    return { norm, clipped };
  });
  return {
    grads: new Map(names.map((n, i) => [n, out.clipped[i]])),
    norm: out.norm,
  };
}

/**
 * The parameter names with and without weight decay, in order (for display
 * and tests): the official recipe decays the matrices and conv kernels, not
 * biases, norms, pos_embed or cls_token.
 *
 * @example
 * ```ts
 * import { decayGroups, initBackend, LvVit } from "tokenlab";
 * await initBackend();
 * const model = LvVit.create({ imgSize: 32, patchSize: 4, embedDim: 32,
 *   depth: 1, numHeads: 2, stemChannels: 8, numClasses: 10 });
 * const groups = decayGroups(model.spec.filter((p) => p.kind === "param").map(
 *   (p) => ({ name: p.name, variable: model.state.get(p.name)!, decay: p.decay }),
 * ));
 * console.log(groups.noDecay.includes("pos_embed")); // true
 * model.dispose();
 * ```
 */
export function decayGroups(
  params: readonly ParamEntry[],
): { decay: string[]; noDecay: string[] } {
  return {
    decay: params.filter((p) => p.decay).map((p) => p.name),
    noDecay: params.filter((p) => !p.decay).map((p) => p.name),
  };
}
