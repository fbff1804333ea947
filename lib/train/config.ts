/**
 * The training configuration: every part of the official recipe (spec
 * section 8; TokenLabeling's `main.py` on timm 0.4) is a field with the
 * official default, resolved and checked before any work starts.
 *
 * @module
 */

import { MODEL_NAMES, modelConfig } from "../models/registry.ts";
import type { BackendRequest } from "../backend.ts";
import type { ModelConfig } from "../models/config.ts";
import type { DataSpec } from "../data/datasets.ts";
import { TokenlabError } from "../errors.ts";

/**
 * An error about config fields: `fields` lists the fields its message quotes
 * (as `` `field` `` or `` `field: value` ``), so that a front end can name
 * them its own way (the CLI says `--token-label` for `tokenLabel`).
 */
export interface ConfigFieldError extends Error {
  /** The fields the message quotes. */
  readonly fields: readonly (keyof TrainConfig)[];
}

/** Options of the errors that name config fields. */
export interface ConfigFieldErrorOptions extends ErrorOptions {
  /** The fields the message quotes (default none). */
  fields?: readonly (keyof TrainConfig)[];
}

/**
 * Raised for a configuration that cannot run: which fields, and why.
 *
 * @example
 * ```ts
 * import { resolveTrainConfig, TrainConfigError } from "tokenlab";
 * try {
 *   resolveTrainConfig({
 *     data: "synthetic",
 *     tlAlign: true,
 *     tokenLabel: true,
 *     tokenLabelData: "maps",
 *   });
 * } catch (e) {
 *   console.assert(e instanceof TrainConfigError);
 *   console.log((e as TrainConfigError).fields); // [ "tlAlign", "tokenLabel" ]
 * }
 * ```
 */
export class TrainConfigError extends TokenlabError
  implements ConfigFieldError {
  /** The config fields the message quotes. */
  readonly fields: readonly (keyof TrainConfig)[];

  /** Creates the error; `options.fields` lists the fields it quotes. */
  constructor(message: string, options: ConfigFieldErrorOptions = {}) {
    super(message, options);
    this.fields = options.fields ?? [];
  }
}

/**
 * A training run. Field names follow the official `main.py` flags
 * (`--drop-path` is `dropPath`); every field but `data` has a default, the
 * official value where the official code has one.
 */
export interface TrainConfig {
  // --- model ---------------------------------------------------------------
  /** Registry name (`tokenlab models`), default `"lvvit_s"`. */
  model: string;
  /**
   * Changes to the registry entry's architecture (`{ embedDim: 64, depth: 2 }`
   * for a smaller ablation model; CLI `--model-config JSON`), default none.
   */
  modelOverrides: Partial<ModelConfig> | null;
  /** Input side in pixels (default: the model's). */
  imgSize: number | null;
  /** Classes (default: the training data's). */
  numClasses: number | null;
  /** Stochastic depth rate (default per the recipe: 0.1 S, 0.2 M, 0.3 L, 0.1 others). */
  dropPath: number | null;
  /** Dropout after the position embedding (official `--drop`, default 0). */
  drop: number;
  /**
   * Give the model the token head `aux_head` (default `"auto"`: when the loss
   * trains it, with token labels or MixToken; a plain run trains the class
   * token alone, so its evaluation is not polluted by an untrained head).
   * `true` also gives a ViT baseline (`vit_*`, built without one) a token
   * head, so it can train with token labels and MixToken.
   */
  auxHead: boolean | "auto";
  /** Weights to start from (a tokenlab `.safetensors` or an official checkpoint), official `--initial-checkpoint`. */
  initialCheckpoint: string | null;
  /** Seed of the weight initialisation, the data order, augmentation, mixing and drop path (official 42). */
  seed: number;

  // --- data ----------------------------------------------------------------
  /** Training data: `synthetic[:key=value,...]`, an image folder, a CIFAR folder, or a parsed spec. */
  data: string | DataSpec;
  /**
   * Validation data (default: the `val` split of `data`: synthetic scenes'
   * val split, an image folder's `val/` or `validation/`, CIFAR's test
   * file); `false` turns evaluation off.
   */
  valData: string | DataSpec | null | false;
  /**
   * Use only N training images (default all): for small runs. The N are a
   * sample seeded by `seed` and spread over the classes in proportion to
   * their sizes (stratified, `lib/data/limit_sample.ts`), read from the
   * labels without decoding an image, not the first N (which in data
   * ordered by class, MNIST or an image folder, would be one class).
   * Synthetic scenes, whose labels are drawn with the images, keep their
   * first N: independent seeded draws, already a random sample.
   */
  trainLimit: number | null;
  /** Use only N validation images (default all), chosen as `trainLimit`'s. */
  valLimit: number | null;
  /** Data-loading worker threads (default 0: prepared on this thread, asynchronously). */
  workers: number;
  /**
   * An image that cannot be read (a corrupt or truncated file): `"stop"`
   * (default) stops the run with an error naming the file; `"skip"` leaves
   * it out of its batch with a warning (the loader's `onBadImage`), and the
   * run's result counts what was left out. CLI `--skip-unreadable`.
   */
  onBadImage: "stop" | "skip";

