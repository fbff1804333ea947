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
 * - forward, one dispatch: a workgroup per (image, head, R query rows;
 *   see {@linkcode attentionRowsPerGroup}) holds the rows of scores in
 *   workgroup memory, each read of k and v serving all R, takes their max
 *   and sum by workgroup reductions, writes the probabilities [B, H, N, N]
 *   once (the backward pass reads them) and the rows' output with the
 *   heads merged;
 * - backward, two dispatches: a workgroup per R query rows computes
 *   dP = dO v^T and writes dS = scale P (dP - rowsum(P dP)) [B, H, N, N];
 *   then a workgroup per token row n writes dq_n = dS[n, :] k,
 *   dk_n = dS[:, n]^T q and dv_n = P[:, n]^T dO into dqkv.
 *
 * Heads whose width is a multiple of 4 are read and written as vec4.
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

import { ATTENTION_KERNEL_NAMES, qkvDims } from "./_attention_layout.ts";
import {
  type KernelArgs as Args,
  registerWebGpuKernels,
  runWgsl,
  type TensorInfo,
} from "./webgpu_program.ts";
import * as wgsl from "./_wgsl.ts";

// wasm_attention.ts's FUSED_ATTENTION and FUSED_ATTENTION_GRAD.
const { forward: FORWARD, backward: BACKWARD } = ATTENTION_KERNEL_NAMES;

/** Threads per workgroup (one per channel of a head, so hd <= WG). */
const WG = 128;

/** Widest head the kernels take (one thread per channel). */
export const WEBGPU_ATTENTION_MAX_HEAD = WG;

/** Most tokens the kernels take (a row of scores in workgroup memory). */
export const WEBGPU_ATTENTION_MAX_TOKENS = 3072;

const UNIFORMS = "N: u32, H: u32, hd: u32, scale: f32, G: u32, groups: u32";

/**
 * Query rows the forward gives one workgroup, for a row of scores `cap`
 * floats long: the rows share every read of k and v (each row alone would
 * read its head's whole k and v), and their scores stay within 8 KiB of
 * workgroup memory (4 rows up to 512 tokens, 2 up to 1024, else 1).
 */
export function attentionRowsPerGroup(cap: number): number {
  return Math.max(1, Math.min(4, Math.floor(2048 / cap)));
}

/**
 * The shaders come in two widths: `w` 4 reads q, k, v, dO and writes the
 * outputs as vec4 (when hd is a multiple of 4, so every head starts on a
 * 16-byte boundary), `w` 1 as f32 for any hd. `T` is the element type and
 * every index into those arrays counts elements of T.
 */
const typeOf = (w: number) => w === 4 ? "vec4<f32>" : "f32";

/** A shader of width `w`: `T` aliased, then the module of `spec`. */
const shaderOf = (w: number, spec: Parameters<typeof wgsl.shader>[0]) =>
  `alias T = ${typeOf(w)};${wgsl.shader(spec)}`;

const dotOf = (w: number) =>
  w === 4
    ? "fn dotw(a: vec4<f32>, b: vec4<f32>) -> f32 { return dot(a, b); }"
    : "fn dotw(a: f32, b: f32) -> f32 { return a * b; }";

// Threads split as (element c of the head, stripe st) for a sum over
// tokens: stripe st takes tokens st, st + stripes, ...; the stripes'
// partial sums then meet in workgroup memory.
const STRIPES = `let stripes = ${WG}u / hw;
  let c = lid % hw;
  let st = lid / hw;`;

// Workgroup g (see wgsl.workgroupsFor) takes query rows n0 .. n0 + R - 1
// of head (b, h), with bh = g / G and n0 = (g % G) R (G = ceil(N / R)); the
// early return depends on the workgroup only, so the barriers after it stay
// in uniform control flow. `base` is q's channel 0 of token 0 of (b, h),
// `hw` a head's width, `Dw` the model width and `stride` a token's qkv, all
// in elements of T.
const groupRows = (w: number, R: number) =>
  `let g = ${wgsl.WORKGROUP_INDEX};
  if (g >= u.groups) { return; }
  let bh = g / u.G;
  let n0 = (g % u.G) * ${R}u;
  let h = bh % u.H;
  let b = bh / u.H;
  let hw = u.hd / ${w}u;
  let Dw = u.H * hw;
  let stride = 3u * Dw;
  let base = b * u.N * stride + h * hw;`;

/**
 * Workgroup-wide max or sum of R values per thread at once, through `red`
 * (R · WG floats); every thread must call it.
 */
