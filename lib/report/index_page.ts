/**
 * The report index: `reports/index.json` (the manifest a later run reads
 * back), `reports/index.html` and `reports/README.md`, listing every
 * notebook's report in its group (guides, ablations) with its status, time,
 * scale, backend and headline.
 *
 * @module
 */

import { join } from "node:path";
import { escapeXml } from "../view/escape.ts";
import { writeTextAtomic } from "../io/atomic_write.ts";
import { reportCsp } from "./csp.ts";
import { escapeMarkdown } from "./markdown_escape.ts";

/**
 * What the index reads of one report run (a `ReportResult` of
 * `runReports` has it all).
 */
export interface IndexedReport {
  /** Notebook name (file stem). */
  name: string;
  /** `ok` or `failed`. */
  status: "ok" | "failed";
  /** The error, when failed. */
  error: string;
  /** Wall time in seconds. */
  seconds: number;
  /** The HTML report, or null when the notebook could not run at all. */
  html: string | null;
  /** The headline result the notebook declared, if any. */
  headline: string | null;
  /** The scale it ran at, if any. */
  scale: string | null;
  /** The parameters given. */
  parameters: Record<string, unknown>;
  /** The backend the notebook reported, if any. */
  backend: string | null;
  /** Its group in the index (default: {@linkcode reportGroup} of its name). */
  group?: string;
}

/** One line of the report index. */
interface IndexEntry {
  name: string;
  group?: string;
  status: "ok" | "failed" | "not run";
  seconds: number | null;
  headline: string | null;
  scale: string | null;
  backend: string | null;
  parameters: Record<string, unknown>;
  date: string | null;
  error: string;
}

/**
 * Updates `<outDir>/index.json`, `index.html` and `README.md` after a run:
 * the reports of `results` as they ran now, the other notebooks as the
 * previous index had them (a notebook that could not run at all keeps its
 * previous report, with the error noted).
 *
 * `notebooks` is the folder's fixed list (the project's `reports/` lists
 * every notebook of `notebooks/`, those never run as "not run", and
 * nothing else); `null` lists what the folder's previous index listed and
 * the reports of `results`, for any other folder.
 */
export async function writeIndex(
  outDir: string,
  results: readonly IndexedReport[],
  notebooks: readonly string[] | null,
): Promise<void> {
  const manifestPath = join(outDir, "index.json");
  let previous: Record<string, IndexEntry> = {};
  try {
    const m = JSON.parse(await Deno.readTextFile(manifestPath));
    if (m && typeof m.reports === "object" && !Array.isArray(m.reports)) {
      previous = m.reports;
    }
  } catch { /* first run, or a damaged manifest: rebuilt below */ }
  // Only entries shaped as this module writes them are carried over.
  previous = Object.fromEntries(
    Object.entries(previous).filter(([name, e]) =>
      e && typeof e === "object" &&
      e.name === name && typeof e.status === "string"
    ),
  );
  const listed = notebooks ??
    [...new Set([...Object.keys(previous), ...results.map((r) => r.name)])];
  const now = new Date().toISOString();
  const entries: IndexEntry[] = listed.map((name) => {
    const r = results.find((x) => x.name === name);
    if (r && (r.html !== null || !previous[name])) {
      return {
        name,
        ...(r.group !== undefined ? { group: r.group } : {}),
        status: r.html === null ? "not run" : r.status,
        seconds: r.seconds,
        headline: r.headline,
        scale: r.scale,
        backend: r.backend,
        parameters: r.parameters,
        date: now,
        error: r.error,
      };
    }
    if (r) {
      // Could not run at all: the previous report stays, the error is noted.
      return { ...previous[name], error: r.error };
    }
    return previous[name] ?? {
      name,
      status: "not run",
      seconds: null,
      headline: null,
      scale: null,
      backend: null,
      parameters: {},
      date: null,
      error: "",
    };
  });
  const write = (file: string, text: string) =>
    writeTextAtomic(join(outDir, file), text);
  await write(
    "index.json",
    JSON.stringify(
      {
        updated: now,
        reports: Object.fromEntries(entries.map((e) => [e.name, e])),
      },
      null,
      1,
    ) + "\n",
  );
  await write("index.html", indexHtml(entries, now));
  await write("README.md", indexMarkdown(entries, now));
}

function when(e: IndexEntry): string {
  return e.date ? e.date.slice(0, 16).replace("T", " ") : "";
}

function timeText(e: IndexEntry): string {
  return e.seconds === null
    ? ""
    : e.seconds < 90
    ? `${e.seconds.toFixed(0)} s`
    : `${(e.seconds / 60).toFixed(1)} min`;
}

/**
 * The index group of a notebook: `ablation_*` notebooks reproduce the
 * paper's ablations ("Ablations"); the others show the kit ("Guides").
 */
export function reportGroup(name: string): "Guides" | "Ablations" {
  return name.startsWith("ablation_") ? "Ablations" : "Guides";
}

/** The index group of a notebook that is not one of the kit's. */
export const OWN_GROUP = "Notebooks";

const GROUP_TEXT: Record<string, string> = {
  Guides: "The kit, step by step.",
  Ablations:
    "The ablations of the token labeling paper (and of TL-Align), each with the published numbers beside ours; the headline is the verdict.",
  [OWN_GROUP]: "Notebooks rendered into this folder by tokenlab report.",
};

