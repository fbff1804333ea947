/**
 * The error of the notebook parameters.
 *
 * @module
 */

import { TokenlabError } from "../../errors.ts";

/**
 * A parameters cell, or a value given for one, that cannot be used.
 *
 * @example
 * ```ts
 * import { ParameterError, parseParameters } from "tokenlab/report/params/mod.ts";
 * try {
 *   parseParameters("const seed = Math.random();");
 * } catch (e) {
 *   console.log(e instanceof ParameterError, (e as Error).message); // true line 1: ...
 * }
 * ```
 */
export class ParameterError extends TokenlabError {
  /** Creates the error with its message. */
  constructor(message: string) {
    super(message);
  }
}
