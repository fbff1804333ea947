/**
 * One ablation arm as a training run: where its token labels come from (none,
 * the exact oracle of synthetic scenes, or an annotator the kit trains and
 * then runs densely, as `tokenlab train` + `tokenlab annotate` would), the
 * student's {@linkcode TrainConfig}, and the numbers an ablation table needs
 * back. Score-map stores and annotators are cached on disk under
 * `data/cache/` by their config and the code's version, so the arms and
 * seeds that share an annotator train it once.
 *
 * An annotator's folder holds its weights and `result.json` (its top-1,
 * training seconds and title, the size and SHA-256 of the weights, and the
 * SHA-256 of those fields). Both are read as untrusted files: `result.json`
 * must be a regular file of strict UTF-8 JSON with exactly those fields,
 * each of its type and range, and its digest; the weights must match their
 * digest before they are loaded. A folder that fails a check is a damaged
 * cache entry: the annotator is trained again with a warning naming the
 * file and the field.
 *
 * @module
 */

import { join } from "node:path";
import { openDataset, parseDataSpec } from "../data/datasets.ts";
import { toImageSource } from "../data/paired.ts";
import { SyntheticScenes } from "../data/synthetic_scenes.ts";
import { exists } from "../_fs.ts";
import { writeTextAtomic } from "../io/atomic_write.ts";
import { annotate } from "../annotators/annotate.ts";
import type { TokenModel } from "../models/model.ts";
import { loadModel, saveWeights } from "../models/weights.ts";
import { oracleAnnotate } from "../annotators/oracle.ts";
import { train, type TrainResult } from "../train/engine.ts";
import type { TrainConfig } from "../train/config.ts";
import type { EvalRecord } from "../train/log.ts";
import { AblationError, type ArmResult, type CurvePoint } from "./ablation.ts";
import { RESULTS_CACHE_DIR } from "./cache.ts";
import { tagExperimentKind } from "./experiment_kind_tag.ts";
import { withEntryLock } from "./experiment_lock.ts";
import { canonicalJson } from "./canonical_json.ts";
import { codeVersion } from "./origin.ts";
import { sha256Hex, type SizedDigest, sizedDigest } from "../io/digest.ts";
import {
  lstatOrNull,
  notRegularFile,
  readJsonFile,
} from "../io/file_checks.ts";
import * as fields from "../io/json_fields.ts";

/** A label source that trains an annotator (see {@linkcode LabelSource}). */
export type AnnotatorLabels = Extract<LabelSource, { kind: "annotator" }>;

/** Where an arm's token labels come from. */
export type LabelSource =
  | { kind: "none" }
  | {
    /** The exact class fractions of synthetic scenes (the perfect annotator). */
    kind: "oracle";
    /** Side of the stored map (default: the student's token grid). */
    mapSize: number;
    /** Classes kept per location (default 5). */
    k?: number;
  }
  | {
    /** A model the kit trains on `train.data`, then runs densely over the student's data. */
    kind: "annotator";
    /** The annotator's training config (its seed defaults to the student's). */
    train: Partial<TrainConfig> & Pick<TrainConfig, "data">;
    /** The classifier applied at every token (default: aux_head when it has one, else head). */
    head?: "head" | "aux_head";
    /** Classes kept per location (default 5). */
    k?: number;
  };

/** An arm that trains a student. */
export interface TrainArmSpec {
  /** The student's training config (`data` required; `seed` is the arm's seed). */
  train: Partial<TrainConfig> & Pick<TrainConfig, "data">;
  /** Token labels (default none: plain or image-level training). */
  labels?: LabelSource;
}

/** Options of {@linkcode trainArm}. */
export interface TrainArmOptions {
  /** Folder for score-map stores and annotators (default `data/cache/`). */
  cacheDir?: string;
  /**
   * Where warnings go (default `console.warn`): a damaged annotator that is
   * trained again; a run resumed in `runDir` (the step it resumed at).
   */
  onWarning?: (message: string) => void;
  /**
   * The student's run folder (default none): checkpoints every epoch, and a
   * run found there is resumed, so a job that dies loses at most an epoch
   * (a warning says at which step it resumed, e.g. in a sweep job's log).
   */
  runDir?: string;
}

const DEFAULT_CACHE = join(RESULTS_CACHE_DIR, "..");

/** 16 hex digits naming a cached store or annotator: its config and the code version. */
async function digest(value: unknown): Promise<string> {
  const text = canonicalJson(value, "a label source") + await codeVersion();
  return (await sha256Hex(text)).slice(0, 16);
}

function curveOf(records: readonly { kind: string }[]): CurvePoint[] {
  return (records.filter((r) =>
    r.kind === "eval" && (r as EvalRecord).which === "model"
  ) as EvalRecord[]).map((r) => ({ epoch: r.epoch + 1, value: r.top1 }));
}

