/**
 * Gradient kernels that the tfjs wasm backend lacks, registered for `wasm`.
 *
 * tfjs 4.22's wasm backend has every forward kernel the models use, but the
 * gradients of two of those ops call kernels it does not have:
 *
 * - `Conv2DBackpropFilter` (the filter gradient of `tf.conv2d` and
 *   `tf.fused.conv2d`);
 * - `UnsortedSegmentSum` (the gradient of `tf.gather`).
 *
 * Both are supplied here, written against the wasm backend's own memory:
 *
 * - `Conv2DBackpropFilter` lowers the convolution to matrix products,
 *   dW[K, Co] = sum over chunks of cols[K, m] dy[m, Co], K = kh * kw * ci,
 *   where `cols` holds, for every filter tap and input channel, the input
 *   value each of m output positions sees (zero in the padding). `cols` is
 *   filled by a plain loop over the wasm heap (the backend's StridedSlice,
 *   Slice and Transpose kernels are 5 to 50 times slower at it) and
 *   multiplied by the backend's `BatchMatMul` (XNNPACK) in the one layout it
 *   runs fast: neither operand transposed (with `transposeA` it is 10 times
 *   slower). Chunks of output rows keep `cols` under
 *   {@linkcode COLS_CHUNK_ELEMENTS} floats whatever the batch, where a full
 *   im2col would be kh * kw times the input. A patchify convolution (kernel =
 *   stride, no padding), where `cols` is a permutation of the input, takes
 *   one chunk: one gather and one matrix product.
 * - `UnsortedSegmentSum` is the backend's `ScatterNd` (which adds
 *   duplicates) when every id is in range, else a scatter-add loop over the
 *   heap that drops the others, as TensorFlow does: O(x.size) either way,
 *   where the cpu backend's version is O(numSegments * x.size).
 *
 * cpu and webgpu have every kernel these gradients need.
 *
 * This module imports tfjs directly (a kernel module is a leaf) and only
 * defines functions.
 *
 * @module
 */

import { baseWasmKernel } from "./wasm_fast_paths.ts";
import { type ConvAttrs, convInfo, type Shape4 } from "./_conv_info.ts";
import * as tf from "@tensorflow/tfjs";

/** Largest `cols` chunk, in float32 elements (16 MiB), of Conv2DBackpropFilter. */
export const COLS_CHUNK_ELEMENTS = 1 << 22;

/** A kernel function as tfjs registers it. */
type KernelFunc = Parameters<typeof tf.registerKernel>[0]["kernelFunc"];

/** What a kernel receives: its inputs, the backend and the attributes. */
type KernelArgs = Parameters<KernelFunc>[0];

/** A tensor as kernels see it: data id, shape and dtype, no engine tracking. */
type Info = NonNullable<KernelArgs["inputs"][string]>;

/** The parts of tfjs's `BackendWasm` that these kernels use. */
interface WasmBackend {
  makeOutput(shape: number[], dtype: tf.DataType): Info;
  disposeData(dataId: unknown, force?: boolean): boolean;
  typedArrayFromHeap(info: Info): Float32Array | Int32Array | Uint8Array;
}

/** A kernel of this module, or one of the wasm backend's, called directly. */
type WasmKernel = (args: KernelArgs) => Info;

/**
 * Registers, for the `wasm` backend, every kernel of this module that the
 * backend lacks, and returns the names of the kernels of this module that are
 * registered (the same list on every call: registering twice is a no-op). A
 * kernel that tfjs itself provides is left alone and not listed.
 *
 * `installKernels` (`lib/kernels/mod.ts`) calls it, which `initBackend`
 * does before a backend starts.
 *
 * @example
 * ```ts
 * import { registerWasmGradientKernels } from "tokenlab/kernels/wasm_grad.ts";
 * const names = registerWasmGradientKernels();
 * console.assert(names.includes("Conv2DBackpropFilter"));
 * ```
 */