function groupsOf(
  entries: readonly IndexEntry[],
): [string, IndexEntry[]][] {
  const groups = new Map<string, IndexEntry[]>();
  for (const e of entries) {
    const g = typeof e.group === "string" && Object.hasOwn(GROUP_TEXT, e.group)
      ? e.group
      : reportGroup(e.name);
    groups.set(g, [...(groups.get(g) ?? []), e]);
  }
  return [...groups];
}

/** A report's file name in a Markdown link: the path part percent-encoded. */
function mdTarget(name: string, ext: string): string {
  return `${
    encodeURIComponent(name).replace(/[()'!*]/g, (c) =>
      `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
  }.${ext}`;
}

/**
 * A report's file name in an `href` of the HTML index: percent-encoded as in
 * the Markdown index, after `./` so that no name is read as a scheme.
 */
function htmlTarget(name: string, ext: string): string {
  return escapeXml(`./${mdTarget(name, ext)}`);
}

/**
 * A short cell ("not run", "2.1 min", a date) kept on one line wherever
 * the Markdown is shown: its spaces become no-break spaces.
 */
function oneLine(text: string): string {
  return text.replaceAll(" ", "\u00a0");
}

function indexMarkdown(entries: readonly IndexEntry[], now: string): string {
  // Everything in a cell is data (names, errors, headlines): escaped.
  const cell = (s: string) => escapeMarkdown(s);
  const lines = [
    "# Reports",
    "",
    `Generated by \`deno task report\`, last updated ${
      now.slice(0, 16).replace("T", " ")
    } UTC. ` +
    "Each report is an HTML page (self-contained), a Markdown file with its figures in `<name>_files/`, and the executed notebook.",
  ];
  for (const [group, members] of groupsOf(entries)) {
    lines.push(
      "",
      `## ${group}`,
      "",
      GROUP_TEXT[group] ?? "",
      "",
      `| report | status | time | scale | backend | ${
        group === "Ablations" ? "verdict" : "headline"
      } | rendered (UTC) |`,
      "|---|---|---|---|---|---|---|",
    );
    for (const e of members) {
      const links = e.status === "not run"
        ? cell(e.name)
        : `[${cell(e.name)}](${mdTarget(e.name, "md")}) ([html](${
          mdTarget(e.name, "html")
        }))`;
      // Cut before escaping, so that no escape is cut in half.
      const status = e.status === "failed"
        ? `**failed**: ${cell(e.error.slice(0, 200))}`
        : oneLine(cell(e.status));
      lines.push(
        `| ${links} | ${status} | ${oneLine(timeText(e))} | ${
          cell(e.scale ?? "")
        } | ${cell(e.backend ?? "")} | ${cell(e.headline ?? "")} | ${
          oneLine(cell(when(e)))
        } |`,
      );
    }
  }
  return lines.join("\n") + "\n";
}

const INDEX_CSS =
  `body{font:15px/1.5 system-ui,sans-serif;max-width:1100px;margin:2rem auto;padding:0 1rem;color:#1d2329}
table{border-collapse:collapse}th,td{border:1px solid #d9dee3;padding:.3rem .6rem;text-align:left;vertical-align:top}
td.num{text-align:right}.nowrap{white-space:nowrap}.failed{color:#b3261e;font-weight:600}small{color:#5b6670}`;

function indexHtml(entries: readonly IndexEntry[], now: string): string {
  const row = (e: IndexEntry) => {
    const name = e.status === "not run"
      ? escapeXml(e.name)
      : `<a href="${htmlTarget(e.name, "html")}">${
        escapeXml(e.name)
      }</a> <small>(<a href="${htmlTarget(e.name, "md")}">md</a>, <a href="${
        htmlTarget(e.name, "ipynb")
      }">ipynb</a>)</small>`;
    const status = e.status === "failed"
      ? `<span class="failed" title="${escapeXml(e.error)}">failed</span>`
      : escapeXml(e.status);
    return `<tr><td>${name}</td><td class="nowrap">${status}</td><td class="num nowrap">${
      timeText(e)
    }</td><td>${escapeXml(e.scale ?? "")}</td><td>${
      escapeXml(e.backend ?? "")
    }</td><td>${escapeXml(e.headline ?? "")}</td><td class="nowrap">${
      when(e)
    }</td></tr>`;
  };
  const sections = groupsOf(entries).map(([group, members]) =>
    `<h2>${escapeXml(group)}</h2>
<p>${escapeXml(GROUP_TEXT[group] ?? "")}</p>
<table><thead><tr><th>report</th><th class="nowrap">status</th><th>time</th><th>scale</th><th>backend</th><th>${
      group === "Ablations" ? "verdict" : "headline"
    }</th><th>rendered (UTC)</th></tr></thead>
<tbody>${members.map(row).join("\n")}</tbody></table>`
  );
  // No script at all, its one stylesheet by hash.
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${
    escapeXml(reportCsp({ styles: [INDEX_CSS] }))
  }">
<title>tokenlab reports</title>
<style>${INDEX_CSS}</style></head>
<body><h1>tokenlab reports</h1>
<p>Generated by <code>deno task report</code>, last updated ${
    escapeXml(now.slice(0, 16).replace("T", " "))
  } UTC.</p>
${sections.join("\n")}
</body></html>
`;
}
