/**
 * A small ReLabel-style ResNet as a {@linkcode TokenModel}: conv stem, basic
 * residual stages, `head` on the globally average-pooled final map, and
 * `aux_head` (a 1x1 conv: one Linear applied at every cell) giving one
 * prediction per cell of the final map, the CNN's "tokens". Its state
 * carries torchvision-style names (`layers.0.0.conv1.weight`).
 *
 * Activations are NHWC; the cells are in row-major order, as LV-ViT's
 * patch tokens, so token labels pooled to the same grid apply unchanged.
 *
 * @module
 */

import { tf } from "../tf.ts";
import {
  batchNorm,
  type BatchNormParams,
  batchNormParams,
  checkImages,
  dropout,
  dropPath,
  param,
} from "./_layers.ts";
import {
  applyHead,
  cloneState,
  initialState,
  requireRng,
  type RunContext,
} from "./_model_state.ts";
import {
  linearDropPathRates,
  paramsLookup,
  StateModel,
} from "./_base_model.ts";
import { type ModelConfig, resolveConfig } from "./config.ts";
import type {
  CreateOptions,
  ForwardTrainOptions,
  TrainOutput,
} from "./lvvit.ts";
import { ModelInputError } from "./model.ts";
import {
  type ResnetBlock,
  resnetBlocks,
  resnetStemStride,
} from "./resnet_config.ts";

/** Raised when a ResNet is asked for something only a token model (a ViT) does. */
export class NotATokenModelError extends ModelInputError {
  /** The training config fields the message quotes (as `` `field` ``). */
  readonly fields: readonly ("cutmix" | "tlAlign")[];

  /** Creates the error; `fields` lists the config fields it quotes. */
  constructor(
    message: string,
    fields: readonly ("cutmix" | "tlAlign")[] = [],
  ) {
    super(message);
    this.fields = fields;
  }
}

/** 3x3 (pad 1) or 1x1 (no pad) convolution of an NHWC map, no bias. */
function conv(
  x: tf.Tensor4D,
  w: tf.Variable,
  stride: number,
): tf.Tensor4D {
  const k = w.shape[0];
  return tf.conv2d(x, w as tf.Tensor4D, stride, k === 1 ? "valid" : 1); // [B, H/stride, W/stride, out]
}

/** One residual block: its layout and its parameters. */
interface BlockParams {
  /** Channels, stride and shortcut of the block. */
  block: ResnetBlock;
  conv1: tf.Variable;
  bn1: BatchNormParams;
  conv2: tf.Variable;
  bn2: BatchNormParams;
  /** The projection shortcut (1x1 conv + BN), when the shape changes. */
  downsample: { conv: tf.Variable; bn: BatchNormParams } | null;
}

/** Every parameter the trunk reads, looked up once by name. */
interface ResNetParams {
  stemConv: tf.Variable;
  stemBn: BatchNormParams;
  blocks: BlockParams[];
}

/** The typed parameters of `config`'s ResNet in `state` (names in `resnet_config.ts`). */
function resnetParams(
  config: ModelConfig,
  state: ReadonlyMap<string, tf.Variable>,
): ResNetParams {
  return {
    stemConv: param(state, "stem.conv.weight"),
    stemBn: batchNormParams(state, "stem.bn"),
    blocks: resnetBlocks(config).map((block): BlockParams => {
      const p = block.prefix;
      return {
        block,
        conv1: param(state, `${p}.conv1.weight`),
        bn1: batchNormParams(state, `${p}.bn1`),
        conv2: param(state, `${p}.conv2.weight`),
        bn2: batchNormParams(state, `${p}.bn2`),
        downsample: block.projection
          ? {
            conv: param(state, `${p}.downsample.0.weight`),
            bn: batchNormParams(state, `${p}.downsample.1`),
          }
          : null,
      };
    }),
  };
}