  // --- token labeling ------------------------------------------------------
  /** Train with dense token labels (official `--token-label`, default false). */
  tokenLabel: boolean;
  /** The score-map store folder (official `--token-label-data`). */
  tokenLabelData: string | null;
  /**
   * Side of the pooled token-label grid (official `--token-label-size`;
   * default the model's token grid, 14 at 224). 1 is ReLabel: one pooled
   * label per crop trains the class token, no token loss.
   */
  tokenLabelSize: number | null;
  /** Weight of the dense token term (official 1.0; VOLO 0.5). */
  denseWeight: number;
  /** Weight of the class-token term (official 1.0). */
  clsWeight: number;
  /** Crop-box order handed to RoIAlign: `"yx"` (correct, default) or `"official-transposed"` (reproduces the official code's transposed crop). */
  tokenLabelBoxOrder: "yx" | "official-transposed";
  /**
   * How pooled token labels are smoothed (`poolLabels`' `smoothingRule`):
   * `"normalized"` (default) t (1 - eps) + eps / C, which sums to 1, or
   * `"official"` t (1 - eps + eps / C) + eps / C, what the official code
   * does (it sums to 1 + eps / C). Only with token labels.
   */
  tokenLabelSmoothing: "normalized" | "official";
  /**
   * Ground-truth refinement of the class-token target with token labels
   * (VOLO): ratio * annotator + (1 - ratio) * smoothed ground truth, per
   * image before any mixing. `"none"` (default): the pooled label as is;
   * `"official"`: what VOLO's code runs (annotator weight 0.5 where its
   * argmax is the true class, 0.9 where not); `"intended"`: what its
   * comment states (0.5 and 0.1: trust the ground truth where the annotator
   * is wrong). Only with token labels.
   */
  refine: "none" | "official" | "intended";

  // --- mixing --------------------------------------------------------------
  /**
   * MixToken on the token grid (LV-ViT's mixing; needs the aux head).
   * Default `"auto"`: on with token labels, as the official lvvit_* models
   * (built with `mix_token=True`), unless CutMix, MixUp or TL-Align is on.
   */
  mixToken: boolean | "auto";
  /** MixToken's box arithmetic: `"official"` (rand_bbox, default) or `"described"`. */
  mixTokenBox: "official" | "described";
  /** Image-level CutMix alpha (official `--cutmix`, default 0: off). */
  cutmix: number;
  /** Image-level MixUp alpha (official `--mixup`, default 0: off). */
  mixup: number;
  /** Probability of mixing a batch when CutMix or MixUp is on (official 1). */
  mixupProb: number;
  /** Probability of CutMix rather than MixUp when both are on (official 0.5). */
  mixupSwitchProb: number;
  /** TL-Align: patch-aligned CutMix with attention-aligned class labels. */
  tlAlign: boolean;
  /** Beta parameter of TL-Align's CutMix (default 1). */
  tlAlignAlpha: number;
  /**
   * TL-Align's box on the token grid (`patchCutmix`'s `boxMode`):
   * `"described"` (default) the full square side int(h sqrt(1 - lambda)),
   * as the paper describes it, or `"official"`, TL-Align's code
   * `rand_token_bbox` (the box ends at centre + half the side). Only with
   * TL-Align.
   */
  tlAlignBox: "described" | "official";

  // --- augmentation --------------------------------------------------------
  /** RandAugment (official `--aa`, `"rand-m9-mstd0.5-inc1"`; `"rand-n3-m9-mstd0.5-inc1"` for L); null: none. */
  aa: string | null;
  /** Random erasing probability (official `--reprob` 0.25). */
  reprob: number;
  /** Random erasing fill (official `--remode` pixel). */
  remode: "pixel" | "rand" | "const";
  /** Horizontal flip probability (official `--hflip` 0.5). */
  hflip: number;
  /** RandomResizedCrop area range (official `--scale` 0.08 1). */
  scale: readonly [number, number];
  /** RandomResizedCrop aspect range (official `--ratio` 3/4 4/3). */
  ratio: readonly [number, number];
  /** Training interpolation (official `--train-interpolation` random). */
  trainInterpolation: "random" | "bilinear" | "bicubic" | "nearest";
  /**
   * Evaluation centre-crop fraction (default per model: 0.9 for lvvit_t and
   * lvvit_s, 1.0 for lvvit_m and lvvit_l, as the official configs; 0.875
   * for the DeiT baselines; 1.0 for the small CPU variants).
   */
  cropPct: number | null;
  /** Label smoothing (official `--smoothing` 0.1). */
  smoothing: number;

