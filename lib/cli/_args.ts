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

/**
 * Parses an optional positive-integer flag value: undefined when absent, a
 * UsageError naming the command and the flag when it is not one.
 */
export function positiveIntOption(
  command: string,
  flag: string,
  text: string | undefined,
): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) {
    throw new UsageError(
      `tokenlab ${command}: ${flag} needs a positive integer, found "${text}"`,
    );
  }
  return n;
}
