/**
 * Training runs that show themselves: the loss, the learning rate and the
 * validation accuracy drawn from the log records (plotly, an SVG drawn
 * here, and a text table), the final result table, and a live view that a
 * notebook updates in place while the run goes.
 *
 * Epochs are shown counted from 1 (after the first epoch: "epoch 1"); the
 * log counts them from 0. A step or an evaluation logged twice (a run
 * resumed from an earlier checkpoint logs the steps after it again) is
 * drawn once, from its last record.
 *
 * @module
 */

import { escapeXml, type FigureParts } from "../figure.ts";
import { toBase64 } from "../data/png.ts";
import type { EvalRecord, LogRecord, StepRecord } from "./log.ts";
import { formatDuration } from "../_duration.ts";

// ---------------------------------------------------------------------------
// Reading the records

/** The records sorted, one per step and one per (weights, step). */
interface _Run {
  steps: StepRecord[];
  evals: Map<EvalRecord["which"], EvalRecord[]>;
}

const WHICH_ORDER: readonly EvalRecord["which"][] = ["model", "ema"];
const WHICH_NAME: Record<EvalRecord["which"], string> = {
  model: "model",
  ema: "EMA",
};

function _read(records: readonly LogRecord[]): _Run {
  const steps = new Map<number, StepRecord>();
  const evals = new Map<string, EvalRecord>();
  for (const r of records) {
    if (r.kind === "step") steps.set(r.step, r);
    else if (r.kind === "eval") evals.set(`${r.which}@${r.step}`, r);
  }
  const byWhich = new Map<EvalRecord["which"], EvalRecord[]>();
  const sortedEvals = [...evals.values()].sort((a, b) =>
    a.step - b.step || a.epoch - b.epoch
  );
  for (const which of WHICH_ORDER) {
    const list = sortedEvals.filter((e) => e.which === which);
    if (list.length) byWhich.set(which, list);
  }
  return {
    steps: [...steps.values()].sort((a, b) => a.step - b.step),
    evals: byWhich,
  };
}

// ---------------------------------------------------------------------------
// Number formats

/** `4.0e-04`: one decimal, a two-digit exponent (as the command line prints it). */
function _sci(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const [m, e] = v.toExponential(1).split("e");
  const n = Number(e);
  return `${m}e${n < 0 ? "-" : "+"}${String(Math.abs(n)).padStart(2, "0")}`;
}

function _loss(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  return Math.abs(v) >= 1000 ? v.toPrecision(4) : v.toFixed(3);
}

function _pct(v: number): string {
  return v.toFixed(2);
}

/** Epochs as a whole number, or with one decimal when the last one is partial. */
function _epochs(steps: number, stepsPerEpoch: number): string {
  const e = steps / stepsPerEpoch;
  return Number.isInteger(e) ? String(e) : e.toFixed(1);
}

// ---------------------------------------------------------------------------
// Tables

function _textTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  leftAligned = 1,
): string {
  const widths = header.map((h, c) =>
    Math.max(h.length, ...rows.map((r) => (r[c] ?? "").length))
  );
  // Names are left-aligned, numbers right-aligned.
  const line = (cells: readonly string[]) =>
    cells.map((s, c) =>
      c < leftAligned ? s.padEnd(widths[c]) : s.padStart(widths[c])
    )
      .join("  ").trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}

function _htmlTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
): string {
  const cell = (tag: string, s: string, c: number) =>
    `<${tag} style="text-align:${c === 0 ? "left" : "right"}">${
      escapeXml(s)
    }</${tag}>`;
  return `<table><thead><tr>${
    header.map((h, c) => cell("th", h, c)).join("")
  }</tr></thead><tbody>${
    rows.map((r) => `<tr>${r.map((s, c) => cell("td", s, c)).join("")}</tr>`)
      .join("")
  }</tbody></table>`;
}

// ---------------------------------------------------------------------------
// The figure's model: three panels of series, drawn by plotly and as SVG

interface _Series {
  name: string;
  x: number[];
  y: (number | null)[];
  color: string;
  /** faint: raw points; line: a line; dash: a dashed line; marked: a line with a marker per point. */
  style: "faint" | "line" | "dash" | "marked" | "marked-dash";
}

interface _Panel {
  title: string;
  xLabel: string;
  yLabel: string;
  series: _Series[];
  /** Data range of x forced to include these values. */
  xSpan?: [number, number];
  /** Ticks on whole numbers only (steps, epochs). */
  xInteger: boolean;
  yScientific: boolean;
}

const COLORS = {
  loss: "#1f77b4",
  cls: "#ff7f0e",
  dense: "#2ca02c",
  lr: "#555555",
  model: "#d62728",
  ema: "#9467bd",
};

