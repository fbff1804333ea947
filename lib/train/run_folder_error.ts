/**
 * The error of a run folder or checkpoint that cannot be used.
 *
 * @module
 */

import { TokenlabError } from "../errors.ts";
import type { ConfigFieldError, TrainConfig } from "./config.ts";

/** Where a {@linkcode RunFolderError} was found, when it is one file's field. */
export interface RunFolderErrorOptions {
  /** The file (its path). */
  file?: string;
  /** The field of that file (`records[3].loss`). */
  field?: string;
  /** The config fields the message quotes (`output`, `resume`, ...). */
  fields?: readonly (keyof TrainConfig)[];
}

/**
 * Raised for an output folder or checkpoint that cannot be used; `file` and
 * `field` say where, when it is one field of one file.
 *
 * @example
 * ```ts
 * import { RunFolderError } from "tokenlab";
 * const e = new RunFolderError("run.json field version: expected 1, found 7", {
 *   file: "runs/a/run.json", field: "version",
 * });
 * console.log(e.file, e.field); // runs/a/run.json version
 * ```
 */
export class RunFolderError extends TokenlabError implements ConfigFieldError {
  /** The file at fault, when one is. */
  readonly file?: string;
  /** Its field at fault, when one is. */
  readonly field?: string;
  /** The config fields the message quotes (a front end names them its way). */
  readonly fields: readonly (keyof TrainConfig)[];
  /** Creates the error. */
  constructor(message: string, options: RunFolderErrorOptions = {}) {
    super(message);
    this.file = options.file;
    this.field = options.field;
    this.fields = options.fields ?? [];
  }
}
