/**
 * A register-blocked tiled matrix product in WGSL for tfjs-webgpu's
 * `BatchMatMul` and the linear layers' `_FusedMatMul` (float32), meant for
 * a transformer's shapes: the token
 * projections ([B·T, C] × [C, 3C], [B·T, C] × [C, 4C]) and the attention
 * products (batch B·heads, [T, d] × [d, T] and [T, T] × [T, d]).
 *
 * NOT installed by default: tfjs's own kernel runs unless a caller invokes
 * {@linkcode installWebGpuMatMul}, which the lead decides after measuring on
 * a GPU (tfjs's packed matmul reached 1.6–3.8 TFLOP/s on an H200).
 *
 * One dispatch: a 256-thread workgroup (16×16) computes one tile of one
 * batch entry, 64×64 (4×4 per thread) when that gives enough workgroups with
 * little padding, else 64×32, 32×64 or 32×32 (2 per thread on the short
 * side). It walks K 16 at a time, the A and B tiles staged in workgroup
 * memory (rows padded by one word against bank conflicts), loaded along
 * whichever axis is contiguous for the transpose flags (baked into the
 * shader). Thread (tx, ty) owns rows ty + 16i and columns tx + 16j, so its
 * reads of the B tile are consecutive across a warp and those of the A tile
 * broadcast.
 *
 * Handled: float32, rank ≥ 2, batch dimensions broadcast the way tfjs's
 * kernel indexes them (an operand's flat batch index is the output's modulo
 * its batch size, valid when its batch dimensions are ones then a suffix of
 * the output's). `_FusedMatMul` with a bias of one value per column and
 * no activation (a linear layer) adds the bias as it stores. Everything
 * else (other dtypes, empty shapes, other broadcasts, activations, PReLU)
 * goes to tfjs's kernel.
 *
 * This module imports tfjs directly (a kernel module is a leaf).
 *
 * @module
 */

import { productShape } from "./_matmul_shape.ts";
import {
  type KernelArgs,
  replaceWebGpuKernel,
  runWgsl,
  sizeOf,
  type TensorInfo,
} from "./webgpu_program.ts";
import * as wgsl from "./_wgsl.ts";

const NAME = "BatchMatMul";
const FUSED_NAME = "_FusedMatMul";

/** K step of the tiles staged in workgroup memory. */
const BK = 16;
/** Workgroups below which a tile shape counts as filling the GPU poorly. */
const FEW_GROUPS = 256;
/** Padded work over real work above which a tile shape counts as wasteful. */
const MAX_WASTE = 1.3;

/** Per-thread blocks (rows, columns) tried in order of preference. */
const BLOCKS: readonly (readonly [number, number])[] = [
  [4, 4],
  [4, 2],
  [2, 4],
  [2, 2],
];

/**
 * The per-thread block (rows, columns) the kernel uses for a product: the
 * largest whose tiles both fill the GPU and waste little, else the smallest.
 */
export function matMulBlock(
  batch: number,
  M: number,
  N: number,
): readonly [number, number] {
  for (const [rm, rn] of BLOCKS) {
    const tm = 16 * rm, tn = 16 * rn;
    const groups = batch * Math.ceil(M / tm) * Math.ceil(N / tn);
    const waste = (Math.ceil(M / tm) * tm * Math.ceil(N / tn) * tn) / (M * N);
    if (groups >= FEW_GROUPS && waste <= MAX_WASTE) return [rm, rn];
  }
  return BLOCKS[BLOCKS.length - 1];
}

/**
 * The shader for one block shape and pair of transpose flags, adding a bias
 * of N values to every row when `bias`.
 */
function shader(
  rm: number,
  rn: number,
  ta: boolean,
  tb: boolean,
  bias: boolean,
): string {
  const TM = 16 * rm, TN = 16 * rn;
  const SA = TM + 1, SB = TN + 1;
  const vec = (n: number) => `vec${n}<f32>`;
  const rows = [...Array(rm).keys()];
  const cols = [...Array(rn).keys()];
  // Which element of the tile load `l` fetches: along the contiguous axis.
  const aLoad = ta
    ? `let kk = l / ${TM}u; let mm = l % ${TM}u;`
    : `let mm = l / ${BK}u; let kk = l % ${BK}u;`;
  const aIndex = ta ? "k * u.M + m" : "m * u.K + k";
  const bLoad = tb
    ? `let nn = l / ${BK}u; let kk = l % ${BK}u;`
    : `let kk = l / ${TN}u; let nn = l % ${TN}u;`;
  const bIndex = tb ? "n * u.K + k" : "k * u.N + n";
  return wgsl.shader({
    uniforms: "M: u32, N: u32, K: u32, batchA: u32, batchB: u32",
    outputs: ["c"],
    inputs: bias ? ["a", "b", "bias"] : ["a", "b"],
    decls: [
      `var<workgroup> as_: array<f32, ${BK * SA}>;
var<workgroup> bs: array<f32, ${BK * SB}>;`,
      `fn store(row: ${vec(rn)}, base: u32, m: u32, n0: u32) {
  if (m >= u.M) { return; }
  for (var j = 0u; j < ${rn}u; j++) {
    let n = n0 + 16u * j;
    if (n < u.N) { c[base + n] = row[j]${bias ? " + bias[n]" : ""}; }
  }
}`,
    ],
    main: `@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let n0 = wid.x * ${TN}u;
  let m0 = wid.y * ${TM}u;
  let batch = wid.z;
  let aBase = (batch % u.batchA) * u.M * u.K;
  let bBase = (batch % u.batchB) * u.K * u.N;
  let tx = lid % 16u;
  let ty = lid / 16u;
${rows.map((i) => `  var acc${i} = ${vec(rn)}(0.0);`).join("\n")}
  for (var k0 = 0u; k0 < u.K; k0 += ${BK}u) {
    for (var t = 0u; t < ${rm}u; t++) {
      let l = lid + 256u * t;
      ${aLoad}
      let m = m0 + mm;
      let k = k0 + kk;
      var v = 0.0;
      if (m < u.M && k < u.K) { v = a[aBase + ${aIndex}]; }
      as_[kk * ${SA}u + mm] = v;
    }
    for (var t = 0u; t < ${rn}u; t++) {
      let l = lid + 256u * t;
      ${bLoad}
      let n = n0 + nn;
      let k = k0 + kk;
      var v = 0.0;
      if (n < u.N && k < u.K) { v = b[bBase + ${bIndex}]; }
      bs[kk * ${SB}u + nn] = v;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${BK}u; kk++) {
      let ar = kk * ${SA}u + ty;
      let br = kk * ${SB}u + tx;
      let bv = ${vec(rn)}(${cols.map((j) => `bs[br + ${16 * j}u]`).join(", ")});
${rows.map((i) => `      acc${i} += as_[ar + ${16 * i}u] * bv;`).join("\n")}
    }
    workgroupBarrier();
  }
${
      rows.map((i) =>
        `  store(acc${i}, (batch * u.M + m0 + ty + ${
          16 * i
        }u) * u.N, m0 + ty + ${16 * i}u, n0 + tx);`
      ).join("\n")
    }
}`,
  });
}

