/**
 * The machine's OpenBLAS under the wasm backend's matrix products, through
 * Deno's FFI.
 *
 * WebAssembly has 128-bit vectors only, so the best wasm matrix product (the
 * XNNPACK inside tfjs's wasm backend) peaks at about a third of what an AVX2
 * BLAS does on the same core: on the 2-core machine a [4160, 192] x
 * [192, 576] product ran at 34 GFLOP/s in XNNPACK and at 115 GFLOP/s in
 * OpenBLAS 0.3.21 on one thread. tfjs's wasm tensors live in one
 * `WebAssembly.Memory`, an ordinary buffer that Deno's FFI can hand to a
 * native function, so when an OpenBLAS library is found this module replaces
 * the wasm backend's `BatchMatMul` and `_FusedMatMul` (linear activation)
 * kernels by `cblas_sgemm` calls that read and write the tensors in place:
 * no copies, and transposed operands are free (BLAS's transpose flags).
 * Stride-1 convolutions and their two gradients go the same way (see
 * {@linkcode registerNativeBlasConvolutions}).
 *
 * Where it runs: only with the FFI permission (`--allow-ffi` or `-A`;
 * notebooks always have it) and an OpenBLAS library. The library is the one
 * `TOKENLAB_BLAS` names (a path; `off` turns the native path off), else the
 * first OpenBLAS found among the system's (Debian's `libopenblas0-pthread`,
 * which `deno task setup` installs) and a copy unpacked in `data/cache/`.
 * Without one, the wasm backend keeps its own kernels and
 * {@linkcode nativeBlasInfo} says why. A reference BLAS (Debian's
 * `libblas3`) is never used: it is slower than XNNPACK.
 *
 * OpenBLAS runs on as many threads as the wasm backend
 * (`TOKENLAB_WASM_THREADS`, default 1). Results equal tfjs's up to float32
 * summation order.
 *
 * This module imports tfjs directly (a kernel module is a leaf) and only
 * defines functions: nothing is loaded until {@linkcode registerNativeBlas}
 * runs (`installKernels` of `lib/kernels/mod.ts` calls it).
 *
 * @module
 */

import * as tfjs from "@tensorflow/tfjs";
import { fileURLToPath } from "node:url";
import { type ConvAttrs, replaceWasmKernel } from "./wasm_fast_paths.ts";
import {
  addressOf,
  heapF32,
  type Info,
  type KernelArgs,
  type WasmBackend,
} from "./_wasm_heap.ts";

type KernelFunc = Parameters<typeof tfjs.registerKernel>[0]["kernelFunc"];

/** The environment variable naming the BLAS library (a path, or `off`). */
export const NATIVE_BLAS_ENV = "TOKENLAB_BLAS";

/** What {@linkcode nativeBlasInfo} reports. */
export interface NativeBlasInfo {
  /** Whether the wasm backend's products run on the native BLAS. */
  active: boolean;
  /** The library loaded (a path or a name the system loader resolved). */
  library?: string;
  /** OpenBLAS's own description of its build (`openblas_get_config`). */
  config?: string;
  /** Threads OpenBLAS runs with. */
  threads?: number;
  /** The wasm kernels replaced. */
  kernels: string[];
  /** Why it is active or not, in a sentence. */
  reason: string;
}

const SGEMM = {
  cblas_sgemm: {
    parameters: [
      "i32", // order
      "i32", // transA
      "i32", // transB
      "i32", // M
      "i32", // N
      "i32", // K
      "f32", // alpha
      "buffer", // A
      "i32", // lda
      "buffer", // B
      "i32", // ldb
      "f32", // beta
      "buffer", // C
      "i32", // ldc
    ],
    result: "void",
  },
  openblas_get_config: { parameters: [], result: "pointer" },
  openblas_set_num_threads: { parameters: ["i32"], result: "void" },
} as const;

type BlasLibrary = Deno.DynamicLibrary<typeof SGEMM>;

const ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112;

