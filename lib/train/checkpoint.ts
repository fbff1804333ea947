/**
 * A run's output folder and its checkpoints.
 *
 * ```
 * <output>/run.json                 what the run computes (its config)
 * <output>/log.jsonl                one record per line (steps, evaluations, checkpoints)
 * <output>/checkpoints/step-00000120/
 *     model.safetensors             weights, official names and layouts (loadModel, PyTorch)
 *     ema.safetensors               the moving average, when the run keeps one
 *     optimizer.safetensors         AdamW moments exp_avg.<name>, exp_avg_sq.<name>
 *     state.json                    step, epoch, optimizer step, RNG, config, records, file digests
 *     state.sha256                  SHA-256 of state.json (`sha256sum -c state.sha256` checks it)
 * <output>/model.safetensors        final weights (and ema.safetensors), written at the end
 * <output>/result.json              final metrics
 * ```
 *
 * A checkpoint is written into a hidden temporary folder and renamed into
 * place when complete, so `checkpoints/` holds only whole checkpoints; a
 * run killed at any moment resumes from the newest one.
 *
 * Everything the resume path reads is checked before it is used: `run.json`
 * and `state.json` field by field (`_state_schema.ts`: type, range, and
 * agreement with the config and with each other; unknown fields are
 * refused), `state.json` against `state.sha256`, and each tensor file
 * against its digest in `state.json`. The tensor files `state.json` lists
 * can only be the fixed names tokenlab writes, so no name can lead outside
 * the checkpoint folder, and each is opened only when it is a regular file
 * there (not a link). A checkpoint written before `state.sha256` existed
 * (format version 1) still loads, after the same field checks: refusing it
 * would lose a user's run, and the field checks already stop every value
 * that could change the run silently; only a damage that keeps every field
 * valid goes unnoticed there.
 *
 * @module
 */

import { decodeSafetensors, writeSafetensors } from "../io/safetensors.ts";
import { replaceFolder, writeFileAtomic } from "../io/atomic_write.ts";
import type { RawTensor } from "../io/raw_tensor.ts";
import type { LvVit } from "../models/lvvit.ts";
import { loadStateDict, saveWeights } from "../models/weights.ts";
import { VERSION } from "../version.ts";
import {
  configDifferences,
  type ConfigFieldError,
  type ResolvedTrainConfig,
  type TrainConfig,
} from "./config.ts";
import type { LogRecord } from "./log.ts";
import type { AdamW } from "./optimizer.ts";
import { exists } from "../_fs.ts";
import { sha256Hex, type SizedDigest, sizedDigest } from "../io/digest.ts";
import {
  lstatOrNull,
  notRegularFile,
  readRegularFile,
} from "../io/file_checks.ts";
import { FieldProblem } from "../io/json_fields.ts";
import {
  CHECKPOINT_TENSOR_FILES,
  type RunInfo,
  validateRunInfo,
  validateTrainState,
} from "./_state_schema.ts";
import { TokenlabError } from "../errors.ts";
import type { TrainState } from "./train_state.ts";

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

// Defined beside its schema's other types; still exported here.
export type { ScheduleExtension, TrainState } from "./train_state.ts";
export type { RunInfo } from "./_state_schema.ts";

/** A checkpoint found on disk. */
export interface Checkpoint {
  /** Folder name (`step-00000120`). */
  name: string;
  /** Its path. */
  path: string;
  /** Its state. */
  state: TrainState;
}

/** The version of state.json this code writes. */
const STATE_VERSION = 2;

/** The names tokenlab writes in an output folder. */
export const RUN_FILES: readonly string[] = [
  "run.json",
  "log.jsonl",
  "checkpoints",
  "model.safetensors",
  "ema.safetensors",
  "result.json",
];

/** The largest `run.json` read: it holds one config. */
const MAX_RUN_INFO_BYTES = 16 * 2 ** 20;
/**
 * The largest `state.json` or `log.jsonl` read: about a million log records,
 * far more than any run writes, and below the longest string JavaScript can
 * hold (a larger file could not be parsed anyway).
 */
const MAX_RECORDS_FILE_BYTES = 256 * 2 ** 20;

/**
 * Reads a file of the run folder as untrusted ({@linkcode readRegularFile}:
 * a regular file, not a link, of at most `maxBytes`, read through one
 * handle). Null when nothing is there.
 *
 * @throws {RunFolderError} naming the file and what to do
 */
