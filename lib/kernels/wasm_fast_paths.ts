/**
 * Faster, leaner replacements for two kernels of the wasm backend.
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
 * This module imports tfjs directly (not `../tf.ts`, which imports this one)
 * and only defines functions, so it is safe in the import cycle.
 *
 * @module
 */

import * as tfjs from "@tensorflow/tfjs";

type KernelFunc = Parameters<typeof tfjs.registerKernel>[0]["kernelFunc"];
type KernelArgs = Parameters<KernelFunc>[0];
type Info = NonNullable<KernelArgs["inputs"][string]>;

const REPLACED = Symbol.for("tokenlab.wasmKernelReplaced");

interface Backend {
  disposeData(dataId: unknown, force?: boolean): boolean;
  incRef(dataId: unknown): void;
}

/**
 * Registers both replacements for the `wasm` backend (idempotent) and
 * returns the names of the kernels replaced.
 *
 * @example
 * ```ts
 * import { registerWasmFastPaths } from "tokenlab/kernels/wasm_fast_paths.ts";
 * console.log(registerWasmFastPaths()); // [ "Identity", "BatchMatMul" ]
 * ```
 */
export function registerWasmFastPaths(): string[] {
  const done: string[] = [];
  if (replaceWasmKernel("Identity", sharedIdentity)) done.push("Identity");
  if (replaceWasmKernel("BatchMatMul", plainMatMul)) done.push("BatchMatMul");
  return done;
}

/**
 * Replaces a wasm kernel by `make(original)`, once: a replacement carries a
 * mark, so a second call finds it and leaves it. False when wasm lacks the
 * kernel (or `make` cannot build one).
 */
function replaceWasmKernel(
  name: string,
  make: (original: (a: KernelArgs) => Info) => KernelFunc | null,
): boolean {
  const original = tfjs.getKernel(name, "wasm");
  if (original === undefined) return false;
  if ((original.kernelFunc as { [REPLACED]?: true })[REPLACED]) return true;
  const replacement = make(original.kernelFunc as (a: KernelArgs) => Info);
  if (replacement === null) return false;
  (replacement as { [REPLACED]?: true })[REPLACED] = true;
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
