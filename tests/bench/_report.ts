/**
 * The outputs of `deno task bench` (tests/bench/run.ts): reports/bench.json
 * (`{ meta, records }`), reports/bench.md (the meta, one table per section,
 * the targets, the figures as PNGs in bench_files/ when a browser is here)
 * and reports/bench.html (the same content, self-contained and offline, with
 * plotly figures).
 *
 * @module
 */

import { marked } from "marked";
import { writeTextAtomic } from "tokenlab/io/atomic_write.ts";
import { Browser, findBrowser, plotlyScript } from "tokenlab/report/browser.ts";
import type { BenchMeta, BenchRecord } from "./_record.ts";

/** Size of a benchmarked model, for the figure against model size. */
export interface ModelSize {
  /** As in `BenchRecord.config`. */
  config: string;
  params: number;
  flops: number;
}

/** The sections of the report, in order, and which records go in each. */
export const REPORT_SECTIONS: readonly {
  title: string;
  has: (r: BenchRecord) => boolean;
}[] = [
  {
    title: "Training",
    has: (r) => r.kind === "e2e" && r.metric === "train img/s",
  },
  {
    title: "Evaluation",
    has: (r) => r.kind === "e2e" && r.metric === "eval img/s",
  },
  { title: "Memory", has: (r) => r.kind === "e2e" && r.metric === "peak MiB" },
  {
    title: "Label pooling",
    has: (r) => r.kind === "e2e" && r.metric === "maps/s",
  },
  {
    title: "Data pipeline",
    has: (r) => r.kind === "e2e" && r.metric === "data img/s",
  },
  { title: "Micro benchmarks", has: (r) => r.kind === "micro" },
];

/** The PyTorch flavours of a run: the meta's order, then any other found. */
export function flavoursOf(
  meta: BenchMeta,
  records: readonly BenchRecord[],
): string[] {
  const out = meta.torch.map((t) => t.reference);
  for (const r of records) {
    if (r.reference !== "" && !out.includes(r.reference)) out.push(r.reference);
  }
  return out;
}

/** A short name for a flavour in table headers ("OpenBLAS", "reference libblas3"). */
export function shortFlavour(reference: string): string {
  const plus = reference.indexOf(" + ");
  return plus >= 0 ? reference.slice(plus + 3) : reference;
}

/** Records of one figure (same config, backend, batch, metric) side by side. */
export interface Row {
  config: string;
  backend: string;
  batch: number | null;
  metric: string;
  ours: number | null;
  /** By flavour. */
  pytorch: Map<string, number | null>;
  ratio: Map<string, number | null>;
  threads: number;
  notes: string[];
}

/** Groups records into rows, one per figure, in order of first appearance. */
export function pivot(records: readonly BenchRecord[]): Row[] {
  const rows = new Map<string, Row>();
  for (const r of records) {
    const key = `${r.kind}\t${r.config}\t${r.backend}\t${r.batch}\t${r.metric}`;
    let row = rows.get(key);
    if (row === undefined) {
      row = {
        config: r.config,
        backend: r.backend,
        batch: r.batch,
        metric: r.metric,
        ours: r.ours,
        pytorch: new Map(),
        ratio: new Map(),
        threads: r.threads,
        notes: [],
      };
      rows.set(key, row);
    }
    if (r.reference !== "") {
      row.pytorch.set(r.reference, r.pytorch);
      row.ratio.set(r.reference, r.ratio);
    }
    for (const part of r.note.split("; ")) {
      if (part !== "" && !row.notes.includes(part)) row.notes.push(part);
    }
  }
  return [...rows.values()];
}

/** A number for a table: 3 significant figures, "-" for null. */
export function fmt(x: number | null | undefined): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return "-";
  const a = Math.abs(x);
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  return x.toFixed(2);
}

function fmtRatio(x: number | null | undefined): string {
  return x === null || x === undefined || !Number.isFinite(x)
    ? "-"
    : `${x.toFixed(2)}x`;
}