async function readRunFile(
  path: string,
  maxBytes: number,
  todo: string,
): Promise<Uint8Array | null> {
  try {
    return await readRegularFile(path, { maxBytes });
  } catch (e) {
    if (!(e instanceof FieldProblem)) throw e;
    throw new RunFolderError(
      `${path}: expected ${e.expected}, found ${e.found}; ${todo}`,
      { file: path },
    );
  }
}

function json(value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value, null, 1) + "\n");
}

async function sha256(path: string): Promise<SizedDigest> {
  return await sizedDigest(await Deno.readFile(path));
}

/**
 * The file's info when `path` is a regular file (null: it does not exist).
 * A link or anything else is refused: tokenlab writes plain files, and a
 * link could lead outside the run folder.
 */
async function regularFile(
  path: string,
  what: () => string,
): Promise<Deno.FileInfo | null> {
  const info = await lstatOrNull(path);
  const other = info === null ? null : notRegularFile(info);
  if (other !== null) {
    throw new RunFolderError(
      `${path} is ${other}; tokenlab writes a plain file there and does not follow links out of the run folder: ${what()}`,
      { file: path },
    );
  }
  return info;
}

/**
 * Reads and checks `run.json` of a run folder.
 *
 * @throws {RunFolderError} naming the file, the field, and what to do
 */
async function readRunInfo(out: string): Promise<RunInfo> {
  const path = `${out}/run.json`;
  const todo =
    "restore the run's run.json, set `overwrite` to start over, or choose another `output`";
  const fail: (why: string, field?: string) => never = (why, field) => {
    throw new RunFolderError(
      `${path}: ${why}; the folder's run cannot be identified: ${todo}`,
      { file: path, field, fields: ["overwrite", "output"] },
    );
  };
  const bytes = await readRunFile(path, MAX_RUN_INFO_BYTES, todo);
  if (bytes === null) fail("missing");
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (e) {
    fail(`is not readable JSON (${(e as Error).message})`);
  }
  try {
    return validateRunInfo(value);
  } catch (e) {
    if (!(e instanceof FieldProblem)) throw e;
    return fail(
      `field ${e.field}: expected ${e.expected}, found ${e.found}; the file was edited or damaged`,
      e.field,
    );
  }
}

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

