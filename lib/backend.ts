/**
 * Choosing the compute backend.
 *
 * `auto` (the default) takes `webgpu` when the WebGPU adapter is a real GPU,
 * `wasm` on a CPU-only machine (the fastest CPU path: WebGPU on a software
 * rasteriser such as lavapipe is about 5x slower at matmul and about 20x
 * slower at training), and `cpu` as the last resort. An explicit request
 * (option, `TOKENLAB_BACKEND`, or `--backend`) is honoured or fails with a
 * clear error; only `auto` falls back.
 *
 * @module
 */

import { prepareTfjs, tf, wasmThreads } from "./tf.ts";
import { installKernels, installWebGpuProducts } from "./kernels/mod.ts";
import { installWebGpuConvGrad } from "./kernels/webgpu_conv_grad.ts";
import { TokenlabError } from "./errors.ts";

/** The compute backends the kit knows, fastest first. */
export const BACKENDS: readonly BackendName[] = ["webgpu", "wasm", "cpu"];

/** A concrete tfjs backend. */
export type BackendName = "webgpu" | "wasm" | "cpu";

/** What a user may ask for: a concrete backend or `auto`. */
export type BackendRequest = BackendName | "auto";

/** Where a backend request came from. */
export type BackendSource = "option" | "env" | "default";

/** Name of the environment variable that overrides the backend. */
export const BACKEND_ENV = "TOKENLAB_BACKEND";

/**
 * Name of the environment variable that asks for wasm threads (1, the
 * single-threaded build, when unset). The threads must be chosen before the
 * wasm backend starts, which is why this is an environment variable and not
 * an option of `initBackend`.
 */
export const WASM_THREADS_ENV = "TOKENLAB_WASM_THREADS";

/** Name of the environment variable that sets WebGPU dispatches per queue submit. */
export const WEBGPU_SUBMIT_BATCH_ENV = "TOKENLAB_WEBGPU_SUBMIT_BATCH";

/**
 * Dispatches recorded before each WebGPU queue submit (tfjs's
 * `WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE`, whose own default is 15).
 *
 * Measured in Deno on lavapipe (`tests/bench/webgpu_queue_probe.ts`): a
 * submit waits for the previous submission to finish, and every readback
 * settles about 11 ms after the work does. So each submit is a point where
 * the main thread may wait on the GPU, and a step of about 600 dispatches
 * (bench-64 training) made 40 of them at tfjs's 15. 128 makes five while
 * the GPU still starts early in the step; `TOKENLAB_WEBGPU_SUBMIT_BATCH`
 * overrides it, and `deno task bench --gpu` measures 15 and 1000 beside it.
 */
export const DEFAULT_WEBGPU_SUBMIT_BATCH = 128;

/** The submit batch from `TOKENLAB_WEBGPU_SUBMIT_BATCH`, else the default. */
function webgpuSubmitBatch(): number {
  let value: string | undefined;
  try {
    value = Deno.env.get(WEBGPU_SUBMIT_BATCH_ENV);
  } catch {
    return DEFAULT_WEBGPU_SUBMIT_BATCH; // no --allow-env
  }
  if (value === undefined || value.trim() === "") {
    return DEFAULT_WEBGPU_SUBMIT_BATCH;
  }
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) {
    throw new BackendError(
      `${WEBGPU_SUBMIT_BATCH_ENV}="${value}": expected a whole number of dispatches per queue submit (1 or more; tfjs's own default is 15); unset it for ${DEFAULT_WEBGPU_SUBMIT_BATCH}`,
    );
  }
  return n;
}

/**
 * Name of the environment variable that picks the WebGPU products: `tfjs`
 * (the default) or `tokenlab`.
 */
export const WEBGPU_PRODUCTS_ENV = "TOKENLAB_WEBGPU_PRODUCTS";

/**
 * Whose matrix products and convolutions run on WebGPU: tfjs-webgpu's
 * (`tfjs`, the default until the kit's are measured on a GPU), or the kit's
 * tiled ones (`tokenlab`: `webgpu_matmul.ts` and `webgpu_conv.ts`, installed
 * when the WebGPU backend starts and kept for the rest of the process).
 */