/** The last validation top-1 of a run; an arm without one cannot be compared. */
function finalTop1(r: TrainResult, who: string): number {
  if (r.model === null) {
    throw new AblationError(
      `${who} was trained without evaluation, so it has no top-1 to compare; leave valData unset (the data's val split) or give a validation set, not false`,
    );
  }
  return r.model.top1;
}

/** The format tag of an annotator's `result.json`. */
const ANNOTATOR_FORMAT = "tokenlab-annotator/1";
/** The fields of `result.json`, in the order they are written. */
const ANNOTATOR_FIELDS = [
  "format",
  "top1",
  "seconds",
  "title",
  "weights",
  "sha256",
];
/** The largest `result.json` read: it holds a few numbers and a title. */
const MAX_ANNOTATOR_RESULT_BYTES = 64 * 1024;

/** An annotator's `result.json`. */
interface AnnotatorResult {
  format: typeof ANNOTATOR_FORMAT;
  /** Final validation top-1 (%). */
  top1: number;
  /** Training seconds. */
  seconds: number;
  /** The run's title (named in the score maps it writes). */
  title: string;
  /** Size and SHA-256 of `model.safetensors`. */
  weights: SizedDigest;
  /** SHA-256 of the canonical JSON of the other fields. */
  sha256: string;
}

function resultDigest(r: Omit<AnnotatorResult, "sha256">): Promise<string> {
  return sha256Hex(canonicalJson({
    format: r.format,
    top1: r.top1,
    seconds: r.seconds,
    title: r.title,
    weights: r.weights,
  }));
}

/**
 * Reads and checks an annotator's `result.json`.
 *
 * @throws {AblationError} naming the file, the field, what was expected and what was found
 */
async function readAnnotatorResult(path: string): Promise<AnnotatorResult> {
  try {
    const read = await readJsonFile(path, {
      maxBytes: MAX_ANNOTATOR_RESULT_BYTES,
    });
    if (read === null) {
      throw new fields.FieldProblem("(file)", "a readable file", "no file");
    }
    return await checkAnnotatorResult(read.value);
  } catch (e) {
    if (!(e instanceof fields.FieldProblem)) throw e;
    throw new AblationError(`annotator result ${path}: ${e.message}`, {
      file: path,
      field: e.field,
    });
  }
}

/**
 * Checks parsed `result.json`: exactly its fields, each of its type and
 * range, and its digest.
 *
 * @throws {FieldProblem} for the first field that is not what tokenlab writes
 */
async function checkAnnotatorResult(v: unknown): Promise<AnnotatorResult> {
  if (!fields.isPlainObject(v)) {
    fields.fieldProblem("(file)", "a JSON object", v);
  }
  const o = fields.objectFields(v, "", {
    required: ANNOTATOR_FIELDS,
    what: "result.json",
    quoteUnknown: true,
  });
  if (o.format !== ANNOTATOR_FORMAT) {
    fields.fieldProblem("format", JSON.stringify(ANNOTATOR_FORMAT), o.format);
  }
  fields.sha256Field(o.sha256, "sha256");
  fields.finiteField(o.top1, "top1", {
    min: 0,
    max: 100,
    what: "a top-1 in percent",
  });
  fields.finiteField(o.seconds, "seconds", { min: 0 });
  fields.stringField(o.title, "title", { maxLength: 500 });
  const w = fields.objectFields(o.weights, "weights", {
    required: ["bytes", "sha256"],
    expected: "an object (bytes, sha256)",
    quoteUnknown: true,
  });
  fields.integerField(w.bytes, "weights.bytes", { min: 0 });
  fields.sha256Field(w.sha256, "weights.sha256");
  const r = o as unknown as AnnotatorResult;
  const got = await resultDigest(r);
  if (got !== r.sha256) {
    throw new fields.FieldProblem(
      "sha256",
      `the SHA-256 of the file's other fields (${got})`,
      `${r.sha256}: the file was edited or damaged`,
    );
  }
  return r;
}

/**
 * Checks an annotator's weights against their digest in `result.json`.
 *
 * @throws {AblationError} naming the file when it is not the file that was written
 */
async function checkWeights(
  path: string,
  want: AnnotatorResult["weights"],
): Promise<void> {
  let found: string;
  const info = await lstatOrNull(path);
  const other = info === null ? "no file" : notRegularFile(info);
  if (other !== null) {
    found = other;
  } else if (info!.size !== want.bytes) {
    found = `${info!.size} bytes`;
  } else {
    const got = await sizedDigest(await Deno.readFile(path));
    if (got.sha256 === want.sha256) return;
    found = `SHA-256 ${got.sha256}`;
  }
  throw new AblationError(
    `annotator weights ${path}: expected the file result.json's field weights describes (${want.bytes} bytes, SHA-256 ${want.sha256}), found ${found}: the file was changed or damaged`,
    { file: path },
  );
}