export function registerWasmGradientKernels(): string[] {
  const registered: string[] = [];
  for (const [kernelName, kernelFunc] of ownKernels()) {
    const existing = tf.getKernel(kernelName, "wasm");
    if (existing === undefined) {
      tf.registerKernel({
        kernelName,
        backendName: "wasm",
        kernelFunc: kernelFunc as KernelFunc,
      });
      registered.push(kernelName);
    } else if (baseWasmKernel(kernelName) === kernelFunc) {
      // ours, possibly wrapped by a faster path (native_blas_conv.ts)
      registered.push(kernelName);
    }
  }
  return registered;
}

function ownKernels(): [string, WasmKernel][] {
  return [
    ["Conv2DBackpropFilter", conv2DBackpropFilterWasm],
    ["UnsortedSegmentSum", unsortedSegmentSumWasm],
  ];
}

function wasmKernel(name: string): WasmKernel {
  const config = tf.getKernel(name, "wasm");
  if (config === undefined) {
    throw new Error(
      `the wasm backend of tfjs ${tf.version_core} has no ${name} kernel, which tokenlab's wasm gradient kernels are built on; use the cpu backend (\`backend: "cpu"\`) or the tfjs version pinned in deno.json`,
    );
  }
  return config.kernelFunc as unknown as WasmKernel;
}

function input(kernel: string, args: KernelArgs, name: string): Info {
  const info = args.inputs[name];
  if (info === undefined) {
    throw new Error(
      `${kernel} on wasm: expected an input named "${name}", found only ${
        Object.keys(args.inputs).join(", ") || "none"
      }; call it through the tfjs op, not the kernel`,
    );
  }
  return info;
}

function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function requireDtype(
  kernel: string,
  what: string,
  info: Info,
  dtypes: readonly tf.DataType[],
): void {
  if (!dtypes.includes(info.dtype)) {
    throw new Error(
      `${kernel} on wasm: ${what} must be ${
        dtypes.join(" or ")
      }, found ${info.dtype}; cast it with tf.cast before the op`,
    );
  }
}

/**
 * The filter gradient of a 2-D convolution (NHWC, dilation 1):
 * dW[kh, kw, ci, co] = sum over b, oh, ow of
 * xpad[b, oh * sh + kh, ow * sw + kw, ci] * dy[b, oh, ow, co].
 */
