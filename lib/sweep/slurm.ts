/**
 * The Slurm executor of a sweep: a list of job items (an id and a command
 * as argv each, built by the caller) becomes one Slurm array job whose
 * task N runs item N; the executor then follows the array until every task
 * is done or failed, and can cancel it.
 *
 * Everything a submission needs lives in a fresh run folder inside
 * `logDir`: the batch script (`task.sh`), each task's command as data
 * (`argv/N`), its log (`logs/N.log`), its exit code once it ends
 * (`exit/N`), and `submission.json` (the job id and the items). The run
 * folder and `cwd` must be on a file system the compute nodes share.
 *
 * The caller skips what is already finished (a sweep checks the results
 * cache) before it submits: the items given are the items run.
 *
 * @module
 */

import { join } from "node:path";
import { writeFileAtomic, writeTextAtomic } from "../io/atomic_write.ts";
import { runSlurm, type SlurmClientOptions } from "./_slurm_command.ts";
import { sbatchResourceArgs, type SlurmResources } from "./slurm_resources.ts";
import {
  parseSacct,
  parseScontrolJobs,
  parseSqueue,
  slurmStateKind,
  type SlurmTaskRecord,
} from "./slurm_state.ts";
import { encodeArgv, SLURM_TASK_SCRIPT } from "./slurm_task_script.ts";
import { SlurmCommandError, SlurmOptionsError } from "./sweep_error.ts";

export type { SlurmClientOptions } from "./_slurm_command.ts";

/** One job item: what it is called and the command that computes it. */
export interface SweepItem {
  /** Its id, unique in the list (an experiment key). */
  id: string;
  /**
   * Its command as argv, program first
   * (`["deno", "run", "-A", "lib/cli/main.ts", "experiments", "run", KEY]`);
   * run as it is, never through a shell.
   */
  argv: readonly string[];
}

/** Options of {@linkcode submitSlurmArray}. */
export interface SlurmSubmitOptions extends SlurmClientOptions {
  /** The folder in which the submission's run folder is made (created when missing). */
  logDir: string;
  /** Where the tasks run (default: this process's working folder). */
  cwd?: string;
  /** What each task asks Slurm for. */
  resources?: SlurmResources;
}

/** One submitted item: its task index, id, command and log. */
export interface SlurmSubmittedItem extends SweepItem {
  /** Its array task index (its place in the submitted list). */
  index: number;
  /** Its log file (standard output and error). */
  logPath: string;
}

/** A submitted array job, as written to its run folder's `submission.json`. */
export interface SlurmSubmission {
  /** Slurm's job id of the array (`1234`). */
  jobId: string;
  /** The run folder (absolute). */
  runDir: string;
  /** When it was submitted (ISO 8601). */
  submittedAt: string;
  /** The `sbatch` argv that submitted it. */
  sbatchArgv: readonly string[];
  /** The items, task N being items[N]. */
  items: readonly SlurmSubmittedItem[];
}

/** What one task is, for the sweep. */
export type SlurmTaskState = "pending" | "running" | "done" | "failed";

/** One task's state with what is known of it. */
export interface SlurmTaskStatus {
  /** Its array task index. */
  index: number;
  /** Its item's id. */
  id: string;
  /** Pending, running, done (exit code 0) or failed. */
  state: SlurmTaskState;
  /** Slurm's last state for it (`RUNNING`, `COMPLETED`, `CANCELLED`, ...), when seen. */
  slurmState?: string;
  /** Its command's exit code, from its exit record. */
  exitCode?: number;
  /** Why it failed (`exit 3`, `CANCELLED by Slurm`), for a failed task. */
  reason?: string;
  /** Its log file. */
  logPath: string;
}

/** Where an array stands; the last one {@linkcode followSlurmArray} returns is the summary. */
export interface SlurmProgress {
  /** Slurm's job id. */
  jobId: string;
  /** The run folder. */
  runDir: string;
  /** How many tasks. */
  total: number;
  /** Tasks whose command exited 0. */
  done: number;
  /** Tasks that ended otherwise (a nonzero exit, cancelled, timed out, lost). */
  failed: number;
  /** Tasks running. */
  running: number;
  /** Tasks waiting. */
  pending: number;
  /** Every task, by index. */
  tasks: readonly SlurmTaskStatus[];
  /** Whether every task is done or failed. */
  complete: boolean;
  /** Seconds since following began. */
  seconds: number;
}