const reduceRows = (R: number) => `
var<workgroup> red: array<f32, ${R * WG}>;
fn reduce_rows(v: array<f32, ${R}>, lid: u32, is_max: bool) -> array<f32, ${R}> {
  for (var t = 0u; t < ${R}u; t++) { red[t * ${WG}u + lid] = v[t]; }
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) {
      for (var t = 0u; t < ${R}u; t++) {
        let a = red[t * ${WG}u + lid];
        let b = red[t * ${WG}u + lid + s];
        red[t * ${WG}u + lid] = select(a + b, max(a, b), is_max);
      }
    }
    workgroupBarrier();
  }
  var out: array<f32, ${R}>;
  for (var t = 0u; t < ${R}u; t++) { out[t] = red[t * ${WG}u]; }
  workgroupBarrier();
  return out;
}`;

/**
 * The forward shader, width `w`, rows of scores `cap` floats long, `R`
 * query rows per workgroup: workgroup g takes rows n0 .. n0 + R - 1 of head
 * (b, h), with bh = g / G and n0 = (g % G) R (G = ceil(N / R)); rows past N
 * compute on zeros and write nothing.
 */
const forwardCode = (w: number, cap: number, R: number) =>
  shaderOf(w, {
    uniforms: UNIFORMS,
    outputs: [["out", "T"], "probs"],
    inputs: [["qkv", "T"]],
    decls: [
      `var<workgroup> row: array<f32, ${R * cap}>;
var<workgroup> qs: array<T, ${R * (WG / w)}>;
var<workgroup> part: array<T, ${WG}>;`,
      reduceRows(R),
      dotOf(w),
    ],
    main: wgsl.flatMain(
      WG,
      `${groupRows(w, R)}
  // The scale goes on q, as in attentionComposite.
  if (lid < hw) {
    for (var t = 0u; t < ${R}u; t++) {
      var q = T(0.0);
      if (n0 + t < u.N) { q = qkv[base + (n0 + t) * stride + lid] * u.scale; }
      qs[t * ${WG / w}u + lid] = q;
    }
  }
  workgroupBarrier();
  // Each thread owns tokens lid, lid + WG, ... of the rows until P v.
  var m: array<f32, ${R}>;
  for (var t = 0u; t < ${R}u; t++) { m[t] = -3.4028234e38; }
  for (var j = lid; j < u.N; j += ${WG}u) {
    let k = base + Dw + j * stride;
    // Zeroed on every token: a var declared in a loop is not reliably
    // zeroed again by every compiler.
    var s: array<f32, ${R}>;
    for (var t = 0u; t < ${R}u; t++) { s[t] = 0.0; }
    for (var i = 0u; i < hw; i++) {
      let kv = qkv[k + i];
      for (var t = 0u; t < ${R}u; t++) {
        s[t] += dotw(qs[t * ${WG / w}u + i], kv);
      }
    }
    for (var t = 0u; t < ${R}u; t++) {
      row[t * ${cap}u + j] = s[t];
      m[t] = max(m[t], s[t]);
    }
  }
  let mx = reduce_rows(m, lid, true);
  var sum: array<f32, ${R}>;
  for (var t = 0u; t < ${R}u; t++) { sum[t] = 0.0; }
  for (var j = lid; j < u.N; j += ${WG}u) {
    for (var t = 0u; t < ${R}u; t++) {
      let e = exp(row[t * ${cap}u + j] - mx[t]);
      row[t * ${cap}u + j] = e;
      sum[t] += e;
    }
  }
  let total = reduce_rows(sum, lid, false);
  for (var t = 0u; t < ${R}u; t++) {
    let n = n0 + t;
    let inv = 1.0 / total[t];
    for (var j = lid; j < u.N; j += ${WG}u) {
      let p = row[t * ${cap}u + j] * inv;
      row[t * ${cap}u + j] = p;
      if (n < u.N) { probs[(bh * u.N + n) * u.N + j] = p; }
    }
  }
  workgroupBarrier();
  ${STRIPES}
  var acc: array<T, ${R}>;
  for (var t = 0u; t < ${R}u; t++) { acc[t] = T(0.0); }
  if (st < stripes) {
    for (var j = st; j < u.N; j += stripes) {
      let vv = qkv[base + 2u * Dw + j * stride + c];
      for (var t = 0u; t < ${R}u; t++) { acc[t] += row[t * ${cap}u + j] * vv; }
    }
  }
  for (var t = 0u; t < ${R}u; t++) {
    part[lid] = acc[t];
    workgroupBarrier();
    let n = n0 + t;
    if (lid < hw && n < u.N) {
      var o = T(0.0);
      for (var s = 0u; s < stripes; s++) { o += part[s * hw + lid]; }
      out[(b * u.N + n) * Dw + h * hw + lid] = o;
    }
    workgroupBarrier();
  }`,
    ),
  });

