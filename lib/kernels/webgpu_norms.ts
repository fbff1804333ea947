/**
 * Fused GELU and LayerNorm for the WebGPU backend, forward and backward, in
 * WGSL: the same kernel names, inputs and outputs as the wasm ones
 * (`NORM_KERNELS` of `lib/kernels/wasm_norms.ts`), so `gelu` and
 * `layerNormAffine` in `lib/ops.ts` take the same path on both.
 *
 * tfjs composes GELU from five elementwise kernels and LayerNorm from about
 * ten (moments, centring, the square root, the affine part), and autodiff
 * doubles each in the backward pass, every one a dispatch writing a full
 * tensor. Here:
 * - GELU (exact, erf form; erf by Abramowitz and Stegun 7.1.26, as tfjs's
 *   own Erf kernels): one dispatch each way;
 * - LayerNorm: one workgroup per row (mean, then the centred variance, from
 *   the row held in registers) writing y and the row's mean and reciprocal
 *   deviation; the backward pass is one dispatch for dx (per row, reusing
 *   the forward's statistics) and two for the weight and bias gradients
 *   (column sums over chunks of rows, then over the chunks);
 * - BatchNorm in training mode (the LV-ViT conv stem), over every axis but
 *   the channels: the batch moments in two dispatches (each chunk of rows
 *   its mean and centred sum of squares, then Chan's combination of the
 *   chunks, which keeps the variance exact where E[x^2] - E[x]^2 would
 *   cancel), the affine map in one, and the gradient through the batch
 *   statistics in three. tfjs's composite here also uploads, for each mean
 *   in the backward pass, a tensor of ones of the activation's size made on
 *   the CPU (its Mean gradient): six such uploads per step at the stem.
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
import * as wgsl from "./_wgsl.ts";
import { NORM_KERNEL_NAMES as NORM } from "./_norm_names.ts";

const last = (t: TensorInfo) => t.shape[t.shape.length - 1];

/** Threads per workgroup of the elementwise kernels. */
const WG = 256;

/** erf by Abramowitz and Stegun 7.1.26 (max error 1.5e-7), and Phi. */
const ERF = `
fn erf_as(x: f32) -> f32 {
  let s = sign(x);
  let a = abs(x);
  let t = 1.0 / (1.0 + 0.3275911 * a);
  let y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t
    - 0.284496736) * t + 0.254829592) * t * exp(-a * a);
  return s * y;
}`;

const GELU = wgsl.shader({
  uniforms: "n: u32",
  outputs: ["y"],
  inputs: ["x"],
  decls: [ERF],
  main: wgsl.elementwiseMain(
    WG,
    `let v = x[i];
  y[i] = 0.5 * v * (1.0 + erf_as(v * 0.7071067811865476));`,
  ),
});

const GELU_GRAD = wgsl.shader({
  uniforms: "n: u32",
  outputs: ["dx"],
  inputs: ["dy", "x"],
  decls: [ERF],
  main: wgsl.elementwiseMain(
    WG,
    `let v = x[i];
  let cdf = 0.5 * (1.0 + erf_as(v * 0.7071067811865476));
  let pdf = exp(-0.5 * v * v) * 0.3989422804014327;
  dx[i] = dy[i] * (cdf + v * pdf);`,
  ),
});

/** Threads per row of the LayerNorm kernels; each holds up to PER values. */
const ROW_WG = 128;
const PER = 8; // rows up to ROW_WG * PER = 1024 wide in registers

/** A workgroup-wide sum of `v` through `red` (all threads must call it). */
const ROW_SUM = wgsl.workgroupReduce({
  size: ROW_WG,
  ops: { row_sum: "sum" },
});

