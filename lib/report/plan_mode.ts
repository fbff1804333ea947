/**
 * Plan mode: listing a notebook's experiments without running them. When
 * the environment names a plan file (`TOKENLAB_PLAN=<file>`, set by
 * `tokenlab experiments list` and `tokenlab sweep` for the kernel),
 * {@linkcode experiment} computes nothing: it appends one line to the plan
 * (key, name, kind, config, whether a stored result exists, scale, code
 * version) and, when no result is stored, throws a
 * {@linkcode PlanPendingError} so that the notebook moves on (its cells run
 * with errors allowed). A stored result is returned as usual, so an
 * experiment whose config depends on another's value is listed in a later
 * pass, once that value is computed.
 *
 * @module
 */

import { ExperimentError } from "./experiment_error.ts";

/** The environment variable naming the plan file. */
export const PLAN_ENV = "TOKENLAB_PLAN";

/** One experiment as the plan lists it (a line of the plan file). */
export interface PlanEntry {
  /** The experiment's config key (16 hex digits): what `tokenlab experiments run` takes. */
  key: string;
  /** The experiment's name. */
  name: string;
  /** Its registered kind (`train-arm`), or null: a compute function not runnable by key. */
  kind: string | null;
  /** Its config (JSON data). */
  config: unknown;
  /** Whether the cache (or the frozen store) holds its result. */
  cached: boolean;
  /** The report's scale, or null. */
  scale: string | null;
  /** The code version the key belongs to. */
  codeVersion: string;
}

/**
 * An experiment that plan mode listed and did not compute: the notebook's
 * cell that needed its value stops here (it runs with errors allowed).
 *
 * @example
 * ```ts
 * import { ExperimentError } from "tokenlab";
 * import { PlanPendingError } from "tokenlab/report/plan_mode.ts";
 * const e = new PlanPendingError("toy", "0123456789abcdef");
 * console.log(e instanceof ExperimentError, e.key); // true 0123456789abcdef
 * ```
 */
export class PlanPendingError extends ExperimentError {
  /** The experiment's name. */
  readonly experiment: string;
  /** Its config key. */
  readonly key: string;
  /** Creates the error for the experiment `name` with config key `key`. */
  constructor(name: string, key: string) {
    super(
      `experiment ${name} (key ${key}) is listed, not computed: this is a planning run (${PLAN_ENV} is set). Compute it with \`tokenlab experiments run ${key}\` or \`tokenlab sweep\`, then render the report.`,
    );
    this.experiment = name;
    this.key = key;
  }
}

/**
 * The plan file this process lists experiments into, or null outside plan
 * mode.
 *
 * @example
 * ```ts
 * import { planFile } from "tokenlab/report/plan_mode.ts";
 * console.log(typeof planFile()); // object (null: not planning)
 * ```
 */
export function planFile(): string | null {
  const v = Deno.env.get(PLAN_ENV);
  return v === undefined || v === "" ? null : v;
}

/**
 * Appends one entry to the plan file, as one line written in one call (a
 * reader sees whole lines only).
 *
 * @example
 * ```ts
 * import { appendPlanEntry } from "tokenlab/report/plan_mode.ts";
 * const file = await Deno.makeTempFile();
 * await appendPlanEntry(file, {
 *   key: "0123456789abcdef", name: "toy", kind: null, config: { seed: 1 },
 *   cached: false, scale: null, codeVersion: "0123456789abcdef",
 * });
 * console.log((await Deno.readTextFile(file)).split("\n").length); // 2
 * await Deno.remove(file);
 * ```
 */
export async function appendPlanEntry(
  file: string,
  entry: PlanEntry,
): Promise<void> {
  await Deno.writeTextFile(file, JSON.stringify(entry) + "\n", {
    append: true,
  });
}
