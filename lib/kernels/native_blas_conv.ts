/**
 * The wasm backend's convolutions (`Conv2D` and its two gradients) as
 * matrix products on tfjs's wasm heap, run by the native BLAS of
 * `lib/kernels/native_blas.ts`, which hands its product to
 * {@linkcode registerNativeBlasConvolutions} when it loads.
 *
 * Two kinds map onto products without an im2col buffer the size of kh x kw
 * inputs: stride 1 (any kernel and padding), where every kernel tap is one
 * product over the whole batch on the input's zero-padded grid, and a
 * kernel equal to its stride without padding (the patchify projection),
 * where the patches are a permutation of the input and the whole
 * convolution is one product. The others go to the kernels underneath.
 *
 * The BLAS comes as an argument (this module does not import
 * native_blas.ts, which imports it). The module only defines functions:
 * nothing is replaced until {@linkcode registerNativeBlasConvolutions} runs.
 *
 * @module
 */

import { type ConvAttrs, convInfo } from "./_conv_info.ts";
import { replaceWasmKernel } from "./wasm_fast_paths.ts";
import {
  heapF32,
  type HeapGemm,
  heapIndex,
  type Info,
  type KernelArgs,
  type KernelFunc,
  type WasmBackend,
} from "./_wasm_heap.ts";

/**
 * The BLAS the convolutions run on: its product (`heapGemm` of
 * native_blas.ts), and whether it may run now (else the kernels underneath
 * do).
 */
export interface HeapBlas {
  /** The product on the heap. */
  gemm: HeapGemm;
  /** Whether the product may run now. */
  active(): boolean;
}

/**
 * How a convolution maps onto products, or null when it does not (left to
 * tfjs): `shifted` for stride 1 (any kernel and padding), `patches` for a
 * kernel equal to its stride without padding (the patchify projection).
 */
interface ConvPlan {
  kind: "shifted" | "patches";
  B: number;
  H: number;
  W: number;
  ci: number;
  co: number;
  kh: number;
  kw: number;
  oh: number;
  ow: number;
  top: number;
  left: number;
  /** Padded grid (shifted): rows and columns. */
  hp: number;
  wp: number;
}

function planConv(
  xShape: readonly number[],
  filterShape: readonly number[],
  attrs: ConvAttrs,
): ConvPlan | null {
  if (attrs.dataFormat === "NCHW") return null;
  if (xShape.length !== 4 || filterShape.length !== 4) return null;
  const c = convInfo(xShape, filterShape, attrs);
  if (c.dilationHeight !== 1 || c.dilationWidth !== 1) return null;
  const [B, H, W, ci] = xShape;
  const { filterHeight: kh, filterWidth: kw, outHeight: oh, outWidth: ow } = c;
  const { top, bottom, left, right } = c.padInfo;
  const co = filterShape[3];
  if (B * H * W * ci * co * oh * ow === 0) return null;
  const base = { B, H, W, ci, co, kh, kw, oh, ow, top, left };
  if (c.strideHeight === 1 && c.strideWidth === 1) {
    const hp = H + top + bottom, wp = W + left + right;
    if (Math.min(top, bottom, left, right) < 0) return null;
    if (oh !== hp - kh + 1 || ow !== wp - kw + 1) return null;
    return { kind: "shifted", ...base, hp, wp };
  }
  if (
    kh === c.strideHeight && kw === c.strideWidth &&
    top + bottom + left + right === 0 && H === oh * kh && W === ow * kw
  ) {
    return { kind: "patches", ...base, hp: H, wp: W };
  }
  return null;
}

/**
 * Copies `rows` runs of `len` floats from `src` (runs `srcStride` apart) to
 * `dst` (runs `dstStride` apart), within the heap.
 */
function copyRuns(
  heap: Float32Array,
  dst: number,
  dstStride: number,
  src: number,
  srcStride: number,
  rows: number,
  len: number,
): void {
  for (let r = 0; r < rows; r++) {
    heap.copyWithin(
      dst + r * dstStride,
      src + r * srcStride,
      src + r * srcStride + len,
    );
  }
}