function cell(s: string): string {
  return s.replace(/\|/g, "\\|").replace(/\n/g, " ");
}

/** One Markdown table of rows. */
export function markdownTable(
  rows: readonly Row[],
  flavours: string[],
): string {
  const head = [
    "config",
    "backend",
    "batch",
    "metric",
    "ours",
    ...flavours.map((f) => `PyTorch (${shortFlavour(f)})`),
    ...flavours.map((f) => `ratio (${shortFlavour(f)})`),
    "threads",
    "note",
  ];
  if (flavours.length === 0) head.splice(5, 0, "PyTorch", "ratio");
  const lines = [
    `| ${head.map(cell).join(" | ")} |`,
    `|${
      head.map((_, i) => (i >= 2 && i < head.length - 1 ? " ---: " : " --- "))
        .join("|")
    }|`,
  ];
  for (const r of rows) {
    const cells = [
      r.config,
      r.backend,
      r.batch === null ? "-" : String(r.batch),
      r.metric,
      fmt(r.ours),
      ...(flavours.length === 0 ? ["-", "-"] : [
        ...flavours.map((f) => fmt(r.pytorch.get(f))),
        ...flavours.map((f) => fmtRatio(r.ratio.get(f))),
      ]),
      r.threads === 0 && r.backend === "webgpu" ? "GPU" : String(r.threads),
      r.notes.join("; "),
    ];
    lines.push(`| ${cells.map(cell).join(" | ")} |`);
  }
  return lines.join("\n");
}

/** One target of the project, measured. */
export interface Target {
  what: string;
  goal: string;
  ratio: number | null;
  reference: string;
  met: boolean | null;
  where: string;
}

/** The flavour targets are judged against: OpenBLAS, else the only one. */
export function targetFlavour(flavours: readonly string[]): string | null {
  return flavours.find((f) => /openblas/i.test(f)) ?? flavours[0] ?? null;
}

/**
 * The project's targets: training >= 0.5x torch on bench-64 at batch 64 (the
 * best CPU backend), evaluation >= 0.5x (same), label pooling >= 1x, peak
 * memory <= 2x (bench-64 train at 64).
 */
export function targets(
  records: readonly BenchRecord[],
  flavours: readonly string[],
): Target[] {
  const ref = targetFlavour(flavours);
  const cpu = (r: BenchRecord) => r.backend === "wasm" || r.backend === "cpu";
  const pick = (
    test: (r: BenchRecord) => boolean,
    best: "max" | "min",
  ): BenchRecord | null => {
    const rs = records.filter((r) =>
      test(r) && cpu(r) && (ref === null || r.reference === ref) &&
      r.ratio !== null
    );
    if (rs.length === 0) {
      return records.find((r) => test(r) && cpu(r)) ?? null;
    }
    return rs.reduce((a, b) =>
      (best === "max" ? b.ratio! > a.ratio! : b.ratio! < a.ratio!) ? b : a
    );
  };
  const one = (
    what: string,
    goal: string,
    test: (r: BenchRecord) => boolean,
    atLeast: boolean,
    bound: number,
  ): Target => {
    const r = pick(test, atLeast ? "max" : "min");
    const ratio = r?.ratio ?? null;
    return {
      what,
      goal,
      ratio,
      reference: r?.reference || ref || "",
      met: ratio === null ? null : atLeast ? ratio >= bound : ratio <= bound,
      where: r === null
        ? "not measured"
        : `${r.config} ${r.backend}${r.batch === null ? "" : ` B=${r.batch}`}`,
    };
  };
  const b64 = (metric: string) => (r: BenchRecord) =>
    r.kind === "e2e" && r.config === "bench-64" && r.metric === metric &&
    r.batch === 64;
  return [
    one(
      "training (bench-64, batch 64)",
      ">= 0.5x",
      b64("train img/s"),
      true,
      0.5,
    ),
    one(
      "evaluation (bench-64, batch 64)",
      ">= 0.5x",
      b64("eval img/s"),
      true,
      0.5,
    ),
    one(
      "label pooling",
      ">= 1x",
      (r) => r.kind === "e2e" && r.metric === "maps/s",
      true,
      1,
    ),
    one(
      "peak memory (bench-64 train, batch 64)",
      "<= 2x",
      b64("peak MiB"),
      false,
      2,
    ),
  ];
}