  // --- optimisation --------------------------------------------------------
  /** Images per step (the official recipe: 1024 in total, 8 GPUs x 128). */
  batchSize: number;
  /** Peak learning rate; null: `lrBase * batchSize / lrBaseBatch` (the linear scaling rule). */
  lr: number | null;
  /** Learning rate at `lrBaseBatch` (official 1.6e-3; 1e-3 for LV-ViT-L). */
  lrBase: number;
  /** The batch size `lrBase` belongs to (1024). */
  lrBaseBatch: number;
  /** Warmup starting learning rate (official 1e-6). */
  warmupLr: number;
  /** Floor of the cosine (official 1e-5). */
  minLr: number;
  /** Epochs of the cosine (official 300). */
  epochs: number;
  /**
   * Warmup epochs (official 5), part of `epochs`. A whole number with
   * per-epoch updates; with `schedUpdate: "step"` a fraction is allowed
   * (a warmup of N steps is N / stepsPerEpoch epochs: the CLI's
   * `--warmup-steps`).
   */
  warmupEpochs: number;
  /** Epochs at `minLr` after the cosine (official 10). */
  cooldownEpochs: number;
  /** When the learning rate changes: every epoch (official, timm) or every step. */
  schedUpdate: "epoch" | "step";
  /** AdamW weight decay (official 0.05); never on biases, norms, pos_embed, cls_token. */
  weightDecay: number;
  /** AdamW betas (torch defaults 0.9, 0.999). */
  optBetas: readonly [number, number];
  /** AdamW epsilon (torch default 1e-8). */
  optEps: number;
  /** Gradient clipping threshold (official `--clip-grad`, default none). */
  clipGrad: number | null;
  /** Clip the global norm (default) or every value. */
  clipMode: "norm" | "value";
  /** Keep an exponential moving average of the weights (official `--model-ema`). */
  modelEma: boolean;
  /** Its decay per step (official 0.99992). */
  modelEmaDecay: number;

  // --- the run -------------------------------------------------------------
  /** Output folder: checkpoints, log.jsonl, final weights (default none: nothing written). */
  output: string | null;
  /** Continue the run in `output` from its last checkpoint. */
  resume: boolean;
  /** Start over in an `output` that holds a run (its tokenlab files are replaced). */
  overwrite: boolean;
  /**
   * With `resume`: the run may continue under another `epochs` (a longer
   * or shorter schedule, never shorter than what has run). The lr follows
   * the new schedule from the checkpoint on; `run.json` records the change
   * (its `extensions`), so a later `resume` with the new `epochs` agrees.
   */
  extend: boolean;
  /** Checkpoint every N optimizer steps (default 0: at the end of every epoch only). */
  checkpointEvery: number;
  /** Log a step record every N steps (official `--log-interval` 50); the last step of an epoch is always logged. */
  logEvery: number;
  /** Evaluate every N epochs (default 1); the last epoch is always evaluated. */
  evalEvery: number;
  /** Compute backend: auto, webgpu, wasm or cpu (exact resume needs cpu). */
  backend: BackendRequest;
}

/** A resolved configuration: every default filled in, every check passed. */
export interface ResolvedTrainConfig extends TrainConfig {
  /** Input side in pixels. */
  imgSize: number;
  /** Stochastic depth rate. */
  dropPath: number;
  /** Whether the model has the token head. */
  auxHead: boolean;
  /** Whether MixToken is on. */
  mixToken: boolean;
  /** Evaluation centre-crop fraction. */
  cropPct: number;
  /** Side of the pooled token-label grid (the token grid). */
  tokenLabelSize: number;
  /** Peak learning rate (scaled from lrBase unless given). */
  lr: number;
  /** The model's patch size. */
  patchSize: number;
  /** Token grid side (imgSize / patchSize). */
  grid: number;
}

