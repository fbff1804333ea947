/**
 * The learning-rate schedule of the official recipe: timm's cosine schedule
 * (`CosineLRScheduler`, one cycle, warmup not prefixed) with a linear warmup
 * from `warmupLr` and a cooldown at `minLr` after the cosine.
 *
 * @module
 */

import { TokenlabError } from "../errors.ts";
import type { ResolvedTrainConfig } from "./config.ts";

/** Raised for a schedule, or a position in it, that does not make sense. */
export class ScheduleError extends TokenlabError {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
  }
}

/**
 * A warmup + cosine + cooldown schedule. The official LV-ViT recipe uses
 * warmupLr 1e-6, minLr 1e-5, 300 epochs, 5 warmup and 10 cooldown epochs,
 * updated per epoch.
 */
export interface ScheduleConfig {
  /** Peak (base) learning rate, reached when the warmup ends. */
  lr: number;
  /** Learning rate at the very start of the warmup (official 1e-6). */
  warmupLr: number;
  /** Learning rate at the end of the cosine and during the cooldown (official 1e-5). */
  minLr: number;
  /** Length of the cosine in epochs, warmup included (timm's t_initial; official 300). */
  epochs: number;
  /** Epochs of linear warmup inside `epochs` (official 5; 0: none). */
  warmupEpochs: number;
  /** Extra epochs at `minLr` after the cosine (official 10). */
  cooldownEpochs: number;
  /**
   * "epoch": the rate is constant within an epoch (the official recipe,
   * timm's t_in_epochs); "step": it moves every step, at the fractional
   * epoch epoch + stepInEpoch / stepsPerEpoch.
   */
  update: "epoch" | "step";
}

function checkConfig(s: ScheduleConfig): void {
  for (const k of ["lr", "warmupLr", "minLr"] as const) {
    const v = s[k];
    if (!(typeof v === "number" && Number.isFinite(v) && v >= 0)) {
      throw new ScheduleError(
        `schedule ${k} must be a finite number >= 0, found ${v}; the official warmupLr is 1e-6 and minLr 1e-5`,
      );
    }
  }
  if (!(Number.isInteger(s.epochs) && s.epochs > 0)) {
    throw new ScheduleError(
      `schedule epochs must be a positive integer (the length of the cosine), found ${s.epochs}`,
    );
  }
  if (!(Number.isInteger(s.cooldownEpochs) && s.cooldownEpochs >= 0)) {
    throw new ScheduleError(
      `schedule cooldownEpochs must be an integer >= 0, found ${s.cooldownEpochs}; use 0 for no cooldown`,
    );
  }
  const w = s.warmupEpochs;
  if (!(Number.isFinite(w) && w >= 0 && w <= s.epochs)) {
    throw new ScheduleError(
      `schedule warmupEpochs must be a number in [0, epochs = ${s.epochs}], found ${w}; the warmup is part of the cosine's epochs`,
    );
  }
  if (s.update !== "epoch" && s.update !== "step") {
    throw new ScheduleError(
      `schedule update must be "epoch" (the official recipe) or "step", found ${
        JSON.stringify(s.update)
      }`,
    );
  }
}

function checkStepsPerEpoch(stepsPerEpoch: number): void {
  if (!(Number.isInteger(stepsPerEpoch) && stepsPerEpoch > 0)) {
    throw new ScheduleError(
      `stepsPerEpoch must be a positive integer (batches in an epoch), found ${stepsPerEpoch}`,
    );
  }
}

/** The rate at (possibly fractional) epoch t of a checked schedule. */
function rateAt(s: ScheduleConfig, t: number): number {
  if (t < s.warmupEpochs) {
    return s.warmupLr + t * (s.lr - s.warmupLr) / s.warmupEpochs;
  }
  if (t < s.epochs) {
    return s.minLr +
      0.5 * (s.lr - s.minLr) * (1 + Math.cos(Math.PI * t / s.epochs));
  }
  return s.minLr;
}

/**
 * Epochs of the whole run: the cosine's, then the cooldown's (the official
 * training runs `t_initial + cooldown_epochs`).
 *
 * @example
 * ```ts
 * import { totalEpochs } from "tokenlab";
 * console.log(totalEpochs({ lr: 1.6e-3, warmupLr: 1e-6, minLr: 1e-5,
 *   epochs: 300, warmupEpochs: 5, cooldownEpochs: 10, update: "epoch" })); // 310
 * ```
 */
export function totalEpochs(s: ScheduleConfig): number {
  checkConfig(s);
  return s.epochs + s.cooldownEpochs;
}

