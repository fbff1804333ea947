/**
 * The kit's own kernels for TensorFlow.js (wasm, WebGPU and OpenBLAS through
 * FFI), and {@linkcode installKernels}, the one step that puts them in place.
 *
 * This folder is a leaf: it imports the tfjs packages and its own files,
 * nothing else of the kit. Importing it only defines things; nothing is
 * registered, patched or loaded until {@linkcode installKernels} runs, which
 * `initBackend` and `ensureBackend` (`lib/backend.ts`) do before a backend
 * starts.
 *
 * @module
 */

import { registerWasmGradientKernels } from "./wasm_grad.ts";
import { registerWasmFastPaths } from "./wasm_fast_paths.ts";
import { installLeanBackprop } from "./lean_backprop.ts";
import { enableWasmThreads } from "./wasm_threads.ts";
import { type NativeBlasInfo, registerNativeBlas } from "./native_blas.ts";
import { registerFusedAttention } from "./wasm_attention.ts";
import { registerWasmNorms } from "./wasm_norms.ts";
import { registerWebGpuNorms } from "./webgpu_norms.ts";
import { registerWebGpuAttention } from "./webgpu_attention.ts";
import { registerWebGpuCrossEntropy } from "./webgpu_cross_entropy.ts";
import { registerWebGpuAdamW } from "./webgpu_adamw.ts";
import { registerWebGpuDevice } from "./webgpu_device.ts";
import { installWebGpuMatMul } from "./webgpu_matmul.ts";
import { installWebGpuConv } from "./webgpu_conv.ts";

/** Options of {@linkcode installKernels}. */
export interface InstallKernelsOptions {
  /**
   * Whether the wasm backend's binaries are there (default true). Without
   * them, its threads and OpenBLAS are not set up.
   */
  wasm?: boolean;
  /**
   * Threads of the wasm backend (default 1, the single-threaded build). Only
   * the first call before the wasm backend starts can change it; OpenBLAS
   * runs on as many.
   */
  wasmThreads?: number;
}

/** What {@linkcode installKernels} put in place. */
export interface KernelInstall {
  /** Threads asked of the wasm backend (1 when nothing changed). */
  wasmThreads: number;
  /** The native BLAS path of the wasm backend: loaded or not, and why. */
  nativeBlas: NativeBlasInfo;
}

let installed: KernelInstall | null = null;

/**
 * Registers the kit's kernels for wasm and WebGPU, installs the lean
 * backward pass on tfjs's engine, and, when the wasm binaries are there,
 * arms the wasm backend's threads and loads OpenBLAS under its products.
 * Idempotent: once it has succeeded, later calls return the first answer.
 *
 * @throws {Error} when `TOKENLAB_BLAS` names a library that cannot be used
 * (nothing is remembered then, so a later call tries again)
 *
 * @example
 * ```ts
 * import { installKernels } from "tokenlab/kernels/mod.ts";
 * const first = installKernels();
 * console.assert(installKernels() === first);
 * console.log(first.nativeBlas.reason);
 * ```
 */
export function installKernels(
  options: InstallKernelsOptions = {},
): KernelInstall {
  if (installed !== null) return installed;
  // The order of the replacements matters: OpenBLAS wraps the wasm kernels
  // that the gradient kernels and the fast paths put in place.
  registerWasmGradientKernels(); // kernels wasm lacks for gradients
  registerWasmFastPaths(); // Identity shares buffers; transposed matmuls 10x faster
  installLeanBackprop(); // the backward pass frees each node's tensors when done
  let threads = 1;
  let nativeBlas: NativeBlasInfo = {
    active: false,
    kernels: [],
    reason: "the wasm backend's binaries are missing",
  };
  if (options.wasm ?? true) {
    threads = enableWasmThreads(options.wasmThreads ?? 1);
    // OpenBLAS (when found, with the FFI permission) under the wasm backend's
    // matrix products and stride-1 convolutions, on as many threads.
    nativeBlas = registerNativeBlas(options.wasmThreads ?? 1);
  }
  registerFusedAttention();
  registerWasmNorms();
  // Before the WebGPU backend starts: its device gets the adapter's storage
  // buffers, so AdamW steps several parameters per dispatch.
  registerWebGpuDevice();
  registerWebGpuNorms();
  registerWebGpuAttention();
  registerWebGpuCrossEntropy();
  registerWebGpuAdamW();
  installed = { wasmThreads: threads, nativeBlas };
  return installed;
}

/**
 * Puts the kit's tiled WebGPU products in place of tfjs-webgpu's: the
 * matmul and the linear layers' fused one (`webgpu_matmul.ts`), the
 * convolution and its stride-1 input gradient (`webgpu_conv.ts`), each
 * keeping tfjs's kernel for the cases it does not handle. Idempotent, and
 * kept for the rest of the process; false when the WebGPU backend's kernels
 * are not loaded. `TOKENLAB_WEBGPU_PRODUCTS=tokenlab` calls it when the
 * WebGPU backend starts.
 */
export function installWebGpuProducts(): boolean {
  return installWebGpuMatMul() && installWebGpuConv();
}
