/**
 * `tokenlab report`: execute notebooks headlessly into `reports/` (the
 * kit's), or any notebook file into a folder of its own.
 *
 * @module
 */

import {
  checkBackendOption,
  positiveIntOption,
  readingInput,
  UsageError,
} from "./_args.ts";
import type { Command } from "./_args.ts";
import { defineCommand } from "./_command.ts";

const USAGE =
  `usage: tokenlab report [NAME | PATH.ipynb ...] [--out DIR] [--scale tiny|smoke|full]
                       [--param KEY=VALUE ...] [--params FILE.json] [--refresh] [--freeze]
                       [--backend NAME] [--cell-timeout SECONDS] [--no-browser]

Executes each notebook of notebooks/ (or only the NAMEs given) with the Deno
Jupyter kernel and writes reports/<name>.html (self-contained), reports/<name>.md
(figures in reports/<name>_files/) and the executed reports/<name>.ipynb;
reports/index.html and reports/README.md list every report. Exits 1 if any cell
of any notebook fails (the partial report is still written, marked failed), 2
for bad input (nothing runs then).

Any other notebook is rendered by its path (a word with a "/" or ending in
.ipynb; relative paths start at the current folder): into --out DIR, else
into a reports/ folder beside the notebook (my.ipynb -> reports/my.html,
.md, .ipynb). That folder gets its own index (README.md, index.html,
index.json) of the reports rendered into it; the kit's reports/ lists only
the kit's notebooks, so it refuses others. A folder that holds files
tokenlab report did not write (no index.json) is refused, and so is the
notebook's own folder (the executed copy would replace the notebook). The
kernel runs in the notebook's folder when a deno.json at or above it
configures Deno; otherwise in the kit's root, whose deno.json maps
"tokenlab" (relative paths in the notebook then start there).

Parameters: a notebook's cell tagged "parameters" declares its defaults as
TypeScript consts; given values go into a cell tagged "injected-parameters"
right after it, typed like the defaults.

  --out DIR                the report folder (default: reports/ for the kit's notebooks,
                           a reports/ folder beside any other notebook)
  --scale tiny|smoke|full  the scale, for notebooks with a "scale" parameter
  --param KEY=VALUE        set a parameter (repeatable); checked against its default's type
  --params FILE.json       parameters from a JSON object ({"epochs": 8}); --param wins
  --refresh                recompute cached experiment results
  --freeze                 also store every result under data/frozen/ (commit it so CI
                           re-renders full-scale numbers without retraining; needs --scale full)
  --backend NAME           backend for the notebooks (sets TOKENLAB_BACKEND)
  --cell-timeout SECONDS   longest a single cell may run (default 1800)
  --no-browser             no headless Chromium: no static figure images, no browser check`;

/** The `report` command. */
export const reportCommand: Command = defineCommand({
  name: "report",
  summary: "execute the notebooks into HTML and Markdown reports",
  usage: USAGE,
  options: {
    backend: { type: "string" },
    out: { type: "string" },
    "cell-timeout": { type: "string" },
    scale: { type: "string" },
    param: { type: "string", multiple: true },
    params: { type: "string" },
    refresh: { type: "boolean", default: false },
    freeze: { type: "boolean", default: false },
    "no-browser": { type: "boolean", default: false },
  },
  positionals: true,
  async run({ values, positionals }) {
    await checkBackendOption("report", values.backend);
    if (values.out !== undefined && values.out.trim() === "") {
      throw new UsageError(
        `tokenlab report: --out expects a folder, found an empty value; give the folder for the reports (it is created when missing)`,
      );
    }
    const cellTimeout = positiveIntOption(
      "report",
      "--cell-timeout",
      values["cell-timeout"],
    );
    const { ReportError, runReports } = await import("../report/run.ts");
    const { NotebookError } = await import("../report/notebook.ts");
    // runReports checks the names, parameters and notebooks before it runs
    // any (a ParameterError is bad input by main.ts's table); a cell that
    // fails is in the results, not thrown.
    const results = await readingInput(
      "report",
      null,
      [ReportError, NotebookError],
      () =>
        runReports(positionals, {
          outDir: values.out,
          backend: values.backend,
          cellTimeout,
          scale: values.scale,
          params: values.param ?? [],
          paramsFile: values.params,
          refresh: values.refresh,
          freeze: values.freeze,
          browser: !values["no-browser"],
        }),
    );
    const failed = results.filter((r) => r.status !== "ok");
    console.log(
      `${results.length - failed.length} of ${results.length} reports ok${
        failed.length ? `; failed: ${failed.map((r) => r.name).join(", ")}` : ""
      }`,
    );
    return failed.length === 0 ? 0 : 1;
  },
});
