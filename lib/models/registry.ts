/**
 * Named model variants with the published hyperparameters, plus small
 * variants sized for CPU work in notebooks and CI (small LV-ViTs, ViTs and
 * ReLabel-style ResNets).
 *
 * @module
 */

import {
  ConfigError,
  countParameters,
  gridSize,
  type ModelConfig,
  type ModelFamily,
  officialFlops,
  resolveConfig,
} from "./config.ts";
import { type CreateOptions, LvVit } from "./lvvit.ts";
import type { TokenModel } from "./model.ts";
import { ResNet } from "./resnet.ts";

/** A registered variant: its config and where its numbers come from. */
export interface ModelEntry {
  /** Registry name. */
  name: string;
  /** One line: what it is. */
  description: string;
  /** The variant's config at its default resolution. */
  config: ModelConfig;
  /** Published figures (1000 classes) by image size, where the paper or repository gives them. */
  published: Readonly<Record<number, PublishedFigures>>;
}

/** Figures the LV-ViT paper and repository publish for one image size. */
export interface PublishedFigures {
  /** Parameters in millions (head and aux head included). */
  paramsM?: number;
  /** FLOPs in G by the official counter. */
  flopsG?: number;
  /** ImageNet top-1 (%). */
  top1?: number;
}

const LVVIT = {
  stem: "conv",
  qkvBias: false,
  mlpRatio: 3,
  auxHead: true,
} as const;
// DeiT (timm's deit_*): linear patchify, qkv bias, MLP x4, LayerNorm eps 1e-6.
const DEIT = {
  stem: "linear",
  qkvBias: true,
  mlpRatio: 4,
  skipLam: 1,
  auxHead: false,
  normEps: 1e-6,
} as const;
// ReLabel-style CNN: the token grid is the final feature map.
const RESNET = { family: "resnet", auxHead: true } as const;

/** A registry entry: `config` resolved under the variant's own name. */
function variant(
  name: string,
  description: string,
  config: Partial<ModelConfig>,
  published: ModelEntry["published"] = {},
): ModelEntry {
  return {
    name,
    description,
    config: resolveConfig({ ...config, name }),
    published,
  };
}