let library: BlasLibrary | null = null;
let info: NativeBlasInfo = {
  active: false,
  kernels: [],
  reason: "not loaded yet",
};

/** The state of the native path: loaded or not, which library, and why. */
export function nativeBlasInfo(): NativeBlasInfo {
  return { ...info, kernels: [...info.kernels] };
}

/** Whether the wasm backend's products run on the native BLAS. */
export function nativeBlasActive(): boolean {
  return library !== null && info.active && enabled;
}

let enabled = true;

/**
 * Turns the native path off (false) or back on (true) for the kernels that
 * follow, to compare the two in one process; returns whether it is active
 * now (never, when no library was loaded).
 *
 * @example
 * ```ts
 * import { useNativeBlas } from "tokenlab/kernels/native_blas.ts";
 * useNativeBlas(false); // tfjs's own wasm kernels from here on
 * useNativeBlas(true);
 * ```
 */
export function useNativeBlas(on: boolean): boolean {
  enabled = on;
  return nativeBlasActive();
}

/** Candidate libraries, most specific first. */
function candidates(): string[] {
  const triple = Deno.build.arch === "aarch64"
    ? "aarch64-linux-gnu"
    : "x86_64-linux-gnu";
  const out: string[] = [];
  if (Deno.build.os === "linux") {
    // The system loader's choice (Debian's alternatives symlink), then the
    // pthread and OpenMP builds by path.
    out.push("libopenblas.so.0");
    for (const flavour of ["openblas-pthread", "openblas-openmp"]) {
      out.push(`/usr/lib/${triple}/${flavour}/libopenblas.so.0`);
    }
  } else if (Deno.build.os === "darwin") {
    out.push(
      "/opt/homebrew/opt/openblas/lib/libopenblas.dylib",
      "/usr/local/opt/openblas/lib/libopenblas.dylib",
    );
  }
  const here = new URL(
    `../../data/cache/openblas/usr/lib/${triple}/openblas-pthread/libopenblas.so.0`,
    import.meta.url,
  );
  if (here.protocol === "file:") out.push(fileURLToPath(here));
  return out;
}

function permitted(name: "ffi" | "env"): boolean {
  try {
    return Deno.permissions.querySync({ name }).state === "granted";
  } catch {
    return false;
  }
}

function open(path: string): BlasLibrary {
  return Deno.dlopen(path, SGEMM);
}

/**
 * Loads OpenBLAS (see the module's documentation for where it looks) and
 * replaces the wasm backend's product and convolution kernels by native ones.
 * Idempotent. Returns {@linkcode nativeBlasInfo}.
 *
 * @param threads the threads OpenBLAS runs with (the wasm backend's count)
 * @throws {Error} when `TOKENLAB_BLAS` names a library that cannot be used
 */
