/**
 * Executed notebooks into reports: a self-contained HTML page (plotly.js
 * inlined once when the report has figures, nothing fetched from the
 * network) and Markdown with the figures as image files beside it.
 *
 * Outputs are rendered by MIME type, richest first: plotly figures as live
 * plotly charts (HTML) or static images (Markdown), the tokenlab bundles'
 * own HTML or Markdown, images, then text. Cells after a failing cell are
 * shown as not run.
 *
 * Nothing a notebook printed can run in the reader's browser: every piece of
 * HTML (outputs, rendered Markdown, prose cells) goes through the report's
 * sanitiser (sanitize.ts), every SVG through its SVG policy (also the files
 * written beside the Markdown report), raster images are taken only as
 * strict base64 (anything else is a note, never markup), the page carries a
 * Content-Security-Policy that
 * allows only its own scripts by hash (csp.ts), and in Markdown the values
 * from data, parameters and errors are escaped and notebook Markdown is
 * cleaned of script and unsafe links (markdown_escape.ts).
 *
 * @module
 */

import { marked } from "marked";
import { STATIC_FALLBACK_CLASS } from "../view/bundle.ts";
import { escapeXml } from "../view/escape.ts";
import { toBase64 } from "../view/data_uri.ts";
import { cellSource, type Notebook, type NotebookCell } from "./notebook.ts";
import { inlineText, reportCsp } from "./csp.ts";
import { escapeMarkdown, sanitizeMarkdown } from "./markdown_escape.ts";
import { sanitizeHtml, sanitizeSvg, strictBase64 } from "./sanitize.ts";

/** The plotly MIME type. */
export const PLOTLY_MIME = "application/vnd.plotly.v1+json";

/** What a report page says about its run. */
export interface ReportMeta {
  /** The notebook name. */
  name: string;
  /** `ok`, or `failed`. */
  status: "ok" | "failed";
  /** The failure, as one message (names the cell). */
  error: string | null;
  /** Index (0-based, in the executed notebook) of the failing cell. */
  failedCell: number | null;
  /** Index of the injected parameters cell, if any. */
  injectedCell: number | null;
  /** Parameters given to this run (only those that differ from the defaults). */
  parameters: Record<string, unknown>;
  /** The scale, when the notebook has one. */
  scale: string | null;
  /** Wall time of the run in seconds. */
  seconds: number;
  /** When the run ended (ISO 8601). */
  date: string;
  /** A note on static images (e.g. why they were skipped), or null. */
  staticNote: string | null;
  /** The notebook to edit, as the Markdown's first line names it (default `notebooks/<name>.ipynb`). */
  source?: string;
}

/** A plotly figure in an executed notebook. */
export interface FigureRef {
  /** Cell index. */
  cell: number;
  /** Output index within the cell. */
  output: number;
  /** The figure. */
  figure: { data?: unknown; layout?: Record<string, unknown> };
  /** A title for alt text and file names. */
  title: string;
}

type Output = Record<string, unknown> & {
  output_type: string;
  data?: Record<string, unknown>;
};

function mimeText(v: unknown): string {
  if (Array.isArray(v)) return v.join("");
  return typeof v === "string" ? v : JSON.stringify(v);
}

// deno-lint-ignore no-control-regex
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;
function stripAnsi(s: string): string {
  return s.replace(ANSI, "");
}

/** The raster image types an output may carry, in the order they are chosen. */
const RASTER_MIME = ["image/png", "image/jpeg", "image/gif"] as const;
type RasterMime = typeof RASTER_MIME[number];

/**
 * An output's raster image: its MIME type and strict base64 (null when the
 * value is not base64, so it is never put into a page or decoded).
 */
function rasterOf(
  data: Record<string, unknown>,
): { mime: RasterMime; base64: string | null } | null {
  const mime = RASTER_MIME.find((m) => m in data);
  if (mime === undefined) return null;
  return { mime, base64: strictBase64(mimeText(data[mime])) };
}

