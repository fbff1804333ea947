/**
 * The records a training run logs: one JSON object per line in
 * `<output>/log.jsonl`, the same objects the live displays draw.
 *
 * @module
 */

/** One logged optimizer step (every `logEvery` steps and the last of each epoch). */
export interface StepRecord {
  /** Discriminator. */
  kind: "step";
  /** Epoch of the step (0-based). */
  epoch: number;
  /** Optimizer steps done so far in the run, this one included (1-based). */
  step: number;
  /** Position of the step in its epoch (0-based). */
  stepInEpoch: number;
  /** Steps in an epoch. */
  stepsPerEpoch: number;
  /** The training loss of this step's batch. */
  loss: number;
  /** Its class-token term (unweighted), when the loss has parts. */
  lossCls?: number;
  /** Its dense token term (unweighted), when the loss has one. */
  lossDense?: number;
  /** Learning rate this step used. */
  lr: number;
  /** Global gradient norm before clipping (when clipping is on). */
  gradNorm?: number;
  /** Images per second over the steps since the previous step record. */
  imagesPerSecond: number;
  /** Seconds of training so far (summed over resumed sessions). */
  elapsed: number;
}

/** One evaluation over the validation split, after an epoch (or on demand). */
export interface EvalRecord {
  /** Discriminator. */
  kind: "eval";
  /** Epoch just finished (0-based). */
  epoch: number;
  /** Optimizer steps done so far. */
  step: number;
  /** The weights evaluated: the trained model or its moving average. */
  which: "model" | "ema";
  /** Top-1 accuracy in percent. */
  top1: number;
  /** Top-5 accuracy in percent (top-k with k = classes when there are fewer than 5). */
  top5: number;
  /** Mean cross-entropy against the true labels. */
  loss: number;
  /** Images evaluated. */
  images: number;
}

/** A checkpoint written. */
export interface CheckpointRecord {
  /** Discriminator. */
  kind: "checkpoint";
  /** Epoch of the step the checkpoint holds. */
  epoch: number;
  /** Optimizer steps the checkpoint holds. */
  step: number;
  /** Folder name under `<output>/checkpoints/`. */
  name: string;
}

/** Any record of the log. */
export type LogRecord = StepRecord | EvalRecord | CheckpointRecord;
