/**
 * The one place where TensorFlow.js is imported and its quirks are handled.
 *
 * Every other module of the kit imports `tf` from here (the kernels of
 * `lib/kernels/`, a leaf below it, import the tfjs packages themselves), so
 * that the three backends (cpu, wasm, webgpu) are registered against a
 * single instance of tfjs-core, and the wasm binaries are located from the
 * installed package rather than from a cache path.
 *
 * Importing this module only defines things (and registers tfjs's backend
 * factories, which importing tfjs's backend packages does): tfjs is set up
 * by {@linkcode prepareTfjs}, which `initBackend` calls before any backend
 * starts.
 *
 * @module
 */

// The umbrella package, not tfjs-core alone: the node build of tfjs-core that
// Deno resolves carries no gradients, the umbrella's build registers them.
import * as tfjs from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-webgpu";
import * as tfWasm from "@tensorflow/tfjs-backend-wasm";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * TensorFlow.js (`@tensorflow/tfjs`, pinned in `deno.json`). Use it after
 * `initBackend` or `ensureBackend`, which start a backend and install the
 * kit's kernels. Its tensor types come along: `tf.Tensor`, `tf.Scalar`,
 * `tf.Tensor1D` to `tf.Tensor4D`, `tf.Variable`, `tf.Rank`, `tf.DataType`,
 * `tf.TensorContainer`, `tf.NamedTensorMap`, `tf.GradSaveFunc`,
 * `tf.Optimizer`.
 */
export const tf: typeof tfjs = tfjs;

/**
 * The tensor types of TensorFlow.js, so that `tf.Tensor` works as a type for
 * users of the kit too, and the kit's own signatures name types its entry
 * exports. Declared here rather than re-exporting the whole namespace, which
 * would pull tfjs's own declarations into the docs; hidden from the docs for
 * the same reason (see tfjs's API for each type).
 *
 * @ignore
 */
export declare namespace tf {
  /** A tensor of any rank. */
  export type Tensor<R extends Rank = Rank> = tfjs.Tensor<R>;
  /** A rank-0 tensor. */
  export type Scalar = Tensor<tfjs.Rank.R0>;
  /** A rank-1 tensor. */
  export type Tensor1D = Tensor<tfjs.Rank.R1>;
  /** A rank-2 tensor. */
  export type Tensor2D = Tensor<tfjs.Rank.R2>;
  /** A rank-3 tensor. */
  export type Tensor3D = Tensor<tfjs.Rank.R3>;
  /** A rank-4 tensor. */
  export type Tensor4D = Tensor<tfjs.Rank.R4>;
  /** A tensor rank. */
  export type Rank = tfjs.Rank;
  /** A trainable tensor. */
  export type Variable<R extends Rank = Rank> = tfjs.Variable<R>;
  /** A tensor element type. */
  export type DataType = tfjs.DataType;
  /** Tensors nested in arrays and objects. */
  export type TensorContainer = tfjs.TensorContainer;
  /** Tensors by name. */
  export type NamedTensorMap = tfjs.NamedTensorMap;
  /** The save function handed to a `tf.customGrad` body. */
  export type GradSaveFunc = tfjs.GradSaveFunc;
  /** An optimizer (`tf.train.adam`, ...). */
  export type Optimizer = tfjs.Optimizer;
}

/** The tfjs-core version the kit runs on (pinned in `deno.json`). */
export const TFJS_VERSION: string = tfjs.version_core;

/** The wasm binaries shipped in `@tensorflow/tfjs-backend-wasm/dist`. */
const WASM_FILES = [
  "tfjs-backend-wasm.wasm",
  "tfjs-backend-wasm-simd.wasm",
  "tfjs-backend-wasm-threaded-simd.wasm",
] as const;

/** Where the wasm binaries were found, or why they were not. */
export interface WasmLocation {
  /** Folder holding the `.wasm` files (ends with a path separator), or null. */
  dir: string | null;
  /** Why `dir` is null; empty when found. */
  problem: string;
}

function resolvePackageEntry(): string {
  // Deno resolves the bare specifier through the import map to the installed
  // package (node_modules or the npm cache, whichever Deno uses): a file URL.
  const resolved = import.meta.resolve("@tensorflow/tfjs-backend-wasm");
  if (resolved.startsWith("file:")) return fileURLToPath(resolved);
  // Some embedders answer with an `npm:` URL; Node's resolver finds the file.
  return createRequire(import.meta.url).resolve(
    "@tensorflow/tfjs-backend-wasm",
  );
}

function locateWasm(): WasmLocation {
  let entry: string;
  try {
    entry = resolvePackageEntry();
  } catch (e) {
    return {
      dir: null,
      problem: `could not resolve @tensorflow/tfjs-backend-wasm (${
        (e as Error).message
      }); run \`deno install\` in the project folder`,
    };
  }
  const dir = dirname(entry) + "/";
  const missing = WASM_FILES.filter((f) => !existsSync(dir + f));
  if (missing.length === WASM_FILES.length) {
    return {
      dir: null,
      problem:
        `the installed @tensorflow/tfjs-backend-wasm has no .wasm binaries next to ${entry}; reinstall it with \`deno install --reload\``,
    };
  }
  return { dir, problem: "" };
}

let wasmLocation: WasmLocation | null = null;

/**
 * Sets tfjs up for the kit, once (later calls return the first answer):
 * silences its advice to install tfjs-node and points the wasm backend at
 * the binaries of the installed package. Returns where those were found, or
 * why not. `initBackend` calls it before any backend starts.
 *
 * @example
 * ```ts
 * import { prepareTfjs } from "tokenlab/tf.ts";
 * const wasm = prepareTfjs();
 * console.log(wasm.dir ?? wasm.problem);
 * ```
 */
export function prepareTfjs(): WasmLocation {
  if (wasmLocation !== null) return wasmLocation;
  // tfjs-node is a Node native addon that Deno does not use; PROD only turns
  // off tfjs's console warnings and debug mode.
  tfjs.env().set("PROD", true);
  const location = locateWasm();
  // A file path (not a URL): the node build of the wasm backend reads the
  // binary with `fs` when the prefix is a path.
  if (location.dir !== null) tfWasm.setWasmPaths(location.dir);
  wasmLocation = location;
  return location;
}

/**
 * Threads the wasm backend runs with: 1 unless `TOKENLAB_WASM_THREADS` asked
 * for more (Deno gets tfjs's multi-threaded build only through it).
 *
 * @example
 * ```ts
 * import { initBackend } from "tokenlab";
 * import { wasmThreads } from "tokenlab/tf.ts";
 * await initBackend({ backend: "wasm" });
 * console.log(wasmThreads()); // 1 unless TOKENLAB_WASM_THREADS says more
 * ```
 */
export function wasmThreads(): number {
  return tfWasm.getThreadsCount();
}
