/**
 * Multi-threaded wasm backend in Deno: the threaded SIMD build of
 * `@tensorflow/tfjs-backend-wasm` (XNNPACK on emscripten pthreads), which
 * tfjs never selects outside a browser.
 *
 * Why tfjs does not pick it, and what this module changes:
 *
 * - Deno resolves the package's node bundle, where the flag
 *   `WASM_HAS_MULTITHREAD_SUPPORT` answers false whenever tfjs sees Node
 *   (`IS_NODE`; tfjs issue 3830). It does not look at `crossOriginIsolated`.
 *   {@link enableWasmThreads} sets the flag to true, plus
 *   `setThreadsCount`.
 * - The emscripten glue then runs in its Node mode (Deno has `process`): it
 *   overwrites `globalThis.Worker` with `node:worker_threads`'s `Worker` and
 *   spawns its pool of 8 pthread workers with `new Worker(blobUrl)`, a blob
 *   holding emscripten's classic worker script. Deno's `node:worker_threads`
 *   refuses a blob URL (`ERR_WORKER_PATH`), and Deno's web `Worker` takes
 *   module workers only (and cannot be unref'd, so the process would never
 *   exit).
 *
 * So while armed, `globalThis.Worker` answers a constructor that turns such a
 * call into a {@link PthreadWorker}: a `node:worker_threads` worker (which
 * can be unref'd) running a small bootstrap that evaluates emscripten's
 * worker script and the glue the main thread hands it in the browser-worker
 * environment emscripten expects (`self.onmessage`, `postMessage`,
 * `importScripts`, `startWorker`), with `process` and `require` hidden from
 * that code so that it does not take its Node paths. The shared `WebAssembly.Memory` and
 * the compiled `WebAssembly.Module` travel to the worker as they do in a
 * browser (Deno clones both). Every other `new Worker(...)` goes to Deno's
 * own `Worker`, and Deno's `Worker` is put back once the pool is created.
 *
 * A pthread worker is never kept referenced: XNNPACK's pool threads live for
 * the whole process, waiting for work, so a referenced worker (emscripten
 * refs a worker while its pthread runs) would keep the process alive for
 * ever.
 *
 * The backend's C++ also caps the thread count at half the logical cores
 * (see `withLogicalCores`), which is 1 on a 2-core machine; the core count
 * it reads is raised to twice the asked count while the module starts.
 *
 * Costs: the 8 pthread workers are created whatever the thread count (about
 * 100 MiB more resident memory, and about 0.5 s more to initialise the
 * backend). Results are bit-identical to one thread for the products and
 * convolutions measured (XNNPACK splits the output, not the sums). tfjs's
 * batched `BatchMatMul` does not use the threads.
 *
 * This module imports tfjs directly (a kernel module is a leaf) and only
 * defines functions.
 *
 * @module
 */

import * as tfjs from "@tensorflow/tfjs";
import * as tfWasm from "@tensorflow/tfjs-backend-wasm";
import os from "node:os";
import { Worker as NodeWorker } from "node:worker_threads";

/**
 * Most threads the backend uses: its C++ caps the count at 8 (emscripten
 * pre-creates 8 pthread workers; XNNPACK's pool uses the calling thread plus
 * count - 1 of them).
 */
export const MAX_WASM_THREADS = 8;

/** Threads asked of the backend by {@link enableWasmThreads}. */
let requestedThreads = 1;

/** `importScripts` name under which a worker finds the glue's source. */
const MAIN_SCRIPT = "tokenlab:tfjs-backend-wasm-threaded-simd.js";
/** Key of the first message a pthread worker gets: emscripten's worker.js. */
const BOOT = "tokenlab:boot";
/** Key under which the "load" message carries the glue's source. */
const MAIN_SOURCE = "tokenlab:mainSource";

/**
 * The bootstrap each pthread worker runs (`node:worker_threads`, eval mode,
 * where `require` exists). It evaluates emscripten's worker script and,
 * through `importScripts`, the glue, each as a function whose parameters
 * shadow the Node globals (so emscripten takes its web-worker paths) and
 * supply the globals the scripts expect: `self` (a plain object on which
 * emscripten sets `onmessage` and `startWorker`), `postMessage`,
 * `importScripts`, `startWorker`, `alert`, and the three
 * tslib helpers the bundled glue (`tf-backend-wasm.node.js`) refers to.
 */
