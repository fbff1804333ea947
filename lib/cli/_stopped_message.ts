/**
 * What `tokenlab train` says when Ctrl-C stopped a run: how many steps ran
 * (all of them, logged or not), where the newest checkpoint is or that
 * there is none, that no final weights were written, and the command line
 * that continues the run.
 *
 * @module
 */

import { resumeCommandLine } from "./_resume_command.ts";

/** The parts of a stopped run the message needs. */
export interface StoppedRun {
  /** Steps done in all, the checkpoint resumed from included. */
  steps: number;
  /** Steps done in this session. */
  stepsThisSession: number;
  /** Steps of the whole run. */
  totalSteps: number;
  /** The newest checkpoint (null: none). */
  lastCheckpoint: string | null;
  /** The run's folder (null: nothing written). */
  output: string | null;
}

/**
 * The lines printed for a stopped run; `args` are the arguments after
 * `train`, for the resume command.
 *
 * @example
 * ```ts
 * import { stoppedMessage } from "tokenlab/cli/_stopped_message.ts";
 * console.log(stoppedMessage({ steps: 11, stepsThisSession: 11, totalSteps: 40,
 *   lastCheckpoint: null, output: null }, ["--data", "mnist"]));
 * // interrupted after 11 of 40 steps; nothing was saved (no --output): ...
 * ```
 */
export function stoppedMessage(
  run: StoppedRun,
  args: readonly string[],
): string {
  const ran = `interrupted after ${run.steps} of ${run.totalSteps} steps${
    run.stepsThisSession !== run.steps
      ? ` (${run.stepsThisSession} in this session)`
      : ""
  }`;
  if (run.output === null) {
    return `${ran}; nothing was saved (no --output): the run cannot be continued; give --output DIR to keep checkpoints you can resume from`;
  }
  const where = run.lastCheckpoint === null
    ? "no checkpoint was written yet, so a resume starts from step 0"
    : `last checkpoint: ${run.lastCheckpoint}`;
  return [
    `${ran}; ${where}`,
    `no final weights were written (${run.output}/model.safetensors is written when the run finishes)`,
    `to continue: ${resumeCommandLine(args)}`,
  ].join("\n");
}
