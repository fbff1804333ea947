/**
 * A 2-D convolution (`Conv2D`) and its input gradient (`Conv2DBackpropInput`)
 * on the WebGPU backend as implicit products on the tiled kernel of
 * `_tiled_gemm.ts`: each tile of the image's im2col rows is gathered from
 * the image into workgroup memory as the product walks K, so im2col is
 * never written.
 *
 * - Forward: out[B·OH·OW, OC] = im2col(x)[B·OH·OW, FH·FW·IC] · W[FH·FW·IC,
 *   OC], where W is the filter [FH, FW, IC, OC] as it is stored.
 * - Input gradient, stride 1: dx[B·H·W, IC] = im2col'(dy)[B·H·W, FH·FW·OC] ·
 *   W'[FH·FW·OC, IC], with dy gathered at (h + pad − fh, w + pad − fw) and
 *   W'((fh, fw, oc), ic) = W[fh, fw, ic, oc] read in place.
 *
 * The conv stem of LV-ViT (a 7×7 stride-2 convolution, two 3×3 ones, the
 * patch projection) is about a fifth of a training step's arithmetic at
 * 224; tfjs-webgpu runs it through its own matmul programs.
 *
 * Handled: float32, NHWC, dilation 1; the forward with any stride and
 * padding; the input gradient with stride 1 (with a larger stride most of
 * the gathered products would be zeros). Anything else goes to tfjs's kernel. NOT installed by default,
 * like the matmul (`installWebGpuConv`), until measured on a GPU.
 *
 * This module imports tfjs directly (a kernel module is a leaf).
 *
 * @module
 */

import { type ConvAttrs, convInfo, type Shape4 } from "./_conv_info.ts";
import { gemmBlock, gemmShader, gemmWorkgroups } from "./_tiled_gemm.ts";
import {
  type KernelArgs,
  replaceWebGpuKernel,
  runWgsl,
  type TensorInfo,
} from "./webgpu_program.ts";
import * as wgsl from "./_wgsl.ts";

/** Uniforms of both programs: the product's sizes, then the image's. */
const UNIFORMS = `M: u32, N: u32, K: u32, H: u32, W: u32, C: u32,
  OH: u32, OW: u32, OC: u32, FW: u32, SH: u32, SW: u32, padTop: i32,
  padLeft: i32,`;

/**
 * WGSL splitting the product's indices: row m into (img, pixel row `py`,
 * pixel column `px`) of a `rows` x `cols` map, and column k into the tap
 * (fh, fw) and the channel `ch` of `chans` channels.
 */
function decode(
  [py, px]: [string, string],
  rows: string,
  cols: string,
  ch: string,
  chans: string,
): string {
  return `let ${px} = m % ${cols};
        let r = m / ${cols};
        let ${py} = r % ${rows};
        let img = r / ${rows};
        let ${ch} = k % ${chans};
        let f = k / ${chans};
        let fw = f % u.FW;
        let fh = f / u.FW;`;
}

/** out = conv(x, w): A(m, k) = x at output pixel m's window tap k. */
function forwardShader(block: readonly [number, number]): string {
  return gemmShader({
    block,
    aAlong: "k",
    bAlong: "n",
    readA: `${decode(["oh", "ow"], "u.OH", "u.OW", "ic", "u.C")}
        let ih = i32(oh * u.SH + fh) - u.padTop;
        let iw = i32(ow * u.SW + fw) - u.padLeft;
        if (ih >= 0 && ih < i32(u.H) && iw >= 0 && iw < i32(u.W)) {
          v = x[((img * u.H + u32(ih)) * u.W + u32(iw)) * u.C + ic];
        }`,
    readB: "v = w[k * u.N + n];",
    uniforms: UNIFORMS,
    inputs: ["x", "w"],
    bias: false,
  });
}

/**
 * dx = the input gradient at stride 1: A(m, k) = dy at input pixel m
 * shifted by tap k, B(k, n) = w[fh, fw, n, oc].
 */