export type WebGpuProducts = "tfjs" | "tokenlab";

/** The products from `TOKENLAB_WEBGPU_PRODUCTS`, else `tfjs`. */
function webgpuProducts(): WebGpuProducts {
  let value: string | undefined;
  try {
    value = Deno.env.get(WEBGPU_PRODUCTS_ENV);
  } catch {
    return "tfjs"; // no --allow-env
  }
  const v = value?.trim() ?? "";
  if (v === "" || v === "tfjs") return "tfjs";
  if (v === "tokenlab") return "tokenlab";
  throw new BackendError(
    `${WEBGPU_PRODUCTS_ENV}="${value}": expected "tfjs" (tfjs-webgpu's matmul and convolutions, the default) or "tokenlab" (the kit's tiled ones); unset it for tfjs`,
  );
}

/** Threads asked of the wasm backend through `TOKENLAB_WASM_THREADS`. */
function requestedWasmThreads(): number {
  let value: string | undefined;
  try {
    value = Deno.env.get(WASM_THREADS_ENV);
  } catch (e) {
    if (
      e instanceof Deno.errors.NotCapable ||
      e instanceof Deno.errors.PermissionDenied
    ) return 1; // no --allow-env
    throw e;
  }
  if (value === undefined || value.trim() === "") return 1;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) {
    throw new BackendError(
      `${WASM_THREADS_ENV}="${value}": expected a whole number of threads (1 to 8; 1 is the single-threaded build); unset it for the default`,
    );
  }
  return n;
}

/**
 * Sets tfjs up and installs the kit's kernels (`lib/kernels/mod.ts`), once:
 * what every start of a backend needs first. An environment problem (a bad
 * `TOKENLAB_WASM_THREADS`, a `TOKENLAB_BLAS` library that cannot be loaded)
 * is a {@linkcode BackendError}.
 */
function setUp(): void {
  const wasm = prepareTfjs();
  const threads = wasm.dir !== null ? requestedWasmThreads() : 1;
  try {
    installKernels({ wasm: wasm.dir !== null, wasmThreads: threads });
  } catch (e) {
    throw new BackendError((e as Error).message, { cause: e });
  }
}

/**
 * An error about backend choice: an unknown name, a backend that was asked
 * for explicitly and cannot start, or an environment variable that sets the
 * backends up wrongly.
 *
 * @example
 * ```ts
 * import { BackendError, parseBackendRequest } from "tokenlab";
 * try {
 *   parseBackendRequest("metal");
 * } catch (e) {
 *   console.assert(e instanceof BackendError);
 * }
 * ```
 */
export class BackendError extends TokenlabError {
  /**
   * The option the message quotes (as `` `backend: "wasm"` ``), for the CLI
   * to name as its flag; empty when it quotes none.
   */
  readonly fields: readonly "backend"[];

  /** Creates the error with its message (what caused it, the option it quotes). */
  constructor(
    message: string,
    options: ErrorOptions & { fields?: readonly "backend"[] } = {},
  ) {
    super(message, options);
    this.fields = options.fields ?? [];
  }
}

/**
 * Parses a backend name (case-insensitive, surrounding blanks ignored).
 *
 * @param value the name given by the user
 * @param where where it was given, for the error message (e.g. `--backend`)
 * @throws {BackendError} listing the valid names when `value` is not one
 *
 * @example
 * ```ts
 * import { parseBackendRequest } from "tokenlab";
 * console.assert(parseBackendRequest(" WASM ") === "wasm");
 * ```
 */
export function parseBackendRequest(
  value: string,
  where = "backend",
): BackendRequest {
  const name = value.trim().toLowerCase();
  if (name === "auto" || (BACKENDS as readonly string[]).includes(name)) {
    return name as BackendRequest;
  }
  throw new BackendError(
    `unknown ${where} "${value}": expected one of auto, ${
      BACKENDS.join(", ")
    }. Use "auto" to let tokenlab choose (webgpu on a real GPU, wasm otherwise).`,
  );
}

