/**
 * One AdamW step of one parameter in one WGSL dispatch: the kernel
 * "TokenlabAdamW" of the WebGPU backend, used by `AdamW` in
 * `lib/train/optimizer.ts`.
 *
 * tfjs composes the step from about twelve elementwise kernels, each a
 * dispatch writing a full temporary, and on WebGPU the optimizer packed the
 * parameters into flat buckets (concat, then split) to keep the count down.
 * Here every thread reads g, p, m and v once and writes the new p, m and v,
 * with the composite's operations in the composite's order (float32
 * throughout, the scalars as float32 uniforms), so each parameter is its own
 * bucket and a step is one dispatch per parameter, without copies.
 *
 * @module
 */

import {
  type KernelArgs as Args,
  registerWebGpuKernels,
  runWgsl,
  sizeOf as size,
  type TensorInfo,
} from "./webgpu_program.ts";
import * as wgsl from "./_wgsl.ts";
import { kernelsHere } from "./_registered.ts";

/** Name of the fused AdamW kernel (inputs g, p, m, v; outputs p, m, v). */
export const ADAMW_KERNEL = "TokenlabAdamW";

/**
 * The scalars of one step (attributes of {@linkcode ADAMW_KERNEL}), each
 * computed in float64 by the caller and rounded to float32 in the uniforms,
 * as tfjs rounds a JavaScript number multiplied into a float32 tensor.
 */
export interface AdamWStepAttrs {
  /** 1 - lr * weightDecay for a decayed parameter, 1 for a plain one. */
  decayFactor: number;
  /** b1. */
  beta1: number;
  /** 1 - b1. */
  oneMinusBeta1: number;
  /** b2. */
  beta2: number;
  /** 1 - b2. */
  oneMinusBeta2: number;
  /** -lr / (1 - b1^t). */
  negStepSize: number;
  /** sqrt(1 - b2^t). */
  bc2Sqrt: number;
  /** Denominator epsilon. */
  eps: number;
}

const WG = 256;

// The composite's order: p*decay; m*b1 + g*(1-b1); v*b2 + (g*(1-b2))*g;
// sqrt(v)/bc2 + eps; p + (m*(-stepSize))/denom. A plain parameter gets
// decay 1, and p * 1 is exact.
const ADAMW = wgsl.shader({
  uniforms: `decay: f32, b1: f32, omb1: f32, b2: f32, omb2: f32,
  neg_step: f32, bc2: f32, eps: f32, n: u32,`,
  outputs: ["p_out", "m_out", "v_out"],
  inputs: ["g", "p", "m", "v"],
  main: wgsl.elementwiseMain(
    WG,
    `let gi = g[i];
  let pd = p[i] * u.decay;
  let mi = m[i] * u.b1 + gi * u.omb1;
  let vi = v[i] * u.b2 + (gi * u.omb2) * gi;
  let denom = sqrt(vi) / u.bc2 + u.eps;
  p_out[i] = pd + (mi * u.neg_step) / denom;
  m_out[i] = mi;
  v_out[i] = vi;`,
  ),
});

function adamwKernel(args: Args): TensorInfo[] {
  const { g, p, m, v } = args.inputs;
  const n = size(p);
  for (const [name, t] of [["g", g], ["m", m], ["v", v]] as const) {
    if (size(t) !== n || t.dtype !== "float32" || p.dtype !== "float32") {
      throw new Error(
        `${ADAMW_KERNEL}: expected float32 g, m and v of the parameter's ${n} elements, found ${name} ${t.dtype} [${t.shape}] (p ${p.dtype}); pass the parameter's own gradient and moments`,
      );
    }
  }
  const a = (args.attrs ?? {}) as unknown as AdamWStepAttrs;
  return runWgsl(args.backend, {
    key: "tokenlab.adamw",
    code: ADAMW,
    inputs: [g, p, m, v],
    outputs: [{ shape: p.shape }, { shape: m.shape }, { shape: v.shape }],
    uniforms: wgsl.uniformWords([
      ["f", a.decayFactor],
      ["f", a.beta1],
      ["f", a.oneMinusBeta1],
      ["f", a.beta2],
      ["f", a.oneMinusBeta2],
      ["f", a.negStepSize],
      ["f", a.bc2Sqrt],
      ["f", a.eps],
      ["u", n],
    ]),
    workgroups: wgsl.workgroupsFor(n, WG),
  });
}

/**
 * Registers {@linkcode ADAMW_KERNEL} for the WebGPU backend (idempotent) and
 * returns its name.
 */
export function registerWebGpuAdamW(): string[] {
  return registerWebGpuKernels([
    [ADAMW_KERNEL, adamwKernel],
  ]);
}

/** Whether the running backend has {@linkcode ADAMW_KERNEL}. */
export function hasFusedAdamW(): boolean {
  return kernelsHere(ADAMW_KERNEL);
}
