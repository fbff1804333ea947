/**
 * The register-blocked tiled product C[batch, M, N] = A[M, K] · B[K, N] in
 * WGSL, with the reads of A and B supplied by the caller, so that one tile
 * loop serves the plain matmul (`webgpu_matmul.ts`, operands in memory) and
 * the convolutions as implicit products (`webgpu_conv.ts`, A gathered from
 * the image on the fly, im2col never written).
 *
 * One dispatch: a 256-thread workgroup (16×16) computes one tile of one
 * batch entry, 128×128 (8×8 per thread) or 64×64 (4×4) when that gives
 * enough workgroups with little padding, else 64×32, 32×64 or 32×32 (2 per
 * thread on the short side). It walks K 16 at a time (8 for 8×8), the A and B tiles staged in workgroup
 * memory (rows padded by one word against bank conflicts), loaded along
 * whichever axis is contiguous in memory. Thread (tx, ty) owns rows
 * ty + 16i and columns tx + 16j, so its reads of the B tile are consecutive
 * across a warp and those of the A tile broadcast. Workgroups: x over N's
 * tiles, y over M's, z the batch entry (`batch` in the shader).
 *
 * Plain text, no tfjs.
 *
 * @module
 */

import * as wgsl from "./_wgsl.ts";

/**
 * K step of the tiles staged in workgroup memory: 16, or 8 for the 8×8
 * block (whose 128-wide tiles would pass WebGPU's guaranteed 16 KiB of
 * workgroup memory at 16).
 */
export function gemmK(block: readonly [number, number]): number {
  return block[0] * block[1] >= 64 ? 8 : 16;
}
/** Workgroups below which a tile shape counts as filling the GPU poorly. */
const FEW_GROUPS = 256;
/** Padded work over real work above which a tile shape counts as wasteful. */
const MAX_WASTE = 1.3;

/** Per-thread blocks (rows, columns) tried in order of preference. */
export const GEMM_BLOCKS: readonly (readonly [number, number])[] = [
  [8, 8],
  [4, 4],
  [4, 2],
  [2, 4],
  [2, 2],
];

/**
 * The per-thread block (rows, columns) for a product: the largest whose
 * tiles both fill the GPU and waste little, else the smallest.
 */
export function gemmBlock(
  batch: number,
  M: number,
  N: number,
): readonly [number, number] {
  if (forced !== null) return forced;
  for (const [rm, rn] of GEMM_BLOCKS) {
    const tm = 16 * rm, tn = 16 * rn;
    const groups = batch * Math.ceil(M / tm) * Math.ceil(N / tn);
    const waste = (Math.ceil(M / tm) * tm * Math.ceil(N / tn) * tn) / (M * N);
    if (groups >= FEW_GROUPS && waste <= MAX_WASTE) return [rm, rn];
  }
  return GEMM_BLOCKS[GEMM_BLOCKS.length - 1];
}

let forced: readonly [number, number] | null = null;

/**
 * For benchmarks: every product chooses `block` while it is set (null:
 * {@linkcode gemmBlock}'s own choice again), so that one run can time each
 * block on the same shapes (`tests/bench/webgpu_kernel_rates.ts`).
 *
 * @throws {RangeError} for a block not among {@linkcode GEMM_BLOCKS}
 */
export function forceGemmBlock(block: readonly [number, number] | null): void {
  if (
    block !== null &&
    !GEMM_BLOCKS.some(([r, c]) => r === block[0] && c === block[1])
  ) {
    throw new RangeError(
      `forceGemmBlock: expected one of ${
        GEMM_BLOCKS.map((b) => b.join("x")).join(", ")
      } or null, found ${block.join("x")}`,
    );
  }
  forced = block;
}

/** Workgroups of a product with block `[rm, rn]`. */
export function gemmWorkgroups(
  block: readonly [number, number],
  batch: number,
  M: number,
  N: number,
): [number, number, number] {
  return [
    Math.ceil(N / (16 * block[1])),
    Math.ceil(M / (16 * block[0])),
    batch,
  ];
}

