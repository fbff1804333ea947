/**
 * The error of the browser driver ({@linkcode Browser} in `browser.ts`),
 * shared by its pieces: finding the browser, the DevTools connection and the
 * page checks.
 *
 * @module
 */

import { TokenlabError } from "../errors.ts";

/**
 * Thrown for a browser that cannot be found, started or driven; the message
 * says what was expected, what was found and what to do.
 */
export class BrowserError extends TokenlabError {
  /** Creates the error with its message. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
  }
}
