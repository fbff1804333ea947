/**
 * The training state a checkpoint's `state.json` holds; exported through
 * `checkpoint.ts`.
 *
 * @module
 */

import type { ResolvedTrainConfig } from "./config.ts";
import type { LogRecord } from "./log.ts";
import type { OptimizerState } from "./optimizer.ts";

/**
 * A change of a run's length (`resume` with `extend`): from the checkpoint
 * at `step` on, the schedule's `epochs` (warmup and cosine) are `to`
 * instead of `from`; the steps up to `step` ran under `from`.
 */
export interface ScheduleExtension {
  /** The step the run continued from (0: before its first checkpoint). */
  step: number;
  /** The schedule's `epochs` before. */
  from: number;
  /** The schedule's `epochs` after. */
  to: number;
  /** When (ISO 8601). */
  at: string;
}

/** Where the training continues, and what the run had done by then. */
export interface TrainState {
  /** File format tag. */
  format: "tokenlab-train-state";
  /** Format version: 2 has `state.sha256` beside it; 1 (older) has not. */
  version: 1 | 2;
  /** Optimizer steps done. */
  step: number;
  /** Epoch to continue in. */
  epoch: number;
  /** Next step of that epoch; equal to `stepsPerEpoch` when its steps are done and its evaluation is not. */
  stepInEpoch: number;
  /** Steps per epoch when the checkpoint was written. */
  stepsPerEpoch: number;
  /** Seconds of training so far. */
  elapsed: number;
  /** The optimizer's scalars (its moments are in optimizer.safetensors). */
  optimizer: Omit<OptimizerState, "moments">;
  /**
   * The random state. Every draw of the run comes from a generator derived
   * from the seed and the position (epoch, step, sample), so the position
   * is the whole state.
   */
  rng: { seed: number; scheme: string };
  /** The run's resolved config. */
  config: ResolvedTrainConfig;
  /** Every record logged up to this checkpoint. */
  records: LogRecord[];
  /** Size and SHA-256 of each tensor file of the checkpoint. */
  files: Record<string, { bytes: number; sha256: string }>;
  /** tokenlab version that wrote it. */
  tokenlab: string;
  /** The run's extensions so far, oldest first (absent: never extended). */
  extensions?: ScheduleExtension[];
}