const ENTRIES: ModelEntry[] = [
  variant(
    "lvvit_t",
    "LV-ViT-T: D 240, depth 12, 4 heads, skip_lam 1",
    { ...LVVIT, embedDim: 240, depth: 12, numHeads: 4, skipLam: 1 },
    { 224: { paramsM: 8.53, flopsG: 2.87, top1: 79.1 } },
  ),
  variant(
    "lvvit_s",
    "LV-ViT-S: D 384, depth 16, 6 heads, skip_lam 2",
    { ...LVVIT, embedDim: 384, depth: 16, numHeads: 6, skipLam: 2 },
    {
      224: { paramsM: 26.15, flopsG: 6.57, top1: 83.3 },
      384: { paramsM: 26.30, flopsG: 22.17, top1: 84.4 },
    },
  ),
  variant(
    "lvvit_m",
    "LV-ViT-M: D 512, depth 20, 8 heads, skip_lam 2",
    { ...LVVIT, embedDim: 512, depth: 20, numHeads: 8, skipLam: 2 },
    {
      224: { paramsM: 55.83, flopsG: 12.74, top1: 84.0 },
      384: { paramsM: 56.03, flopsG: 42.16, top1: 85.4 },
      448: { paramsM: 56.13, top1: 85.5 },
    },
  ),
  variant(
    "lvvit_l",
    "LV-ViT-L: D 768, depth 24, 12 heads, 128-channel stem, skip_lam 3 (published at 448)",
    {
      ...LVVIT,
      imgSize: 448,
      embedDim: 768,
      depth: 24,
      numHeads: 12,
      stemChannels: 128,
      skipLam: 3,
    },
    {
      448: { paramsM: 150.47, flopsG: 157.0, top1: 86.2 },
      512: { paramsM: 150.66, flopsG: 214.78, top1: 86.4 },
    },
  ),
  variant(
    "vit_ti",
    "DeiT-Ti baseline: linear patchify, D 192, depth 12, 3 heads, MLP x4",
    { ...DEIT, embedDim: 192, depth: 12, numHeads: 3 },
  ),
  variant(
    "vit_s",
    "DeiT-S baseline: linear patchify, D 384, depth 12, 6 heads, MLP x4",
    { ...DEIT, embedDim: 384, depth: 12, numHeads: 6 },
  ),
  variant(
    "vit_b",
    "DeiT-B baseline: linear patchify, D 768, depth 12, 12 heads, MLP x4",
    { ...DEIT, embedDim: 768, depth: 12, numHeads: 12 },
  ),
  variant(
    "lvvit_xs32",
    "small LV-ViT for 32x32 inputs (CPU): patch 4, D 128, depth 4, 4 heads, 32-ch stem",
    {
      ...LVVIT,
      imgSize: 32,
      patchSize: 4,
      numClasses: 10,
      embedDim: 128,
      depth: 4,
      numHeads: 4,
      stemChannels: 32,
      skipLam: 2,
    },
  ),
  variant(
    "lvvit_xs64",
    "small LV-ViT for 64x64 inputs (CPU, the bench-64 structure): patch 8, D 192, depth 8, 3 heads",
    {
      ...LVVIT,
      imgSize: 64,
      patchSize: 8,
      numClasses: 10,
      embedDim: 192,
      depth: 8,
      numHeads: 3,
      stemChannels: 64,
      skipLam: 2,
    },
  ),
  variant(
    "vit_xs32",
    "small ViT baseline for 32x32 inputs: linear patchify 4, D 128, depth 4, 4 heads, MLP x4",
    {
      ...DEIT,
      imgSize: 32,
      patchSize: 4,
      numClasses: 10,
      embedDim: 128,
      depth: 4,
      numHeads: 4,
    },
  ),
  variant(
    "vit_xs64",
    "small ViT baseline for 64x64 inputs: linear patchify 8, D 192, depth 8, 3 heads, MLP x4",
    {
      ...DEIT,
      imgSize: 64,
      patchSize: 8,
      numClasses: 10,
      embedDim: 192,
      depth: 8,
      numHeads: 3,
    },
  ),
  variant(
    "resnet_xs32",
    "small ReLabel-style ResNet for 32x32 inputs: 3x3 stem, stages 32/64/128 x 2 basic blocks, 8x8 final map, aux head per cell",
    {
      ...RESNET,
      imgSize: 32,
      patchSize: 4,
      numClasses: 10,
      stageWidths: [32, 64, 128],
      stageBlocks: [2, 2, 2],
    },
  ),
  variant(
    "resnet_xs64",
    "small ReLabel-style ResNet for 64x64 inputs: 3x3 stem, stages 32/64/128/256 x 1/1/2/2 basic blocks, 8x8 final map, aux head per cell",
    {
      ...RESNET,
      imgSize: 64,
      patchSize: 8,
      numClasses: 10,
      stageWidths: [32, 64, 128, 256],
      stageBlocks: [1, 1, 2, 2],
    },
  ),
];

/** Names of every registered variant, in registry order. */
export const MODEL_NAMES: readonly string[] = ENTRIES.map((e) => e.name);

/**
 * The registry entry of a variant; an unknown name is an error listing the
 * known ones.
 *
 * @example
 * ```ts
 * import { modelEntry } from "tokenlab";
 * console.log(modelEntry("lvvit_s").config.embedDim); // 384
 * ```
 */
export function modelEntry(name: string): ModelEntry {
  const e = ENTRIES.find((e) => e.name === name);
  if (e === undefined) {
    throw new ConfigError(
      `unknown model "${name}"; the registry has ${MODEL_NAMES.join(", ")}`,
    );
  }
  return e;
}

/** A registered variant's config with fields overridden (image size, classes, drop path...). */
export function modelConfig(
  name: string,
  overrides: Partial<ModelConfig> = {},
): ModelConfig {
  return resolveConfig({ ...modelEntry(name).config, ...overrides, name });
}

/**
 * Builds a registered variant, freshly initialised: an {@linkcode LvVit} or
 * a {@linkcode ResNet}, by the config's `family`.
 *
 * @example
 * ```ts
 * import { createModel, initBackend } from "tokenlab";
 * await initBackend();
 * const model = createModel("lvvit_xs32", { numClasses: 100 });
 * console.log(model.toString());
 * model.dispose();
 * const cnn = createModel("resnet_xs32", { stageWidths: [8, 16, 32] });
 * console.log(cnn.config.family, cnn.grid); // resnet 8
 * cnn.dispose();
 * ```
 */
export function createModel(
  name: string,
  overrides: Partial<ModelConfig> = {},
  options: CreateOptions = {},
): TokenModel {
  return buildModel(modelConfig(name, overrides), options);
}

/**
 * Builds a model from a config (full or partial), dispatching on its
 * `family`: "vit" (the default) an LvVit, "resnet" a ResNet.
 *
 * @example
 * ```ts
 * import { buildModel, initBackend } from "tokenlab";
 * await initBackend();
 * const m = buildModel({ family: "resnet", imgSize: 16, patchSize: 2,
 *   stageWidths: [4, 8], stageBlocks: [1, 1], numClasses: 3 });
 * console.log(m.grid); // 8
 * m.dispose();
 * ```
 */
