/**
 * Faster, leaner replacements for four kernels of the wasm backend.
 *
 * `Identity`: the wasm backend copies the whole buffer, and tfjs's engine
 * clones (runs `Identity` on) every tensor it saves for a gradient, so on
 * wasm each saved activation of a training step existed twice (a step of the
 * 64x64 small LV-ViT at batch 16 peaked at 1.5 GB). Tensors are immutable,
 * so the replacement shares the buffer and counts a reference, as the cpu
 * backend's `Identity` and the wasm backend's own `Reshape` already do.
 *
 * `BatchMatMul` with a transposed operand:
 * tfjs 4.22's wasm kernel (XNNPACK) is fast only with neither operand
 * transposed: a single [1040, 192]^T x [1040, 576] product took 98 ms with
 * `transposeA` against 8 ms for an explicit transpose plus the plain product
 * (and 107 ms against 10 ms with `transposeB`), measured on the 2-core
 * machine. Every linear layer's backward pass asks for exactly those
 * products (dW = x^T dy, dx = dy W^T), so training spent most of its time
 * there. This wraps the backend's kernel: a transposed operand of an
 * unbatched product is transposed explicitly first (the backend's own
 * Transpose kernel), then the plain product runs. Batched products (the
 * attention's, many small matrices) are as fast either way and are passed
 * through unchanged. Results are identical up to float32 summation order.
 *
 * `Conv2DBackpropInput` (the input gradient of a convolution): tfjs 4.22's
 * wasm kernel is a direct loop, about 10 times slower than its forward
 * convolution (XNNPACK): the two 3x3 convolutions of the conv stem spent a
 * third of a bench-64 training step there. Two cases are rewritten onto fast
 * kernels, the rest go to the original:
 * - stride 1 (any kernel, padding at most kernel - 1, no dilation): the
 *   input gradient is the forward convolution of dy with the filter rotated
 *   by 180 degrees and its channel axes swapped, padded by kernel - 1 -
 *   padding on each side (the backend's Conv2D);
 * - kernel = stride with no padding (the patchify projection): the patches
 *   do not overlap, so dx is one matrix product dy [B h w, co] x W^T
 *   [co, kh kw ci] and a rearrangement of the patches back into the image.
 *
 * `GatherV2` of whole rows (axis 0): block copies on the heap instead of
 * tfjs's element-by-element loop (see `rowGather`).
 *
 * This module imports tfjs directly (a kernel module is a leaf) and only
 * defines functions.
 *
 * @module
 */

import * as tfjs from "@tensorflow/tfjs";
import {
  addressOf,
  type Info,
  type KernelArgs,
  type KernelFunc,
  memoryOf,
  type WasmBackend,
} from "./_wasm_heap.ts";
import { type ConvAttrs, convInfo } from "./_conv_info.ts";

const REPLACED = Symbol.for("tokenlab.wasmKernelReplaced");
const BASE = Symbol.for("tokenlab.wasmKernelBase");

/**
 * The kernel function underneath every replacement of a wasm kernel (tfjs's
 * own, or the one registered first), or undefined when wasm has none.
 */
export function baseWasmKernel(name: string): unknown {
  const k = tfjs.getKernel(name, "wasm")?.kernelFunc as
    | { [BASE]?: unknown }
    | undefined;
  return k?.[BASE] ?? k;
}

interface Backend {
  disposeData(dataId: unknown, force?: boolean): boolean;
  incRef(dataId: unknown): void;
}

/**
 * Registers the replacements for the `wasm` backend (idempotent) and
 * returns the names of the kernels replaced.
 *
 * @example
 * ```ts
 * import { registerWasmFastPaths } from "tokenlab/kernels/wasm_fast_paths.ts";
 * console.log(registerWasmFastPaths());
 * // [ "Identity", "BatchMatMul", "Conv2DBackpropInput", "GatherV2" ]
 * ```
 */
export function registerWasmFastPaths(): string[] {
  const done: string[] = [];
  if (replaceWasmKernel("Identity", sharedIdentity)) done.push("Identity");
  if (replaceWasmKernel("BatchMatMul", plainMatMul)) done.push("BatchMatMul");
  if (replaceWasmKernel("Conv2DBackpropInput", convInputGradAsConv)) {
    done.push("Conv2DBackpropInput");
  }
  if (replaceWasmKernel("GatherV2", rowGather)) done.push("GatherV2");
  return done;
}

/**
 * A `GatherV2` of whole rows (axis 0, no batch dimensions, 4-byte values,
 * every index in range) as block copies on the heap, runs of consecutive
 * indices merged: tfjs 4.22's wasm kernel walks element by element (14 ms
 * for 4096 rows of 192 floats, the token swap of MixToken at bench-64 batch
 * 64). Anything else goes to the original.
 */