/**
 * The WebGPU targets on a GPU (issue 19), each webgpu against PyTorch on
 * CUDA in float32 at batch 64, with the kit's defaults (no submit-batch or
 * matmul variant): lvvit_s training >= 0.3x, lvvit_s evaluation >= 0.5x,
 * bench-64 training >= 0.3x. Only records whose PyTorch ran on CUDA count.
 */
export function gpuTargets(records: readonly BenchRecord[]): Target[] {
  const one = (
    what: string,
    config: string,
    metric: string,
    bound: number,
  ): Target => {
    const r = records.find((r) =>
      r.kind === "e2e" && r.backend === "webgpu" && r.config === config &&
      r.metric === metric && r.batch === 64 && /torch on CUDA/.test(r.note)
    );
    const ratio = r?.ratio ?? null;
    return {
      what,
      goal: `>= ${bound}x`,
      ratio,
      reference: r?.reference ?? "",
      met: ratio === null ? null : ratio >= bound,
      where: r === undefined ? "not measured" : `${r.config} webgpu B=64`,
    };
  };
  return [
    one("lvvit_s training, batch 64", "lvvit_s@224", "train img/s", 0.3),
    one("lvvit_s evaluation, batch 64", "lvvit_s@224", "eval img/s", 0.5),
    one("bench-64 training, batch 64", "bench-64", "train img/s", 0.3),
  ];
}

function targetsTable(ts: readonly Target[]): string {
  const lines = [
    "| target | goal | measured ratio | against | where | met |",
    "| --- | --- | ---: | --- | --- | --- |",
  ];
  for (const t of ts) {
    lines.push(
      `| ${
        [
          t.what,
          t.goal,
          fmtRatio(t.ratio),
          t.reference || "-",
          t.where,
          t.met === null ? "not measured" : t.met ? "met" : "not met",
        ].map(cell).join(" | ")
      } |`,
    );
  }
  return lines.join("\n");
}

/** The meta as Markdown lines. */
export function metaMarkdown(meta: BenchMeta): string {
  const lines = [
    `- date: ${meta.date}`,
    `- commit: ${meta.commit}`,
    `- machine: ${meta.machine.os}, ${meta.machine.cpus} CPU(s), ${meta.machine.cpuModel}`,
    `- Deno ${meta.deno}, TensorFlow.js ${meta.tfjs}`,
    `- scale: ${meta.scale}`,
  ];
  if (meta.torch.length === 0) lines.push("- PyTorch: not run");
  for (const t of meta.torch) {
    lines.push(`- PyTorch: ${t.reference} (BLAS: ${t.blas})`);
  }
  for (const b of meta.backends) {
    lines.push(
      `- backend ${b.name}: ${b.available ? "available" : "unavailable"}${
        b.note ? ` (${b.note})` : ""
      }`,
    );
  }
  return lines.join("\n");
}

/** The tables (sections then targets), as printed at the end of a run. */
export function markdownTables(
  meta: BenchMeta,
  records: readonly BenchRecord[],
): string {
  const flavours = flavoursOf(meta, records);
  const parts: string[] = [];
  for (const s of REPORT_SECTIONS) {
    const rows = pivot(records.filter(s.has));
    if (rows.length === 0) continue;
    parts.push(`## ${s.title}\n\n${markdownTable(rows, flavours)}`);
  }
  const probes = webgpuTable(records);
  if (probes !== "") {
    parts.push(`## WebGPU: what a step asks of the device\n\n${probes}`);
  }
  const kernels = webgpuKernelsTable(records);
  if (kernels !== "") {
    parts.push(
      `## WebGPU: the kernels that took the most GPU time\n\n${kernels}`,
    );
  }
  parts.push(`## Targets\n\n${targetsTable(targets(records, flavours))}`);
  if (
    records.some((r) => r.backend === "webgpu" && /torch on CUDA/.test(r.note))
  ) {
    parts.push(
      `## WebGPU targets on the GPU (against PyTorch on CUDA, float32)\n\n${
        targetsTable(gpuTargets(records))
      }`,
    );
  }
  return parts.join("\n\n");
}

