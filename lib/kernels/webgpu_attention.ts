/**
 * Fused multi-head self-attention for the WebGPU backend, forward and
 * backward, in WGSL: the same kernel names, inputs and outputs as the wasm
 * ones (`FUSED_ATTENTION` and `FUSED_ATTENTION_GRAD` of
 * `lib/kernels/wasm_attention.ts`), so `attentionCore` in `lib/ops.ts`
 * takes the fused path on both.
 *
 * tfjs runs the attention as a transpose, a split, two batched products, a
 * softmax (itself three kernels) and another transpose, and autodiff doubles
 * that, each a dispatch writing a full tensor. Here q, k and v are read where
 * the qkv projection left them ([B, N, 3, H, hd]) and every gradient is
 * written in that layout:
 * - forward, one dispatch: a workgroup per (image, head, query row) holds
 *   the row of scores in workgroup memory, takes its max and sum by
 *   workgroup reductions, writes the probabilities [B, H, N, N] once (the
 *   backward pass reads them) and the row's output with the heads merged;
 * - backward, two dispatches: a workgroup per query row computes
 *   dP = dO v^T and writes dS = scale P (dP - rowsum(P dP)) [B, H, N, N];
 *   then a workgroup per token row n writes dq_n = dS[n, :] k,
 *   dk_n = dS[:, n]^T q and dv_n = P[:, n]^T dO into dqkv.
 *
 * Limits: a head's width hd at most {@linkcode WEBGPU_ATTENTION_MAX_HEAD}
 * (one thread per channel), and at most
 * {@linkcode WEBGPU_ATTENTION_MAX_TOKENS} tokens (a row of scores in
 * workgroup memory, within WebGPU's guaranteed 16 KiB).
 *
 * This module imports tfjs directly (a kernel module is a leaf).
 *
 * @module
 */

import {
  type KernelFunc,
  registerWebGpuKernels,
  runWgsl,
  type TensorInfo,
  uniformWords,
  type WebGpuBackend,
  workgroupsFor,
} from "./webgpu_program.ts";

// The names of wasm_attention.ts's FUSED_ATTENTION and FUSED_ATTENTION_GRAD,
// spelled here because that module imports the kit's tf (a kernel module
// is a leaf); tests/webgpu_attention_test.ts checks that they agree.
const FORWARD = "TokenlabFusedAttention";
const BACKWARD = "TokenlabFusedAttentionGrad";

/** Threads per workgroup (one per channel of a head, so hd <= WG). */
const WG = 128;

/** Widest head the kernels take (one thread per channel). */
export const WEBGPU_ATTENTION_MAX_HEAD = WG;

/** Most tokens the kernels take (a row of scores in workgroup memory). */
export const WEBGPU_ATTENTION_MAX_TOKENS = 3072;

interface Args {
  inputs: Record<string, TensorInfo>;
  backend: unknown;
  attrs?: Record<string, unknown>;
}

const BUILTINS = `@builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32`;

const UNIFORMS = `struct U { rows: u32, N: u32, H: u32, hd: u32, scale: f32 }`;

// A workgroup per row r = (b H + h) N + n (see workgroupsFor); the early
// return depends on the workgroup only, so the barriers after it stay in
// uniform control flow. `base` is q's channel 0 of token 0 of (b, h).
const ROW = `let r = wid.y * nwg.x + wid.x;
  if (r >= u.rows) { return; }
  let n = r % u.N;
  let bh = r / u.N;
  let h = bh % u.H;
  let b = bh / u.H;
  let D = u.H * u.hd;
  let stride = 3u * D;
  let base = b * u.N * stride + h * u.hd;
  let prow = r * u.N;`;

// Threads split as (channel c, stripe st) for a sum over tokens: stripe st
// takes tokens st, st + stripes, ...; its partial sums meet in `red`.
const STRIPES = `let stripes = ${WG}u / u.hd;
  let c = lid % u.hd;
  let st = lid / u.hd;`;

/** Workgroup-wide max and sum through `red` (every thread must call them). */
const REDUCE = `
var<workgroup> red: array<f32, ${WG}>;
fn reduce_max(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) { red[lid] = max(red[lid], red[lid + s]); }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier();
  return total;
}
fn reduce_sum(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) { red[lid] = red[lid] + red[lid + s]; }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier();
  return total;
}`;

