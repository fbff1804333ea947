/**
 * The results cache: an experiment's result is stored under a key made of
 * its name, its full config and the version of the code that computed it,
 * so re-rendering a report does not recompute what has not changed.
 *
 * Three places a result can come from, and a report says which:
 * - `computed`: run in this kernel session;
 * - `cache`: an earlier run with the same config and the same code
 *   (`data/cache/results/`, not committed);
 * - `frozen`: a committed full-scale run with the same config
 *   (`data/frozen/`), recorded with when, where and on what backend it ran,
 *   and used even when the code has changed since (the report says so).
 *
 * The report runner steers this through the environment of the kernel:
 * `TOKENLAB_REFRESH=1` recomputes everything (`--refresh`), and
 * `TOKENLAB_FREEZE=1` also writes every result into the frozen store
 * (`--freeze`).
 *
 * @module
 */

import { join, relative } from "node:path";
import { writeTextAtomic } from "../io/_fs.ts";
import { fileURLToPath } from "node:url";
import { ensureBackend } from "../backend.ts";
import { TFJS_VERSION } from "../tf.ts";
import { VERSION } from "../version.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
/** Where computed results are cached (not committed). */
export const RESULTS_CACHE_DIR: string = join(ROOT, "data/cache/results");
/** Where frozen results are kept (committed). */
export const FROZEN_DIR: string = join(ROOT, "data/frozen");

/** Report scales whose results are recomputed in every run and never frozen. */
export const UNFROZEN_SCALES: ReadonlySet<string> = new Set(["tiny", "smoke"]);

/** Where an experiment's result came from. */
export type ResultSource = "computed" | "cache" | "frozen";

/** When, where, with what and from which code a result was computed. */
export interface ExperimentProvenance {
  /** The experiment's name. */
  experiment: string;
  /** SHA-256 (hex, 16 digits) of the name and the canonical config. */
  configKey: string;
  /** {@linkcode codeVersion} of the code that computed it. */
  codeVersion: string;
  /** The git commit it was computed at (`+dirty` with local changes), or "unknown". */
  commit: string;
  /** When it finished (ISO 8601). */
  computedAt: string;
  /** The machine: OS, architecture, CPU count and model. */
  machine: string;
  /** The tfjs backend. */
  backend: string;
  /** The WebGPU adapter, when the backend had one. */
  adapter: string | null;
  /** Deno's version. */
  deno: string;
  /** tfjs's version. */
  tfjs: string;
  /** tokenlab's version. */
  tokenlab: string;
  /** Wall time of the computation in seconds. */
  seconds: number;
  /** The report's scale (`TOKENLAB_SCALE`), or null outside a scaled report. */
  scale: string | null;
}

/** An experiment's result and where it came from. */
export interface ExperimentResult<T> {
  /** The result, as JSON data (identical whether computed or read back). */
  value: T;
  /** Where it came from in this run. */
  source: ResultSource;
  /** How it was computed. */
  provenance: ExperimentProvenance;
  /** For a frozen result: the code has changed since it was computed. */
  codeChanged: boolean;
}

/** The stored form of a result. */
interface StoredResult {
  format: "tokenlab-result/1";
  config: unknown;
  provenance: ExperimentProvenance;
  value: unknown;
}

/** Options of {@linkcode experiment}. */
export interface ExperimentOptions {
  /** Recompute even when a result is stored (default: `TOKENLAB_REFRESH=1`). */
  refresh?: boolean;
  /** Also write the result into the frozen store (default: `TOKENLAB_FREEZE=1`). */
  freeze?: boolean;
  /** The cache folder (default {@linkcode RESULTS_CACHE_DIR}). */
  cacheDir?: string;
  /** The frozen folder (default {@linkcode FROZEN_DIR}). */
  frozenDir?: string;
}

/** A bad experiment name, config or result, or an unreadable stored result. */
export class ExperimentError extends Error {
  /** Creates the error with its message. */
  constructor(message: string) {
    super(message);
    this.name = "ExperimentError";
  }
}

/**
 * JSON with the keys of every object sorted, so that equal configs give
 * equal text. Throws for what JSON cannot hold exactly: non-finite numbers,
 * functions, `undefined` in arrays, typed arrays, class instances other
 * than plain objects and arrays.
 *
 * @example
 * ```ts
 * import { canonicalJson } from "tokenlab";
 * console.assert(canonicalJson({ b: 1, a: [true, "x"] }) === '{"a":[true,"x"],"b":1}');
 * ```
 */