const LAYER_NORM = wgsl.shader({
  uniforms: "rows: u32, C: u32, eps: f32",
  outputs: ["y", "mean_out", "rstd_out"],
  inputs: ["x", "w", "b"],
  decls: [ROW_SUM],
  main: wgsl.rowMain(
    ROW_WG,
    `var vals: array<f32, ${PER}>;
  var s = 0.0;
  for (var k = 0u; k < ${PER}u; k++) {
    let c = lid + k * ${ROW_WG}u;
    var v = 0.0;
    if (c < u.C) { v = x[base + c]; }
    vals[k] = v;
    s += v;
  }
  let mean = row_sum(s, lid) / f32(u.C);
  var q = 0.0;
  for (var k = 0u; k < ${PER}u; k++) {
    let c = lid + k * ${ROW_WG}u;
    if (c < u.C) { let d = vals[k] - mean; q += d * d; }
  }
  let rstd = 1.0 / sqrt(row_sum(q, lid) / f32(u.C) + u.eps);
  for (var k = 0u; k < ${PER}u; k++) {
    let c = lid + k * ${ROW_WG}u;
    if (c < u.C) { y[base + c] = (vals[k] - mean) * rstd * w[c] + b[c]; }
  }
  if (lid == 0u) { mean_out[row] = mean; rstd_out[row] = rstd; }`,
  ),
});

// dx = rstd (g - mean(g) - xhat mean(g xhat)), g = dy w, xhat = (x - mean) rstd.
const LAYER_NORM_DX = wgsl.shader({
  uniforms: "rows: u32, C: u32",
  outputs: ["dx"],
  inputs: ["dy", "x", "w", "mean", "rstd"],
  decls: [ROW_SUM],
  main: wgsl.rowMain(
    ROW_WG,
    `let m = mean[row];
  let r = rstd[row];
  var gs: array<f32, ${PER}>;
  var hs: array<f32, ${PER}>;
  var sg = 0.0;
  var sgh = 0.0;
  for (var k = 0u; k < ${PER}u; k++) {
    let c = lid + k * ${ROW_WG}u;
    var g = 0.0;
    var h = 0.0;
    if (c < u.C) {
      g = dy[base + c] * w[c];
      h = (x[base + c] - m) * r;
    }
    gs[k] = g;
    hs[k] = h;
    sg += g;
    sgh += g * h;
  }
  let mg = row_sum(sg, lid) / f32(u.C);
  let mgh = row_sum(sgh, lid) / f32(u.C);
  for (var k = 0u; k < ${PER}u; k++) {
    let c = lid + k * ${ROW_WG}u;
    if (c < u.C) { dx[base + c] = r * (gs[k] - mg - hs[k] * mgh); }
  }`,
  ),
});

/** Rows summed by one thread of the column pass. */
const CHUNK = 64;
const COL_WG = 64;

/**
 * A pass over chunks of CHUNK rows of C channels: one thread per column `c`
 * (`COL_WG` per workgroup along x) and chunk `chunk` (along y), threads
 * past either returning before `body`, which writes its two sums with
 * `put(chunk, c, a, b)` as partial[chunk, c] and partial[chunk, C + c].
 */
const chunkPass = (inputs: readonly string[], body: string) =>
  wgsl.shader({
    uniforms: "rows: u32, C: u32, chunks: u32",
    outputs: ["partial"],
    inputs,
    decls: [`fn put(chunk: u32, c: u32, a: f32, b: f32) {
  partial[chunk * 2u * u.C + c] = a;
  partial[chunk * 2u * u.C + u.C + c] = b;
}`],
    main: `@compute @workgroup_size(${COL_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  let chunk = gid.y;
  if (c >= u.C || chunk >= u.chunks) { return; }
  ${body}
}`,
  });

/**
 * A final pass over a chunk pass's partial sums: one thread per column `c`
 * (threads past u.C returning) that writes the two outputs [C] in `body`.
 */
const finalPass = (
  uniforms: string,
  outputs: readonly [string, string],
  body: string,
) =>
  wgsl.shader({
    uniforms,
    outputs,
    inputs: ["partial"],
    main: `@compute @workgroup_size(${COL_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  if (c >= u.C) { return; }
  ${body}
}`,
  });

