/**
 * What a report run takes and gives: the options of `runReports` and the
 * outcome of each notebook it executed.
 *
 * @module
 */

import type { PageCheck } from "./browser.ts";

/** The outcome of executing one notebook. */
export interface ReportResult {
  /** Notebook name (file stem). */
  name: string;
  /** The notebook file that ran. */
  notebook?: string;
  /** The index group: the project's notebooks by name (`reportGroup`), "Notebooks" for any other. */
  group?: string;
  /** `ok`, or `failed` when a cell failed, the kernel could not run, or the browser check found a problem. */
  status: "ok" | "failed";
  /** 1-based number of the failing cell in the notebook as stored, when known. */
  cell: number | null;
  /** The error, when failed. */
  error: string;
  /** Wall time in seconds. */
  seconds: number;
  /** The HTML report, when written. */
  html: string | null;
  /** The Markdown report, when written. */
  md: string | null;
  /** The executed notebook, when written. */
  ipynb: string | null;
  /** The headline result the notebook declared, if any. */
  headline: string | null;
  /** The scale it ran at, when the notebook has a `scale` parameter. */
  scale: string | null;
  /** The parameters given (those that override the defaults). */
  parameters: Record<string, unknown>;
  /** The backend the notebook reported in its provenance footer, if any. */
  backend: string | null;
  /** Static figure images: `rendered`, `skipped` (no browser) or `none` (no figures). */
  staticImages: "rendered" | "skipped" | "none";
  /** The browser check of the HTML report, when a browser was available. */
  check: PageCheck | null;
}

/** Options of {@linkcode runReports}. */
export interface RunReportsOptions {
  /** Folder of the notebooks that `names` name (default: the project's `notebooks/`). */
  notebookDir?: string;
  /**
   * Folder of the reports, for every notebook run. Default: the project's
   * `reports/` for the notebooks of `notebookDir`, and a `reports/` folder
   * beside any other notebook (one given by its path). With `notebookDir`
   * given, `outDir` is also that folder's home: its index lists every
   * notebook of `notebookDir`, as the project's `reports/` lists the
   * project's. Another folder's index lists the reports rendered into it.
   */
  outDir?: string;
  /** Backend for the kernels (sets `TOKENLAB_BACKEND` for them). */
  backend?: string;
  /** Seconds a single cell may run (default 1800). */
  cellTimeout?: number;
  /** The scale, for notebooks with a `scale` parameter. */
  scale?: string;
  /** `key=value` parameters (applied to every notebook run). */
  params?: readonly string[];
  /** Parameters from a JSON file (an object of name: value). */
  paramsFile?: string;
  /** Recompute cached experiments (`TOKENLAB_REFRESH=1`). */
  refresh?: boolean;
  /** Write every experiment's result into the frozen store (`TOKENLAB_FREEZE=1`). */
  freeze?: boolean;
  /** The Jupyter kernel (default `deno`). */
  kernel?: string;
  /** Use a headless browser for static figures and the HTML check when one is found (default true). */
  browser?: boolean;
  /** Called when a notebook starts and ends. */
  progress?: (line: string) => void;
}
