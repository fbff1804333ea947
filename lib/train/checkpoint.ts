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
 * <output>/model.safetensors        final weights (and ema.safetensors), written at the end
 * <output>/result.json              final metrics
 * ```
 *
 * A checkpoint is written into a hidden temporary folder and renamed into
 * place when complete, so `checkpoints/` holds only whole checkpoints; a
 * run killed at any moment resumes from the newest one.
 *
 * @module
 */

import { readSafetensors, writeSafetensors } from "../io/safetensors.ts";
import { writeFileAtomic } from "../io/torch_write.ts";
import type { RawTensor } from "../io/raw_tensor.ts";
import type { LvVit } from "../models/lvvit.ts";
import { loadWeights, saveWeights } from "../models/weights.ts";
import { VERSION } from "../version.ts";
import { configDifferences, type ResolvedTrainConfig } from "./config.ts";
import type { LogRecord } from "./log.ts";
import type { AdamW, OptimizerState } from "./optimizer.ts";
import { exists } from "../io/_fs.ts";

/** Raised for an output folder or checkpoint that cannot be used. */
export class RunFolderError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "RunFolderError";
  }
}

/** Where the training continues, and what the run had done by then. */
export interface TrainState {
  /** File format tag. */
  format: "tokenlab-train-state";
  /** Format version. */
  version: 1;
  /** Optimizer steps done. */
  step: number;
  /** Epoch to continue in. */
  epoch: number;
  /** Next step of that epoch; equal to `stepsPerEpoch` when its steps are done and its evaluation is not. */
  stepInEpoch: number;
  /** Steps per epoch when the checkpoint was written. */
  stepsPerEpoch: number;
  /** Seconds of training so far. */
  elapsed: number;
  /** The optimizer's scalars (its moments are in optimizer.safetensors). */
  optimizer: Omit<OptimizerState, "moments">;
  /**
   * The random state. Every draw of the run comes from a generator derived
   * from the seed and the position (epoch, step, sample), so the position
   * is the whole state.
   */
  rng: { seed: number; scheme: string };
  /** The run's resolved config. */
  config: ResolvedTrainConfig;
  /** Every record logged up to this checkpoint. */
  records: LogRecord[];
  /** Size and SHA-256 of each tensor file of the checkpoint. */
  files: Record<string, { bytes: number; sha256: string }>;
  /** tokenlab version that wrote it. */
  tokenlab: string;
}

/** A checkpoint found on disk. */
export interface Checkpoint {
  /** Folder name (`step-00000120`). */
  name: string;
  /** Its path. */
  path: string;
  /** Its state. */
  state: TrainState;
}

/** The description of a run stored as `run.json`. */
interface RunInfo {
  format: "tokenlab-run";
  version: 1;
  config: ResolvedTrainConfig;
  created: string;
  tokenlab: string;
}

/** The names tokenlab writes in an output folder. */
export const RUN_FILES: readonly string[] = [
  "run.json",
  "log.jsonl",
  "checkpoints",
  "model.safetensors",
  "ema.safetensors",
  "result.json",
];

function json(value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value, null, 1) + "\n");
}

async function sha256(
  path: string,
): Promise<{ bytes: number; sha256: string }> {
  const data = await Deno.readFile(path);
  const digest = await crypto.subtle.digest("SHA-256", data);
  return {
    bytes: data.length,
    sha256: Array.from(
      new Uint8Array(digest),
      (b) => b.toString(16).padStart(2, "0"),
    ).join(""),
  };
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
      `--output ${out} is a file, not a folder; choose a folder for the run`,
    );
  }
  const runPath = `${out}/run.json`;
  const hasRun = info !== null && await exists(runPath);
  if (hasRun) {
    let prev: RunInfo;
    try {
      prev = JSON.parse(await Deno.readTextFile(runPath));
    } catch (e) {
      throw new RunFolderError(
        `${runPath} is not readable JSON (${
          (e as Error).message
        }); the folder's run cannot be identified: pass --overwrite to start over, or choose another --output`,
      );
    }
    if (config.resume) {
      const diff = configDifferences(
        prev.config as unknown as Record<string, unknown>,
        config as unknown as Record<string, unknown>,
      );
      if (diff.length > 0) {
        throw new RunFolderError(
          `--resume: ${out} holds a different run; these settings differ from it:\n  ${
            diff.join("\n  ")
          }\nresume with the run's own settings, pass --overwrite to start over, or choose another --output`,
        );
      }
      await removeTemporaries(out);
      return await latestCheckpoint(out);
    }
    if (!config.overwrite) {
      const c = prev.config;
      throw new RunFolderError(
        `--output ${out} already holds a run (${c?.model} on ${
          typeof c?.data === "string" ? c.data : JSON.stringify(c?.data)
        }, started ${prev.created}); pass --resume to continue it, --overwrite to start over (its checkpoints and log are deleted), or choose another --output`,
      );
    }
  } else if (info !== null) {
    const ours: string[] = [];
    for (const name of RUN_FILES) {
      if (await exists(`${out}/${name}`)) ours.push(name);
    }
    if (ours.length > 0 && !config.overwrite) {
      throw new RunFolderError(
        `--output ${out} holds ${
          ours.join(", ")
        } but no run.json, so it is not a run tokenlab can continue; pass --overwrite to replace those files, or choose another --output`,
      );
    }
    if (config.resume) {
      throw new RunFolderError(
        `--resume: ${out} holds no run to continue (no run.json); drop --resume to start one there`,
      );
    }
  } else if (config.resume) {
    throw new RunFolderError(
      `--resume: ${out} does not exist, so there is no run to continue; drop --resume to start one`,
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

/**
 * The newest whole checkpoint of a run folder (null when it has none),
 * its files checked against the digests in its state.
 *
 * @throws {RunFolderError} when the newest checkpoint is damaged
 */
export async function latestCheckpoint(
  out: string,
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
  return await readCheckpoint(`${dir}/${name}`);
}

/**
 * Reads and verifies one checkpoint folder.
 *
 * @throws {RunFolderError} for a missing or damaged file (which, and what to do)
 */
export async function readCheckpoint(path: string): Promise<Checkpoint> {
  let state: TrainState;
  try {
    state = JSON.parse(await Deno.readTextFile(`${path}/state.json`));
  } catch (e) {
    throw new RunFolderError(
      `checkpoint ${path}: state.json is missing or unreadable (${
        (e as Error).message
      }); delete this checkpoint folder to resume from the one before it`,
    );
  }
  if (state.format !== "tokenlab-train-state" || state.version !== 1) {
    throw new RunFolderError(
      `checkpoint ${path}: state.json is not a tokenlab training state (format ${state.format}, version ${state.version})`,
    );
  }
  for (const [file, want] of Object.entries(state.files)) {
    let got: { bytes: number; sha256: string };
    try {
      got = await sha256(`${path}/${file}`);
    } catch (e) {
      throw new RunFolderError(
        `checkpoint ${path}: ${file} is missing (${
          (e as Error).message
        }); delete this checkpoint folder to resume from the one before it`,
      );
    }
    if (got.sha256 !== want.sha256 || got.bytes !== want.bytes) {
      throw new RunFolderError(
        `checkpoint ${path}: ${file} does not match its digest in state.json (${got.bytes} bytes, expected ${want.bytes}); the file was changed or damaged: delete this checkpoint folder to resume from the one before it`,
      );
    }
  }
  const name = path.slice(
    Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\")) + 1,
  );
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
      version: 1,
      ...state,
      optimizer: scalars,
      files: digests,
      tokenlab: VERSION,
    };
    await writeFileAtomic(`${tmp}/state.json`, json(full));
    const target = `${dir}/${name}`;
    if (await exists(target)) {
      // The same step written again (a resumed run that stopped right
      // after resuming): move the old one aside first.
      const aside = `${dir}/.${name}.old-${crypto.randomUUID().slice(0, 8)}`;
      await Deno.rename(target, aside);
      await Deno.rename(tmp, target);
      await Deno.remove(aside, { recursive: true });
    } else {
      await Deno.rename(tmp, target);
    }
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
  await loadWeights(parts.model, `${path}/model.safetensors`, { strict: true });
  if (parts.ema !== null) {
    if (!("ema.safetensors" in state.files)) {
      throw new RunFolderError(
        `checkpoint ${path} holds no ema.safetensors, but the run keeps a moving average (--model-ema)`,
      );
    }
    await loadWeights(parts.ema, `${path}/ema.safetensors`, { strict: true });
  }
  const { tensors } = await readSafetensors(`${path}/optimizer.safetensors`);
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
  let text: string;
  try {
    text = await Deno.readTextFile(`${out}/log.jsonl`);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
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
 * or a checkpoint folder.
 *
 * @throws {RunFolderError} for a folder that is neither, or a run without weights yet
 */
export async function evaluationTargets(
  path: string,
): Promise<EvaluationTarget[]> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch {
    throw new RunFolderError(
      `--checkpoint ${path}: no such file or folder; give a weights file, a run folder of tokenlab train, or a checkpoint folder`,
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
  if (await exists(`${path}/state.json`)) return await pair(path);
  if (await exists(`${path}/run.json`)) {
    if (await exists(`${path}/model.safetensors`)) return await pair(path);
    const latest = await latestCheckpoint(path);
    if (latest === null) {
      throw new RunFolderError(
        `--checkpoint ${path}: the run has written no weights yet (no model.safetensors, no checkpoint); wait for its first checkpoint`,
      );
    }
    return await pair(latest.path);
  }
  throw new RunFolderError(
    `--checkpoint ${path}: a folder that is neither a run of tokenlab train (run.json) nor a checkpoint (state.json); give a weights file instead`,
  );
}