const BOOTSTRAP = `"use strict";
const { parentPort } = require("node:worker_threads");
const MAIN_SCRIPT = ${JSON.stringify(MAIN_SCRIPT)};
const BOOT = ${JSON.stringify(BOOT)};
const MAIN_SOURCE = ${JSON.stringify(MAIN_SOURCE)};
const scope = {
  onmessage: null,
  location: { href: "file:///tfjs-backend-wasm-threaded-simd.worker.js" },
};
let mainSource = null;
const post = (message, transfer) => parentPort.postMessage(message, transfer);
const values = (iterable) => iterable[Symbol.iterator]();
const read = (iterable, n) => {
  const out = [];
  if (n === 0) return out;
  for (const item of iterable) {
    out.push(item);
    if (n !== undefined && out.length >= n) break;
  }
  return out;
};
const spreadArray = (to, from) => to.concat(Array.from(from));
const NAMES = ["self", "postMessage", "importScripts", "startWorker", "alert",
  "__values", "__read", "__spreadArray", "process", "require", "module",
  "exports", "global",
  "__filename", "__dirname", "_scriptDir", "commonjsGlobal", "require$$0",
  "require$$1", "require$$3", "require$$4"];
const evaluate = (source, tail) =>
  new Function(...NAMES, source + tail)(
    scope, post, importScripts, (module) => scope.startWorker(module),
    (text) => scope.alert(text), values, read, spreadArray,
  );
function importScripts(url) {
  if (url !== MAIN_SCRIPT || mainSource === null) {
    throw new Error("tfjs pthread worker: cannot import " + url);
  }
  globalThis.WasmBackendModuleThreadedSimd = evaluate(
    mainSource, "\\nreturn WasmBackendModuleThreadedSimd;",
  );
}
parentPort.on("message", (data) => {
  if (data && data.cmd === BOOT) {
    evaluate(data.source, "");
    return;
  }
  if (data && data.cmd === "load") {
    mainSource = data[MAIN_SOURCE];
    delete data[MAIN_SOURCE];
  }
  scope.onmessage({ data });
});
`;

/** Text of emscripten's worker script (the same for every pool worker). */
let workerSource: Promise<string> | null = null;
/** Text of the glue tfjs hands to workers, by the Blob that holds it. */
const mainSources = new WeakMap<Blob, Promise<string>>();

function readWorkerSource(url: string): Promise<string> {
  if (workerSource === null) {
    workerSource = fetch(url).then((r) => r.text());
  }
  const source = workerSource;
  // tfjs makes a new object URL per worker and never revokes it.
  if (url.startsWith("blob:")) {
    source.finally(() => URL.revokeObjectURL(url)).catch(() => {});
  }
  return source;
}

function readMainSource(blob: Blob): Promise<string> {
  let source = mainSources.get(blob);
  if (source === undefined) {
    source = blob.text();
    mainSources.set(blob, source);
  }
  return source;
}

type Listener = (...args: unknown[]) => void;
type Message = Record<string, unknown>;

/**
 * What emscripten's Node mode expects of a pthread worker (`on`,
 * `postMessage`, `ref`/`unref`, `terminate`, and the `onmessage`/`onerror`
 * properties it sets and then calls from its own "message"/"error"
 * listeners), backed by a `node:worker_threads` worker.
 *
 * Until the worker has been handed emscripten's worker script (read
 * asynchronously from tfjs's blob URL) messages are queued in order; the
 * "load" message's glue Blob is replaced by its text. Once that is done,
 * messages are posted synchronously: the main thread later blocks in wasm
 * (XNNPACK waits for its threads to start) right after posting "run".
 */
class PthreadWorker {
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onerror: ((error: unknown) => void) | null = null;
  #worker: NodeWorker;
  #queue: Promise<void> = Promise.resolve();
  #pending = 0;

  constructor(scriptUrl: string | URL) {
    this.#worker = new NodeWorker(BOOTSTRAP, {
      eval: true,
      name: "tfjs-wasm-pthread",
    });
    this.#enqueue(async () => {
      const source = await readWorkerSource(String(scriptUrl));
      this.#post({ cmd: BOOT, source });
    });
  }

  #post(message: Message, transfer?: readonly Transferable[]): void {
    type List = Parameters<NodeWorker["postMessage"]>[1];
    this.#worker.postMessage(message, transfer as List);
  }

  #enqueue(task: () => void | Promise<void>): void {
    this.#pending++;
    this.#queue = this.#queue.then(task).catch((error) => {
      // emscripten's "error" listener reports it and throws.
      this.#worker.emit("error", error);
    }).finally(() => {
      this.#pending--;
    });
  }

  postMessage(message: Message, transfer?: readonly Transferable[]): void {
    const blob = message?.["urlOrBlob"];
    if (message?.["cmd"] === "load" && blob instanceof Blob) {
      this.#enqueue(async () => {
        const source = await readMainSource(blob);
        this.#post(
          { ...message, urlOrBlob: MAIN_SCRIPT, [MAIN_SOURCE]: source },
          transfer,
        );
      });
    } else if (this.#pending > 0) {
      this.#enqueue(() => this.#post(message, transfer));
    } else {
      this.#post(message, transfer);
    }
  }

  on(event: string, listener: Listener): this {
    if (event === "message") {
      // The last worker's "loaded" starts the module, whose C++ constructors
      // read the core count (see withLogicalCores).
      const inner = listener;
      listener = (...args) =>
        (args[0] as Message | null)?.["cmd"] === "loaded"
          ? withLogicalCores(2 * requestedThreads, () => inner(...args))
          : inner(...args);
    }
    this.#worker.on(event, listener);
    return this;
  }

  /** Never keep the process alive for a pthread (see the module doc). */
  ref(): void {}

  unref(): void {
    this.#worker.unref();
  }

  terminate(): Promise<number> {
    return this.#worker.terminate();
  }
}

