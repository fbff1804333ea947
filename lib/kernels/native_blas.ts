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
 * Stride-1 and patchify convolutions and their two gradients go the same
 * way (`lib/kernels/native_blas_conv.ts`, given this module's product).
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

import { fileURLToPath } from "node:url";
import { replaceWasmKernel } from "./wasm_fast_paths.ts";
import { registerNativeBlasConvolutions } from "./native_blas_conv.ts";
import { productShape } from "./_matmul_shape.ts";
import {
  heapF32,
  type HeapGemm,
  heapIndex as at,
  type Info,
  type KernelArgs,
  type KernelFunc,
  type WasmBackend,
} from "./_wasm_heap.ts";

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
  kernels.push(
    ...registerNativeBlasConvolutions({
      gemm: heapGemm,
      active: nativeBlasActive,
    }),
  );
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

/**
 * C[M, N] = alpha op(A) op(B) + beta C on tfjs's wasm heap through the
 * native BLAS (the arguments: `HeapGemm` of `_wasm_heap.ts`).
 *
 * @throws {Error} when no native BLAS is loaded
 */
export const heapGemm: HeapGemm = (
  heap,
  transA,
  transB,
  M,
  N,
  K,
  a,
  lda,
  b,
  ldb,
  beta,
  c,
  ldc,
  alpha = 1,
) => {
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
};

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
  const s = productShape(a.shape, b.shape, transA, transB);
  if (s === null) return null; // the original throws tfjs's own message
  const { M, N, K, outer: batch } = s;
  const n = prod(batch), na = prod(s.outerA), nb = prod(s.outerB);
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
