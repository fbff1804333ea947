/**
 * The error of the notebook parameters.
 *
 * @module
 */

/** A parameters cell, or a value given for one, that cannot be used. */
export class ParameterError extends Error {
  /** Creates the error with its message. */
  constructor(message: string) {
    super(message);
    this.name = "ParameterError";
  }
}