/** Options of {@linkcode trainingFigure}. */
export interface TrainingFigureOptions {
  /** Title above the panels (default "training"). */
  title?: string;
  /**
   * The planned learning rate of the whole run, drawn dashed under the
   * logged one (so a live figure shows how far the run has come).
   */
  schedule?: { step: readonly number[]; lr: readonly number[] };
  /**
   * Logged steps averaged by the running mean of the loss (default: a
   * tenth of the logged steps, between 1 and 50).
   */
  window?: number;
}

/** Mean of the last `w` finite values at each point; null where there is none. */
function _runningMean(values: readonly number[], w: number): (number | null)[] {
  const sum = [0], count = [0];
  for (const v of values) {
    const ok = Number.isFinite(v);
    sum.push(sum[sum.length - 1] + (ok ? v : 0));
    count.push(count[count.length - 1] + (ok ? 1 : 0));
  }
  return values.map((_, i) => {
    const lo = Math.max(0, i + 1 - w);
    const n = count[i + 1] - count[lo];
    return n ? (sum[i + 1] - sum[lo]) / n : null;
  });
}

function _panels(run: _Run, options: TrainingFigureOptions): _Panel[] {
  const { steps } = run;
  const x = steps.map((s) => s.step);
  const loss = steps.map((s) => s.loss);
  const window = options.window ??
    Math.max(1, Math.min(50, Math.round(steps.length / 10)));
  if (!Number.isInteger(window) || window < 1) {
    throw new RangeError(
      `trainingFigure: window must be a whole number of logged steps >= 1, found ${window}`,
    );
  }
  const lossSeries: _Series[] = [];
  if (steps.length) {
    lossSeries.push({
      name: "train loss",
      x,
      y: loss,
      color: COLORS.loss,
      style: "faint",
    }, {
      name: `train loss, mean of ${window} logged step${
        window === 1 ? "" : "s"
      }`,
      x,
      y: _runningMean(loss, window),
      color: COLORS.loss,
      style: "line",
    });
  }
  for (
    const [key, name, color] of [
      ["lossCls", "class-token term", COLORS.cls],
      ["lossDense", "dense token term", COLORS.dense],
    ] as const
  ) {
    const have = steps.filter((s) => s[key] !== undefined);
    if (have.length) {
      lossSeries.push({
        name: `${name}, mean of ${window}`,
        x: have.map((s) => s.step),
        y: _runningMean(have.map((s) => s[key]!), window),
        color,
        style: "line",
      });
    }
  }
  const lrSeries: _Series[] = [];
  const schedule = options.schedule;
  let xSpan: [number, number] | undefined;
  if (schedule) {
    if (schedule.step.length !== schedule.lr.length) {
      throw new RangeError(
        `trainingFigure: schedule.step and schedule.lr must have the same length, found ${schedule.step.length} steps and ${schedule.lr.length} rates; pass one rate per step`,
      );
    }
    if (schedule.step.length) {
      lrSeries.push({
        name: "planned learning rate",
        x: [...schedule.step],
        y: [...schedule.lr],
        color: COLORS.lr,
        style: "dash",
      });
      xSpan = [Math.min(...schedule.step), Math.max(...schedule.step)];
    }
  }
  if (steps.length) {
    lrSeries.push({
      name: "learning rate",
      x,
      y: steps.map((s) => s.lr),
      color: COLORS.lr,
      style: "line",
    });
  }
  const accSeries: _Series[] = [];
  for (const [which, list] of run.evals) {
    const ex = list.map((e) => e.epoch + 1);
    const color = COLORS[which] ?? "#000000";
    accSeries.push({
      name: `${WHICH_NAME[which] ?? which} top-1`,
      x: ex,
      y: list.map((e) => e.top1),
      color,
      style: "marked",
    }, {
      name: `${WHICH_NAME[which] ?? which} top-5`,
      x: ex,
      y: list.map((e) => e.top5),
      color,
      style: "marked-dash",
    });
  }
  return [
    {
      title: "training loss",
      xLabel: "step",
      yLabel: "loss",
      series: lossSeries,
      xSpan,
      xInteger: true,
      yScientific: false,
    },
    {
      title: "learning rate",
      xLabel: "step",
      yLabel: "learning rate",
      series: lrSeries,
      xSpan,
      xInteger: true,
      yScientific: true,
    },
    {
      title: "validation accuracy",
      xLabel: "epoch",
      yLabel: "accuracy (%)",
      series: accSeries,
      xInteger: true,
      yScientific: false,
    },
  ];
}

// ---------------------------------------------------------------------------
// Plotly

const DOMAINS: readonly [number, number][] = [[0, 0.27], [0.37, 0.63], [
  0.73,
  1,
]];

