/**
 * The filter gradient of a 2-D convolution (`Conv2DBackpropFilter`) on the
 * WebGPU backend as a split-K matrix product in WGSL, replacing tfjs's.
 *
 * tfjs-webgpu 4.22 gives each filter weight one thread that loops over the
 * whole batch and image: few threads, long serial loops (0.22 s for the four
 * filter gradients of the LV-ViT conv stem at batch 64 on an H200). The
 * gradient is the product dW[K, N] = im2col(x)ᵀ[K, M] · dy[M, N], with
 * K = fh·fw·inC, M = batch·outH·outW and N = outC: K and N are small and
 * M is large, so the work is split along M.
 * - Dispatch 1: one 256-thread workgroup per (64×64 tile of dW, chunk of
 *   M); it walks its chunk 16 rows at a time, gathering the im2col rows of
 *   x (zero outside the padding) and the rows of dy into workgroup memory,
 *   each thread accumulating a 4×4 block; it writes its tile's partial sum.
 * - Dispatch 2: sums the chunks' partial tiles (skipped when M is one
 *   chunk: dispatch 1 then writes the gradient itself).
 *
 * Handled: float32, NHWC, dilation 1 (tfjs's gradient only allows 1), any
 * stride and padding as `backend_util.computeConv2DInfo` resolves them.
 * Anything else goes to tfjs's kernel. Not installed by importing:
 * call {@linkcode installWebGpuConvGrad} once the WebGPU backend is loaded.
 *
 * This module imports tfjs directly (a kernel module is a leaf).
 *
 * @module
 */

import { type ConvAttrs, convInfo, type Shape4 } from "./_conv_info.ts";
import {
  type KernelArgs,
  replaceWebGpuKernel,
  runWgsl,
  type TensorInfo,
} from "./webgpu_program.ts";
import * as wgsl from "./_wgsl.ts";

const NAME = "Conv2DBackpropFilter";

/** Output tile edges (K and N) of one workgroup, and rows of M per step. */
const TK = 64, TN = 64, TM = 16;
/** Threads per workgroup: 16×16, each a 4×4 block of the tile. */
const WG = 256;
/** About enough workgroups to fill a large GPU several times over. */
const TARGET_GROUPS = 1024;
/** Fewest steps (of TM rows) per chunk: shorter ones cost more to sum. */
const MIN_STEPS = 16;

// Thread lid loads column lid % 64 (a fixed k of x's im2col and n of dy) of
// rows lid / 64 + 4i; it computes dW rows k0 + ty + 16i and columns
// n0 + tx + 16j, so reads of `as_` broadcast and reads of `bs` are
// consecutive within a warp.
const PARTIAL = wgsl.shader({
  uniforms: `M: u32, K: u32, N: u32, H: u32, W: u32, C: u32, OH: u32, OW: u32,
  FW: u32, SH: u32, SW: u32, padTop: i32, padLeft: i32, chunkLen: u32,`,
  outputs: ["partial"],
  inputs: ["x", "dy"],
  decls: [`var<workgroup> as_: array<f32, ${TM * TK}>;
var<workgroup> bs: array<f32, ${TM * TN}>;

fn store(row: vec4<f32>, k: u32, n0: u32, chunk: u32) {
  if (k >= u.K) { return; }
  let base = (chunk * u.K + k) * u.N;
  for (var j = 0u; j < 4u; j++) {
    let n = n0 + 16u * j;
    if (n < u.N) { partial[base + n] = row[j]; }
  }
}`],
  main: `@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let n0 = wid.x * ${TN}u;
  let k0 = wid.y * ${TK}u;
  let chunk = wid.z;
  let mStart = chunk * u.chunkLen;
  let mEnd = min(u.M, mStart + u.chunkLen);
  let col = lid % 64u;
  let row0 = lid / 64u;
  let k = k0 + col;
  let kOk = k < u.K;
  let ci = k % u.C;
  let kq = k / u.C;
  let kw = i32(kq % u.FW);
  let kh = i32(kq / u.FW);
  let n = n0 + col;
  let nOk = n < u.N;
  let tx = lid % 16u;
  let ty = lid / 16u;
  var acc0 = vec4<f32>(0.0);
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);
  for (var m0 = mStart; m0 < mEnd; m0 += ${TM}u) {
    for (var i = 0u; i < 4u; i++) {
      let r = row0 + 4u * i;
      let m = m0 + r;
      var a = 0.0;
      var b = 0.0;
      if (m < mEnd) {
        let ow = m % u.OW;
        let t = m / u.OW;
        let oh = t % u.OH;
        let img = t / u.OH;
        let ih = i32(oh * u.SH) + kh - u.padTop;
        let iw = i32(ow * u.SW) + kw - u.padLeft;
        if (kOk && ih >= 0 && ih < i32(u.H) && iw >= 0 && iw < i32(u.W)) {
          a = x[((img * u.H + u32(ih)) * u.W + u32(iw)) * u.C + ci];
        }
        if (nOk) { b = dy[m * u.N + n]; }
      }
      as_[r * ${TK}u + col] = a;
      bs[r * ${TN}u + col] = b;
    }
    workgroupBarrier();
    for (var r = 0u; r < ${TM}u; r++) {
      let ar = r * ${TK}u + ty;
      let br = r * ${TN}u + tx;
      let bv = vec4<f32>(bs[br], bs[br + 16u], bs[br + 32u], bs[br + 48u]);
      acc0 += as_[ar] * bv;
      acc1 += as_[ar + 16u] * bv;
      acc2 += as_[ar + 32u] * bv;
      acc3 += as_[ar + 48u] * bv;
    }
    workgroupBarrier();
  }
  let nt = n0 + tx;
  store(acc0, k0 + ty, nt, chunk);
  store(acc1, k0 + ty + 16u, nt, chunk);
  store(acc2, k0 + ty + 32u, nt, chunk);
  store(acc3, k0 + ty + 48u, nt, chunk);
}`,
});

