/**
 * Executing notebooks headlessly into reports: each notebook in `notebooks/`
 * gets its parameters injected (papermill's way: a cell tagged
 * `injected-parameters` after the cell tagged `parameters`), runs with the
 * Deno Jupyter kernel through nbclient, and becomes `reports/<name>.html`
 * (self-contained), `reports/<name>.md` (figures in `<name>_files/`) and the
 * executed `reports/<name>.ipynb`. `reports/index.html` and
 * `reports/README.md` list every report (`index_page.ts`).
 *
 * Everything is checked before anything runs (notebooks are valid JSON,
 * names and parameters exist and have the right types). A report's files
 * are written into a staging folder and moved into place only when all of
 * them are complete; a notebook that could not run at all leaves the
 * existing report untouched. A failing cell fails the run, after the
 * partial report (marked failed) is written.
 *
 * @module
 */

import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { UNFROZEN_SCALES } from "./cache.ts";
import {
  Browser,
  findBrowser,
  type PageCheck,
  plotlyScript,
} from "./browser.ts";
import { type Notebook, readNotebook, serializeNotebook } from "./notebook.ts";
import {
  findParameterCell,
  injectParameters,
  ParameterError,
  type ParameterSpec,
  readParameterFile,
  resolveParameters,
} from "./params/mod.ts";
import { HEADLINE_MIME, PROVENANCE_MIME } from "./provenance.ts";
import {
  collectFigures,
  originalCellNumber,
  renderHtml,
  renderMarkdown,
  type ReportMeta,
} from "./render.ts";
import { writeIndex } from "./index_page.ts";
import { TokenlabError } from "../errors.ts";

export { reportGroup } from "./index_page.ts";

/** The project's notebook folder. */
export const NOTEBOOK_DIR: string = fileURLToPath(
  new URL("../../notebooks/", import.meta.url),
);
/** The project's report folder. */
export const REPORT_DIR: string = fileURLToPath(
  new URL("../../reports/", import.meta.url),
);
const EXECUTE_PY = fileURLToPath(new URL("./_execute.py", import.meta.url));

/** The scales a report can run at. */
export const SCALES = ["tiny", "smoke", "full"] as const;

/** An error that stops a report run before any notebook executes. */
export class ReportError extends TokenlabError {
  /** Creates the error with its message. */
  constructor(message: string) {
    super(message);
  }
}

/** The outcome of executing one notebook. */
export interface ReportResult {
  /** Notebook name (file stem). */
  name: string;
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
  /** Folder of the notebooks (default: the project's `notebooks/`). */
  notebookDir?: string;
  /** Folder of the reports (default: the project's `reports/`). */
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

/** The notebooks (file stems) in a folder, sorted, `quickstart` first. */
export async function listNotebooks(dir: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isFile && entry.name.endsWith(".ipynb")) {
        names.push(entry.name.slice(0, -".ipynb".length));
      }
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new ReportError(`notebook folder ${dir} does not exist`);
    }
    throw e;
  }
  return names.sort((
    a,
    b,
  ) => (a === "quickstart"
    ? -1
    : b === "quickstart"
    ? 1
    : a < b
    ? -1
    : a > b
    ? 1
    : 0)
  );
}

let python: Promise<string> | null = null;

/**
 * The Python that can import nbclient. Debian's packages live under
 * /usr/bin/python3, which a pyenv or venv `python3` on PATH may shadow.
 */
export function findPython(): Promise<string> {
  python ??= (async () => {
    const tried: string[] = [];
    for (const candidate of ["/usr/bin/python3", "python3", "python"]) {
      try {
        const out = await new Deno.Command(candidate, {
          args: ["-c", "import nbclient, nbformat, jupyter_client"],
          stdout: "null",
          stderr: "null",
        }).output();
        if (out.success) return candidate;
        tried.push(`${candidate} (cannot import nbclient)`);
      } catch {
        tried.push(`${candidate} (not found)`);
      }
    }
    throw new ReportError(
      `no Python with nbclient: tried ${
        tried.join(", ")
      }. Run \`deno task setup\` (it installs Debian's python3-nbclient).`,
    );
  })();
  return python;
}