/**
 * The webgpu jobs' counted and profiled steps: dispatches, submits,
 * uploads, readbacks, buffers and pipelines per step, the main thread's
 * time in submits, and the kernels' GPU time against the step's wall time
 * (the difference is overhead outside the kernels). "" when none ran.
 */
export function webgpuTable(records: readonly BenchRecord[]): string {
  const seen = new Set<string>();
  const lines = [
    "| config | batch | metric | dispatches | submits | uploads | readbacks | buffers created | pipelines | ms in submit | kernel ms | wall ms | kernel / wall |",
    "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const r of records) {
    const w = r.webgpu;
    const key = `${r.config} ${r.batch} ${r.metric}`;
    if (w === undefined || seen.has(key)) continue;
    seen.add(key);
    lines.push(
      `| ${
        [
          r.config,
          String(r.batch ?? "-"),
          r.metric,
          String(w.dispatches),
          String(w.submits),
          String(w.uploads),
          String(w.readbacks),
          String(w.buffersCreated),
          String(w.pipelines),
          fmt(w.submitMs),
          w.kernelMs > 0 ? fmt(w.kernelMs) : "-",
          fmt(w.wallMs),
          w.kernelMs > 0 && w.wallMs > 0
            ? `${(100 * w.kernelMs / w.wallMs).toFixed(0)}%`
            : "-",
        ].map(cell).join(" | ")
      } |`,
    );
  }
  return seen.size === 0 ? "" : lines.join("\n");
}

/**
 * Per webgpu job whose profiled step had timestamps: its costliest kernels
 * (name and input shapes), their calls, summed GPU ms and share of the
 * step's kernel time, and the main thread's ms recording the step and
 * waiting for its readbacks. "" when no job has them.
 */
export function webgpuKernelsTable(records: readonly BenchRecord[]): string {
  const seen = new Set<string>();
  const blocks: string[] = [];
  for (const r of records) {
    const w = r.webgpu;
    const key = `${r.config} ${r.batch} ${r.metric}`;
    if (w?.topKernels === undefined || w.topKernels.length === 0) continue;
    if (seen.has(key)) continue;
    seen.add(key);
    const host = [
      `kernels ${fmt(w.kernelMs)} ms of a ${fmt(w.wallMs)} ms step`,
      w.callMs === undefined ? "" : `recording ${fmt(w.callMs)} ms`,
      `in submit ${fmt(w.submitMs)} ms`,
      w.readbackWaitMs === undefined
        ? ""
        : `waiting for readbacks ${fmt(w.readbackWaitMs)} ms`,
    ].filter((x) => x !== "").join(", ");
    blocks.push([
      `**${cell(r.config)}, batch ${r.batch ?? "-"}** (${host})`,
      "",
      "| kernel and input shapes | calls | GPU ms | share of kernel time |",
      "| --- | ---: | ---: | ---: |",
      ...w.topKernels.map((k) =>
        `| ${
          [
            k.kernel,
            String(k.calls),
            fmt(k.ms),
            w.kernelMs > 0 ? `${(100 * k.ms / w.kernelMs).toFixed(1)}%` : "-",
          ].map(cell).join(" | ")
        } |`
      ),
    ].join("\n"));
  }
  return blocks.join("\n\n");
}

