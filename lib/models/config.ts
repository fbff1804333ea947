/**
 * The configuration of an LV-ViT, a plain ViT or a small ResNet, its
 * validation, and what can
 * be derived from it without building the model: the parameter list (names
 * and shapes as in the official checkpoints), the token grid, the parameter
 * count and the FLOPs by the official counter's convention.
 *
 * @module
 */

import {
  resnetFlops,
  resnetParameterSpec,
  validateResnetConfig,
} from "./resnet_config.ts";
import {
  ConfigError,
  type InitKind,
  type ModelConfig,
  type ParamSpec,
} from "./config_types.ts";

// Defined in config_types.ts, which resnet_config.ts imports without a
// cycle; still exported here.
export {
  ConfigError,
  type InitKind,
  type ModelConfig,
  type ModelFamily,
  type ParamSpec,
  type StemKind,
} from "./config_types.ts";

/** Defaults of every field: LV-ViT-S at 224 with 1000 classes. */
export const DEFAULT_CONFIG: Readonly<ModelConfig> = Object.freeze({
  name: "custom",
  family: "vit",
  imgSize: 224,
  patchSize: 16,
  inChans: 3,
  numClasses: 1000,
  embedDim: 384,
  depth: 16,
  numHeads: 6,
  mlpRatio: 3,
  qkvBias: false,
  stem: "conv",
  stemChannels: 64,
  skipLam: 2,
  auxHead: true,
  dropPathRate: 0,
  dropRate: 0,
  attnDropRate: 0,
  normEps: 1e-5,
  bnEps: 1e-5,
  bnMomentum: 0.1,
  // ResNet-18's stages; unused by the ViT family.
  stageWidths: Object.freeze([64, 128, 256, 512]),
  stageBlocks: Object.freeze([2, 2, 2, 2]),
});

/**
 * Fills defaults and checks a configuration, with messages that say which
 * field is wrong, what it was and what would work.
 *
 * @example
 * ```ts
 * import { resolveConfig } from "tokenlab";
 * const c = resolveConfig({ embedDim: 192, numHeads: 3, imgSize: 64, patchSize: 8 });
 * console.log(c.depth, c.mlpRatio); // 16 3
 * ```
 */
export function resolveConfig(config: Partial<ModelConfig> = {}): ModelConfig {
  const c: ModelConfig = { ...DEFAULT_CONFIG, ...config };
  for (const [key, value] of Object.entries(config)) {
    if (!(key in DEFAULT_CONFIG)) {
      throw new ConfigError(
        `unknown model config field "${key}"; the fields are ${
          Object.keys(DEFAULT_CONFIG).join(", ")
        }`,
      );
    }
    if (value === undefined) {
      (c as unknown as Record<string, unknown>)[key] =
        (DEFAULT_CONFIG as unknown as Record<string, unknown>)[key];
    }
  }
  if (c.family !== "vit" && c.family !== "resnet") {
    throw new ConfigError(
      `model config family must be "vit" (LV-ViT, ViT) or "resnet", found ${
        JSON.stringify(c.family)
      }`,
    );
  }
  // Arrays are copied, so that no two configs share one.
  c.stageWidths = Array.isArray(c.stageWidths)
    ? [...c.stageWidths]
    : c.stageWidths;
  c.stageBlocks = Array.isArray(c.stageBlocks)
    ? [...c.stageBlocks]
    : c.stageBlocks;
  const positiveInts: (keyof ModelConfig)[] = [
    "imgSize",
    "patchSize",
    "inChans",
    "numClasses",
    "embedDim",
    "depth",
    "numHeads",
    "stemChannels",
  ];
  for (const k of positiveInts) {
    const v = c[k];
    if (!(typeof v === "number" && Number.isInteger(v) && v > 0)) {
      throw new ConfigError(
        `model config ${k} must be a positive integer, found ${
          JSON.stringify(v)
        }`,
      );
    }
  }
  if (c.imgSize % c.patchSize !== 0) {
    const lo = Math.floor(c.imgSize / c.patchSize) * c.patchSize;
    throw new ConfigError(
      `image size ${c.imgSize} is not divisible by the ${
        c.family === "resnet" ? "total stride (patchSize)" : "patch size"
      } ${c.patchSize}; use ${lo > 0 ? `${lo} or ` : ""}${
        lo + c.patchSize
      } (or another multiple of ${c.patchSize})`,
    );
  }
  if (c.family === "resnet") {
    validateResnetConfig(c);
    c.embedDim = c.stageWidths[c.stageWidths.length - 1];
  } else validateVitConfig(c);
  for (const k of ["dropPathRate", "dropRate", "attnDropRate"] as const) {
    if (!(c[k] >= 0 && c[k] < 1)) {
      throw new ConfigError(
        `model config ${k} must be in [0, 1), found ${c[k]}`,
      );
    }
  }
  for (const k of ["normEps", "bnEps"] as const) {
    if (!(c[k] > 0)) {
      throw new ConfigError(`model config ${k} must be > 0, found ${c[k]}`);
    }
  }
  if (!(c.bnMomentum >= 0 && c.bnMomentum <= 1)) {
    throw new ConfigError(
      `model config bnMomentum must be in [0, 1], found ${c.bnMomentum}`,
    );
  }
  return c;
}