/** The note shown in place of an image output that cannot be shown. */
function imageNote(mime: string, why: string): string {
  return `${mime} output not shown: ${why}`;
}

const NOT_BASE64 = "its data is not base64";
const NO_SVG = "nothing drawable was left after removing unsafe parts";

/** An error output's traceback (or name and message), without colour codes. */
function errorText(o: Output): string {
  return stripAnsi(
    Array.isArray(o.traceback) && o.traceback.length
      ? (o.traceback as string[]).join("\n")
      : `${o.ename}: ${o.evalue}`,
  );
}

/**
 * What an output holds, read the same way by both formats: a stream's
 * text, an error's text, a MIME bundle, or nothing to show.
 */
type Shown =
  | { kind: "stream"; text: string; stderr: boolean }
  | { kind: "error"; text: string }
  | { kind: "data"; data: Record<string, unknown> }
  | { kind: "none" };

/**
 * Whether an output is the Deno kernel's display of a promise that resolved
 * to nothing (`Promise { undefined }`, what a cell ending in an un-awaited
 * `Deno.jupyter.display(...)` shows): noise, not a result.
 */
function isUndefinedPromise(data: Record<string, unknown>): boolean {
  const keys = Object.keys(data);
  return keys.length === 1 && keys[0] === "text/plain" &&
    stripAnsi(mimeText(data["text/plain"])).trim() === "Promise { undefined }";
}

function shown(o: Output): Shown {
  switch (o.output_type) {
    case "stream":
      return {
        kind: "stream",
        text: stripAnsi(mimeText(o.text)),
        stderr: o.name === "stderr",
      };
    case "error":
      return { kind: "error", text: errorText(o) };
    case "execute_result":
    case "display_data":
      return isUndefinedPromise(o.data ?? {})
        ? { kind: "none" }
        : { kind: "data", data: o.data ?? {} };
    default:
      return { kind: "none" };
  }
}

function outputsOf(cell: NotebookCell): Output[] {
  return (cell.outputs ?? []) as Output[];
}

function figureTitle(fig: { layout?: Record<string, unknown> }): string {
  const t = fig.layout?.title;
  const text = typeof t === "string"
    ? t
    : (t && typeof t === "object" && typeof (t as { text?: unknown }).text ===
          "string")
    ? (t as { text: string }).text
    : "";
  return text.replace(/<[^>]*>/g, "").trim();
}

/**
 * The height in pixels that a report page keeps free at the top of every
 * figure for plotly's toolbar (the modebar: measured in Chromium, 2 px
 * from the top and 27 px tall, at the top right), with a gap under it.
 */
export const MODEBAR_BAND = 40;

/** Plotly's default top margin and title font size, in pixels. */
const PLOTLY_TOP_MARGIN = 100;
const PLOTLY_TITLE_SIZE = 17;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isSize(v: unknown): v is number {
  return typeof v === "number" && Number.isFinite(v) && v >= 0;
}

/**
 * A figure as a report page draws it: the top margin grows by
 * {@linkcode MODEBAR_BAND} (and a set height with it, so the plot keeps
 * its size), and the title is placed under that band (`yref` container,
 * top-anchored, padded by the band and, for a title of several lines, by
 * the half line per line that plotly shifts it up), with the margin tall
 * enough for all its lines. Plotly's toolbar then covers no title, however long, wherever
 * it is centred. Anything else in the figure is kept as it is; what is not
 * a figure is returned unchanged.
 *
 * @example
 * ```ts
 * import { withModebarRoom } from "tokenlab/report/render.ts";
 * const fig = withModebarRoom({
 *   data: [],
 *   layout: { title: { text: "a long title" }, margin: { t: 50 }, height: 400 },
 * }) as { layout: Record<string, unknown> };
 * console.log(fig.layout.margin, fig.layout.height); // { t: 90 } 440
 * ```
 */