/** What the WebGPU adapter says about itself. */
export interface AdapterSummary {
  /** Human-readable adapter name, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)". */
  description: string;
  /** Vendor id or name as reported by the adapter. */
  vendor: string;
  /** Architecture as reported by the adapter (often empty). */
  architecture: string;
  /** Whether the adapter reports itself as a fallback adapter. */
  isFallbackAdapter: boolean;
  /**
   * Our verdict: the adapter runs on the CPU (a software rasteriser such as
   * llvmpipe, lavapipe or SwiftShader), whatever it reports.
   */
  software: boolean;
}

/** The outcome of asking for a WebGPU adapter. */
export interface AdapterProbe {
  /** The adapter, or null when none could be had. */
  adapter: AdapterSummary | null;
  /** Why `adapter` is null; empty when there is one. */
  problem: string;
}

const SOFTWARE_ADAPTERS =
  /llvmpipe|lavapipe|softpipe|swiftshader|microsoft basic render|warp/i;

/**
 * Summarises a `GPUAdapter`-like object. Exposed for testing the decision
 * without a GPU.
 *
 * @example
 * ```ts
 * import { summarizeAdapter } from "tokenlab";
 * const s = summarizeAdapter({ info: { description: "llvmpipe (LLVM 15)" } });
 * console.assert(s.software);
 * ```
 */
export function summarizeAdapter(adapter: {
  info?: Partial<GPUAdapterInfo> & { isFallbackAdapter?: boolean };
  isFallbackAdapter?: boolean;
}): AdapterSummary {
  const info = adapter.info ?? {};
  const description = String(info.description ?? "");
  const isFallbackAdapter = Boolean(
    info.isFallbackAdapter ?? adapter.isFallbackAdapter ?? false,
  );
  return {
    description,
    vendor: String(info.vendor ?? ""),
    architecture: String(info.architecture ?? ""),
    isFallbackAdapter,
    software: isFallbackAdapter || SOFTWARE_ADAPTERS.test(description),
  };
}

let adapterProbe: Promise<AdapterProbe> | null = null;

/**
 * Asks `navigator.gpu` for an adapter, once per process (the answer is
 * cached). Never throws: a missing `navigator.gpu`, a null adapter, an error
 * or a time-out all come back as `adapter: null` with the reason.
 *
 * @example
 * ```ts
 * import { probeAdapter } from "tokenlab";
 * const probe = await probeAdapter();
 * console.log(probe.adapter?.description ?? probe.problem);
 * ```
 */
export function probeAdapter(): Promise<AdapterProbe> {
  adapterProbe ??= requestAdapter(10_000);
  return adapterProbe;
}

/**
 * Mesa's Vulkan loader prints "error: XDG_RUNTIME_DIR is invalid or not set"
 * on every adapter request when no session runtime folder exists (headless
 * machines, CI). It is harmless but alarming; give it a private folder.
 */
function quietMesa(): void {
  if (Deno.build.os !== "linux" || Deno.env.get("XDG_RUNTIME_DIR")) return;
  try {
    const dir = `/tmp/tokenlab-runtime-${Deno.uid() ?? "user"}`;
    Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const stat = Deno.statSync(dir);
    if (stat.uid !== Deno.uid() || ((stat.mode ?? 0) & 0o077) !== 0) return;
    Deno.env.set("XDG_RUNTIME_DIR", dir);
  } catch {
    // Cosmetic only: keep the noise rather than fail.
  }
}

async function requestAdapter(timeoutMs: number): Promise<AdapterProbe> {
  quietMesa();
  const gpu = (globalThis.navigator as Navigator | undefined)?.gpu;
  if (!gpu) {
    return {
      adapter: null,
      problem: "this runtime has no navigator.gpu (WebGPU is not available)",
    };
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), timeoutMs);
    });
    const adapter = await Promise.race([
      gpu.requestAdapter({ powerPreference: "high-performance" }),
      timeout,
    ]);
    if (adapter === "timeout") {
      return {
        adapter: null,
        problem: `navigator.gpu.requestAdapter() did not answer within ${
          timeoutMs / 1000
        } s`,
      };
    }
    if (adapter === null) {
      return {
        adapter: null,
        problem:
          "navigator.gpu.requestAdapter() returned null: no GPU driver and no software Vulkan/GL driver was found (on Debian, `apt-get install mesa-vulkan-drivers` gives the lavapipe CPU adapter)",
      };
    }
    return { adapter: summarizeAdapter(adapter), problem: "" };
  } catch (e) {
    return {
      adapter: null,
      problem: `navigator.gpu.requestAdapter() failed: ${(e as Error).message}`,
    };
  } finally {
    clearTimeout(timer);
  }
}