const SUM = wgsl.shader({
  uniforms: "n: u32, chunks: u32",
  outputs: ["dw"],
  inputs: ["partial"],
  main: wgsl.elementwiseMain(
    WG,
    `var s = 0.0;
  for (var c = 0u; c < u.chunks; c++) { s += partial[c * u.n + i]; }
  dw[i] = s;`,
  ),
});

/**
 * How M is cut: chunks of `chunkLen` rows (a multiple of TM), enough of
 * them that the tiles times the chunks fill the GPU, none shorter than
 * MIN_STEPS steps.
 */
export function splitK(
  M: number,
  K: number,
  N: number,
): { chunks: number; chunkLen: number } {
  const tiles = Math.ceil(K / TK) * Math.ceil(N / TN);
  const steps = Math.ceil(M / TM);
  const wanted = Math.max(
    1,
    Math.min(
      Math.ceil(TARGET_GROUPS / tiles),
      Math.floor(steps / MIN_STEPS),
    ),
  );
  const chunkLen = Math.ceil(steps / wanted) * TM;
  return { chunks: Math.ceil(M / chunkLen), chunkLen };
}

/** The split-K filter gradient, or null for a case left to tfjs. */
function splitKFilterGrad(args: KernelArgs): TensorInfo | null {
  const { x, dy } = args.inputs;
  const attrs = args.attrs as unknown as ConvAttrs & { filterShape: Shape4 };
  if (x.dtype !== "float32" || dy.dtype !== "float32") return null;
  if (x.shape.length !== 4 || dy.shape.length !== 4) return null;
  if (attrs.dataFormat !== "NHWC") return null; // tfjs's kernel reads it
  const info = convInfo(x.shape, attrs.filterShape, attrs, 1);
  if (info.dilationHeight !== 1 || info.dilationWidth !== 1) return null;
  const M = info.batchSize * info.outHeight * info.outWidth;
  const K = info.filterHeight * info.filterWidth * info.inChannels;
  const N = info.outChannels;
  if (M === 0 || K === 0 || N === 0) return null;
  if (
    dy.shape.join() !==
      [info.batchSize, info.outHeight, info.outWidth, N].join()
  ) return null; // tfjs's kernel says what is wrong
  const { chunks, chunkLen } = splitK(M, K, N);
  const groups: [number, number, number] = [
    Math.ceil(N / TN),
    Math.ceil(K / TK),
    chunks,
  ];
  if (groups.some((g) => g > wgsl.MAX_WORKGROUPS)) return null;
  const backend = args.backend;
  const filterShape = [
    info.filterHeight,
    info.filterWidth,
    info.inChannels,
    N,
  ];
  const [partial] = runWgsl(backend, {
    key: "tokenlab.conv2d_filter_grad_partial",
    code: PARTIAL,
    inputs: [x, dy],
    outputs: [{ shape: chunks === 1 ? filterShape : [chunks, K, N] }],
    uniforms: wgsl.uniformWords([
      ["u", M],
      ["u", K],
      ["u", N],
      ["u", info.inHeight],
      ["u", info.inWidth],
      ["u", info.inChannels],
      ["u", info.outHeight],
      ["u", info.outWidth],
      ["u", info.filterWidth],
      ["u", info.strideHeight],
      ["u", info.strideWidth],
      ["i", info.padInfo.top],
      ["i", info.padInfo.left],
      ["u", chunkLen],
    ]),
    workgroups: groups,
  });
  if (chunks === 1) return partial;
  const [dw] = runWgsl(backend, {
    key: "tokenlab.conv2d_filter_grad_sum",
    code: SUM,
    inputs: [partial],
    outputs: [{ shape: filterShape }],
    uniforms: wgsl.uniformWords([["u", K * N], ["u", chunks]]),
    workgroups: wgsl.workgroupsFor(K * N, WG),
  });
  backend.disposeData(partial.dataId);
  return dw;
}

/**
 * Replaces tfjs-webgpu's `Conv2DBackpropFilter` by the split-K kernel,
 * keeping tfjs's for the cases it does not handle (idempotent). False when
 * the WebGPU backend's kernels are not loaded (nothing to replace).
 */
export function installWebGpuConvGrad(): boolean {
  return replaceWebGpuKernel(NAME, splitKFilterGrad);
}