export function withModebarRoom(figure: unknown): unknown {
  if (!isRecord(figure)) return figure;
  const layout = isRecord(figure.layout) ? figure.layout : {};
  const margin = isRecord(layout.margin) ? layout.margin : {};
  const top = isSize(margin.t) ? margin.t : PLOTLY_TOP_MARGIN;
  const title = typeof layout.title === "string"
    ? { text: layout.title }
    : isRecord(layout.title)
    ? layout.title
    : null;
  const text = typeof title?.text === "string" ? title.text : "";
  let newTop = top + MODEBAR_BAND;
  const out: Record<string, unknown> = { ...layout };
  if (title !== null && text.trim() !== "") {
    const font = isRecord(title.font) ? title.font : {};
    const size = isSize(font.size) && font.size > 0
      ? font.size
      : PLOTLY_TITLE_SIZE;
    // Plotly centres a title of several lines on its anchor line by line
    // (half a line up for each line after the first), so its padding grows
    // by that much to keep the first line under the band.
    const lines = text.split(/<br\s*\/?>/i).length;
    const lineHeight = size * 1.3;
    const pad = MODEBAR_BAND + Math.ceil((lines - 1) * lineHeight / 2);
    newTop = Math.max(
      newTop,
      MODEBAR_BAND + Math.ceil(lines * lineHeight) + 12,
    );
    out.title = {
      ...title,
      yref: "container",
      y: 1,
      yanchor: "top",
      pad: { ...(isRecord(title.pad) ? title.pad : {}), t: pad },
    };
  }
  out.margin = { ...margin, t: newTop };
  if (isSize(layout.height) && layout.height > 0) {
    out.height = layout.height + (newTop - top);
  }
  return { ...figure, layout: out };
}

/** Every plotly figure of an executed notebook, in order. */
export function collectFigures(nb: Notebook): FigureRef[] {
  const figures: FigureRef[] = [];
  nb.cells.forEach((cell, c) => {
    outputsOf(cell).forEach((o, k) => {
      const fig = o.data?.[PLOTLY_MIME];
      if (fig && typeof fig === "object") {
        const f = fig as FigureRef["figure"];
        figures.push({
          cell: c,
          output: k,
          figure: f,
          title: figureTitle(f) || `figure ${figures.length + 1}`,
        });
      }
    });
  });
  return figures;
}