// Each model's typed parameters, beside the class (it stays structural).
const paramsOf = paramsLookup(resnetParams);

/** Stem, stages and the final map [B, h, w, D]. */
function trunk(
  model: ResNet,
  x: tf.Tensor4D,
  ctx: RunContext,
): tf.Tensor4D {
  const c = model.config;
  const params = paramsOf(model);
  let y = conv(x, params.stemConv, resnetStemStride(c)); // [B, H/s, W/s, w0]
  y = tf.relu(batchNorm(y, params.stemBn, c, ctx));
  const rates = resnetDropPathRates(c);
  params.blocks.forEach((p, i) => {
    const b = p.block;
    let out = conv(y, p.conv1, b.stride); // [B, H', W', out]
    out = tf.relu(batchNorm(out, p.bn1, c, ctx));
    out = conv(out, p.conv2, 1);
    out = batchNorm(out, p.bn2, c, ctx);
    if (ctx.training && rates[i] > 0) {
      out = dropPath(
        out,
        rates[i],
        requireRng(ctx, "drop path"),
      ) as tf.Tensor4D;
    }
    const shortcut = p.downsample !== null
      ? batchNorm(
        conv(y, p.downsample.conv, b.stride), // [B, H', W', out]
        p.downsample.bn,
        c,
        ctx,
      )
      : y;
    y = tf.relu(tf.add(out, shortcut)) as tf.Tensor4D;
  });
  return y; // [B, h, w, D]
}

/**
 * Drop-path (stochastic depth) rate of each residual block: linear from 0
 * at the first to `dropPathRate` at the last, as LV-ViT's blocks.
 *
 * @example
 * ```ts
 * import { modelConfig, resnetDropPathRates } from "tokenlab";
 * const rates = resnetDropPathRates(modelConfig("resnet_xs32", { dropPathRate: 0.1 }));
 * console.log(rates.map((r) => r.toFixed(2)).join(" ")); // 0.00 0.02 0.04 0.06 0.08 0.10
 * ```
 */
export function resnetDropPathRates(config: ModelConfig): number[] {
  return linearDropPathRates(resnetBlocks(config).length, config.dropPathRate);
}

/**
 * A ReLabel-style ResNet (`family: "resnet"`): `head` on the pooled final
 * map, `aux_head` at each of its h x w cells. It trains through the same
 * engine as LV-ViT, but mixes only at the image level (CutMix, MixUp):
 * MixToken and TL-Align need tokens and attention, and are refused.
 *
 * @example
 * ```ts
 * import { initBackend, ResNet, Rng, tf } from "tokenlab";
 * await initBackend();
 * const model = ResNet.create({ family: "resnet", imgSize: 32, patchSize: 4,
 *   stageWidths: [8, 16, 32], stageBlocks: [1, 1, 1], numClasses: 10 });
 * const x = tf.randomNormal([2, 32, 32, 3], 0, 1, "float32", 1);
 * const { cls, aux } = model.forwardTrain(x, { rng: new Rng(0) });
 * console.log(cls.shape, aux?.shape); // [2, 10] [2, 64, 10]
 * const logits = model.predict(x); // head(pooled) + 0.5 max_cells aux_head
 * tf.dispose([x, cls, aux!, logits]);
 * model.dispose();
 * ```
 */
export class ResNet extends StateModel {
  /** Builds a freshly initialised ResNet; every draw comes from `options.seed`. */
  static create(
    config: Partial<ModelConfig> = {},
    options: CreateOptions = {},
  ): ResNet {
    const c = resolveConfig({ family: "resnet", ...config });
    if (c.family !== "resnet") {
      throw new ModelInputError(
        `ResNet.create needs family "resnet", found ${
          JSON.stringify(c.family)
        }; build a ViT with LvVit.create or createModel`,
      );
    }
    return new ResNet(c, initialState(c, options.seed ?? 0), paramsOf);
  }

