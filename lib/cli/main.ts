/**
 * The `tokenlab` command line (`deno task tokenlab <command>`).
 *
 * @module
 */

import { type Command, UsageError } from "./_args.ts";
import { annotateCommand } from "./annotate.ts";
import { backendCommand } from "./backend.ts";
import { labelsCommand } from "./labels.ts";
import { modelsCommand } from "./models.ts";
import { reportCommand } from "./report.ts";
import { stripCommand } from "./strip.ts";
import { evalCommand, trainCommand } from "./train.ts";
import { VERSION } from "../version.ts";

const setupCommand: Command = {
  summary: "install what the kit needs on this machine (idempotent)",
  usage: "usage: tokenlab setup\n\nSee lib/cli/setup.ts for the steps.",
  async run(args) {
    if (args.length > 0 && !(args.length === 1 && args[0] === "--help")) {
      throw new UsageError(
        `tokenlab setup takes no arguments, found: ${args.join(" ")}`,
      );
    }
    if (args[0] === "--help") {
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
  labels: labelsCommand,
  models: modelsCommand,
  report: reportCommand,
  setup: setupCommand,
  strip: stripCommand,
  train: trainCommand,
};

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
  ].join("\n");
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
      throw new UsageError(
        `unknown command "${name}": expected one of ${
          [...Object.keys(COMMANDS), "version", "help"].join(", ")
        }\n\n${help()}`,
      );
    }
    return await command.run(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(e.message);
      return 2;
    }
    const err = e as Error;
    if (
      [
        "BackendError",
        "ReportError",
        "SetupError",
        "ConfigError",
        "WeightsError",
        "CheckpointError",
        "ScoreMapError",
        "DatasetError",
        "DataSpecError",
        "ImageError",
        "PipelineError",
        "LoaderError",
        "RandAugmentError",
        "TransformError",
        "LabelPoolingError",
        "TrainConfigError",
        "RunFolderError",
        "TrainingError",
        "EvaluationError",
        "OptimizerError",
        "ScheduleError",
        "LossInputError",
        "MixingError",
        "NotebookError",
        "ParameterError",
        "ExperimentError",
      ].includes(err.name)
    ) {
      console.error(`tokenlab ${name}: ${err.message}`);
      return 1;
    }
    throw e;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
