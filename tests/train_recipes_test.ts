/**
 * `tokenlab train --recipe`: the official recipe unchanged by default, the
 * short one for small data; `--epochs` counting every epoch that runs; a
 * warmup counted in steps; the plan; the warnings about augmentation that
 * does not fit the data.
 */

import {
  assert,
  assertEquals,
  assertStringIncludes,
  assertThrows,
} from "./_assert.ts";
import { UsageError } from "../lib/cli/_args.ts";
import { trainConfigFromArgs } from "../lib/cli/train.ts";
import { applyRecipe, applyWarmup, planText } from "../lib/cli/_train_plan.ts";
import { augmentationWarnings } from "../lib/cli/_data_warnings.ts";
import { RECIPES } from "../lib/cli/_recipes.ts";
import { DEFAULT_TRAIN_CONFIG } from "../lib/train/config.ts";
import { resolveTrainConfig } from "../lib/train/resolve_config.ts";
import { learningRate } from "../lib/train/schedule.ts";

const cliOf = (...args: string[]) =>
  trainConfigFromArgs(["--data", "mnist", ...args]);

/** The library config the command line gives, with `spe` steps per epoch. */
function configOf(spe: number, ...args: string[]) {
  const { config: flags, cli } = cliOf(...args);
  const config = applyRecipe(flags, cli);
  applyWarmup(config, flags, cli, spe);
  return {
    config,
    cli,
    resolved: resolveTrainConfig(config as { data: string }),
  };
}

Deno.test("recipes: imagenet is the default and the official recipe, unchanged", () => {
  const { cli } = cliOf();
  assertEquals(cli.recipe, "imagenet");
  const { resolved } = configOf(100);
  assertEquals(
    [
      resolved.batchSize,
      resolved.lr,
      resolved.epochs,
      resolved.warmupEpochs,
      resolved.cooldownEpochs,
    ],
    [1024, 1.6e-3, 300, 5, 10],
  );
  assertEquals(resolved.schedUpdate, "epoch");
  assertEquals([resolved.aa, resolved.reprob, resolved.hflip], [
    DEFAULT_TRAIN_CONFIG.aa,
    0.25,
    0.5,
  ]);
  assertEquals(resolved.scale, [0.08, 1]);
  assertEquals(RECIPES.imagenet.config, {});
});

Deno.test("recipes: --epochs counts every epoch that runs (main.py's plus the cooldown)", () => {
  // main.py --epochs 300 with 10 cooldown epochs runs 310.
  const { resolved } = configOf(100, "--epochs", "310");
  assertEquals([resolved.epochs, resolved.cooldownEpochs], [300, 10]);
  // --epochs 1 no longer runs 11: it is refused with the ways out.
  const e = assertThrows(() => configOf(100, "--epochs", "1"), UsageError);
  assertStringIncludes(e.message, "--epochs 1 counts every epoch that runs");
  assertStringIncludes(e.message, "10 cooldown epochs");
  assertStringIncludes(e.message, "--recipe short");
  // Enough epochs for the cooldown but not the warmup: named in flag terms.
  const w = assertThrows(() => configOf(100, "--epochs", "12"), UsageError);
  assertStringIncludes(
    w.message,
    "warmup of 5 epochs is longer than the 2 epochs",
  );
  assertStringIncludes(w.message, "--recipe short");
  const ok = configOf(
    100,
    "--epochs",
    "1",
    "--cooldown-epochs",
    "0",
    "--warmup-epochs",
    "0",
  ).resolved;
  assertEquals([ok.epochs, ok.cooldownEpochs], [1, 0]);
});

