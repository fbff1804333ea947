/**
 * The recipes of `tokenlab train` (`--recipe`): the settings a flag left
 * out takes. Explicit flags always win over the recipe.
 *
 * - `imagenet` (default): the official `main.py` recipe, the library's
 *   defaults unchanged (LV-ViT on ImageNet: batch 1024, lr 1.6e-3 x
 *   batch / 1024, 5 warmup epochs, 300 cosine + 10 cooldown epochs updated
 *   per epoch, RandAugment m9, random erasing 0.25, flips, crops of 8-100 %
 *   of the area). It is made for 1.28 million images.
 * - `short`: a run of minutes on a small dataset (MNIST, CIFAR, a folder of
 *   a few thousand images). Its values are the ones the kit's own short
 *   runs use: `lib/report/protocol.ts` (the ablation scales and
 *   `studentRecipe`: batch 64, lr 2e-3, no cooldown, per-step schedule;
 *   `DIGIT_AUGMENTATION`: no RandAugment, no erasing, crops of 70-100 %,
 *   aspect 0.9-1.1, measured there at about 61 % top-1 against 22 % with
 *   the ImageNet augmentation on 2048 digits after 4 epochs) and
 *   `notebooks/05_training.ipynb` (batch 64, lr 2e-3: "the recipe would
 *   scale 1.6e-3 by 64/1024: too slow for 4 epochs"; 1 warmup epoch of 4,
 *   no cooldown, per-step updates). The warmup is counted in steps, 10 %
 *   of the run and at most one epoch (those runs warm up for one epoch of
 *   2-4; a 1-epoch run warmed up for a whole epoch would never decay), and
 *   the lr scales linearly from 2e-3 at batch 64. Flips stay on (right for
 *   natural images; the plan warns on digit-like data).
 *
 * @module
 */

import type { TrainConfig } from "../train/config.ts";

/** The recipes' names. */
export const RECIPE_NAMES = ["imagenet", "short"] as const;

/** A recipe's name. */
export type RecipeName = typeof RECIPE_NAMES[number];

/** A recipe: config defaults, its total epochs and how it warms up. */
export interface Recipe {
  /** One line for the plan. */
  summary: string;
  /** Config fields a flag left out takes. */
  config: Partial<TrainConfig>;
  /** Epochs that run in all when --epochs is left out. */
  totalEpochs: number;
  /**
   * Warmup in steps when neither --warmup-epochs nor --warmup-steps is
   * given: the fraction of all steps, at most one epoch (null: the
   * config's warmupEpochs).
   */
  warmupFraction: number | null;
}

/** The recipes, by name. */
export const RECIPES: Readonly<Record<RecipeName, Recipe>> = {
  imagenet: {
    summary:
      "imagenet: the official main.py recipe for ImageNet (1.28 million images)",
    config: {},
    totalEpochs: 310,
    warmupFraction: null,
  },
  short: {
    summary:
      "short: a run of minutes on a small dataset (values of lib/report/protocol.ts and notebooks/05_training.ipynb)",
    config: {
      batchSize: 64,
      lrBase: 2e-3,
      lrBaseBatch: 64,
      cooldownEpochs: 0,
      schedUpdate: "step",
      aa: null,
      reprob: 0,
      scale: [0.7, 1],
      ratio: [0.9, 1.1],
    },
    totalEpochs: 10,
    warmupFraction: 0.1,
  },
};

/** Whether `name` is a recipe. */
export function isRecipeName(name: string): name is RecipeName {
  return (RECIPE_NAMES as readonly string[]).includes(name);
}
