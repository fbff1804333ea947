/**
 * The one base of the kit's errors. Every error tokenlab raises for bad
 * input, a bad file or a failed step is a {@linkcode TokenlabError}; each
 * domain keeps its own typed subclass beside its code (`DatasetError`,
 * `ScoreMapError`, `LossInputError`, ...). Catch all of them with
 * `instanceof TokenlabError`, one kind with its subclass, and never by
 * matching message text.
 *
 * @module
 */

/**
 * The base of every tokenlab error: `name` is the subclass's own name (so
 * subclasses need not set it) and `options.cause`, when given, is kept as
 * `cause`.
 *
 * @example
 * ```ts
 * import { DatasetError, TokenlabError } from "tokenlab";
 * class WidgetError extends TokenlabError {}
 * const io = new Error("disk full");
 * const e = new WidgetError("expected 3 widgets, found 2; add one", { cause: io });
 * console.log(e.name, e instanceof TokenlabError, e.cause === io); // WidgetError true true
 * console.log(new DatasetError("bad") instanceof TokenlabError); // true
 * ```
 */
export class TokenlabError extends Error {
  /** Creates the error with its message and, in `options`, its cause. */
  constructor(message?: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}