/** The whole Markdown report; `images` are PNG paths relative to it, or why there are none. */
export function markdownReport(
  meta: BenchMeta,
  records: readonly BenchRecord[],
  images: { files: { title: string; path: string }[] } | { skipped: string },
): string {
  const figures = "files" in images
    ? images.files.map((f) => `![${f.title}](${f.path})`).join("\n\n")
    : `Static images of the figures were skipped: ${images.skipped}. bench.html has them.`;
  return `# tokenlab benchmarks

${metaMarkdown(meta)}

Ratios are ours / PyTorch: above 1 is faster than PyTorch for throughputs;
for peak memory, below 1 is less memory. Rows measured against Debian's
reference BLAS are marked "not a fair reference".

${markdownTables(meta, records)}

## Figures

${figures}
`;
}

/** A plotly figure: data and layout. */
export interface Figure {
  data: Record<string, unknown>[];
  layout: Record<string, unknown>;
}

/** The two figures: images/s against batch, and against model size. */
export function figures(
  meta: BenchMeta,
  records: readonly BenchRecord[],
  models: readonly ModelSize[],
): Figure[] {
  const flavours = flavoursOf(meta, records);
  const e2e = records.filter((r) =>
    r.kind === "e2e" &&
    (r.metric === "train img/s" || r.metric === "eval img/s")
  );
  const series = (
    rs: BenchRecord[],
    x: (r: BenchRecord) => number | null,
  ): Record<string, unknown>[] => {
    const traces: Record<string, unknown>[] = [];
    for (const metric of ["train img/s", "eval img/s"]) {
      const task = metric.split(" ")[0];
      const mine = rs.filter((r) => r.metric === metric);
      for (const backend of [...new Set(mine.map((r) => r.backend))]) {
        const pts = new Map<number, number>();
        for (const r of mine) {
          const xv = x(r);
          if (r.backend === backend && xv !== null && r.ours !== null) {
            pts.set(xv, r.ours);
          }
        }
        if (pts.size > 0) traces.push(trace(`ours ${backend} ${task}`, pts));
      }
      for (const f of flavours) {
        const pts = new Map<number, number>();
        for (const r of mine) {
          const xv = x(r);
          if (r.reference === f && xv !== null && r.pytorch !== null) {
            pts.set(xv, r.pytorch);
          }
        }
        if (pts.size > 0) {
          traces.push({
            ...trace(`${shortFlavour(f)} torch ${task}`, pts),
            line: { dash: "dash" },
          });
        }
      }
    }
    return traces;
  };
  const byBatch = series(
    e2e.filter((r) => r.config === "bench-64"),
    (r) => r.batch,
  );
  const size = new Map(models.map((m) => [m.config, m.params / 1e6]));
  const bySize = series(
    e2e.filter((r) => r.batch === 8 && size.has(r.config)),
    (r) => size.get(r.config) ?? null,
  );
  const layout = (title: string, x: string, xlog: boolean) => ({
    title: { text: title },
    xaxis: { title: { text: x }, type: xlog ? "log" : "linear" },
    yaxis: { title: { text: "images/s" }, type: "log" },
    width: 760,
    height: 480,
    legend: { font: { size: 10 } },
  });
  return [
    {
      data: byBatch,
      layout: layout(
        "bench-64: images/s against batch size",
        "batch size",
        true,
      ),
    },
    {
      data: bySize,
      layout: layout(
        `images/s against model size (batch 8: bench-64, lvvit_t, lvvit_s)`,
        "parameters (millions)",
        true,
      ),
    },
  ];
}

function trace(
  name: string,
  pts: Map<number, number>,
): Record<string, unknown> {
  const xs = [...pts.keys()].sort((a, b) => a - b);
  return {
    type: "scatter",
    mode: "lines+markers",
    name,
    x: xs,
    y: xs.map((x) => pts.get(x)!),
  };
}