function _plotly(
  panels: readonly _Panel[],
  title: string,
): { data: unknown[]; layout: Record<string, unknown> } {
  const data: unknown[] = [];
  const layout: Record<string, unknown> = {
    title: { text: title },
    width: 1000,
    height: 420,
    margin: { l: 60, r: 20, t: 70, b: 110 },
    legend: { orientation: "h", x: 0, y: -0.3 },
    hovermode: "closest",
  };
  const annotations: unknown[] = [];
  panels.forEach((p, i) => {
    const n = i === 0 ? "" : String(i + 1);
    for (const s of p.series) {
      const dash = s.style === "dash" || s.style === "marked-dash";
      const trace: Record<string, unknown> = {
        type: "scatter",
        name: s.name,
        x: s.x,
        y: s.y,
        xaxis: `x${n}`,
        yaxis: `y${n}`,
      };
      if (s.style === "faint") {
        trace.mode = "markers";
        trace.marker = { color: s.color, size: 3, opacity: 0.35 };
      } else {
        trace.mode = s.style.startsWith("marked") ? "lines+markers" : "lines";
        trace.line = {
          color: s.color,
          width: 2,
          ...(dash ? { dash: "dash" } : {}),
        };
      }
      data.push(trace);
    }
    const xaxis: Record<string, unknown> = {
      domain: DOMAINS[i],
      anchor: `y${n}`,
      title: { text: p.xLabel },
    };
    if (p.xInteger) xaxis.tickformat = "d";
    // The loss and the learning rate share the step axis.
    if (i === 1) xaxis.matches = "x";
    if (p.xSpan && i === 0) {
      const xs = p.series.flatMap((s) => s.x);
      xaxis.range = [
        Math.min(p.xSpan[0], ...xs),
        Math.max(p.xSpan[1], ...xs),
      ];
    }
    layout[`xaxis${n}`] = xaxis;
    layout[`yaxis${n}`] = {
      anchor: `x${n}`,
      title: { text: p.yLabel },
      ...(p.yScientific ? { exponentformat: "e", tickformat: ".1e" } : {}),
    };
    annotations.push({
      text: `<b>${escapeXml(p.title)}</b>`,
      xref: "paper",
      yref: "paper",
      x: (DOMAINS[i][0] + DOMAINS[i][1]) / 2,
      y: 1.02,
      xanchor: "center",
      yanchor: "bottom",
      showarrow: false,
    });
    if (!p.series.length) {
      annotations.push({
        text: p === panels[2] ? "no evaluation yet" : "no steps yet",
        xref: `x${n} domain`,
        yref: `y${n} domain`,
        x: 0.5,
        y: 0.5,
        showarrow: false,
        font: { color: "#888888" },
      });
    }
  });
  layout.annotations = annotations;
  return { data, layout };
}

// ---------------------------------------------------------------------------
// SVG

interface _Scale {
  lo: number;
  hi: number;
  ticks: number[];
  step: number;
}

/** A range widened to round tick values (1, 2 or 5 times a power of ten). */
function _scale(
  values: readonly number[],
  integer: boolean,
  count = 4,
): _Scale {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) {
    if (Number.isFinite(v)) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
  }
  if (lo > hi) [lo, hi] = [0, 1];
  if (lo === hi) {
    const pad = Math.abs(lo) * 0.1 || 1;
    [lo, hi] = [lo - pad, hi + pad];
  }
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  let step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ??
    10 * mag;
  if (integer) step = Math.max(1, Math.round(step));
  const first = Math.floor(lo / step + 1e-9) * step;
  const last = Math.ceil(hi / step - 1e-9) * step;
  const ticks: number[] = [];
  for (let k = 0; first + k * step <= last + step * 1e-9; k++) {
    // Rounded so that 0.1 + 0.2 shows as 0.3.
    ticks.push(Number((first + k * step).toPrecision(12)));
  }
  return { lo: first, hi: last, ticks, step };
}

function _tick(v: number, s: _Scale, scientific: boolean): string {
  if (scientific) return v === 0 ? "0" : _sci(v);
  const decimals = Math.max(0, -Math.floor(Math.log10(s.step) + 1e-9));
  return v.toFixed(decimals);
}

/**
 * Polyline points in pixels; a break (null or a non-finite value) starts a
 * new line. Long series keep, per pixel column, the first, lowest, highest
 * and last point, so the drawing keeps its envelope at a bounded size.
 */
function _lines(
  s: _Series,
  px: (x: number) => number,
  py: (y: number) => number,
): string[] {
  const runs: [number, number][][] = [[]];
  for (let i = 0; i < s.x.length; i++) {
    const y = s.y[i];
    if (y === null || !Number.isFinite(y) || !Number.isFinite(s.x[i])) {
      if (runs[runs.length - 1].length) runs.push([]);
      continue;
    }
    runs[runs.length - 1].push([px(s.x[i]), py(y)]);
  }
  return runs.filter((r) => r.length).map((run) => {
    const kept: [number, number][] = [];
    let col: [number, number][] = [];
    const flush = () => {
      if (!col.length) return;
      let lo = col[0], hi = col[0];
      for (const p of col) {
        if (p[1] < lo[1]) lo = p;
        if (p[1] > hi[1]) hi = p;
      }
      const picks = new Set([col[0], lo, hi, col[col.length - 1]]);
      kept.push(...col.filter((p) => picks.has(p)));
      col = [];
    };
    for (const p of run) {
      if (col.length && Math.round(p[0]) !== Math.round(col[0][0])) flush();
      col.push(p);
    }
    flush();
    return kept.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" ");
  });
}

