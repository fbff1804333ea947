/**
 * Rendering one planned notebook into its report: the run of its kernel
 * into a staging folder, the static images of its figures, the HTML and
 * Markdown reports and the executed copy, the browser check of the page,
 * and the move of the finished files into the report folder.
 *
 * @module
 */

import { join, relative, sep } from "node:path";
import { type PageCheck, plotlyScript } from "./browser.ts";
import type { BrowserSession } from "./browser_session.ts";
import { execute, failureMessage } from "./execute.ts";
import { OWN_GROUP, reportGroup } from "./index_page.ts";
import { type Notebook, readNotebook, serializeNotebook } from "./notebook.ts";
import { pageCheckProblems } from "./page_check.ts";
import type { Planned } from "./plan.ts";
import { HEADLINE_MIME, PROVENANCE_MIME } from "./provenance.ts";
import {
  collectFigures,
  originalCellNumber,
  renderHtml,
  renderMarkdown,
  type ReportMeta,
} from "./render.ts";
import type { ReportResult, RunReportsOptions } from "./run_types.ts";
import { PROJECT_ROOT } from "./targets.ts";

/** What every notebook of one report run shares. */
export interface NotebookRunContext {
  /** The Python that runs the executor (`findPython`). */
  py: string;
  /** Seconds a single cell may run. */
  timeout: number;
  /** Called when the notebook starts and ends. */
  progress: (line: string) => void;
  /** The run's browser, for static images and the page check. */
  browsers: BrowserSession;
  /** The run's options (backend, kernel, refresh, freeze, notebookDir). */
  options: RunReportsOptions;
}

/**
 * Executes one planned notebook and writes its report (HTML, Markdown with
 * its files, executed notebook) into its report folder, also when a cell
 * failed (marked failed); a notebook that could not run at all leaves the
 * existing report untouched.
 */
export async function runNotebook(
  p: Planned,
  ctx: NotebookRunContext,
): Promise<ReportResult> {
  const { py, timeout, progress, browsers, options } = ctx;
  const { name } = p;
  const { outDir, cwd } = p.target;
  progress(
    `report ${name}: running${p.scale ? ` (${p.scale} scale)` : ""}${
      p.target.member
        ? ""
        : ` from ${p.target.path}${
          cwd === PROJECT_ROOT
            ? ` in the project's root (no deno.json at or above the notebook's folder, so the project's, which maps "tokenlab")`
            : ""
        }`
    }`,
  );
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
      cwd,
      options.kernel ?? "deno",
      timeout,
      env,
    );
    const base: ReportResult = {
      name,
      notebook: p.target.path,
      group: p.target.member ? reportGroup(name) : OWN_GROUP,
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
      ...(run.status === "failed" ? { cell: cellNumber, error: failure } : {}),
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
      const b = await browsers.get();
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
          `Static images were skipped: ${browsers.problem}. The HTML report draws the figures; the Markdown uses each figure's own SVG where it has one.`;
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
      source: p.target.member && options.notebookDir === undefined
        ? `notebooks/${name}.ipynb`
        : relative(outDir, p.target.path).split(sep).join("/"),
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
    const b = await browsers.get();
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
        await browsers.discard(b);
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