  /** An independent copy: same config, a new variable for every state entry. */
  clone(): ResNet {
    return new ResNet(this.config, cloneState(this, this.state), paramsOf);
  }

  #check(x: tf.Tensor): void {
    checkImages(x, this.config, {
      disposed: this.isDisposed,
      strideName: "total stride",
      rebuildNote: "",
    });
  }

  /**
   * Evaluation-mode features [B, 1 + N, D]: the pooled map first (what
   * `head` reads), then the N cells of the final map row-major (what
   * `aux_head` reads).
   */
  features(x: tf.Tensor): tf.Tensor3D {
    this.#check(x);
    const ctx: RunContext = { training: false, rng: null, updateStats: false };
    return tf.tidy(() => {
      const map = trunk(this, x as tf.Tensor4D, ctx); // [B, h, w, D]
      const [B, h, w, D] = map.shape;
      const cells = tf.reshape(map, [B, h * w, D]); // [B, N, D]
      const pooled = tf.mean(cells, 1, true); // [B, 1, D]
      return tf.concat([pooled, cells], 1) as tf.Tensor3D; // [B, 1+N, D]
    });
  }

  /**
   * The training forward: `cls` [B, C] from the pooled map, `aux` [B, N, C]
   * at every cell (null without an aux head), `box` always null. BatchNorm
   * uses batch statistics (and moves the running ones unless
   * `updateStats: false`); drop path and dropout draw from `rng`.
   *
   * @throws {NotATokenModelError} for a `mixer` (MixToken) or `onAttention` (TL-Align)
   */
  forwardTrain(x: tf.Tensor, options: ForwardTrainOptions = {}): TrainOutput {
    const name = this.config.name;
    if (options.mixer !== undefined) {
      throw new NotATokenModelError(
        `MixToken needs a token model: it mixes patch tokens after a ViT's patch embedding, and ${name} is a CNN (ResNet) with no tokens to mix; mix its batch at the image level with CutMix (\`cutmix: 1.0\`) or MixUp, or train an lvvit_* model for MixToken`,
        ["cutmix"],
      );
    }
    if (options.onAttention !== undefined) {
      throw new NotATokenModelError(
        `TL-Align needs attention maps, and ${name} is a CNN (ResNet) without attention; drop \`tlAlign\` (use CutMix for a CNN), or train an lvvit_* model`,
        ["tlAlign"],
      );
    }
    this.#check(x);
    const ctx: RunContext = {
      training: true,
      rng: options.rng ?? null,
      updateStats: options.updateStats ?? true,
    };
    const c = this.config;
    const out = tf.tidy(() => {
      const map = trunk(this, x as tf.Tensor4D, ctx); // [B, h, w, D]
      const [B, h, w, D] = map.shape;
      const cells = tf.reshape(map, [B, h * w, D]); // [B, N, D]
      let pooled = tf.mean(cells, 1); // [B, D]
      if (c.dropRate > 0) {
        pooled = dropout(pooled, c.dropRate, requireRng(ctx, "dropout"));
      }
      const cls = applyHead(this.state, "head", pooled) as tf.Tensor2D; // [B, C]
      if (!c.auxHead) return { cls };
      const aux = applyHead(this.state, "aux_head", cells) as tf.Tensor3D; // [B, N, C]
      return { cls, aux };
    });
    return { cls: out.cls, aux: out.aux ?? null, box: null };
  }

  /** A one-line summary for notebooks. */
  override toString(): string {
    const c = this.config;
    return `${c.name}: ResNet, stem stride ${resnetStemStride(c)}, stages ${
      c.stageWidths.join("/")
    } x ${c.stageBlocks.join("/")} blocks, ${
      c.auxHead ? "aux head" : "no aux head"
    }, ${c.imgSize}px -> ${this.grid}x${this.grid} cells, ${c.numClasses} classes, ${
      (this.numParameters() / 1e6).toFixed(2)
    }M params`;
  }
}