function inputGradShader(block: readonly [number, number]): string {
  return gemmShader({
    block,
    aAlong: "k",
    bAlong: "k",
    readA: `${decode(["ih", "iw"], "u.H", "u.W", "oc", "u.OC")}
        let oh = i32(ih) + u.padTop - i32(fh);
        let ow = i32(iw) + u.padLeft - i32(fw);
        if (oh >= 0 && oh < i32(u.OH) && ow >= 0 && ow < i32(u.OW)) {
          v = dy[((img * u.OH + u32(oh)) * u.OW + u32(ow)) * u.OC + oc];
        }`,
    readB: "v = w[((k / u.OC) * u.N + n) * u.OC + k % u.OC];",
    uniforms: UNIFORMS,
    inputs: ["dy", "w"],
    bias: false,
  });
}

/** Runs one implicit product for the convolution `info`. */
function implicitProduct(
  args: KernelArgs,
  kind: "forward" | "input_grad",
  info: ReturnType<typeof convInfo>,
  inputs: [TensorInfo, TensorInfo],
): TensorInfo | null {
  const { batchSize: B, inHeight: H, inWidth: W, inChannels: C } = info;
  const { outHeight: OH, outWidth: OW, outChannels: OC } = info;
  const FH = info.filterHeight, FW = info.filterWidth;
  const [M, N, K] = kind === "forward"
    ? [B * OH * OW, OC, FH * FW * C]
    : [B * H * W, C, FH * FW * OC];
  if (M === 0 || N === 0 || K === 0) return null;
  const block = gemmBlock(1, M, N);
  const groups = gemmWorkgroups(block, 1, M, N);
  if (groups.some((g) => g > wgsl.MAX_WORKGROUPS)) return null;
  const key = `tokenlab.conv2d_${kind}_${block.join("x")}`;
  return runWgsl(args.backend, {
    key,
    code: () =>
      kind === "forward" ? forwardShader(block) : inputGradShader(block),
    inputs,
    outputs: [{ shape: kind === "forward" ? [B, OH, OW, OC] : [B, H, W, C] }],
    uniforms: wgsl.uniformWords([
      ["u", M],
      ["u", N],
      ["u", K],
      ["u", H],
      ["u", W],
      ["u", C],
      ["u", OH],
      ["u", OW],
      ["u", OC],
      ["u", FW],
      ["u", info.strideHeight],
      ["u", info.strideWidth],
      ["i", info.padInfo.top],
      ["i", info.padInfo.left],
    ]),
    workgroups: groups,
  })[0];
}

/** The implicit forward product, or null for a case left to tfjs. */
function conv2d(args: KernelArgs): TensorInfo | null {
  const { x, filter } = args.inputs;
  const attrs = args.attrs as unknown as ConvAttrs;
  if (x.dtype !== "float32" || filter.dtype !== "float32") return null;
  if (x.shape.length !== 4 || filter.shape.length !== 4) return null;
  if (attrs.dataFormat !== "NHWC") return null;
  if (x.shape[3] !== filter.shape[2]) return null; // tfjs says what is wrong
  const info = convInfo(x.shape, filter.shape, attrs);
  if (info.dilationHeight !== 1 || info.dilationWidth !== 1) return null;
  return implicitProduct(args, "forward", info, [x, filter]);
}

/** The implicit input gradient at stride 1, or null for tfjs's kernel. */
function conv2dInputGrad(args: KernelArgs): TensorInfo | null {
  const { dy, filter } = args.inputs;
  const attrs = args.attrs as unknown as ConvAttrs & { inputShape: Shape4 };
  if (dy.dtype !== "float32" || filter.dtype !== "float32") return null;
  if (dy.shape.length !== 4 || filter.shape.length !== 4) return null;
  if (attrs.dataFormat !== "NHWC") return null;
  const info = convInfo(attrs.inputShape, filter.shape, attrs, 1);
  if (info.strideHeight !== 1 || info.strideWidth !== 1) return null;
  if (
    dy.shape.join() !==
      [info.batchSize, info.outHeight, info.outWidth, info.outChannels].join()
  ) return null; // tfjs's kernel says what is wrong
  return implicitProduct(args, "input_grad", info, [dy, filter]);
}

/**
 * Replaces tfjs-webgpu's `Conv2D` and `Conv2DBackpropInput` by the implicit
 * products, keeping tfjs's for the cases they do not handle (idempotent;
 * not called by the library). False when the WebGPU backend's kernels are
 * not loaded.
 */
export function installWebGpuConv(): boolean {
  return replaceWebGpuKernel("Conv2D", conv2d) &&
    replaceWebGpuKernel("Conv2DBackpropInput", conv2dInputGrad);
}