function conv2DBackpropFilterWasm(args: KernelArgs): Info {
  const { backend, attrs } = args;
  const wasm = backend as WasmBackend;
  const a = attrs as unknown as ConvAttrs & { filterShape: Shape4 };
  const name = "Conv2DBackpropFilter";
  const x = input(name, args, "x"), dy = input(name, args, "dy");
  requireDtype(name, "x", x, ["float32"]);
  requireDtype(name, "dy", dy, ["float32"]);
  if (a.dataFormat === "NCHW") {
    throw new Error(
      `${name} on wasm: dataFormat NCHW is not supported (the wasm Conv2D itself only runs NHWC); transpose the input to NHWC`,
    );
  }
  const info = convInfo(x.shape, a.filterShape, a, 1);
  const {
    batchSize: nb,
    inHeight: h,
    inWidth: w,
    inChannels: ci,
    outHeight: oh,
    outWidth: ow,
    outChannels: co,
    filterHeight: kh,
    filterWidth: kw,
    strideHeight: sh,
    strideWidth: sw,
  } = info;
  const expected = [nb, oh, ow, co];
  if (dy.shape.join() !== expected.join()) {
    throw new Error(
      `${name} on wasm: dy must have shape [${expected}] for x [${x.shape}] and filter [${a.filterShape}], found [${dy.shape}]`,
    );
  }
  const geometry: Geometry = {
    h,
    w,
    ci,
    oh,
    ow,
    kh,
    kw,
    sh,
    sw,
    top: info.padInfo.top,
    left: info.padInfo.left,
  };
  const k = kh * kw * ci;
  const rows = nb * oh; // output rows (b, oy): the unit of chunking
  const out = wasm.makeOutput([k, co], "float32");
  if (rows * ow === 0 || k * co === 0) {
    wasm.typedArrayFromHeap(out).fill(0);
    return { dataId: out.dataId, shape: a.filterShape, dtype: "float32" };
  }
  // Patchify (kernel = stride, no padding): cols is a permutation of (part
  // of) x, no larger than x, so it takes one chunk and one matrix product.
  // The generic fill below is already the fastest gather for it (its padding
  // branches are never taken): measured on wasm, a patch-ordered loop is 2x
  // slower for k <= 4 and the backend's 6-D Transpose kernel 20x slower.
  const patchify = kh === sh && kw === sw && info.padInfo.top === 0 &&
    info.padInfo.left === 0;
  const rowsPerChunk = patchify ? rows : Math.max(
    1,
    Math.min(rows, Math.floor(COLS_CHUNK_ELEMENTS / (k * ow))),
  );
  const batchMatMul = wasmKernel("BatchMatMul");
  for (let r0 = 0; r0 < rows; r0 += rowsPerChunk) {
    const r1 = Math.min(rows, r0 + rowsPerChunk);
    const m = (r1 - r0) * ow;
    const cols = wasm.makeOutput([k, m], "float32");
    const whole = r0 === 0 && r1 === rows;
    const dyChunk = whole ? null : wasm.makeOutput([m, co], "float32");
    // Views are taken after the allocations: an allocation may grow the wasm
    // memory, which detaches every view of the old buffer.
    const xv = wasm.typedArrayFromHeap(x) as Float32Array;
    const colsv = wasm.typedArrayFromHeap(cols) as Float32Array;
    fillCols(xv, colsv, geometry, r0, r1);
    if (dyChunk !== null) {
      const dyv = wasm.typedArrayFromHeap(dy) as Float32Array;
      (wasm.typedArrayFromHeap(dyChunk) as Float32Array).set(
        dyv.subarray(r0 * ow * co, r1 * ow * co),
      );
    }
    const part = batchMatMul({
      inputs: {
        a: cols,
        b: dyChunk ?? { dataId: dy.dataId, shape: [m, co], dtype: "float32" },
      },
      backend,
      attrs: { transposeA: false, transposeB: false },
    });
    wasm.disposeData(cols.dataId);
    if (dyChunk !== null) wasm.disposeData(dyChunk.dataId);
    const outv = wasm.typedArrayFromHeap(out) as Float32Array;
    const partv = wasm.typedArrayFromHeap(part) as Float32Array;
    if (r0 === 0) {
      outv.set(partv);
    } else {
      for (let i = 0; i < partv.length; i++) outv[i] += partv[i];
    }
    wasm.disposeData(part.dataId);
  }
  return { dataId: out.dataId, shape: a.filterShape, dtype: "float32" };
}

/** What the fill loop needs to know of a convolution. */
interface Geometry {
  h: number;
  w: number;
  ci: number;
  oh: number;
  ow: number;
  kh: number;
  kw: number;
  sh: number;
  sw: number;
  top: number;
  left: number;
}

/**
 * Writes cols[(ky * kw + kx) * ci + c, j] = xpad[b, oy * sh + ky,
 * ox * sw + kx, c] for the output positions j of rows r0..r1 (row = b * oh +
 * oy), with zeros where the tap falls in the padding.
 */
function fillCols(
  x: Float32Array,
  cols: Float32Array,
  g: Geometry,
  r0: number,
  r1: number,
): void {
  const { h, w, ci, oh, ow, kh, kw, sh, sw, top, left } = g;
  const m = (r1 - r0) * ow;
  const xStep = sw * ci;
  for (let kx = 0; kx < kw; kx++) {
    // Output columns whose tap kx lands inside the image: 0 <= ox*sw - left + kx < w.
    const lo = Math.min(ow, Math.max(0, Math.ceil((left - kx) / sw)));
    const hi = Math.max(
      lo,
      Math.min(ow, Math.floor((w - 1 + left - kx) / sw) + 1),
    );
    const edge = lo > 0 || hi < ow;
    for (let ky = 0; ky < kh; ky++) {
      for (let c = 0; c < ci; c++) {
        const row = ((ky * kw + kx) * ci + c) * m;
        for (let r = r0; r < r1; r++) {
          const b = Math.floor(r / oh);
          const iy = (r - b * oh) * sh - top + ky;
          const start = row + (r - r0) * ow;
          if (iy < 0 || iy >= h) {
            cols.fill(0, start, start + ow);
            continue;
          }
          if (edge) {
            cols.fill(0, start, start + lo);
            cols.fill(0, start + hi, start + ow);
          }
          let src = ((b * h + iy) * w + lo * sw - left + kx) * ci + c;
          for (let ox = lo; ox < hi; ox++) {
            cols[start + ox] = x[src];
            src += xStep;
          }
        }
      }
    }
  }
}

