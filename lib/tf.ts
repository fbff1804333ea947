/**
 * The one place where TensorFlow.js is imported and its quirks are handled.
 *
 * Every other module of the kit imports `tf` from here, so that the three
 * backends (cpu, wasm, webgpu) are registered exactly once, against a single
 * instance of tfjs-core, and the wasm binaries are located from the installed
 * package rather than from a cache path.
 *
 * @module
 */

// The umbrella package, not tfjs-core alone: the node build of tfjs-core that
// Deno resolves carries no gradients, the umbrella's build registers them.
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-webgpu";
import * as tfWasm from "@tensorflow/tfjs-backend-wasm";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";

export { tf };

// Silence tfjs's advice to install tfjs-node (a Node native addon that Deno
// does not use); PROD only turns off tfjs's console warnings and debug mode.
tf.env().set("PROD", true);

/** The tfjs-core version the kit runs on (pinned in `deno.json`). */
export const TFJS_VERSION: string = tf.version_core;

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

/** Location of the wasm binaries, resolved once when this module loads. */
export const WASM_LOCATION: WasmLocation = locateWasm();

if (WASM_LOCATION.dir !== null) {
  // A file path (not a URL): the node build of the wasm backend reads the
  // binary with `fs` when the prefix is a path.
  tfWasm.setWasmPaths(WASM_LOCATION.dir);
}

/** Threads the wasm backend runs with (1 in Deno: no `crossOriginIsolated`). */
export function wasmThreads(): number {
  return tfWasm.getThreadsCount();
}