export function registerNativeBlas(threads = 1): NativeBlasInfo {
  if (library !== null) {
    library.symbols.openblas_set_num_threads(threads);
    info = { ...info, threads };
    return nativeBlasInfo();
  }
  const wanted = permitted("env")
    ? Deno.env.get(NATIVE_BLAS_ENV)?.trim()
    : undefined;
  if (wanted !== undefined && /^(off|0|none|false|no)$/i.test(wanted)) {
    info = {
      active: false,
      kernels: [],
      reason: `${NATIVE_BLAS_ENV}=${wanted}: the wasm backend's own kernels`,
    };
    return nativeBlasInfo();
  }
  if (!permitted("ffi")) {
    if (wanted) {
      throw new Error(
        `${NATIVE_BLAS_ENV}=${wanted} asks for a native BLAS, but this process has no FFI permission; run with --allow-ffi (or -A), or unset ${NATIVE_BLAS_ENV}`,
      );
    }
    info = {
      active: false,
      kernels: [],
      reason: "no FFI permission (--allow-ffi): the wasm backend's own kernels",
    };
    return nativeBlasInfo();
  }
  const tried: string[] = [];
  for (const path of wanted ? [wanted] : candidates()) {
    try {
      library = open(path);
      info = { active: false, kernels: [], library: path, reason: "" };
      break;
    } catch (e) {
      tried.push(`${path}: ${(e as Error).message.split("\n")[0]}`);
    }
  }
  if (library === null) {
    if (wanted) {
      throw new Error(
        `${NATIVE_BLAS_ENV}=${wanted}: expected the path of an OpenBLAS library (libopenblas.so.0, with cblas_sgemm and openblas_get_config), but it could not be loaded (${
          tried.join("; ")
        }); fix the path, or unset ${NATIVE_BLAS_ENV} to let tokenlab look for one`,
      );
    }
    info = {
      active: false,
      kernels: [],
      reason:
        `no OpenBLAS found (install Debian's libopenblas0-pthread: deno task setup does it); the wasm backend's own kernels`,
    };
    return nativeBlasInfo();
  }
  library.symbols.openblas_set_num_threads(threads);
  const config = new Deno.UnsafePointerView(
    library.symbols.openblas_get_config()!,
  ).getCString();
  const kernels: string[] = [];
  if (replaceWasmKernel("BatchMatMul", nativeMatMul)) {
    kernels.push("BatchMatMul");
  }
  if (replaceWasmKernel("_FusedMatMul", nativeFusedMatMul)) {
    kernels.push("_FusedMatMul");
  }
  kernels.push(...registerNativeBlasConvolutions());
  info = {
    active: true,
    library: info.library,
    config,
    threads,
    kernels,
    reason: `OpenBLAS (${config}) on ${threads} thread(s)`,
  };
  return nativeBlasInfo();
}

// ---- the wasm heap ----

/** A tensor's first element, as an index into the float32 heap. */
function at(backend: WasmBackend, t: Info): number {
  return addressOf(backend, t) >> 2;
}

/**
 * C[M, N] = alpha op(A) op(B) + beta C on tfjs's wasm heap (`heap`, a
 * float32 view of its whole memory; a, b and c are element indices into it),
 * row-major, with leading dimensions given in elements.
 *
 * @throws {Error} when no native BLAS is loaded
 */
export function heapGemm(
  heap: Float32Array,
  transA: boolean,
  transB: boolean,
  M: number,
  N: number,
  K: number,
  a: number,
  lda: number,
  b: number,
  ldb: number,
  beta: number,
  c: number,
  ldc: number,
  alpha = 1,
): void {
  if (library === null) {
    throw new Error(
      "heapGemm: no native BLAS is loaded (check nativeBlasActive() first)",
    );
  }
  library.symbols.cblas_sgemm(
    ROW_MAJOR,
    transA ? TRANS : NO_TRANS,
    transB ? TRANS : NO_TRANS,
    M,
    N,
    K,
    alpha,
    heap.subarray(a),
    lda,
    heap.subarray(b),
    ldb,
    beta,
    heap.subarray(c),
    ldc,
  );
}

const prod = (s: readonly number[]) => s.reduce((p, v) => p * v, 1);

interface Product {
  batch: number[];
  M: number;
  N: number;
  K: number;
  strideA: number;
  strideB: number;
}

/**
 * The shape of a (batched, broadcast) product, or null when its batch
 * broadcasting is not "equal, or one side unbatched" (left to tfjs).
 */
function productOf(
  a: Info,
  b: Info,
  transA: boolean,
  transB: boolean,
): Product | null {
  const ra = a.shape.length, rb = b.shape.length;
  if (ra < 2 || rb < 2) return null;
  const M = transA ? a.shape[ra - 1] : a.shape[ra - 2];
  const K = transA ? a.shape[ra - 2] : a.shape[ra - 1];
  const N = transB ? b.shape[rb - 2] : b.shape[rb - 1];
  const kb = transB ? b.shape[rb - 1] : b.shape[rb - 2];
  if (K !== kb) return null; // the original throws tfjs's own message
  let batch: number[];
  try {
    batch = tfjs.backend_util.assertAndGetBroadcastShape(
      a.shape.slice(0, -2),
      b.shape.slice(0, -2),
    );
  } catch {
    return null;
  }
  const n = prod(batch), na = prod(a.shape.slice(0, -2));
  const nb = prod(b.shape.slice(0, -2));
  if ((na !== n && na !== 1) || (nb !== n && nb !== 1)) return null;
  return {
    batch,
    M,
    N,
    K,
    strideA: na === 1 ? 0 : M * K,
    strideB: nb === 1 ? 0 : K * N,
  };
}

