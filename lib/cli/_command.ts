/**
 * A command of the `tokenlab` command line made from its table of options:
 * the line parsed by {@linkcode parseCommandArgs}, `--help` (`-h`) printing
 * the usage, the required options checked; the command's own work gets the
 * parsed line. Errors go to `main.ts`, whose table turns them into exit
 * codes.
 *
 * @module
 */

import type { ParseArgsConfig } from "node:util";
import { type Command, parseCommandArgs, UsageError } from "./_args.ts";

type Options = NonNullable<ParseArgsConfig["options"]>;

const HELP = { help: { type: "boolean", short: "h", default: false } } as const;

/** The parsed line a command's {@linkcode CommandSpec.run} gets. */
export type CommandLine<T extends Options> = ReturnType<
  typeof parseCommandArgs<T & typeof HELP>
>;

/** What {@linkcode defineCommand} makes a command from. */
export interface CommandSpec<T extends Options> {
  /** The command's words after `tokenlab` (`annotate`, `maps convert`). */
  name: string;
  /** One line for the command list. */
  summary: string;
  /** Full usage text (printed for `--help`, and after usage errors). */
  usage: string;
  /** The options, `--help` left out (every command has it). */
  options: T;
  /** Whether words other than options are taken (default: no). */
  positionals?: boolean;
  /** Options that must be given: `--NAME is required` otherwise. */
  required?: readonly (keyof T & string)[];
  /** The work, on the parsed line; resolves to the exit code. */
  run(line: CommandLine<T>): Promise<number>;
}

/**
 * The command of `spec`: its line parsed (a mistyped option named with the
 * nearest known one), `--help` printing the usage (exit 0), each of
 * `required` checked, then `spec.run`.
 */
export function defineCommand<T extends Options>(
  spec: CommandSpec<T>,
): Command {
  const { name, usage } = spec;
  return {
    summary: spec.summary,
    usage,
    async run(args) {
      const line = parseCommandArgs(
        name,
        usage,
        args,
        { ...spec.options, ...HELP },
        spec.positionals ?? false,
      );
      const values = line.values as Record<string, unknown>;
      if (values.help) {
        console.log(usage);
        return 0;
      }
      for (const need of spec.required ?? []) {
        if (values[need] === undefined) {
          throw new UsageError(
            `tokenlab ${name}: --${need} is required\n\n${usage}`,
          );
        }
      }
      return await spec.run(line);
    },
  };
}

/**
 * A command made of subcommands (`tokenlab maps convert`, `tokenlab
 * experiments list`): no word or `--help` (`-h`) prints the usage (exit 0);
 * a known word runs its subcommand on the rest of the line; any other word
 * is a usage error naming the choices.
 */
export function defineGroup(
  name: string,
  summary: string,
  usage: string,
  subcommands: Readonly<Record<string, Command>>,
): Command {
  return {
    summary,
    usage,
    async run(args) {
      const [sub, ...rest] = args;
      if (sub === undefined || sub === "--help" || sub === "-h") {
        console.log(usage);
        return 0;
      }
      if (Object.hasOwn(subcommands, sub)) {
        return await subcommands[sub].run(rest);
      }
      const names = Object.keys(subcommands);
      const expected = names.length === 1
        ? names[0]
        : `${names.slice(0, -1).join(", ")} or ${names.at(-1)}`;
      throw new UsageError(
        `tokenlab ${name}: unknown subcommand ${
          JSON.stringify(sub)
        }; expected ${expected}\n\n${usage}`,
      );
    },
  };
}
