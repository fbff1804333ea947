/**
 * The figure of a training run, drawn from its log records: the loss, the
 * learning rate and the validation accuracy in three panels (through the
 * view layer's panel chart: plotly and SVG), and a text table by epoch.
 *
 * Epochs are shown counted from 1 (after the first epoch: "epoch 1"); the
 * log counts them from 0. A step or an evaluation logged twice (a run
 * resumed from an earlier checkpoint logs the steps after it again) is
 * drawn once, from its last record.
 *
 * @module
 */

import {
  chartFigure,
  type ChartPanel,
  type ChartSeries,
  chartSvg,
} from "../view/chart.ts";
import type { FigureParts } from "../view/bundle.ts";
import { escapeXml } from "../view/escape.ts";
import { formatScientific } from "../view/number_format.ts";
import { tableText } from "../view/table.ts";
import { COLORS } from "./_colors.ts";
import {
  formatLoss,
  formatPercent,
  meanImagesPerSecond,
  readRun,
  type Run,
  runSummary,
  WHICH_NAME,
} from "./_records.ts";
import type { LogRecord } from "./log.ts";

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

function _panels(run: Run, options: TrainingFigureOptions): ChartPanel[] {
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
  const lossSeries: ChartSeries[] = [];
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
  const lrSeries: ChartSeries[] = [];
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
  const accSeries: ChartSeries[] = [];
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
      empty: "no steps yet",
    },
    {
      title: "learning rate",
      xLabel: "step",
      yLabel: "learning rate",
      series: lrSeries,
      xSpan,
      xInteger: true,
      yScientific: true,
      empty: "no steps yet",
      // The loss and the learning rate share the step axis.
      matchX: 0,
    },
    {
      title: "validation accuracy",
      xLabel: "epoch",
      yLabel: "accuracy (%)",
      series: accSeries,
      xInteger: true,
      yScientific: false,
      empty: "no evaluation yet",
    },
  ];
}

/** At most `max` epochs, evenly spaced, the last always among them. */
function _shownEpochs(epochs: readonly number[], max: number): number[] {
  if (epochs.length <= max) return [...epochs];
  const stride = Math.ceil(epochs.length / max);
  const shown = epochs.filter((_, i) => (epochs.length - 1 - i) % stride === 0);
  return shown;
}

function _text(run: Run, title: string): string {
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
        ? formatLoss(losses.reduce((a, b) => a + b, 0) / losses.length)
        : "",
      last ? formatScientific(last.lr) : "",
      steps.length ? String(Math.round(meanImagesPerSecond(steps))) : "",
    ];
    for (const list of run.evals.values()) {
      const e = list.filter((e) => e.epoch === epoch).pop();
      row.push(e ? formatPercent(e.top1) : "", e ? formatPercent(e.top5) : "");
    }
    return row;
  });
  const note = shown.length < epochs.length
    ? `\n(${shown.length} of ${epochs.length} epochs shown)`
    : "";
  const summary = runSummary(run);
  return `${title}${summary ? ": " + summary : ""}\n${
    tableText({ header, rows, align: header.map(() => "right") })
  }${note}\ntrain loss: mean over the epoch's logged steps; accuracy in %`;
}

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
 * import { trainingFigure } from "tokenlab/train/training_figure.ts";
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
  const run = readRun(records);
  const chart = { title, panels: _panels(run, options), id: "tokenlab-train" };
  const text = _text(run, title);
  return {
    plotly: chartFigure(chart),
    svg: chartSvg(chart),
    text,
    alt: `${title}: training loss, learning rate and validation accuracy`,
    htmlAfter: `<pre>${escapeXml(text)}</pre>`,
  };
}