/**
 * The first backward shader, dS = scale P (dP - rowsum(P dP)) with
 * dP = dO v^T, `R` query rows per workgroup sharing every read of v, laid
 * out as the forward's.
 */
const scoresGradCode = (w: number, cap: number, R: number) =>
  shaderOf(w, {
    uniforms: UNIFORMS,
    outputs: ["ds"],
    inputs: [["dy", "T"], ["qkv", "T"], "probs"],
    decls: [
      `var<workgroup> row: array<f32, ${R * cap}>;
var<workgroup> gs: array<T, ${R * (WG / w)}>;`,
      reduceRows(R),
      dotOf(w),
    ],
    main: wgsl.flatMain(
      WG,
      `${groupRows(w, R)}
  if (lid < hw) {
    for (var t = 0u; t < ${R}u; t++) {
      var gv = T(0.0);
      if (n0 + t < u.N) {
        gv = dy[(b * u.N + n0 + t) * Dw + h * hw + lid];
      }
      gs[t * ${WG / w}u + lid] = gv;
    }
  }
  workgroupBarrier();
  var pdp: array<f32, ${R}>;
  for (var t = 0u; t < ${R}u; t++) { pdp[t] = 0.0; }
  for (var j = lid; j < u.N; j += ${WG}u) {
    let v = base + 2u * Dw + j * stride;
    var dp: array<f32, ${R}>;
    for (var t = 0u; t < ${R}u; t++) { dp[t] = 0.0; }
    for (var i = 0u; i < hw; i++) {
      let vv = qkv[v + i];
      for (var t = 0u; t < ${R}u; t++) {
        dp[t] += dotw(gs[t * ${WG / w}u + i], vv);
      }
    }
    for (var t = 0u; t < ${R}u; t++) {
      row[t * ${cap}u + j] = dp[t];
      if (n0 + t < u.N) {
        pdp[t] += dp[t] * probs[(bh * u.N + n0 + t) * u.N + j];
      }
    }
  }
  let rs = reduce_rows(pdp, lid, false);
  for (var t = 0u; t < ${R}u; t++) {
    let n = n0 + t;
    if (n < u.N) {
      for (var j = lid; j < u.N; j += ${WG}u) {
        let at = (bh * u.N + n) * u.N + j;
        ds[at] = probs[at] * (row[t * ${cap}u + j] - rs[t]) * u.scale;
      }
    }
  }`,
    ),
  });

// The second backward shader: token n gets dq_n = sum_j dS[n, j] k_j,
// dk_n = sum_j dS[j, n] q_j and dv_n = sum_j P[j, n] dO_j; a workgroup
// takes R tokens (as the forward's rows), sharing every read of q, k and dO.
const qkvGradCode = (w: number, R: number) =>
  shaderOf(w, {
    uniforms: UNIFORMS,
    outputs: [["dqkv", "T"]],
    inputs: [["dy", "T"], ["qkv", "T"], "probs", "ds"],
    decls: [`var<workgroup> part: array<T, ${3 * WG}>;`],
    main: wgsl.flatMain(
      WG,
      `${groupRows(w, R)}
  ${STRIPES}
  var aq: array<T, ${R}>;
  var ak: array<T, ${R}>;
  var av: array<T, ${R}>;
  for (var t = 0u; t < ${R}u; t++) {
    aq[t] = T(0.0);
    ak[t] = T(0.0);
    av[t] = T(0.0);
  }
  if (st < stripes) {
    for (var j = st; j < u.N; j += stripes) {
      let x = base + j * stride + c;
      let kj = qkv[x + Dw];
      let qj = qkv[x];
      let dj = dy[(b * u.N + j) * Dw + h * hw + c];
      for (var t = 0u; t < ${R}u; t++) {
        // Rows past N read row N - 1 and write nothing.
        let n = min(n0 + t, u.N - 1u);
        aq[t] += ds[(bh * u.N + n) * u.N + j] * kj;
        ak[t] += ds[(bh * u.N + j) * u.N + n] * qj;
        av[t] += probs[(bh * u.N + j) * u.N + n] * dj;
      }
    }
  }
  for (var t = 0u; t < ${R}u; t++) {
    part[lid] = aq[t];
    part[${WG}u + lid] = ak[t];
    part[${2 * WG}u + lid] = av[t];
    workgroupBarrier();
    let n = n0 + t;
    if (lid < hw && n < u.N) {
      var gq = T(0.0);
      var gk = T(0.0);
      var gv = T(0.0);
      for (var s = 0u; s < stripes; s++) {
        gq += part[s * hw + lid];
        gk += part[${WG}u + s * hw + lid];
        gv += part[${2 * WG}u + s * hw + lid];
      }
      let o = base + n * stride + lid;
      dqkv[o] = gq;
      dqkv[o + Dw] = gk;
      dqkv[o + 2u * Dw] = gv;
    }
    workgroupBarrier();
  }`,
    ),
  });

