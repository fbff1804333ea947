/**
 * A Slurm array's progress and summary as text, for a command line.
 *
 * @module
 */

import type { SlurmProgress } from "./slurm.ts";

/**
 * One line of counts (`job 1234: 2/4 done, 1 running, 0 pending, 1
 * failed`), then, for each failed task, a line with its id, why and its
 * log.
 *
 * @example
 * ```ts
 * import { formatSlurmProgress } from "tokenlab/sweep/mod.ts";
 * console.log(formatSlurmProgress({
 *   jobId: "7", runDir: "/r", total: 2, done: 1, failed: 1, running: 0,
 *   pending: 0, complete: true, seconds: 3,
 *   tasks: [
 *     { index: 0, id: "a", state: "done", logPath: "/r/logs/0.log" },
 *     { index: 1, id: "b", state: "failed", reason: "exit 3", logPath: "/r/logs/1.log" },
 *   ],
 * }));
 * // job 7: 1/2 done, 0 running, 0 pending, 1 failed (finished)
 * //   failed: task 1 b: exit 3; log /r/logs/1.log
 * ```
 */
export function formatSlurmProgress(progress: SlurmProgress): string {
  const p = progress;
  const lines = [
    `job ${p.jobId}: ${p.done}/${p.total} done, ${p.running} running, ${p.pending} pending, ${p.failed} failed${
      p.complete ? " (finished)" : ""
    }`,
  ];
  for (const t of p.tasks) {
    if (t.state !== "failed") continue;
    lines.push(
      `  failed: task ${t.index} ${t.id}: ${
        t.reason ?? "failed"
      }; log ${t.logPath}`,
    );
  }
  return lines.join("\n");
}
