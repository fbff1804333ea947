/**
 * What the training views read from a run's log records: one record per
 * step and one per (weights, step) (a run resumed from an earlier
 * checkpoint logs the steps after it again; the last record counts), the
 * run's summary line, and the number formats the views share.
 *
 * Epochs are shown counted from 1 (after the first epoch: "epoch 1"); the
 * log counts them from 0.
 *
 * @module
 */

import type { EvalRecord, LogRecord, StepRecord } from "./log.ts";
import { formatDuration } from "../_duration.ts";

/** The records sorted, one per step and one per (weights, step). */
export interface Run {
  /** Step records by step. */
  steps: StepRecord[];
  /** Evaluation records by weights, each list by step. */
  evals: Map<EvalRecord["which"], EvalRecord[]>;
}

/** The order in which the sets of evaluated weights are shown. */
export const WHICH_ORDER: readonly EvalRecord["which"][] = ["model", "ema"];
/** How each set of evaluated weights is named in figures and tables. */
export const WHICH_NAME: Record<EvalRecord["which"], string> = {
  model: "model",
  ema: "EMA",
};

/** The records of a log, one per step and one per (weights, step), sorted. */
export function readRun(records: readonly LogRecord[]): Run {
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

/** A loss: three decimals, or four significant digits from 1000 on. */
export function formatLoss(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  return Math.abs(v) >= 1000 ? v.toPrecision(4) : v.toFixed(3);
}

/** An accuracy in %: two decimals. */
export function formatPercent(v: number): string {
  return v.toFixed(2);
}

/** Epochs as a whole number, or with one decimal when the last one is partial. */
export function formatEpochs(steps: number, stepsPerEpoch: number): string {
  const e = steps / stepsPerEpoch;
  return Number.isInteger(e) ? String(e) : e.toFixed(1);
}

/** "steps (epochs), elapsed, img/s" of the last step record; "" without steps. */
export function runSummary(run: Run): string {
  const last = run.steps[run.steps.length - 1];
  if (!last) return "";
  return `${last.step} steps (${
    formatEpochs(last.step, last.stepsPerEpoch)
  } epochs), ${formatDuration(last.elapsed)}, ${
    Math.round(meanImagesPerSecond(run.steps))
  } img/s`;
}

/**
 * Mean images per second, each step record weighted by the steps it
 * covers (those since the record before it).
 */
export function meanImagesPerSecond(steps: readonly StepRecord[]): number {
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
