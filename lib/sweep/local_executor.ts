/**
 * The local executor of a sweep: job items (an id and an argv each) run as
 * at most `jobs` child processes at a time on this machine, each one's
 * stdout and stderr in a log file of its own, with a progress report after
 * every change. A command is run as its argv, never through a shell.
 *
 * @module
 */

import { join } from "node:path";
import type { SweepItem } from "./slurm.ts";
import { SlurmOptionsError } from "./sweep_error.ts";

/** Options of {@linkcode runLocalJobs}. */
export interface LocalJobsOptions {
  /** How many items run at once (default 1). */
  jobs?: number;
  /** The folder of the logs (`<id>.log`; created when missing). */
  logDir: string;
  /** Where the commands run (default this process's working folder). */
  cwd?: string;
  /** Called with the state after each start and end. */
  onProgress?: (progress: LocalJobsProgress) => void;
}

/** One item's end. */
export interface LocalJobOutcome {
  /** The item's id. */
  id: string;
  /** Its exit code. */
  code: number;
  /** Its log file. */
  logPath: string;
}

/** Where a local sweep stands. */
export interface LocalJobsProgress {
  /** Items in all. */
  total: number;
  /** Items that ended with exit code 0. */
  done: number;
  /** Items running now. */
  running: number;
  /** Items not started. */
  pending: number;
  /** Items that failed, each with its log. */
  failed: readonly LocalJobOutcome[];
}

async function drain(
  stream: ReadableStream<Uint8Array>,
  file: Deno.FsFile,
): Promise<void> {
  for await (const chunk of stream) {
    let off = 0;
    while (off < chunk.length) off += await file.write(chunk.subarray(off));
  }
}

/**
 * Runs every item, at most `jobs` at once, and resolves with each one's
 * outcome (in the order of `items`) once all have ended.
 *
 * @throws {SlurmOptionsError} for a bad `jobs` or an item without argv or with a bad id
 *
 * @example
 * ```ts
 * import { runLocalJobs } from "tokenlab/sweep/local_executor.ts";
 * const logDir = await Deno.makeTempDir();
 * const out = await runLocalJobs([
 *   { id: "ok", argv: [Deno.execPath(), "eval", "console.log(1)"] },
 *   { id: "bad", argv: [Deno.execPath(), "eval", "Deno.exit(3)"] },
 * ], { jobs: 2, logDir });
 * console.log(out.map((o) => o.code)); // [ 0, 3 ]
 * await Deno.remove(logDir, { recursive: true });
 * ```
 */
export async function runLocalJobs(
  items: readonly SweepItem[],
  options: LocalJobsOptions,
): Promise<LocalJobOutcome[]> {
  const jobs = options.jobs ?? 1;
  if (!Number.isInteger(jobs) || jobs < 1 || jobs > 1024) {
    throw new SlurmOptionsError(
      `jobs: expected a whole number from 1 to 1024, found ${jobs}`,
      "jobs",
    );
  }
  items.forEach((item, i) => {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(item.id)) {
      throw new SlurmOptionsError(
        `items[${i}].id: expected letters, digits, ".", "_", "-" (it names a log file), found ${
          JSON.stringify(item.id)
        }`,
        `items[${i}].id`,
      );
    }
    if (item.argv.length === 0) {
      throw new SlurmOptionsError(
        `items[${i}].argv: expected a command (program first), found none`,
        `items[${i}].argv`,
      );
    }
  });
  await Deno.mkdir(options.logDir, { recursive: true });
  const outcomes: LocalJobOutcome[] = new Array(items.length);
  const failed: LocalJobOutcome[] = [];
  let next = 0, running = 0, done = 0;
  const report = () =>
    options.onProgress?.({
      total: items.length,
      done,
      running,
      pending: items.length - next,
      failed: [...failed],
    });
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      const item = items[i];
      const logPath = join(options.logDir, `${item.id}.log`);
      running++;
      report();
      const log = await Deno.open(logPath, {
        write: true,
        create: true,
        truncate: true,
      });
      let code: number;
      try {
        const child = new Deno.Command(item.argv[0], {
          args: item.argv.slice(1),
          cwd: options.cwd,
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
        }).spawn();
        await Promise.all([
          drain(child.stdout, log),
          drain(child.stderr, log),
        ]);
        code = (await child.status).code;
      } catch (e) {
        const text = `could not start ${item.argv[0]}: ${
          (e as Error).message
        }\n`;
        await log.write(new TextEncoder().encode(text));
        code = 127;
      } finally {
        log.close();
      }
      running--;
      const outcome = { id: item.id, code, logPath };
      outcomes[i] = outcome;
      if (code === 0) done++;
      else failed.push(outcome);
      report();
    }
  };
  await Promise.all(
    Array.from({ length: Math.min(jobs, items.length) }, worker),
  );
  return outcomes;
}
