/**
 * `tokenlab experiments list NOTEBOOK` (a notebook's experiments, computing
 * none) and `tokenlab experiments run KEY` (one experiment computed by its
 * key into the results cache).
 *
 * @module
 */

import {
  type Command,
  positiveIntOption,
  readingInput,
  UsageError,
} from "./_args.ts";
import { defineCommand, defineGroup } from "./_command.ts";

const LIST_USAGE =
  `usage: tokenlab experiments list NOTEBOOK [--param KEY=VALUE ...] [--scale tiny|smoke|full]
                                [--cache DIR] [--json] [--cell-timeout SECONDS]

Runs NOTEBOOK (a name in notebooks/ or a path) in plan mode: every experiment
it reaches is listed, none computed. Prints each one's key, name, whether the
results cache has it, and its config; --json prints them as JSON. Experiments
of a registered kind get a plan record in the cache (DIR/.plan/KEY.json), so
\`tokenlab experiments run KEY\` computes them; the others are marked "not
runnable by key" (an unregistered compute function: they run in the report).
An experiment whose config depends on another's result is listed once that
result is in the cache (tokenlab sweep lists again after each round).

  --param KEY=VALUE        a notebook parameter (repeatable), as tokenlab report
  --scale tiny|smoke|full  the scale, as tokenlab report
  --cache DIR              the results cache (default TOKENLAB_RESULTS_DIR, else data/cache/results)
  --json                   JSON output
  --cell-timeout SECONDS   longest a single cell may run (default 1800)`;

const RUN_USAGE =
  `usage: tokenlab experiments run KEY [--cache DIR] [--skip-locked] [--wait SECONDS]

Computes the experiment listed under KEY (tokenlab experiments list prints
the keys) and writes its result into the results cache atomically; nothing
happens when the cache has it. Another worker computing the same key holds
its lock: this one waits and then reads its result (--wait sets the limit),
or with --skip-locked skips it. A lock left by a worker that died is taken
over once stale. A failed run leaves no result.

  --cache DIR       the results cache (default TOKENLAB_RESULTS_DIR, else data/cache/results)
  --skip-locked     skip the experiment when another worker computes it
  --wait SECONDS    the longest to wait for another worker (default: no limit)`;

const USAGE = `usage: tokenlab experiments list|run ...

${LIST_USAGE}

${RUN_USAGE}`;

const listCommand: Command = defineCommand({
  name: "experiments list",
  summary: "list a notebook's experiments",
  usage: LIST_USAGE,
  options: {
    param: { type: "string", multiple: true },
    scale: { type: "string" },
    cache: { type: "string" },
    json: { type: "boolean", default: false },
    "cell-timeout": { type: "string" },
  },
  positionals: true,
  async run({ values, positionals }) {
    if (positionals.length !== 1) {
      throw new UsageError(
        `tokenlab experiments list: expected one notebook, found ${positionals.length}\n\n${LIST_USAGE}`,
      );
    }
    const cellTimeout = positiveIntOption(
      "experiments list",
      "--cell-timeout",
      values["cell-timeout"],
    );
    const { listExperiments } = await import("../sweep/list_experiments.ts");
    const { ReportError } = await import("../report/report_error.ts");
    const listing = await readingInput(
      "experiments list",
      null,
      [ReportError],
      () =>
        listExperiments(positionals[0], {
          params: values.param ?? [],
          scale: values.scale,
          cacheDir: values.cache,
          cellTimeout,
        }),
    );
    if (values.json) {
      console.log(JSON.stringify(listing, null, 1));
      return 0;
    }
    for (const e of listing.experiments) {
      console.log(
        `${e.key}  ${e.name}  ${e.cached ? "cached" : "missing"}  ${
          e.runnable
            ? e.kind
            : "not runnable by key (an unregistered compute function)"
        }  ${e.summary}`,
      );
    }
    const missing = listing.experiments.filter((e) => !e.cached).length;
    console.error(
      `${listing.experiments.length} experiments of ${listing.notebook}: ${missing} missing from ${listing.cacheDir}`,
    );
    return 0;
  },
});

const runCommand: Command = defineCommand({
  name: "experiments run",
  summary: "compute one experiment by its key",
  usage: RUN_USAGE,
  options: {
    cache: { type: "string" },
    "skip-locked": { type: "boolean", default: false },
    wait: { type: "string" },
  },
  positionals: true,
  async run({ values, positionals }) {
    if (positionals.length !== 1) {
      throw new UsageError(
        `tokenlab experiments run: expected one key, found ${positionals.length}\n\n${RUN_USAGE}`,
      );
    }
    const wait = positiveIntOption("experiments run", "--wait", values.wait);
    const { runExperimentByKey } = await import("../sweep/run_experiment.ts");
    const { checkKey } = await import("../report/plan_record.ts");
    const { ExperimentError } = await import("../report/experiment_error.ts");
    await readingInput(
      "experiments run",
      null,
      [ExperimentError],
      () => Promise.resolve(checkKey(positionals[0])),
    );
    const r = await runExperimentByKey(positionals[0], {
      cacheDir: values.cache,
      skipLocked: values["skip-locked"],
      waitMs: wait === undefined ? undefined : wait * 1000,
    });
    console.error(
      `experiment ${r.name} (${positionals[0]}): ${
        r.source === "skipped"
          ? "skipped: another worker computes it"
          : r.source === "computed"
          ? "computed and stored"
          : `already stored (${r.source})`
      }`,
    );
    return 0;
  },
});

/** The `experiments` command. */
export const experimentsCommand: Command = defineGroup(
  "experiments",
  "list a notebook's experiments, or compute one by its key",
  USAGE,
  { list: listCommand, run: runCommand },
);