const CSS =
  `body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;background:#fafafa;color:#222}
main{max-width:1200px;margin:0 auto;padding:1.5rem}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0;background:#fff}
th,td{border:1px solid #ddd;padding:.25rem .5rem;vertical-align:top}
th{background:#f0f0f0}td{font-variant-numeric:tabular-nums}
.figure{background:#fff;border:1px solid #ddd;margin:1rem 0}`;

function escapeXml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;");
}

/** The HTML report: the Markdown's content plus live plotly figures. */
export function htmlReport(
  meta: BenchMeta,
  records: readonly BenchRecord[],
  figs: readonly Figure[],
  plotlyJs: string,
): string {
  const body = marked.parse(
    markdownReport(meta, records, { files: [] }).replace(
      /\n## Figures\n[\s\S]*$/,
      "",
    ),
    { async: false },
  ) as string;
  const divs = figs.map((f, i) =>
    `<div class="figure tokenlab-plotly" id="bench-fig-${i}"></div><script type="application/json" id="bench-fig-${i}-data">${
      JSON.stringify(f).replace(/</g, "\\u003c")
    }</script>`
  ).join("\n");
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeXml(`tokenlab benchmarks ${meta.date}`)}</title>
<style>${CSS}</style>
</head>
<body>
<main>
${body}
<h2>Figures</h2>
${divs}
</main>
<script>${plotlyJs.replace(/<\/script/gi, "<\\/script")}</script>
<script>
for (const el of document.querySelectorAll(".tokenlab-plotly")) {
  const fig = JSON.parse(document.getElementById(el.id + "-data").textContent);
  Plotly.newPlot(el, fig.data, fig.layout, {responsive: true, displaylogo: false});
}
</script>
</body>
</html>
`;
}

/** Writes bench.json, bench.md, bench.html (and bench_files/*.png); returns the paths. */
export async function writeReport(
  out: string,
  meta: BenchMeta,
  records: readonly BenchRecord[],
  options: { models: readonly ModelSize[]; images?: boolean },
): Promise<string[]> {
  await Deno.mkdir(out, { recursive: true });
  const written: string[] = [];
  const json = `${out}/bench.json`;
  await writeTextAtomic(
    json,
    JSON.stringify({ meta, records }, null, 2) + "\n",
  );
  written.push(json);
  const figs = figures(meta, records, options.models);
  let images: { files: { title: string; path: string }[] } | {
    skipped: string;
  };
  if (options.images === false) {
    images = { skipped: "not asked for" };
  } else {
    images = await renderImages(out, figs).catch((e) => ({
      skipped: e instanceof Error ? e.message : String(e),
    }));
  }
  if ("files" in images) {
    for (const f of images.files) written.push(`${out}/${f.path}`);
  }
  const md = `${out}/bench.md`;
  await writeTextAtomic(md, markdownReport(meta, records, images));
  written.push(md);
  const html = `${out}/bench.html`;
  await writeTextAtomic(
    html,
    htmlReport(meta, records, figs, await plotlyScript()),
  );
  written.push(html);
  return written;
}

async function renderImages(
  out: string,
  figs: readonly Figure[],
): Promise<{ files: { title: string; path: string }[] } | { skipped: string }> {
  const exe = await findBrowser();
  if (exe === null) return { skipped: "no Chromium found (findBrowser)" };
  const browser = await Browser.launch({ executable: exe });
  try {
    const pngs = await browser.renderPlotly(figs, { format: "png" });
    await Deno.mkdir(`${out}/bench_files`, { recursive: true });
    const files: { title: string; path: string }[] = [];
    const names = ["ips_by_batch.png", "ips_by_model_size.png"];
    for (const [i, png] of pngs.entries()) {
      const path = `bench_files/${names[i] ?? `figure_${i}.png`}`;
      const tmp = `${out}/bench_files/.${names[i]}.tmp`;
      await Deno.writeFile(tmp, png);
      await Deno.rename(tmp, `${out}/${path}`);
      const title = (figs[i].layout.title as { text: string }).text;
      files.push({ title, path });
    }
    return { files };
  } finally {
    await browser.close();
  }
}
