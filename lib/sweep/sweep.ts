/**
 * A sweep: every experiment of a notebook computed outside the report, so
 * that `tokenlab report` then renders from the results cache. It lists the
 * notebook's experiments (plan mode), computes those the cache lacks as job
 * items (`tokenlab experiments run KEY`, one process each) with an
 * executor (local processes, or a Slurm array job), and lists again: an
 * experiment whose config depends on another's value appears once that
 * value is in the cache. It stops when nothing new is missing, after at
 * most `rounds` rounds. A job that fails leaves no result (its log says
 * why); running the sweep again computes only what is still missing.
 *
 * @module
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { resultsCacheDir } from "../report/cache.ts";
import {
  type ListedExperiment,
  listExperiments,
  type ListExperimentsOptions,
} from "./list_experiments.ts";
import { type LocalJobsProgress, runLocalJobs } from "./local_executor.ts";
import type { SlurmResources } from "./slurm_resources.ts";
import {
  followSlurmArray,
  type SlurmProgress,
  submitSlurmArray,
  type SweepItem,
} from "./slurm.ts";
import { SweepError } from "./sweep_error.ts";

const MAIN = fileURLToPath(new URL("../cli/main.ts", import.meta.url));

/** Options of {@linkcode sweep}. */
export interface SweepOptions extends ListExperimentsOptions {
  /** Where the jobs run: `local` processes (default) or a `slurm` array job. */
  executor?: "local" | "slurm";
  /** Local: how many jobs run at once (default 1). */
  jobs?: number;
  /** Slurm: what each task asks for. */
  resources?: SlurmResources;
  /** Slurm: milliseconds between polls (default the executor's). */
  pollMs?: number;
  /** The folder of the job logs (default `<cache>/.sweep-logs/<time>`). */
  logDir?: string;
  /** The most list-and-compute rounds (default 3). */
  rounds?: number;
  /** Progress lines (default `console.error`). */
  progress?: (line: string) => void;
}

/** A job that failed. */
export interface FailedJob {
  /** The experiment's key. */
  key: string;
  /** Its name. */
  name: string;
  /** Its log file. */
  logPath: string;
}

/** What a sweep did. */
export interface SweepOutcome {
  /** The experiments of the last listing. */
  experiments: ListedExperiment[];
  /** Keys computed by this sweep's jobs. */
  computed: string[];
  /** Jobs that failed. */
  failed: FailedJob[];
  /** Rounds run. */
  rounds: number;
  /** The log folder. */
  logDir: string;
}

/** The argv that computes one experiment by key (a child process). */
export function experimentRunArgv(key: string, cacheDir: string): string[] {
  return [
    Deno.execPath(),
    "run",
    "-q",
    "-A",
    MAIN,
    "experiments",
    "run",
    key,
    "--cache",
    cacheDir,
  ];
}

/** One progress line of a local sweep. */
function localLine(p: LocalJobsProgress): string {
  return `sweep: ${p.done} done, ${p.running} running, ${p.pending} pending, ${p.failed.length} failed${
    p.failed.length
      ? ` (${
        p.failed.map((f) => `${f.id}: exit ${f.code}, log ${f.logPath}`).join(
          "; ",
        )
      })`
      : ""
  }`;
}

/** One progress line of a Slurm sweep. */
function slurmLine(p: SlurmProgress): string {
  const failed = p.tasks.filter((t) => t.state === "failed");
  return `sweep: job ${p.jobId}: ${p.done} done, ${p.running} running, ${p.pending} pending, ${p.failed} failed${
    failed.length
      ? ` (${failed.map((t) => `${t.id}: log ${t.logPath}`).join("; ")})`
      : ""
  }`;
}

/**
 * Lists `notebook`'s experiments and computes every one the cache lacks,
 * round after round, until nothing new is missing.
 *
 * @throws {SweepError} when an experiment that is missing is not runnable by key (an unregistered compute function), before any job runs
 */
export async function sweep(
  notebook: string,
  options: SweepOptions = {},
): Promise<SweepOutcome> {
  const cacheDir = options.cacheDir ?? resultsCacheDir();
  const progress = options.progress ?? ((s: string) => console.error(s));
  const logDir = options.logDir ??
    join(
      cacheDir,
      ".sweep-logs",
      new Date().toISOString().replace(/[:.]/g, "-"),
    );
  const maxRounds = options.rounds ?? 3;
  const attempted = new Set<string>();
  const computed: string[] = [];
  const failed: FailedJob[] = [];
  let experiments: ListedExperiment[] = [];
  let round = 0;
  while (round < maxRounds) {
    round++;
    progress(`sweep: listing the experiments of ${notebook} (round ${round})`);
    const listing = await listExperiments(notebook, { ...options, cacheDir });
    experiments = listing.experiments;
    const missing = experiments.filter((e) => !e.cached);
    const unrunnable = missing.filter((e) => !e.runnable);
    if (unrunnable.length > 0) {
      throw new SweepError(
        `${unrunnable.length} experiment${
          unrunnable.length === 1 ? "" : "s"
        } of ${notebook} cannot be computed by key: ${
          unrunnable.slice(0, 5).map((e) => `${e.name} (${e.key})`).join(", ")
        }${
          unrunnable.length > 5 ? ", ..." : ""
        }: an unregistered compute function (a closure). Give runAblation a registered kind (run: trainArm), or register the function in lib/report/experiment_kinds.ts; or compute them by rendering the report (tokenlab report ${notebook}).`,
      );
    }
    const todo = missing.filter((e) => !attempted.has(e.key));
    progress(
      `sweep: ${experiments.length} experiments, ${
        experiments.length - missing.length
      } in the cache, ${todo.length} to compute`,
    );
    if (todo.length === 0) break;
    for (const e of todo) attempted.add(e.key);
    const items: SweepItem[] = todo.map((e) => ({
      id: e.key,
      argv: experimentRunArgv(e.key, cacheDir),
    }));
    const names = new Map(todo.map((e) => [e.key, e.name]));
    if ((options.executor ?? "local") === "local") {
      const outcomes = await runLocalJobs(items, {
        jobs: options.jobs,
        logDir,
        onProgress: (p) => progress(localLine(p)),
      });
      for (const o of outcomes) {
        if (o.code === 0) computed.push(o.id);
        else {failed.push({
            key: o.id,
            name: names.get(o.id)!,
            logPath: o.logPath,
          });}
      }
    } else {
      const submission = await submitSlurmArray(items, {
        logDir,
        resources: options.resources,
      });
      progress(
        `sweep: submitted Slurm array job ${submission.jobId} (${items.length} tasks)`,
      );
      const end = await followSlurmArray(submission, {
        pollMs: options.pollMs,
        onProgress: (p) => progress(slurmLine(p)),
      });
      for (const t of end.tasks) {
        if (t.state === "done") computed.push(t.id);
        else {failed.push({
            key: t.id,
            name: names.get(t.id)!,
            logPath: t.logPath,
          });}
      }
    }
  }
  return { experiments, computed, failed, rounds: round, logDir };
}
