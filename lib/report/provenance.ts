/**
 * What a report says about how it was made: the provenance footer (commit,
 * versions, backend and adapter, seeds, wall time, scale, and where each
 * experiment's numbers came from) and the headline result the report index
 * shows.
 *
 * @module
 */

import { ensureBackend } from "../backend.ts";
import { escapeXml } from "../view/escape.ts";
import { escapeMarkdown, markdownCode } from "./markdown_escape.ts";
import { TFJS_VERSION } from "../tf.ts";
import { VERSION } from "../version.ts";
import { type ExperimentResult, sessionExperiments } from "./cache.ts";
import { codeVersion, machineDescription, projectCommit } from "./origin.ts";

/** MIME type of the headline bundle, which the report runner reads. */
export const HEADLINE_MIME = "application/vnd.tokenlab.headline+json";
/** MIME type of the provenance bundle, which the report runner reads. */
export const PROVENANCE_MIME = "application/vnd.tokenlab.provenance+json";

/** The headline result of a report: one line for the report index. */
export class Headline {
  /** The line (plain text). */
  readonly text: string;
  /** Creates the headline. */
  constructor(text: string) {
    if (typeof text !== "string" || text.trim() === "") {
      throw new TypeError(
        `headline expects a non-empty line of text, found ${
          JSON.stringify(text)
        }`,
      );
    }
    this.text = text.trim().replace(/\s+/g, " ");
  }
  /** The line. */
  toString(): string {
    return this.text;
  }
  /** Jupyter display bundle. */
  [Symbol.for("Jupyter.display")](): Record<string, unknown> {
    return {
      [HEADLINE_MIME]: { text: this.text },
      "text/markdown": `**Result:** ${escapeMarkdown(this.text)}`,
      "text/html": `<p class="tokenlab-headline"><strong>Result:</strong> ${
        escapeXml(this.text)
      }</p>`,
      "text/plain": `Result: ${this.text}`,
    };
  }
}

/**
 * Marks a report's headline result, shown in `reports/index.html` and
 * `reports/README.md`.
 *
 * @example
 * ```ts
 * import { headline } from "tokenlab";
 * console.assert(headline("top-1 49.6 % vs 31.1 %").text.startsWith("top-1"));
 * ```
 */
export function headline(text: string): Headline {
  return new Headline(text);
}

/** One experiment in the footer. */
export interface ProvenanceExperiment {
  /** Its name. */
  name: string;
  /** computed (this run), cache (an earlier run, same code) or frozen. */
  source: ExperimentResult<unknown>["source"];
  /** When it was computed (ISO 8601). */
  computedAt: string;
  /** Where. */
  machine: string;
  /** On what backend (and adapter). */
  backend: string;
  /** At what commit. */
  commit: string;
  /** Its wall time in seconds. */
  seconds: number;
  /** Its scale, when known. */
  scale: string | null;
  /** A frozen result whose code has changed since. */
  codeChanged: boolean;
}

/** The provenance record of a report. */
export interface ProvenanceRecord {
  /** The report (notebook) name, when run by `tokenlab report`. */
  report: string | null;
  /** The scale, when the report has one. */
  scale: string | null;
  /** Parameters injected by the runner. */
  parameters: Record<string, unknown>;
  /** Git commit (`+dirty` with local changes to lib/). */
  commit: string;
  /** Hash of lib/ and the pinned dependencies. */
  codeVersion: string;
  /** tokenlab's version. */
  tokenlab: string;
  /** Deno's version. */
  deno: string;
  /** tfjs's version. */
  tfjs: string;
  /** The backend. */
  backend: string;
  /** The WebGPU adapter, if any. */
  adapter: string | null;
  /** wasm threads, for wasm. */
  threads: number | null;
  /** The machine in words. */
  machine: string;
  /** The seeds the report used. */
  seeds: readonly number[];
  /** Seconds since the report (or the kernel) started. */
  wallSeconds: number;
  /** When this footer was made (ISO 8601). */
  date: string;
  /** Every experiment of this session and where its numbers came from. */
  experiments: ProvenanceExperiment[];
}

/** Options of {@linkcode provenance}. */
export interface ProvenanceOptions {
  /** The seeds the report used. */
  seeds?: readonly number[];
}

function fmtSeconds(s: number): string {
  if (s < 90) return `${s.toFixed(1)} s`;
  if (s < 5400) return `${(s / 60).toFixed(1)} min`;
  return `${(s / 3600).toFixed(2)} h`;
}

function sourceText(e: ProvenanceExperiment): string {
  switch (e.source) {
    case "computed":
      return "computed in this run";
    case "cache":
      return `cached from a run on ${
        e.computedAt.slice(0, 16).replace("T", " ")
      } UTC (same code and config)`;
    case "frozen":
      return `frozen run of ${e.computedAt.slice(0, 10)} at commit ${
        e.commit.slice(0, 10)
      } on ${e.machine}${e.codeChanged ? " (the code has changed since)" : ""}`;
  }
}

/** The provenance footer of a report. */
export class Provenance {
  /** The record. */
  readonly record: ProvenanceRecord;
  /** Wraps a record. */
  constructor(record: ProvenanceRecord) {
    this.record = record;
  }