/** A checkpoint's folder name: `step-` and the step, 8 digits. */
export function checkpointName(step: number): string {
  return `step-${String(step).padStart(8, "0")}`;
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
        await writeFileAtomic(runPath, json(run), { overwrite: true });
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
  await writeFileAtomic(runPath, json(run), { overwrite: true });
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

/** Options of {@linkcode latestCheckpoint} and {@linkcode readCheckpoint}. */
export interface ReadCheckpointOptions {
  /**
   * The run's config: the state's config must agree with it (run-only
   * fields aside). Default: {@linkcode latestCheckpoint} reads the run
   * folder's `run.json`; {@linkcode readCheckpoint} checks the state's
   * config on its own.
   */
  config?: ResolvedTrainConfig;
  /** The run was extended, or is being: its checkpoints' `epochs` may differ from `config`'s. */
  epochsMayDiffer?: boolean;
}

/**
 * The newest whole checkpoint of a run folder (null when it has none),
 * its state checked field by field and its files against their digests.
 *
 * @throws {RunFolderError} when the newest checkpoint is damaged or edited (which file, which field, what to do)
 *
 * @example
 * ```ts
 * import { latestCheckpoint } from "tokenlab";
 * const dir = await Deno.makeTempDir();
 * console.log(await latestCheckpoint(dir)); // null: no checkpoints/ yet
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function latestCheckpoint(
  out: string,
  options: ReadCheckpointOptions = {},
): Promise<Checkpoint | null> {
  const dir = `${out}/checkpoints`;
  if (!await exists(dir)) return null;
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isDirectory && /^step-\d{8,}$/.test(e.name)) names.push(e.name);
  }
  names.sort();
  const name = names.at(-1);
  if (name === undefined) return null;
  const info = options.config === undefined ? await readRunInfo(out) : null;
  const config = options.config ?? info!.config;
  return await readCheckpoint(`${dir}/${name}`, {
    config,
    epochsMayDiffer: options.epochsMayDiffer ??
      (info?.extensions?.length ?? 0) > 0,
  });
}

/**
 * Reads and verifies one checkpoint folder: `state.json` against
 * `state.sha256` (when the checkpoint has one: format version 2), every
 * field of it (see `_state_schema.ts`), then each tensor file it lists
 * against its size and SHA-256. Nothing but `state.json`, `state.sha256`
 * and the fixed tensor file names is opened, and only as regular files of
 * the folder.
 *
 * @throws {RunFolderError} for a missing, damaged or edited file: which, which field, and what to do
 *
 * @example
 * ```ts
 * import { readCheckpoint, RunFolderError } from "tokenlab";
 * const dir = await Deno.makeTempDir();
 * try {
 *   await readCheckpoint(dir);
 * } catch (e) {
 *   console.log(e instanceof RunFolderError); // true: it holds no state.json
 * }
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function readCheckpoint(
  path: string,
  options: ReadCheckpointOptions = {},
): Promise<Checkpoint> {
  const name = path.slice(
    Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\")) + 1,
  );
  const todo =
    `delete this checkpoint folder (${path}) to resume from the one before it`;
  const fail: (file: string, why: string, field?: string) => never = (
    file,
    why,
    field,
  ) => {
    throw new RunFolderError(`checkpoint ${path}: ${file} ${why}; ${todo}`, {
      file: `${path}/${file}`,
      field,
    });
  };
  const statePath = `${path}/state.json`;
  const bytes = await readRunFile(statePath, MAX_RECORDS_FILE_BYTES, todo);
  if (bytes === null) fail("state.json", "is missing");
  const sumPath = `${path}/state.sha256`;
  const sumInfo = await regularFile(sumPath, () => todo);
  const hasSum = sumInfo !== null;
  if (hasSum) {
    // A digest line is 77 bytes: a larger file is not read.
    const sum = sumInfo.size <= 200 ? await Deno.readFile(sumPath) : null;
    const m = sum !== null
      ? /^([0-9a-f]{64}) {2}state\.json\n?$/.exec(new TextDecoder().decode(sum))
      : null;
    if (m === null) {
      fail(
        "state.sha256",
        "is not a digest line (64 hex digits, two spaces, state.json); the file was damaged",
      );
    }
    const got = await sha256Hex(bytes);
    if (got !== m[1]) {
      fail(
        "state.json",
        `does not match its digest in state.sha256 (SHA-256 ${got}, expected ${
          m[1]
        }): the checkpoint was edited or damaged`,
      );
    }
  }
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (e) {
    fail(
      "state.json",
      `is not readable JSON (${
        (e as Error).message
      }): it was cut short or damaged`,
    );
  }
  let state: TrainState;
  try {
    state = validateTrainState(value, {
      name,
      runConfig: options.config ?? null,
      epochsMayDiffer: options.epochsMayDiffer,
    });
  } catch (e) {
    if (!(e instanceof FieldProblem)) throw e;
    return fail(
      "state.json",
      `field ${e.field}: expected ${e.expected}, found ${e.found}; the file was edited or damaged, or not written by tokenlab`,
      e.field,
    );
  }
  if (hasSum !== (state.version === STATE_VERSION)) {
    fail(
      "state.json",
      hasSum
        ? `field version: expected ${STATE_VERSION} (the version written with state.sha256), found ${state.version}`
        : `field version: expected 1 (a checkpoint without state.sha256), found ${state.version}, and state.sha256 is missing`,
      "version",
    );
  }
  // Only the fixed names the schema allows get here: no name leads out of the folder.
  for (const file of CHECKPOINT_TENSOR_FILES) {
    const want = state.files[file];
    if (want === undefined) continue;
    const at = `${path}/${file}`;
    if (await regularFile(at, () => todo) === null) fail(file, "is missing");
    const got = await sha256(at);
    if (got.sha256 !== want.sha256 || got.bytes !== want.bytes) {
      fail(
        file,
        `does not match its digest in state.json (${got.bytes} bytes, expected ${want.bytes}): the file was changed or damaged`,
        `files["${file}"]`,
      );
    }
  }
  return { name, path, state };
}

/** What a checkpoint holds besides its state. */
export interface CheckpointParts {
  /** The trained model. */
  model: LvVit;
  /** Its moving average, if kept. */
  ema: LvVit | null;
  /** The optimizer. */
  optimizer: AdamW;
}

/**
 * Writes a checkpoint of the run into `<output>/checkpoints/`, atomically
 * (a temporary folder renamed into place), and keeps the newest `keep`.
 *
 * @returns the checkpoint's folder name
 */
export async function writeCheckpoint(
  out: string,
  state: Omit<
    TrainState,
    "files" | "optimizer" | "format" | "version" | "tokenlab"
  >,
  parts: CheckpointParts,
  keep = 2,
): Promise<string> {
  const dir = `${out}/checkpoints`;
  await Deno.mkdir(dir, { recursive: true });
  const name = checkpointName(state.step);
  const tmp = `${dir}/.${name}.tmp-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.mkdir(tmp);
  try {
    await saveWeights(parts.model, `${tmp}/model.safetensors`);
    const files = ["model.safetensors"];
    if (parts.ema !== null) {
      await saveWeights(parts.ema, `${tmp}/ema.safetensors`);
      files.push("ema.safetensors");
    }
    const opt = await parts.optimizer.state();
    const tensors = new Map<string, RawTensor>();
    for (const [key, values] of opt.moments) {
      tensors.set(key, {
        dtype: "float32",
        shape: [values.length],
        data: values,
      });
    }
    await writeSafetensors(`${tmp}/optimizer.safetensors`, tensors, {
      metadata: { format: "tokenlab-adamw", step: String(opt.step) },
    });
    files.push("optimizer.safetensors");
    const digests: TrainState["files"] = {};
    for (const f of files) digests[f] = await sha256(`${tmp}/${f}`);
    const { moments: _, ...scalars } = opt;
    const full: TrainState = {
      format: "tokenlab-train-state",
      version: STATE_VERSION,
      ...state,
      optimizer: scalars,
      files: digests,
      tokenlab: VERSION,
    };
    const stateBytes = json(full);
    await writeFileAtomic(`${tmp}/state.json`, stateBytes);
    const sum = await sha256Hex(stateBytes);
    await writeFileAtomic(
      `${tmp}/state.sha256`,
      new TextEncoder().encode(`${sum}  state.json\n`),
    );
    // The same step may be written again (a resumed run that stopped right
    // after resuming): the old one is replaced only once the new one is in.
    await replaceFolder(tmp, `${dir}/${name}`);
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  }
  const all: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isDirectory && /^step-\d{8,}$/.test(e.name)) all.push(e.name);
  }
  all.sort();
  for (const old of all.slice(0, Math.max(0, all.length - keep))) {
    await Deno.remove(`${dir}/${old}`, { recursive: true });
  }
  return name;
}

/**
 * Loads a checkpoint's weights, moving average and optimizer state into
 * the run's objects (built with the run's config).
 *
 * @throws {RunFolderError} when the checkpoint does not fit them
 */
export async function restoreCheckpoint(
  checkpoint: Checkpoint,
  parts: CheckpointParts,
): Promise<void> {
  const { path, state } = checkpoint;
  const load = async (model: LvVit, file: CheckpointTensorFile) => {
    loadStateDict(model, await verifiedTensors(checkpoint, file), {
      strict: true,
      source: `${path}/${file}`,
    });
  };
  await load(parts.model, "model.safetensors");
  if (parts.ema !== null) {
    if (!("ema.safetensors" in state.files)) {
      throw new RunFolderError(
        `checkpoint ${path} holds no ema.safetensors, but the run keeps a moving average (\`modelEma\`)`,
        { fields: ["modelEma"] },
      );
    }
    await load(parts.ema, "ema.safetensors");
  }
  const tensors = await verifiedTensors(checkpoint, "optimizer.safetensors");
  const moments = new Map<string, Float32Array>();
  for (const [key, t] of tensors) {
    if (t.dtype !== "float32") {
      throw new RunFolderError(
        `checkpoint ${path}: optimizer.safetensors entry ${key} is ${t.dtype}, expected float32`,
      );
    }
    moments.set(key, t.data as Float32Array);
  }
  parts.optimizer.load({ ...state.optimizer, moments });
}