function rowGather(original: (a: KernelArgs) => Info): KernelFunc {
  return ((args: KernelArgs): Info => {
    const { x, indices } = args.inputs as Record<string, Info>;
    const { axis, batchDims } = args.attrs as {
      axis: number | number[];
      batchDims?: number;
    };
    const ax = Array.isArray(axis) ? axis[0] : axis;
    const backend = args.backend as unknown as WasmBackend;
    if (
      (ax !== 0 && ax !== -x.shape.length) || (batchDims ?? 0) !== 0 ||
      !(x.dtype === "float32" || x.dtype === "int32") ||
      indices.dtype !== "int32" || x.shape.length === 0
    ) return original(args);
    const rows = x.shape[0];
    const row = x.shape.slice(1).reduce((p, v) => p * v, 1);
    const count = indices.shape.reduce((p, v) => p * v, 1);
    const out = backend.makeOutput(
      [...indices.shape, ...x.shape.slice(1)],
      x.dtype,
    );
    // Int32 view: the copies move bits (NaN payloads included).
    const heap = new Int32Array(memoryOf(backend).buffer);
    const src = addressOf(backend, x) >> 2;
    const ind = addressOf(backend, indices) >> 2;
    const dst = addressOf(backend, out) >> 2;
    for (let i = 0; i < count; i++) {
      const k = heap[ind + i];
      if (!(k >= 0 && k < rows)) {
        backend.disposeData(out.dataId);
        return original(args); // out-of-range indices: tfjs's behaviour
      }
    }
    for (let i = 0; i < count;) {
      const first = heap[ind + i];
      let n = 1;
      while (i + n < count && heap[ind + i + n] === first + n) n++;
      heap.copyWithin(
        dst + i * row,
        src + first * row,
        src + (first + n) * row,
      );
      i += n;
    }
    return out;
  }) as KernelFunc;
}

/**
 * Replaces a wasm kernel by `make(original)`, once per `make`: a
 * replacement carries the set of makers applied so far, so a second call
 * with the same maker finds it and leaves it, while another maker wraps it
 * again. False when wasm lacks the kernel (or `make` cannot build one).
 */
export function replaceWasmKernel(
  name: string,
  make: (original: (a: KernelArgs) => Info) => KernelFunc | null,
): boolean {
  const original = tfjs.getKernel(name, "wasm");
  if (original === undefined) return false;
  type Marked = { [REPLACED]?: ReadonlySet<unknown> };
  const applied = (original.kernelFunc as Marked)[REPLACED];
  if (applied?.has(make)) return true;
  const replacement = make(original.kernelFunc as (a: KernelArgs) => Info);
  if (replacement === null) return false;
  (replacement as Marked)[REPLACED] = new Set([...(applied ?? []), make]);
  (replacement as { [BASE]?: unknown })[BASE] = baseWasmKernel(name);
  tfjs.unregisterKernel(name, "wasm");
  // The setup function (the wasm bindings) stays the original's.
  tfjs.registerKernel({ ...original, kernelFunc: replacement });
  return true;
}

/** An `Identity` that shares the buffer instead of copying it. */
function sharedIdentity(copy: (a: KernelArgs) => Info): KernelFunc {
  return ((args: KernelArgs): Info => {
    const x = args.inputs.x as Info;
    // Strings live outside the wasm heap; leave them to the original.
    if (x.dtype === "string") return copy(args);
    (args.backend as unknown as Backend).incRef(x.dataId);
    return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype } as Info;
  }) as KernelFunc;
}

/**
 * A `BatchMatMul` that runs unbatched products with a transposed operand as
 * an explicit transpose plus the plain product.
 */
function plainMatMul(plain: (a: KernelArgs) => Info): KernelFunc | null {
  const transposeKernel = tfjs.getKernel("Transpose", "wasm");
  if (transposeKernel === undefined) return null;
  const transpose = transposeKernel.kernelFunc as (a: KernelArgs) => Info;
  return ((args: KernelArgs): Info => {
    const attrs = args.attrs as { transposeA: boolean; transposeB: boolean };
    const a = args.inputs.a as Info, b = args.inputs.b as Info;
    if (!(attrs.transposeA || attrs.transposeB)) return plain(args);
    const batch = (s: readonly number[]) =>
      s.slice(0, -2).reduce((p, v) => p * v, 1);
    if (batch(a.shape) !== 1 || batch(b.shape) !== 1) return plain(args);
    const backend = args.backend as unknown as Backend;
    const swapLast = (x: Info): Info => {
      const perm = x.shape.map((_, i) => i);
      const r = perm.length;
      [perm[r - 2], perm[r - 1]] = [perm[r - 1], perm[r - 2]];
      return transpose({
        inputs: { x },
        backend: args.backend,
        attrs: { perm },
      });
    };
    const ta = attrs.transposeA ? swapLast(a) : a;
    const tb = attrs.transposeB ? swapLast(b) : b;
    try {
      return plain({
        inputs: { a: ta, b: tb },
        backend: args.backend,
        attrs: { ...args.attrs, transposeA: false, transposeB: false },
      });
    } finally {
      if (ta !== a) backend.disposeData(ta.dataId);
      if (tb !== b) backend.disposeData(tb.dataId);
    }
  }) as KernelFunc;
}

