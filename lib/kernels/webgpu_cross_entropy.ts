/**
 * Soft-target cross-entropy per row for the WebGPU backend, in WGSL: for
 * logits x [R, C] and targets t [R, C], loss_r = -sum_c t_c log softmax(x)_c,
 * forward and backward one dispatch each. `softTargetCrossEntropy` in
 * `lib/losses/cross_entropy.ts` takes this path on WebGPU.
 *
 * tfjs composes the loss from logSoftmax (max, subtract, exp, sum, log,
 * subtract), a product with the targets and a row sum, and autodiff doubles
 * that, each a dispatch, most writing a full [R, C] tensor. Here:
 * - forward: one workgroup per row, looping over the row (any C): the max,
 *   then sum exp(x - max), sum t and sum t (x - max) in one pass; loss =
 *   sum(t) lse - sum t (x - max), lse = log sum exp(x - max). For targets
 *   >= 0 both terms are >= 0, so nothing cancels. It also writes the row's
 *   max, lse and sum t for the backward pass.
 * - backward: elementwise, from those statistics: with ls = x - max - lse
 *   (log softmax) and g the row's upstream gradient,
 *   dx = (exp(ls) sum(t) - t) g (exact for any target sum, also != 1) and
 *   dt = -ls g, both in the same dispatch.
 *
 * The target gradient: the callers' targets carry no gradient into a model
 * (smoothed labels, token labels, MixToken blends of them are built from
 * data; TL-Align's aligned label is cut with stopGradient), but under
 * TL-Align the tape still reaches the targets (through the stopGradient
 * node), so tfjs asks for their gradient. It is the exact one, -log_softmax
 * times dy, written in the backward dispatch: no extra dispatch, and the
 * same memory traffic as the zeros tfjs would otherwise need.
 *
 * @module
 */

import * as tfjs from "@tensorflow/tfjs";
import {
  type KernelArgs as Args,
  registerWebGpuKernels,
  runWgsl,
  type TensorInfo,
} from "./webgpu_program.ts";
import * as wgsl from "./_wgsl.ts";
import { kernelsHere } from "./_registered.ts";

/** Kernel names: forward (x, t -> loss [R], stats [R, 3]) and backward. */
export const SOFT_TARGET_CE_KERNELS = {
  forward: "TokenlabSoftTargetCE",
  backward: "TokenlabSoftTargetCEGrad",
} as const;

/** Threads per row of the forward kernel (they loop over longer rows). */
const ROW_WG = 128;
/** Threads per workgroup of the elementwise backward kernel. */
const WG = 256;

/** The row's three sums through `red` (row_max reuses it, lane x). */
const ROW_SUM3 = wgsl.workgroupReduce({
  size: ROW_WG,
  type: "vec3<f32>",
  ops: { row_sum3: "sum" },
});

const FORWARD = wgsl.shader({
  uniforms: "rows: u32, C: u32",
  outputs: ["loss", "stats"],
  inputs: ["x", "t"],
  decls: [
    ROW_SUM3,
    `fn row_max(v: f32, lid: u32) -> f32 {
  red[lid].x = v;
  workgroupBarrier();
  for (var s = ${ROW_WG / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) { red[lid].x = max(red[lid].x, red[lid + s].x); }
    workgroupBarrier();
  }
  let m = red[0].x;
  workgroupBarrier();
  return m;
}`,
  ],
  main: wgsl.rowMain(
    ROW_WG,
    `var mx = -3.402823e38;
  for (var c = lid; c < u.C; c += ${ROW_WG}u) { mx = max(mx, x[base + c]); }
  let m = row_max(mx, lid);
  // (sum exp(x - m), sum t, sum t (x - m))
  var acc = vec3<f32>(0.0);
  for (var c = lid; c < u.C; c += ${ROW_WG}u) {
    let d = x[base + c] - m;
    let tc = t[base + c];
    acc += vec3<f32>(exp(d), tc, tc * d);
  }
  let s = row_sum3(acc, lid);
  if (lid == 0u) {
    let lse = log(s.x);
    loss[row] = s.y * lse - s.z;
    stats[row * 3u] = m;
    stats[row * 3u + 1u] = lse;
    stats[row * 3u + 2u] = s.y;
  }`,
  ),
});

const BACKWARD = wgsl.shader({
  uniforms: "n: u32, C: u32",
  outputs: ["dx", "dt"],
  inputs: ["dy", "x", "t", "stats"],
  main: wgsl.elementwiseMain(
    WG,
    `let row = i / u.C;
  let ls = (x[i] - stats[row * 3u]) - stats[row * 3u + 1u];
  let g = dy[row];
  dx[i] = (exp(ls) * stats[row * 3u + 2u] - t[i]) * g;
  dt[i] = -ls * g;`,
  ),
});

