/**
 * Listing a notebook's experiments without running them: the notebook runs
 * through the report's path (its parameters resolved and injected as
 * `tokenlab report` does, executed by `_execute.py` in a Jupyter kernel)
 * in plan mode (`TOKENLAB_PLAN`), every code cell allowed to fail, so each
 * {@linkcode experiment} it reaches is listed instead of computed. Each
 * listed experiment of a registered kind gets a plan record in the results
 * cache (`<cache>/.plan/<key>.json`), so `tokenlab experiments run KEY`
 * needs only its key.
 *
 * @module
 */

import { join } from "node:path";
import { RESULTS_DIR_ENV, resultsCacheDir } from "../report/cache.ts";
import { codeVersion } from "../report/origin.ts";
import { execute, failureMessage, findPython } from "../report/execute.ts";
import { serializeNotebook } from "../report/notebook.ts";
import { plan } from "../report/plan.ts";
import { PLAN_ENV, type PlanEntry } from "../report/plan_mode.ts";
import { writePlanRecord } from "../report/plan_record.ts";
import {
  listNotebooks,
  NOTEBOOK_DIR,
  resolveTargets,
} from "../report/targets.ts";
import {
  EXPERIMENT_KINDS,
  experimentKind,
} from "../report/experiment_kinds.ts";
import { SweepError } from "./sweep_error.ts";

/** Options of {@linkcode listExperiments}. */
export interface ListExperimentsOptions {
  /** `key=value` parameters, as `tokenlab report --param`. */
  params?: readonly string[];
  /** The scale, as `tokenlab report --scale`. */
  scale?: string;
  /** The results cache (default `TOKENLAB_RESULTS_DIR`, else data/cache/results). */
  cacheDir?: string;
  /** The Jupyter kernel (default `deno`). */
  kernel?: string;
  /** Seconds a cell may run (default 1800). */
  cellTimeout?: number;
}

/** One listed experiment. */
export interface ListedExperiment extends PlanEntry {
  /** Whether `tokenlab experiments run` can compute it (a registered kind). */
  runnable: boolean;
  /** A short text of its config. */
  summary: string;
}

/** What listing a notebook found. */
export interface ExperimentListing {
  /** The notebook's name. */
  notebook: string;
  /** Every experiment it reached, once each, in order. */
  experiments: ListedExperiment[];
  /** The results cache the records went into. */
  cacheDir: string;
}

/** The text of a config for a listing: the kind's own, else short JSON. */
function summarize(entry: PlanEntry): string {
  if (entry.kind !== null) {
    try {
      return experimentKind(entry.kind).describe(entry.config);
    } catch { /* an unknown kind: its JSON */ }
  }
  const text = JSON.stringify(entry.config);
  return text.length > 100 ? `${text.slice(0, 97)}...` : text;
}

/**
 * Lists the experiments of `notebook` (a name in notebooks/ or a path) with
 * its parameters, computing none, and writes their plan records.
 *
 * @throws {ReportError} for an unknown notebook, a bad parameter or a missing Jupyter stack
 * @throws {SweepError} when the notebook could not run at all
 */
export async function listExperiments(
  notebook: string,
  options: ListExperimentsOptions = {},
): Promise<ExperimentListing> {
  const cacheDir = options.cacheDir ?? resultsCacheDir();
  const runOptions = { params: options.params ?? [], scale: options.scale };
  const available = await listNotebooks(NOTEBOOK_DIR);
  const targets = await resolveTargets(
    [notebook],
    available,
    NOTEBOOK_DIR,
    runOptions,
  );
  const [p] = await plan(targets, runOptions);
  const py = await findPython();
  const work = await Deno.makeTempDir({ prefix: "tokenlab-plan-" });
  try {
    const nb = structuredClone(p.injected);
    // Every cell may fail: a cell that needs a value not computed yet
    // stops there, and the next cells list their experiments.
    for (const cell of nb.cells) {
      if (cell.cell_type !== "code") continue;
      const tags = (cell.metadata.tags as string[] | undefined) ?? [];
      cell.metadata = { ...cell.metadata, tags: [...tags, "raises-exception"] };
    }
    const input = join(work, "input.ipynb");
    const planPath = join(work, "plan.jsonl");
    await Deno.writeTextFile(input, serializeNotebook(nb));
    await Deno.writeTextFile(planPath, "");
    const timeout = options.cellTimeout ?? 1800;
    const run = await execute(
      py,
      input,
      join(work, "executed.ipynb"),
      p.target.cwd,
      options.kernel ?? "deno",
      timeout,
      {
        [PLAN_ENV]: planPath,
        [RESULTS_DIR_ENV]: cacheDir,
        TOKENLAB_REPORT: p.name,
        TOKENLAB_REPORT_STARTED: String(Date.now()),
        TOKENLAB_PARAMS: JSON.stringify(p.parameters),
        TOKENLAB_SCALE: p.scale ?? "",
      },
    );
    if (run.kind === "fatal" || run.kind === "dead" || run.kind === "timeout") {
      throw new SweepError(
        `listing the experiments of ${
          failureMessage(p.name, run, run.cell, timeout)
        }`,
      );
    }
    const seen = new Map<string, ListedExperiment>();
    const code = await codeVersion();
    for (const line of (await Deno.readTextFile(planPath)).split("\n")) {
      if (line.trim() === "") continue;
      // Written by experiment() in the kernel just now; the record written
      // from it is checked again when it is read back.
      const entry = JSON.parse(line) as PlanEntry;
      const known = seen.get(entry.key);
      if (known) {
        known.cached ||= entry.cached;
        continue;
      }
      const runnable = entry.kind !== null &&
        Object.hasOwn(EXPERIMENT_KINDS, entry.kind);
      seen.set(entry.key, { ...entry, runnable, summary: summarize(entry) });
      if (runnable && entry.codeVersion === code) {
        await writePlanRecord(cacheDir, {
          key: entry.key,
          name: entry.name,
          kind: entry.kind!,
          config: entry.config,
          scale: entry.scale === "" ? null : entry.scale,
          codeVersion: entry.codeVersion,
        });
      }
    }
    return { notebook: p.name, experiments: [...seen.values()], cacheDir };
  } finally {
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
}