/** A tensor file of a checkpoint. */
type CheckpointTensorFile =
  | "model.safetensors"
  | "ema.safetensors"
  | "optimizer.safetensors";

/**
 * Reads one tensor file of a checkpoint once, checks those bytes against
 * its digest in `state.json`, and decodes the same bytes: what is loaded is
 * what was checked, even if the file is replaced after
 * {@linkcode readCheckpoint} looked at it.
 *
 * @throws {RunFolderError} naming the file and what to do
 */
async function verifiedTensors(
  checkpoint: Checkpoint,
  file: CheckpointTensorFile,
): Promise<Map<string, RawTensor>> {
  const { path, state } = checkpoint;
  const at = `${path}/${file}`;
  const todo =
    `delete this checkpoint folder (${path}) to resume from the one before it`;
  const want = state.files[file];
  if (want === undefined) {
    throw new RunFolderError(
      `checkpoint ${path}: state.json lists no ${file}, which the run needs; ${todo}`,
      { file: `${path}/state.json`, field: "files" },
    );
  }
  const bytes = await readRunFile(at, want.bytes, todo);
  if (bytes === null) {
    throw new RunFolderError(
      `checkpoint ${path}: ${file} is missing; ${todo}`,
      {
        file: at,
      },
    );
  }
  const got = await sizedDigest(bytes);
  if (got.sha256 !== want.sha256 || got.bytes !== want.bytes) {
    throw new RunFolderError(
      `checkpoint ${path}: ${file} does not match its digest in state.json (${got.bytes} bytes, expected ${want.bytes}): the file was changed or damaged; ${todo}`,
      { file: at, field: `files["${file}"]` },
    );
  }
  return decodeSafetensors(bytes, { label: at, copy: false }).tensors;
}