interface Dims {
  B: number;
  N: number;
  H: number;
  hd: number;
  /** Floats of the workgroup's row of scores (N rounded up, few variants). */
  cap: number;
  /** The shaders' vector width: 4 when hd is a multiple of 4, else 1. */
  w: number;
}

/** [B, N, 3D] and heads -> the dimensions, checked against the limits. */
function dims(qkv: TensorInfo, heads: number): Dims {
  const [B, N, , hd] = qkvDims(qkv, heads, "WebGPU fused attention");
  if (hd > WEBGPU_ATTENTION_MAX_HEAD || N > WEBGPU_ATTENTION_MAX_TOKENS) {
    throw new Error(
      `WebGPU fused attention: expected heads of at most ${WEBGPU_ATTENTION_MAX_HEAD} channels and at most ${WEBGPU_ATTENTION_MAX_TOKENS} tokens, found ${hd} channels and ${N} tokens; use attentionComposite for these shapes`,
    );
  }
  const cap = Math.max(256, Math.ceil(N / 256) * 256);
  return { B, N, H: heads, hd, cap, w: hd % 4 === 0 ? 4 : 1 };
}

function uniformsOf({ B, N, H, hd, cap }: Dims): ArrayBuffer {
  const G = Math.ceil(N / attentionRowsPerGroup(cap));
  return wgsl.uniformWords([
    ["u", N],
    ["u", H],
    ["u", hd],
    ["f", hd ** -0.5],
    ["u", G],
    ["u", B * H * G],
  ]);
}

function headsOf(args: Args): number {
  return Number(args.attrs?.heads);
}

function forwardKernel(args: Args): TensorInfo[] {
  const { qkv } = args.inputs;
  const d = dims(qkv, headsOf(args));
  const { B, N, H, hd } = d;
  const R = attentionRowsPerGroup(d.cap);
  return runWgsl(args.backend, {
    key: `tokenlab.attention.${d.w}.${d.cap}.${R}`,
    code: () => forwardCode(d.w, d.cap, R),
    inputs: [qkv],
    outputs: [{ shape: [B, N, H * hd] }, { shape: [B, H, N, N] }],
    uniforms: uniformsOf(d),
    workgroups: wgsl.workgroupsFor(B * H * Math.ceil(N / R), 1),
  });
}

function backwardKernel(args: Args): TensorInfo {
  const { dy, qkv, probs } = args.inputs;
  const backend = args.backend;
  const d = dims(qkv, headsOf(args));
  const { B, N, H } = d;
  const uniforms = uniformsOf(d);
  const R = attentionRowsPerGroup(d.cap);
  const [ds] = runWgsl(backend, {
    key: `tokenlab.attention_grad_scores.${d.w}.${d.cap}.${R}`,
    code: () => scoresGradCode(d.w, d.cap, R),
    inputs: [dy, qkv, probs],
    outputs: [{ shape: [B, H, N, N] }],
    uniforms,
    workgroups: wgsl.workgroupsFor(B * H * Math.ceil(N / R), 1),
  });
  const [dqkv] = runWgsl(backend, {
    key: `tokenlab.attention_grad_qkv.${d.w}.${R}`,
    code: () => qkvGradCode(d.w, R),
    inputs: [dy, qkv, probs, ds],
    outputs: [{ shape: qkv.shape }],
    uniforms,
    workgroups: wgsl.workgroupsFor(B * H * Math.ceil(N / R), 1),
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
    [FORWARD, forwardKernel],
    [BACKWARD, backwardKernel],
  ]);
}
