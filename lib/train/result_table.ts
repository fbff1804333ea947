/**
 * The final result table of a training run, read from its log records:
 * the last and best accuracy of each set of evaluated weights, then the
 * run's training loss, steps, epochs, throughput and time (as text and
 * HTML, through the view layer's table).
 *
 * @module
 */

import { escapeXml } from "../view/escape.ts";
import { tableHtml, type TableModel, tableText } from "../view/table.ts";
import {
  formatLoss,
  formatPercent,
  readRun,
  runSummary,
  WHICH_NAME,
} from "./_records.ts";
import type { LogRecord } from "./log.ts";

/**
 * The final table of a run: for each set of evaluated weights ("model",
 * "ema") the last top-1 and top-5, the best top-1 and its epoch (counted
 * from 1), and the last validation loss; then the training loss (mean over
 * the last epoch's logged steps), steps, epochs, images per second (the
 * step records' rates weighted by the steps they cover) and elapsed time.
 *
 * @example
 * ```ts
 * import { resultTable } from "tokenlab/train/result_table.ts";
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
  const run = readRun(records);
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
      formatPercent(last.top1),
      formatPercent(last.top5),
      `${formatPercent(best.top1)} (${best.epoch + 1})`,
      formatLoss(last.loss),
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
          formatLoss(lastEpoch.reduce((a, b) => a + b, 0) / lastEpoch.length)
        } (mean of epoch ${last.epoch + 1}'s logged steps)`,
      );
    }
    parts.push(runSummary(run));
  }
  const summary = parts.join(", ");
  // The weights' names left, the numbers right.
  const table: TableModel = {
    header,
    rows,
    align: header.map((_, c) => c === 0 ? "left" : "right"),
  };
  const evalsText = rows.length ? tableText(table) : "no evaluation records";
  const evalsHtml = rows.length
    ? tableHtml(table)
    : "<p>no evaluation records</p>";
  return {
    text: summary ? `${evalsText}\n${summary}` : evalsText,
    html: `${evalsHtml}${summary ? `<p>${escapeXml(summary)}</p>` : ""}`,
  };
}
