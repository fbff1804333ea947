/**
 * The error of a training run that cannot go on (re-exported by the engine).
 *
 * @module
 */

/**
 * Raised when training cannot go on: a non-finite loss, unlabelled data.
 *
 * @example
 * ```ts
 * import { TrainingError } from "tokenlab";
 * const e = new TrainingError("the training loss is NaN");
 * console.log(e.name, e.message); // TrainingError the training loss is NaN
 * ```
 */
export class TrainingError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "TrainingError";
  }
}