// partial[chunk, c] = sum of dy xhat, partial[chunk, C + c] = sum of dy,
// over the chunk's rows.
const LAYER_NORM_DW_PARTIAL = chunkPass(
  ["dy", "x", "mean", "rstd"],
  `var sw = 0.0;
  var sb = 0.0;
  let end = min(u.rows, (chunk + 1u) * ${CHUNK}u);
  for (var row = chunk * ${CHUNK}u; row < end; row++) {
    let g = dy[row * u.C + c];
    sw += g * (x[row * u.C + c] - mean[row]) * rstd[row];
    sb += g;
  }
  put(chunk, c, sw, sb);`,
);

const LAYER_NORM_DW_FINAL = finalPass(
  "C: u32, chunks: u32",
  ["dw", "db"],
  `var sw = 0.0;
  var sb = 0.0;
  for (var k = 0u; k < u.chunks; k++) {
    sw += partial[k * 2u * u.C + c];
    sb += partial[k * 2u * u.C + u.C + c];
  }
  dw[c] = sw;
  db[c] = sb;`,
);

// BatchNorm: rows of C channels (NHWC flattened), chunks of CHUNK rows.
const BN_MOMENTS_PARTIAL = chunkPass(
  ["x"],
  `let start = chunk * ${CHUNK}u;
  let end = min(u.rows, start + ${CHUNK}u);
  var s = 0.0;
  for (var row = start; row < end; row++) { s += x[row * u.C + c]; }
  let mean = s / f32(end - start);
  var q = 0.0;
  for (var row = start; row < end; row++) {
    let d = x[row * u.C + c] - mean;
    q += d * d;
  }
  put(chunk, c, mean, q);`,
);

// Chan et al.'s pairwise update, chunk by chunk: n_ab = n_a + n_b,
// mean_ab = mean_a + d n_b / n_ab, M2_ab = M2_a + M2_b + d^2 n_a n_b / n_ab.
const BN_MOMENTS_FINAL = finalPass(
  "rows: u32, C: u32, chunks: u32",
  ["mean_out", "var_out"],
  `var n = 0.0;
  var mean = 0.0;
  var m2 = 0.0;
  for (var k = 0u; k < u.chunks; k++) {
    let nb = f32(min(u.rows, (k + 1u) * ${CHUNK}u) - k * ${CHUNK}u);
    let mb = partial[k * 2u * u.C + c];
    let n2 = n + nb;
    let d = mb - mean;
    mean += d * nb / n2;
    m2 += partial[k * 2u * u.C + u.C + c] + d * d * n * nb / n2;
    n = n2;
  }
  mean_out[c] = mean;
  var_out[c] = m2 / f32(u.rows);`,
);

const BN_APPLY = wgsl.shader({
  uniforms: "n: u32, C: u32",
  outputs: ["y"],
  inputs: ["x", "mean", "inv", "gamma", "beta"],
  main: wgsl.elementwiseMain(
    WG,
    `let c = i % u.C;
  y[i] = (x[i] - mean[c]) * inv[c] * gamma[c] + beta[c];`,
  ),
});

// partial[chunk, c] = sum of dy, partial[chunk, C + c] = sum of dy xhat.
const BN_GRAD_PARTIAL = chunkPass(
  ["dy", "x", "mean", "inv"],
  `let m = mean[c];
  let r = inv[c];
  var sb = 0.0;
  var sg = 0.0;
  let end = min(u.rows, (chunk + 1u) * ${CHUNK}u);
  for (var row = chunk * ${CHUNK}u; row < end; row++) {
    let g = dy[row * u.C + c];
    sb += g;
    sg += g * (x[row * u.C + c] - m) * r;
  }
  put(chunk, c, sb, sg);`,
);

const BN_GRAD_DX = wgsl.shader({
  uniforms: "n: u32, C: u32, rows: u32",
  outputs: ["dx"],
  inputs: ["dy", "x", "mean", "inv", "gamma", "dbeta", "dgamma"],
  main: wgsl.elementwiseMain(
    WG,
    `let c = i % u.C;
  let xh = (x[i] - mean[c]) * inv[c];
  let rows = f32(u.rows);
  dx[i] = gamma[c] * inv[c] * (dy[i] - dbeta[c] / rows - xh * dgamma[c] / rows);`,
  ),
});