export function canonicalJson(value: unknown, what = "value"): string {
  const walk = (v: unknown, path: string): string => {
    if (v === null) return "null";
    switch (typeof v) {
      case "number":
        if (!Number.isFinite(v)) {
          throw new ExperimentError(
            `${what} must be JSON data: found the non-finite number ${v} at ${path}`,
          );
        }
        return JSON.stringify(v);
      case "string":
      case "boolean":
        return JSON.stringify(v);
      case "object": {
        if (Array.isArray(v)) {
          return `[${v.map((x, i) => walk(x, `${path}[${i}]`)).join(",")}]`;
        }
        const proto = Object.getPrototypeOf(v);
        if (proto !== Object.prototype && proto !== null) {
          throw new ExperimentError(
            `${what} must be JSON data (numbers, strings, booleans, null, arrays, plain objects): found a ${
              (v as object).constructor?.name ?? "non-plain object"
            } at ${path}; convert it (Array.from for typed arrays, a summary object for models)`,
          );
        }
        const keys = Object.keys(v as object).filter((k) =>
          (v as Record<string, unknown>)[k] !== undefined
        ).sort();
        return `{${
          keys.map((k) =>
            `${JSON.stringify(k)}:${
              walk((v as Record<string, unknown>)[k], `${path}.${k}`)
            }`
          ).join(",")
        }}`;
      }
      default:
        throw new ExperimentError(
          `${what} must be JSON data: found a ${typeof v} at ${path}`,
        );
    }
  };
  return walk(value, "$");
}

/**
 * SHA-256 of text (UTF-8) or bytes, as lowercase hex.
 *
 * @example
 * ```ts
 * import { sha256Hex } from "tokenlab";
 * console.log((await sha256Hex("abc")).slice(0, 8)); // ba7816bf
 * ```
 */