Deno.test("recipes: short is batch 64, lr 2e-3, per-step updates, 10 % warmup in steps, no cooldown, modest augmentation", () => {
  const { resolved, config } = configOf(
    125,
    "--recipe",
    "short",
    "--epochs",
    "3",
  );
  assertEquals([resolved.batchSize, resolved.lr], [64, 2e-3]);
  assertEquals([resolved.epochs, resolved.cooldownEpochs], [3, 0]);
  assertEquals(resolved.schedUpdate, "step");
  // 10 % of 375 steps: 38 steps, a fraction of an epoch.
  assertEquals(config.warmupEpochs, 38 / 125);
  assertEquals([resolved.aa, resolved.reprob], [null, 0]);
  assertEquals([resolved.scale, resolved.ratio], [[0.7, 1], [0.9, 1.1]]);
  // A 1-epoch run warms up for 10 % of its steps, then decays: its last
  // step is not at the warmup lr (a 1-epoch warmup per epoch would be).
  const one = configOf(50, "--recipe", "short", "--epochs", "1").resolved;
  const s = {
    lr: one.lr,
    warmupLr: one.warmupLr,
    minLr: one.minLr,
    epochs: one.epochs,
    warmupEpochs: one.warmupEpochs,
    cooldownEpochs: one.cooldownEpochs,
    update: one.schedUpdate,
  };
  assertEquals(one.warmupEpochs, 5 / 50);
  assert(learningRate(s, 0, 5, 50) > 1.9e-3);
  assert(learningRate(s, 0, 49, 50) < 1e-4);
});

Deno.test("recipes: explicit flags override the recipe; --warmup-steps needs per-step updates", () => {
  const { resolved } = configOf(
    100,
    "--recipe",
    "short",
    "--batch-size",
    "128",
    "--aa",
    "rand-m9-mstd0.5-inc1",
    "--cooldown-epochs",
    "2",
    "--epochs",
    "5",
  );
  assertEquals(resolved.batchSize, 128);
  assertEquals(resolved.lr, 4e-3); // 2e-3 x 128 / 64
  assertEquals(resolved.aa, "rand-m9-mstd0.5-inc1");
  assertEquals([resolved.epochs, resolved.cooldownEpochs], [3, 2]);
  const steps = configOf(
    100,
    "--recipe",
    "short",
    "--epochs",
    "2",
    "--warmup-steps",
    "20",
  );
  assertEquals(steps.resolved.warmupEpochs, 0.2);
  const e = assertThrows(
    () => configOf(100, "--epochs", "20", "--warmup-steps", "20"),
    UsageError,
  );
  assertStringIncludes(
    e.message,
    "--warmup-steps 20 needs per-step lr updates",
  );
  const both = assertThrows(
    () =>
      configOf(
        100,
        "--recipe",
        "short",
        "--warmup-steps",
        "2",
        "--warmup-epochs",
        "1",
      ),
    UsageError,
  );
  assertStringIncludes(both.message, "keep one");
  assertThrows(() => cliOf("--recipe", "fast"), UsageError);
});

Deno.test("recipes: the plan says epochs, steps, warmup, the lr of each phase and the augmentation", () => {
  const { resolved } = configOf(125, "--recipe", "short", "--epochs", "3");
  const text = planText(resolved, "short", {
    images: 8000,
    used: 8000,
    limit: null,
    classes: 10,
    valImages: 2000,
    stepsPerEpoch: 125,
  });
  for (
    const part of [
      "plan: recipe short",
      "3 in all (3 warmup and cosine + 0 cooldown), 125 steps per epoch at batch 64, 375 steps in all",
      "warmup: 38 steps",
      "lr updated every step; cooldown: none",
      "peak 2.00e-3",
      "after the warmup",
      "at the last step",
      "no RandAugment, no erasing",
    ]
  ) assertStringIncludes(text, part);
});

Deno.test("recipes: warnings for grey digits with RandAugment and flips, and for the imagenet recipe on small data", () => {
  const imagenet = configOf(7, "--epochs", "310").resolved;
  const digits = { sampled: 16, grayscale: true, side: 28 };
  const w = augmentationWarnings(imagenet, "imagenet", digits, 8000).join("\n");
  assertStringIncludes(w, "look grayscale");
  assertStringIncludes(w, "RandAugment (--aa rand-m9-mstd0.5-inc1) is on");
  assertStringIncludes(w, "use --hflip 0");
  assertStringIncludes(w, "use --recipe short");
  const short =
    configOf(125, "--recipe", "short", "--epochs", "3", "--hflip", "0")
      .resolved;
  assertEquals(augmentationWarnings(short, "short", digits, 8000), []);
  const photos = { sampled: 16, grayscale: false, side: 32 };
  const s2 = configOf(125, "--recipe", "short", "--epochs", "3").resolved;
  assertEquals(augmentationWarnings(s2, "short", photos, 50000), []);
});