/** What {@linkcode annotatorStore} made or found. */
export interface AnnotatorStore {
  /** The score-map store of the student's training data. */
  store: string;
  /** The annotator's final validation top-1 (%). */
  top1: number;
  /** The annotator's training seconds (0 when it was found on disk). */
  seconds: number;
}

/**
 * Trains the annotator a label source names (once per config, seed and code
 * version: its weights and top-1 are kept on disk), runs it densely over
 * `data` with the head the source names and returns the store. Another head
 * or dataset reuses the saved weights. Workers sharing the cache folder
 * (a sweep's jobs) make each annotator once: one holds its lock, the others
 * wait and then find it.
 */
export async function annotatorStore(
  source: AnnotatorLabels,
  data: string,
  seed: number,
  options: TrainArmOptions = {},
): Promise<AnnotatorStore> {
  const dir = join(
    options.cacheDir ?? DEFAULT_CACHE,
    "annotators",
    // An annotator with its own seed is shared by every student seed.
    await digest({ train: source.train, seed: source.train.seed ?? seed }),
  );
  return await withEntryLock(`${dir}.lock`, { onWarning: options.onWarning }, {
    reread: () => Promise.resolve(null),
    compute: () => makeAnnotatorStore(dir, source, data, seed, options),
  });
}

/** {@linkcode annotatorStore}, its lock held. */
async function makeAnnotatorStore(
  dir: string,
  source: AnnotatorLabels,
  data: string,
  seed: number,
  options: TrainArmOptions,
): Promise<AnnotatorStore> {
  const resultPath = join(dir, "result.json");
  const store = join(
    dir,
    `maps-${await digest({
      data,
      head: source.head ?? null,
      k: source.k ?? 5,
    })}`,
  );
  const weights = join(dir, "model.safetensors");
  const warn = options.onWarning ?? ((m: string) => console.warn(m));
  const damaged = (e: unknown): null => {
    if (!(e instanceof AblationError)) throw e;
    warn(
      `${e.message}; the annotator is a cache entry, so it is trained again and its files replaced`,
    );
    return null;
  };
  // A folder without result.json is an annotator whose training was cut
  // short: it is trained (again) without a warning.
  let found = await exists(resultPath)
    ? await readAnnotatorResult(resultPath).catch(damaged)
    : null;
  if (
    found !== null &&
    await exists(join(store, "header.json"), { followLinks: true })
  ) {
    return { store, top1: found.top1, seconds: 0 };
  }
  if (found !== null) {
    found = await checkWeights(weights, found.weights).then(
      () => found,
      damaged,
    );
  }
  // The annotator is trained once; another head or another dataset to label
  // only runs the saved weights again.
  let model: TokenModel;
  let release: () => void;
  let top1: number, seconds = 0, title: string;
  if (found !== null) {
    model = (await loadModel(weights)).model;
    release = () => model.dispose();
    ({ top1, title } = found);
  } else {
    await Deno.mkdir(dir, { recursive: true });
    // Stores the earlier weights made (other heads or data) would not
    // match the new ones: they are made again when asked for.
    for await (const e of Deno.readDir(dir)) {
      if (e.name.startsWith("maps-")) {
        await Deno.remove(join(dir, e.name), { recursive: true });
      }
    }
    const run = await train({ seed, ...source.train }, { live: false });
    // The run owns the model until the maps are written.
    model = run.model;
    release = () => run.dispose();
    try {
      top1 = finalTop1(run.result, "the annotator");
      seconds = run.result.elapsed;
      title = run.title;
      await saveWeights(model, weights);
      const written: Omit<AnnotatorResult, "sha256"> = {
        format: ANNOTATOR_FORMAT,
        top1,
        seconds,
        title,
        weights: await sizedDigest(await Deno.readFile(weights)),
      };
      await writeTextAtomic(
        resultPath,
        JSON.stringify({ ...written, sha256: await resultDigest(written) }) +
          "\n",
      );
    } catch (e) {
      release();
      throw e;
    }
  }
  try {
    const dataset = toImageSource(
      await openDataset(await parseDataSpec(data)),
      { mode: "squash", size: model.config.imgSize },
    );
    const head = source.head ?? (model.config.auxHead ? "aux_head" : "head");
    await annotate(model, dataset, {
      out: store,
      k: source.k ?? Math.min(5, model.config.numClasses),
      head,
      overwrite: true,
      annotator: `${title} (seed ${seed}, ${head})`,
    });
    return { store, top1, seconds };
  } finally {
    release();
  }
}

