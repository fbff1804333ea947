/**
 * The live view of a training run: its title and status, a progress bar,
 * the latest numbers and a sparkline of the recent loss (HTML), and the
 * command line's progress line (text), as one Jupyter bundle.
 *
 * @module
 */

import { formatDuration } from "../_duration.ts";
import { dataUri } from "../view/data_uri.ts";
import { escapeXml } from "../view/escape.ts";
import { formatScientific } from "../view/number_format.ts";
import { svgDocument, svgElement, svgPoints } from "../view/svg.ts";
import { COLORS } from "./_colors.ts";
import { formatLoss } from "./_records.ts";
import type { LogRecord, StepRecord } from "./log.ts";

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
  if (s.loss !== null) parts.push(`loss ${formatLoss(s.loss)}`);
  if (s.lr !== null) parts.push(`lr ${formatScientific(s.lr)}`);
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
  const points = svgPoints(losses.map((v, i) => [
    pad + (i / (losses.length - 1)) * (w - 2 * pad),
    pad + ((hi - v) / (hi - lo)) * (h - 2 * pad),
  ]));
  const svg = svgDocument(
    w,
    h,
    svgElement("polyline", {
      fill: "none",
      stroke: COLORS.loss,
      "stroke-width": 1.5,
      points,
    }),
  );
  return `<img alt="recent training loss" title="recent training loss: ${
    formatLoss(losses[losses.length - 1])
  } (range ${formatLoss(lo)} to ${
    formatLoss(hi)
  })" style="vertical-align:middle" src="${dataUri("image/svg+xml", svg)}"/>`;
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
 * import { liveBundle } from "tokenlab/train/live_view.ts";
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
    state.loss !== null ? `loss ${formatLoss(state.loss)}` : "",
    state.lr !== null ? `lr ${formatScientific(state.lr)}` : "",
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