/** Options of {@linkcode followSlurmArray}. */
export interface SlurmFollowOptions extends SlurmClientOptions {
  /** Milliseconds between polls (default 10 000). */
  pollMs?: number;
  /** Called with the first state and each change. */
  onProgress?: (progress: SlurmProgress) => void;
  /** Stops following (not the job): the latest state comes back with `complete` false. */
  signal?: AbortSignal;
  /**
   * How long a task Slurm reports as ended, or no longer knows, may go
   * without its exit record before it counts as failed (a shared file
   * system can show a file late; default 60 000 ms).
   */
  endGraceMs?: number;
}

// Ids are shown in progress lines: no control characters.
// deno-lint-ignore no-control-regex
const ID = /^[^\x00-\x1f\x7f]{1,200}$/;
/** squeue's failures in a row before following gives up. */
const MAX_QUERY_FAILURES = 5;

function checkItems(items: readonly SweepItem[]): void {
  if (!Array.isArray(items) || items.length === 0) {
    throw new SlurmOptionsError(
      "expected at least one job item to submit, found none; with every item already finished there is nothing to submit (skip the submission)",
      "items",
    );
  }
  const seen = new Set<string>();
  items.forEach((item, i) => {
    if (typeof item?.id !== "string" || !ID.test(item.id)) {
      throw new SlurmOptionsError(
        `job item ${i}: expected an id of 1 to 200 characters without control characters, found ${
          JSON.stringify(item?.id)
        }`,
        `items[${i}].id`,
      );
    }
    if (seen.has(item.id)) {
      throw new SlurmOptionsError(
        `job item ${i}: id ${
          JSON.stringify(item.id)
        } is already the id of an earlier item; give each item its own id`,
        `items[${i}].id`,
      );
    }
    seen.add(item.id);
    const argv = item.argv;
    if (
      !Array.isArray(argv) || argv.length === 0 ||
      argv.some((a) => typeof a !== "string" || a.includes("\0"))
    ) {
      throw new SlurmOptionsError(
        `job item ${
          JSON.stringify(item.id)
        }: expected its command as a non-empty array of strings without NUL characters, found ${
          JSON.stringify(argv)
        }`,
        `items[${i}].argv`,
      );
    }
    if (argv[0] === "" || argv[0].includes("=")) {
      throw new SlurmOptionsError(
        `job item ${
          JSON.stringify(item.id)
        }: expected a program name or path first in its command, found ${
          JSON.stringify(argv[0])
        }; put environment settings in the environment, not in argv`,
        `items[${i}].argv`,
      );
    }
  });
}

function stamp(): string {
  return new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
}

/**
 * Submits `items` as one Slurm array job (`sbatch --parsable
 * --array=0-(n-1)`), task N running items[N], and returns the submission
 * (also written to `submission.json` in its run folder).
 *
 * @throws {SlurmOptionsError} for bad items, resources or folders
 * @throws {SlurmMissingError} when `sbatch` is not installed
 * @throws {SlurmCommandError} when `sbatch` refuses, with its stderr
 *
 * @example
 * ```ts ignore
 * import { followSlurmArray, submitSlurmArray } from "tokenlab/sweep/mod.ts";
 * const job = await submitSlurmArray(
 *   [{ id: "a", argv: ["echo", "hello"] }],
 *   { logDir: "data/sweeps", resources: { time: "00:10:00" } },
 * );
 * const summary = await followSlurmArray(job, { pollMs: 5000 });
 * console.log(summary.done, summary.failed); // 1 0
 * ```
 */
