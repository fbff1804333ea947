/**
 * Computing one listed experiment by its key: its plan record read from the
 * results cache (checked as an untrusted file), its kind looked up in the
 * registry, and its result computed through {@linkcode experiment}, which
 * holds the entry's lock and writes the result atomically. A second worker
 * on the same key waits and reads the result, or with `skipLocked` skips.
 *
 * @module
 */

import {
  experiment,
  type ExperimentResult,
  resultsCacheDir,
} from "../report/cache.ts";
import { ExperimentError } from "../report/experiment_error.ts";
import { experimentKind } from "../report/experiment_kinds.ts";
import { ExperimentLockedError } from "../report/experiment_lock.ts";
import { codeVersion } from "../report/origin.ts";
import { readPlanRecord } from "../report/plan_record.ts";

/** Options of {@linkcode runExperimentByKey}. */
export interface RunExperimentOptions {
  /** The results cache (default `TOKENLAB_RESULTS_DIR`, else data/cache/results). */
  cacheDir?: string;
  /** Skip (do not wait) when another worker holds the experiment's lock. */
  skipLocked?: boolean;
  /** The longest to wait for another worker's lock, in ms (default: no limit). */
  waitMs?: number;
}

/** What {@linkcode runExperimentByKey} did. */
export interface RunExperimentOutcome {
  /** The experiment's name. */
  name: string;
  /** `computed`, `cache` (it was there, or another worker computed it), `frozen`, or `skipped` (locked). */
  source: ExperimentResult<unknown>["source"] | "skipped";
}

/**
 * Computes the experiment listed under `key` (unless the cache has it).
 *
 * @throws {ExperimentError} for a key with no (usable) plan record, an unknown kind, or a record listed under other code
 *
 * @example
 * ```ts ignore
 * import { runExperimentByKey } from "tokenlab/sweep/run_experiment.ts";
 * console.log((await runExperimentByKey("0123456789abcdef")).source);
 * ```
 */
export async function runExperimentByKey(
  key: string,
  options: RunExperimentOptions = {},
): Promise<RunExperimentOutcome> {
  const cacheDir = options.cacheDir ?? resultsCacheDir();
  const record = await readPlanRecord(cacheDir, key);
  const code = await codeVersion();
  if (record.codeVersion !== code) {
    throw new ExperimentError(
      `experiment ${record.name} (key ${key}) was listed under code version ${record.codeVersion}, but the code is now ${code}: its result would not be the one the report looks up. List the notebook again (\`tokenlab experiments list\` or \`tokenlab sweep\`) with this code.`,
    );
  }
  const kind = experimentKind(record.kind);
  try {
    const r = await experiment(
      record.name,
      record.config,
      ({ runDir }) => kind.compute(record.config, { runDir }),
      {
        cacheDir,
        kind: record.kind,
        scale: record.scale,
        lock: { skipLocked: options.skipLocked, waitMs: options.waitMs },
      },
    );
    return { name: record.name, source: r.source };
  } catch (e) {
    if (e instanceof ExperimentLockedError && options.skipLocked) {
      return { name: record.name, source: "skipped" };
    }
    throw e;
  }
}