/** A decision before any backend is started: which one, and why. */
export interface BackendDecision {
  /** The backend to start. */
  name: BackendName;
  /** Why this backend (one clause, no trailing period). */
  reason: string;
}

/**
 * The pure decision rule, separated from starting the backend so that it can
 * be tested without hardware.
 *
 * @param request what was asked for
 * @param probe the WebGPU adapter probe (needed for `auto` and `webgpu`)
 * @throws {BackendError} when `webgpu` is requested and there is no adapter
 *
 * @example
 * ```ts
 * import { decideBackend } from "tokenlab";
 * const d = decideBackend("auto", { adapter: null, problem: "no driver" });
 * console.assert(d.name === "wasm");
 * ```
 */
export function decideBackend(
  request: BackendRequest,
  probe: AdapterProbe,
): BackendDecision {
  const adapter = probe.adapter;
  switch (request) {
    case "cpu":
      return { name: "cpu", reason: "requested" };
    case "wasm":
      return { name: "wasm", reason: "requested" };
    case "webgpu":
      if (adapter === null) {
        throw new BackendError(
          `webgpu was requested but there is no WebGPU adapter: ${probe.problem}. ` +
            `Use \`backend: "wasm"\` (the fastest CPU path) or \`backend: "auto"\` to let tokenlab choose.`,
          { fields: ["backend"] },
        );
      }
      return {
        name: "webgpu",
        reason: adapter.software
          ? `requested; adapter "${adapter.description}" is a software (CPU) fallback, expect it to be slow`
          : `requested; adapter "${adapter.description}"`,
      };
    case "auto":
      if (adapter !== null && !adapter.software) {
        return {
          name: "webgpu",
          reason: `real GPU adapter "${adapter.description}"`,
        };
      }
      return {
        name: "wasm",
        reason: adapter === null
          ? `no WebGPU adapter (${probe.problem}); wasm is the fastest CPU path`
          : `the only WebGPU adapter, "${adapter.description}", is a software (CPU) fallback; wasm is the fastest CPU path`,
      };
  }
}

/** Options of {@linkcode initBackend}. */
export interface InitBackendOptions {
  /**
   * The backend to use; overrides `TOKENLAB_BACKEND`. Default: the variable,
   * else `auto`.
   */
  backend?: string;
}

/** The backend the kit is computing with, and why it was chosen. */
export interface BackendChoice {
  /** The running backend. */
  name: BackendName;
  /** What was asked for. */
  request: BackendRequest;
  /** Where the request came from. */
  source: BackendSource;
  /** Why this backend was chosen, including any fallback. */
  reason: string;
  /** The WebGPU adapter, when one was probed and found. */
  adapter: AdapterSummary | null;
  /** True when computing on the CPU (wasm, cpu, or a software WebGPU adapter). */
  cpuFallback: boolean;
  /** Threads of the wasm backend (1 where threads are unavailable); else 0. */
  threads: number;
}

let current: BackendChoice | null = null;
let pending: Promise<BackendChoice> | null = null;

function requestFrom(options: InitBackendOptions): {
  request: BackendRequest;
  source: BackendSource;
} {
  if (options.backend !== undefined) {
    return {
      request: parseBackendRequest(options.backend, "backend"),
      source: "option",
    };
  }
  const fromEnv = Deno.env.get(BACKEND_ENV);
  if (fromEnv !== undefined && fromEnv.trim() !== "") {
    return {
      request: parseBackendRequest(fromEnv, `${BACKEND_ENV} value`),
      source: "env",
    };
  }
  return { request: "auto", source: "default" };
}

/**
 * Starts a tfjs backend and reports why it failed (tfjs itself only logs a
 * warning and answers false).
 */
