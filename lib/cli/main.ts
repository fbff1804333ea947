/**
 * The `tokenlab` command line (`deno task tokenlab <command>`).
 *
 * @module
 */

import {
  type Command,
  type ErrorClass,
  nearestOption,
  parseCommandArgs,
  UsageError,
} from "./_args.ts";
import { annotateCommand } from "./annotate.ts";
import { backendCommand } from "./backend.ts";
import { labelsCommand } from "./labels.ts";
import { mapsCommand } from "./maps.ts";
import { modelsCommand } from "./models.ts";
import { reportCommand } from "./report.ts";
import { stripCommand } from "./strip.ts";
import { evalCommand } from "./eval.ts";
import { experimentsCommand } from "./experiments.ts";
import { sweepCommand } from "./sweep.ts";
import { trainCommand } from "./train.ts";
import { inFlagTerms, quotesFields } from "./_train_flags.ts";
import { VERSION } from "../version.ts";

const setupCommand: Command = {
  summary: "install what the kit needs on this machine (idempotent)",
  usage: "usage: tokenlab setup\n\nSee lib/cli/setup.ts for the steps.",
  async run(args) {
    // Options through the shared parser: a mistyped one gets its suggestion.
    const { values, positionals } = parseCommandArgs(
      "setup",
      this.usage,
      args,
      {
        help: { type: "boolean", short: "h" },
      },
      true,
    );
    if (positionals.length > 0) {
      throw new UsageError(
        `tokenlab setup takes no arguments, found: ${positionals.join(" ")}`,
      );
    }
    if (values.help) {
      console.log(this.usage);
      return 0;
    }
    const { setup, SetupError } = await import("./setup.ts");
    try {
      console.error(await setup());
      return 0;
    } catch (e) {
      if (!(e instanceof SetupError)) throw e;
      console.error(`setup failed: ${e.message}`);
      return 1;
    }
  },
};

/** Every command, by name. */
export const COMMANDS: Record<string, Command> = {
  annotate: annotateCommand,
  backend: backendCommand,
  eval: evalCommand,
  experiments: experimentsCommand,
  labels: labelsCommand,
  maps: mapsCommand,
  models: modelsCommand,
  report: reportCommand,
  setup: setupCommand,
  strip: stripCommand,
  sweep: sweepCommand,
  train: trainCommand,
};

/** Words of `text` in lines of at most `width` characters. */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line !== "" && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line === "" ? word : `${line} ${word}`;
    }
  }
  return line === "" ? lines : [...lines, line];
}

function help(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length));
  return [
    `tokenlab ${VERSION}: token labeling for vision transformers`,
    "",
    "usage: deno task tokenlab <command> [options]   (tokenlab <command> --help for details)",
    "",
    "commands:",
    ...Object.entries(COMMANDS).map(([n, c]) =>
      `  ${n.padEnd(width)}  ${c.summary}`
    ),
    `  ${"version".padEnd(width)}  print the version`,
    "",
    "exit codes:",
    ...Object.entries(EXIT_CODES).flatMap(([code, meaning]) =>
      wrap(meaning, 72).map((line, i) =>
        `  ${i === 0 ? code.padStart(3) : "   "}  ${line}`
      )
    ),
  ].join("\n");
}

/**
 * How the command line ends, by exit code (also in `--help` and the README).
 *
 * @example
 * ```ts
 * import { EXIT_CODES } from "tokenlab/cli/main.ts";
 * console.log(Object.keys(EXIT_CODES).join(" ")); // 0 1 2 130
 * ```
 */
export const EXIT_CODES: Readonly<Record<number, string>> = {
  0: "done",
  1: "failed while running (and strip --check: a notebook holds outputs; report: a cell failed)",
  2: "refused before any work: wrong usage or bad input (an option value, a missing or wrong-kind path, an existing output, a bad dataset spec, a file that is not what its flag takes); the message says what was expected, what was found and what to do",
  130:
    "interrupted (Ctrl-C); train (with --resume) and annotate continue when run again",
};

/**
 * The error classes that mean "bad input" (exit 2): the command line's own
 * UsageError, the library's errors about the settings and inputs it was
 * given, and the file system's answers about paths the user named. Every
 * other error is a failure while running (exit 1). The library's modules
 * are loaded only here, when an error is classified, so that commands which
 * never touch them (setup, strip, models) start without them.
 */
