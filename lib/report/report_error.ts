/**
 * The error of a report run that stops it before any notebook executes: an
 * unknown notebook, a report folder that would lose something, a bad
 * `--scale` or parameters, a missing Jupyter stack.
 *
 * @module
 */

import { TokenlabError } from "../errors.ts";

/** An error that stops a report run before any notebook executes. */
export class ReportError extends TokenlabError {
  /** Creates the error with its message. */
  constructor(message: string) {
    super(message);
  }
}
