/**
 * Reading array task states out of Slurm's own commands: `squeue` while a
 * task waits or runs, `sacct` (where accounting is kept) or
 * `scontrol show job` (for a few minutes after the end) once it is over;
 * and what each Slurm state means for a sweep.
 *
 * @module
 */

/** What a Slurm job state means for a task: still to come, or over. */
export type SlurmStateKind = "pending" | "running" | "ended";

/** One array task's state as a Slurm command reported it. */
export interface SlurmTaskRecord {
  /** Slurm's state (`PENDING`, `RUNNING`, `COMPLETED`, `FAILED`, `CANCELLED`, `TIMEOUT`, ...). */
  state: string;
  /** Slurm's exit code `code:signal` (`3:0`), when the command gives it. */
  exitCode?: string;
}

const PENDING = new Set([
  "PENDING",
  "REQUEUED",
  "REQUEUE_FED",
  "REQUEUE_HOLD",
  "RESV_DEL_HOLD",
  "SUSPENDED",
  "STOPPED",
  "RESIZING",
]);
const RUNNING = new Set([
  "RUNNING",
  "CONFIGURING",
  "COMPLETING",
  "SIGNALING",
  "STAGE_OUT",
]);

/**
 * Whether a Slurm state is still to come, running, or over (`CANCELLED by
 * 0` counts as `CANCELLED`; an unknown state counts as over).
 *
 * @example
 * ```ts
 * import { slurmStateKind } from "tokenlab/sweep/mod.ts";
 * console.log(slurmStateKind("PENDING"), slurmStateKind("COMPLETING"), slurmStateKind("CANCELLED by 0"));
 * // pending running ended
 * ```
 */
export function slurmStateKind(state: string): SlurmStateKind {
  const base = state.trim().split(/\s+/)[0].replace(/\+$/, "").toUpperCase();
  if (PENDING.has(base)) return "pending";
  if (RUNNING.has(base)) return "running";
  return "ended";
}

/** Expands `3`, `[0-2,5]`, `0-2%4` into task indices (pending tasks squeezed into one line). */
function taskIndices(spec: string): number[] {
  const body = spec.replace(/^\[|\]$/g, "").replace(/%\d+$/, "");
  const out: number[] = [];
  for (const part of body.split(",")) {
    const m = /^(\d+)(?:-(\d+))?(?::(\d+))?$/.exec(part.trim());
    if (!m) continue;
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    const step = m[3] === undefined ? 1 : Math.max(1, Number(m[3]));
    for (let i = from; i <= to && out.length < 1_000_000; i += step) {
      out.push(i);
    }
  }
  return out;
}

/**
 * The tasks of `squeue --noheader --array --format=%K|%T` output (task
 * index, then state), by index; lines that are not of that form are
 * skipped.
 *
 * @example
 * ```ts
 * import { parseSqueue } from "tokenlab/sweep/mod.ts";
 * console.log(parseSqueue("0|RUNNING\n1|PENDING\n[2-3]|PENDING\n").get(3));
 * // { state: "PENDING" }
 * ```
 */
export function parseSqueue(text: string): Map<number, SlurmTaskRecord> {
  const out = new Map<number, SlurmTaskRecord>();
  for (const line of text.split("\n")) {
    const [task, state] = line.trim().split("|");
    if (!task || !state) continue;
    for (const i of taskIndices(task)) out.set(i, { state: state.trim() });
  }
  return out;
}

/**
 * The tasks of array job `jobId` in `sacct --noheader --parsable2
 * --allocations --format=JobID,State,ExitCode` output, by index.
 *
 * @example
 * ```ts
 * import { parseSacct } from "tokenlab/sweep/mod.ts";
 * const text = "7_0|COMPLETED|0:0\n7_1|FAILED|3:0\n7_[2-3]|PENDING|0:0\n";
 * console.log(parseSacct(text, "7").get(1)); // { state: "FAILED", exitCode: "3:0" }
 * ```
 */
export function parseSacct(
  text: string,
  jobId: string,
): Map<number, SlurmTaskRecord> {
  const out = new Map<number, SlurmTaskRecord>();
  for (const line of text.split("\n")) {
    const [id, state, exitCode] = line.trim().split("|");
    if (!id || !state || !id.startsWith(`${jobId}_`)) continue;
    for (const i of taskIndices(id.slice(jobId.length + 1))) {
      out.set(i, { state: state.trim(), exitCode: exitCode?.trim() });
    }
  }
  return out;
}

function field(line: string, name: string): string | undefined {
  return new RegExp(`(?:^|\\s)${name}=(\\S*)`).exec(line)?.[1];
}

/**
 * The tasks of array job `jobId` in `scontrol --oneliner show job JOBID`
 * output (one record a line), by index.
 *
 * @example
 * ```ts
 * import { parseScontrolJobs } from "tokenlab/sweep/mod.ts";
 * const text = "JobId=9 ArrayJobId=7 ArrayTaskId=2 JobState=TIMEOUT Reason=TimeLimit ExitCode=0:15\n";
 * console.log(parseScontrolJobs(text, "7").get(2)); // { state: "TIMEOUT", exitCode: "0:15" }
 * ```
 */
export function parseScontrolJobs(
  text: string,
  jobId: string,
): Map<number, SlurmTaskRecord> {
  const out = new Map<number, SlurmTaskRecord>();
  for (const line of text.split("\n")) {
    if (field(line, "ArrayJobId") !== jobId) continue;
    const task = field(line, "ArrayTaskId");
    const state = field(line, "JobState");
    if (!task || !state) continue;
    for (const i of taskIndices(task)) {
      out.set(i, { state, exitCode: field(line, "ExitCode") });
    }
  }
  return out;
}