/** The notebook's title: its first Markdown heading, else `fallback`. */
export function notebookTitle(nb: Notebook, fallback: string): string {
  for (const cell of nb.cells) {
    if (cell.cell_type !== "markdown") continue;
    const m = cellSource(cell).match(/^#{1,2}\s+(.+)$/m);
    if (m) return m[1].replace(/[*_`]/g, "").trim();
  }
  return fallback;
}

/** The original (1-based) number of executed cell `index`, given the injected cell. */
export function originalCellNumber(
  index: number,
  injected: number | null,
): number | "injected" {
  if (injected === null || index < injected) return index + 1;
  if (index === injected) return "injected";
  return index;
}

/** Drops a figure bundle's stand-ins for the plotly figure a report draws itself. */
function removeStaticFallback(html: string): string {
  return html
    .replace(new RegExp(`<img class="${STATIC_FALLBACK_CLASS}"[^>]*>`, "g"), "")
    .replace(/<p class="tokenlab-plot-fallback">[\s\S]*?<\/p>/g, "");
}

function fmtSeconds(s: number): string {
  return s < 90 ? `${s.toFixed(1)} s` : `${(s / 60).toFixed(1)} min`;
}

function paramText(p: Record<string, unknown>): string {
  const e = Object.entries(p);
  return e.length
    ? e.map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(", ")
    : "defaults";
}

/** One line of facts about the run, for both formats. */
function runLine(meta: ReportMeta): string {
  return [
    meta.status === "ok" ? "ok" : "FAILED",
    `${fmtSeconds(meta.seconds)}`,
    meta.scale ? `scale ${meta.scale}` : null,
    `parameters: ${paramText(meta.parameters)}`,
    `rendered ${meta.date.slice(0, 16).replace("T", " ")} UTC`,
  ].filter((x) => x !== null).join(" · ");
}

// ---------------------------------------------------------------------------
// HTML

const CSS = `
:root{--fg:#1d2329;--muted:#5b6670;--line:#d9dee3;--bg:#fff;--code:#f5f7f9;--bad:#b3261e;--good:#1e6b34}
*{box-sizing:border-box}
body{margin:0;font:15px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
main{max-width:1060px;margin:0 auto;padding:1.5rem 1.25rem 4rem}
header.run{border-bottom:1px solid var(--line);margin-bottom:1rem;padding-bottom:.5rem;color:var(--muted);font-size:13px}
header.run .status-ok{color:var(--good);font-weight:600}
header.run .status-failed{color:var(--bad);font-weight:600}
.banner{border:1px solid var(--bad);background:#fdecea;color:var(--bad);padding:.6rem .8rem;border-radius:4px;margin:1rem 0;white-space:pre-wrap}
.note{border:1px solid var(--line);background:var(--code);padding:.4rem .7rem;border-radius:4px;margin:.5rem 0;font-size:13px;color:var(--muted)}
.cell{margin:.9rem 0}
.cell .label{font:12px ui-monospace,monospace;color:var(--muted)}
pre{background:var(--code);border:1px solid var(--line);border-radius:4px;padding:.55rem .75rem;overflow-x:auto;white-space:pre-wrap;overflow-wrap:anywhere;font:13px/1.45 ui-monospace,SFMono-Regular,Menlo,monospace;margin:.3rem 0}
pre.source{border-left:3px solid #8aa4bf}
pre.stderr{background:#fff8e6}
pre.error{background:#fdecea;color:var(--bad)}
.cell.failed pre.source{border-left-color:var(--bad)}
.cell.not-run{opacity:.5}
.output{margin:.3rem 0;overflow-x:auto}
.output img{max-width:100%}
table{border-collapse:collapse;margin:.5rem 0;font-size:14px}
th,td{border:1px solid var(--line);padding:.25rem .55rem;text-align:left;vertical-align:top}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
caption{caption-side:top;text-align:left;font-weight:600;padding:.3rem 0}
.tokenlab-plotly{width:100%;min-height:360px}
#hide-code:checked~main .source,#hide-code:checked~main .cell .label{display:none}
label.toggle{position:fixed;top:.5rem;right:.75rem;font-size:12px;color:var(--muted);background:var(--bg);padding:.15rem .4rem;border:1px solid var(--line);border-radius:4px}
footer.tokenlab-provenance table{font-size:12px;color:var(--muted)}
`;

/**
 * The HTML page of an executed notebook: self-contained (styles inline,
 * images as data URIs, plotly.js inlined once when `plotlyJs` is given and
 * the report has figures).
 */
export function renderHtml(
  nb: Notebook,
  meta: ReportMeta,
  plotlyJs: string | null,
): string {
  const title = notebookTitle(nb, meta.name);
  const body: string[] = [];
  const figures: string[] = [];
  let figureCount = 0;
  const afterFailure = (i: number) =>
    meta.failedCell !== null && i > meta.failedCell;

  nb.cells.forEach((cell, i) => {
    const src = cellSource(cell);
    if (cell.cell_type === "markdown") {
      body.push(
        `<section class="cell markdown">${markdownToHtml(src)}</section>`,
      );
      return;
    }
    if (cell.cell_type === "raw") return;
    const num = originalCellNumber(i, meta.injectedCell);
    const label = num === "injected" ? "injected parameters" : `cell ${num}`;
    const classes = ["cell", "code"];
    if (meta.failedCell === i) classes.push("failed");
    if (afterFailure(i)) classes.push("not-run");
    const parts = [
      `<div class="label">${label}${afterFailure(i) ? " · not run" : ""}</div>`,
      `<pre class="source"><code>${escapeXml(src)}</code></pre>`,
    ];
    for (const o of outputsOf(cell)) {
      parts.push(htmlOutput(o, () => {
        const id = `tokenlab-fig-${++figureCount}`;
        figures.push(id);
        return id;
      }));
    }
    body.push(
      `<section class="${classes.join(" ")}">${parts.join("")}</section>`,
    );
  });

  const banner = meta.status === "failed"
    ? `<div class="banner" role="alert"><strong>This report failed.</strong> ${
      escapeXml(meta.error ?? "")
    }</div>`
    : "";
  const note = meta.staticNote
    ? `<div class="note">${escapeXml(meta.staticNote)}</div>`
    : "";
  // The page's own scripts, each allowed by the policy through its hash.
  const running: string[] = [];
  if (figures.length > 0) {
    if (plotlyJs === null) {
      throw new Error(
        "renderHtml: the report has plotly figures but no plotly.js was given",
      );
    }
    // The figure data sits in JSON script elements (data, never run); one
    // loop draws them all, by the ids the page gave them.
    running.push(
      inlineText(plotlyJs.replace(/<\/script/gi, "<\\/script")),
      `
for (const id of ${JSON.stringify(figures)}) {
  const fig = JSON.parse(document.getElementById(id + "-data").textContent);
  const layout = Object.assign({autosize: true}, fig.layout || {});
  Plotly.newPlot(document.getElementById(id), fig.data || [], layout, Object.assign({responsive: true, displaylogo: false}, fig.config || {}));
}
`,
    );
  }
  const scripts = running.map((js) => `<script>${js}</script>`).join("\n");
  const csp = reportCsp({
    scripts: running,
    styles: [CSS],
    inlineStyleElements: running.length > 0,
  });
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${escapeXml(csp)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="tokenlab report">
<meta name="tokenlab-status" content="${meta.status}">
<title>${escapeXml(title)}${meta.status === "failed" ? " (FAILED)" : ""}</title>
<style>${CSS}</style>
</head>
<body>
<input type="checkbox" id="hide-code" hidden><label class="toggle" for="hide-code">hide code</label>
<main>
<header class="run"><span class="status-${meta.status}">${
    meta.status === "ok" ? "ok" : "FAILED"
  }</span> · ${escapeXml(meta.name)} · ${
    escapeXml(runLine(meta).split(" · ").slice(1).join(" · "))
  }</header>
${banner}${note}
${body.join("\n")}
</main>
${scripts}
</body>
</html>
`;
}

/** Markdown (a prose cell, an output) as sanitised HTML. */
function markdownToHtml(markdown: string): string {
  return sanitizeHtml(marked.parse(markdown, { async: false }) as string);
}

function htmlOutput(o: Output, newFigureId: () => string): string {
  const out = shown(o);
  if (out.kind === "stream") {
    return `<pre class="${out.stderr ? "stderr" : "stdout"}">${
      escapeXml(out.text)
    }</pre>`;
  }
  if (out.kind === "error") {
    return `<pre class="error">${escapeXml(out.text)}</pre>`;
  }
  if (out.kind === "none") return "";
  const data = out.data;
  if (data[PLOTLY_MIME] && typeof data[PLOTLY_MIME] === "object") {
    const id = newFigureId();
    const json = JSON.stringify(withModebarRoom(data[PLOTLY_MIME])).replace(
      /</g,
      "\\u003c",
    );
    const after = "text/html" in data
      ? sanitizeHtml(removeStaticFallback(mimeText(data["text/html"])))
      : "";
    return `<div class="output"><div class="tokenlab-plotly" id="${id}"></div><script type="application/json" id="${id}-data">${json}</script>${after}</div>`;
  }
  if ("text/html" in data) {
    return `<div class="output">${
      sanitizeHtml(mimeText(data["text/html"]))
    }</div>`;
  }
  const raster = rasterOf(data);
  if (raster) {
    // Only strict base64 goes into the attribute: nothing can close it.
    return raster.base64 === null
      ? `<div class="output note">${
        escapeXml(imageNote(raster.mime, NOT_BASE64))
      }</div>`
      : `<div class="output"><img alt="figure" src="data:${raster.mime};base64,${raster.base64}"></div>`;
  }
  if ("image/svg+xml" in data) {
    const svg = sanitizeSvg(mimeText(data["image/svg+xml"]));
    if (!svg) {
      return `<div class="output note">${
        escapeXml(imageNote("image/svg+xml", NO_SVG))
      }</div>`;
    }
    const b64 = toBase64(new TextEncoder().encode(svg));
    return `<div class="output"><img alt="figure" src="data:image/svg+xml;base64,${b64}"></div>`;
  }
  if ("text/markdown" in data) {
    return `<div class="output">${
      markdownToHtml(mimeText(data["text/markdown"]))
    }</div>`;
  }
  if ("text/plain" in data) {
    return `<pre class="stdout">${
      escapeXml(stripAnsi(mimeText(data["text/plain"])))
    }</pre>`;
  }
  return "";
}

// ---------------------------------------------------------------------------
// Markdown

/** A file the Markdown report links to, relative to the report folder. */
export interface ReportFile {
  /** Path relative to the report folder (`<name>_files/...`). */
  path: string;
  /** The bytes. */
  bytes: Uint8Array;
}

/**
 * The Markdown report of an executed notebook and the image files it links
 * to (`<name>_files/`). Plotly figures use `staticImages` (PNG bytes keyed
 * `cell:output`, rendered by a browser), else the bundle's own SVG, else a
 * note that the static image was skipped.
 */
export function renderMarkdown(
  nb: Notebook,
  meta: ReportMeta,
  staticImages: ReadonlyMap<string, Uint8Array>,
): { markdown: string; files: ReportFile[] } {
  const files: ReportFile[] = [];
  const dir = `${meta.name}_files`;
  const addFile = (ext: string, bytes: Uint8Array, cell: number) => {
    const file = `cell${cell}-${files.length + 1}.${ext}`;
    files.push({ path: `${dir}/${file}`, bytes });
    // The link is a URL: the name percent-encoded, so that no name (one
    // with ":", "#", "?", spaces or brackets) is read as a scheme, a
    // fragment or the end of the link.
    return `${linkSegment(dir)}/${file}`;
  };
  const lines: string[] = [];
  // The name comes from a file name: nothing in it may end the comment.
  const commentSource = (meta.source ?? `notebooks/${meta.name}.ipynb`)
    .replace(/--|[<>]/g, "_");
  lines.push(
    `<!-- generated by tokenlab report; edit ${commentSource} instead -->`,
  );
  lines.push("");
  // Parameters, errors and notes are data: escaped, one quoted line each.
  lines.push(`> ${escapeMarkdown(runLine(meta))}`);
  if (meta.status === "failed") {
    const [first, ...rest] = (meta.error ?? "").split(/\r?\n/);
    lines.push(
      ">",
      `> **This report failed.** ${escapeMarkdown(first)}`,
      ...rest.map((l) => `> ${escapeMarkdown(l)}`),
    );
  }
  if (meta.staticNote) lines.push(">", `> ${escapeMarkdown(meta.staticNote)}`);
  lines.push("");

  nb.cells.forEach((cell, i) => {
    const src = cellSource(cell);
    if (cell.cell_type === "markdown") {
      lines.push(sanitizeMarkdown(src).trimEnd(), "");
      return;
    }
    if (cell.cell_type === "raw") return;
    const num = originalCellNumber(i, meta.injectedCell);
    if (num === "injected") lines.push("*Injected parameters:*", "");
    if (meta.failedCell !== null && i > meta.failedCell) {
      lines.push(`*Cell ${num} was not run (an earlier cell failed).*`, "");
    }
    lines.push(fence(src, "ts"), "");
    outputsOf(cell).forEach((o, k) => {
      const md = markdownOutput(o, i, k, staticImages, addFile);
      if (md) lines.push(md, "");
    });
  });
  return { markdown: lines.join("\n").replace(/\n{3,}/g, "\n\n"), files };
}

/** A path segment of a Markdown link, percent-encoded (brackets too). */
function linkSegment(segment: string): string {
  return encodeURIComponent(segment).replace(
    /[()'!*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/** An SVG output as a sanitised file beside the Markdown report, or a note. */
function svgFile(
  text: string,
  cell: number,
  alt: string,
  addFile: (ext: string, bytes: Uint8Array, cell: number) => string,
): string {
  const svg = sanitizeSvg(text);
  if (!svg) return `*(${escapeMarkdown(imageNote("image/svg+xml", NO_SVG))})*`;
  return `![${alt}](${
    addFile("svg", new TextEncoder().encode(svg), cell + 1)
  })`;
}

function fence(text: string, lang = ""): string {
  const longest = Math.max(
    2,
    ...[...text.matchAll(/`+/g)].map((m) => m[0].length),
  );
  const f = "`".repeat(longest + 1);
  return `${f}${lang}\n${text.replace(/\n$/, "")}\n${f}`;
}

/**
 * An HTML output for the Markdown report: sanitised as HTML, and then as
 * Markdown, since its text is read as Markdown there (a `[x](javascript:...)`
 * that is plain text in HTML would be a link).
 */
function htmlForMarkdown(html: string): string {
  return sanitizeMarkdown(sanitizeHtml(html)).trim();
}

function markdownOutput(
  o: Output,
  cell: number,
  output: number,
  staticImages: ReadonlyMap<string, Uint8Array>,
  addFile: (ext: string, bytes: Uint8Array, cell: number) => string,
): string {
  const out = shown(o);
  if (out.kind === "stream" || out.kind === "error") return fence(out.text);
  if (out.kind === "none") return "";
  const data = out.data;
  if (data[PLOTLY_MIME] && typeof data[PLOTLY_MIME] === "object") {
    const fig = data[PLOTLY_MIME] as FigureRef["figure"];
    const alt = escapeMarkdown(figureTitle(fig) || "figure");
    const png = staticImages.get(`${cell}:${output}`);
    let image: string;
    if (png) image = `![${alt}](${addFile("png", png, cell + 1)})`;
    else if ("image/svg+xml" in data) {
      image = svgFile(mimeText(data["image/svg+xml"]), cell, alt, addFile);
    } else {
      image =
        `*(static image of "${alt}" skipped: no browser to render it; the HTML report draws it)*`;
    }
    const after = "text/html" in data
      ? htmlForMarkdown(removeStaticFallback(mimeText(data["text/html"])))
      : "";
    return after ? `${image}\n\n${after}` : image;
  }
  if ("text/markdown" in data) {
    return sanitizeMarkdown(mimeText(data["text/markdown"])).trim();
  }
  const raster = rasterOf(data);
  if (raster) {
    if (raster.base64 === null) {
      return `*(${escapeMarkdown(imageNote(raster.mime, NOT_BASE64))})*`;
    }
    const bytes = Uint8Array.from(atob(raster.base64), (c) => c.charCodeAt(0));
    const ext = raster.mime.slice("image/".length).replace("jpeg", "jpg");
    return `![figure](${addFile(ext, bytes, cell + 1)})`;
  }
  if ("image/svg+xml" in data) {
    return svgFile(mimeText(data["image/svg+xml"]), cell, "figure", addFile);
  }
  if ("text/html" in data) return htmlForMarkdown(mimeText(data["text/html"]));
  if ("text/plain" in data) {
    return fence(stripAnsi(mimeText(data["text/plain"])));
  }
  return "";
}