/** A notebook ready to run: read, validated, parameters resolved. */
interface Planned {
  name: string;
  notebook: Notebook;
  injected: Notebook;
  injectedCell: number | null;
  parameters: Record<string, unknown>;
  scale: string | null;
}

/** Reads, validates and parameterises every chosen notebook; throws before anything runs. */
async function plan(
  chosen: readonly string[],
  notebookDir: string,
  options: RunReportsOptions,
): Promise<Planned[]> {
  if (
    options.scale !== undefined &&
    !(SCALES as readonly string[]).includes(options.scale)
  ) {
    throw new ReportError(
      `--scale expects one of ${SCALES.join(", ")}, found "${options.scale}"`,
    );
  }
  const fileValues = options.paramsFile !== undefined
    ? await readParameterFile(options.paramsFile)
    : {};
  const planned: Planned[] = [];
  let anyScale = false;
  for (const name of chosen) {
    const notebook = await readNotebook(join(notebookDir, `${name}.ipynb`));
    let found: ReturnType<typeof findParameterCell>;
    try {
      found = findParameterCell(notebook);
    } catch (e) {
      if (!(e instanceof ParameterError)) throw e;
      throw new ParameterError(`notebook ${name}: ${e.message}`);
    }
    const specs: readonly ParameterSpec[] = found?.specs ?? [];
    const scaleSpec = specs.find((s) => s.name === "scale");
    anyScale ||= scaleSpec !== undefined;
    const pairs = [...(options.params ?? [])];
    if (options.scale !== undefined && scaleSpec) {
      pairs.push(`scale=${options.scale}`);
    }
    const given = pairs.length > 0 || Object.keys(fileValues).length > 0;
    if (given && !found) {
      throw new ReportError(
        `notebook ${name} has no parameters (no code cell tagged "parameters"), so --param/--params cannot apply to it; run it on its own, or tag a cell of TypeScript consts "parameters" to give it some`,
      );
    }
    const parameters = found
      ? resolveParameters(specs, { pairs, values: fileValues }, name)
      : {};
    const injected = injectParameters(notebook, parameters);
    const injectedCell = Object.keys(parameters).length > 0
      ? injected.cells.findIndex((c) =>
        (c.metadata?.tags as string[] | undefined)?.includes(
          "injected-parameters",
        )
      )
      : null;
    const scale = scaleSpec
      ? String(parameters.scale ?? scaleSpec.default)
      : null;
    planned.push({ name, notebook, injected, injectedCell, parameters, scale });
  }
  if (options.scale !== undefined && !anyScale) {
    throw new ReportError(
      `--scale ${options.scale}: none of ${
        chosen.join(", ")
      } has a "scale" parameter, so the scale would change nothing`,
    );
  }
  const unfrozen = planned.filter((p) =>
    p.scale && UNFROZEN_SCALES.has(p.scale)
  );
  if (options.freeze && unfrozen.length > 0) {
    throw new ReportError(
      `--freeze stores full-scale results for CI to re-render; ${
        unfrozen.map((p) => `${p.name} (${p.scale})`).join(", ")
      } would run at a smaller scale. Add --scale full.`,
    );
  }
  return planned;
}

interface Executed {
  status: "ok" | "failed";
  kind: "error" | "timeout" | "dead" | "fatal" | null;
  cell: number | null;
  error: string;
  written: boolean;
}

