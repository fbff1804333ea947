/**
 * From the command line to the library's config, and the plan printed
 * before training. The command line's `--epochs` counts every epoch that
 * runs; the library's `epochs` (main.py's) counts the warmup and cosine,
 * and the cooldown runs after them. So `--epochs N` becomes `epochs: N -
 * cooldownEpochs`. The recipe (`_recipes.ts`) fills what no flag set, and a
 * warmup counted in steps becomes a fraction of an epoch (per-step updates).
 *
 * @module
 */

import {
  DEFAULT_TRAIN_CONFIG,
  type ResolvedTrainConfig,
} from "../train/config.ts";
import { scheduleCurve, scheduleOfConfig } from "../train/schedule.ts";
import { UsageError } from "./_args.ts";
import { type RecipeName, RECIPES } from "./_recipes.ts";

/** The command line's own options of `tokenlab train` (not config fields). */
export interface TrainCliOptions {
  /** `--recipe` (default imagenet). */
  recipe: RecipeName;
  /** `--warmup-steps`, when given. */
  warmupSteps?: number;
  /** `--extend`: continue a run under a longer (or shorter) schedule. */
  extend: boolean;
}

/** The config fields the flags set, recipe applied and epochs counted the library's way. */
export function applyRecipe(
  flags: Record<string, unknown>,
  cli: TrainCliOptions,
): Record<string, unknown> {
  const recipe = RECIPES[cli.recipe];
  const config: Record<string, unknown> = { ...recipe.config, ...flags };
  if (cli.warmupSteps !== undefined && flags.warmupEpochs !== undefined) {
    throw new UsageError(
      "tokenlab train: --warmup-steps and --warmup-epochs both set the warmup; keep one",
    );
  }
  const cooldown = (config.cooldownEpochs as number | undefined) ??
    DEFAULT_TRAIN_CONFIG.cooldownEpochs;
  const total = (flags.epochs as number | undefined) ?? recipe.totalEpochs;
  const from = flags.cooldownEpochs !== undefined
    ? `--cooldown-epochs ${cooldown}`
    : `the ${cli.recipe} recipe`;
  if (total - cooldown < 1) {
    throw new UsageError(
      `tokenlab train: --epochs ${total} counts every epoch that runs, but ${from} adds ${cooldown} cooldown epochs at the end, which leaves none for the warmup and the cosine; give --epochs ${
        cooldown + 1
      } or more, a smaller --cooldown-epochs, or --recipe short (no cooldown)`,
    );
  }
  config.epochs = total - cooldown;
  config.cooldownEpochs = cooldown;
  return config;
}

/**
 * Sets the warmup once the steps per epoch are known: `--warmup-steps`, or
 * the recipe's share of the run, as a fraction of an epoch; then checks it
 * fits the warmup and cosine epochs, in the command line's terms.
 */