/** Runs a product into `out` (bias rows already there when `beta` is 1). */
function runProduct(
  backend: WasmBackend,
  p: Product,
  a: Info,
  b: Info,
  transA: boolean,
  transB: boolean,
  out: Info,
  beta: number,
): void {
  const heap = heapF32(backend);
  const { M, N, K } = p;
  const oa = at(backend, a), ob = at(backend, b), oc = at(backend, out);
  const count = prod(p.batch);
  if (K === 0) {
    if (beta === 0) heap.fill(0, oc, oc + count * M * N);
    return;
  }
  for (let i = 0; i < count; i++) {
    heapGemm(
      heap,
      transA,
      transB,
      M,
      N,
      K,
      oa + i * p.strideA,
      transA ? M : K,
      ob + i * p.strideB,
      transB ? K : N,
      beta,
      oc + i * M * N,
      N,
    );
  }
}

function nativeMatMul(original: (a: KernelArgs) => Info): KernelFunc {
  return ((args: KernelArgs): Info => {
    const a = args.inputs.a as Info, b = args.inputs.b as Info;
    const { transposeA, transposeB } = args.attrs as {
      transposeA: boolean;
      transposeB: boolean;
    };
    const p = a.dtype === "float32" && b.dtype === "float32"
      ? productOf(a, b, transposeA, transposeB)
      : null;
    if (p === null || !nativeBlasActive()) return original(args);
    const backend = args.backend as unknown as WasmBackend;
    const out = backend.makeOutput([...p.batch, p.M, p.N], "float32");
    if (p.M * p.N === 0 || prod(p.batch) === 0) return out;
    runProduct(backend, p, a, b, transposeA, transposeB, out, 0);
    return out;
  }) as KernelFunc;
}

/**
 * `_FusedMatMul` with a linear activation and a bias over the last axis (or
 * none) runs natively: the bias is written into every row of the output
 * first, then the product is added to it. Other activations and biases go to
 * tfjs's kernel.
 */
function nativeFusedMatMul(original: (a: KernelArgs) => Info): KernelFunc {
  return ((args: KernelArgs): Info => {
    const { a, b, bias, preluActivationWeights } = args.inputs as Record<
      string,
      Info | undefined
    >;
    const attrs = args.attrs as {
      transposeA: boolean;
      transposeB: boolean;
      activation?: string;
    };
    const linear = (attrs.activation ?? "linear") === "linear" &&
      preluActivationWeights === undefined;
    const p = linear && a!.dtype === "float32" && b!.dtype === "float32"
      ? productOf(a!, b!, attrs.transposeA, attrs.transposeB)
      : null;
    const rowBias = bias === undefined ||
      (bias.dtype === "float32" && bias.shape.at(-1) === p?.N &&
        prod(bias.shape) === p?.N && bias.shape.length <= 2 + p!.batch.length);
    if (p === null || !rowBias || !nativeBlasActive()) return original(args);
    const backend = args.backend as unknown as WasmBackend;
    const out = backend.makeOutput([...p.batch, p.M, p.N], "float32");
    const rows = prod(p.batch) * p.M;
    if (rows * p.N === 0) return out;
    if (bias !== undefined) {
      const heap = heapF32(backend);
      const oc = at(backend, out), ob = at(backend, bias);
      heap.copyWithin(oc, ob, ob + p.N);
      // Doubling copies: log2(rows) calls fill every row with the bias.
      for (let done = 1; done < rows;) {
        const n = Math.min(done, rows - done);
        heap.copyWithin(oc + done * p.N, oc, oc + n * p.N);
        done += n;
      }
    }
    runProduct(
      backend,
      p,
      a!,
      b!,
      attrs.transposeA,
      attrs.transposeB,
      out,
      bias === undefined ? 0 : 1,
    );
    return out;
  }) as KernelFunc;
}

