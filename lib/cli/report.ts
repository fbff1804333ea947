/**
 * `tokenlab report`: execute notebooks headlessly into `reports/`.
 *
 * @module
 */

import type { Command } from "./_args.ts";
import { parseCommandArgs, UsageError } from "./_args.ts";

const USAGE =
  `usage: tokenlab report [NAME ...] [--backend NAME] [--cell-timeout SECONDS]

Executes each notebook of notebooks/ (or only the NAMEs given) with the Deno
Jupyter kernel and writes reports/<name>.html and reports/<name>.ipynb. Exits
non-zero if any cell of any notebook fails (the failed report is still written,
marked failed).

  --backend NAME          backend for the notebooks (sets TOKENLAB_BACKEND)
  --cell-timeout SECONDS  longest a single cell may run (default 1800)`;

/** The `report` command. */
export const reportCommand: Command = {
  summary: "execute the notebooks into HTML reports",
  usage: USAGE,
  async run(args) {
    const { values, positionals } = parseCommandArgs("report", USAGE, args, {
      backend: { type: "string" },
      "cell-timeout": { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    }, true);
    if (values.help) {
      console.log(USAGE);
      return 0;
    }
    if (values.backend !== undefined) {
      const { parseBackendRequest } = await import("../backend.ts");
      parseBackendRequest(values.backend, "--backend");
    }
    let cellTimeout: number | undefined;
    if (values["cell-timeout"] !== undefined) {
      cellTimeout = Number(values["cell-timeout"]);
      if (!Number.isInteger(cellTimeout) || cellTimeout <= 0) {
        throw new UsageError(
          `tokenlab report: --cell-timeout expects a whole number of seconds > 0, found "${
            values["cell-timeout"]
          }"`,
        );
      }
    }
    const { runReports } = await import("../report/run.ts");
    const results = await runReports(positionals, {
      backend: values.backend,
      cellTimeout,
    });
    const failed = results.filter((r) => r.status !== "ok");
    console.log(
      `${results.length - failed.length} of ${results.length} reports ok${
        failed.length ? `; failed: ${failed.map((r) => r.name).join(", ")}` : ""
      }`,
    );
    return failed.length === 0 ? 0 : 1;
  },
};