/** The checks that only the ViT family needs. */
function validateVitConfig(c: ModelConfig): void {
  if (c.stem !== "conv" && c.stem !== "linear") {
    throw new ConfigError(
      `model config stem must be "conv" (LV-ViT's 4-conv stem) or "linear" (ViT patchify), found ${
        JSON.stringify(c.stem)
      }`,
    );
  }
  if (c.stem === "conv" && (c.patchSize % 2 !== 0 || c.patchSize < 2)) {
    throw new ConfigError(
      `the conv stem has stride 2 before its projection, so the patch size must be even; found ${c.patchSize}`,
    );
  }
  if (c.embedDim % c.numHeads !== 0) {
    throw new ConfigError(
      `embedDim ${c.embedDim} is not divisible by numHeads ${c.numHeads}; each head needs embedDim / numHeads channels`,
    );
  }
  if (!(c.mlpRatio > 0) || Math.floor(c.embedDim * c.mlpRatio) < 1) {
    throw new ConfigError(
      `mlpRatio must be > 0, found ${c.mlpRatio}`,
    );
  }
  if (!(c.skipLam > 0)) {
    throw new ConfigError(
      `skipLam divides each residual branch, so it must be > 0; found ${c.skipLam}`,
    );
  }
}

/** Side of the token grid (imgSize / patchSize). */
export function gridSize(config: ModelConfig): number {
  return config.imgSize / config.patchSize;
}

/** Width of the MLP's hidden layer, int(D * mlpRatio) as the official code. */
export function mlpHidden(config: ModelConfig): number {
  return Math.floor(config.embedDim * config.mlpRatio);
}

/**
 * The model's state in the order of the official PyTorch state dict, with
 * official names and shapes. The model is built from exactly this list (a
 * ResNet's: torchvision's names, see {@linkcode resnetParameterSpec}).
 *
 * @example
 * ```ts
 * import { parameterSpec, resolveConfig } from "tokenlab";
 * const spec = parameterSpec(resolveConfig({ depth: 1 }));
 * console.log(spec.slice(0, 3).map((p) => `${p.name} [${p.shape}]`));
 * // [ "cls_token [1,1,384]", "pos_embed [1,197,384]", "patch_embed.conv1.weight [64,3,7,7]" ]
 * ```
 */
export function parameterSpec(config: ModelConfig): ParamSpec[] {
  if (config.family === "resnet") return resnetParameterSpec(config);
  const c = config;
  const D = c.embedDim, S = c.stemChannels, C = c.numClasses;
  const n = gridSize(c) ** 2;
  const out: ParamSpec[] = [];
  const param = (
    name: string,
    shape: number[],
    layout: ParamSpec["layout"],
    init: InitKind,
    fanIn?: number,
  ) =>
    out.push({
      name,
      shape,
      kind: "param",
      layout,
      init,
      fanIn,
      decay: shape.length > 1 && name !== "pos_embed" && name !== "cls_token",
      dtype: "float32",
    });
  const buffer = (name: string, shape: number[], init: InitKind) =>
    out.push({
      name,
      shape,
      kind: "buffer",
      layout: "plain",
      init,
      decay: false,
      dtype: name.endsWith("num_batches_tracked") ? "int64" : "float32",
    });
  const batchNorm = (prefix: string, ch: number) => {
    param(`${prefix}.weight`, [ch], "plain", "ones");
    param(`${prefix}.bias`, [ch], "plain", "zeros");
    buffer(`${prefix}.running_mean`, [ch], "zeros");
    buffer(`${prefix}.running_var`, [ch], "ones");
    buffer(`${prefix}.num_batches_tracked`, [], "zeros");
  };
  const linear = (prefix: string, inF: number, outF: number, bias = true) => {
    param(`${prefix}.weight`, [outF, inF], "linear", "trunc_normal");
    if (bias) param(`${prefix}.bias`, [outF], "plain", "zeros");
  };
  const norm = (prefix: string) => {
    param(`${prefix}.weight`, [D], "plain", "ones");
    param(`${prefix}.bias`, [D], "plain", "zeros");
  };

  // PyTorch lists a module's own parameters before its children's.
  param("cls_token", [1, 1, D], "plain", "trunc_normal");
  param("pos_embed", [1, n + 1, D], "plain", "trunc_normal");
  if (c.stem === "conv") {
    const k = c.patchSize / 2;
    param(
      "patch_embed.conv1.weight",
      [S, c.inChans, 7, 7],
      "conv",
      "fan_in_uniform",
      c.inChans * 49,
    );
    batchNorm("patch_embed.bn1", S);
    param(
      "patch_embed.conv2.weight",
      [S, S, 3, 3],
      "conv",
      "fan_in_uniform",
      S * 9,
    );
    batchNorm("patch_embed.bn2", S);
    param(
      "patch_embed.conv3.weight",
      [S, S, 3, 3],
      "conv",
      "fan_in_uniform",
      S * 9,
    );
    batchNorm("patch_embed.bn3", S);
    param(
      "patch_embed.proj.weight",
      [D, S, k, k],
      "conv",
      "fan_in_uniform",
      S * k * k,
    );
    param("patch_embed.proj.bias", [D], "plain", "fan_in_uniform", S * k * k);
  } else {
    const p = c.patchSize;
    param(
      "patch_embed.proj.weight",
      [D, c.inChans, p, p],
      "conv",
      "fan_in_uniform",
      c.inChans * p * p,
    );
    param(
      "patch_embed.proj.bias",
      [D],
      "plain",
      "fan_in_uniform",
      c.inChans * p * p,
    );
  }
  const H = mlpHidden(c);
  for (let i = 0; i < c.depth; i++) {
    const b = `blocks.${i}`;
    norm(`${b}.norm1`);
    linear(`${b}.attn.qkv`, D, 3 * D, c.qkvBias);
    linear(`${b}.attn.proj`, D, D);
    norm(`${b}.norm2`);
    linear(`${b}.mlp.fc1`, D, H);
    linear(`${b}.mlp.fc2`, H, D);
  }
  norm("norm");
  linear("head", D, C);
  if (c.auxHead) linear("aux_head", D, C);
  return out;
}

