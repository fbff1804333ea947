/**
 * The line `tokenlab train` prints after an evaluation. Epochs are counted
 * from 1 for people, as the progress bar counts them (`epoch 3/10`); the
 * log's records keep the 0-based epoch the library uses.
 *
 * @module
 */

import type { EvalRecord } from "../train/log.ts";

/**
 * `epoch 3/10 model top-1 ...` for an evaluation record (epoch 2, 0-based)
 * of a run of `epochs` epochs in all.
 *
 * @example
 * ```ts
 * import { evalLine } from "tokenlab/cli/_eval_line.ts";
 * console.log(evalLine({ kind: "eval", epoch: 0, step: 4, which: "model",
 *   top1: 50, top5: 100, loss: 0.5, images: 64 }, 2));
 * // epoch 1/2 model top-1 50.00% top-5 100.00% val loss 0.5000 (64 images)
 * ```
 */
export function evalLine(r: EvalRecord, epochs: number): string {
  return `epoch ${r.epoch + 1}/${epochs} ${
    r.which === "ema" ? "EMA  " : "model"
  } top-1 ${r.top1.toFixed(2)}% top-5 ${r.top5.toFixed(2)}% val loss ${
    r.loss.toFixed(4)
  } (${r.images} images)`;
}
