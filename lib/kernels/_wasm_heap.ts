/**
 * What tokenlab's own wasm kernels share: tfjs's wasm backend as they see
 * it, its memory, tensor addresses on it, and the instantiation of a C
 * module (lib/kernels/c/*.c, built into _binaries.ts) on that memory.
 *
 * Imports tfjs directly and only defines functions (a kernel module is a
 * leaf).
 *
 * @module
 */

import * as tfjs from "@tensorflow/tfjs";
import { KERNEL_BINARIES } from "./_binaries.ts";

/** A kernel function as tfjs registers it. */
export type KernelFunc = Parameters<typeof tfjs.registerKernel>[0][
  "kernelFunc"
];
/** A kernel's arguments. */
export type KernelArgs = Parameters<KernelFunc>[0];
/** A tensor as a kernel sees it. */
export type Info = NonNullable<KernelArgs["inputs"][string]>;

/** The parts of tfjs's wasm backend the kernels use. */
export interface WasmBackend {
  wasm: {
    asm?: { memory?: WebAssembly.Memory };
    wasmMemory?: WebAssembly.Memory;
  };
  dataIdMap: { get(id: unknown): { memoryOffset: number } | undefined };
  makeOutput(shape: number[], dtype: tfjs.DataType): Info;
  disposeData(dataId: unknown, force?: boolean): boolean;
}

/** The backend's `WebAssembly.Memory` (plain or shared). */
export function memoryOf(backend: WasmBackend): WebAssembly.Memory {
  const memory = backend.wasm.asm?.memory ?? backend.wasm.wasmMemory;
  if (!(memory instanceof WebAssembly.Memory)) {
    throw new Error(
      `tokenlab's wasm kernels found no WebAssembly.Memory in tfjs ${tfjs.version_core}'s wasm backend; use the version pinned in deno.json`,
    );
  }
  return memory;
}

/**
 * A float32 view of the whole heap. Take it after every allocation of a
 * kernel (an allocation may grow the memory, which replaces its buffer).
 */
export function heapF32(backend: WasmBackend): Float32Array {
  return new Float32Array(memoryOf(backend).buffer);
}

/** A tensor's byte address on the heap. */
export function addressOf(backend: WasmBackend, t: Info): number {
  const data = backend.dataIdMap.get(t.dataId);
  if (data === undefined) {
    throw new Error(
      "tokenlab's wasm kernels: an input is not on the wasm backend",
    );
  }
  return data.memoryOffset;
}

/** A tensor's first element, as an index into {@linkcode heapF32}'s view. */
export function heapIndex(backend: WasmBackend, t: Info): number {
  return addressOf(backend, t) >> 2;
}

/**
 * A matrix product on the heap: C[M, N] = alpha op(A) op(B) + beta C, where
 * `heap` is a float32 view of the whole memory ({@linkcode heapF32}), a, b
 * and c are element indices into it, the matrices are row-major with
 * leading dimensions given in elements, and alpha defaults to 1.
 */
export type HeapGemm = (
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
  alpha?: number,
) => void;

const instances = new Map<string, WeakMap<WebAssembly.Memory, unknown>>();

/** A C module's exports, instantiated once per tfjs heap. */
export function moduleOn<T>(backend: WasmBackend, source: string): T {
  const memory = memoryOf(backend);
  let bySource = instances.get(source);
  if (bySource === undefined) instances.set(source, bySource = new WeakMap());
  let exports = bySource.get(memory) as T | undefined;
  if (exports === undefined) {
    const shared = typeof SharedArrayBuffer === "function" &&
      memory.buffer instanceof SharedArrayBuffer;
    const b64 = KERNEL_BINARIES[source][shared ? "shared" : "plain"];
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), {
      env: { memory },
    });
    exports = instance.exports as unknown as T;
    bySource.set(memory, exports);
  }
  return exports;
}