const SVG_W = 960, PANEL_W = 320, PLOT_L = 62, PLOT_R = 14;
const TOP = 58, PLOT_H = 200, LEGEND_LINE = 15;

function _svgPanel(p: _Panel, index: number, legendTop: number): string {
  const x0 = index * PANEL_W + PLOT_L, x1 = (index + 1) * PANEL_W - PLOT_R;
  const y0 = TOP, y1 = TOP + PLOT_H;
  const xs = p.series.flatMap((s) => s.x);
  if (p.xSpan) xs.push(...p.xSpan);
  const sx = _scale(xs, p.xInteger);
  const sy = _scale(
    p.series.flatMap((s) => s.y.filter((v): v is number => v !== null)),
    false,
  );
  const px = (x: number) => x0 + ((x - sx.lo) / (sx.hi - sx.lo)) * (x1 - x0);
  const py = (y: number) => y1 - ((y - sy.lo) / (sy.hi - sy.lo)) * (y1 - y0);
  const out: string[] = [];
  out.push(
    `<text x="${(x0 + x1) / 2}" y="${
      TOP - 8
    }" text-anchor="middle" font-weight="bold">${escapeXml(p.title)}</text>`,
  );
  if (!p.series.length) {
    out.push(
      `<rect x="${x0}" y="${y0}" width="${x1 - x0}" height="${
        y1 - y0
      }" fill="none" stroke="#999999"/>`,
      `<text x="${(x0 + x1) / 2}" y="${
        (y0 + y1) / 2
      }" text-anchor="middle" fill="#888888">${
        index === 2 ? "no evaluation yet" : "no steps yet"
      }</text>`,
    );
    return out.join("");
  }
  // Grid and tick labels.
  for (const t of sy.ticks) {
    const y = py(t).toFixed(1);
    out.push(
      `<line x1="${x0}" y1="${y}" x2="${x1}" y2="${y}" stroke="#e5e5e5"/>`,
      `<text x="${
        x0 - 4
      }" y="${y}" text-anchor="end" dominant-baseline="middle" font-size="10">${
        _tick(t, sy, p.yScientific)
      }</text>`,
    );
  }
  for (const t of sx.ticks) {
    const x = px(t).toFixed(1);
    out.push(
      `<line x1="${x}" y1="${y0}" x2="${x}" y2="${y1}" stroke="#e5e5e5"/>`,
      `<text x="${x}" y="${y1 + 13}" text-anchor="middle" font-size="10">${
        _tick(t, sx, false)
      }</text>`,
    );
  }
  out.push(
    `<rect x="${x0}" y="${y0}" width="${x1 - x0}" height="${
      y1 - y0
    }" fill="none" stroke="#999999"/>`,
    `<text x="${(x0 + x1) / 2}" y="${
      y1 + 28
    }" text-anchor="middle" font-size="11">${escapeXml(p.xLabel)}</text>`,
    `<text transform="translate(${index * PANEL_W + 12},${
      (y0 + y1) / 2
    }) rotate(-90)" text-anchor="middle" font-size="11">${
      escapeXml(p.yLabel)
    }</text>`,
  );
  // The data, clipped to the plot box.
  out.push(`<g clip-path="url(#tokenlab-train-clip-${index})">`);
  for (const s of p.series) {
    const dash = s.style === "dash" || s.style === "marked-dash"
      ? ' stroke-dasharray="5,3"'
      : "";
    const attrs = s.style === "faint"
      ? `stroke="${s.color}" stroke-opacity="0.3" stroke-width="1"`
      : `stroke="${s.color}" stroke-width="1.8"${dash}`;
    for (const pts of _lines(s, px, py)) {
      out.push(
        `<polyline fill="none" ${attrs} stroke-linejoin="round" points="${pts}"/>`,
      );
    }
    if (s.style.startsWith("marked")) {
      s.x.forEach((x, i) => {
        const y = s.y[i];
        if (y === null || !Number.isFinite(y)) return;
        out.push(
          `<circle cx="${px(x).toFixed(1)}" cy="${
            py(y).toFixed(1)
          }" r="2.5" fill="${s.color}"/>`,
        );
      });
    }
  }
  out.push("</g>");
  // Legend under the panel, one entry per line.
  p.series.forEach((s, i) => {
    const y = legendTop + i * LEGEND_LINE;
    const dash = s.style === "dash" || s.style === "marked-dash"
      ? ' stroke-dasharray="5,3"'
      : "";
    const opacity = s.style === "faint" ? ' stroke-opacity="0.35"' : "";
    out.push(
      `<line x1="${x0}" y1="${y}" x2="${
        x0 + 22
      }" y2="${y}" stroke="${s.color}" stroke-width="2"${dash}${opacity}/>`,
      `<text x="${
        x0 + 28
      }" y="${y}" dominant-baseline="middle" font-size="11">${
        escapeXml(s.name)
      }</text>`,
    );
  });
  return out.join("");
}