/** The oracle store of synthetic training data (made once per spec and code version). */
async function oracleStore(
  source: Extract<LabelSource, { kind: "oracle" }>,
  data: string,
  cache: string,
): Promise<string> {
  const spec = await parseDataSpec(data);
  if (spec.kind !== "synthetic") {
    throw new TypeError(
      `oracle token labels need synthetic scenes (their class of every pixel is known), found --data ${data}; use an annotator label source for real images`,
    );
  }
  const dir = join(cache, "stores", await digest({ source, data }));
  if (await exists(join(dir, "header.json"), { followLinks: true })) return dir;
  // Workers sharing the cache folder make each store once.
  return await withEntryLock(`${dir}.lock`, {}, {
    reread: () => Promise.resolve(null),
    compute: async () => {
      if (await exists(join(dir, "header.json"), { followLinks: true })) {
        return dir;
      }
      const scenes = new SyntheticScenes(spec.options ?? {});
      return await makeOracleStore(source, scenes, dir, cache);
    },
  });
}

/** Writes the oracle store of {@linkcode oracleStore}, its lock held. */
async function makeOracleStore(
  source: Extract<LabelSource, { kind: "oracle" }>,
  scenes: SyntheticScenes,
  dir: string,
  cache: string,
): Promise<string> {
  await Deno.mkdir(join(cache, "stores"), { recursive: true });
  await oracleAnnotate(scenes, dir, {
    mapSize: source.mapSize,
    k: source.k ?? 5,
    overwrite: true,
  });
  return dir;
}

/**
 * Trains one arm at one seed and returns its {@linkcode ArmResult}: the
 * final validation top-1 of the trained weights, the per-epoch curve, the
 * training seconds, and extras (`ema`: the moving average's top-1 when kept;
 * `annotator`: the annotator's own top-1).
 *
 * @example
 * ```ts ignore
 * import { runAblation, trainArm } from "tokenlab";
 * const ab = await runAblation({
 *   name: "tiny", baseline: "plain", seeds: [1, 2, 3],
 *   arms: [
 *     { key: "plain", label: "plain", config: { train: { data: "synthetic:size=32,count=256" } } },
 *     { key: "tl", label: "token labels", config: { train: { data: "synthetic:size=32,count=256", tokenLabel: true }, labels: { kind: "oracle", mapSize: 8 } } },
 *   ],
 *   run: (c, seed) => trainArm(c, seed),
 *   setting: { dataset: "synthetic", real: false, model: "lvvit_xs32", epochs: 3, scale: "tiny" },
 * });
 * ```
 */
export const trainArm: (
  spec: TrainArmSpec,
  seed: number,
  options?: TrainArmOptions,
) => Promise<ArmResult> = tagExperimentKind("train-arm", trainArmRun);

async function trainArmRun(
  spec: TrainArmSpec,
  seed: number,
  options: TrainArmOptions = {},
): Promise<ArmResult> {
  const cache = options.cacheDir ?? DEFAULT_CACHE;
  const labels = spec.labels ?? { kind: "none" };
  const extra: Record<string, number> = {};
  const data = spec.train.data;
  if (labels.kind !== "none" && typeof data !== "string") {
    throw new AblationError(
      `token labels (${labels.kind}) are made for the student's --data text, found a parsed spec ${
        JSON.stringify(data)
      }; give train.data as text, e.g. "synthetic:size=32,count=1024"`,
    );
  }
  let tokenLabelData: string | undefined;
  if (labels.kind === "oracle") {
    tokenLabelData = await oracleStore(labels, data as string, cache);
  } else if (labels.kind === "annotator") {
    const a = await annotatorStore(labels, data as string, seed, options);
    tokenLabelData = a.store;
    extra.annotator = a.top1;
  }
  // A run folder left by a job that died is resumed from its checkpoint.
  const resume = options.runDir !== undefined &&
    await exists(join(options.runDir, "run.json"));
  const run = await train({
    ...spec.train,
    seed,
    ...(tokenLabelData ? { tokenLabel: true, tokenLabelData } : {}),
    ...(options.runDir !== undefined
      ? { output: options.runDir, resume, overwrite: !resume }
      : {}),
  }, { live: false });
  try {
    const r = run.result;
    if (resume) {
      (options.onWarning ?? ((m: string) => console.warn(m)))(
        `resumed the run an earlier attempt left in ${options.runDir} at step ${
          r.steps - r.stepsThisSession
        } of ${r.steps} (its newest checkpoint; step 0: it had none)`,
      );
    }
    if (r.ema) extra.ema = r.ema.top1;
    return {
      value: finalTop1(r, "the student"),
      curve: curveOf(run.records),
      seconds: r.elapsed,
      ...(Object.keys(extra).length ? { extra } : {}),
    };
  } finally {
    run.dispose();
  }
}