/** How a tiled product reads its operands and what it adds. */
export interface GemmShaderSpec {
  /** The per-thread block (rows, columns), from {@linkcode gemmBlock}. */
  block: readonly [number, number];
  /** The axis along which A(m, k) is contiguous in memory. */
  aAlong: "m" | "k";
  /** The axis along which B(k, n) is contiguous in memory. */
  bAlong: "k" | "n";
  /**
   * WGSL statements that set `v` (an f32 var, 0 before) to A(m, k), run
   * only for m < u.M and k < u.K; they may read `batch`.
   */
  readA: string;
  /** The same for B(k, n), run only for n < u.N and k < u.K. */
  readB: string;
  /** The uniform struct's fields, `M: u32, N: u32, K: u32` among them. */
  uniforms: string;
  /** The inputs (after the output `c`), `bias` last when `bias`. */
  inputs: readonly wgsl.StorageArray[];
  /** Adds `bias[n]` to every element of column n as it stores. */
  bias: boolean;
}

/** The WGSL module of one tiled product. */
export function gemmShader(spec: GemmShaderSpec): string {
  const [rm, rn] = spec.block;
  const BK = gemmK(spec.block);
  const TM = 16 * rm, TN = 16 * rn;
  // Elements of the A and B tiles each of the 256 threads loads per K step.
  const loadsA = BK * TM / 256, loadsB = BK * TN / 256;
  const SA = TM + 1, SB = TN + 1;
  // A thread's columns as vectors of up to 4 (WGSL has no wider ones):
  // part q holds columns tx + 16 (q W + j), j < W.
  const W = Math.min(rn, 4);
  const vec = `vec${W}<f32>`;
  const rows = [...Array(rm).keys()];
  const parts = [...Array(rn / W).keys()];
  const lanes = [...Array(W).keys()];
  // Which element of the tile load `l` fetches: along the contiguous axis.
  const aLoad = spec.aAlong === "m"
    ? `let kk = l / ${TM}u; let mm = l % ${TM}u;`
    : `let mm = l / ${BK}u; let kk = l % ${BK}u;`;
  const bLoad = spec.bAlong === "k"
    ? `let nn = l / ${BK}u; let kk = l % ${BK}u;`
    : `let kk = l / ${TN}u; let nn = l % ${TN}u;`;
  return wgsl.shader({
    uniforms: spec.uniforms,
    outputs: ["c"],
    inputs: spec.inputs,
    decls: [
      `var<workgroup> as_: array<f32, ${BK * SA}>;
var<workgroup> bs: array<f32, ${BK * SB}>;`,
      `fn store(row: ${vec}, base: u32, m: u32, n0: u32) {
  if (m >= u.M) { return; }
  for (var j = 0u; j < ${W}u; j++) {
    let n = n0 + 16u * j;
    if (n < u.N) { c[base + n] = row[j]${spec.bias ? " + bias[n]" : ""}; }
  }
}`,
    ],
    main: `@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let n0 = wid.x * ${TN}u;
  let m0 = wid.y * ${TM}u;
  let batch = wid.z;
  let tx = lid % 16u;
  let ty = lid / 16u;
${
      rows.flatMap((i) => parts.map((q) => `  var acc${i}_${q} = ${vec}(0.0);`))
        .join("\n")
    }
  for (var k0 = 0u; k0 < u.K; k0 += ${BK}u) {
    for (var t = 0u; t < ${loadsA}u; t++) {
      let l = lid + 256u * t;
      ${aLoad}
      let m = m0 + mm;
      let k = k0 + kk;
      var v = 0.0;
      if (m < u.M && k < u.K) {
        ${spec.readA}
      }
      as_[kk * ${SA}u + mm] = v;
    }
    for (var t = 0u; t < ${loadsB}u; t++) {
      let l = lid + 256u * t;
      ${bLoad}
      let n = n0 + nn;
      let k = k0 + kk;
      var v = 0.0;
      if (n < u.N && k < u.K) {
        ${spec.readB}
      }
      bs[kk * ${SB}u + nn] = v;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${BK}u; kk++) {
      let ar = kk * ${SA}u + ty;
      let br = kk * ${SB}u + tx;
${
      parts.map((q) =>
        `      let bv${q} = ${vec}(${
          lanes.map((j) => `bs[br + ${16 * (q * W + j)}u]`).join(", ")
        });`
      ).join("\n")
    }
${
      rows.map((i) =>
        `      let av${i} = as_[ar + ${16 * i}u];\n` +
        parts.map((q) => `      acc${i}_${q} += av${i} * bv${q};`).join("\n")
      ).join("\n")
    }
    }
    workgroupBarrier();
  }
${
      rows.flatMap((i) =>
        parts.map((q) =>
          `  store(acc${i}_${q}, (batch * u.M + m0 + ty + ${
            16 * i
          }u) * u.N, m0 + ty + ${16 * i}u, n0 + tx + ${16 * W * q}u);`
        )
      ).join("\n")
    }
}`,
  });
}
