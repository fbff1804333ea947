/**
 * `tokenlab models`: the model registry as a table (parameters and FLOPs
 * counted from the models' own parameter lists).
 *
 * @module
 */

import { positiveIntOption, UsageError } from "./_args.ts";
import type { Command } from "./_args.ts";
import { defineCommand } from "./_command.ts";

const USAGE =
  `usage: tokenlab models [NAME...] [--img-size N] [--num-classes N] [--json]

Prints every registered model (or the named ones): image size, tokens,
parameters (head and aux head included), FLOPs by the official counter's
convention (patch embedding + blocks), classes, and the published figures.

  --img-size N     image side in pixels (default: each model's own)
  --num-classes N  classes of head and aux head (default: each model's own)
  --json           print JSON records instead of the table

example: tokenlab models lvvit_s --img-size 384`;

/** The `models` command. */
export const modelsCommand: Command = defineCommand({
  name: "models",
  summary: "list the model registry: parameters, FLOPs, tokens",
  usage: USAGE,
  options: {
    "img-size": { type: "string" },
    "num-classes": { type: "string" },
    json: { type: "boolean", default: false },
  },
  positionals: true,
  async run({ values, positionals }) {
    const { formatModelTable, MODEL_NAMES, modelTable } = await import(
      "../models/registry.ts"
    );
    for (const name of positionals) {
      if (!MODEL_NAMES.includes(name)) {
        throw new UsageError(
          `tokenlab models: unknown model "${name}"; the registry has ${
            MODEL_NAMES.join(", ")
          }`,
        );
      }
    }
    const overrides: { imgSize?: number; numClasses?: number } = {};
    const imgSize = positiveIntOption(
      "models",
      "--img-size",
      values["img-size"],
    );
    const numClasses = positiveIntOption(
      "models",
      "--num-classes",
      values["num-classes"],
    );
    if (imgSize !== undefined) overrides.imgSize = imgSize;
    if (numClasses !== undefined) overrides.numClasses = numClasses;
    // A ConfigError (sizes the variants cannot take) is bad input: exit 2
    // by main.ts's table.
    const rows = modelTable(
      positionals.length > 0 ? positionals : MODEL_NAMES,
      overrides,
    );
    console.log(
      values.json ? JSON.stringify(rows, null, 2) : formatModelTable(rows),
    );
    return 0;
  },
});