function _svg(panels: readonly _Panel[], title: string): string {
  const legendTop = TOP + PLOT_H + 48;
  const lines = Math.max(1, ...panels.map((p) => p.series.length));
  const height = legendTop + lines * LEGEND_LINE + 4;
  const clips = panels.map((_, i) =>
    `<clipPath id="tokenlab-train-clip-${i}"><rect x="${
      i * PANEL_W + PLOT_L
    }" y="${TOP}" width="${
      PANEL_W - PLOT_L - PLOT_R
    }" height="${PLOT_H}"/></clipPath>`
  ).join("");
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${SVG_W}" height="${height}" viewBox="0 0 ${SVG_W} ${height}" font-family="sans-serif" font-size="12"><defs>${clips}</defs><rect width="${SVG_W}" height="${height}" fill="white"/><text x="${
    SVG_W / 2
  }" y="22" text-anchor="middle" font-size="15" font-weight="bold">${
    escapeXml(title)
  }</text>${panels.map((p, i) => _svgPanel(p, i, legendTop)).join("")}</svg>`;
}

// ---------------------------------------------------------------------------
// Text

/** At most `max` epochs, evenly spaced, the last always among them. */
function _shownEpochs(epochs: readonly number[], max: number): number[] {
  if (epochs.length <= max) return [...epochs];
  const stride = Math.ceil(epochs.length / max);
  const shown = epochs.filter((_, i) => (epochs.length - 1 - i) % stride === 0);
  return shown;
}

function _summary(run: _Run): string {
  const last = run.steps[run.steps.length - 1];
  if (!last) return "";
  return `${last.step} steps (${
    _epochs(last.step, last.stepsPerEpoch)
  } epochs), ${formatDuration(last.elapsed)}, ${
    Math.round(_meanImagesPerSecond(run.steps))
  } img/s`;
}

function _text(run: _Run, title: string): string {
  if (!run.steps.length && !run.evals.size) return `${title}: no records yet`;
  const epochs = [
    ...new Set([
      ...run.steps.map((s) => s.epoch),
      ...[...run.evals.values()].flat().map((e) => e.epoch),
    ]),
  ].sort((a, b) => a - b);
  const shown = _shownEpochs(epochs, 20);
  const header = ["epoch", "step", "train loss", "lr", "img/s"];
  for (const which of run.evals.keys()) {
    header.push(`${WHICH_NAME[which]} top-1`, "top-5");
  }
  const rows = shown.map((epoch) => {
    const steps = run.steps.filter((s) => s.epoch === epoch);
    const last = steps[steps.length - 1];
    const losses = steps.map((s) => s.loss).filter(Number.isFinite);
    const row = [
      String(epoch + 1),
      last ? String(last.step) : "",
      losses.length
        ? _loss(losses.reduce((a, b) => a + b, 0) / losses.length)
        : "",
      last ? _sci(last.lr) : "",
      steps.length ? String(Math.round(_meanImagesPerSecond(steps))) : "",
    ];
    for (const list of run.evals.values()) {
      const e = list.filter((e) => e.epoch === epoch).pop();
      row.push(e ? _pct(e.top1) : "", e ? _pct(e.top5) : "");
    }
    return row;
  });
  const note = shown.length < epochs.length
    ? `\n(${shown.length} of ${epochs.length} epochs shown)`
    : "";
  const summary = _summary(run);
  return `${title}${summary ? ": " + summary : ""}\n${
    _textTable(header, rows, 0)
  }${note}\ntrain loss: mean over the epoch's logged steps; accuracy in %`;
}

/**
 * Mean images per second, each step record weighted by the steps it
 * covers (those since the record before it).
 */
function _meanImagesPerSecond(steps: readonly StepRecord[]): number {
  let sum = 0, weight = 0, prev: number | undefined;
  for (const s of steps) {
    const w = prev === undefined ? Math.max(1, s.stepInEpoch + 1) : s.step -
      prev;
    prev = s.step;
    if (!Number.isFinite(s.imagesPerSecond) || w <= 0) continue;
    sum += s.imagesPerSecond * w;
    weight += w;
  }
  return weight ? sum / weight : NaN;
}

// ---------------------------------------------------------------------------
// Public API

