/**
 * The error of the results cache (`experiment` in `cache.ts`) and of
 * `canonicalJson` (`canonical_json.ts`): a bad experiment name, config or
 * result, or an unusable stored result.
 *
 * @module
 */

import { TokenlabError } from "../errors.ts";

/** Where an {@linkcode ExperimentError} was found, when it is one file's field. */
export interface ExperimentErrorOptions {
  /** The file (its path). */
  file?: string;
  /** The field of that file (`provenance.seconds`), or of a config or result (`$.lr`). */
  field?: string;
}

/**
 * A bad experiment name, config or result, or an unusable stored result;
 * `file` and `field` say where, when it is one field of one file.
 *
 * @example
 * ```ts
 * import { ExperimentError } from "tokenlab";
 * const e = new ExperimentError("frozen result a.json: field value: ...", {
 *   file: "data/frozen/toy/a.json", field: "value",
 * });
 * console.log(e.file, e.field); // data/frozen/toy/a.json value
 * ```
 */
export class ExperimentError extends TokenlabError {
  /** The file at fault, when one is. */
  readonly file?: string;
  /** Its field at fault, when one is. */
  readonly field?: string;
  /** Creates the error with its message and where it was found. */
  constructor(message: string, options: ExperimentErrorOptions = {}) {
    super(message);
    this.name = "ExperimentError";
    this.file = options.file;
    this.field = options.field;
  }
}
