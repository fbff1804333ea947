/**
 * One ablation arm as a training run: where its token labels come from (none,
 * the exact oracle of synthetic scenes, or an annotator the kit trains and
 * then runs densely, as `tokenlab train` + `tokenlab annotate` would), the
 * student's {@linkcode TrainConfig}, and the numbers an ablation table needs
 * back. Score-map stores and annotators are cached on disk under
 * `data/cache/` by their config and the code's version, so the arms and
 * seeds that share an annotator train it once.
 *
 * @module
 */

import { join } from "node:path";
import { openDataset, parseDataSpec } from "../data/datasets.ts";
import { toImageSource } from "../data/paired.ts";
import { SyntheticScenes } from "../data/synthetic.ts";
import { exists, writeTextAtomic } from "../io/_fs.ts";
import { annotate } from "../labels/annotate.ts";
import type { TokenModel } from "../models/model.ts";
import { loadModel, saveWeights } from "../models/weights.ts";
import { oracleAnnotate } from "../labels/oracle.ts";
import { train, type TrainResult } from "../train/engine.ts";
import type { TrainConfig } from "../train/config.ts";
import type { EvalRecord } from "../train/log.ts";
import { AblationError, type ArmResult, type CurvePoint } from "./ablation.ts";
import {
  canonicalJson,
  codeVersion,
  RESULTS_CACHE_DIR,
  sha256Hex,
} from "./cache.ts";

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
 * or dataset reuses the saved weights.
 */
export async function annotatorStore(
  source: AnnotatorLabels,
  data: string,
  seed: number,
  options: TrainArmOptions = {},
): Promise<AnnotatorStore> {
  const cache = options.cacheDir ?? DEFAULT_CACHE;
  const dir = join(
    cache,
    "annotators",
    // An annotator with its own seed is shared by every student seed.
    await digest({ train: source.train, seed: source.train.seed ?? seed }),
  );
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
  const trained = await exists(resultPath, { followLinks: true }) &&
    await exists(weights, { followLinks: true });
  if (
    trained && await exists(join(store, "header.json"), { followLinks: true })
  ) {
    const r = JSON.parse(await Deno.readTextFile(resultPath));
    return { store, top1: r.top1, seconds: 0 };
  }
  // The annotator is trained once; another head or another dataset to label
  // only runs the saved weights again.
  let model: TokenModel;
  let release: () => void;
  let top1: number, seconds = 0, title: string;
  if (trained) {
    const r = JSON.parse(await Deno.readTextFile(resultPath));
    model = (await loadModel(weights)).model;
    release = () => model.dispose();
    ({ top1, title } = r);
  } else {
    await Deno.mkdir(dir, { recursive: true });
    const run = await train({ seed, ...source.train }, { live: false });
    // The run owns the model until the maps are written.
    model = run.model;
    release = () => run.dispose();
    try {
      top1 = finalTop1(run.result, "the annotator");
      seconds = run.result.elapsed;
      title = run.title;
      await saveWeights(model, weights);
      await writeTextAtomic(
        resultPath,
        JSON.stringify({ top1, seconds, title }) + "\n",
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
  await Deno.mkdir(join(cache, "stores"), { recursive: true });
  await oracleAnnotate(new SyntheticScenes(spec.options ?? {}), dir, {
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
export async function trainArm(
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
  const run = await train({
    ...spec.train,
    seed,
    ...(tokenLabelData ? { tokenLabel: true, tokenLabelData } : {}),
  }, { live: false });
  try {
    const r = run.result;
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
