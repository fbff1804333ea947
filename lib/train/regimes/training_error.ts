/**
 * The errors of a training run that cannot go on (re-exported by the
 * engine).
 *
 * @module
 */

import type { ConfigFieldErrorOptions, TrainConfig } from "../config.ts";
import { TokenlabError } from "../../errors.ts";

/**
 * Raised when training cannot go on: a non-finite loss, unlabelled data.
 * `fields` lists the config fields its message quotes (as `` `field` ``),
 * for the CLI to name as flags.
 *
 * @example
 * ```ts
 * import { TrainingError } from "tokenlab";
 * const e = new TrainingError("the training loss is NaN");
 * console.log(e.name, e.message); // TrainingError the training loss is NaN
 * ```
 */
export class TrainingError extends TokenlabError {
  /** The config fields the message quotes. */
  readonly fields: readonly (keyof TrainConfig)[];

  /** Creates the error; `options.fields` lists the fields it quotes. */
  constructor(message: string, options: ConfigFieldErrorOptions = {}) {
    super(message, options);
    this.fields = options.fields ?? [];
  }
}

/**
 * Raised when a training step's loss, or its gradient norm, is not finite
 * (the NaN guard): the step was not applied. A {@linkcode TrainingError}
 * that carries the values, so that callers recognise it by its class.
 *
 * @example
 * ```ts
 * import { NonFiniteLossError, TrainingError } from "tokenlab";
 * const e = new NonFiniteLossError(NaN);
 * console.log(e instanceof TrainingError, e.loss, e.message);
 * // true NaN the training loss is NaN
 * ```
 */
export class NonFiniteLossError extends TrainingError {
  /** The step's loss. */
  readonly loss: number;
  /** The gradient norm, when it is the non-finite value (the loss is finite then). */
  readonly gradNorm: number | undefined;

  /**
   * Creates the error for `loss` (and `gradNorm`, when that is what is not
   * finite); `message` replaces the default one, and `options.fields` lists
   * the config fields it quotes.
   */
  constructor(
    loss: number,
    gradNorm?: number,
    message?: string,
    options: ConfigFieldErrorOptions = {},
  ) {
    super(
      message ??
        (gradNorm === undefined
          ? `the training loss is ${loss}`
          : `the training loss is ${loss}, but its gradient norm is ${gradNorm}`),
      options,
    );
    this.loss = loss;
    this.gradNorm = gradNorm;
  }
}