export async function submitSlurmArray(
  items: readonly SweepItem[],
  options: SlurmSubmitOptions,
): Promise<SlurmSubmission> {
  checkItems(items);
  const resourceArgs = sbatchResourceArgs(options.resources ?? {});
  const maxParallel = options.resources?.maxParallel;
  if (typeof options.logDir !== "string" || options.logDir === "") {
    throw new SlurmOptionsError(
      `expected logDir, the folder for the sweep's logs, found ${
        JSON.stringify(options.logDir)
      }`,
      "logDir",
    );
  }
  await Deno.mkdir(options.logDir, { recursive: true });
  const runDir = await Deno.realPath(
    await Deno.makeTempDir({
      dir: options.logDir,
      prefix: `slurm-${stamp()}-`,
    }),
  );
  if (/[%\\]/.test(runDir)) {
    throw new SlurmOptionsError(
      `the run folder ${runDir} holds % or \\, which sbatch reads as file name patterns; choose a log folder without them`,
      "logDir",
    );
  }
  const cwd = await Deno.realPath(options.cwd ?? Deno.cwd());
  const script = join(runDir, "task.sh");
  await writeTextAtomic(script, SLURM_TASK_SCRIPT);
  await Deno.mkdir(join(runDir, "argv"));
  await Deno.mkdir(join(runDir, "exit"));
  await Deno.mkdir(join(runDir, "logs"));
  const submitted: SlurmSubmittedItem[] = [];
  for (const [index, item] of items.entries()) {
    await writeFileAtomic(
      join(runDir, "argv", String(index)),
      encodeArgv(item.argv),
    );
    submitted.push({
      index,
      id: item.id,
      argv: [...item.argv],
      logPath: join(runDir, "logs", `${index}.log`),
    });
  }
  const args = [
    "--parsable",
    `--array=0-${items.length - 1}${maxParallel ? `%${maxParallel}` : ""}`,
    `--output=${join(runDir, "logs", "%a.log")}`,
    `--chdir=${cwd}`,
    ...resourceArgs,
    script,
    runDir,
  ];
  const out = await runSlurm("sbatch", args, options);
  const m = /^(\d+)(?:;\S*)?$/.exec(out.stdout.trim());
  if (out.code !== 0 || !m) {
    throw new SlurmCommandError(
      `sbatch refused the sweep's array job of ${items.length} tasks (exit ${out.code}): ${
        out.stderr || out.stdout.trim() || "no message"
      }. The command was: ${
        out.argv.join(" ")
      }. Check the Slurm resources (partition, time, gres, extra args) against \`sinfo\` and your cluster's rules`,
      { argv: out.argv, code: out.code, stderr: out.stderr },
    );
  }
  const submission: SlurmSubmission = {
    jobId: m[1],
    runDir,
    submittedAt: new Date().toISOString(),
    sbatchArgv: out.argv,
    items: submitted,
  };
  await writeTextAtomic(
    join(runDir, "submission.json"),
    JSON.stringify(submission, null, 2) + "\n",
  );
  return submission;
}

/**
 * The submission recorded in a run folder's `submission.json`, to follow
 * or cancel it again later (after the submitting process ended).
 *
 * @throws {SlurmOptionsError} when the folder holds no readable submission
 *
 * @example
 * ```ts ignore
 * import { followSlurmArray, readSlurmSubmission } from "tokenlab/sweep/mod.ts";
 * const job = await readSlurmSubmission("data/sweeps/slurm-20270101T000000Z-ab12");
 * console.log((await followSlurmArray(job)).failed);
 * ```
 */
export async function readSlurmSubmission(
  runDir: string,
): Promise<SlurmSubmission> {
  const file = join(runDir, "submission.json");
  let value: Partial<SlurmSubmission>;
  try {
    value = JSON.parse(await Deno.readTextFile(file));
  } catch (e) {
    throw new SlurmOptionsError(
      `cannot read the Slurm submission ${file}: ${
        (e as Error).message
      }; give a run folder made by submitSlurmArray`,
      "runDir",
    );
  }
  if (
    typeof value?.jobId !== "string" || !/^\d+$/.test(value.jobId) ||
    !Array.isArray(value.items) || typeof value.runDir !== "string"
  ) {
    throw new SlurmOptionsError(
      `${file}: expected a submission with jobId, runDir and items, found another JSON value; give a run folder made by submitSlurmArray`,
      "runDir",
    );
  }
  return value as SlurmSubmission;
}