/** The forward shader, its row of scores `cap` floats long. */
const forwardCode = (cap: number) => `
${UNIFORMS}
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read_write> probs: array<f32>;
@group(0) @binding(2) var<storage, read> qkv: array<f32>;
@group(0) @binding(3) var<uniform> u: U;
var<workgroup> row: array<f32, ${cap}>;
var<workgroup> qs: array<f32, ${WG}>;
${REDUCE}
@compute @workgroup_size(${WG})
fn main(${BUILTINS}) {
  ${ROW}
  // The scale goes on q, as in attentionComposite.
  if (lid < u.hd) { qs[lid] = qkv[base + n * stride + lid] * u.scale; }
  workgroupBarrier();
  // Each thread owns tokens lid, lid + WG, ... of the row until P v.
  var m = -3.4028234e38;
  for (var j = lid; j < u.N; j += ${WG}u) {
    let k = base + D + j * stride;
    var s = 0.0;
    for (var i = 0u; i < u.hd; i++) { s += qs[i] * qkv[k + i]; }
    row[j] = s;
    m = max(m, s);
  }
  let mx = reduce_max(m, lid);
  var sum = 0.0;
  for (var j = lid; j < u.N; j += ${WG}u) {
    let e = exp(row[j] - mx);
    row[j] = e;
    sum += e;
  }
  let inv = 1.0 / reduce_sum(sum, lid);
  for (var j = lid; j < u.N; j += ${WG}u) {
    let p = row[j] * inv;
    row[j] = p;
    probs[prow + j] = p;
  }
  workgroupBarrier();
  ${STRIPES}
  var acc = 0.0;
  if (st < stripes) {
    for (var j = st; j < u.N; j += stripes) {
      acc += row[j] * qkv[base + 2u * D + j * stride + c];
    }
  }
  red[lid] = acc;
  workgroupBarrier();
  if (lid < u.hd) {
    var o = 0.0;
    for (var s = 0u; s < stripes; s++) { o += red[s * u.hd + lid]; }
    out[(b * u.N + n) * D + h * u.hd + lid] = o;
  }
}`;

/** The first backward shader (dS per query row), `cap` as the forward's. */
const scoresGradCode = (cap: number) => `
${UNIFORMS}
@group(0) @binding(0) var<storage, read_write> ds: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> qkv: array<f32>;
@group(0) @binding(3) var<storage, read> probs: array<f32>;
@group(0) @binding(4) var<uniform> u: U;
var<workgroup> row: array<f32, ${cap}>;
var<workgroup> gs: array<f32, ${WG}>;
${REDUCE}
@compute @workgroup_size(${WG})
fn main(${BUILTINS}) {
  ${ROW}
  if (lid < u.hd) { gs[lid] = dy[(b * u.N + n) * D + h * u.hd + lid]; }
  workgroupBarrier();
  var t = 0.0;
  for (var j = lid; j < u.N; j += ${WG}u) {
    let v = base + 2u * D + j * stride;
    var dp = 0.0;
    for (var i = 0u; i < u.hd; i++) { dp += gs[i] * qkv[v + i]; }
    row[j] = dp;
    t += dp * probs[prow + j];
  }
  let rs = reduce_sum(t, lid);
  for (var j = lid; j < u.N; j += ${WG}u) {
    ds[prow + j] = probs[prow + j] * (row[j] - rs) * u.scale;
  }
}`;

// The second backward shader: row r's token n gets dq_n = sum_j dS[n, j] k_j,
// dk_n = sum_j dS[j, n] q_j and dv_n = sum_j P[j, n] dO_j.
const QKV_GRAD = `
${UNIFORMS}
@group(0) @binding(0) var<storage, read_write> dqkv: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> qkv: array<f32>;
@group(0) @binding(3) var<storage, read> probs: array<f32>;
@group(0) @binding(4) var<storage, read> ds: array<f32>;
@group(0) @binding(5) var<uniform> u: U;
var<workgroup> red: array<f32, ${3 * WG}>;
@compute @workgroup_size(${WG})
fn main(${BUILTINS}) {
  ${ROW}
  ${STRIPES}
  let col = bh * u.N * u.N + n;
  var aq = 0.0;
  var ak = 0.0;
  var av = 0.0;
  if (st < stripes) {
    for (var j = st; j < u.N; j += stripes) {
      let x = base + j * stride + c;
      aq += ds[prow + j] * qkv[x + D];
      ak += ds[col + j * u.N] * qkv[x];
      av += probs[col + j * u.N] * dy[(b * u.N + j) * D + h * u.hd + c];
    }
  }
  red[lid] = aq;
  red[${WG}u + lid] = ak;
  red[${2 * WG}u + lid] = av;
  workgroupBarrier();
  if (lid < u.hd) {
    var gq = 0.0;
    var gk = 0.0;
    var gv = 0.0;
    for (var s = 0u; s < stripes; s++) {
      gq += red[s * u.hd + lid];
      gk += red[${WG}u + s * u.hd + lid];
      gv += red[${2 * WG}u + s * u.hd + lid];
    }
    let o = base + n * stride + lid;
    dqkv[o] = gq;
    dqkv[o + D] = gk;
    dqkv[o + 2u * D] = gv;
  }
}`;