/**
 * Sums the rows of `x` into `numSegments` buckets by `segmentIds`; ids out of
 * [0, numSegments) are dropped, as TensorFlow does.
 */
function unsortedSegmentSumWasm(args: KernelArgs): Info {
  const wasm = args.backend as WasmBackend;
  const numSegments = (args.attrs as { numSegments: number }).numSegments;
  const name = "UnsortedSegmentSum";
  const x = input(name, args, "x");
  const segmentIds = input(name, args, "segmentIds");
  requireDtype(name, "x", x, ["float32", "int32"]);
  requireDtype(name, "segmentIds", segmentIds, ["int32"]);
  const idsShape = segmentIds.shape;
  if (
    idsShape.length > x.shape.length ||
    idsShape.some((d, i) => d !== x.shape[i])
  ) {
    throw new Error(
      `${name} on wasm: segmentIds' shape [${idsShape}] must be a prefix of x's shape [${x.shape}]; reshape the ids to match the leading axes of x`,
    );
  }
  if (!Number.isInteger(numSegments) || numSegments < 0) {
    throw new Error(
      `${name} on wasm: numSegments must be a non-negative integer, found ${numSegments}`,
    );
  }
  const inner = sizeOf(x.shape.slice(idsShape.length));
  const outShape = [numSegments, ...x.shape.slice(idsShape.length)];
  const ids = wasm.typedArrayFromHeap(segmentIds) as Int32Array;
  let inRange = true;
  for (let i = 0; i < ids.length && inRange; i++) {
    inRange = ids[i] >= 0 && ids[i] < numSegments;
  }
  if (inRange && ids.length > 0 && inner > 0) {
    // The backend's ScatterNd zero-fills, adds duplicates and is up to 1.5
    // times faster than the loop below on rows of hundreds of floats (on par
    // on short rows), but does not check bounds: only for ids in range.
    return wasmKernel("ScatterNd")({
      inputs: {
        indices: {
          dataId: segmentIds.dataId,
          shape: [ids.length, 1],
          dtype: "int32",
        },
        updates: {
          dataId: x.dataId,
          shape: [ids.length, inner],
          dtype: x.dtype,
        },
      },
      backend: args.backend,
      attrs: { shape: outShape },
    });
  }
  const out = wasm.makeOutput(outShape, x.dtype);
  // A fresh view: the allocation may have grown (and detached) the heap.
  const idv = wasm.typedArrayFromHeap(segmentIds) as Int32Array;
  if (x.dtype === "float32") {
    segmentSumF32(
      wasm.typedArrayFromHeap(x) as Float32Array,
      idv,
      inner,
      wasm.typedArrayFromHeap(out) as Float32Array,
    );
  } else {
    segmentSumI32(
      wasm.typedArrayFromHeap(x) as Int32Array,
      idv,
      inner,
      wasm.typedArrayFromHeap(out) as Int32Array,
    );
  }
  return out;
}

// Two monomorphic copies of one loop: V8 compiles a loop over a
// `Float32Array | Int32Array` union two to three times slower.

function segmentSumF32(
  x: Float32Array,
  ids: Int32Array,
  inner: number,
  out: Float32Array,
): void {
  const numSegments = out.length / inner;
  out.fill(0);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (id < 0 || id >= numSegments) continue;
    const o = id * inner, s = i * inner;
    for (let j = 0; j < inner; j++) out[o + j] += x[s + j];
  }
}

function segmentSumI32(
  x: Int32Array,
  ids: Int32Array,
  inner: number,
  out: Int32Array,
): void {
  const numSegments = out.length / inner;
  out.fill(0);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (id < 0 || id >= numSegments) continue;
    const o = id * inner, s = i * inner;
    for (let j = 0; j < inner; j++) out[o + j] = (out[o + j] + x[s + j]) | 0;
  }
}
