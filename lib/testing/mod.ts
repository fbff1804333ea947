/**
 * Test helpers: run one test body on every available backend, compare
 * tensors with stated tolerances, assert that a step leaks no tensors, and
 * check gradients by finite differences.
 *
 * Imported as `tokenlab/testing`; not part of the notebook-facing entry.
 *
 * @module
 */

import { tf } from "../tf.ts";
import {
  availableBackends,
  type BackendName,
  BACKENDS,
  initBackend,
  kernelGap,
} from "../backend.ts";
import { compareClose } from "./reference.ts";
import { nativeBlasInfo, useNativeBlas } from "../kernels/native_blas.ts";

/** Options of {@linkcode backendTest}. */
export interface BackendTestOptions {
  /** Backends to run on (default: all of them). */
  backends?: readonly BackendName[];
  /**
   * Kernels the body needs. A backend that lacks one is skipped, and the
   * skip names the missing kernel (never a silent pass).
   */
  kernels?: readonly string[];
  /**
   * On wasm, register one test per kernel path: `[wasm, OpenBLAS]` with the
   * native BLAS under the products and `[wasm]` with tfjs's own wasm
   * kernels. Without OpenBLAS here, the first is registered as skipped,
   * saying why (never one path passed for two). The body learns its path
   * from {@linkcode withEachWasmPath}.
   */
  wasmPaths?: boolean;
}

/** The kernel path a {@linkcode backendTest} with `wasmPaths` runs now. */
let pinnedPath: string | null = null;
/** Whether a {@linkcode backendTest} body runs now, and with `wasmPaths`. */
let running: "plain" | "paths" | null = null;

/**
 * Registers one `Deno.test` per backend running the same body. A backend that
 * cannot run here is registered as ignored, with the reason in the test name,
 * so that the report shows `matmul [webgpu] (skipped: ...) ... ignored`.
 *
 * Call it at the top level of a test module with `await`.
 *
 * @example
 * ```ts ignore
 * import { tf } from "tokenlab";
 * import { backendTest } from "tokenlab/testing";
 * await backendTest("adds", async () => {
 *   const y = tf.add(tf.scalar(1), tf.scalar(2));
 *   console.assert((await y.data())[0] === 3);
 *   y.dispose();
 * });
 * ```
 */
export async function backendTest(
  name: string,
  body: (backend: BackendName) => void | Promise<void>,
  options: BackendTestOptions = {},
): Promise<void> {
  const all = await availableBackends();
  for (const backend of options.backends ?? BACKENDS) {
    const state = all.find((b) => b.name === backend)!;
    const skip = state.available
      ? kernelGap(backend, options.kernels ?? [])
      : state.detail;
    // [label, native BLAS on (or null: leave it), why this one is skipped]
    const paths: [string, boolean | null, string][] =
      options.wasmPaths && backend === "wasm"
        ? [
          [
            "wasm, OpenBLAS",
            true,
            skip !== "" || nativeBlasInfo().active
              ? skip
              : `OpenBLAS not loaded: ${nativeBlasInfo().reason}`,
          ],
          ["wasm", false, skip],
        ]
        : [[backend, null, skip]];
    for (const [label, native, why] of paths) {
      Deno.test({
        name: why === ""
          ? `${name} [${label}]`
          : `${name} [${label}] (skipped: ${why})`,
        ignore: why !== "",
        // WebGPU devices and wasm memory live for the whole process.
        sanitizeResources: false,
        sanitizeOps: false,
        fn: async () => {
          await initBackend({ backend });
          running = options.wasmPaths ? "paths" : "plain";
          if (native !== null) {
            useNativeBlas(native);
            pinnedPath = native ? "OpenBLAS" : "wasm";
          }
          try {
            await body(backend);
          } finally {
            if (native !== null) useNativeBlas(true);
            pinnedPath = running = null;
          }
        },
      });
    }
  }
}

/**
 * Runs `body` once per kernel path of `backend`: on wasm with the native
 * BLAS loaded, once with it ("OpenBLAS") and once with tfjs's own wasm
 * kernels ("wasm"); elsewhere once, named after the backend. The native path
 * is switched back on afterwards, also when `body` throws.
 *
 * Inside a {@linkcode backendTest}, pass it `{ wasmPaths: true }`: each path
 * is then its own test (a missing OpenBLAS shows as a skipped one) and this
 * runs `body` once, on that test's path; without the option it throws on
 * wasm rather than pass one path silently.
 *
 * @example
 * ```ts
 * import { initBackend, tf } from "tokenlab";
 * import { withEachWasmPath } from "tokenlab/testing";
 * await initBackend({ backend: "wasm" });
 * await withEachWasmPath("wasm", async (path) => {
 *   const y = tf.matMul(tf.ones([2, 3]), tf.ones([3, 2]));
 *   console.log(path, await y.data()); // 3, 3, 3, 3 on each path
 *   y.dispose();
 * });
 * ```
 */
export async function withEachWasmPath(
  backend: string,
  body: (path: string) => void | Promise<void>,
): Promise<void> {
  if (pinnedPath !== null) return await body(pinnedPath);
  if (backend === "wasm" && running === "plain") {
    throw new Error(
      "withEachWasmPath inside a backendTest on wasm: expected the option { wasmPaths: true } of backendTest, " +
        "found none; add it so that each kernel path is a test of its own and a missing OpenBLAS is reported as skipped",
    );
  }
  if (backend !== "wasm" || !nativeBlasInfo().active) {
    return await body(backend);
  }
  try {
    for (const native of [true, false]) {
      useNativeBlas(native);
      await body(native ? "OpenBLAS" : "wasm");
    }
  } finally {
    useNativeBlas(true);
  }
}

