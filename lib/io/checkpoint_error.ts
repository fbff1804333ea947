/**
 * The error of the tensor-file readers and writers: a file that cannot be
 * read (truncated, hostile, of another format) or written.
 *
 * @module
 */

import { TokenlabError } from "../errors.ts";

/**
 * Thrown when a checkpoint cannot be read: what was expected, what was found, what to do.
 *
 * @example
 * ```ts
 * import { CheckpointError } from "tokenlab/io/checkpoint_error.ts";
 * const e = new CheckpointError("x.pt: expected a ZIP archive, found 3 bytes; fetch it again");
 * console.log(e.name); // CheckpointError
 * ```
 */
export class CheckpointError extends TokenlabError {
  /** Makes an error with this message (and an optional cause). */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
  }
}