export function applyWarmup(
  config: Record<string, unknown>,
  flags: Record<string, unknown>,
  cli: TrainCliOptions,
  stepsPerEpoch: number,
): void {
  const recipe = RECIPES[cli.recipe];
  const epochs = config.epochs as number;
  const cooldown = config.cooldownEpochs as number;
  const perStep = (config.schedUpdate ?? DEFAULT_TRAIN_CONFIG.schedUpdate) ===
    "step";
  let steps: number | undefined = cli.warmupSteps;
  if (steps !== undefined && !perStep) {
    throw new UsageError(
      `tokenlab train: --warmup-steps ${steps} needs per-step lr updates: add --sched-update step (or use --recipe short), or give --warmup-epochs`,
    );
  }
  if (
    steps === undefined && flags.warmupEpochs === undefined &&
    recipe.warmupFraction !== null && stepsPerEpoch > 0
  ) {
    const all = (epochs + cooldown) * stepsPerEpoch;
    steps = perStep
      ? Math.min(
        stepsPerEpoch,
        Math.max(1, Math.round(recipe.warmupFraction * all)),
      )
      : undefined;
    if (!perStep) {
      config.warmupEpochs = Math.round(recipe.warmupFraction * epochs);
    }
  }
  if (steps !== undefined && stepsPerEpoch > 0) {
    if (steps > epochs * stepsPerEpoch) {
      throw new UsageError(
        `tokenlab train: --warmup-steps ${steps} is longer than the ${
          epochs * stepsPerEpoch
        } steps of warmup and cosine (${epochs} epochs of ${stepsPerEpoch} steps); give fewer warmup steps or more --epochs`,
      );
    }
    config.warmupEpochs = steps / stepsPerEpoch;
  }
  const warmup = (config.warmupEpochs as number | undefined) ??
    DEFAULT_TRAIN_CONFIG.warmupEpochs;
  if (warmup > epochs) {
    const from = flags.warmupEpochs !== undefined
      ? `--warmup-epochs ${warmup}`
      : `the ${cli.recipe} recipe's warmup of ${warmup} epochs`;
    throw new UsageError(
      `tokenlab train: ${from} is longer than the ${epochs} epoch${
        epochs === 1 ? "" : "s"
      } of warmup and cosine (--epochs ${
        epochs + cooldown
      } minus ${cooldown} cooldown); give --warmup-epochs ${epochs} or fewer, more --epochs, or --recipe short (a warmup of 10 % of the steps)`,
    );
  }
}

/** What the plan says about the data. */
export interface DataFacts {
  /** Training images in the data. */
  images: number;
  /** Training images used (the limit's sample, or all). */
  used: number;
  /** How the limit chose them (null: no limit). */
  limit: { how: "stratified" | "first"; classes: number } | null;
  /** Classes of the training data. */
  classes: number;
  /** Validation images used (null: no evaluation). */
  valImages: number | null;
  /** Steps per epoch. */
  stepsPerEpoch: number;
}

const e = (x: number) => x.toExponential(2);

/** The augmentation in force, in words. */
export function augmentationText(c: ResolvedTrainConfig): string {
  const mixing = [
    c.mixToken ? "MixToken" : null,
    c.tlAlign ? "TL-Align" : null,
    c.cutmix > 0 ? `CutMix ${c.cutmix}` : null,
    c.mixup > 0 ? `MixUp ${c.mixup}` : null,
  ].filter((x) => x !== null);
  return [
    `crops ${c.scale[0]}-${c.scale[1]} of the area, aspect ${+c.ratio[0]
      .toFixed(3)}-${+c.ratio[1].toFixed(3)}`,
    c.hflip > 0 ? `flips ${c.hflip}` : "no flips",
    c.aa !== null ? `RandAugment ${c.aa}` : "no RandAugment",
    c.reprob > 0 ? `random erasing ${c.reprob}` : "no erasing",
    `label smoothing ${c.smoothing}`,
    mixing.length > 0 ? mixing.join(" + ") : "no mixing",
  ].join(", ");
}