interface Dims {
  B: number;
  N: number;
  H: number;
  hd: number;
  /** Floats of the workgroup's row of scores (N rounded up, few variants). */
  cap: number;
}

/** [B, N, 3D] and heads -> the dimensions, checked against the limits. */
function dims(qkv: TensorInfo, heads: number): Dims {
  const [B, N, D3] = qkv.shape;
  const hd = D3 / 3 / heads;
  if (
    qkv.shape.length !== 3 || qkv.dtype !== "float32" ||
    !Number.isInteger(hd) || hd < 1
  ) {
    throw new Error(
      `WebGPU fused attention: expected float32 qkv [B, N, 3 * D] with D divisible by ${heads} heads, found ${qkv.dtype} [${qkv.shape}]`,
    );
  }
  if (hd > WEBGPU_ATTENTION_MAX_HEAD || N > WEBGPU_ATTENTION_MAX_TOKENS) {
    throw new Error(
      `WebGPU fused attention: expected heads of at most ${WEBGPU_ATTENTION_MAX_HEAD} channels and at most ${WEBGPU_ATTENTION_MAX_TOKENS} tokens, found ${hd} channels and ${N} tokens; use attentionComposite for these shapes`,
    );
  }
  return { B, N, H: heads, hd, cap: Math.max(256, Math.ceil(N / 256) * 256) };
}

function uniformsOf({ B, N, H, hd }: Dims): ArrayBuffer {
  return uniformWords([
    ["u", B * H * N],
    ["u", N],
    ["u", H],
    ["u", hd],
    ["f", hd ** -0.5],
  ]);
}

function headsOf(args: Args): number {
  return Number(args.attrs?.heads);
}

function forwardKernel(args: Args): TensorInfo[] {
  const { qkv } = args.inputs;
  const d = dims(qkv, headsOf(args));
  const { B, N, H, hd } = d;
  return runWgsl(args.backend as WebGpuBackend, {
    key: `tokenlab.attention.${d.cap}`,
    code: forwardCode(d.cap),
    inputs: [qkv],
    outputs: [{ shape: [B, N, H * hd] }, { shape: [B, H, N, N] }],
    uniforms: uniformsOf(d),
    workgroups: workgroupsFor(B * H * N, 1),
  });
}

function backwardKernel(args: Args): TensorInfo {
  const { dy, qkv, probs } = args.inputs;
  const backend = args.backend as WebGpuBackend;
  const d = dims(qkv, headsOf(args));
  const { B, N, H } = d;
  const uniforms = uniformsOf(d);
  const workgroups = workgroupsFor(B * H * N, 1);
  const [ds] = runWgsl(backend, {
    key: `tokenlab.attention_grad_scores.${d.cap}`,
    code: scoresGradCode(d.cap),
    inputs: [dy, qkv, probs],
    outputs: [{ shape: [B, H, N, N] }],
    uniforms,
    workgroups,
  });
  const [dqkv] = runWgsl(backend, {
    key: "tokenlab.attention_grad_qkv",
    code: QKV_GRAD,
    inputs: [dy, qkv, probs, ds],
    outputs: [{ shape: qkv.shape }],
    uniforms,
    workgroups,
  });
  // The queue owns ds until the submit (runWgsl marks it so).
  backend.disposeData(ds.dataId);
  return dqkv;
}

/**
 * Registers the fused attention and its gradient for the WebGPU backend
 * (idempotent) and returns their names.
 */
export function registerWebGpuAttention(): string[] {
  return registerWebGpuKernels([
    [FORWARD, forwardKernel as unknown as KernelFunc],
    [BACKWARD, backwardKernel as unknown as KernelFunc],
  ]);
}
