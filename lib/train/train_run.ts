/**
 * A finished (or stopped) training run and its final metrics.
 *
 * @module
 */

import type { LvVit } from "../models/lvvit.ts";
import { figureBundle } from "../view/bundle.ts";
import type { ResolvedTrainConfig } from "./config.ts";
import type { EvalRecord, LogRecord } from "./log.ts";
import { resultTable } from "./result_table.ts";
import { trainingFigure } from "./training_figure.ts";
import { runTitle } from "./_run_setup.ts";

/** Final metrics of a run. */
export interface TrainResult {
  /** The last evaluation of the trained weights. */
  model: EvalRecord | null;
  /** The last evaluation of the moving average. */
  ema: EvalRecord | null;
  /** The mean training loss of the last epoch's logged steps. */
  trainLoss: number | null;
  /** Optimizer steps done (all sessions of a resumed run; logged or not). */
  steps: number;
  /** Optimizer steps done in this session (after the checkpoint it resumed from). */
  stepsThisSession: number;
  /** The newest checkpoint of the run (written or resumed from; null: none, or no `output`). */
  lastCheckpoint: string | null;
  /** Seconds of training (all sessions of a resumed run). */
  elapsed: number;
  /**
   * Unreadable images left out (`onBadImage: "skip"`) in this session:
   * `files`, the distinct training files; `train` and `val`, the times one
   * was left out of a training batch (once per epoch) or an evaluation.
   */
  skipped: { files: string[]; train: number; val: number };
}

/** A finished (or stopped) training run: its config, log, weights and result. Displays itself in a notebook. */
export class TrainRun {
  /** The resolved config. */
  readonly config: ResolvedTrainConfig;
  /** Every record logged. */
  readonly records: readonly LogRecord[];
  /** The trained model (owned by the run: {@linkcode TrainRun.dispose}). */
  readonly model: LvVit;
  /** The moving average of the weights, when kept. */
  readonly ema: LvVit | null;
  /** "done", or "stopped" by the signal. */
  readonly status: "done" | "stopped";
  /** The final metrics. */
  readonly result: TrainResult;
  /** The learning rate of every step of the full run. */
  readonly schedule: { step: number[]; lr: number[] };

  /** Wraps a run's parts (made by {@linkcode train}). */
  constructor(init: {
    config: ResolvedTrainConfig;
    records: readonly LogRecord[];
    model: LvVit;
    ema: LvVit | null;
    status: "done" | "stopped";
    result: TrainResult;
    schedule: { step: number[]; lr: number[] };
  }) {
    this.config = init.config;
    this.records = init.records;
    this.model = init.model;
    this.ema = init.ema;
    this.status = init.status;
    this.result = init.result;
    this.schedule = init.schedule;
  }

  /** The run's folder (null when nothing was written). */
  get output(): string | null {
    return this.config.output;
  }

  /** Title of the run's figure. */
  get title(): string {
    return runTitle(this.config);
  }

  /** The Jupyter bundle: the loss, lr and accuracy curves and the result table. */
  bundle(): Record<string, unknown> {
    const parts = trainingFigure(this.records, {
      title: this.title,
      schedule: this.schedule,
    });
    const table = resultTable(this.records);
    return figureBundle({
      ...parts,
      text: `${this.toString()}\n${table.text}`,
      htmlAfter: table.html,
    });
  }

  /** Jupyter's display hook. */
  [Symbol.for("Jupyter.display")](): Record<string, unknown> {
    return this.bundle();
  }

  /** One line: status, steps and the final accuracy. */
  toString(): string {
    const r = this.result;
    const acc = (e: EvalRecord | null, what: string) =>
      e === null
        ? ""
        : `, ${what} top-1 ${e.top1.toFixed(2)}% top-5 ${e.top5.toFixed(2)}%`;
    return `${this.title}: ${this.status} after ${r.steps} steps (${
      r.elapsed.toFixed(0)
    } s)${acc(r.model, "model")}${acc(r.ema, "EMA")}`;
  }

  /** Releases the model and its moving average. */
  dispose(): void {
    this.model.dispose();
    this.ema?.dispose();
  }
}