// ---- convolutions ----

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
  const c = tfjs.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides,
    attrs.dilations ?? 1,
    attrs.pad,
    attrs.dimRoundingMode,
  );
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

/** Temporary float32 buffers on the heap, freed together. */
class Scratch {
  private made: Info[] = [];
  constructor(private backend: WasmBackend) {}
  take(n: number): Info {
    const t = this.backend.makeOutput([n], "float32");
    this.made.push(t);
    return t;
  }
  free(): void {
    for (const t of this.made) this.backend.disposeData(t.dataId);
    this.made = [];
  }
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
 * The input laid out on the zero-padded grid [B, hp, wp, ci], plus slack
 * rows, so that tap (i, j) of every output pixel p reads row
 * p + i wp + j: one product per tap over the whole batch.
 */
function padInput(heap: Float32Array, p: ConvPlan, x: number, xp: number) {
  const rows = p.B * p.hp * p.wp + slackOf(p);
  heap.fill(0, xp, xp + rows * p.ci);
  for (let b = 0; b < p.B; b++) {
    copyRuns(
      heap,
      xp + ((b * p.hp + p.top) * p.wp + p.left) * p.ci,
      p.wp * p.ci,
      x + b * p.H * p.W * p.ci,
      p.W * p.ci,
      p.H,
      p.W * p.ci,
    );
  }
}

/** dy [B, oh, ow, co] on the padded grid [B, hp, wp, co], zeros elsewhere. */
function padOutputGrad(
  heap: Float32Array,
  p: ConvPlan,
  dy: number,
  dyp: number,
) {
  heap.fill(0, dyp, dyp + p.B * p.hp * p.wp * p.co);
  for (let b = 0; b < p.B; b++) {
    copyRuns(
      heap,
      dyp + b * p.hp * p.wp * p.co,
      p.wp * p.co,
      dy + b * p.oh * p.ow * p.co,
      p.ow * p.co,
      p.oh,
      p.ow * p.co,
    );
  }
}

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

/** Heap offsets of a convolution's operands and scratch buffers. */
interface ConvBuffers {
  heap: Float32Array;
  /** Scratch buffers' offsets, in the order asked for. */
  tmp: number[];
}

/**
 * Allocates scratch buffers of the given sizes, then takes the heap view
 * (an allocation may grow it).
 */
function allocate(
  backend: WasmBackend,
  scratch: Scratch,
  sizes: number[],
): ConvBuffers {
  const made = sizes.map((n) => scratch.take(n));
  const heap = heapF32(backend);
  return { heap, tmp: made.map((t) => at(backend, t)) };
}

/** out [B, oh, ow, co] = conv(x, w). */
function convForward(
  backend: WasmBackend,
  p: ConvPlan,
  x: Info,
  w: Info,
  out: Info,
) {
  const scratch = new Scratch(backend);
  try {
    if (p.kind === "patches") {
      const K = p.kh * p.kw * p.ci, M = p.B * p.oh * p.ow;
      const { heap, tmp: [cols] } = allocate(backend, scratch, [M * K]);
      movePatches(heap, p, at(backend, x), cols, false);
      heapGemm(
        heap,
        false,
        false,
        M,
        p.co,
        K,
        cols,
        K,
        at(backend, w),
        p.co,
        0,
        at(backend, out),
        p.co,
      );
      return;
    }
    const P = p.B * p.hp * p.wp;
    const { heap, tmp: [xp, outp] } = allocate(backend, scratch, [
      (P + slackOf(p)) * p.ci,
      P * p.co,
    ]);
    padInput(heap, p, at(backend, x), xp);
    const ow = at(backend, w);
    forEachTap(p, (tap, shift) =>
      heapGemm(
        heap,
        false,
        false,
        P,
        p.co,
        p.ci,
        xp + shift,
        p.ci,
        ow + tap * p.ci * p.co,
        p.co,
        tap === 0 ? 0 : 1,
        outp,
        p.co,
      ));
    const o = at(backend, out);
    for (let b = 0; b < p.B; b++) {
      copyRuns(
        heap,
        o + b * p.oh * p.ow * p.co,
        p.ow * p.co,
        outp + b * p.hp * p.wp * p.co,
        p.wp * p.co,
        p.oh,
        p.ow * p.co,
      );
    }
  } finally {
    scratch.free();
  }
}

/** dw [kh, kw, ci, co] = the filter gradient of conv(x, w) given dy. */
function convFilterGrad(
  backend: WasmBackend,
  p: ConvPlan,
  x: Info,
  dy: Info,
  dw: Info,
) {
  const scratch = new Scratch(backend);
  try {
    if (p.kind === "patches") {
      const K = p.kh * p.kw * p.ci, M = p.B * p.oh * p.ow;
      const { heap, tmp: [cols] } = allocate(backend, scratch, [M * K]);
      movePatches(heap, p, at(backend, x), cols, false);
      heapGemm(
        heap,
        true,
        false,
        K,
        p.co,
        M,
        cols,
        K,
        at(backend, dy),
        p.co,
        0,
        at(backend, dw),
        p.co,
      );
      return;
    }
    const P = p.B * p.hp * p.wp;
    const { heap, tmp: [xp, dyp] } = allocate(backend, scratch, [
      (P + slackOf(p)) * p.ci,
      P * p.co,
    ]);
    padInput(heap, p, at(backend, x), xp);
    padOutputGrad(heap, p, at(backend, dy), dyp);
    const o = at(backend, dw);
    forEachTap(p, (tap, shift) =>
      heapGemm(
        heap,
        true,
        false,
        p.ci,
        p.co,
        P,
        xp + shift,
        p.ci,
        dyp,
        p.co,
        0,
        o + tap * p.ci * p.co,
        p.co,
      ));
  } finally {
    scratch.free();
  }
}

/** dx [B, H, W, ci] = the input gradient of conv(x, w) given dy. */
function convInputGrad(
  backend: WasmBackend,
  p: ConvPlan,
  dy: Info,
  w: Info,
  dx: Info,
) {
  const scratch = new Scratch(backend);
  try {
    if (p.kind === "patches") {
      const K = p.kh * p.kw * p.ci, M = p.B * p.oh * p.ow;
      const { heap, tmp: [cols] } = allocate(backend, scratch, [M * K]);
      heapGemm(
        heap,
        false,
        true,
        M,
        K,
        p.co,
        at(backend, dy),
        p.co,
        at(backend, w),
        p.co,
        0,
        cols,
        K,
      );
      movePatches(heap, p, at(backend, dx), cols, true);
      return;
    }
    const P = p.B * p.hp * p.wp;
    const { heap, tmp: [dxp, dyp] } = allocate(backend, scratch, [
      (P + slackOf(p)) * p.ci,
      P * p.co,
    ]);
    padOutputGrad(heap, p, at(backend, dy), dyp);
    heap.fill(0, dxp, dxp + (P + slackOf(p)) * p.ci);
    const ow = at(backend, w);
    forEachTap(p, (tap, shift) =>
      heapGemm(
        heap,
        false,
        true,
        P,
        p.ci,
        p.co,
        dyp,
        p.co,
        ow + tap * p.ci * p.co,
        p.co,
        1,
        dxp + shift,
        p.ci,
      ));
    const o = at(backend, dx);
    for (let b = 0; b < p.B; b++) {
      copyRuns(
        heap,
        o + b * p.H * p.W * p.ci,
        p.W * p.ci,
        dxp + ((b * p.hp + p.top) * p.wp + p.left) * p.ci,
        p.wp * p.ci,
        p.H,
        p.W * p.ci,
      );
    }
  } finally {
    scratch.free();
  }
}

function nativeConv(original: (a: KernelArgs) => Info): KernelFunc {
  return ((args: KernelArgs): Info => {
    const { x, filter } = args.inputs as Record<string, Info>;
    const p = x.dtype === "float32" && filter.dtype === "float32"
      ? planConv(x.shape, filter.shape, args.attrs as unknown as ConvAttrs)
      : null;
    if (p === null || !nativeBlasActive()) return original(args);
    const backend = args.backend as unknown as WasmBackend;
    const out = backend.makeOutput([p.B, p.oh, p.ow, p.co], "float32");
    convForward(backend, p, x, filter, out);
    return out;
  }) as KernelFunc;
}

function nativeConvFilterGrad(
  original: (a: KernelArgs) => Info,
): KernelFunc {
  return ((args: KernelArgs): Info => {
    const { x, dy } = args.inputs as Record<string, Info>;
    const attrs = args.attrs as unknown as ConvAttrs;
    const shape = attrs.filterShape;
    const p = x.dtype === "float32" && dy.dtype === "float32" && shape
      ? planConv(x.shape, shape, attrs)
      : null;
    if (
      p === null || !nativeBlasActive() || dy.shape[1] !== p.oh ||
      dy.shape[2] !== p.ow
    ) return original(args);
    const backend = args.backend as unknown as WasmBackend;
    const dw = backend.makeOutput([...shape!], "float32");
    convFilterGrad(backend, p, x, dy, dw);
    return dw;
  }) as KernelFunc;
}

function nativeConvInputGrad(
  original: (a: KernelArgs) => Info,
): KernelFunc {
  return ((args: KernelArgs): Info => {
    const { dy, filter } = args.inputs as Record<string, Info>;
    const attrs = args.attrs as unknown as ConvAttrs;
    const shape = attrs.inputShape;
    const p = dy.dtype === "float32" && filter.dtype === "float32" && shape
      ? planConv(shape, filter.shape, attrs)
      : null;
    if (
      p === null || !nativeBlasActive() || dy.shape[1] !== p.oh ||
      dy.shape[2] !== p.ow
    ) return original(args);
    const backend = args.backend as unknown as WasmBackend;
    const dx = backend.makeOutput([...shape!], "float32");
    convInputGrad(backend, p, dy, filter, dx);
    return dx;
  }) as KernelFunc;
}

/**
 * Replaces the wasm backend's `Conv2D`, `Conv2DBackpropFilter` and
 * `Conv2DBackpropInput` for float32 NHWC convolutions without dilation that
 * have stride 1 (any kernel and padding) or a kernel equal to its stride
 * without padding (the patchify projection); the others go to the kernels
 * underneath. Stride 1 needs no im2col buffer: the input is laid out once
 * on its zero-padded grid [B, H + pads, W + pads, ci], where the tap (i, j)
 * of every output pixel is the same shift of rows, so each tap is one
 * product over the whole batch (the padded grid's extra rows and columns
 * are computed and dropped, about 13 % more work for a 3 x 3 kernel on a
 * 32 x 32 image). Called by {@linkcode registerNativeBlas}; returns the
 * names of the kernels replaced.
 */
export function registerNativeBlasConvolutions(): string[] {
  const done: string[] = [];
  if (replaceWasmKernel("Conv2D", nativeConv)) done.push("Conv2D");
  if (replaceWasmKernel("Conv2DBackpropFilter", nativeConvFilterGrad)) {
    done.push("Conv2DBackpropFilter");
  }
  if (replaceWasmKernel("Conv2DBackpropInput", nativeConvInputGrad)) {
    done.push("Conv2DBackpropInput");
  }
  return done;
}