/**
 * Trainable parameters of the model (buffers excluded), as PyTorch's
 * `sum(p.numel() for p in model.parameters())`.
 *
 * @example
 * ```ts
 * import { countParameters, resolveConfig } from "tokenlab";
 * console.log((countParameters(resolveConfig({})) / 1e6).toFixed(2)); // 26.15
 * ```
 */
export function countParameters(config: ModelConfig): number {
  let total = 0;
  for (const p of parameterSpec(config)) {
    if (p.kind === "param") total += p.shape.reduce((a, b) => a * b, 1);
  }
  return total;
}

// Per-element costs the official counter charges for the cheap operations.
const DROPOUT_FLOPS = 4, LAYER_NORM_FLOPS = 5, ACTIVATION_FLOPS = 8;
const SOFTMAX_FLOPS = 5;

/**
 * FLOPs by the convention of the official `flops_computation.py`: the patch
 * embedding's convolutions (multiply-adds, BatchNorm and ReLU not counted)
 * plus every block's matmuls and elementwise charges for N+1 tokens; the
 * class and aux heads, the final norm and the attention's head split are not
 * counted. This is the number the paper's tables print (6.57G for LV-ViT-S
 * at 224). A ResNet is charged by the same convention: the multiply-adds of
 * every convolution, heads, BatchNorm, ReLU and pooling not counted
 * ({@linkcode resnetFlops}).
 *
 * @example
 * ```ts
 * import { officialFlops, resolveConfig } from "tokenlab";
 * console.log((officialFlops(resolveConfig({})) / 1e9).toFixed(2)); // 6.57
 * ```
 */
export function officialFlops(config: ModelConfig): number {
  if (config.family === "resnet") return resnetFlops(config);
  const c = config;
  const D = c.embedDim, S = c.stemChannels, img = c.imgSize;
  const s = gridSize(c) ** 2 + 1;
  let stem: number;
  if (c.stem === "conv") {
    // Every stem conv is charged at the stride-2 resolution; the projection's
    // k x k kernel at stride k over that map costs the same as 1 x 1 at it.
    const px = (img / 2) * (img / 2);
    stem = px * (c.inChans * S * 49 + 2 * S * S * 9 + S * D);
  } else {
    stem = img * img * c.inChans * D;
  }
  const h = D, i = mlpHidden(c), heads = c.numHeads;
  const attention = 3 * h * h + h * s + SOFTMAX_FLOPS * s * heads +
    DROPOUT_FLOPS * s * heads + s * heads + h * s + h * h + h +
    DROPOUT_FLOPS * h + h + LAYER_NORM_FLOPS * h;
  const mlp = h * i + ACTIVATION_FLOPS * i + i + h * i + h + DROPOUT_FLOPS * h +
    h + LAYER_NORM_FLOPS * h;
  return stem + c.depth * s * (attention + mlp);
}
