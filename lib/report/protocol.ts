/**
 * The ablation reports' shared protocol: what `tiny`, `smoke` and `full`
 * mean (seeds, images, epochs, the student model), the two datasets
 * (synthetic scenes with exact labels, and real MNIST digits), and the short
 * training recipe every arm starts from. One place, so that every report's
 * arms differ only in what the ablation changes.
 *
 * @module
 */

import type { ModelConfig } from "../models/config.ts";
import type { TrainConfig } from "../train/config.ts";
import type { AblationSetting } from "./ablation.ts";
import type { AnnotatorLabels } from "./train_arm.ts";

/** The scales of the ablation reports. */
export type AblationScale = "tiny" | "smoke" | "full";

/** The datasets of the ablation reports. */
export type AblationData = "synthetic" | "mnist";

/** What a scale means. */
export interface ScaleProtocol {
  /** Training seeds (each arm runs each; the data is the same for all). */
  seeds: readonly number[];
  /** Training images. */
  trainImages: number;
  /** Validation images. */
  valImages: number;
  /** Epochs of the student. */
  epochs: number;
  /** The student: `lvvit_xs32` with these changes (32 px, 8x8 tokens). */
  model: Partial<ModelConfig>;
  /** Images per step. */
  batchSize: number;
  /** Peak learning rate (raised from the recipe's 1e-4 at batch 64 for so short a run). */
  lr: number;
  /** What it is for, in one line. */
  purpose: string;
}

/**
 * The three scales. `tiny` proves a report runs end to end (CI renders
 * every report at it; its numbers mean nothing). `smoke` is the protocol in
 * minutes per report on a 2-core machine. `full` is the largest protocol
 * that fits about 90 minutes of that machine for all reports together.
 */
export const ABLATION_SCALES: Readonly<Record<AblationScale, ScaleProtocol>> = {
  tiny: {
    seeds: [1, 2],
    trainImages: 128,
    valImages: 64,
    epochs: 1,
    model: { embedDim: 32, depth: 1, numHeads: 1, stemChannels: 8 },
    batchSize: 32,
    lr: 2e-3,
    purpose: "runs end to end in seconds; its numbers mean nothing",
  },
  smoke: {
    seeds: [1, 2, 3],
    trainImages: 512,
    valImages: 256,
    epochs: 2,
    model: { embedDim: 48, depth: 2, numHeads: 2, stemChannels: 16 },
    batchSize: 64,
    lr: 2e-3,
    purpose: "the protocol in a few minutes per report on 2 CPU cores",
  },
  full: {
    seeds: [1, 2, 3],
    trainImages: 2048,
    valImages: 1024,
    epochs: 4,
    model: { embedDim: 64, depth: 2, numHeads: 2, stemChannels: 16 },
    batchSize: 64,
    lr: 2e-3,
    purpose:
      "the largest protocol that fits about 90 minutes of a 2-core machine for all reports together",
  },
};

/** Options of {@linkcode dataSpec}. */
export interface DataSpecOptions {
  /** Images (default: the scale's training or validation count). */
  count?: number;
  /** The split (default "train"). */
  split?: "train" | "val";
  /** Image side in pixels (default 32). */
  size?: number;
  /** Classes of synthetic scenes (default 10). */
  classes?: number;
}

/**
 * The `--data` text of a dataset at a scale: the same data for every arm
 * and seed (the data's own seed is fixed at 0).
 *
 * @example
 * ```ts
 * import { dataSpec } from "tokenlab";
 * console.log(dataSpec("synthetic", "smoke")); // synthetic:size=32,count=512,classes=10,seed=0
 * console.log(dataSpec("mnist", "smoke", { split: "val" })); // mnist:size=32,seed=0,split=val,limit=256
 * ```
 */
export function dataSpec(
  data: AblationData,
  scale: AblationScale,
  options: DataSpecOptions = {},
): string {
  const p = ABLATION_SCALES[scale];
  const split = options.split ?? "train";
  const count = options.count ??
    (split === "train" ? p.trainImages : p.valImages);
  const size = options.size ?? 32;
  if (data === "synthetic") {
    return `synthetic:size=${size},count=${count},classes=${
      options.classes ?? 10
    },seed=0${split === "val" ? ",split=val" : ""}`;
  }
  return `mnist:size=${size},seed=0${
    split === "val" ? ",split=val" : ""
  },limit=${count}`;
}

/**
 * The augmentation for digits. A flipped 2 is not a 2, and the ImageNet
 * recipe's crops (8-100 % of the area, aspect 3/4-4/3), RandAugment m9 and
 * random erasing cut off or paint over the strokes that make a digit: with
 * them a plain student reached about 22 % top-1 on 2048 MNIST digits after
 * 4 epochs, with these about 61 % (one seed each, same run otherwise).
 */