async function startBackend(name: BackendName): Promise<string> {
  const wasm = prepareTfjs();
  if (name === "wasm" && wasm.dir === null) return wasm.problem;
  const warnings: string[] = [];
  const warn = console.warn;
  console.warn = (...args: unknown[]) => warnings.push(args.join(" "));
  try {
    if (await tf.setBackend(name)) {
      await tf.ready();
      return "";
    }
    return warnings.join("; ") ||
      `tfjs could not initialise the ${name} backend`;
  } catch (e) {
    return (e as Error).message;
  } finally {
    console.warn = warn;
  }
}

/**
 * Chooses and starts the compute backend, first setting tfjs up and
 * installing the kit's kernels (once per process; see `lib/kernels/mod.ts`).
 * Safe to call again: a new request switches the backend, the same one
 * returns at once.
 *
 * @throws {BackendError} for an unknown name, when an explicitly requested
 * backend cannot start (only `auto` falls back), or for a bad
 * `TOKENLAB_WASM_THREADS`, `TOKENLAB_WEBGPU_SUBMIT_BATCH`,
 * `TOKENLAB_WEBGPU_PRODUCTS` or `TOKENLAB_BLAS`
 *
 * @example
 * ```ts
 * import { describeBackend, initBackend } from "tokenlab";
 * const choice = await initBackend({ backend: "cpu" });
 * console.log(describeBackend(choice));
 * ```
 */
export async function initBackend(
  options: InitBackendOptions = {},
): Promise<BackendChoice> {
  const { request, source } = requestFrom(options);
  // Bad values fail before any start.
  const submitBatch = webgpuSubmitBatch();
  const products = webgpuProducts();
  setUp();
  if (
    current !== null && current.request === request &&
    current.source === source && tf.getBackend() === current.name
  ) {
    return current;
  }
  const needsAdapter = request === "auto" || request === "webgpu";
  const probe: AdapterProbe = needsAdapter
    ? await probeAdapter()
    : { adapter: null, problem: "not probed" };
  const decision = decideBackend(request, probe);
  let name = decision.name;
  let reason = decision.reason;
  let problem = await startBackend(name);
  if (problem !== "" && request !== "auto") {
    throw new BackendError(
      `the ${name} backend was requested but could not start: ${problem}. ` +
        `Use \`backend: "auto"\` to let tokenlab fall back to a backend that works.`,
      { fields: ["backend"] },
    );
  }
  // Only auto falls back, along webgpu -> wasm -> cpu.
  while (problem !== "") {
    const next = BACKENDS[BACKENDS.indexOf(name) + 1];
    if (next === undefined) {
      throw new BackendError(
        `no compute backend could start; the last one (${name}) failed: ${problem}`,
      );
    }
    reason += `; ${name} failed to start (${problem}), fell back to ${next}`;
    name = next;
    problem = await startBackend(name);
  }
  // The conv stem's weight gradient as a split-K product on the GPU
  // (lib/kernels/webgpu_conv_grad.ts), in place of tfjs's serial loops.
  if (name === "webgpu") {
    installWebGpuConvGrad();
    tf.env().set("WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE", submitBatch);
    if (products === "tokenlab") {
      installWebGpuProducts();
    }
  }
  const adapter = probe.adapter;
  current = {
    name,
    request,
    source,
    reason,
    adapter,
    cpuFallback: name !== "webgpu" || (adapter?.software ?? true),
    threads: name === "wasm" ? wasmThreads() : 0,
  };
  return current;
}

/**
 * The running backend, starting the default one (`TOKENLAB_BACKEND`, else
 * `auto`) on first use. Library functions call this before computing.
 *
 * @example
 * ```ts
 * import { ensureBackend } from "tokenlab";
 * const choice = await ensureBackend();
 * console.assert(["webgpu", "wasm", "cpu"].includes(choice.name));
 * ```
 */
export function ensureBackend(): Promise<BackendChoice> {
  if (current !== null && tf.getBackend() === current.name) {
    return Promise.resolve(current);
  }
  pending ??= initBackend().finally(() => {
    pending = null;
  });
  return pending;
}

/**
 * One line that says what was chosen and why.
 *
 * @example
 * ```ts
 * import { describeBackend } from "tokenlab";
 * const line = describeBackend({
 *   name: "wasm", request: "auto", source: "default", adapter: null,
 *   reason: "no WebGPU adapter", cpuFallback: true, threads: 1,
 * });
 * console.assert(line.startsWith("backend: wasm"));
 * ```
 */
