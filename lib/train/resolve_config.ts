/**
 * A training config resolved: the defaults filled in (the recipe's
 * per-variant ones included), the learning rate scaled, and every field and
 * every combination checked, before any work starts.
 *
 * @module
 */

import { MODEL_NAMES, modelConfig } from "../models/registry.ts";
import type { ModelConfig } from "../models/config.ts";
import {
  DEFAULT_TRAIN_CONFIG,
  isReLabel,
  type ResolvedTrainConfig,
  type TrainConfig,
  TrainConfigError,
} from "./config.ts";
import { variantRecipe } from "./_variant_recipe.ts";

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
  const recipe = variantRecipe(model);
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