async function badInputErrors(): Promise<readonly ErrorClass[]> {
  const fileSystem: ErrorClass[] = [
    Deno.errors.NotFound,
    Deno.errors.IsADirectory,
    Deno.errors.NotADirectory,
    Deno.errors.AlreadyExists,
  ];
  try {
    const [data, trainConfig, modelConfig, weights, runFolder, params] =
      await Promise.all([
        import("../data/datasets.ts"),
        import("../train/config.ts"),
        import("../models/config.ts"),
        import("../models/weights.ts"),
        import("../train/run_folder_error.ts"),
        import("../report/params/mod.ts"),
      ]);
    return [
      UsageError,
      data.DataSpecError, // a --data / --val-data spec that names nothing usable
      trainConfig.TrainConfigError, // training settings out of range or contradicting
      modelConfig.ConfigError, // an unknown model or a bad model config
      weights.WeightsError, // a weights file missing or not fitting the model
      runFolder.RunFolderError, // --output / --checkpoint: not the run folder it must be
      params.ParameterError, // report --param / --params
      ...fileSystem,
    ];
  } catch {
    // A library module that cannot load is itself a failure while running;
    // the command line's own refusals still count.
    return [UsageError, ...fileSystem];
  }
}

/**
 * The exit code of an error that ended a command: 2 for bad input, else 1.
 *
 * @example
 * ```ts
 * import { exitCodeOf } from "tokenlab/cli/main.ts";
 * import { DataSpecError } from "tokenlab";
 * console.log(await exitCodeOf(new DataSpecError("no such folder"))); // 2
 * console.log(await exitCodeOf(new RangeError("a defect"))); // 1
 * ```
 */
export async function exitCodeOf(error: unknown): Promise<1 | 2> {
  if (error instanceof UsageError) return 2;
  const table = await badInputErrors();
  return table.some((c) => error instanceof c) ? 2 : 1;
}

const BUILTIN_ERRORS: readonly unknown[] = [
  Error,
  TypeError,
  RangeError,
  ReferenceError,
  SyntaxError,
  EvalError,
  URIError,
  AggregateError,
];

/** Commands whose flag for a config field differs from train's. */
const RENAMED_FLAGS: Record<string, Record<string, string>> = {
  annotate: { model: "arch" },
};

/** What to print for an error that ended command `name`. */
function describeError(name: string, error: unknown): string {
  if (error instanceof UsageError) return error.message;
  if (!(error instanceof Error)) {
    return `tokenlab ${name}: failed with ${String(error)}`;
  }
  if (BUILTIN_ERRORS.includes(error.constructor)) {
    // Not one of the kit's own errors: a defect, reported with its trace.
    return `tokenlab ${name}: unexpected ${error.name}: ${error.message}
this is a defect in tokenlab, not in your input: please report it with this trace
${error.stack ?? ""}`;
  }
  // The library names config fields; the command line names their flags.
  const message = quotesFields(error)
    ? inFlagTerms(error.message, error.fields, RENAMED_FLAGS[name])
    : error.message;
  return `tokenlab ${name}: ${message}`;
}

/** Runs the command line; resolves to the process exit code. */
export async function main(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  if (
    name === undefined || name === "help" || name === "--help" || name === "-h"
  ) {
    const topic = name === "help" ? rest[0] : undefined;
    console.log(topic && COMMANDS[topic] ? COMMANDS[topic].usage : help());
    return 0;
  }
  if (name === "version" || name === "--version") {
    console.log(VERSION);
    return 0;
  }
  const command = COMMANDS[name];
  try {
    if (command === undefined) {
      const names = [...Object.keys(COMMANDS), "version", "help"];
      const near = nearestOption(name, names);
      throw new UsageError(
        `unknown command "${name}": expected one of ${names.join(", ")}${
          near === undefined ? "" : `; did you mean ${near}?`
        }\n\n${help()}`,
      );
    }
    return await command.run(rest);
  } catch (e) {
    console.error(describeError(name, e));
    return await exitCodeOf(e);
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