/** The official defaults (LV-ViT-S on ImageNet), `data` left out. */
export const DEFAULT_TRAIN_CONFIG: Readonly<Omit<TrainConfig, "data">> = Object
  .freeze({
    model: "lvvit_s",
    modelOverrides: null,
    imgSize: null,
    numClasses: null,
    dropPath: null,
    drop: 0,
    auxHead: "auto",
    initialCheckpoint: null,
    seed: 42,
    valData: null,
    trainLimit: null,
    valLimit: null,
    workers: 0,
    onBadImage: "stop",
    tokenLabel: false,
    tokenLabelData: null,
    tokenLabelSize: null,
    denseWeight: 1.0,
    clsWeight: 1.0,
    tokenLabelBoxOrder: "yx",
    tokenLabelSmoothing: "normalized",
    refine: "none",
    mixToken: "auto",
    mixTokenBox: "official",
    cutmix: 0,
    mixup: 0,
    mixupProb: 1,
    mixupSwitchProb: 0.5,
    tlAlign: false,
    tlAlignAlpha: 1,
    tlAlignBox: "described",
    aa: "rand-m9-mstd0.5-inc1",
    reprob: 0.25,
    remode: "pixel",
    hflip: 0.5,
    scale: [0.08, 1] as const,
    ratio: [3 / 4, 4 / 3] as const,
    trainInterpolation: "random",
    cropPct: null,
    smoothing: 0.1,
    batchSize: 1024,
    lr: null,
    lrBase: 1.6e-3,
    lrBaseBatch: 1024,
    warmupLr: 1e-6,
    minLr: 1e-5,
    epochs: 300,
    warmupEpochs: 5,
    cooldownEpochs: 10,
    schedUpdate: "epoch",
    weightDecay: 0.05,
    optBetas: [0.9, 0.999] as const,
    optEps: 1e-8,
    clipGrad: null,
    clipMode: "norm",
    modelEma: false,
    modelEmaDecay: 0.99992,
    output: null,
    resume: false,
    overwrite: false,
    extend: false,
    checkpointEvery: 0,
    logEvery: 50,
    evalEvery: 1,
    backend: "auto",
  });

/** Per-variant parts of the recipe: drop path, RandAugment and base lr. */
const VARIANT_RECIPE: Record<
  string,
  { dropPath: number; cropPct: number; aa?: string; lrBase?: number }
> = {
  lvvit_t: { dropPath: 0.1, cropPct: 0.9 },
  lvvit_s: { dropPath: 0.1, cropPct: 0.9 },
  lvvit_m: { dropPath: 0.2, cropPct: 1.0 },
  lvvit_l: {
    dropPath: 0.3,
    cropPct: 1.0,
    aa: "rand-n3-m9-mstd0.5-inc1",
    lrBase: 1e-3,
  },
  vit_ti: { dropPath: 0.1, cropPct: 0.875 },
  vit_s: { dropPath: 0.1, cropPct: 0.875 },
  vit_b: { dropPath: 0.1, cropPct: 0.875 },
};

/**
 * Whether a resolved config is ReLabel: token labels pooled to one label per
 * crop (`tokenLabelSize` 1 on a larger token grid), which train the class
 * token alone.
 */
export function isReLabel(
  c: Pick<ResolvedTrainConfig, "tokenLabel" | "tokenLabelSize" | "grid">,
): boolean {
  return c.tokenLabel && c.tokenLabelSize === 1 && c.grid !== 1;
}

/**
 * The evaluation centre-crop fraction of a variant: the official configs'
 * (0.9 lvvit_t and lvvit_s, 1.0 lvvit_m and lvvit_l), DeiT's 0.875 for the
 * ViT baselines, 1.0 for anything else (the small CPU variants).
 */
export function defaultCropPct(model: string): number {
  return VARIANT_RECIPE[model]?.cropPct ?? 1.0;
}

/**
 * The fields a resumed run may change: where and how it runs, not what it
 * computes.
 */
export const RUN_ONLY_FIELDS: readonly (keyof TrainConfig)[] = [
  "output",
  "resume",
  "overwrite",
  "extend",
  "workers",
  "backend",
  "checkpointEvery",
  "logEvery",
  // Up to the first unreadable image a skipping run and a stopping one are
  // the same, so a run stopped by one may resume skipping it.
  "onBadImage",
];

function fail(
  message: string,
  fields: readonly (keyof TrainConfig)[] = [],
): never {
  throw new TrainConfigError(message, { fields });
}

function num(
  c: Record<string, unknown>,
  key: string,
  check: (v: number) => boolean,
  expect: string,
): void {
  const v = c[key];
  if (typeof v !== "number" || !Number.isFinite(v) || !check(v)) {
    fail(`${key} must be ${expect}, found ${JSON.stringify(v)}`);
  }
}

function intAtLeast(c: Record<string, unknown>, key: string, min: number) {
  num(c, key, (v) => Number.isInteger(v) && v >= min, `an integer >= ${min}`);
}

