/**
 * What a ResNet config (`family: "resnet"`) defines before any model is
 * built: its validation, the geometry of its stages and blocks, its
 * parameter list (torchvision's names and shapes) and its FLOPs.
 *
 * The network: a 3x3 conv stem (stride 1 or 2) + BN + ReLU, then stages of
 * basic residual blocks (two 3x3 convs with BN; identity shortcut, or a
 * strided 1x1 conv + BN where the shape changes), stride 2 at the start of
 * every stage after the first. The total stride is `patchSize`, so the final
 * map is the same `imgSize / patchSize` grid an LV-ViT's tokens are on.
 *
 * @module
 */

import {
  ConfigError,
  type ModelConfig,
  type ParamSpec,
} from "./config_types.ts";

/** One basic residual block of a ResNet config. */
export interface ResnetBlock {
  /** State-dict prefix (`layers.1.0`). */
  prefix: string;
  /** Input channels. */
  inChannels: number;
  /** Output channels. */
  outChannels: number;
  /** Stride of its first conv and of the shortcut (1 or 2). */
  stride: number;
  /** Whether the shortcut is a 1x1 conv + BN (`downsample.0`, `downsample.1`). */
  projection: boolean;
}

/**
 * Stride of the stem conv: patchSize / 2^(stages - 1).
 *
 * @example
 * ```ts
 * import { modelConfig, resnetStemStride } from "tokenlab";
 * console.log(resnetStemStride(modelConfig("resnet_xs32"))); // 1
 * ```
 */
export function resnetStemStride(config: ModelConfig): number {
  return config.patchSize / 2 ** (config.stageWidths.length - 1);
}

/**
 * The blocks in forward order, with their channels, strides and shortcuts.
 *
 * @example
 * ```ts
 * import { modelConfig, resnetBlocks } from "tokenlab";
 * const b = resnetBlocks(modelConfig("resnet_xs32"));
 * console.log(b.length, b[2].prefix, b[2].stride, b[2].projection); // 6 layers.1.0 2 true
 * ```
 */
export function resnetBlocks(config: ModelConfig): ResnetBlock[] {
  const out: ResnetBlock[] = [];
  let inCh = config.stageWidths[0];
  config.stageWidths.forEach((width, i) => {
    for (let j = 0; j < config.stageBlocks[i]; j++) {
      const stride = i > 0 && j === 0 ? 2 : 1;
      out.push({
        prefix: `layers.${i}.${j}`,
        inChannels: inCh,
        outChannels: width,
        stride,
        projection: stride !== 1 || inCh !== width,
      });
      inCh = width;
    }
  });
  return out;
}

function positiveIntArray(
  c: ModelConfig,
  key: "stageWidths" | "stageBlocks",
): void {
  const v = c[key] as unknown;
  if (
    !Array.isArray(v) || v.length === 0 ||
    !v.every((x) => typeof x === "number" && Number.isInteger(x) && x > 0)
  ) {
    throw new ConfigError(
      `model config ${key} must be a non-empty array of positive integers (one per stage, e.g. ${
        key === "stageWidths" ? "[32, 64, 128]" : "[2, 2, 2]"
      }), found ${JSON.stringify(v)}`,
    );
  }
}

/**
 * The checks of a ResNet config (called by `resolveConfig` for
 * `family: "resnet"`); errors say which field and what would work.
 *
 * @example
 * ```ts
 * import { resolveConfig } from "tokenlab";
 * try {
 *   resolveConfig({ family: "resnet", imgSize: 32, patchSize: 16, stageWidths: [8, 16], stageBlocks: [1, 1] });
 * } catch (e) {
 *   console.log((e as Error).message); // ... patchSize must be 2 (stem stride 1) or 4 (stem stride 2) ...
 * }
 * ```
 */
export function validateResnetConfig(c: ModelConfig): void {
  positiveIntArray(c, "stageWidths");
  positiveIntArray(c, "stageBlocks");
  const stages = c.stageWidths.length;
  if (c.stageBlocks.length !== stages) {
    throw new ConfigError(
      `model config stageBlocks has ${c.stageBlocks.length} entries but stageWidths ${stages}; give one block count per stage`,
    );
  }
  const stem = resnetStemStride(c);
  if (stem !== 1 && stem !== 2) {
    const base = 2 ** (stages - 1);
    throw new ConfigError(
      `a ResNet's total stride is its stem's (1 or 2) times 2 per stage after the first: with ${stages} stage${
        stages === 1 ? "" : "s"
      }, patchSize must be ${base} (stem stride 1) or ${
        2 * base
      } (stem stride 2), found ${c.patchSize}; change patchSize or the number of stages`,
    );
  }
}