async function execute(
  py: string,
  input: string,
  output: string,
  cwd: string,
  kernel: string,
  timeout: number,
  env: Record<string, string>,
): Promise<Executed> {
  const out = await new Deno.Command(py, {
    args: [
      EXECUTE_PY,
      input,
      output,
      "--cwd",
      cwd,
      "--kernel",
      kernel,
      "--timeout",
      String(timeout),
    ],
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout).trim();
  const stderr = new TextDecoder().decode(out.stderr).trim();
  try {
    const parsed = JSON.parse(stdout.split("\n").at(-1) ?? "");
    return {
      status: parsed.status === "ok" && out.code === 0 ? "ok" : "failed",
      kind: parsed.kind ?? null,
      cell: typeof parsed.cell === "number" ? parsed.cell : null,
      error: parsed.error ?? "",
      written: parsed.written === true,
    };
  } catch {
    return {
      status: "failed",
      kind: "fatal",
      cell: null,
      error: `the executor printed no result (exit ${out.code}): ${
        stderr.split("\n").slice(-5).join("\n")
      }`,
      written: false,
    };
  }
}

/** The tokenlab bundles a notebook left behind: headline and provenance. */
function readMarkers(
  nb: Notebook,
): { headline: string | null; backend: string | null } {
  let headline: string | null = null, backend: string | null = null;
  for (const cell of nb.cells) {
    for (
      const o of (cell.outputs ?? []) as { data?: Record<string, unknown> }[]
    ) {
      const h = o.data?.[HEADLINE_MIME] as { text?: string } | undefined;
      if (h?.text) headline = h.text;
      const p = o.data?.[PROVENANCE_MIME] as { backend?: string } | undefined;
      if (p?.backend) backend = p.backend;
    }
  }
  return { headline, backend };
}

function failureMessage(
  name: string,
  run: Executed,
  cellNumber: number | "injected" | null,
  timeout: number,
): string {
  const where = cellNumber === null
    ? ""
    : cellNumber === "injected"
    ? " in the injected parameters cell"
    : ` at cell ${cellNumber}`;
  switch (run.kind) {
    case "timeout":
      return `${name}: cell ${cellNumber} did not finish within the ${timeout} s cell timeout; it was stopped. Raise the limit with --cell-timeout SECONDS, or make the cell faster (a smaller --scale).`;
    case "dead":
      return `${name}: the kernel died${where} (out of memory, or a crash in native code): ${run.error}`;
    case "fatal":
      return `${name}: could not run: ${run.error}`;
    default:
      return `${name}: failed${where}: ${run.error}`;
  }
}

/** Moves a finished report's files from the staging folder into place. */
async function publish(
  staging: string,
  outDir: string,
  name: string,
  hasFiles: boolean,
): Promise<void> {
  const filesDir = join(outDir, `${name}_files`);
  await Deno.remove(filesDir, { recursive: true }).catch((e) => {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  });
  if (hasFiles) await Deno.rename(join(staging, `${name}_files`), filesDir);
  for (const ext of ["md", "ipynb", "html"]) {
    await Deno.rename(
      join(staging, `${name}.${ext}`),
      join(outDir, `${name}.${ext}`),
    );
  }
}

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
  const stems = names.map((n) => basename(n).replace(/\.ipynb$/, ""));
  const unknown = stems.filter((n) => !available.includes(n));
  if (unknown.length > 0) {
    throw new ReportError(
      `unknown notebook${unknown.length > 1 ? "s" : ""} ${
        unknown.join(", ")
      }: expected one of ${available.join(", ") || "(none)"} in ${notebookDir}`,
    );
  }
  const chosen = stems.length > 0 ? stems : available;
  if (chosen.length === 0) {
    throw new ReportError(`no notebooks in ${notebookDir}`);
  }
  const planned = await plan(chosen, notebookDir, options);
  const py = await findPython();
  await Deno.mkdir(outDir, { recursive: true });

  let browser: Browser | null = null;
  let browserProblem: string | null = null;
  const wantBrowser = options.browser ?? true;
  const getBrowser = async (): Promise<Browser | null> => {
    if (browser || browserProblem) return browser;
    if (!wantBrowser) {
      browserProblem = "the browser was turned off (--no-browser)";
      return null;
    }
    const exe = await findBrowser();
    if (exe === null) {
      browserProblem =
        "no headless Chromium found (run `deno task setup`, which installs Debian's chromium)";
      return null;
    }
    try {
      browser = await Browser.launch({ executable: exe });
    } catch (e) {
      browserProblem = `Chromium did not start: ${(e as Error).message}`;
    }
    return browser;
  };

  const results: ReportResult[] = [];
  try {
    for (const p of planned) {
      results.push(await runOne(p));
    }
  } finally {
    await (browser as Browser | null)?.close();
  }
  await writeIndex(outDir, results, available);
  return results;

  async function runOne(p: Planned): Promise<ReportResult> {
    const { name } = p;
    progress(`report ${name}: running${p.scale ? ` (${p.scale} scale)` : ""}`);
    const t0 = performance.now();
    const started = Date.now();
    const staging = await Deno.makeTempDir({
      dir: outDir,
      // The name is only a hint for whoever looks into the folder: a name
      // with characters some file systems refuse must not stop the run.
      prefix: `.staging-${name.replace(/[^\w.-]/g, "_")}-`,
    });
    try {
      const input = join(staging, "input.ipynb");
      await Deno.writeTextFile(input, serializeNotebook(p.injected));
      const env: Record<string, string> = {
        TOKENLAB_REPORT: name,
        TOKENLAB_REPORT_STARTED: String(started),
        TOKENLAB_PARAMS: JSON.stringify(p.parameters),
        TOKENLAB_SCALE: p.scale ?? "",
        TOKENLAB_REFRESH: options.refresh ? "1" : "",
        TOKENLAB_FREEZE: options.freeze ? "1" : "",
      };
      if (options.backend !== undefined) env.TOKENLAB_BACKEND = options.backend;
      const executedPath = join(staging, `${name}.ipynb`);
      const run = await execute(
        py,
        input,
        executedPath,
        notebookDir,
        options.kernel ?? "deno",
        timeout,
        env,
      );
      const base: ReportResult = {
        name,
        status: "failed",
        cell: null,
        error: "",
        seconds: 0,
        html: null,
        md: null,
        ipynb: null,
        headline: null,
        scale: p.scale,
        parameters: p.parameters,
        backend: null,
        staticImages: "none",
        check: null,
      };
      const cellNumber = run.cell === null
        ? null
        : originalCellNumber(run.cell, p.injectedCell);
      const failure = run.status === "failed"
        ? failureMessage(name, run, cellNumber, timeout)
        : null;
      if (!run.written) {
        base.seconds = (performance.now() - t0) / 1000;
        base.error = failure ?? "";
        progress(
          `report ${name}: FAILED: ${base.error} (existing report left as it was)`,
        );
        return base;
      }
      const executed = await readNotebook(executedPath);
      executed.metadata.tokenlab = {
        status: run.status,
        ...(run.status === "failed"
          ? { cell: cellNumber, error: failure }
          : {}),
        parameters: p.parameters,
        scale: p.scale,
      };

      // Static images of the plotly figures, for the Markdown report and
      // the executed notebook (image/png beside the plotly MIME type).
      const figures = collectFigures(executed);
      const images = new Map<string, Uint8Array>();
      let staticNote: string | null = null;
      let staticImages: ReportResult["staticImages"] = "none";
      if (figures.length > 0) {
        const b = await getBrowser();
        if (b) {
          try {
            const pngs = await b.renderPlotly(figures.map((f) => f.figure), {
              format: "png",
            });
            figures.forEach((f, k) => {
              images.set(`${f.cell}:${f.output}`, pngs[k]);
              const out = executed.cells[f.cell].outputs![f.output] as {
                data: Record<string, unknown>;
              };
              out.data["image/png"] = btoa(
                Array.from(pngs[k], (c) => String.fromCharCode(c)).join(""),
              );
            });
            staticImages = "rendered";
          } catch (e) {
            staticNote =
              `Static images were skipped: the browser could not render the figures (${
                (e as Error).message
              }).`;
            staticImages = "skipped";
          }
        } else {
          staticNote =
            `Static images were skipped: ${browserProblem}. The HTML report draws the figures; the Markdown uses each figure's own SVG where it has one.`;
          staticImages = "skipped";
        }
      }
      const seconds = (performance.now() - t0) / 1000;
      const meta: ReportMeta = {
        name,
        status: run.status,
        error: failure,
        failedCell: run.status === "failed" ? run.cell : null,
        injectedCell: p.injectedCell,
        parameters: p.parameters,
        scale: p.scale,
        seconds,
        date: new Date().toISOString(),
        staticNote,
      };
      const plotly = figures.length > 0 ? await plotlyScript() : null;
      const html = renderHtml(executed, meta, plotly);
      const { markdown, files } = renderMarkdown(executed, meta, images);
      await Deno.writeTextFile(join(staging, `${name}.html`), html);
      await Deno.writeTextFile(join(staging, `${name}.md`), markdown);
      await Deno.writeTextFile(executedPath, serializeNotebook(executed));
      if (files.length > 0) {
        await Deno.mkdir(join(staging, `${name}_files`));
        for (const f of files) {
          await Deno.writeFile(join(staging, f.path), f.bytes);
        }
      }

      // Open the page in a real browser: every figure drawn, no console
      // errors, nothing fetched, nothing run but the page's own scripts.
      let check: PageCheck | null = null;
      let checkError = "";
      const b = await getBrowser();
      if (b) {
        try {
          check = await b.checkPage(join(staging, `${name}.html`));
          checkError = pageCheckProblems(name, check);
        } catch (e) {
          // The browser itself failed (crashed, stuck): this report fails,
          // and the next one gets a fresh browser.
          checkError =
            `${name}: the browser check of the HTML report could not finish: ${
              (e as Error).message
            }`;
          browser = null;
          await b.close().catch(() => {});
        }
      }
      await publish(staging, outDir, name, files.length > 0);
      const { headline, backend } = readMarkers(executed);
      const result: ReportResult = {
        ...base,
        status: run.status === "ok" && checkError === "" ? "ok" : "failed",
        cell: typeof cellNumber === "number" ? cellNumber : null,
        error: meta.error ?? checkError,
        seconds,
        html: join(outDir, `${name}.html`),
        md: join(outDir, `${name}.md`),
        ipynb: join(outDir, `${name}.ipynb`),
        headline,
        backend,
        staticImages,
        check,
      };
      progress(
        result.status === "ok"
          ? `report ${name}: ok in ${seconds.toFixed(1)} s -> ${result.html}${
            staticNote ? ` (${staticNote})` : ""
          }`
          : `report ${name}: FAILED after ${
            seconds.toFixed(1)
          } s: ${result.error} (the partial report, marked failed, is in ${result.html})`,
      );
      return result;
    } finally {
      await Deno.remove(staging, { recursive: true }).catch(() => {});
    }
  }
}