/** Writes `log.jsonl` anew from records (atomically): a resumed run's log ends where its checkpoint does. */
export async function rewriteLog(
  out: string,
  records: readonly LogRecord[],
): Promise<void> {
  const text = records.map((r) => JSON.stringify(r) + "\n").join("");
  await writeFileAtomic(`${out}/log.jsonl`, new TextEncoder().encode(text), {
    overwrite: true,
  });
}

/** Appends records to `log.jsonl`. */
export async function appendLog(
  out: string,
  records: readonly LogRecord[],
): Promise<void> {
  if (records.length === 0) return;
  const text = records.map((r) => JSON.stringify(r) + "\n").join("");
  await Deno.writeTextFile(`${out}/log.jsonl`, text, { append: true });
}

/** Reads a run's `log.jsonl` (lines that do not parse, such as a line cut short by a kill, are skipped). */
export async function readLog(out: string): Promise<LogRecord[]> {
  const path = `${out}/log.jsonl`;
  const bytes = await readRunFile(
    path,
    MAX_RECORDS_FILE_BYTES,
    "restore the run's log.jsonl or move it away",
  );
  if (bytes === null) return [];
  const text = new TextDecoder().decode(bytes);
  const out2: LogRecord[] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    try {
      out2.push(JSON.parse(line));
    } catch {
      // a partial last line
    }
  }
  return out2;
}

/** Writes a JSON file atomically, replacing an old one. */
export async function writeJson(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, json(value), { overwrite: true });
}

/** One set of weights to evaluate. */
export interface EvaluationTarget {
  /** "model" or "ema". */
  which: "model" | "ema";
  /** The weights file. */
  path: string;
}

/**
 * The weights a path names: a weights file; a run folder (its final
 * `model.safetensors` and `ema.safetensors`, or else its newest checkpoint's);
 * or a checkpoint folder. A checkpoint, named or the newest of a run, is
 * read with {@linkcode readCheckpoint}'s checks first: its `state.json`
 * against `state.sha256`, field by field, and each weights file against its
 * size and SHA-256 there; its targets are the weights its state lists.
 *
 * @throws {RunFolderError} for a folder that is neither, a run without weights yet, or a damaged or edited checkpoint (which file, which field, what to do)
 *
 * @example
 * ```ts
 * import { evaluationTargets, RunFolderError } from "tokenlab";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/state.json`, "{}");
 * try {
 *   await evaluationTargets(dir);
 * } catch (e) {
 *   console.log(e instanceof RunFolderError); // true: not a checkpoint's state
 * }
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function evaluationTargets(
  path: string,
): Promise<EvaluationTarget[]> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch {
    throw new RunFolderError(
      `${path}: no such file or folder; give a weights file, a run folder of tokenlab train, or a checkpoint folder`,
    );
  }
  if (info.isFile) return [{ which: "model", path }];
  const pair = async (dir: string): Promise<EvaluationTarget[]> => {
    const out: EvaluationTarget[] = [{
      which: "model",
      path: `${dir}/model.safetensors`,
    }];
    if (await exists(`${dir}/ema.safetensors`)) {
      out.push({ which: "ema", path: `${dir}/ema.safetensors` });
    }
    return out;
  };
  // The weights a verified state lists, by their fixed names in its folder.
  const listed = (c: Checkpoint): EvaluationTarget[] =>
    (["model", "ema"] as const)
      .filter((which) => `${which}.safetensors` in c.state.files)
      .map((which) => ({ which, path: `${c.path}/${which}.safetensors` }));
  if (await exists(`${path}/state.json`)) {
    return listed(await readCheckpoint(path));
  }
  if (await exists(`${path}/run.json`)) {
    if (await exists(`${path}/model.safetensors`)) return await pair(path);
    const latest = await latestCheckpoint(path);
    if (latest === null) {
      throw new RunFolderError(
        `${path}: the run has written no weights yet (no model.safetensors, no checkpoint); wait for its first checkpoint`,
      );
    }
    return listed(latest);
  }
  throw new RunFolderError(
    `${path}: a folder that is neither a run of tokenlab train (run.json) nor a checkpoint (state.json); give a weights file instead`,
  );
}
