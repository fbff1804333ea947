/**
 * The error of bad loader options or a batch that cannot be assembled;
 * exported through `loader.ts`.
 *
 * @module
 */

import { TokenlabError } from "../errors.ts";

/** Raised for bad loader options. */
export class LoaderError extends TokenlabError {
  /** Creates the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
  }
}