/**
 * The learning rate of one optimizer step: step `stepInEpoch` (0-based) of
 * epoch `epoch` (0-based) in a run of `stepsPerEpoch` steps per epoch.
 * Linear warmup from `warmupLr` towards `lr` over `warmupEpochs`, then
 * `minLr + (lr - minLr) (1 + cos(pi t / epochs)) / 2`, then `minLr`, with t
 * the epoch (update "epoch") or the fractional epoch (update "step").
 *
 * @example
 * ```ts
 * import { learningRate, type ScheduleConfig } from "tokenlab";
 * const s: ScheduleConfig = { lr: 1e-3, warmupLr: 1e-6, minLr: 1e-5,
 *   epochs: 100, warmupEpochs: 5, cooldownEpochs: 10, update: "epoch" };
 * console.log(learningRate(s, 0, 0, 50)); // 1e-6: the warmup starts low
 * console.log(learningRate(s, 50, 10, 50)); // 0.000505: half way down the cosine
 * console.log(learningRate(s, 105, 0, 50)); // 1e-5: cooldown
 * ```
 */
export function learningRate(
  s: ScheduleConfig,
  epoch: number,
  stepInEpoch: number,
  stepsPerEpoch: number,
): number {
  checkConfig(s);
  checkStepsPerEpoch(stepsPerEpoch);
  const total = s.epochs + s.cooldownEpochs;
  if (!(Number.isInteger(epoch) && epoch >= 0 && epoch < total)) {
    throw new ScheduleError(
      `epoch must be an integer in [0, ${total}) (${s.epochs} cosine + ${s.cooldownEpochs} cooldown epochs), found ${epoch}`,
    );
  }
  if (
    !(Number.isInteger(stepInEpoch) && stepInEpoch >= 0 &&
      stepInEpoch < stepsPerEpoch)
  ) {
    throw new ScheduleError(
      `stepInEpoch must be an integer in [0, stepsPerEpoch = ${stepsPerEpoch}), found ${stepInEpoch}`,
    );
  }
  const t = s.update === "epoch" ? epoch : epoch + stepInEpoch / stepsPerEpoch;
  return rateAt(s, t);
}

/**
 * The learning rate of every optimizer step of the run, in order (step
 * index 0-based, `totalEpochs(s) * stepsPerEpoch` of them), for figures.
 *
 * @example
 * ```ts
 * import { scheduleCurve } from "tokenlab";
 * const { step, lr } = scheduleCurve({ lr: 1e-3, warmupLr: 1e-6, minLr: 1e-5,
 *   epochs: 10, warmupEpochs: 2, cooldownEpochs: 2, update: "step" }, 4);
 * console.log(step.length, lr[0], lr[lr.length - 1]); // 48 0.000001 0.00001
 * ```
 */
export function scheduleCurve(
  s: ScheduleConfig,
  stepsPerEpoch: number,
): { step: number[]; lr: number[] } {
  checkConfig(s);
  checkStepsPerEpoch(stepsPerEpoch);
  const total = s.epochs + s.cooldownEpochs;
  const step: number[] = [], lr: number[] = [];
  for (let e = 0; e < total; e++) {
    for (let i = 0; i < stepsPerEpoch; i++) {
      step.push(e * stepsPerEpoch + i);
      lr.push(rateAt(s, s.update === "epoch" ? e : e + i / stepsPerEpoch));
    }
  }
  return { step, lr };
}

/**
 * The schedule a training config runs: its `lr`, `warmupLr`, `minLr`,
 * `epochs`, `warmupEpochs`, `cooldownEpochs` and `schedUpdate`.
 *
 * @example
 * ```ts
 * import { resolveTrainConfig, scheduleOfConfig, totalEpochs } from "tokenlab";
 * const c = resolveTrainConfig({ data: "synthetic", epochs: 20, cooldownEpochs: 2 });
 * console.log(totalEpochs(scheduleOfConfig(c))); // 22
 * ```
 */
export function scheduleOfConfig(
  c: Pick<
    ResolvedTrainConfig,
    | "lr"
    | "warmupLr"
    | "minLr"
    | "epochs"
    | "warmupEpochs"
    | "cooldownEpochs"
    | "schedUpdate"
  >,
): ScheduleConfig {
  return {
    lr: c.lr,
    warmupLr: c.warmupLr,
    minLr: c.minLr,
    epochs: c.epochs,
    warmupEpochs: c.warmupEpochs,
    cooldownEpochs: c.cooldownEpochs,
    update: c.schedUpdate,
  };
}