/** Rows of slack after a padded grid: the largest shift of a kernel tap. */
const slackOf = (p: ConvPlan) => (p.kh - 1) * p.wp + (p.kw - 1);

/**
 * Patches [B, oh, ow, kh, kw, ci] of x [B, H, W, ci] (kernel = stride), or
 * back (`toImage`): the rows of one patch row are contiguous in both.
 */
function movePatches(
  heap: Float32Array,
  p: ConvPlan,
  image: number,
  patches: number,
  toImage: boolean,
) {
  const run = p.kw * p.ci;
  for (let b = 0; b < p.B; b++) {
    for (let y = 0; y < p.oh; y++) {
      for (let i = 0; i < p.kh; i++) {
        const img = image + ((b * p.H + y * p.kh + i) * p.W) * p.ci;
        const pat = patches + ((b * p.oh + y) * p.ow * p.kh + i) * run;
        if (toImage) copyRuns(heap, img, run, pat, p.kh * run, p.ow, run);
        else copyRuns(heap, pat, p.kh * run, img, run, p.ow, run);
      }
    }
  }
}

/**
 * Calls `body(tap, shift)` for each kernel tap (i, j): its index in the
 * filter, and how far its input rows lie from the output row on the padded
 * grid (in elements).
 */
function forEachTap(
  p: ConvPlan,
  body: (tap: number, shift: number) => void,
): void {
  for (let i = 0; i < p.kh; i++) {
    for (let j = 0; j < p.kw; j++) body(i * p.kw + j, (i * p.wp + j) * p.ci);
  }
}

/**
 * One side of a stride-1 plan on the padded grid [B, hp, wp, ch] (scratch):
 * the input's (x, its image at the padding's corner, with slack rows after)
 * or the output's (y, at the grid's corner).
 */
interface Grid {
  /** The grid's first element on the heap. */
  at: number;
  /** Its floats, slack included. */
  size: number;
  /** The image's rows, columns and channels, and its corner on the grid. */
  h: number;
  w: number;
  ch: number;
  top: number;
  left: number;
}

/**
 * Copies between an image [B, h, w, ch] at `image` and its window on the
 * grid: into it, or out of it (`fromGrid`).
 */
function gridWindow(
  heap: Float32Array,
  p: ConvPlan,
  image: number,
  g: Grid,
  fromGrid: boolean,
): void {
  const run = g.w * g.ch, gridRow = p.wp * g.ch;
  for (let b = 0; b < p.B; b++) {
    const img = image + b * g.h * run;
    const win = g.at + ((b * p.hp + g.top) * p.wp + g.left) * g.ch;
    if (fromGrid) copyRuns(heap, img, run, win, gridRow, g.h, run);
    else copyRuns(heap, win, gridRow, img, run, g.h, run);
  }
}

/** Zeros a grid. */
function clear(heap: Float32Array, g: Grid): void {
  heap.fill(0, g.at, g.at + g.size);
}

/** The image at `image` on its grid, zeros around it. */
function toGrid(heap: Float32Array, p: ConvPlan, image: number, g: Grid) {
  clear(heap, g);
  gridWindow(heap, p, image, g, false);
}

/**
 * What one convolution kernel call works with: the BLAS, the plan, the heap
 * view, the heap offsets of its three tensors (its two inputs in the order
 * tfjs names them, then its output), and its scratch.
 *
 * For a `patches` plan, `cols` [M, K] holds the patches of the M = B oh ow
 * output pixels, K = kh kw ci each. For a `shifted` plan, the products run
 * over the P = B hp wp pixels of the padded grid, between the grids `xg`
 * and `yg`.
 */
interface ConvCall {
  gemm: HeapGemm;
  p: ConvPlan;
  heap: Float32Array;
  t: readonly [number, number, number];
  cols: number;
  M: number;
  K: number;
  xg: Grid;
  yg: Grid;
  P: number;
}

/**
 * Runs `body` with the scratch of `p` (see {@linkcode ConvCall}), freed
 * afterwards.
 */
