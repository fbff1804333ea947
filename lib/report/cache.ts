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
 * A stored result is read as an untrusted file: it must be a regular file
 * (not a link) of at most {@linkcode MAX_STORED_RESULT_BYTES}, strict UTF-8
 * JSON nested at most {@linkcode MAX_JSON_DEPTH} levels, with exactly the
 * fields tokenlab writes, each of its type and range, its config the one
 * looked up and its provenance naming the experiment, config key and (in
 * the cache) code version of the file's own name. Its format
 * (`tokenlab-result/2`) carries `sha256`, the SHA-256 of the canonical JSON
 * of its other fields, checked before anything else. Version 1
 * (`tokenlab-result/1`, written before results carried a digest) is
 * refused in the cache and in the frozen store alike: relabelling a file
 * version 1 and dropping its digest would otherwise let any edit through.
 * An entry that fails a check is never used: a cache entry is only a copy,
 * so it is ignored with a warning (the experiment comes from the frozen
 * store or is computed again, and its entry replaced); a frozen entry is a
 * committed record that cannot be recomputed silently, so it is refused
 * with an {@linkcode ExperimentError} naming the file and the field (for
 * version 1: recompute and freeze it again, or delete it).
 *
 * @module
 */

import { join } from "node:path";
import { writeTextAtomic } from "../io/atomic_write.ts";
import { fileURLToPath } from "node:url";
import { ensureBackend } from "../backend.ts";
import { TFJS_VERSION } from "../tf.ts";
import { VERSION } from "../version.ts";
import { sha256Hex } from "../io/digest.ts";
import { readJsonFile } from "../io/file_checks.ts";
import {
  describe,
  FieldProblem,
  fieldProblem,
  finiteField,
  isPlainObject,
  objectFields,
  stringField,
} from "../io/json_fields.ts";
import {
  canonicalJson,
  JsonDataError,
  MAX_JSON_DEPTH,
} from "./canonical_json.ts";
import { ExperimentError } from "./experiment_error.ts";
import { codeVersion, machineDescription, projectCommit } from "./origin.ts";
import { experimentKey } from "./experiment_key.ts";
import { type EntryLockOptions, withEntryLock } from "./experiment_lock.ts";
import { appendPlanEntry, planFile, PlanPendingError } from "./plan_mode.ts";

// Each defined in a file of its own; still exported here, beside the cache.
export { sha256Hex };
export { canonicalJson, MAX_JSON_DEPTH } from "./canonical_json.ts";
export {
  ExperimentError,
  type ExperimentErrorOptions,
} from "./experiment_error.ts";
export { codeVersion, machineDescription, projectCommit } from "./origin.ts";
export type { EntryLockOptions } from "./experiment_lock.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
/** Where computed results are cached (not committed). */
export const RESULTS_CACHE_DIR: string = join(ROOT, "data/cache/results");
/**
 * The environment variable naming another results cache folder for
 * {@linkcode experiment}'s default (`tokenlab sweep --cache DIR`, and the
 * kernels of `tokenlab report`): a folder every worker of a sweep shares.
 */
export const RESULTS_DIR_ENV = "TOKENLAB_RESULTS_DIR";

/**
 * The results cache folder: `TOKENLAB_RESULTS_DIR` when set, else
 * {@linkcode RESULTS_CACHE_DIR}.
 *
 * @example
 * ```ts
 * import { resultsCacheDir } from "tokenlab";
 * console.log(resultsCacheDir().length > 0); // true
 * ```
 */
export function resultsCacheDir(): string {
  const v = Deno.env.get(RESULTS_DIR_ENV);
  return v === undefined || v === "" ? RESULTS_CACHE_DIR : v;
}
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

/** The format tag this code writes and reads: version 2, with `sha256`. */
const FORMAT = "tokenlab-result/2";
/** The format tag written before stored results had a digest (refused). */
const FORMAT_V1 = "tokenlab-result/1";

/** The largest stored result read back, in bytes: far above any summary a report keeps, below what a string can hold. */
export const MAX_STORED_RESULT_BYTES: number = 256 * 2 ** 20;

/** The stored form of a result. */
interface StoredResult {
  format: typeof FORMAT;
  /** SHA-256 of the canonical JSON of the other fields. */
  sha256: string;
  config: unknown;
  provenance: ExperimentProvenance;
  value: unknown;
}