async function exitRecord(
  runDir: string,
  index: number,
): Promise<number | undefined> {
  try {
    const text = await Deno.readTextFile(
      join(runDir, "exit", String(index)),
    );
    const code = Number(text.trim());
    return Number.isInteger(code) ? code : undefined;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

/** Follows one array across polls: remembers sacct's absence and since when a task went quiet. */
class ArrayTracker {
  #job: SlurmSubmission;
  #options: SlurmFollowOptions;
  #sacct = true;
  #squeueFailures = 0;
  #quietSince = new Map<number, number>();
  #last: SlurmTaskStatus[];

  constructor(job: SlurmSubmission, options: SlurmFollowOptions) {
    this.#job = job;
    this.#options = options;
    this.#last = job.items.map((item) => ({
      index: item.index,
      id: item.id,
      state: "pending",
      logPath: item.logPath,
    }));
  }

  async #squeue(): Promise<Map<number, SlurmTaskRecord> | null> {
    const out = await runSlurm("squeue", [
      `--jobs=${this.#job.jobId}`,
      "--array",
      "--noheader",
      "--format=%K|%T",
    ], this.#options);
    if (out.code === 0) {
      this.#squeueFailures = 0;
      return parseSqueue(out.stdout);
    }
    // A job purged from the controller's memory: nothing of it is queued.
    if (/invalid job id/i.test(out.stderr)) return new Map();
    if (++this.#squeueFailures >= MAX_QUERY_FAILURES) {
      throw new SlurmCommandError(
        `squeue failed ${this.#squeueFailures} times in a row following job ${this.#job.jobId} (exit ${out.code}): ${out.stderr}; check the Slurm controller (\`scontrol ping\`), then follow the run folder ${this.#job.runDir} again`,
        { argv: out.argv, code: out.code, stderr: out.stderr },
      );
    }
    return null;
  }

  /** Ended tasks' states: sacct where accounting is kept, else scontrol. */
  async #ended(): Promise<Map<number, SlurmTaskRecord>> {
    const found = new Map<number, SlurmTaskRecord>();
    if (this.#sacct) {
      const out = await runSlurm("sacct", [
        `--jobs=${this.#job.jobId}`,
        "--allocations",
        "--noheader",
        "--parsable2",
        "--format=JobID,State,ExitCode",
      ], this.#options);
      if (out.code === 0) {
        for (const [i, r] of parseSacct(out.stdout, this.#job.jobId)) {
          found.set(i, r);
        }
      } else {
        this.#sacct = false; // accounting disabled: scontrol from now on
      }
    }
    const out = await runSlurm("scontrol", [
      "--oneliner",
      "show",
      "job",
      this.#job.jobId,
    ], this.#options);
    if (out.code === 0) {
      for (const [i, r] of parseScontrolJobs(out.stdout, this.#job.jobId)) {
        if (!found.has(i)) found.set(i, r);
      }
    }
    return found;
  }

  async poll(): Promise<SlurmTaskStatus[]> {
    const grace = this.#options.endGraceMs ?? 60_000;
    const queued = await this.#squeue();
    const codes = await Promise.all(
      this.#job.items.map((item) => exitRecord(this.#job.runDir, item.index)),
    );
    const quiet = queued === null
      ? []
      : this.#job.items.filter((item) =>
        codes[item.index] === undefined && !queued.has(item.index) &&
        this.#last[item.index].state !== "failed"
      );
    const ended = quiet.length > 0 ? await this.#ended() : new Map();
    const now = Date.now();
    const next = this.#job.items.map((item): SlurmTaskStatus => {
      const last = this.#last[item.index];
      const base = { index: item.index, id: item.id, logPath: item.logPath };
      const code = codes[item.index];
      const record: SlurmTaskRecord | undefined = queued?.get(item.index) ??
        ended.get(item.index);
      const slurmState = record?.state ?? last.slurmState;
      if (code !== undefined) {
        this.#quietSince.delete(item.index);
        return code === 0
          ? { ...base, state: "done", slurmState, exitCode: 0 }
          : {
            ...base,
            state: "failed",
            slurmState,
            exitCode: code,
            reason: `exit ${code}`,
          };
      }
      if (queued === null || last.state === "failed") {
        return { ...last, slurmState };
      }
      const kind = record ? slurmStateKind(record.state) : undefined;
      if (kind === "pending" || kind === "running") {
        this.#quietSince.delete(item.index);
        return { ...base, state: kind, slurmState };
      }
      const state = record?.state.split(/\s+/)[0].toUpperCase();
      const slurmExit = record?.exitCode ? ` (exit ${record.exitCode})` : "";
      if (state === "FAILED") {
        // The task script itself failed (its command never ran or never returned).
        return {
          ...base,
          state: "failed",
          slurmState,
          reason:
            `Slurm says FAILED${slurmExit} and the task recorded no exit code; see its log`,
        };
      }
      if (state !== undefined && state !== "COMPLETED") {
        // Cancelled, timed out, out of memory, node failure...: no record comes.
        return {
          ...base,
          state: "failed",
          slurmState,
          reason: `${
            record!.state
          } by Slurm${slurmExit}, before its command recorded an exit code`,
        };
      }
      const since = this.#quietSince.get(item.index) ?? now;
      this.#quietSince.set(item.index, since);
      if (now - since < grace) {
        // Just ended: its exit record may still be on its way.
        return { ...last, slurmState };
      }
      return {
        ...base,
        state: "failed",
        slurmState,
        reason: state === undefined
          ? `gone from Slurm's queue without an exit record in ${this.#job.runDir}/exit; see its log`
          : `Slurm says ${
            record!.state
          }${slurmExit} but no exit record came to ${this.#job.runDir}/exit; see its log, and check that the run folder is on a file system the nodes share`,
      };
    });
    this.#last = next;
    return next;
  }
}