/** Tolerances of {@linkcode assertClose}: |a - e| <= atol + rtol * |e|. */
export interface CloseOptions {
  /** Relative tolerance (default 1e-5). */
  rtol?: number;
  /** Absolute tolerance (default 1e-6). */
  atol?: number;
  /** What is being compared, for the message. */
  what?: string;
}

type Numbers = tf.Tensor | ArrayLike<number> | number;

async function toFlat(
  x: Numbers,
): Promise<{ data: ArrayLike<number>; shape: number[] }> {
  if (typeof x === "number") return { data: [x], shape: [] };
  if (x instanceof tf.Tensor) {
    return { data: (await x.data()) as ArrayLike<number>, shape: x.shape };
  }
  return { data: x, shape: [x.length] };
}

/**
 * Asserts that two tensors (or arrays, or numbers) are elementwise close.
 * Reads tensors asynchronously (never `dataSync`). On failure the message
 * names the worst element, both values and the tolerance.
 *
 * @example
 * ```ts
 * import { assertClose } from "tokenlab/testing";
 * await assertClose([1, 2.0000001], [1, 2], { rtol: 1e-6 });
 * ```
 */
export async function assertClose(
  actual: Numbers,
  expected: Numbers,
  options: CloseOptions = {},
): Promise<void> {
  const { rtol = 1e-5, atol = 1e-6, what = "values" } = options;
  const a = await toFlat(actual);
  const e = await toFlat(expected);
  const shapesKnown = actual instanceof tf.Tensor &&
    expected instanceof tf.Tensor;
  if (
    a.data.length !== e.data.length ||
    (shapesKnown && a.shape.join() !== e.shape.join())
  ) {
    throw new Error(
      `${what}: expected shape [${e.shape}] (${e.data.length} elements), found [${a.shape}] (${a.data.length} elements)`,
    );
  }
  const { worst } = compareClose(a.data, e.data, rtol, atol);
  if (worst >= 0) {
    const x = a.data[worst], y = e.data[worst];
    throw new Error(
      `${what}: element ${worst} is ${x}, expected ${y} (|diff| ${
        Math.abs(x - y).toExponential(3)
      } > atol ${atol} + rtol ${rtol} * |expected|)`,
    );
  }
}

/**
 * Runs `step` and asserts that the number of live tensors is unchanged
 * afterwards (tensors the step returns are counted as leaks: dispose them
 * inside, or return plain numbers).
 *
 * @example
 * ```ts
 * import { initBackend, tf } from "tokenlab";
 * import { assertNoLeaks } from "tokenlab/testing";
 * await initBackend();
 * await assertNoLeaks(async () => {
 *   const y = tf.tidy(() => tf.square(tf.scalar(3)));
 *   await y.data();
 *   y.dispose();
 * });
 * ```
 */
export async function assertNoLeaks<T>(
  step: () => T | Promise<T>,
  what = "step",
): Promise<T> {
  const before = tf.memory().numTensors;
  const result = await step();
  const after = tf.memory().numTensors;
  if (after !== before) {
    throw new Error(
      `${what} leaked tensors: ${before} live before, ${after} after (${
        after - before > 0 ? "+" : ""
      }${after - before}); wrap the step in tf.tidy or dispose what it creates`,
    );
  }
  return result;
}

/** Options of {@linkcode checkGradients}. */
export interface GradientCheckOptions extends CloseOptions {
  /** Finite-difference step (default 1e-2; float32 needs a large one). */
  eps?: number;
}

/**
 * Compares the analytic gradient of a scalar function with central finite
 * differences, for every element of every input (keep the shapes small).
 *
 * @example
 * ```ts
 * import { initBackend, tf } from "tokenlab";
 * import { checkGradients } from "tokenlab/testing";
 * await initBackend();
 * const x = tf.tensor1d([0.5, -1, 2]);
 * await checkGradients((x) => tf.sum(tf.mul(x, x)), [x], { rtol: 1e-2 });
 * x.dispose();
 * ```
 */
export async function checkGradients(
  f: (...xs: tf.Tensor[]) => tf.Tensor,
  inputs: tf.Tensor[],
  options: GradientCheckOptions = {},
): Promise<void> {
  const { eps = 1e-2, rtol = 2e-2, atol = 1e-3, what = "gradient" } = options;
  const scalar = (...xs: tf.Tensor[]): tf.Scalar => {
    const y = f(...xs);
    if (y.size !== 1) {
      throw new Error(
        `checkGradients needs a scalar function; it returned shape [${y.shape}]`,
      );
    }
    return tf.reshape(y, []) as tf.Scalar;
  };
  const grads = tf.grads(scalar)(inputs);
  try {
    for (let k = 0; k < inputs.length; k++) {
      const base = Float32Array.from(await inputs[k].data());
      const numeric = new Float64Array(base.length);
      for (let i = 0; i < base.length; i++) {
        const at = async (delta: number): Promise<number> => {
          const v = base.slice();
          v[i] += delta;
          const y = tf.tidy(() => {
            const args = inputs.map((x, j) =>
              j === k ? tf.tensor(v, x.shape, "float32") : x
            );
            return scalar(...args);
          });
          const value = (await y.data())[0];
          y.dispose();
          return value;
        };
        numeric[i] = ((await at(eps)) - (await at(-eps))) / (2 * eps);
      }
      await assertClose(grads[k], numeric, {
        rtol,
        atol,
        what: `${what} of input ${k}`,
      });
    }
  } finally {
    tf.dispose(grads);
  }
}
