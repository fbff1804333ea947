/**
 * Shared command-line plumbing: `node:util` parseArgs (JSR's @std/cli is
 * unreachable here) with errors that say what to do.
 *
 * @module
 */

import { parseArgs, type ParseArgsConfig } from "node:util";

/** A usage error: the command line itself is wrong (exit code 2). */
export class UsageError extends Error {
  /** Creates the error with its message. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** A command of the `tokenlab` command line. */
export interface Command {
  /** One line for the command list. */
  summary: string;
  /** Full usage text. */
  usage: string;
  /** Runs the command; resolves to the exit code. */
  run(args: string[]): Promise<number>;
}

/** Parses `args` for `command`, turning parseArgs errors into UsageErrors. */
export function parseCommandArgs<T extends ParseArgsConfig["options"]>(
  command: string,
  usage: string,
  args: string[],
  options: T,
  allowPositionals = false,
): ReturnType<typeof parseArgs<{ options: T; allowPositionals: boolean }>> {
  try {
    return parseArgs({ args, options, allowPositionals, strict: true });
  } catch (e) {
    throw new UsageError(
      `tokenlab ${command}: ${(e as Error).message}\n\n${usage}`,
    );
  }
}