function progressOf(
  job: SlurmSubmission,
  tasks: SlurmTaskStatus[],
  seconds: number,
): SlurmProgress {
  const count = (s: SlurmTaskState) =>
    tasks.filter((t) => t.state === s).length;
  const done = count("done");
  const failed = count("failed");
  return {
    jobId: job.jobId,
    runDir: job.runDir,
    total: tasks.length,
    done,
    failed,
    running: count("running"),
    pending: count("pending"),
    tasks,
    complete: done + failed === tasks.length,
    seconds,
  };
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * Polls a submitted array (squeue while tasks wait or run; each task's
 * exit record; sacct or scontrol once it has ended) until every task is
 * done or failed, reporting each change to `onProgress`, and returns the
 * summary: a failed task has its `reason` and `logPath`.
 *
 * @throws {SlurmMissingError} when `squeue` is not installed
 * @throws {SlurmCommandError} when `squeue` fails again and again
 *
 * @example
 * ```ts ignore
 * import { followSlurmArray, formatSlurmProgress, readSlurmSubmission } from "tokenlab/sweep/mod.ts";
 * const job = await readSlurmSubmission("data/sweeps/slurm-20270101T000000Z-ab12");
 * const summary = await followSlurmArray(job, {
 *   onProgress: (p) => console.error(formatSlurmProgress(p)),
 * });
 * for (const t of summary.tasks) if (t.state === "failed") console.log(t.id, t.logPath);
 * ```
 */
export async function followSlurmArray(
  submission: SlurmSubmission,
  options: SlurmFollowOptions = {},
): Promise<SlurmProgress> {
  const t0 = performance.now();
  const tracker = new ArrayTracker(submission, options);
  let shown = "";
  while (true) {
    const tasks = await tracker.poll();
    const progress = progressOf(
      submission,
      tasks,
      (performance.now() - t0) / 1000,
    );
    const key = JSON.stringify(tasks);
    if (key !== shown) {
      shown = key;
      options.onProgress?.(progress);
    }
    if (progress.complete || options.signal?.aborted) return progress;
    await sleep(options.pollMs ?? 10_000, options.signal);
  }
}

/**
 * Cancels every task of a submitted array that has not ended (`scancel
 * JOBID`); following it afterwards reports them as failed, cancelled.
 *
 * @throws {SlurmMissingError} when `scancel` is not installed
 * @throws {SlurmCommandError} when `scancel` refuses, with its stderr
 *
 * @example
 * ```ts ignore
 * import { cancelSlurmArray, readSlurmSubmission } from "tokenlab/sweep/mod.ts";
 * await cancelSlurmArray(await readSlurmSubmission("data/sweeps/slurm-20270101T000000Z-ab12"));
 * ```
 */
export async function cancelSlurmArray(
  submission: SlurmSubmission,
  options: SlurmClientOptions = {},
): Promise<void> {
  const out = await runSlurm("scancel", [submission.jobId], options);
  if (out.code !== 0) {
    throw new SlurmCommandError(
      `scancel could not cancel job ${submission.jobId} (exit ${out.code}): ${
        out.stderr || "no message"
      }; check it with \`squeue --jobs=${submission.jobId}\``,
      { argv: out.argv, code: out.code, stderr: out.stderr },
    );
  }
}