/**
 * Whether `outer` (an operand's batch dimensions) indexed as the output's
 * flat batch index modulo its size reads the broadcast element: its
 * dimensions are ones, then the output's trailing ones.
 */
function modBroadcasts(outer: readonly number[], out: readonly number[]) {
  const padded = [...Array(out.length - outer.length).fill(1), ...outer];
  const first = padded.findIndex((d) => d !== 1);
  return first < 0 ||
    padded.slice(first).every((d, i) => d === out[first + i]);
}

/** The tiled product, or null for a case left to tfjs. */
function tiledMatMul(args: KernelArgs): TensorInfo | null {
  return tiledProduct(args, null);
}

/**
 * `_FusedMatMul` with a bias and no activation (a linear layer) as the
 * tiled product adding the bias as it stores; null (tfjs's kernel) for an
 * activation, PReLU weights, no bias, or a bias that is not one float32 per
 * output column.
 */
function tiledFusedMatMul(args: KernelArgs): TensorInfo | null {
  const { bias, preluActivationWeights } = args.inputs;
  const { activation = "linear" } = (args.attrs ?? {}) as {
    activation?: string;
  };
  if (activation !== "linear" || preluActivationWeights != null) return null;
  if (bias == null || bias.dtype !== "float32") return null;
  return tiledProduct(args, bias);
}

function tiledProduct(
  args: KernelArgs,
  bias: TensorInfo | null,
): TensorInfo | null {
  const { a, b } = args.inputs;
  const { transposeA = false, transposeB = false } = (args.attrs ?? {}) as {
    transposeA?: boolean;
    transposeB?: boolean;
  };
  if (a.dtype !== "float32" || b.dtype !== "float32") return null;
  const s = productShape(a.shape, b.shape, transposeA, transposeB);
  if (s === null) return null; // tfjs's kernel says what is wrong
  const { M, N, K, outer, outerA, outerB } = s;
  if (M === 0 || N === 0 || K === 0) return null;
  if (!modBroadcasts(outerA, outer) || !modBroadcasts(outerB, outer)) {
    return null;
  }
  // A bias is one value per column: [N], or [1, ..., 1, N].
  if (
    bias !== null &&
    (sizeOf(bias) !== N || bias.shape[bias.shape.length - 1] !== N)
  ) return null;
  const batch = sizeOf(outer);
  const [rm, rn] = matMulBlock(batch, M, N);
  const groups: [number, number, number] = [
    Math.ceil(N / (16 * rn)),
    Math.ceil(M / (16 * rm)),
    batch,
  ];
  if (groups.some((g) => g > wgsl.MAX_WORKGROUPS)) return null;
  const flags = `${transposeA ? "t" : "n"}${transposeB ? "t" : "n"}${
    bias === null ? "" : "_bias"
  }`;
  return runWgsl(args.backend, {
    key: `tokenlab.matmul_${rm}x${rn}_${flags}`,
    code: shader(rm, rn, transposeA, transposeB, bias !== null),
    inputs: bias === null ? [a, b] : [a, b, bias],
    outputs: [{ shape: [...outer, M, N] }],
    uniforms: wgsl.uniformWords([
      ["u", M],
      ["u", N],
      ["u", K],
      ["u", sizeOf(outerA)],
      ["u", sizeOf(outerB)],
    ]),
    workgroups: groups,
  })[0];
}

/**
 * Replaces tfjs-webgpu's `BatchMatMul`, and `_FusedMatMul` with a bias and
 * no activation (the linear layers), by the tiled kernel, keeping tfjs's for
 * the cases it does not handle (idempotent; not called by the library).
 * False when the WebGPU backend's kernels are not loaded.
 */
export function installWebGpuMatMul(): boolean {
  return replaceWebGpuKernel(NAME, tiledMatMul) &&
    replaceWebGpuKernel(FUSED_NAME, tiledFusedMatMul);
}