function rowsOf(x: TensorInfo, what: string): { rows: number; C: number } {
  if (x.shape.length !== 2 || x.dtype !== "float32") {
    throw new Error(
      `${what}: expected float32 logits [rows, classes], found ${x.dtype} [${x.shape}]; reshape to rows first`,
    );
  }
  return { rows: x.shape[0], C: x.shape[1] };
}

function forwardKernel(args: Args): TensorInfo[] {
  const { x, t } = args.inputs;
  const { rows, C } = rowsOf(x, SOFT_TARGET_CE_KERNELS.forward);
  return runWgsl(args.backend, {
    key: "tokenlab.soft_target_ce",
    code: FORWARD,
    inputs: [x, t],
    outputs: [{ shape: [rows] }, { shape: [rows, 3] }],
    uniforms: wgsl.uniformWords([["u", rows], ["u", C]]),
    workgroups: wgsl.workgroupsFor(rows, 1),
  });
}

function backwardKernel(args: Args): TensorInfo[] {
  const { dy, x, t, stats } = args.inputs;
  const { rows, C } = rowsOf(x, SOFT_TARGET_CE_KERNELS.backward);
  return runWgsl(args.backend, {
    key: "tokenlab.soft_target_ce_grad",
    code: BACKWARD,
    inputs: [dy, x, t, stats],
    outputs: [{ shape: x.shape }, { shape: x.shape }],
    uniforms: wgsl.uniformWords([["u", rows * C], ["u", C]]),
    workgroups: wgsl.workgroupsFor(rows * C, WG),
  });
}

/**
 * Registers the soft-target cross-entropy kernels for the WebGPU backend
 * (idempotent) and returns their names.
 */
export function registerWebGpuCrossEntropy(): string[] {
  return registerWebGpuKernels([
    [SOFT_TARGET_CE_KERNELS.forward, forwardKernel],
    [SOFT_TARGET_CE_KERNELS.backward, backwardKernel],
  ]);
}

/** Whether the running backend has the fused soft-target cross-entropy. */
export function hasFusedSoftTargetCrossEntropy(): boolean {
  return kernelsHere(
    SOFT_TARGET_CE_KERNELS.forward,
    SOFT_TARGET_CE_KERNELS.backward,
  );
}

const rowsLoss = tfjs.customGrad(
  // customGrad passes the save function after the inputs.
  (...args: (tfjs.Tensor | tfjs.GradSaveFunc)[]) => {
    const [x, t, save] = args as [
      tfjs.Tensor2D,
      tfjs.Tensor2D,
      tfjs.GradSaveFunc,
    ];
    const [loss, stats] = tfjs.engine().runKernel(
      SOFT_TARGET_CE_KERNELS.forward,
      { x, t },
    ) as tfjs.Tensor[];
    save([x, t, stats]);
    return {
      value: loss as tfjs.Tensor1D,
      gradFunc: (dy: tfjs.Tensor, saved: tfjs.Tensor[]) => {
        const [sx, st, sstats] = saved;
        return tfjs.engine().runKernel(
          SOFT_TARGET_CE_KERNELS.backward,
          { dy, x: sx, t: st, stats: sstats },
        ) as tfjs.Tensor[];
      },
    };
  },
);

/**
 * Per-row soft-target cross-entropy -sum_c t_c log softmax(x)_c of logits
 * and targets [R, C] (float32, same shape), differentiable in both, on the
 * fused WebGPU kernels; returns [R]. The targets' gradient is the exact
 * -log_softmax(x) dy (see the module notes).
 *
 * @throws {Error} when the WebGPU kernels are not there, or for inputs that
 *   are not two float32 [R, C] tensors of one shape
 */
export function fusedSoftTargetCrossEntropyRows(
  logits: tfjs.Tensor,
  targets: tfjs.Tensor,
): tfjs.Tensor1D {
  if (!hasFusedSoftTargetCrossEntropy()) {
    throw new Error(
      `the fused soft-target cross-entropy runs on webgpu, found the ${tfjs.getBackend()} backend; call initBackend({ backend: "webgpu" }) or use softTargetCrossEntropy`,
    );
  }
  const ok = (t: tfjs.Tensor) => t.rank === 2 && t.dtype === "float32";
  if (
    !ok(logits) || !ok(targets) || logits.shape[0] !== targets.shape[0] ||
    logits.shape[1] !== targets.shape[1] || logits.size === 0
  ) {
    throw new Error(
      `fusedSoftTargetCrossEntropyRows expects float32 logits and targets of one non-empty shape [rows, classes], found logits ${logits.dtype} [${logits.shape}] and targets ${targets.dtype} [${targets.shape}]; reshape to rows first`,
    );
  }
  return rowsLoss(logits, targets) as tfjs.Tensor1D;
}
