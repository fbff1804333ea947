/**
 * `tokenlab sweep NOTEBOOK`: every experiment of a notebook computed outside
 * the report (local processes or a Slurm array job), so that `tokenlab
 * report` then renders it from the results cache.
 *
 * @module
 */

import {
  type Command,
  positiveIntOption,
  readingInput,
  UsageError,
} from "./_args.ts";
import { defineCommand } from "./_command.ts";

const USAGE =
  `usage: tokenlab sweep NOTEBOOK [--param KEY=VALUE ...] [--scale tiny|smoke|full]
                      [--executor local|slurm] [--jobs N] [--cache DIR] [--log-dir DIR]
                      [--slurm-resources FILE.json] [--cell-timeout SECONDS]

Lists NOTEBOOK's experiments (tokenlab experiments list), computes every one
the results cache lacks as a job (tokenlab experiments run KEY, one process
each), and lists again until nothing new is missing (at most 3 rounds: an
experiment whose config depends on another's result appears once it is
computed). Prints a progress line after each change (done, running, pending,
failed with each failed job's log). A failed job leaves no result; running
the sweep again computes only what is missing. Then render the report from
the cache: tokenlab report NOTEBOOK (with the same --param/--scale).

  --executor local|slurm       local processes (default), or one Slurm array job; with
                               slurm the results cache and the project must be on a
                               path every node shares
  --jobs N                     local: jobs at once (default 1)
  --slurm-resources FILE.json  slurm: what each task asks for ({"partition": "gpu",
                               "gres": "gpu:1", "cpusPerTask": 8, "mem": "32G",
                               "time": "04:00:00"})
  --cache DIR                  the results cache (default TOKENLAB_RESULTS_DIR, else
                               data/cache/results)
  --log-dir DIR                the job logs (default DIR/.sweep-logs/<time> of the cache)
  --param, --scale             as tokenlab report
  --cell-timeout SECONDS       longest a notebook cell may run while listing (default 1800)`;

/** The `sweep` command. */
export const sweepCommand: Command = defineCommand({
  name: "sweep",
  summary: "compute a notebook's experiments as jobs (local or Slurm)",
  usage: USAGE,
  options: {
    param: { type: "string", multiple: true },
    scale: { type: "string" },
    executor: { type: "string", default: "local" },
    jobs: { type: "string" },
    cache: { type: "string" },
    "log-dir": { type: "string" },
    "slurm-resources": { type: "string" },
    "cell-timeout": { type: "string" },
  },
  positionals: true,
  async run({ values, positionals }) {
    if (positionals.length !== 1) {
      throw new UsageError(
        `tokenlab sweep: expected one notebook, found ${positionals.length}\n\n${USAGE}`,
      );
    }
    const executor = values.executor;
    if (executor !== "local" && executor !== "slurm") {
      throw new UsageError(
        `tokenlab sweep: --executor expects local or slurm, found ${
          JSON.stringify(executor)
        }`,
      );
    }
    if (executor === "local" && values["slurm-resources"] !== undefined) {
      throw new UsageError(
        `tokenlab sweep: --slurm-resources applies to --executor slurm only`,
      );
    }
    const jobs = positiveIntOption("sweep", "--jobs", values.jobs);
    const cellTimeout = positiveIntOption(
      "sweep",
      "--cell-timeout",
      values["cell-timeout"],
    );
    const { sweep } = await import("../sweep/sweep.ts");
    const { ReportError } = await import("../report/report_error.ts");
    const resources = values["slurm-resources"] === undefined
      ? undefined
      : await (await import("../sweep/slurm_resources.ts")).readSlurmResources(
        values["slurm-resources"],
      );
    const outcome = await readingInput(
      "sweep",
      null,
      [ReportError],
      () =>
        sweep(positionals[0], {
          params: values.param ?? [],
          scale: values.scale,
          executor,
          jobs,
          resources,
          cacheDir: values.cache,
          logDir: values["log-dir"],
          cellTimeout,
        }),
    );
    const missing = outcome.experiments.filter((e) => !e.cached).length;
    const words = [
      ...(values.param ?? []).map((p) => `--param ${p}`),
      ...(values.scale ? [`--scale ${values.scale}`] : []),
    ].join(" ");
    if (outcome.failed.length > 0) {
      console.error(
        `sweep: ${outcome.failed.length} job${
          outcome.failed.length === 1 ? "" : "s"
        } failed (no result stored):\n${
          outcome.failed.map((f) => `  ${f.name} (${f.key}): log ${f.logPath}`)
            .join("\n")
        }\nFix the cause and run the sweep again: it computes only what is missing.`,
      );
      return 1;
    }
    console.log(
      `sweep: ${outcome.computed.length} computed, ${outcome.experiments.length} experiments listed${
        missing > 0
          ? ` (${missing} still missing after ${outcome.rounds} rounds: run the sweep again)`
          : ""
      }. Render the report from the cache: tokenlab report ${positionals[0]}${
        words ? ` ${words}` : ""
      }`,
    );
    return 0;
  },
});