  /** The footer's facts as (name, value) pairs. */
  facts(): [string, string][] {
    const r = this.record;
    const params = Object.entries(r.parameters);
    return [
      ...(r.report ? [["report", r.report] as [string, string]] : []),
      ["scale", r.scale ?? "not scaled"],
      [
        "parameters",
        params.length
          ? params.map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(", ")
          : "defaults",
      ],
      ["commit", `${r.commit} (code ${r.codeVersion})`],
      ["versions", `tokenlab ${r.tokenlab}, Deno ${r.deno}, tfjs ${r.tfjs}`],
      [
        "backend",
        `${r.backend}${
          r.threads !== null
            ? ` (${r.threads} thread${r.threads === 1 ? "" : "s"})`
            : ""
        }${r.adapter ? `, adapter ${r.adapter}` : ""}`,
      ],
      ["machine", r.machine],
      ["seeds", r.seeds.length ? r.seeds.join(", ") : "none given"],
      ["wall time", fmtSeconds(r.wallSeconds)],
      ["date", r.date],
    ];
  }

  /** One (name, details) pair per experiment, plain text. */
  #experiments(): [string, string][] {
    return this.record.experiments.map((e) => [
      e.name,
      `${sourceText(e)}; ${e.backend}, ${fmtSeconds(e.seconds)}${
        e.scale ? `, ${e.scale} scale` : ""
      }`,
    ]);
  }

  /** Markdown; every value escaped, since names and parameters come from users. */
  toMarkdown(): string {
    const lines = ["**Provenance**", ""];
    for (const [k, v] of this.facts()) {
      lines.push(`- ${escapeMarkdown(k)}: ${escapeMarkdown(v)}`);
    }
    for (const [name, v] of this.#experiments()) {
      lines.push(`- experiment ${markdownCode(name)}: ${escapeMarkdown(v)}`);
    }
    return lines.join("\n");
  }

  /** HTML. */
  toHtml(): string {
    const rows = this.facts().map(([k, v]) =>
      `<tr><th>${escapeXml(k)}</th><td>${escapeXml(v)}</td></tr>`
    );
    for (const e of this.record.experiments) {
      rows.push(
        `<tr class="source-${e.source}"><th>experiment <code>${
          escapeXml(e.name)
        }</code></th><td>${escapeXml(sourceText(e))}; ${
          escapeXml(e.backend)
        }, ${fmtSeconds(e.seconds)}${
          e.scale ? `, ${escapeXml(e.scale)} scale` : ""
        }</td></tr>`,
      );
    }
    return `<footer class="tokenlab-provenance"><table><caption>Provenance</caption>${
      rows.join("")
    }</table></footer>`;
  }

  /** Plain text. */
  toString(): string {
    return [
      "Provenance",
      "",
      ...this.facts().map(([k, v]) => `- ${k}: ${v}`),
      ...this.#experiments().map(([name, v]) => `- experiment ${name}: ${v}`),
    ].join("\n");
  }

  /** Jupyter display bundle. */
  [Symbol.for("Jupyter.display")](): Record<string, unknown> {
    return {
      [PROVENANCE_MIME]: this.record,
      "text/markdown": this.toMarkdown(),
      "text/html": this.toHtml(),
      "text/plain": this.toString(),
    };
  }
}

function envJson(name: string): Record<string, unknown> {
  const text = Deno.env.get(name);
  if (!text) return {};
  try {
    const v = JSON.parse(text);
    return v && typeof v === "object" && !Array.isArray(v) ? v : {};
  } catch {
    return {};
  }
}

/**
 * The provenance footer of the running report: the commit, Deno and tfjs
 * versions, backend and adapter, seeds, wall time, scale, the injected
 * parameters, and for every {@linkcode experiment} looked up in this kernel
 * whether its numbers were computed now, read from the cache, or come from
 * a frozen run (when, where, on what backend). End each notebook with it.
 *
 * @example
 * ```ts ignore
 * import { provenance } from "tokenlab";
 * await provenance({ seeds: [3] }); // the last cell of a report
 * ```
 */
export async function provenance(
  options: ProvenanceOptions = {},
): Promise<Provenance> {
  const choice = await ensureBackend();
  const started = Number(Deno.env.get("TOKENLAB_REPORT_STARTED"));
  const wallSeconds = Number.isFinite(started) && started > 0
    ? (Date.now() - started) / 1000
    : performance.now() / 1000;
  return new Provenance({
    report: Deno.env.get("TOKENLAB_REPORT") ?? null,
    scale: Deno.env.get("TOKENLAB_SCALE") || null,
    parameters: envJson("TOKENLAB_PARAMS"),
    commit: await projectCommit(),
    codeVersion: await codeVersion(),
    tokenlab: VERSION,
    deno: Deno.version.deno,
    tfjs: TFJS_VERSION,
    backend: choice.name,
    // The adapter is probed even when the backend is not WebGPU; it only
    // says where the numbers were computed when WebGPU computed them.
    adapter: choice.name === "webgpu"
      ? choice.adapter?.description ?? null
      : null,
    threads: choice.name === "wasm" ? choice.threads : null,
    machine: await machineDescription(),
    seeds: [...(options.seeds ?? [])],
    wallSeconds,
    date: new Date().toISOString(),
    experiments: sessionExperiments().map((e) => ({
      name: e.provenance.experiment,
      source: e.source,
      computedAt: e.provenance.computedAt,
      machine: e.provenance.machine,
      backend: e.provenance.adapter
        ? `${e.provenance.backend} (${e.provenance.adapter})`
        : e.provenance.backend,
      commit: e.provenance.commit,
      seconds: e.provenance.seconds,
      scale: e.provenance.scale,
      codeChanged: e.codeChanged,
    })),
  });
}