/**
 * The figure of a training run: the training loss by optimizer step (raw
 * points faint, its running mean, and the running means of the
 * class-token and dense token terms (unweighted) when logged), the learning rate by step (the planned schedule dashed when
 * given), and validation top-1 and top-5 by epoch for each set of
 * evaluated weights. Hand it to `figureBundle` for Jupyter.
 *
 * @example
 * ```ts
 * import { figureBundle } from "tokenlab";
 * import { trainingFigure } from "tokenlab/train/display.ts";
 * const parts = trainingFigure([
 *   { kind: "step", epoch: 0, step: 1, stepInEpoch: 0, stepsPerEpoch: 2, loss: 2.3, lr: 1e-4, imagesPerSecond: 300, elapsed: 0.5 },
 *   { kind: "step", epoch: 0, step: 2, stepInEpoch: 1, stepsPerEpoch: 2, loss: 2.1, lr: 2e-4, imagesPerSecond: 320, elapsed: 1 },
 *   { kind: "eval", epoch: 0, step: 2, which: "model", top1: 12.5, top5: 50, loss: 2.2, images: 64 },
 * ], { title: "tiny run" });
 * console.log(parts.text);
 * const bundle = figureBundle(parts);
 * ```
 */
export function trainingFigure(
  records: readonly LogRecord[],
  options: TrainingFigureOptions = {},
): FigureParts {
  const title = options.title ?? "training";
  const run = _read(records);
  const panels = _panels(run, options);
  const text = _text(run, title);
  return {
    plotly: _plotly(panels, title),
    svg: _svg(panels, title),
    text,
    alt: `${title}: training loss, learning rate and validation accuracy`,
    htmlAfter: `<pre>${escapeXml(text)}</pre>`,
  };
}

/**
 * The final table of a run: for each set of evaluated weights ("model",
 * "ema") the last top-1 and top-5, the best top-1 and its epoch (counted
 * from 1), and the last validation loss; then the training loss (mean over
 * the last epoch's logged steps), steps, epochs, images per second (the
 * step records' rates weighted by the steps they cover) and elapsed time.
 *
 * @example
 * ```ts
 * import { resultTable } from "tokenlab/train/display.ts";
 * const { text } = resultTable([
 *   { kind: "step", epoch: 0, step: 4, stepInEpoch: 3, stepsPerEpoch: 4, loss: 1.5, lr: 1e-4, imagesPerSecond: 300, elapsed: 12 },
 *   { kind: "eval", epoch: 0, step: 4, which: "model", top1: 40, top5: 90, loss: 1.4, images: 64 },
 * ]);
 * console.log(text);
 * ```
 */
export function resultTable(
  records: readonly LogRecord[],
): { html: string; text: string } {
  const run = _read(records);
  if (!run.steps.length && !run.evals.size) {
    return { html: "<p>no records yet</p>", text: "no records yet" };
  }
  const header = [
    "weights",
    "top-1",
    "top-5",
    "best top-1 (epoch)",
    "val loss",
  ];
  const rows = [...run.evals].map(([which, list]) => {
    const last = list[list.length - 1];
    const best = list.reduce((b, e) => e.top1 > b.top1 ? e : b);
    return [
      WHICH_NAME[which],
      _pct(last.top1),
      _pct(last.top5),
      `${_pct(best.top1)} (${best.epoch + 1})`,
      _loss(last.loss),
    ];
  });
  const parts: string[] = [];
  const last = run.steps[run.steps.length - 1];
  if (last) {
    const lastEpoch = run.steps.filter((s) => s.epoch === last.epoch)
      .map((s) => s.loss).filter(Number.isFinite);
    if (lastEpoch.length) {
      parts.push(
        `train loss ${
          _loss(lastEpoch.reduce((a, b) => a + b, 0) / lastEpoch.length)
        } (mean of epoch ${last.epoch + 1}'s logged steps)`,
      );
    }
    parts.push(_summary(run));
  }
  const summary = parts.join(", ");
  const evalsText = rows.length
    ? _textTable(header, rows)
    : "no evaluation records";
  const evalsHtml = rows.length
    ? _htmlTable(header, rows)
    : "<p>no evaluation records</p>";
  return {
    text: summary ? `${evalsText}\n${summary}` : evalsText,
    html: `${evalsHtml}${summary ? `<p>${escapeXml(summary)}</p>` : ""}`,
  };
}

/** What the live view of a run shows. */
export interface LiveState {
  /** What runs, e.g. "lvvit_xs32 on synthetic:size=32". */
  title: string;
  /** Epoch the run is in, counted from 0 as in the log (shown from 1). */
  epoch: number;
  /** Epochs of the run. */
  epochs: number;
  /** Optimizer steps done so far. */
  step: number;
  /** Optimizer steps of the whole run. */
  steps: number;
  /** Latest training loss. */
  loss: number | null;
  /** Latest learning rate. */
  lr: number | null;
  /** Latest throughput. */
  imagesPerSecond: number | null;
  /** Estimated seconds left. */
  etaSeconds: number | null;
  /** Recent records; their step losses are drawn as a sparkline. */
  last?: readonly LogRecord[];
  /** Where the run stands. */
  status: "running" | "done" | "stopped" | "failed";
  /** A line shown with the status (why it stopped or failed). */
  message?: string;
}