/** Widest row the LayerNorm kernels hold in registers. */
export const WEBGPU_LAYER_NORM_MAX = ROW_WG * PER;

/**
 * One dispatch of an elementwise shader (uniforms n, then `more`) over the
 * elements of `x`, writing one tensor of its shape.
 */
function elementwise(
  backend: WebGpuBackend,
  key: string,
  code: string,
  inputs: TensorInfo[],
  x: TensorInfo,
  more: readonly (readonly ["u", number])[] = [],
): TensorInfo {
  const n = size(x);
  return runWgsl(backend, {
    key,
    code,
    inputs,
    outputs: [{ shape: x.shape }],
    uniforms: wgsl.uniformWords([["u", n], ...more]),
    workgroups: wgsl.workgroupsFor(n, WG),
  })[0];
}

function geluKernel(args: Args): TensorInfo {
  const { x } = args.inputs;
  return elementwise(args.backend, "tokenlab.gelu", GELU, [x], x);
}

function geluGradKernel(args: Args): TensorInfo {
  const { dy, x } = args.inputs;
  const code = GELU_GRAD;
  return elementwise(args.backend, "tokenlab.gelu_grad", code, [dy, x], x);
}
function rowsOf(x: TensorInfo): { rows: number; C: number } {
  const C = last(x);
  if (C > WEBGPU_LAYER_NORM_MAX) {
    throw new Error(
      `the WebGPU LayerNorm kernel holds rows of at most ${WEBGPU_LAYER_NORM_MAX} values, found ${C}; layerNormAffine uses the composite ops for wider rows`,
    );
  }
  return { rows: size(x) / C, C };
}

function layerNormKernel(args: Args): TensorInfo[] {
  const { x, w, b } = args.inputs;
  const eps = Number(args.attrs?.eps ?? 1e-5);
  const { rows, C } = rowsOf(x);
  const stats = x.shape.slice(0, -1);
  return runWgsl(args.backend, {
    key: "tokenlab.layer_norm",
    code: LAYER_NORM,
    inputs: [x, w, b],
    outputs: [{ shape: x.shape }, { shape: stats }, { shape: stats }],
    uniforms: wgsl.uniformWords([["u", rows], ["u", C], ["f", eps]]),
    workgroups: wgsl.workgroupsFor(rows, 1),
  });
}

/** Rows of C channels in chunks of CHUNK rows, for the column passes. */
interface Chunks {
  rows: number;
  C: number;
  chunks: number;
}

function chunksOf(x: TensorInfo): Chunks {
  const C = last(x), rows = size(x) / C;
  return { rows, C, chunks: Math.ceil(rows / CHUNK) };
}

/**
 * One dispatch of a chunk pass (uniforms rows, C, chunks): the partial
 * sums [chunks, 2C] of each chunk of rows.
 */
function partialColumns(
  backend: WebGpuBackend,
  key: string,
  code: string,
  inputs: TensorInfo[],
  { rows, C, chunks }: Chunks,
): TensorInfo {
  return runWgsl(backend, {
    key,
    code,
    inputs,
    outputs: [{ shape: [chunks, 2 * C] }],
    uniforms: wgsl.uniformWords([["u", rows], ["u", C], ["u", chunks]]),
    workgroups: [Math.ceil(C / COL_WG), chunks, 1],
  })[0];
}

/**
 * One dispatch of a final column pass over the partial sums (which it
 * disposes): two tensors [C].
 */
function fromPartial(
  backend: WebGpuBackend,
  key: string,
  code: string,
  partial: TensorInfo,
  C: number,
  uniforms: ArrayBuffer,
): TensorInfo[] {
  const out = runWgsl(backend, {
    key,
    code,
    inputs: [partial],
    outputs: [{ shape: [C] }, { shape: [C] }],
    uniforms,
    workgroups: [Math.ceil(C / COL_WG), 1, 1],
  });
  backend.disposeData(partial.dataId);
  return out;
}