/** The fields of {@linkcode ExperimentProvenance}, in the order they are written. */
const PROVENANCE_FIELDS = [
  "experiment",
  "configKey",
  "codeVersion",
  "commit",
  "computedAt",
  "machine",
  "backend",
  "adapter",
  "deno",
  "tfjs",
  "tokenlab",
  "seconds",
  "scale",
];

/** Options of {@linkcode experiment}. */
export interface ExperimentOptions {
  /** Recompute even when a result is stored (default: `TOKENLAB_REFRESH=1`). */
  refresh?: boolean;
  /** Also write the result into the frozen store (default: `TOKENLAB_FREEZE=1`). */
  freeze?: boolean;
  /** The cache folder (default {@linkcode resultsCacheDir}: `TOKENLAB_RESULTS_DIR`, else {@linkcode RESULTS_CACHE_DIR}). */
  cacheDir?: string;
  /** The frozen folder (default {@linkcode FROZEN_DIR}). */
  frozenDir?: string;
  /**
   * Checks a result read back from the cache or the frozen store (it is
   * JSON data already) and throws when it is not what `compute` returns;
   * the entry then counts as damaged, like a file that fails its own
   * checks. Default: no check beyond JSON data.
   */
  check?: (value: unknown) => void;
  /** Where warnings go (default `console.warn`): a damaged cache entry that is ignored. */
  onWarning?: (message: string) => void;
  /**
   * The registered kind of `compute` (lib/report/experiment_kinds.ts), or
   * null (default): what plan mode lists, so `tokenlab experiments run`
   * can compute it by key.
   */
  kind?: string | null;
  /** The scale recorded in the provenance (default `TOKENLAB_SCALE`). */
  scale?: string | null;
  /** The lock of the cache entry while it is computed: staleness, waiting, skipping. */
  lock?: EntryLockOptions;
}