const BAR = 24;

function _bar(fraction: number): string {
  const f = Math.min(1, Math.max(0, Number.isFinite(fraction) ? fraction : 0));
  const full = Math.round(f * BAR);
  if (full >= BAR) return "=".repeat(BAR);
  return ("=".repeat(Math.max(0, full - 1)) + ">").padEnd(BAR);
}

/** The command line's progress line of a live state. */
function _liveLine(s: LiveState): string {
  const parts = [
    `epoch ${Math.min(s.epoch + 1, s.epochs)}/${s.epochs}`,
    `step ${s.step}/${s.steps}`,
    `[${_bar(s.steps > 0 ? s.step / s.steps : 0)}]`,
  ];
  if (s.loss !== null) parts.push(`loss ${_loss(s.loss)}`);
  if (s.lr !== null) parts.push(`lr ${_sci(s.lr)}`);
  if (s.imagesPerSecond !== null) {
    parts.push(`${Math.round(s.imagesPerSecond)} img/s`);
  }
  if (s.status === "running" && s.etaSeconds !== null) {
    parts.push(`ETA ${formatDuration(s.etaSeconds)}`);
  }
  if (s.status !== "running") {
    parts.push(s.message ? `${s.status}: ${s.message}` : s.status);
  }
  return parts.join(" ");
}

function _sparkline(records: readonly LogRecord[]): string {
  const losses = records.filter((r): r is StepRecord => r.kind === "step")
    .map((r) => r.loss).filter(Number.isFinite);
  if (losses.length < 2) return "";
  const w = 160, h = 32, pad = 2;
  let lo = Math.min(...losses), hi = Math.max(...losses);
  if (hi === lo) [lo, hi] = [lo - 1, hi + 1];
  const pts = losses.map((v, i) =>
    `${(pad + (i / (losses.length - 1)) * (w - 2 * pad)).toFixed(1)},${
      (pad + ((hi - v) / (hi - lo)) * (h - 2 * pad)).toFixed(1)
    }`
  ).join(" ");
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}"><polyline fill="none" stroke="${COLORS.loss}" stroke-width="1.5" points="${pts}"/></svg>`;
  return `<img alt="recent training loss" title="recent training loss: ${
    _loss(losses[losses.length - 1])
  } (range ${_loss(lo)} to ${
    _loss(hi)
  })" style="vertical-align:middle" src="data:image/svg+xml;base64,${
    toBase64(new TextEncoder().encode(svg))
  }"/>`;
}

const STATUS_COLOR: Record<LiveState["status"], string> = {
  running: "#1f77b4",
  done: "#2ca02c",
  stopped: "#ff7f0e",
  failed: "#d62728",
};

/**
 * The live view of a run as a Jupyter bundle: HTML (title, status, a
 * progress bar, the numbers and a sparkline of the recent loss as an image)
 * and the command line's progress line as text.
 *
 * @example
 * ```ts
 * import { liveBundle } from "tokenlab/train/display.ts";
 * const b = liveBundle({
 *   title: "lvvit_xs32 on synthetic:size=32", epoch: 2, epochs: 10, step: 130, steps: 500,
 *   loss: 1.234, lr: 4e-4, imagesPerSecond: 312, etaSeconds: 80, status: "running",
 * });
 * console.log(b["text/plain"]); // epoch 3/10 step 130/500 [=====>  ...] loss 1.234 lr 4.0e-04 312 img/s ETA 1m20s
 * ```
 */
export function liveBundle(state: LiveState): Record<string, unknown> {
  const line = _liveLine(state);
  const pct = state.steps > 0
    ? Math.min(100, Math.max(0, (100 * state.step) / state.steps))
    : 0;
  const color = STATUS_COLOR[state.status];
  const numbers = [
    `epoch ${Math.min(state.epoch + 1, state.epochs)}/${state.epochs}`,
    `step ${state.step}/${state.steps}`,
    state.loss !== null ? `loss ${_loss(state.loss)}` : "",
    state.lr !== null ? `lr ${_sci(state.lr)}` : "",
    state.imagesPerSecond !== null
      ? `${Math.round(state.imagesPerSecond)} img/s`
      : "",
    state.status === "running" && state.etaSeconds !== null
      ? `ETA ${formatDuration(state.etaSeconds)}`
      : "",
  ].filter((s) => s).map(escapeXml).join(" &middot; ");
  const html =
    `<div style="font-family:sans-serif;font-size:13px;max-width:720px">` +
    `<div><b>${escapeXml(state.title)}</b> <span style="color:${color}">${
      escapeXml(state.status)
    }${state.message ? ": " + escapeXml(state.message) : ""}</span></div>` +
    `<div style="display:flex;align-items:center;gap:8px;margin:4px 0">` +
    `<div style="flex:1;height:10px;background:#e5e5e5;border-radius:3px;overflow:hidden">` +
    `<div style="width:${
      pct.toFixed(1)
    }%;height:100%;background:${color}"></div></div>` +
    `<span>${pct.toFixed(0)}%</span>${_sparkline(state.last ?? [])}</div>` +
    `<div>${numbers}</div></div>`;
  return { "text/html": html, "text/plain": line };
}