export function describeBackend(choice: BackendChoice): string {
  const asked = choice.source === "default"
    ? "auto"
    : `${choice.request} from ${
      choice.source === "env" ? BACKEND_ENV : "the option"
    }`;
  const where = choice.cpuFallback
    ? "computing on the CPU"
    : "computing on the GPU";
  const threads = choice.name === "wasm"
    ? `, ${choice.threads} thread${choice.threads === 1 ? "" : "s"}`
    : "";
  return `backend: ${choice.name} (asked: ${asked}): ${choice.reason} [${where}${threads}]`;
}

/**
 * Why `backend` cannot run an operation that needs `kernels`: the kernels
 * tfjs lacks there, or "" when it has them all.
 *
 * @example
 * ```ts
 * import { kernelGap } from "tokenlab";
 * console.assert(kernelGap("cpu", ["BatchMatMul", "Softmax"]) === "");
 * console.log(kernelGap("wasm", ["DepthwiseConv2dNativeBackpropFilter"]));
 * ```
 */
export function kernelGap(
  backend: BackendName,
  kernels: readonly string[],
): string {
  const missing = kernels.filter((k) => tf.getKernel(k, backend) === undefined);
  return missing.length === 0
    ? ""
    : `tfjs ${tf.version_core} ${backend} has no kernel ${missing.join(", ")}`;
}

/**
 * Runs `fn` on the named backend, then restores the backend (and the recorded
 * choice) that was running before, also when `fn` throws.
 *
 * @throws {BackendError} when the backend cannot start
 *
 * @example
 * ```ts
 * import { tf, withBackend } from "tokenlab";
 * const sum = await withBackend("cpu", async () => {
 *   const y = tf.sum(tf.ones([4]));
 *   const v = (await y.data())[0];
 *   y.dispose();
 *   return v;
 * });
 * console.assert(sum === 4);
 * ```
 */
export async function withBackend<T>(
  name: BackendName,
  fn: () => T | Promise<T>,
): Promise<T> {
  const saved = current;
  const savedTf = tf.getBackend() as BackendName | undefined;
  await initBackend({ backend: name });
  try {
    return await fn();
  } finally {
    if (saved !== null) {
      await startBackend(saved.name);
      current = saved;
    } else if (savedTf !== undefined && savedTf !== name) {
      await startBackend(savedTf);
      current = null;
    }
  }
}

/** Whether a backend can run here, and if not, why. */
export interface BackendAvailability {
  /** The backend. */
  name: BackendName;
  /** True when it started. */
  available: boolean;
  /** Why it is unavailable; for webgpu, the adapter when available. */
  detail: string;
}

let availability: Promise<BackendAvailability[]> | null = null;

/**
 * Tries every backend once (cached per process) and says which can run. The
 * backend that was running before is restored.
 *
 * @example
 * ```ts
 * import { availableBackends } from "tokenlab";
 * for (const b of await availableBackends()) {
 *   console.log(b.name, b.available ? "ok" : `unavailable: ${b.detail}`);
 * }
 * ```
 */
export function availableBackends(): Promise<BackendAvailability[]> {
  if (availability !== null) return availability;
  try {
    setUp(); // an environment problem is the caller's, not cached
  } catch (e) {
    return Promise.reject(e);
  }
  availability = (async () => {
    const saved = current;
    const result: BackendAvailability[] = [];
    for (const name of BACKENDS) {
      const probe = name === "webgpu" ? await probeAdapter() : null;
      if (probe !== null && probe.adapter === null) {
        result.push({ name, available: false, detail: probe.problem });
        continue;
      }
      const problem = await startBackend(name);
      const adapter = probe?.adapter;
      result.push({
        name,
        available: problem === "",
        detail: problem !== ""
          ? problem
          : adapter
          ? `adapter "${adapter.description}"${
            adapter.software ? " (software)" : ""
          }`
          : "",
      });
    }
    if (saved !== null) await startBackend(saved.name);
    current = saved;
    return result;
  })();
  return availability;
}
