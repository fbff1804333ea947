/**
 * Executing notebooks headlessly into reports: each notebook in `notebooks/`
 * gets its parameters injected (papermill's way: a cell tagged
 * `injected-parameters` after the cell tagged `parameters`), runs with the
 * Deno Jupyter kernel through nbclient, and becomes `reports/<name>.html`
 * (self-contained), `reports/<name>.md` (figures in `<name>_files/`) and the
 * executed `reports/<name>.ipynb`. `reports/index.html` and
 * `reports/README.md` list every report (`index_page.ts`).
 *
 * Any other notebook file can be rendered the same way, by its path: into
 * the folder given (`outDir`), else into a `reports/` folder beside it. Each
 * report folder has its own index; the project's `reports/` lists the
 * project's notebooks only.
 *
 * Everything is checked before anything runs (notebooks are valid JSON,
 * names and parameters exist and have the right types). A report's files
 * are written into a staging folder and moved into place only when all of
 * them are complete; a notebook that could not run at all leaves the
 * existing report untouched. A failing cell fails the run, after the
 * partial report (marked failed) is written.
 *
 * The run's parts, one file each: `targets.ts` (which notebooks, and where
 * their reports go), `plan.ts` (each notebook read and parameterised before
 * anything runs), `execute.ts` (the Python and the kernel run),
 * `run_notebook.ts` (one notebook into its report), `browser_session.ts`
 * (the shared browser) and `page_check.ts` (the page check's verdict);
 * `run_types.ts` holds the options and results, `report_error.ts` the error.
 *
 * @module
 */

import { resolve } from "node:path";
import { BrowserSession } from "./browser_session.ts";
import { findPython } from "./execute.ts";
import { writeIndex } from "./index_page.ts";
import { plan } from "./plan.ts";
import { ReportError } from "./report_error.ts";
import { runNotebook } from "./run_notebook.ts";
import type { ReportResult, RunReportsOptions } from "./run_types.ts";
import {
  checkOutDirs,
  listNotebooks,
  NOTEBOOK_DIR,
  REPORT_DIR,
  resolveTargets,
} from "./targets.ts";

export { reportGroup } from "./index_page.ts";
export { findPython } from "./execute.ts";
export { pageCheckProblems } from "./page_check.ts";
export { SCALES } from "./plan.ts";
export { ReportError } from "./report_error.ts";
export type { ReportResult, RunReportsOptions } from "./run_types.ts";
export { listNotebooks, NOTEBOOK_DIR, REPORT_DIR } from "./targets.ts";

/**
 * Executes the named notebooks (all of them when `names` is empty) and
 * writes `<outDir>/<name>.html`, `.md` (+ `<name>_files/`) and `.ipynb`
 * for each, also for a notebook whose cell failed (marked failed), then
 * updates the index.
 *
 * @throws {ReportError} for an unknown notebook name, an invalid notebook,
 * a bad parameter or a missing Jupyter stack, before anything runs
 */
export async function runReports(
  names: readonly string[],
  options: RunReportsOptions = {},
): Promise<ReportResult[]> {
  const notebookDir = options.notebookDir ?? NOTEBOOK_DIR;
  const outDir = options.outDir ?? REPORT_DIR;
  const progress = options.progress ?? ((s: string) => console.error(s));
  const timeout = options.cellTimeout ?? 1800;
  const available = await listNotebooks(notebookDir);
  const targets = await resolveTargets(names, available, notebookDir, options);
  if (targets.length === 0) {
    throw new ReportError(`no notebooks in ${notebookDir}`);
  }
  // The folder whose index lists every notebook of notebookDir.
  const home = resolve(
    options.notebookDir === undefined ? REPORT_DIR : outDir,
  );
  await checkOutDirs(targets, home, notebookDir);
  const planned = await plan(targets, options);
  const py = await findPython();
  const outDirs = [...new Set(targets.map((t) => t.outDir))];
  for (const dir of outDirs) await Deno.mkdir(dir, { recursive: true });

  const browsers = new BrowserSession(options.browser ?? true);
  const context = { py, timeout, progress, browsers, options };
  const results: ReportResult[] = [];
  try {
    for (const p of planned) {
      results.push(await runNotebook(p, context));
    }
  } finally {
    await browsers.close();
  }
  for (const dir of outDirs) {
    const here = results.filter((_, i) => planned[i].target.outDir === dir);
    await writeIndex(dir, here, dir === home ? available : null);
  }
  return results;
}
