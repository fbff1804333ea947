/**
 * A run's output folder:
 *
 * ```
 * <output>/run.json                 what the run computes (its config)
 * <output>/log.jsonl                one record per line (steps, evaluations, checkpoints)
 * <output>/checkpoints/             its checkpoints (checkpoint.ts)
 * <output>/model.safetensors        final weights (and ema.safetensors), written at the end
 * <output>/result.json              final metrics
 * ```
 *
 * {@linkcode prepareOutput} gets the folder ready for a run (new, resumed,
 * extended or overwritten); `run.json` is checked field by field
 * (`_state_schema.ts`) before anything in the folder is used.
 *
 * @module
 */

import { writeFileAtomic } from "../io/atomic_write.ts";
import { VERSION } from "../version.ts";
import { exists } from "../_fs.ts";
import type { ResolvedTrainConfig } from "./config.ts";
import { configDifferences } from "./config_differences.ts";
import type { RunInfo } from "./_state_schema.ts";
import { jsonBytes, readRunInfo } from "./_run_files.ts";
import { type Checkpoint, latestCheckpoint } from "./checkpoint.ts";
import { RunFolderError } from "./run_folder_error.ts";

/** The names tokenlab writes in an output folder. */
export const RUN_FILES: readonly string[] = [
  "run.json",
  "log.jsonl",
  "checkpoints",
  "model.safetensors",
  "ema.safetensors",
  "result.json",
];

/**
 * The description of the run in a folder (`run.json`: its config, and the
 * changes of its length), checked; null when the folder holds no run.
 *
 * @throws {RunFolderError} for a damaged or edited run.json
 */
export async function readRunDescription(out: string): Promise<RunInfo | null> {
  if (!await exists(`${out}/run.json`)) return null;
  return await readRunInfo(out);
}

/**
 * Gets an output folder ready for a run, as the flags say: a new or empty
 * folder starts the run; a folder holding a run is refused unless
 * `resume` (the same run: the configs must agree, run-only fields aside)
 * or `overwrite` (its tokenlab files are removed; other files stay).
 * Leftover temporary checkpoint folders of a killed run are removed.
 *
 * @returns the newest checkpoint to resume from (null: start from step 0)
 * @throws {RunFolderError} naming the folder, what it holds and the flag to use
 */
