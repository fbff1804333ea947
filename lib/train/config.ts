/**
 * The training configuration: every part of the official recipe (spec
 * section 8; TokenLabeling's `main.py` on timm 0.4) is a field with the
 * official default. {@linkcode resolveTrainConfig} (`resolve_config.ts`)
 * fills in the defaults and checks every field before any work starts;
 * {@linkcode configDifferences} (`config_differences.ts`) says what a
 * resumed run changes.
 *
 * @module
 */

import type { BackendRequest } from "../backend.ts";
import type { ModelConfig } from "../models/config.ts";
import type { DataSpec } from "../data/datasets.ts";
import { TokenlabError } from "../errors.ts";
import { VARIANT_RECIPE } from "./_variant_recipe.ts";

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