function withScratch(
  backend: WasmBackend,
  gemm: HeapGemm,
  p: ConvPlan,
  tensors: readonly [Info, Info, Info],
  body: (c: ConvCall) => void,
): void {
  const M = p.B * p.oh * p.ow, K = p.kh * p.kw * p.ci;
  const P = p.B * p.hp * p.wp;
  const sizes = p.kind === "patches"
    ? [M * K]
    : [(P + slackOf(p)) * p.ci, P * p.co];
  const made: Info[] = [];
  try {
    for (const n of sizes) made.push(backend.makeOutput([n], "float32"));
    // The view after the allocations: they may have grown the memory.
    const heap = heapF32(backend);
    const [first, second = -1] = made.map((t) => heapIndex(backend, t));
    const [a, b, out] = tensors.map((t) => heapIndex(backend, t));
    body({
      gemm,
      p,
      heap,
      t: [a, b, out],
      cols: first,
      M,
      K,
      xg: {
        at: first,
        size: sizes[0],
        h: p.H,
        w: p.W,
        ch: p.ci,
        top: p.top,
        left: p.left,
      },
      yg: {
        at: second,
        size: sizes[1] ?? 0,
        h: p.oh,
        w: p.ow,
        ch: p.co,
        top: 0,
        left: 0,
      },
      P,
    });
  } finally {
    for (const t of made) backend.disposeData(t.dataId);
  }
}

/** out [B, oh, ow, co] = conv(x, w). */
function convForward(c: ConvCall) {
  const { gemm, p, heap, t: [x, w, out], xg, yg, P } = c;
  const { ci, co } = p;
  if (p.kind === "patches") {
    movePatches(heap, p, x, c.cols, false);
    gemm(heap, false, false, c.M, co, c.K, c.cols, c.K, w, co, 0, out, co);
    return;
  }
  toGrid(heap, p, x, xg);
  const xs = xg.at, ys = yg.at;
  forEachTap(p, (tap, shift) => {
    const wt = w + tap * ci * co, beta = tap === 0 ? 0 : 1;
    gemm(heap, false, false, P, co, ci, xs + shift, ci, wt, co, beta, ys, co);
  });
  gridWindow(heap, p, out, yg, true);
}

/** dw [kh, kw, ci, co] = the filter gradient of conv(x, w) given dy. */
function convFilterGrad(c: ConvCall) {
  const { gemm, p, heap, t: [x, dy, dw], xg, yg, P } = c;
  const { ci, co } = p;
  if (p.kind === "patches") {
    movePatches(heap, p, x, c.cols, false);
    gemm(heap, true, false, c.K, co, c.M, c.cols, c.K, dy, co, 0, dw, co);
    return;
  }
  toGrid(heap, p, x, xg);
  toGrid(heap, p, dy, yg);
  const xs = xg.at, ys = yg.at;
  forEachTap(p, (tap, shift) => {
    const dwt = dw + tap * ci * co;
    gemm(heap, true, false, ci, co, P, xs + shift, ci, ys, co, 0, dwt, co);
  });
}

/** dx [B, H, W, ci] = the input gradient of conv(x, w) given dy. */
function convInputGrad(c: ConvCall) {
  const { gemm, p, heap, t: [dy, w, dx], xg, yg, P } = c;
  const { ci, co } = p;
  if (p.kind === "patches") {
    gemm(heap, false, true, c.M, c.K, co, dy, co, w, co, 0, c.cols, c.K);
    movePatches(heap, p, dx, c.cols, true);
    return;
  }
  toGrid(heap, p, dy, yg);
  clear(heap, xg);
  const xs = xg.at, ys = yg.at;
  forEachTap(p, (tap, shift) => {
    const wt = w + tap * ci * co;
    gemm(heap, false, true, P, ci, co, ys, co, wt, co, 1, xs + shift, ci);
  });
  gridWindow(heap, p, dx, xg, true);
}