/**
 * Runs `f` while `os.cpus()` (which emscripten's Node mode answers
 * `emscripten_num_logical_cores` with) lists at least `cores` entries.
 *
 * The backend's C++ (`backend.cc`) caps the thread count at half the logical
 * cores (`emscripten_num_logical_cores() / 2`, read once by a static
 * initialiser when the module starts): "many x86-64 processors have 2 threads
 * per core". On a 2-core machine that cap is 1, whatever `setThreadsCount`
 * asks. The override lasts only while the module starts, so the rest of the
 * process sees the true `os.cpus()`.
 */
function withLogicalCores<T>(cores: number, f: () => T): T {
  const cpus = os.cpus;
  const real = cpus.call(os);
  if (real.length >= cores || real.length === 0) return f();
  os.cpus = () => {
    const list = cpus.call(os);
    while (list.length < cores) list.push(list[0]);
    return list;
  };
  try {
    return f();
  } finally {
    os.cpus = cpus;
  }
}

let armed = false;

/**
 * Makes `globalThis.Worker` answer pthread workers for emscripten (see the
 * module doc) until the pool has been created, then puts Deno's `Worker`
 * back. Until the threaded glue runs, and for every call that is not
 * emscripten's, it is Deno's `Worker` (same prototype, so `instanceof`
 * holds).
 */
function armWorkerHook(): void {
  if (armed) return;
  armed = true;
  const descriptor = Object.getOwnPropertyDescriptor(globalThis, "Worker");
  const DenoWorker = globalThis.Worker;
  // Set when the threaded glue starts (its Node mode assigns
  // node:worker_threads' Worker to the global first, then creates its pool
  // in the same synchronous run): only then is an option-less `new Worker`
  // emscripten's.
  let glueRunning = false;
  let restoreQueued = false;
  const restore = () => {
    if (descriptor) Object.defineProperty(globalThis, "Worker", descriptor);
    else delete (globalThis as { Worker?: unknown }).Worker;
    armed = false;
  };
  function HookedWorker(
    this: unknown,
    url: string | URL,
    options?: WorkerOptions,
  ): object {
    const target = new.target as unknown;
    if (target === undefined) {
      throw new TypeError("Worker constructor: 'new' is required");
    }
    // emscripten's call: a (classic) worker script and no options.
    if (glueRunning && options === undefined && target === HookedWorker) {
      if (!restoreQueued) {
        restoreQueued = true;
        // The pool's workers are all created in one synchronous run.
        queueMicrotask(restore);
      }
      return new PthreadWorker(url);
    }
    return Reflect.construct(
      DenoWorker,
      [url, options],
      target === HookedWorker ? DenoWorker : target as typeof DenoWorker,
    );
  }
  HookedWorker.prototype = DenoWorker.prototype;
  Object.defineProperty(globalThis, "Worker", {
    configurable: true,
    enumerable: false,
    get: () => HookedWorker,
    // emscripten's Node mode assigns node:worker_threads' Worker here;
    // anyone else's assignment ends the hook.
    set: (value: unknown) => {
      if (value === NodeWorker) {
        glueRunning = true;
        return;
      }
      restore();
      (globalThis as { Worker?: unknown }).Worker = value;
    },
  });
}

/** Whether this runtime has what the threaded build needs. */
function threadsSupported(): boolean {
  try {
    if (typeof SharedArrayBuffer !== "function") return false;
    const memory = new WebAssembly.Memory({
      initial: 1,
      maximum: 1,
      shared: true,
    });
    return memory.buffer instanceof SharedArrayBuffer;
  } catch {
    return false;
  }
}

/**
 * Makes the wasm backend initialise with its multi-threaded SIMD build and
 * `threads` threads (the main thread included). Call it before the wasm
 * backend initialises (before `tf.setBackend("wasm")` or `tf.ready()` with
 * wasm as the best backend); `threads` is capped at {@link MAX_WASM_THREADS}.
 * With `threads` of 1 or less, or when the wasm backend is already
 * initialised, or when shared wasm memory is missing, it changes nothing.
 *
 * Returns the thread count asked of the backend (1 when nothing changed);
 * once the backend is initialised, `getThreadsCount()` of
 * `@tensorflow/tfjs-backend-wasm` reports the count actually in use.
 */
export function enableWasmThreads(threads: number): number {
  const engine = tfjs.engine() as unknown as {
    registry: Record<string, unknown>;
  };
  if (engine.registry["wasm"] !== undefined) return tfWasm.getThreadsCount();
  const count = Math.min(Math.floor(threads), MAX_WASM_THREADS);
  if (!(count > 1) || !threadsSupported()) return 1;
  tfjs.env().set("WASM_HAS_MULTITHREAD_SUPPORT", true);
  tfWasm.setThreadsCount(count);
  requestedThreads = count;
  armWorkerHook();
  return count;
}