/**
 * The state of a ResNet in PyTorch's order and torchvision's names:
 * `stem.conv`, `stem.bn`, `layers.{stage}.{block}.conv1/bn1/conv2/bn2`,
 * `layers.{stage}.{block}.downsample.0/1`, then `head` and `aux_head`
 * (Linear [C, D]; the aux head is a 1x1 conv written as a Linear applied at
 * every cell). Convs have no bias; weight decay skips BN parameters and
 * biases.
 *
 * @example
 * ```ts
 * import { modelConfig, resnetParameterSpec } from "tokenlab";
 * const spec = resnetParameterSpec(modelConfig("resnet_xs32"));
 * console.log(spec[0].name, spec[0].shape); // stem.conv.weight [ 32, 3, 3, 3 ]
 * ```
 */
export function resnetParameterSpec(config: ModelConfig): ParamSpec[] {
  const c = config;
  const out: ParamSpec[] = [];
  const conv = (name: string, outCh: number, inCh: number, k: number) =>
    out.push({
      name,
      shape: [outCh, inCh, k, k],
      kind: "param",
      layout: "conv",
      init: "fan_in_uniform",
      fanIn: inCh * k * k,
      decay: true,
      dtype: "float32",
    });
  const batchNorm = (prefix: string, ch: number) => {
    for (
      const [leaf, init] of [["weight", "ones"], ["bias", "zeros"]] as const
    ) {
      out.push({
        name: `${prefix}.${leaf}`,
        shape: [ch],
        kind: "param",
        layout: "plain",
        init,
        decay: false,
        dtype: "float32",
      });
    }
    for (
      const [leaf, init] of [
        ["running_mean", "zeros"],
        ["running_var", "ones"],
        ["num_batches_tracked", "zeros"],
      ] as const
    ) {
      out.push({
        name: `${prefix}.${leaf}`,
        shape: leaf === "num_batches_tracked" ? [] : [ch],
        kind: "buffer",
        layout: "plain",
        init,
        decay: false,
        dtype: leaf === "num_batches_tracked" ? "int64" : "float32",
      });
    }
  };
  // PyTorch's nn.Linear: weight and bias U(-1/sqrt(in), 1/sqrt(in)).
  const linear = (prefix: string, inF: number, outF: number) => {
    out.push({
      name: `${prefix}.weight`,
      shape: [outF, inF],
      kind: "param",
      layout: "linear",
      init: "fan_in_uniform",
      fanIn: inF,
      decay: true,
      dtype: "float32",
    });
    out.push({
      name: `${prefix}.bias`,
      shape: [outF],
      kind: "param",
      layout: "plain",
      init: "fan_in_uniform",
      fanIn: inF,
      decay: false,
      dtype: "float32",
    });
  };
  const w0 = c.stageWidths[0];
  conv("stem.conv.weight", w0, c.inChans, 3);
  batchNorm("stem.bn", w0);
  for (const b of resnetBlocks(c)) {
    conv(`${b.prefix}.conv1.weight`, b.outChannels, b.inChannels, 3);
    batchNorm(`${b.prefix}.bn1`, b.outChannels);
    conv(`${b.prefix}.conv2.weight`, b.outChannels, b.outChannels, 3);
    batchNorm(`${b.prefix}.bn2`, b.outChannels);
    if (b.projection) {
      conv(`${b.prefix}.downsample.0.weight`, b.outChannels, b.inChannels, 1);
      batchNorm(`${b.prefix}.downsample.1`, b.outChannels);
    }
  }
  const D = c.stageWidths[c.stageWidths.length - 1];
  linear("head", D, c.numClasses);
  if (c.auxHead) linear("aux_head", D, c.numClasses);
  return out;
}

/**
 * Multiply-adds of every convolution of a ResNet (stem, blocks, projection
 * shortcuts) for one image: the official counter's convention applied to a
 * CNN (heads, BatchNorm, ReLU, pooling and the residual additions not
 * counted).
 *
 * @example
 * ```ts
 * import { modelConfig, resnetFlops } from "tokenlab";
 * console.log((resnetFlops(modelConfig("resnet_xs32")) / 1e6).toFixed(1)); // 105.7
 * ```
 */
export function resnetFlops(config: ModelConfig): number {
  const c = config;
  let side = c.imgSize / resnetStemStride(c);
  let total = side * side * c.inChans * c.stageWidths[0] * 9;
  for (const b of resnetBlocks(c)) {
    side /= b.stride;
    const px = side * side;
    total += px * b.inChannels * b.outChannels * 9;
    total += px * b.outChannels * b.outChannels * 9;
    if (b.projection) total += px * b.inChannels * b.outChannels;
  }
  return total;
}