/**
 * The column sums over all rows of the chunk pass `code`'s two partial
 * sums: two tensors [C].
 */
function columnSums(
  backend: WebGpuBackend,
  key: string,
  code: string,
  inputs: TensorInfo[],
  chunks: Chunks,
): TensorInfo[] {
  return fromPartial(
    backend,
    "tokenlab.layer_norm_dw_final",
    LAYER_NORM_DW_FINAL,
    partialColumns(backend, key, code, inputs, chunks),
    chunks.C,
    wgsl.uniformWords([["u", chunks.C], ["u", chunks.chunks]]),
  );
}

function layerNormGradKernel(args: Args): TensorInfo[] {
  const { dy, x, w, mean, rstd } = args.inputs;
  const backend = args.backend;
  const { rows, C } = rowsOf(x);
  const [dx] = runWgsl(backend, {
    key: "tokenlab.layer_norm_dx",
    code: LAYER_NORM_DX,
    inputs: [dy, x, w, mean, rstd],
    outputs: [{ shape: x.shape }],
    uniforms: wgsl.uniformWords([["u", rows], ["u", C]]),
    workgroups: wgsl.workgroupsFor(rows, 1),
  });
  const [dw, db] = columnSums(
    backend,
    "tokenlab.layer_norm_dw_partial",
    LAYER_NORM_DW_PARTIAL,
    [dy, x, mean, rstd],
    chunksOf(x),
  );
  return [dx, dw, db];
}

function momentsKernel(args: Args): TensorInfo[] {
  const { x } = args.inputs;
  const backend = args.backend;
  const chunks = chunksOf(x);
  const { rows, C } = chunks;
  const partial = partialColumns(
    backend,
    "tokenlab.bn_moments_partial",
    BN_MOMENTS_PARTIAL,
    [x],
    chunks,
  );
  return fromPartial(
    backend,
    "tokenlab.bn_moments_final",
    BN_MOMENTS_FINAL,
    partial,
    C,
    wgsl.uniformWords([["u", rows], ["u", C], ["u", chunks.chunks]]),
  );
}

function batchNormKernel(args: Args): TensorInfo {
  const { x, mean, invStd, gamma, beta } = args.inputs;
  return elementwise(
    args.backend,
    "tokenlab.bn_apply",
    BN_APPLY,
    [x, mean, invStd, gamma, beta],
    x,
    [["u", last(x)]],
  );
}

function batchNormGradKernel(args: Args): TensorInfo[] {
  const { dy, x, mean, invStd, gamma } = args.inputs;
  const backend = args.backend;
  const chunks = chunksOf(x);
  // The same column sums as LayerNorm's weight gradient: dbeta, dgamma.
  const [dbeta, dgamma] = columnSums(
    backend,
    "tokenlab.bn_grad_partial",
    BN_GRAD_PARTIAL,
    [dy, x, mean, invStd],
    chunks,
  );
  const dx = elementwise(
    backend,
    "tokenlab.bn_grad_dx",
    BN_GRAD_DX,
    [dy, x, mean, invStd, gamma, dbeta, dgamma],
    x,
    [["u", chunks.C], ["u", chunks.rows]],
  );
  return [dx, dgamma, dbeta];
}

/**
 * Registers the GELU, LayerNorm and BatchNorm kernels for the WebGPU backend
 * (idempotent) and returns their names.
 */
export function registerWebGpuNorms(): string[] {
  return registerWebGpuKernels([
    [NORM.gelu, geluKernel],
    [NORM.geluGrad, geluGradKernel],
    [NORM.layerNorm, layerNormKernel],
    [NORM.layerNormGrad, layerNormGradKernel],
    [NORM.moments, momentsKernel],
    [NORM.batchNorm, batchNormKernel],
    [NORM.batchNormGrad, batchNormGradKernel],
  ]);
}