function oneOf(c: Record<string, unknown>, key: string, values: unknown[]) {
  if (!values.includes(c[key])) {
    fail(
      `${key} must be one of ${
        values.map((v) => JSON.stringify(v)).join(", ")
      }, found ${JSON.stringify(c[key])}`,
    );
  }
}

/**
 * Fills in the defaults (the recipe's per-variant ones included), scales
 * the learning rate, and checks every field and every combination: fields
 * that contradict each other are named with the reason, before any work.
 *
 * @throws {TrainConfigError} naming the fields and what to do
 *
 * @example
 * ```ts
 * import { resolveTrainConfig } from "tokenlab";
 * const c = resolveTrainConfig({ data: "synthetic", model: "lvvit_xs32", batchSize: 64 });
 * console.log(c.lr, c.dropPath, c.tokenLabelSize); // 0.0001 0.1 8
 * ```
 */
export function resolveTrainConfig(
  config: Partial<TrainConfig> & Pick<TrainConfig, "data">,
): ResolvedTrainConfig {
  if (config === null || typeof config !== "object") {
    fail(`expected a config object with at least { data }, found ${config}`);
  }
  const known = new Set([...Object.keys(DEFAULT_TRAIN_CONFIG), "data"]);
  for (const key of Object.keys(config)) {
    if (!known.has(key)) {
      fail(
        `unknown config field "${key}"; the fields are ${
          [...known].sort().join(", ")
        }`,
      );
    }
  }
  const given = Object.fromEntries(
    Object.entries(config).filter(([, v]) => v !== undefined),
  ) as Partial<TrainConfig>;
  if (given.data === undefined || given.data === null || given.data === "") {
    fail(
      "`data` is required: synthetic[:key=value,...], an image folder or a CIFAR folder",
      ["data"],
    );
  }
  if (
    typeof given.model !== "undefined" && !MODEL_NAMES.includes(given.model)
  ) {
    fail(
      `unknown model "${given.model}"; the registry has ${
        MODEL_NAMES.join(", ")
      } (tokenlab models lists them)`,
    );
  }
  const model = given.model ?? DEFAULT_TRAIN_CONFIG.model;
  const recipe = VARIANT_RECIPE[model] ?? { dropPath: 0.1, cropPct: 1.0 };
  const c = {
    ...DEFAULT_TRAIN_CONFIG,
    aa: recipe.aa ?? DEFAULT_TRAIN_CONFIG.aa,
    lrBase: recipe.lrBase ?? DEFAULT_TRAIN_CONFIG.lrBase,
    ...given,
  } as TrainConfig;
  const r = c as unknown as Record<string, unknown>;

  // Single fields.
  if (
    c.modelOverrides !== null &&
    (typeof c.modelOverrides !== "object" || Array.isArray(c.modelOverrides))
  ) {
    fail(
      `modelOverrides must be an object of model config fields (e.g. { "depth": 2 }), found ${
        JSON.stringify(c.modelOverrides)
      }`,
    );
  }
  const owned = [
    "imgSize",
    "numClasses",
    "dropPathRate",
    "dropRate",
    "auxHead",
    "name",
  ];
  const clash = Object.keys(c.modelOverrides ?? {}).filter((k) =>
    owned.includes(k)
  );
  if (clash.length > 0) {
    fail(
      `modelOverrides may not set ${
        clash.join(", ")
      }: use the run's own fields (imgSize, numClasses, dropPath, drop, auxHead)`,
    );
  }
  let entry: ModelConfig;
  try {
    entry = modelConfig(model, c.modelOverrides ?? {});
  } catch (e) {
    fail(`modelOverrides: ${(e as Error).message}`);
  }
  const imgSize = c.imgSize ?? entry.imgSize;
  if (c.imgSize !== null) intAtLeast(r, "imgSize", 1);
  if (imgSize % entry.patchSize !== 0) {
    fail(
      `imgSize ${imgSize} is not a multiple of ${model}'s patch size ${entry.patchSize}; use e.g. ${
        Math.max(1, Math.round(imgSize / entry.patchSize)) * entry.patchSize
      }`,
    );
  }
  const grid = imgSize / entry.patchSize;
  if (c.numClasses !== null) intAtLeast(r, "numClasses", 1);
  if (c.dropPath !== null) {
    num(r, "dropPath", (v) => v >= 0 && v < 1, "in [0, 1)");
  }
  num(r, "drop", (v) => v >= 0 && v < 1, "in [0, 1)");
  if (c.auxHead !== "auto" && typeof c.auxHead !== "boolean") {
    fail(
      `auxHead must be true, false or "auto", found ${
        JSON.stringify(c.auxHead)
      }`,
    );
  }
  intAtLeast(r, "seed", 0);
  if (c.trainLimit !== null) intAtLeast(r, "trainLimit", 1);
  if (c.valLimit !== null) intAtLeast(r, "valLimit", 1);
  intAtLeast(r, "workers", 0);
  oneOf(r, "onBadImage", ["stop", "skip"]);
  if (c.tokenLabelSize !== null) intAtLeast(r, "tokenLabelSize", 1);
  num(r, "denseWeight", (v) => v >= 0, ">= 0");
  num(r, "clsWeight", (v) => v >= 0, ">= 0");
  oneOf(r, "tokenLabelBoxOrder", ["yx", "official-transposed"]);
  oneOf(r, "tokenLabelSmoothing", ["normalized", "official"]);
  oneOf(r, "refine", ["none", "official", "intended"]);
  oneOf(r, "mixTokenBox", ["official", "described"]);
  num(r, "cutmix", (v) => v >= 0, ">= 0 (0 turns it off)");
  num(r, "mixup", (v) => v >= 0, ">= 0 (0 turns it off)");
  num(r, "mixupProb", (v) => v >= 0 && v <= 1, "in [0, 1]");
  num(r, "mixupSwitchProb", (v) => v >= 0 && v <= 1, "in [0, 1]");
  num(r, "tlAlignAlpha", (v) => v > 0, "> 0");
  oneOf(r, "tlAlignBox", ["described", "official"]);
  if (c.aa !== null && typeof c.aa !== "string") {
    fail(
      `aa must be a RandAugment string or null, found ${JSON.stringify(c.aa)}`,
    );
  }
  num(r, "reprob", (v) => v >= 0 && v <= 1, "in [0, 1]");
  oneOf(r, "remode", ["pixel", "rand", "const"]);
  num(r, "hflip", (v) => v >= 0 && v <= 1, "in [0, 1]");
  for (const key of ["scale", "ratio"] as const) {
    const v = c[key];
    if (
      !Array.isArray(v) || v.length !== 2 ||
      !v.every((x) => typeof x === "number" && x > 0) || v[0] > v[1]
    ) {
      fail(
        `${key} must be two positive numbers, low <= high, found ${
          JSON.stringify(v)
        }`,
      );
    }
  }
  oneOf(r, "trainInterpolation", ["random", "bilinear", "bicubic", "nearest"]);
  if (c.cropPct !== null) {
    num(r, "cropPct", (v) => v > 0 && v <= 1, "in (0, 1]");
  }
  num(r, "smoothing", (v) => v >= 0 && v < 1, "in [0, 1)");
  intAtLeast(r, "batchSize", 1);
  if (c.lr !== null) num(r, "lr", (v) => v > 0, "> 0");
  num(r, "lrBase", (v) => v > 0, "> 0");
  intAtLeast(r, "lrBaseBatch", 1);
  num(r, "warmupLr", (v) => v >= 0, ">= 0");
  num(r, "minLr", (v) => v >= 0, ">= 0");
  intAtLeast(r, "epochs", 1);
  if (c.schedUpdate === "step") {
    num(
      r,
      "warmupEpochs",
      (v) => v >= 0,
      ">= 0 (a fraction is allowed with per-step updates)",
    );
  } else {
    intAtLeast(r, "warmupEpochs", 0);
  }
  intAtLeast(r, "cooldownEpochs", 0);
  oneOf(r, "schedUpdate", ["epoch", "step"]);
  num(r, "weightDecay", (v) => v >= 0, ">= 0");
  if (
    !Array.isArray(c.optBetas) || c.optBetas.length !== 2 ||
    !c.optBetas.every((b) => typeof b === "number" && b >= 0 && b < 1)
  ) {
    fail(
      `optBetas must be two numbers in [0, 1), found ${
        JSON.stringify(c.optBetas)
      }`,
    );
  }
  num(r, "optEps", (v) => v > 0, "> 0");
  if (c.clipGrad !== null) {
    num(r, "clipGrad", (v) => v > 0, "> 0 (null: no clipping)");
  }
  oneOf(r, "clipMode", ["norm", "value"]);
  num(r, "modelEmaDecay", (v) => v >= 0 && v < 1, "in [0, 1)");
  intAtLeast(r, "checkpointEvery", 0);
  intAtLeast(r, "logEvery", 1);
  intAtLeast(r, "evalEvery", 1);
  oneOf(r, "backend", ["auto", "webgpu", "wasm", "cpu"]);
  if (c.mixToken !== "auto" && typeof c.mixToken !== "boolean") {
    fail(
      `mixToken must be true, false or "auto", found ${
        JSON.stringify(c.mixToken)
      }`,
    );
  }
  for (
    const key of [
      "tokenLabel",
      "tlAlign",
      "modelEma",
      "resume",
      "overwrite",
      "extend",
    ] as const
  ) {
    if (typeof c[key] !== "boolean") {
      fail(`${key} must be true or false, found ${JSON.stringify(c[key])}`);
    }
  }

  // Combinations. The messages quote fields as `field` or `field: value`
  // and list them, so that the CLI can name its flags instead.
  if (c.warmupEpochs > c.epochs) {
    fail(
      `\`warmupEpochs: ${c.warmupEpochs}\` is longer than \`epochs: ${c.epochs}\`: the warmup would never reach the peak lr; use fewer warmup epochs`,
      ["warmupEpochs", "epochs"],
    );
  }
  if (c.resume && c.overwrite) {
    fail(
      "`resume` and `overwrite` contradict each other: continue the run in `output`, or start it over, not both",
      ["resume", "overwrite", "output"],
    );
  }
  if (c.extend && !c.resume) {
    fail(
      "`extend` changes the schedule of a run being continued: it needs `resume` (and `output`, the run's folder)",
      ["extend", "resume", "output"],
    );
  }
  if ((c.resume || c.overwrite) && c.output === null) {
    const which = c.resume ? "resume" : "overwrite";
    fail(`\`${which}\` needs \`output\`: the folder of the run`, [
      which,
      "output",
    ]);
  }
  if (c.tokenLabel && c.tokenLabelData === null) {
    fail(
      "`tokenLabel` needs score maps: give `tokenLabelData` (a store: make one with `tokenlab annotate`, or oracle maps for synthetic data), or drop `tokenLabel` for plain training",
      ["tokenLabel", "tokenLabelData"],
    );
  }
  if (!c.tokenLabel && c.tokenLabelData !== null) {
    fail(
      "`tokenLabelData` was given without `tokenLabel`: the maps would be read and ignored; add `tokenLabel: true`, or drop `tokenLabelData`",
      ["tokenLabelData", "tokenLabel"],
    );
  }
  if (!c.tokenLabel && c.tokenLabelSmoothing !== "normalized") {
    fail(
      `\`tokenLabelSmoothing: "${c.tokenLabelSmoothing}"\` smooths pooled token labels, but token labeling is off: it would be ignored; add \`tokenLabel: true\` with \`tokenLabelData\`, or drop \`tokenLabelSmoothing\``,
      ["tokenLabelSmoothing", "tokenLabel", "tokenLabelData"],
    );
  }
  if (!c.tokenLabel && c.refine !== "none") {
    fail(
      `\`refine: "${c.refine}"\` refines the token labels' class target with the ground truth, but token labeling is off, so there is no annotator target to refine; add \`tokenLabel: true\` with \`tokenLabelData\`, or drop \`refine\``,
      ["refine", "tokenLabel", "tokenLabelData"],
    );
  }
  if (!c.tlAlign && c.tlAlignBox !== "described") {
    fail(
      `\`tlAlignBox: "${c.tlAlignBox}"\` sets TL-Align's CutMix box, but TL-Align is off: it would be ignored; add \`tlAlign: true\`, or drop \`tlAlignBox\``,
      ["tlAlignBox", "tlAlign"],
    );
  }
  const tokenLabelSize = c.tokenLabelSize ?? grid;
  if (tokenLabelSize !== grid && tokenLabelSize !== 1) {
    fail(
      `\`tokenLabelSize: ${tokenLabelSize}\` does not match the token grid of ${model} at \`imgSize: ${imgSize}\`: ${imgSize}/${entry.patchSize} = ${grid} tokens a side; use \`tokenLabelSize: ${grid}\` (the dense loss pairs each token with one pooled label), or 1 for ReLabel (one pooled label per crop, no token loss)`,
      ["tokenLabelSize", "imgSize"],
    );
  }
  const dense = c.tokenLabel &&
    !isReLabel({ tokenLabel: true, tokenLabelSize, grid });
  if (c.tlAlign && c.tokenLabel) {
    fail(
      "`tlAlign` and `tokenLabel` contradict each other: TL-Align trains the class token against labels aligned through attention and uses no score maps; choose one",
      ["tlAlign", "tokenLabel"],
    );
  }
  const imageMix = c.cutmix > 0 || c.mixup > 0;
  const imageMixField = c.cutmix > 0 ? "cutmix" : "mixup";
  const tokenModel = entry.family !== "resnet";
  // A ViT baseline has no token head by default; auxHead: true gives it one.
  const hasAux = c.auxHead === true || (entry.auxHead && c.auxHead !== false);
  const mixToken = c.mixToken === "auto"
    ? dense && !imageMix && !c.tlAlign && hasAux && tokenModel
    : c.mixToken;
  if (!tokenModel && mixToken) {
    fail(
      `\`mixToken\` mixes patch tokens, but ${model} is a CNN (family "resnet") with no token sequence; use \`cutmix\` for its mixing, or an lvvit_* model`,
      ["mixToken", "cutmix"],
    );
  }
  if (!tokenModel && c.tlAlign) {
    fail(
      `\`tlAlign\` aligns labels through attention, but ${model} is a CNN (family "resnet") without attention; use \`cutmix\`, or a ViT/LV-ViT model`,
      ["tlAlign", "cutmix"],
    );
  }
  if (c.tlAlign && mixToken) {
    fail(
      "`tlAlign` and `mixToken` both mix the batch (patch CutMix vs MixToken); choose one",
      ["tlAlign", "mixToken"],
    );
  }
  if (imageMix && mixToken) {
    fail(
      `\`mixToken\` and \`${imageMixField}\` both mix the batch; the official recipe turns image-level CutMix and MixUp off when MixToken is on: drop one`,
      ["mixToken", imageMixField],
    );
  }
  if (imageMix && c.tlAlign) {
    fail(
      `\`tlAlign\` brings its own patch-aligned CutMix (alpha: \`tlAlignAlpha\`); drop \`${imageMixField}\``,
      ["tlAlign", "tlAlignAlpha", imageMixField],
    );
  }
  const noAux = hasAux
    ? ""
    : c.auxHead === false
    ? ", and `auxHead: false` turns it off"
    : `, and ${model} (a ViT baseline) has none by default`;
  if (mixToken && noAux) {
    fail(
      `\`mixToken\` needs a model with an aux head (MixToken swaps the token predictions back before the dense loss)${noAux}; use an lvvit_* model, give the ViT baseline a token head with \`auxHead: true\`, or drop \`mixToken\``,
      ["mixToken", "auxHead"],
    );
  }
  if (dense && noAux) {
    fail(
      `\`tokenLabel\` trains an aux head on every token${noAux}; use an lvvit_* or resnet_* model, give the ViT baseline a token head with \`auxHead: true\`, or drop \`tokenLabel\``,
      ["tokenLabel", "auxHead"],
    );
  }
  const auxHead = c.auxHead === "auto" ? dense || mixToken : c.auxHead;
  if (dense && c.denseWeight === 0 && c.clsWeight === 0) {
    fail(
      "`denseWeight: 0` and `clsWeight: 0`: the loss would be constant; give one a positive weight",
      ["denseWeight", "clsWeight"],
    );
  }
  if (!dense && !mixToken && c.clsWeight === 0) {
    fail(
      "`clsWeight: 0` without token labels leaves nothing to train; drop `clsWeight` or add `tokenLabel: true`",
      ["clsWeight", "tokenLabel"],
    );
  }
  const lr = c.lr ?? c.lrBase * c.batchSize / c.lrBaseBatch;
  return {
    ...c,
    model,
    imgSize,
    dropPath: c.dropPath ?? recipe.dropPath,
    auxHead,
    mixToken,
    cropPct: c.cropPct ?? recipe.cropPct,
    tokenLabelSize,
    lr,
    patchSize: entry.patchSize,
    grid,
  };
}

