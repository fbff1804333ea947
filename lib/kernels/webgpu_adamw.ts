/**
 * AdamW steps of several parameters in one WGSL dispatch: the kernel
 * "TokenlabAdamW" of the WebGPU backend, used by `AdamW` in
 * `lib/train/optimizer.ts`.
 *
 * tfjs composes the step from about twelve elementwise kernels, each a
 * dispatch writing a full temporary, and on WebGPU the optimizer packed the
 * parameters into flat buckets (concat, then split) to keep the count down.
 * Here every thread reads g, p, m and v of one element once and writes the
 * new p, m and v, with the composite's operations in the composite's order
 * (float32 throughout, the scalars as float32 uniforms), without copies.
 *
 * One dispatch steps up to {@linkcode adamwParamsPerDispatch} parameters:
 * each takes 7 storage buffers (g, p, m, v read; p, m, v written), and the
 * device has as many per shader stage as `webgpu_device.ts` got from the
 * adapter (8 by WebGPU's default, hence one parameter; 32 on lavapipe, 4;
 * up to 16 where the adapter allows). The dispatch's workgroups are dealt to
 * the parameters in order, each parameter its own run of them, so a
 * workgroup branches once, uniformly, to its parameter's buffers.
 *
 * @module
 */

import {
  type KernelArgs as Args,
  registerWebGpuKernels,
  runWgsl,
  sizeOf as size,
  type TensorInfo,
  type WebGpuBackend,
} from "./webgpu_program.ts";
import * as tfjs from "@tensorflow/tfjs";
import * as wgsl from "./_wgsl.ts";
import { kernelsHere } from "./_registered.ts";
import { STORAGE_BUFFERS_WANTED } from "./webgpu_device.ts";

/**
 * Name of the fused AdamW kernel: inputs `g0, p0, m0, v0, g1, p1, ...`
 * (parameter k's gradient, value and moments); outputs the new
 * `[p0, m0, v0, p1, m1, v1, ...]`.
 */
export const ADAMW_KERNEL = "TokenlabAdamW";

/** Storage buffers one parameter's step binds (g, p, m, v; p, m, v). */
export const BUFFERS_PER_PARAM = 7;

/**
 * The scalars of one step (attributes of {@linkcode ADAMW_KERNEL}), each
 * computed in float64 by the caller and rounded to float32 in the uniforms,
 * as tfjs rounds a JavaScript number multiplied into a float32 tensor.
 */