/** One of the three convolution kernels, as {@linkcode convKernel} runs it. */
interface ConvKernel {
  /** Its two float32 inputs, by tfjs's names (dy, where there is one, is checked against the plan). */
  inputs: readonly [string, string];
  /** The input's and the filter's shapes (from the inputs or the attributes). */
  shapes(
    a: Info,
    b: Info,
    attrs: ConvAttrs,
  ): readonly [readonly number[] | undefined, readonly number[] | undefined];
  /** The output's shape. */
  outShape(p: ConvPlan, attrs: ConvAttrs): number[];
  run(c: ConvCall): void;
}

/** The BLAS given to {@linkcode registerNativeBlasConvolutions}. */
let blas: HeapBlas | null = null;

/**
 * A replacement of a convolution kernel by `kernel`, for the calls that
 * plan while the BLAS is active (the others go to the kernel underneath).
 */
function convKernel(kernel: ConvKernel) {
  return (original: (a: KernelArgs) => Info): KernelFunc =>
    ((args: KernelArgs): Info => {
      const [a, b] = kernel.inputs.map((n) => args.inputs[n] as Info);
      const attrs = args.attrs as unknown as ConvAttrs;
      const [xShape, filterShape] = kernel.shapes(a, b, attrs);
      const p = a.dtype === "float32" && b.dtype === "float32" && xShape &&
          filterShape
        ? planConv(xShape, filterShape, attrs)
        : null;
      const dy = args.inputs.dy;
      if (
        p === null || blas === null || !blas.active() ||
        (dy !== undefined && (dy.shape[1] !== p.oh || dy.shape[2] !== p.ow))
      ) return original(args);
      const backend = args.backend as unknown as WasmBackend;
      const out = backend.makeOutput(kernel.outShape(p, attrs), "float32");
      withScratch(backend, blas.gemm, p, [a, b, out], kernel.run);
      return out;
    }) as KernelFunc;
}

/** The three kernels, by tfjs's names. */
const KERNELS: readonly (readonly [string, ConvKernel])[] = [
  ["Conv2D", {
    inputs: ["x", "filter"],
    shapes: (x, filter) => [x.shape, filter.shape],
    outShape: (p) => [p.B, p.oh, p.ow, p.co],
    run: convForward,
  }],
  ["Conv2DBackpropFilter", {
    inputs: ["x", "dy"],
    shapes: (x, _dy, attrs) => [x.shape, attrs.filterShape],
    outShape: (_p, attrs) => [...attrs.filterShape!],
    run: convFilterGrad,
  }],
  ["Conv2DBackpropInput", {
    inputs: ["dy", "filter"],
    shapes: (_dy, filter, attrs) => [attrs.inputShape, filter.shape],
    outShape: (_p, attrs) => [...attrs.inputShape!],
    run: convInputGrad,
  }],
];

/** Their replacements (one maker each, so replacing again is a no-op). */
const REPLACEMENTS = KERNELS.map(([name, kernel]) =>
  [name, convKernel(kernel)] as const
);

/**
 * Replaces the wasm backend's `Conv2D`, `Conv2DBackpropFilter` and
 * `Conv2DBackpropInput` for float32 NHWC convolutions without dilation that
 * have stride 1 (any kernel and padding) or a kernel equal to its stride
 * without padding (the patchify projection), running their products on
 * `on` while it is active; the others go to the kernels underneath. Stride 1
 * needs no im2col buffer: the input is laid out once on its zero-padded grid
 * [B, H + pads, W + pads, ci], where the tap (i, j) of every output pixel is
 * the same shift of rows, so each tap is one product over the whole batch
 * (the padded grid's extra rows and columns are computed and dropped, about
 * 13 % more work for a 3 x 3 kernel on a 32 x 32 image). Called by
 * `registerNativeBlas` (native_blas.ts) with its BLAS; returns the names of
 * the kernels replaced.
 */
export function registerNativeBlasConvolutions(on: HeapBlas): string[] {
  blas = on;
  const done: string[] = [];
  for (const [name, make] of REPLACEMENTS) {
    if (replaceWasmKernel(name, make)) done.push(name);
  }
  return done;
}