/**
 * A `Conv2DBackpropInput` that runs stride-1 and patchify convolutions on
 * the backend's fast kernels (see the module's documentation).
 */
function convInputGradAsConv(
  direct: (a: KernelArgs) => Info,
): KernelFunc | null {
  const get = (name: string) =>
    tfjs.getKernel(name, "wasm")?.kernelFunc as
      | ((a: KernelArgs) => Info)
      | undefined;
  const conv = get("Conv2D"), transpose = get("Transpose");
  const matmul = get("BatchMatMul"), reverse = get("Reverse");
  if (!conv || !transpose || !matmul || !reverse) return null;
  return ((args: KernelArgs): Info => {
    const dy = args.inputs.dy as Info, filter = args.inputs.filter as Info;
    const attrs = args.attrs as unknown as ConvAttrs;
    const inputShape = attrs.inputShape;
    if (
      attrs.dataFormat === "NCHW" || dy.dtype !== "float32" || !inputShape
    ) return direct(args);
    const info = convInfo(inputShape, filter.shape, attrs);
    const { filterHeight: kh, filterWidth: kw, strideHeight: sh } = info;
    const { strideWidth: sw, padInfo: pad } = info;
    if (info.dilationHeight !== 1 || info.dilationWidth !== 1) {
      return direct(args);
    }
    const backend = args.backend as unknown as Backend;
    const made: Info[] = [];
    const run = (k: (a: KernelArgs) => Info, inputs: object, a: object) => {
      const out = k({
        inputs: inputs as KernelArgs["inputs"],
        backend: args.backend,
        attrs: a as KernelArgs["attrs"],
      });
      made.push(out);
      return out;
    };
    const as = (x: Info, shape: number[]): Info =>
      ({ dataId: x.dataId, shape, dtype: x.dtype }) as Info;
    const [B, H, W, ci] = inputShape;
    const co = filter.shape[3];
    try {
      if (sh === 1 && sw === 1) {
        const pt = kh - 1 - pad.top, pb = kh - 1 - pad.bottom;
        const pl = kw - 1 - pad.left, pr = kw - 1 - pad.right;
        if (Math.min(pt, pb, pl, pr) < 0) return direct(args);
        // W'[i, j, co, ci] = W[kh - 1 - i, kw - 1 - j, ci, co]
        const flipped = run(reverse, { x: filter }, { dims: [0, 1] });
        const rotated = run(transpose, { x: flipped }, { perm: [0, 1, 3, 2] });
        const dx = conv({
          inputs: { x: dy, filter: rotated } as KernelArgs["inputs"],
          backend: args.backend,
          attrs: {
            strides: 1,
            pad: [[0, 0], [pt, pb], [pl, pr], [0, 0]],
            dataFormat: "NHWC",
            dilations: 1,
          } as unknown as KernelArgs["attrs"],
        });
        if (dx.shape[1] !== H || dx.shape[2] !== W) {
          backend.disposeData(dx.dataId);
          return direct(args);
        }
        return dx;
      }
      const patchify = kh === sh && kw === sw && pad.top === 0 &&
        pad.left === 0 && pad.bottom === 0 && pad.right === 0 &&
        H === info.outHeight * kh && W === info.outWidth * kw;
      if (!patchify) return direct(args);
      const oh = info.outHeight, ow = info.outWidth;
      // [kh kw ci, co] -> [co, kh kw ci], then one plain product.
      const wT = run(transpose, { x: as(filter, [kh * kw * ci, co]) }, {
        perm: [1, 0],
      });
      const cols = run(
        matmul,
        { a: as(dy, [1, B * oh * ow, co]), b: as(wT, [1, co, kh * kw * ci]) },
        { transposeA: false, transposeB: false },
      ); // [B oh ow, kh kw ci]
      const image = transpose({
        inputs: { x: as(cols, [B, oh, ow, kh, kw * ci]) } as KernelArgs[
          "inputs"
        ],
        backend: args.backend,
        attrs: { perm: [0, 1, 3, 2, 4] } as unknown as KernelArgs["attrs"],
      }); // [B, oh, kh, ow, kw ci] = [B, H, W, ci]
      return as(image, [B, H, W, ci]);
    } finally {
      for (const t of made) backend.disposeData(t.dataId);
    }
  }) as KernelFunc;
}