/** What `compute` gets from {@linkcode experiment}. */
export interface ExperimentComputeContext {
  /** The experiment's config key. */
  key: string;
  /**
   * A folder of its own under the cache (`.runs/`) for checkpoints, so a
   * compute that dies resumes there; removed once the result is stored.
   */
  runDir: string;
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

/** What a stored result must agree with: the lookup that found its file. */
interface StoredContext {
  /** The experiment's name. */
  name: string;
  /** Its config key (the file's name). */
  configKey: string;
  /** Its canonical config. */
  configText: string;
  /** The code version of the file's name (cache), or null (frozen: any). */
  code: string | null;
  /** The caller's check of the value. */
  check?: (value: unknown) => void;
}

/** Checks the provenance of a stored result against the lookup that found it. */
function checkProvenance(
  v: unknown,
  context: StoredContext,
  frozen: boolean,
): ExperimentProvenance {
  const p = objectFields(v, "provenance", {
    required: PROVENANCE_FIELDS,
    expected: "an object",
    quoteUnknown: true,
  });
  if (p.experiment !== context.name) {
    fieldProblem(
      "provenance.experiment",
      `${
        JSON.stringify(context.name)
      } (the experiment the file is stored under)`,
      p.experiment,
    );
  }
  if (p.configKey !== context.configKey) {
    fieldProblem(
      "provenance.configKey",
      `${JSON.stringify(context.configKey)} (the key in the file's name)`,
      p.configKey,
    );
  }
  const hex16 = { re: /^[0-9a-f]{16}$/, what: "16 lowercase hex digits" };
  stringField(p.codeVersion, "provenance.codeVersion", {
    maxLength: 16,
    pattern: hex16,
  });
  if (context.code !== null && p.codeVersion !== context.code) {
    fieldProblem(
      "provenance.codeVersion",
      `${JSON.stringify(context.code)} (the code version in the file's name)`,
      p.codeVersion,
    );
  }
  stringField(p.commit, "provenance.commit", {
    maxLength: 80,
    pattern: {
      re: /^(unknown|[0-9a-f]{7,64}(\+dirty)?)$/,
      what: 'a git commit (hex, "+dirty" allowed) or "unknown"',
    },
  });
  const at = stringField(p.computedAt, "provenance.computedAt", {
    maxLength: 40,
    pattern: {
      re: /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/,
      what: "an ISO 8601 UTC time (2026-12-04T18:19:07.834Z)",
    },
  });
  if (Number.isNaN(Date.parse(at))) {
    fieldProblem("provenance.computedAt", "a valid date", at);
  }
  stringField(p.machine, "provenance.machine", { maxLength: 1000 });
  stringField(p.backend, "provenance.backend", {
    maxLength: 100,
    pattern: {
      re: /^[a-z0-9_-]+$/,
      what: 'a backend name ("cpu", "wasm", "webgpu")',
    },
  });
  if (p.adapter !== null) {
    stringField(p.adapter, "provenance.adapter", { maxLength: 1000 });
  }
  stringField(p.deno, "provenance.deno", { maxLength: 100 });
  stringField(p.tfjs, "provenance.tfjs", { maxLength: 100 });
  stringField(p.tokenlab, "provenance.tokenlab", { maxLength: 100 });
  finiteField(p.seconds, "provenance.seconds", { min: 0 });
  if (p.scale !== null) {
    const scale = stringField(p.scale, "provenance.scale", { maxLength: 100 });
    if (frozen && UNFROZEN_SCALES.has(scale)) {
      fieldProblem(
        "provenance.scale",
        `a scale that is frozen (not ${[...UNFROZEN_SCALES].join(" or ")})`,
        scale,
      );
    }
  }
  return p as unknown as ExperimentProvenance;
}

/** Canonical JSON of a stored part, its depth and data problems as the part's field. */
function storedJson(v: unknown, field: string): string {
  try {
    return canonicalJson(v, field);
  } catch (e) {
    if (!(e instanceof JsonDataError)) throw e;
    // Parsed JSON holds no functions or class instances: a number that
    // overflowed to Infinity, or too deep a nesting.
    throw new FieldProblem(
      `${field}${(e.field ?? "$").slice(1)}`,
      e.reason === "depth"
        ? `JSON data nested at most ${MAX_JSON_DEPTH} levels deep`
        : "a finite number",
      e.reason === "depth"
        ? "deeper nesting"
        : "a number beyond the range of a double (it reads as Infinity)",
    );
  }
}

/**
 * The digest a version-2 stored result carries: SHA-256 of the canonical
 * JSON of its other fields, put together from their canonical texts.
 */
function storedDigest(
  format: string,
  configText: string,
  provenanceText: string,
  valueText: string,
): Promise<string> {
  return sha256Hex(
    `{"config":${configText},"format":${
      JSON.stringify(format)
    },"provenance":${provenanceText},"value":${valueText}}`,
  );
}

/**
 * A stored result of version 1 (no digest): refused like any other damage,
 * and told apart so that a frozen one says what to do about it.
 */
class DigestlessResult extends FieldProblem {
  constructor() {
    super(
      "format",
      JSON.stringify(FORMAT),
      `${describe(FORMAT_V1)}, written before results carried a digest`,
    );
  }
}

/** A result as the text of its file. */
interface StoredText {
  text: string;
}

/**
 * The file text of a result (format version 2, with its digest).
 *
 * @throws {ExperimentError} when it is larger than the cache reads back
 */
async function storedText(
  name: string,
  configText: string,
  provenance: ExperimentProvenance,
  valueText: string,
): Promise<StoredText> {
  const sha256 = await storedDigest(
    FORMAT,
    configText,
    canonicalJson(provenance),
    valueText,
  );
  const stored: StoredResult = {
    format: FORMAT,
    sha256,
    config: JSON.parse(configText),
    provenance,
    value: JSON.parse(valueText),
  };
  const text = JSON.stringify(stored, null, 1) + "\n";
  const bytes = new TextEncoder().encode(text).length;
  if (bytes > MAX_STORED_RESULT_BYTES) {
    throw new ExperimentError(
      `the result of experiment ${name} is ${bytes} bytes as a stored file, more than the ${MAX_STORED_RESULT_BYTES} the cache reads back; return a summary (the numbers a report shows), not raw data`,
    );
  }
  return { text };
}

/**
 * Reads and checks one stored result: null when there is none.
 *
 * @throws {FieldProblem} for a file that is not a whole, unedited result of this lookup
 */
async function readStored(
  path: string,
  context: StoredContext,
  frozen: boolean,
): Promise<StoredResult | null> {
  const read = await readJsonFile(path, { maxBytes: MAX_STORED_RESULT_BYTES });
  if (read === null) return null;
  const doc = read.value;
  if (!isPlainObject(doc)) fieldProblem("(file)", "a JSON object", doc);
  // Only version 2 is read: a file relabelled version 1 with its digest
  // dropped could carry any edit.
  if (doc.format === FORMAT_V1) throw new DigestlessResult();
  if (doc.format !== FORMAT) {
    fieldProblem("format", JSON.stringify(FORMAT), doc.format);
  }
  const o = objectFields(doc, "", {
    required: ["format", "sha256", "config", "provenance", "value"],
    what: "a stored result",
    quoteUnknown: true,
  });
  // The data and depth checks come before the digest, which walks it all.
  const configText = storedJson(o.config, "config");
  const provenanceText = storedJson(o.provenance, "provenance");
  const valueText = storedJson(o.value, "value");
  stringField(o.sha256, "sha256", {
    maxLength: 64,
    pattern: {
      re: /^[0-9a-f]{64}$/,
      what: "64 lowercase hex digits",
    },
  });
  const got = await storedDigest(
    FORMAT,
    configText,
    provenanceText,
    valueText,
  );
  if (got !== o.sha256) {
    throw new FieldProblem(
      "sha256",
      `the SHA-256 of the file's other fields (${got})`,
      `${o.sha256}: the file was edited or damaged`,
    );
  }
  if (configText !== context.configText) {
    throw new FieldProblem(
      "config",
      "the config the experiment was looked up with (its key is the file's name)",
      "another config",
    );
  }
  checkProvenance(o.provenance, context, frozen);
  if (context.check) {
    try {
      context.check(o.value);
    } catch (e) {
      throw new FieldProblem(
        "value",
        "a result the experiment's check accepts",
        `one it refuses: ${(e as Error).message}`,
      );
    }
  }
  return o as unknown as StoredResult;
}

/**
 * Runs `compute` for `config`, or reads its result back when it was stored
 * before: from the cache when the config and the code are unchanged, else
 * from the frozen store when the config matches. The result must be JSON
 * data; it comes back parsed from its JSON also when computed, so a cache
 * hit and a miss give the notebook the same thing.
 *
 * A stored result that fails its checks (see the module's notes) is never
 * used: a damaged cache entry is ignored with a warning through
 * `onWarning`, as a miss; a damaged frozen one is refused.
 *
 * @throws {ExperimentError} for a bad name, config or result, or a damaged or edited frozen result (its `file` and `field`)
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
  compute: (context: ExperimentComputeContext) => T | Promise<T>,
  options: ExperimentOptions = {},
): Promise<ExperimentResult<T>> {
  if (!NAME.test(name)) {
    throw new ExperimentError(
      `experiment name ${
        JSON.stringify(name)
      } is not usable as a file name: expected letters, digits, ".", "_" or "-" (at most 100, not starting with a symbol)`,
    );
  }
  const { configText, configKey } = await experimentKey(name, config);
  const code = await codeVersion();
  const cacheDir = options.cacheDir ?? resultsCacheDir();
  const frozenDir = options.frozenDir ?? FROZEN_DIR;
  const refresh = options.refresh ?? envFlag("TOKENLAB_REFRESH");
  const freeze = options.freeze ?? envFlag("TOKENLAB_FREEZE");
  const cachePath = join(cacheDir, name, `${configKey}-${code}.json`);
  const frozenPath = join(frozenDir, name, `${configKey}.json`);

  const context: StoredContext = {
    name,
    configKey,
    configText,
    code,
    check: options.check,
  };
  const warn = options.onWarning ?? ((m: string) => console.warn(m));

  let result: ExperimentResult<T> | null = null;
  /** Why the cache entry was ignored, when it was damaged. */
  let damaged: string | null = null;
  if (!refresh) {
    let cached: StoredResult | null = null;
    try {
      cached = await readStored(cachePath, context, false);
    } catch (e) {
      if (!(e instanceof FieldProblem)) throw e;
      damaged =
        `results cache entry ${cachePath} is unusable: field ${e.field}: expected ${e.expected}, found ${e.found}`;
    }
    if (cached) {
      result = {
        value: cached.value as T,
        source: "cache",
        provenance: cached.provenance,
        codeChanged: false,
      };
    } else {
      let frozen: StoredResult | null = null;
      try {
        frozen = await readStored(frozenPath, { ...context, code: null }, true);
      } catch (e) {
        if (!(e instanceof FieldProblem)) throw e;
        if (damaged !== null) {
          warn(`${damaged}; it is ignored (a cache entry is only a copy).`);
        }
        if (e instanceof DigestlessResult) {
          throw new ExperimentError(
            `frozen result ${frozenPath} is unusable: field ${e.field}: expected ${e.expected}, found ${e.found}; recompute and freeze it again (the report with --refresh --freeze), or delete it to compute experiment ${name} again.`,
            { file: frozenPath, field: e.field },
          );
        }
        throw new ExperimentError(
          `frozen result ${frozenPath} is unusable: field ${e.field}: expected ${e.expected}, found ${e.found}. A frozen result is the committed record of a full-scale run and is never replaced silently: restore it from git (git checkout -- <that file>), or recompute and freeze it again (the report with --refresh --freeze), or delete it to compute experiment ${name} again.`,
          { file: frozenPath, field: e.field },
        );
      }
      if (frozen) {
        if (damaged !== null) {
          warn(
            `${damaged}; it is ignored (a cache entry is only a copy) and the frozen result ${frozenPath} is used instead; delete the entry to silence this warning.`,
          );
        }
        result = {
          value: frozen.value as T,
          source: "frozen",
          provenance: frozen.provenance,
          codeChanged: frozen.provenance.codeVersion !== code,
        };
      } else if (damaged !== null) {
        warn(
          `${damaged}; it is ignored (a cache entry is only a copy): experiment ${name} is computed again and the entry replaced.`,
        );
      }
    }
  }
  const plan = planFile();
  if (plan !== null) {
    // Plan mode: list, never compute (a stored result is still returned,
    // so experiments whose configs depend on it are listed too).
    await appendPlanEntry(plan, {
      key: configKey,
      name,
      kind: options.kind ?? null,
      config: JSON.parse(configText),
      cached: result !== null,
      scale: options.scale ?? Deno.env.get("TOKENLAB_SCALE") ?? null,
      codeVersion: code,
    });
    if (result === null) throw new PlanPendingError(name, configKey);
    session.push(result as ExperimentResult<unknown>);
    return result;
  }
  let stored: StoredText | null = null;
  const runDir = join(cacheDir, ".runs", `${name}-${configKey}-${code}`);
  if (result === null) {
    const entry = join(cacheDir, name, `${configKey}-${code}`);
    const reread = async (): Promise<ExperimentResult<T> | null> => {
      try {
        const found = await readStored(cachePath, context, false);
        return found === null ? null : {
          value: found.value as T,
          source: "cache",
          provenance: found.provenance,
          codeChanged: false,
        };
      } catch (e) {
        if (!(e instanceof FieldProblem)) throw e;
        return null;
      }
    };
    result = await withEntryLock(`${entry}.lock`, {
      onWarning: warn,
      ...options.lock,
    }, {
      reread,
      compute: async () => {
        const computed = await computeAndStore();
        await Deno.remove(runDir, { recursive: true }).catch(() => {});
        return computed;
      },
    });
  }
  async function computeAndStore(): Promise<ExperimentResult<T>> {
    const t0 = performance.now();
    const raw = await compute({ key: configKey, runDir });
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
      scale: options.scale ?? Deno.env.get("TOKENLAB_SCALE") ?? null,
    };
    stored = await storedText(name, configText, provenance, valueText);
    try {
      await writeTextAtomic(cachePath, stored.text, { mkdir: true });
    } catch (e) {
      // The result stands; only the copy of it is lost.
      warn(
        `could not store the result of experiment ${name} in the results cache at ${cachePath} (${
          (e as Error).message
        }); it will be computed again next time. Remove whatever is at that path, or check the folder's permissions.`,
      );
    }
    return {
      value: JSON.parse(valueText) as T,
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
    stored ??= await storedText(
      name,
      configText,
      result.provenance,
      canonicalJson(result.value),
    );
    await writeTextAtomic(frozenPath, stored.text, { mkdir: true });
  }
  session.push(result as ExperimentResult<unknown>);
  return result;
}
