/**
 * A run's checkpoints, in `<output>/checkpoints/` (the folder's other files:
 * `run_folder.ts`):
 *
 * ```
 * <output>/checkpoints/step-00000120/
 *     model.safetensors             weights, official names and layouts (loadModel, PyTorch)
 *     ema.safetensors               the moving average, when the run keeps one
 *     optimizer.safetensors         AdamW moments exp_avg.<name>, exp_avg_sq.<name>
 *     state.json                    step, epoch, optimizer step, RNG, config, records, file digests
 *     state.sha256                  SHA-256 of state.json (`sha256sum -c state.sha256` checks it)
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
import type { ResolvedTrainConfig } from "./config.ts";
import type { AdamW } from "./optimizer.ts";
import { exists } from "../_fs.ts";
import { sha256Hex, sizedDigest } from "../io/digest.ts";
import { FieldProblem } from "../io/json_fields.ts";
import {
  CHECKPOINT_TENSOR_FILES,
  validateTrainState,
} from "./_state_schema.ts";
import {
  fileDigest,
  jsonBytes,
  MAX_RECORDS_FILE_BYTES,
  readRunFile,
  readRunInfo,
  regularFile,
} from "./_run_files.ts";
import { RunFolderError } from "./run_folder_error.ts";
import type { TrainState } from "./train_state.ts";

// Defined beside its schema's other types; still exported here.
export type { ScheduleExtension, TrainState } from "./train_state.ts";
export type { RunInfo } from "./_state_schema.ts";
// Defined in its own file; still exported here, where it was first.
export {
  RunFolderError,
  type RunFolderErrorOptions,
} from "./run_folder_error.ts";

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

/** A checkpoint's folder name: `step-` and the step, 8 digits. */
export function checkpointName(step: number): string {
  return `step-${String(step).padStart(8, "0")}`;
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
    const got = await fileDigest(at);
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
    for (const f of files) digests[f] = await fileDigest(`${tmp}/${f}`);
    const { moments: _, ...scalars } = opt;
    const full: TrainState = {
      format: "tokenlab-train-state",
      version: STATE_VERSION,
      ...state,
      optimizer: scalars,
      files: digests,
      tokenlab: VERSION,
    };
    const stateBytes = jsonBytes(full);
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