export const DIGIT_AUGMENTATION: Readonly<Partial<TrainConfig>> = {
  hflip: 0,
  aa: null,
  reprob: 0,
  scale: [0.7, 1],
  ratio: [0.9, 1.1],
};

/** Options of {@linkcode studentRecipe}. */
export interface StudentRecipeOptions {
  /** The registry model (default `lvvit_xs32`). */
  model?: string;
  /** Changes to the scale's model (merged over it). */
  modelOverrides?: Partial<ModelConfig>;
  /** Image side (default 32). */
  size?: number;
}

/**
 * The training config every arm starts from: the official recipe (AdamW,
 * warmup + cosine, label smoothing 0.1, RandAugment, random erasing, drop
 * path) shortened to the scale (1 warmup epoch, no cooldown, per-step
 * schedule); digits get {@linkcode DIGIT_AUGMENTATION} instead of the
 * ImageNet augmentation.
 *
 * @example
 * ```ts
 * import { studentRecipe } from "tokenlab";
 * const c = studentRecipe("mnist", "tiny");
 * console.log(c.data, c.epochs, c.hflip); // mnist:size=32,seed=0,limit=128 1 0
 * ```
 */
export function studentRecipe(
  data: AblationData,
  scale: AblationScale,
  options: StudentRecipeOptions = {},
): Partial<TrainConfig> & Pick<TrainConfig, "data"> {
  const p = ABLATION_SCALES[scale];
  const size = options.size ?? 32;
  return {
    model: options.model ?? "lvvit_xs32",
    modelOverrides: { ...p.model, ...options.modelOverrides },
    ...(size !== 32 ? { imgSize: size } : {}),
    data: dataSpec(data, scale, { size }),
    valData: dataSpec(data, scale, { split: "val", size }),
    batchSize: p.batchSize,
    lr: p.lr,
    epochs: p.epochs,
    warmupEpochs: Math.min(1, p.epochs),
    cooldownEpochs: 0,
    schedUpdate: "step",
    logEvery: 1000,
    ...(data === "mnist" ? DIGIT_AUGMENTATION : {}),
  };
}

/** The `setting` of an ablation on a dataset at a scale. */
export function ablationSetting(
  data: AblationData,
  scale: AblationScale,
  model = "LV-ViT",
): AblationSetting {
  const p = ABLATION_SCALES[scale];
  const m = p.model;
  return {
    dataset: data === "synthetic"
      ? "synthetic scenes (32 px, 10 classes)"
      : "MNIST digits (32 px, 10 classes)",
    real: data === "mnist",
    model: `${model} (${m.depth} block${
      m.depth === 1 ? "" : "s"
    }, width ${m.embedDim})`,
    epochs: p.epochs,
    scale,
    trainImages: p.trainImages,
    valImages: p.valImages,
  };
}

/** How strong an annotator the kit trains. */
export type AnnotatorStrength = "strong" | "weak";

/** Options of {@linkcode annotatorSource}. */
export interface AnnotatorSourceOptions {
  /** The classifier run at every token (default aux_head: the head trained per token). */
  head?: "head" | "aux_head";
  /** Classes kept per location (default 5). */
  k?: number;
}

/**
 * An annotator the kit trains for a dataset at a scale, as a
 * label source. `strong`: twice the student's depth, 1.5x its
 * width, twice its epochs, on all the training images, with a token head
 * trained on the image label at every token. `weak`: the student's size, a
 * quarter of the images, a quarter of the epochs (at least one).
 *
 * @example
 * ```ts
 * import { annotatorSource } from "tokenlab";
 * const a = annotatorSource("mnist", "smoke", "strong");
 * console.log(a.kind, a.train.epochs); // annotator 4
 * ```
 */
export function annotatorSource(
  data: AblationData,
  scale: AblationScale,
  strength: AnnotatorStrength = "strong",
  options: AnnotatorSourceOptions = {},
): AnnotatorLabels {
  const p = ABLATION_SCALES[scale];
  const base = studentRecipe(data, scale);
  const train = strength === "strong"
    ? {
      ...base,
      modelOverrides: {
        ...p.model,
        depth: 2 * (p.model.depth ?? 1),
        embedDim: 16 * Math.round(1.5 * (p.model.embedDim ?? 32) / 16),
      },
      epochs: 2 * p.epochs,
      auxHead: true,
    }
    : {
      ...base,
      data: dataSpec(data, scale, {
        count: Math.max(32, Math.round(p.trainImages / 4)),
      }),
      epochs: Math.max(1, Math.round(p.epochs / 4)),
      auxHead: true,
    };
  return {
    kind: "annotator",
    train,
    head: options.head ?? "aux_head",
    k: options.k ?? 5,
  };
}