export async function prepareOutput(
  config: ResolvedTrainConfig,
): Promise<Checkpoint | null> {
  const out = config.output;
  if (out === null) return null;
  let info: Deno.FileInfo | null = null;
  try {
    info = await Deno.stat(out);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  if (info !== null && !info.isDirectory) {
    throw new RunFolderError(
      `\`output: ${out}\` is a file, not a folder; choose a folder for the run`,
      { fields: ["output"] },
    );
  }
  const runPath = `${out}/run.json`;
  const hasRun = info !== null && await exists(runPath);
  if (hasRun && !(config.overwrite && !config.resume)) {
    // With --overwrite the old run is replaced, so it need not be readable.
    const prev = await readRunInfo(out);
    if (config.resume) {
      const extending = config.extend && prev.config.epochs !== config.epochs;
      const diff = configDifferences(
        prev.config as unknown as Record<string, unknown>,
        config as unknown as Record<string, unknown>,
      ).filter((d) => !(extending && d.startsWith("epochs:")));
      if (
        diff.length === 1 && diff[0].startsWith("epochs:") && !config.extend
      ) {
        throw new RunFolderError(
          `\`resume\`: the run in ${out} was started with \`epochs: ${prev.config.epochs}\` (and ${prev.config.cooldownEpochs} cooldown epochs), this config has \`epochs: ${config.epochs}\`; set \`extend\` to continue the run under the new schedule, or resume with the run's own \`epochs\``,
          { fields: ["resume", "extend", "epochs"] },
        );
      }
      if (diff.length > 0) {
        throw new RunFolderError(
          `\`resume\`: ${out} holds a different run; these settings differ from it:\n  ${
            diff.join("\n  ")
          }\nresume with the run's own settings, set \`overwrite\` to start over, or choose another \`output\``,
          { fields: ["resume", "overwrite", "output"] },
        );
      }
      await removeTemporaries(out);
      const epochsMayDiffer = extending ||
        (prev.extensions?.length ?? 0) > 0;
      const latest = await latestCheckpoint(out, { config, epochsMayDiffer });
      if (extending) {
        const s = latest?.state;
        const ran = s === undefined ? 0 : s.epoch + (s.stepInEpoch > 0 ? 1 : 0);
        const total = config.epochs + config.cooldownEpochs;
        if (total < ran) {
          throw new RunFolderError(
            `\`extend\`: the run in ${out} has already run ${ran} epoch${
              ran === 1 ? "" : "s"
            } (its checkpoint ${
              latest!.name
            }), more than the ${total} of \`epochs: ${config.epochs}\` and ${config.cooldownEpochs} cooldown epochs; a run cannot be shortened below what it has done: give at least \`epochs: ${
              ran - config.cooldownEpochs
            }\``,
            { fields: ["extend", "epochs"] },
          );
        }
        const extensions = [...(prev.extensions ?? []), {
          step: s?.step ?? 0,
          from: prev.config.epochs,
          to: config.epochs,
          at: new Date().toISOString(),
        }];
        const run: RunInfo = { ...prev, config, extensions };
        await writeFileAtomic(runPath, jsonBytes(run), { overwrite: true });
      }
      return latest;
    }
    if (!config.overwrite) {
      const c = prev.config;
      throw new RunFolderError(
        `\`output: ${out}\` already holds a run (${c?.model} on ${
          typeof c?.data === "string" ? c.data : JSON.stringify(c?.data)
        }, started ${prev.created}); set \`resume\` to continue it, \`overwrite\` to start over (its checkpoints and log are deleted), or choose another \`output\``,
        { fields: ["output", "resume", "overwrite"] },
      );
    }
  } else if (info !== null && !hasRun) {
    const ours: string[] = [];
    for (const name of RUN_FILES) {
      if (await exists(`${out}/${name}`)) ours.push(name);
    }
    if (ours.length > 0 && !config.overwrite) {
      throw new RunFolderError(
        `\`output: ${out}\` holds ${
          ours.join(", ")
        } but no run.json, so it is not a run tokenlab can continue; set \`overwrite\` to replace those files, or choose another \`output\``,
        { fields: ["output", "overwrite"] },
      );
    }
    if (config.resume) {
      throw new RunFolderError(
        `\`resume\`: ${out} holds no run to continue (no run.json); unset \`resume\` to start one there`,
        { fields: ["resume"] },
      );
    }
  } else if (info === null && config.resume) {
    throw new RunFolderError(
      `\`resume\`: ${out} does not exist, so there is no run to continue; unset \`resume\` to start one`,
      { fields: ["resume"] },
    );
  }
  if (config.overwrite && info !== null) {
    for (const name of RUN_FILES) {
      await Deno.remove(`${out}/${name}`, { recursive: true }).catch((e) => {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      });
    }
    await removeTemporaries(out);
  }
  await Deno.mkdir(`${out}/checkpoints`, { recursive: true });
  const run: RunInfo = {
    format: "tokenlab-run",
    version: 1,
    config,
    created: new Date().toISOString(),
    tokenlab: VERSION,
  };
  await writeFileAtomic(runPath, jsonBytes(run), { overwrite: true });
  return null;
}

async function removeTemporaries(out: string): Promise<void> {
  const dir = `${out}/checkpoints`;
  if (!await exists(dir)) return;
  for await (const e of Deno.readDir(dir)) {
    if (e.name.startsWith(".")) {
      await Deno.remove(`${dir}/${e.name}`, { recursive: true });
    }
  }
}

/** Writes a JSON file atomically, replacing an old one. */
export async function writeJson(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, jsonBytes(value), { overwrite: true });
}