/** What {@linkcode LiveDisplay} calls to show a bundle (by default `Deno.jupyter.display`). */
export type DisplayFunction = (
  bundle: Record<string, unknown>,
  options: { raw: true; display_id: string; update: boolean },
) => Promise<void>;

/** Options of {@linkcode LiveDisplay}. */
export interface LiveDisplayOptions {
  /** Least milliseconds between two updates that are not forced (default 500). */
  minIntervalMs?: number;
  /** The clock in milliseconds (default `Date.now`). */
  now?: () => number;
  /**
   * Shows a bundle (default: `Deno.jupyter.display` inside a Jupyter
   * kernel; outside one, nothing is shown).
   */
  display?: DisplayFunction;
}

let displayCount = 0;

function _jupyterDisplay(): DisplayFunction | undefined {
  if (!LiveDisplay.available()) return undefined;
  return (bundle, options) => Deno.jupyter.display(bundle, options);
}

/**
 * A notebook output that a training run updates in place: the first
 * {@linkcode LiveDisplay.update} creates it, later ones replace it (at most
 * once every `minIntervalMs`, unless forced or the run is no longer
 * running), and {@linkcode LiveDisplay.finish} replaces it with the final
 * bundle. Outside Jupyter (and without a `display` option) it does nothing.
 *
 * @example
 * ```ts
 * import { liveBundle, LiveDisplay } from "tokenlab/train/display.ts";
 * const shown: boolean[] = [];
 * const live = new LiveDisplay({ display: async (_b, o) => { shown.push(o.update); } });
 * const state = {
 *   title: "demo", epoch: 0, epochs: 1, step: 1, steps: 2, loss: 2.3, lr: 1e-3,
 *   imagesPerSecond: 100, etaSeconds: 1, status: "running" as const,
 * };
 * await live.update(state);
 * await live.finish(liveBundle({ ...state, step: 2, status: "done" }));
 * console.log(live.id, shown); // [false, true]
 * ```
 */
export class LiveDisplay {
  /** The Jupyter display id of the output. */
  readonly id: string;
  readonly #display: DisplayFunction | undefined;
  readonly #now: () => number;
  readonly #minIntervalMs: number;
  #created = false;
  #lastShown = -Infinity;

  /** A live output; nothing is shown until the first update. */
  constructor(options: LiveDisplayOptions = {}) {
    const { minIntervalMs = 500, now = Date.now } = options;
    if (!(minIntervalMs >= 0)) {
      throw new RangeError(
        `LiveDisplay: minIntervalMs must be a number of milliseconds >= 0, found ${minIntervalMs}`,
      );
    }
    this.#minIntervalMs = minIntervalMs;
    this.#now = now;
    this.#display = options.display ?? _jupyterDisplay();
    this.id = `tokenlab-train-${++displayCount}-${
      Math.floor(now()).toString(36)
    }`;
  }

  /**
   * True inside a Jupyter kernel (where `Deno.jupyter.display` exists);
   * never throws elsewhere.
   */
  static available(): boolean {
    try {
      return typeof Deno.jupyter?.display === "function";
    } catch {
      // Outside `deno jupyter`, reading Deno.jupyter throws.
      return false;
    }
  }

  /**
   * Shows the state: creates the output on the first call, replaces it
   * afterwards. A call within `minIntervalMs` of the last one shown is
   * skipped unless `force` is set or the status is not "running".
   */
  async update(state: LiveState, force = false): Promise<void> {
    if (!this.#display) return;
    const now = this.#now();
    if (
      this.#created && !force && state.status === "running" &&
      now - this.#lastShown < this.#minIntervalMs
    ) return;
    await this.#show(liveBundle(state), now);
  }

  /**
   * Replaces the live output with a final bundle (for example the
   * training figure); creates the output when nothing was shown yet.
   */
  async finish(bundle: Record<string, unknown>): Promise<void> {
    if (!this.#display) return;
    await this.#show(bundle, this.#now());
  }

  async #show(bundle: Record<string, unknown>, now: number): Promise<void> {
    const update = this.#created;
    // Marked before the await so that a concurrent call is throttled too.
    this.#created = true;
    this.#lastShown = now;
    await this.#display!(bundle, { raw: true, display_id: this.id, update });
  }
}