export async function sha256Hex(data: string | Uint8Array): Promise<string> {
  const bytes = typeof data === "string"
    ? new TextEncoder().encode(data)
    : data;
  const digest = await crypto.subtle.digest(
    "SHA-256",
    bytes as Uint8Array<ArrayBuffer>,
  );
  return Array.from(
    new Uint8Array(digest),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

let codeVersionPromise: Promise<string> | null = null;

/**
 * The version of the code: SHA-256 (16 hex digits) over the path and bytes
 * of every file under `lib/`, plus `deno.json` and `deno.lock` (the pinned
 * dependencies). Any change to the library gives a new version, so cached
 * results never outlive the code that made them.
 */
export function codeVersion(): Promise<string> {
  codeVersionPromise ??= (async () => {
    const files: string[] = [];
    const walk = async (dir: string) => {
      for await (const e of Deno.readDir(dir)) {
        const p = join(dir, e.name);
        if (e.isDirectory) await walk(p);
        else if (e.isFile) files.push(p);
      }
    };
    await walk(join(ROOT, "lib"));
    files.sort();
    for (const extra of ["deno.json", "deno.lock"]) {
      const p = join(ROOT, extra);
      try {
        await Deno.stat(p);
        files.push(p);
      } catch { /* a published copy has no lock file */ }
    }
    const parts: string[] = [];
    for (const f of files) {
      parts.push(
        `${relative(ROOT, f)}\0${await sha256Hex(await Deno.readFile(f))}`,
      );
    }
    return (await sha256Hex(parts.join("\n"))).slice(0, 16);
  })();
  return codeVersionPromise;
}

async function gitCommit(): Promise<string> {
  try {
    const run = async (args: string[]) => {
      const out = await new Deno.Command("git", {
        args,
        cwd: ROOT,
        stdout: "piped",
        stderr: "null",
      }).output();
      if (!out.success) throw new Error("git failed");
      return new TextDecoder().decode(out.stdout).trim();
    };
    const head = await run(["rev-parse", "HEAD"]);
    const dirty = await run([
      "status",
      "--porcelain",
      "--",
      "lib",
      "deno.json",
    ]);
    return dirty ? `${head}+dirty` : head;
  } catch {
    return "unknown";
  }
}

let commitPromise: Promise<string> | null = null;
/** The git commit of the project (`+dirty` when lib/ has local changes), or "unknown". Cached per process. */
export function projectCommit(): Promise<string> {
  commitPromise ??= gitCommit();
  return commitPromise;
}

let machinePromise: Promise<string> | null = null;
/** The machine in words, without names or paths: OS, arch, CPUs and their model. */
export function machineDescription(): Promise<string> {
  machinePromise ??= (async () => {
    let model = "";
    try {
      const info = await Deno.readTextFile("/proc/cpuinfo");
      model = info.match(/^model name\s*:\s*(.+)$/m)?.[1]?.trim() ?? "";
    } catch { /* not Linux */ }
    const cpus = navigator.hardwareConcurrency;
    return `${Deno.build.os} ${Deno.build.arch}, ${cpus} CPU${
      cpus === 1 ? "" : "s"
    }${model ? ` (${model})` : ""}`;
  })();
  return machinePromise;
}

const session: ExperimentResult<unknown>[] = [];

/** Every experiment looked up in this process, in order (for the provenance footer). */
export function sessionExperiments(): readonly ExperimentResult<unknown>[] {
  return session;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

function envFlag(name: string): boolean {
  const v = Deno.env.get(name);
  return v !== undefined && v !== "" && v !== "0" && v !== "false";
}

async function readStored(path: string): Promise<StoredResult | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  try {
    const stored = JSON.parse(text) as StoredResult;
    if (stored.format !== "tokenlab-result/1" || !("value" in stored)) {
      throw new Error(`format is ${JSON.stringify(stored.format)}`);
    }
    return stored;
  } catch (e) {
    throw new ExperimentError(
      `stored result ${path} is unreadable (${
        (e as Error).message
      }): expected a tokenlab-result/1 JSON file. Delete it (or run the report with --refresh) to recompute.`,
    );
  }
}

/**
 * Runs `compute` for `config`, or reads its result back when it was stored
 * before: from the cache when the config and the code are unchanged, else
 * from the frozen store when the config matches. The result must be JSON
 * data; it comes back parsed from its JSON also when computed, so a cache
 * hit and a miss give the notebook the same thing.
 *
 * @example
 * ```ts ignore
 * import { experiment } from "tokenlab";
 * const r = await experiment("toy", { seed: 1 }, () => ({ top1: 51.2 }));
 * console.log(r.source, r.value.top1);
 * ```
 */
export async function experiment<T>(
  name: string,
  config: unknown,
  compute: () => T | Promise<T>,
  options: ExperimentOptions = {},
): Promise<ExperimentResult<T>> {
  if (!NAME.test(name)) {
    throw new ExperimentError(
      `experiment name ${
        JSON.stringify(name)
      } is not usable as a file name: expected letters, digits, ".", "_" or "-" (at most 100, not starting with a symbol)`,
    );
  }
  const configText = canonicalJson(config, `the config of experiment ${name}`);
  const configKey = (await sha256Hex(`${name}\n${configText}`)).slice(0, 16);
  const code = await codeVersion();
  const cacheDir = options.cacheDir ?? RESULTS_CACHE_DIR;
  const frozenDir = options.frozenDir ?? FROZEN_DIR;
  const refresh = options.refresh ?? envFlag("TOKENLAB_REFRESH");
  const freeze = options.freeze ?? envFlag("TOKENLAB_FREEZE");
  const cachePath = join(cacheDir, name, `${configKey}-${code}.json`);
  const frozenPath = join(frozenDir, name, `${configKey}.json`);

  let result: ExperimentResult<T> | null = null;
  if (!refresh) {
    const cached = await readStored(cachePath);
    if (cached) {
      result = {
        value: cached.value as T,
        source: "cache",
        provenance: cached.provenance,
        codeChanged: false,
      };
    } else {
      const frozen = await readStored(frozenPath);
      if (frozen) {
        result = {
          value: frozen.value as T,
          source: "frozen",
          provenance: frozen.provenance,
          codeChanged: frozen.provenance.codeVersion !== code,
        };
      }
    }
  }
  let stored: StoredResult | null = null;
  if (result === null) {
    const t0 = performance.now();
    const raw = await compute();
    const seconds = (performance.now() - t0) / 1000;
    const valueText = canonicalJson(raw, `the result of experiment ${name}`);
    const choice = await ensureBackend();
    const provenance: ExperimentProvenance = {
      experiment: name,
      configKey,
      codeVersion: code,
      commit: await projectCommit(),
      computedAt: new Date().toISOString(),
      machine: await machineDescription(),
      backend: choice.name,
      adapter: choice.name === "webgpu"
        ? choice.adapter?.description ?? null
        : null,
      deno: Deno.version.deno,
      tfjs: TFJS_VERSION,
      tokenlab: VERSION,
      seconds,
      scale: Deno.env.get("TOKENLAB_SCALE") ?? null,
    };
    stored = {
      format: "tokenlab-result/1",
      config: JSON.parse(configText),
      provenance,
      value: JSON.parse(valueText),
    };
    await writeTextAtomic(cachePath, JSON.stringify(stored, null, 1) + "\n", {
      mkdir: true,
    });
    result = {
      value: stored.value as T,
      source: "computed",
      provenance,
      codeChanged: false,
    };
  }
  if (freeze) {
    const scale = result.provenance.scale;
    if (scale !== null && UNFROZEN_SCALES.has(scale)) {
      throw new ExperimentError(
        `experiment ${name} ran at ${scale} scale: ${scale} results are recomputed in every run and are not frozen. Freeze a full-scale run (report --scale full --freeze).`,
      );
    }
    stored ??= {
      format: "tokenlab-result/1",
      config: JSON.parse(configText),
      provenance: result.provenance,
      value: result.value,
    };
    await writeTextAtomic(frozenPath, JSON.stringify(stored, null, 1) + "\n", {
      mkdir: true,
    });
  }
  session.push(result as ExperimentResult<unknown>);
  return result;
}