export function buildModel(
  config: Partial<ModelConfig>,
  options: CreateOptions = {},
): TokenModel {
  const c = resolveConfig(config);
  return c.family === "resnet"
    ? ResNet.create(c, options)
    : LvVit.create(c, options);
}

/** One row of {@linkcode modelTable}. */
export interface ModelRow {
  /** Registry name. */
  name: string;
  /** Architecture: "vit" or "resnet". */
  family: ModelFamily;
  /** Image side in pixels. */
  imgSize: number;
  /** Patch tokens (grid side squared), or a ResNet's final-map cells; a ViT's class token comes on top. */
  tokens: number;
  /** Token grid side. */
  grid: number;
  /** Trainable parameters, counted from the parameter list the model is built from. */
  params: number;
  /** FLOPs by the official counter's convention. */
  flops: number;
  /** Classes. */
  numClasses: number;
  /** The variant's one-line description. */
  description: string;
  /** Published parameter count (M) when known at this size. */
  publishedParamsM?: number;
  /** Published FLOPs (G) when known at this size. */
  publishedFlopsG?: number;
}

/** Row of one config: size, tokens, parameters and FLOPs. */
export function modelRow(config: ModelConfig, description = ""): ModelRow {
  const grid = gridSize(config);
  return {
    name: config.name,
    family: config.family,
    imgSize: config.imgSize,
    tokens: grid * grid,
    grid,
    params: countParameters(config),
    flops: officialFlops(config),
    numClasses: config.numClasses,
    description,
  };
}

/**
 * The registry as rows (every variant at its default resolution, or the
 * named ones with overrides), for tables and `tokenlab models`.
 *
 * @example
 * ```ts
 * import { modelTable } from "tokenlab";
 * for (const r of modelTable(["lvvit_s"], { imgSize: 384 })) {
 *   console.log(r.name, (r.params / 1e6).toFixed(2), (r.flops / 1e9).toFixed(2)); // lvvit_s 26.30 22.17
 * }
 * ```
 */
export function modelTable(
  names: readonly string[] = MODEL_NAMES,
  overrides: Partial<ModelConfig> = {},
): ModelRow[] {
  return names.map((name) => {
    const e = modelEntry(name);
    const row = modelRow(modelConfig(name, overrides), e.description);
    const pub = e.published[row.imgSize];
    if (pub !== undefined) {
      // Published counts are for 1000 classes; FLOPs exclude the heads.
      if (row.numClasses === 1000) row.publishedParamsM = pub.paramsM;
      row.publishedFlopsG = pub.flopsG;
    }
    return row;
  });
}

/**
 * Rows as a text table (markdown): name, image size, tokens (a ResNet's:
 * the cells of its final map, no class token), parameters (M), FLOPs (G,
 * official counter; a ResNet's conv multiply-adds), classes, and the
 * published figures beside them where known.
 *
 * @example
 * ```ts
 * import { formatModelTable, modelTable } from "tokenlab";
 * console.log(formatModelTable(modelTable(["lvvit_t", "lvvit_s"])));
 * ```
 */
export function formatModelTable(rows: readonly ModelRow[]): string {
  const header = [
    "model",
    "img",
    "tokens",
    "params (M)",
    "FLOPs (G)",
    "classes",
    "published params / FLOPs",
  ];
  const body = rows.map((r) => [
    r.name,
    String(r.imgSize),
    `${r.grid}x${r.grid}=${r.tokens}${r.family === "resnet" ? "" : "+1"}`,
    (r.params / 1e6).toFixed(2),
    (r.flops / 1e9).toFixed(2),
    String(r.numClasses),
    r.publishedParamsM === undefined && r.publishedFlopsG === undefined
      ? ""
      : `${
        r.publishedParamsM === undefined
          ? "-"
          : `${r.publishedParamsM.toFixed(2)}M`
      } / ${
        r.publishedFlopsG === undefined
          ? "-"
          : `${r.publishedFlopsG.toFixed(2)}G`
      }`,
  ]);
  const widths = header.map((h, i) =>
    Math.max(h.length, ...body.map((row) => row[i].length))
  );
  const line = (cells: string[]) =>
    `| ${
      cells.map((c, i) => i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))
        .join(" | ")
    } |`;
  return [
    line(header),
    `|${
      widths.map((w, i) =>
        i === 0 ? ` ${"-".repeat(w)} ` : ` ${"-".repeat(w - 1)}: `
      ).join("|")
    }|`,
    ...body.map(line),
  ].join("\n");
}