/** The plan printed before training: recipe, epochs, steps, warmup, lr at each phase, augmentation. */
export function planText(
  c: ResolvedTrainConfig,
  recipe: RecipeName,
  data: DataFacts,
): string {
  const spe = Math.max(1, data.stepsPerEpoch);
  const total = c.epochs + c.cooldownEpochs;
  const curve = scheduleCurve(scheduleOfConfig(c), spe).lr;
  const warmupSteps = Math.round(c.warmupEpochs * spe);
  const afterWarmup = curve[Math.min(curve.length - 1, warmupSteps)];
  const cosineEnd = curve[Math.max(0, c.epochs * spe - 1)];
  const limit = data.limit === null
    ? `all ${data.images}`
    : `${data.used} of ${data.images} (${
      data.limit.how === "stratified"
        ? `a seeded sample over ${data.limit.classes} classes`
        : "the first, as drawn"
    })`;
  const lrHow = c.lr === c.lrBase * c.batchSize / c.lrBaseBatch
    ? ` (${c.lrBase} x ${c.batchSize}/${c.lrBaseBatch})`
    : "";
  const lines = [
    `plan: recipe ${RECIPES[recipe].summary}`,
    `  model ${c.model} ${c.imgSize}px, drop path ${c.dropPath}, wd ${c.weightDecay}${
      c.modelEma ? `, EMA ${c.modelEmaDecay}` : ""
    }${c.tokenLabel ? ", token labels" : ""}${
      c.refine !== "none" ? ` (refine ${c.refine})` : ""
    }`,
    `  data: ${limit} training images, ${data.classes} classes; ${
      data.valImages === null
        ? "no evaluation"
        : `${data.valImages} validation images`
    }`,
    `  epochs: ${total} in all (${c.epochs} warmup and cosine + ${c.cooldownEpochs} cooldown), ${data.stepsPerEpoch} steps per epoch at batch ${c.batchSize}, ${
      total * data.stepsPerEpoch
    } steps in all`,
    `  warmup: ${
      c.warmupEpochs === 0
        ? "none"
        : `${warmupSteps} steps (${+c.warmupEpochs.toFixed(3)} epoch${
          c.warmupEpochs === 1 ? "" : "s"
        })`
    }; lr updated every ${c.schedUpdate}; cooldown: ${
      c.cooldownEpochs === 0
        ? "none"
        : `${c.cooldownEpochs} epochs at ${e(c.minLr)}`
    }`,
    `  lr: ${e(curve[0])} at the start, peak ${e(c.lr)}${lrHow}, ${
      e(afterWarmup)
    } after the warmup, ${e(cosineEnd)} at the end of the cosine, ${
      e(curve[curve.length - 1])
    } at the last step`,
    `  augmentation: ${augmentationText(c)}`,
    `  output: ${
      c.output === null ? "nothing written (no --output)" : c.output
    }`,
  ];
  return lines.join("\n");
}

/** Where a run being extended stands: its newest checkpoint's position. */
export interface RunPosition {
  /** Steps done. */
  step: number;
  /** Epoch to continue in (0-based). */
  epoch: number;
  /** Next step of that epoch. */
  stepInEpoch: number;
}

/** The lr of step `step` (0-based) of a schedule, null past its end. */
function lrOfStep(c: ResolvedTrainConfig, step: number, spe: number) {
  const curve = scheduleCurve(scheduleOfConfig(c), spe).lr;
  return step < curve.length ? curve[step] : null;
}

/**
 * What `--resume --extend` changes, in the command line's terms: the
 * epochs in all before and after, and the lr from the current step on
 * under the old and the new schedule.
 */
export function extensionText(
  old: ResolvedTrainConfig,
  now: ResolvedTrainConfig,
  at: RunPosition | null,
  spe: number,
): string {
  const oldTotal = old.epochs + old.cooldownEpochs;
  const newTotal = now.epochs + now.cooldownEpochs;
  const step = at?.step ?? 0;
  const show = (x: number | null) => x === null ? "none (past its end)" : e(x);
  const oldNext = lrOfStep(old, step, spe), newNext = lrOfStep(now, step, spe);
  const oldEnd = lrOfStep(old, oldTotal * spe - 1, spe);
  const newEnd = lrOfStep(now, newTotal * spe - 1, spe);
  return [
    `extend: the run goes from ${oldTotal} to ${newTotal} epochs in all (${old.epochs} -> ${now.epochs} warmup and cosine, ${now.cooldownEpochs} cooldown), ${
      oldTotal * spe
    } -> ${newTotal * spe} steps; it continues from step ${step}${
      at === null ? " (no checkpoint yet)" : ` (epoch ${at.epoch + 1})`
    }`,
    `  lr of the next step: ${show(oldNext)} under the old schedule, ${
      show(newNext)
    } under the new; at the last step: ${show(oldEnd)} (old), ${
      show(newEnd)
    } (new)`,
    "  the steps already run keep the lr they had; run.json records the change, so a later --resume with the new --epochs agrees",
  ].join("\n");
}
