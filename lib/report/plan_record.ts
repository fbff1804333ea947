/**
 * Plan records: what `tokenlab experiments run KEY` needs to compute an
 * experiment by its key alone. Listing a notebook writes one record per
 * experiment into the results cache, `<cache>/.plan/<key>.json`: its name,
 * kind, config, scale and the code version it was listed under.
 *
 * A record is read as an untrusted file, like the cache's results: a
 * regular file (not a link) of at most {@linkcode MAX_PLAN_RECORD_BYTES},
 * strict UTF-8 JSON with exactly the fields tokenlab writes, each of its
 * type and range, the config JSON data nested at most
 * {@linkcode MAX_JSON_DEPTH} levels, and the key in its name the key of its
 * name and config. The kind is a name looked up in the registry of
 * experiment kinds, never code: nothing in a record is executed.
 *
 * @module
 */

import { join } from "node:path";
import { writeTextAtomic } from "../io/atomic_write.ts";
import { readJsonFile } from "../io/file_checks.ts";
import {
  FieldProblem,
  fieldProblem,
  objectFields,
  stringField,
} from "../io/json_fields.ts";
import {
  canonicalJson,
  JsonDataError,
  MAX_JSON_DEPTH,
} from "./canonical_json.ts";
import { ExperimentError } from "./experiment_error.ts";
import { experimentKey } from "./experiment_key.ts";

/** The format tag of a plan record. */
const FORMAT = "tokenlab-plan/1";
/** The largest plan record read: a config, not a result. */
export const MAX_PLAN_RECORD_BYTES: number = 4 * 2 ** 20;
/** A config key: 16 lowercase hex digits. */
export const KEY_PATTERN: RegExp = /^[0-9a-f]{16}$/;

/** What a plan record holds. */
export interface PlanRecord {
  /** The config key (16 hex digits). */
  key: string;
  /** The experiment's name. */
  name: string;
  /** Its kind in the registry of experiment kinds. */
  kind: string;
  /** Its config (JSON data). */
  config: unknown;
  /** The report's scale it was listed at, or null. */
  scale: string | null;
  /** The code version it was listed under. */
  codeVersion: string;
}

/** The folder of the plan records of a results cache. */
export function planDir(cacheDir: string): string {
  return join(cacheDir, ".plan");
}

/**
 * Checks a key given on the command line or in a file: 16 lowercase hex
 * digits (so it can name nothing but a record).
 *
 * @throws {ExperimentError} for anything else
 */
export function checkKey(key: string): string {
  if (!KEY_PATTERN.test(key)) {
    throw new ExperimentError(
      `an experiment key is 16 lowercase hex digits (as \`tokenlab experiments list\` prints them), found ${
        JSON.stringify(key.slice(0, 80))
      }`,
    );
  }
  return key;
}

/**
 * Writes a plan record atomically into `<cacheDir>/.plan/<key>.json`.
 *
 * @example
 * ```ts
 * import { readPlanRecord, writePlanRecord } from "tokenlab/report/plan_record.ts";
 * import { experimentKey } from "tokenlab/report/experiment_key.ts";
 * const dir = await Deno.makeTempDir();
 * const { configKey } = await experimentKey("toy", { seed: 1 });
 * await writePlanRecord(dir, {
 *   key: configKey, name: "toy", kind: "train-arm", config: { seed: 1 },
 *   scale: "tiny", codeVersion: "0123456789abcdef",
 * });
 * console.log((await readPlanRecord(dir, configKey)).name); // toy
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writePlanRecord(
  cacheDir: string,
  record: PlanRecord,
): Promise<string> {
  const path = join(planDir(cacheDir), `${checkKey(record.key)}.json`);
  const text = JSON.stringify({ format: FORMAT, ...record }, null, 1) + "\n";
  await writeTextAtomic(path, text, { mkdir: true });
  return path;
}

/**
 * Reads and checks the plan record of `key` from `<cacheDir>/.plan/`.
 *
 * @throws {ExperimentError} naming the file and the field: no record (list the notebook first), or one that is not what tokenlab writes
 */
export async function readPlanRecord(
  cacheDir: string,
  key: string,
): Promise<PlanRecord> {
  const path = join(planDir(cacheDir), `${checkKey(key)}.json`);
  try {
    const read = await readJsonFile(path, { maxBytes: MAX_PLAN_RECORD_BYTES });
    if (read === null) {
      throw new ExperimentError(
        `no experiment with key ${key} is listed in ${cacheDir}: expected its plan record ${path}, found no file. List the notebook first (\`tokenlab experiments list NOTEBOOK\` with the same --param/--scale), and give the same --cache folder.`,
        { file: path },
      );
    }
    return await checkPlanRecord(read.value, key);
  } catch (e) {
    if (!(e instanceof FieldProblem)) throw e;
    throw new ExperimentError(
      `plan record ${path} is unusable: ${e.message}. Delete it and list the notebook again (\`tokenlab experiments list\`).`,
      { file: path, field: e.field },
    );
  }
}

/** Checks a parsed plan record against the key it was looked up by. */
async function checkPlanRecord(v: unknown, key: string): Promise<PlanRecord> {
  const o = objectFields(v, "", {
    required: [
      "format",
      "key",
      "name",
      "kind",
      "config",
      "scale",
      "codeVersion",
    ],
    what: "a plan record",
    quoteUnknown: true,
  });
  if (o.format !== FORMAT) {
    fieldProblem("format", JSON.stringify(FORMAT), o.format);
  }
  const name = stringField(o.name, "name", {
    maxLength: 100,
    pattern: {
      re: /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/,
      what: 'an experiment name (letters, digits, ".", "_", "-")',
    },
  });
  stringField(o.kind, "kind", {
    maxLength: 60,
    pattern: { re: /^[a-z][a-z0-9-]{0,59}$/, what: "a kind name (train-arm)" },
  });
  if (o.scale !== null) {
    stringField(o.scale, "scale", {
      maxLength: 20,
      pattern: { re: /^[a-z]+$/, what: "a scale name (tiny, smoke, full)" },
    });
  }
  stringField(o.codeVersion, "codeVersion", {
    maxLength: 16,
    pattern: { re: KEY_PATTERN, what: "16 lowercase hex digits" },
  });
  if (o.key !== key) {
    fieldProblem(
      "key",
      `${JSON.stringify(key)} (the key in the file's name)`,
      o.key,
    );
  }
  try {
    canonicalJson(o.config, "config");
  } catch (e) {
    if (!(e instanceof JsonDataError)) throw e;
    throw new FieldProblem(
      `config${(e.field ?? "$").slice(1)}`,
      `JSON data nested at most ${MAX_JSON_DEPTH} levels deep, of finite numbers`,
      e.reason === "depth"
        ? "deeper nesting"
        : "a number beyond a double's range",
    );
  }
  const { configKey } = await experimentKey(name, o.config);
  if (configKey !== key) {
    throw new FieldProblem(
      "config",
      `the config whose key is ${key} (the key in the file's name)`,
      `another config (its key is ${configKey}): the file was edited`,
    );
  }
  const { format: _, ...record } = o;
  return record as unknown as PlanRecord;
}