/**
 * The fields two configs disagree on, run-only fields (output, backend,
 * workers, logging and checkpoint frequency) left out: empty when a run may
 * resume under `b` what `a` started. A field one of them lacks (a run.json
 * written before the field existed) counts as its default, which is what
 * that run computed with.
 *
 * @example
 * ```ts
 * import { configDifferences } from "tokenlab";
 * const a = { lr: 1e-3, output: "runs/a" }, b = { lr: 2e-3, output: "runs/b" };
 * console.log(configDifferences(a, b)); // ["lr: 0.001 -> 0.002"]
 * console.log(configDifferences({}, { refine: "none" })); // [] (the default)
 * ```
 */
export function configDifferences(
  a: Record<string, unknown>,
  b: Record<string, unknown>,
): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  const defaults = DEFAULT_TRAIN_CONFIG as unknown as Record<string, unknown>;
  const value = (o: Record<string, unknown>, k: string) =>
    JSON.stringify((k in o ? o[k] : defaults[k]) ?? null);
  const out: string[] = [];
  for (const k of [...keys].sort()) {
    if ((RUN_ONLY_FIELDS as readonly string[]).includes(k)) continue;
    const x = value(a, k), y = value(b, k);
    if (x !== y) out.push(`${k}: ${x} -> ${y}`);
  }
  return out;
}
