/**
 * The errors of the sweep executors: the base {@linkcode SweepError} and
 * its typed kinds (Slurm missing, a Slurm command that refused, bad
 * resource options).
 *
 * @module
 */

import { TokenlabError } from "../errors.ts";

/**
 * The base of the sweep executors' errors; catch one kind with its
 * subclass, never by its message.
 *
 * @example
 * ```ts
 * import { SlurmOptionsError, SweepError } from "tokenlab/sweep/mod.ts";
 * const e = new SlurmOptionsError("time: expected ..., found ...", "time");
 * console.log(e instanceof SweepError, e.field); // true time
 * ```
 */
export class SweepError extends TokenlabError {}

/**
 * A Slurm client command (`sbatch`, `squeue`, ...) is not installed where
 * it was looked for; `command` names it.
 *
 * @example
 * ```ts
 * import { SlurmMissingError } from "tokenlab/sweep/mod.ts";
 * console.log(new SlurmMissingError("no sbatch", "sbatch").command); // sbatch
 * ```
 */
export class SlurmMissingError extends SweepError {
  /** The command that was not found (`sbatch`). */
  readonly command: string;
  /** Creates the error with its message and the missing command. */
  constructor(message: string, command: string) {
    super(message);
    this.command = command;
  }
}

/** What a {@linkcode SlurmCommandError} holds about the refused command. */
export interface SlurmCommandErrorOptions {
  /** The command's argv (program first). */
  argv: readonly string[];
  /** Its exit code. */
  code: number;
  /** What it wrote to stderr (trimmed). */
  stderr: string;
}

/**
 * A Slurm command ran and refused (a nonzero exit, or output it should not
 * give): `sbatch` rejecting a partition, `squeue` failing again and again.
 *
 * @example
 * ```ts
 * import { SlurmCommandError } from "tokenlab/sweep/mod.ts";
 * const e = new SlurmCommandError("sbatch refused", {
 *   argv: ["sbatch", "--partition=x"], code: 1, stderr: "invalid partition",
 * });
 * console.log(e.code, e.stderr); // 1 invalid partition
 * ```
 */
export class SlurmCommandError extends SweepError {
  /** The command's argv (program first). */
  readonly argv: readonly string[];
  /** Its exit code. */
  readonly code: number;
  /** What it wrote to stderr. */
  readonly stderr: string;
  /** Creates the error with its message and the command's outcome. */
  constructor(message: string, options: SlurmCommandErrorOptions) {
    super(message);
    this.argv = options.argv;
    this.code = options.code;
    this.stderr = options.stderr;
  }
}

/**
 * A resource option, job item or executor option that cannot be used;
 * `field` names it (`time`, `extraArgs[2]`, `items[3].argv`).
 *
 * @example
 * ```ts
 * import { SlurmOptionsError } from "tokenlab/sweep/mod.ts";
 * console.log(new SlurmOptionsError("bad", "mem").field); // mem
 * ```
 */
export class SlurmOptionsError extends SweepError {
  /** The option at fault. */
  readonly field: string;
  /** Creates the error with its message and the option at fault. */
  constructor(message: string, field: string) {
    super(message);
    this.field = field;
  }
}