export interface AdamWStepAttrs {
  /**
   * Per parameter, in the inputs' order: 1 - lr * weightDecay for a decayed
   * one, 1 for a plain one.
   */
  decayFactors: number[];
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

/**
 * How many parameters one dispatch steps on a device with `storageBuffers`
 * storage buffers per shader stage: 7 each, at least 1, at most 16.
 */
export function adamwParamsPerDispatch(storageBuffers: number): number {
  return Math.max(
    1,
    Math.min(
      Math.floor(storageBuffers / BUFFERS_PER_PARAM),
      STORAGE_BUFFERS_WANTED / BUFFERS_PER_PARAM,
    ),
  );
}

/**
 * {@linkcode adamwParamsPerDispatch} on the running backend's device (1 when
 * the running backend is not WebGPU).
 */
export function adamwParamsPerDispatchHere(): number {
  if (tfjs.getBackend() !== "webgpu") return 1;
  const backend = tfjs.backend() as unknown as WebGpuBackend;
  return adamwParamsPerDispatch(
    backend.device.limits.maxStorageBuffersPerShaderStage,
  );
}

// The composite's order: p*decay; m*b1 + g*(1-b1); v*b2 + (g*(1-b2))*g;
// sqrt(v)/bc2 + eps; p + (m*(-stepSize))/denom. A plain parameter gets
// decay 1, and p * 1 is exact.
function adamwShader(k: number): string {
  const params = Array.from({ length: k }, (_, j) => j);
  const step = (j: number) =>
    `let gi = g${j}[i];
      let pd = p${j}[i] * u.decay${j};
      let mi = m${j}[i] * u.b1 + gi * u.omb1;
      let vi = v${j}[i] * u.b2 + (gi * u.omb2) * gi;
      let denom = sqrt(vi) / u.bc2 + u.eps;
      p_out${j}[i] = pd + (mi * u.neg_step) / denom;
      m_out${j}[i] = mi;
      v_out${j}[i] = vi;`;
  // Parameter j owns the workgroups [end(j-1), end(j)).
  const branches = params.map((j) => {
    const first = j === 0 ? "0u" : `u.end${j - 1}`;
    return `if (w < u.end${j}) {
    let i = (w - ${first}) * ${WG}u + lid;
    if (i < u.n${j}) {
      ${step(j)}
    }
    return;
  }`;
  });
  return wgsl.shader({
    uniforms: `b1: f32, omb1: f32, b2: f32, omb2: f32, neg_step: f32,
  bc2: f32, eps: f32, ${
      params.map((j) => `decay${j}: f32, n${j}: u32, end${j}: u32,`).join(" ")
    }`,
    outputs: params.flatMap((j) => [`p_out${j}`, `m_out${j}`, `v_out${j}`]),
    inputs: params.flatMap((j) => [`g${j}`, `p${j}`, `m${j}`, `v${j}`]),
    main: wgsl.flatMain(
      WG,
      `let w = ${wgsl.WORKGROUP_INDEX};
  ${branches.join("\n  ")}`,
    ),
  });
}

function adamwKernel(args: Args): TensorInfo[] {
  const a = (args.attrs ?? {}) as unknown as AdamWStepAttrs;
  const k = a.decayFactors?.length ?? 0;
  if (k === 0) {
    throw new Error(
      `${ADAMW_KERNEL}: expected decayFactors with one factor per parameter, found ${
        a.decayFactors === undefined ? "none" : "an empty list"
      }; pass a parameter's g, p, m and v and its decay factor`,
    );
  }
  const inputs: TensorInfo[] = [];
  const fields: [("u" | "f"), number][] = [
    ["f", a.beta1],
    ["f", a.oneMinusBeta1],
    ["f", a.beta2],
    ["f", a.oneMinusBeta2],
    ["f", a.negStepSize],
    ["f", a.bc2Sqrt],
    ["f", a.eps],
  ];
  const outputs: { shape: readonly number[] }[] = [];
  let groups = 0;
  for (let j = 0; j < k; j++) {
    const [g, p, m, v] = ["g", "p", "m", "v"].map((x) => args.inputs[x + j]);
    const n = p === undefined ? 0 : size(p);
    for (const [name, t] of [["g", g], ["m", m], ["v", v]] as const) {
      if (
        t === undefined || size(t) !== n || t.dtype !== "float32" ||
        p.dtype !== "float32"
      ) {
        throw new Error(
          `${ADAMW_KERNEL}: expected float32 g${j}, p${j}, m${j} and v${j} of one parameter's elements for each of the ${k} decay factors, found ${name}${j} ${
            t === undefined ? "missing" : `${t.dtype} [${t.shape}]`
          } (p${j} ${
            p === undefined ? "missing" : `${p.dtype} [${p.shape}]`
          }); pass each parameter's own gradient and moments`,
        );
      }
    }
    inputs.push(g, p, m, v);
    outputs.push({ shape: p.shape }, { shape: m.shape }, { shape: v.shape });
    groups += Math.max(1, Math.ceil(n / WG));
    fields.push(["f", a.decayFactors[j]], ["u", n], ["u", groups]);
  }
  return runWgsl(args.backend, {
    key: `tokenlab.adamw.${k}`,
    code: () => adamwShader(k),
    inputs,
    outputs,
    uniforms: wgsl.uniformWords(fields),
    workgroups: wgsl.workgroupsFor(groups * WG, WG),
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