/**
 * Why a checked report page fails, as one message, or "" when it passed.
 * Script that is not the report's own (a dialog, a policy violation,
 * console output) is named first: it means an output escaped the sanitiser.
 *
 * @example
 * ```ts
 * import { pageCheckProblems } from "tokenlab/report/run.ts";
 * const check = {
 *   url: "file:///r/x.html", figures: 0, rendered: 0, consoleErrors: [],
 *   consoleMessages: [], pageErrors: [], dialogs: ['alert: "1"'],
 *   cspViolations: [], csp: "default-src 'none'", network: [], ok: false,
 * };
 * console.log(pageCheckProblems("x", check));
 * // x: the HTML report does not work in a browser: script that is not the report's own ran (a dialog opened (alert: "1")); ...
 * ```
 */
export function pageCheckProblems(name: string, check: PageCheck): string {
  const foreign = [
    ...check.dialogs.map((d) => `a dialog opened (${d})`),
    ...check.cspViolations.map((v) => `the page's policy blocked ${v}`),
    ...check.consoleMessages.map((m) => `console output ${m}`),
  ];
  const problems = [
    foreign.length
      ? `script that is not the report's own ran (${
        foreign.join("; ")
      }); an output escaped the sanitiser: look at what the notebook printed`
      : "",
    check.csp === null
      ? "the page has no Content-Security-Policy; expected the meta tag renderHtml writes"
      : "",
    check.rendered < check.figures
      ? `${
        check.figures - check.rendered
      } of ${check.figures} figures did not render`
      : "",
    ...check.pageErrors.map((e) => `page error: ${e}`),
    ...check.consoleErrors.map((e) => `console error: ${e}`),
    ...check.network.map((u) => `network request: ${u}`),
  ].filter(Boolean);
  return problems.length
    ? `${name}: the HTML report does not work in a browser: ${
      problems.join("; ")
    }`
    : "";
}
