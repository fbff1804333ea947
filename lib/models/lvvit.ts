/**
 * LV-ViT and the DeiT-style ViT baseline, as one trainable TensorFlow.js
 * model whose state carries the official PyTorch names.
 *
 * Reading order: small blocks first (linear, norms, the conv stem, attention,
 * MLP, the transformer block), the model last. Activations are NHWC images
 * and [B, tokens, D] sequences; tokens are in row-major grid order, as
 * PyTorch's `flatten(2).transpose(1, 2)` of an NCHW map.
 *
 * @module
 */

import { tf } from "../tf.ts";
import {
  attentionCore,
  gelu,
  layerNormAffine,
  scaledResidual,
} from "../ops.ts";
import {
  batchNorm,
  type BatchNormParams,
  batchNormParams,
  checkImages,
  dropout,
  dropPathScale,
  linear,
  type LinearParams,
  linearParams,
  type NormParams,
  normParams,
  param,
} from "./_layers.ts";
import {
  applyHead,
  cloneState,
  initialState,
  isDisposed,
  requireRng,
  type RunContext as StateRunContext,
} from "./_model_state.ts";
import {
  linearDropPathRates,
  paramsLookup,
  StateModel,
} from "./_base_model.ts";
import type {
  ForwardTrainOptions,
  TokenBox,
  TrainOutput,
} from "./forward_types.ts";
import { type ModelConfig, resolveConfig } from "./config.ts";

// Defined in forward_types.ts, which model.ts imports without a cycle;
// still exported here.
export type {
  DenseLogitsOptions,
  ForwardTrainOptions,
  TokenBox,
  TokenMixer,
  TrainOutput,
} from "./forward_types.ts";
// Defined beside the interface every model implements; still exported here.
export { ModelInputError } from "./model.ts";

interface RunContext extends StateRunContext {
  onAttention?: (block: number, attention: tf.Tensor4D) => void;
}

/** A convolution with a bias (the patch projection). */
interface ConvParams {
  /** Filter [kh, kw, in, out] (tfjs layout). */
  weight: tf.Variable;
  /** Bias [out]. */
  bias: tf.Variable;
}

/** The patch embedding's parameters: a patchify conv, or the conv stem. */
type StemParams =
  | { kind: "linear"; proj: ConvParams }
  | {
    kind: "conv";
    conv1: tf.Variable;
    bn1: BatchNormParams;
    conv2: tf.Variable;
    bn2: BatchNormParams;
    conv3: tf.Variable;
    bn3: BatchNormParams;
    proj: ConvParams;
  };

/** One transformer block's parameters (`blocks.i.*`). */
interface BlockParams {
  norm1: NormParams;
  attn: { qkv: LinearParams; proj: LinearParams };
  norm2: NormParams;
  mlp: { fc1: LinearParams; fc2: LinearParams };
}

/** Every parameter the forward reads, looked up once by official name. */
interface LvVitParams {
  stem: StemParams;
  clsToken: tf.Variable;
  posEmbed: tf.Variable;
  blocks: BlockParams[];
  norm: NormParams;
}

/** The typed parameters of `config`'s model in `state` (see `config.ts` for the names). */
function lvvitParams(
  config: ModelConfig,
  state: ReadonlyMap<string, tf.Variable>,
): LvVitParams {
  const proj: ConvParams = {
    weight: param(state, "patch_embed.proj.weight"),
    bias: param(state, "patch_embed.proj.bias"),
  };
  const stem: StemParams = config.stem === "linear"
    ? { kind: "linear", proj }
    : {
      kind: "conv",
      conv1: param(state, "patch_embed.conv1.weight"),
      bn1: batchNormParams(state, "patch_embed.bn1"),
      conv2: param(state, "patch_embed.conv2.weight"),
      bn2: batchNormParams(state, "patch_embed.bn2"),
      conv3: param(state, "patch_embed.conv3.weight"),
      bn3: batchNormParams(state, "patch_embed.bn3"),
      proj,
    };
  const blocks = Array.from({ length: config.depth }, (_, i): BlockParams => {
    const p = `blocks.${i}`;
    return {
      norm1: normParams(state, `${p}.norm1`),
      attn: {
        qkv: linearParams(state, `${p}.attn.qkv`),
        proj: linearParams(state, `${p}.attn.proj`),
      },
      norm2: normParams(state, `${p}.norm2`),
      mlp: {
        fc1: linearParams(state, `${p}.mlp.fc1`),
        fc2: linearParams(state, `${p}.mlp.fc2`),
      },
    };
  });
  return {
    stem,
    clsToken: param(state, "cls_token"),
    posEmbed: param(state, "pos_embed"),
    blocks,
    norm: normParams(state, "norm"),
  };
}

/** The patch embedding: NHWC image -> [B, h, w, D] token grid. */
function patchEmbed(
  x: tf.Tensor4D,
  stem: StemParams,
  config: ModelConfig,
  ctx: RunContext,
): tf.Tensor4D {
  const w = (v: tf.Variable) => v as tf.Tensor4D;
  if (stem.kind === "linear") {
    const p = config.patchSize;
    const y = tf.conv2d(x, w(stem.proj.weight), p, "valid"); // [B, h, w, D]
    return tf.add(y, stem.proj.bias) as tf.Tensor4D;
  }
  let y = tf.conv2d(x, w(stem.conv1), 2, 3); // [B, H/2, W/2, S]
  y = tf.relu(batchNorm(y, stem.bn1, config, ctx));
  y = tf.conv2d(y, w(stem.conv2), 1, 1);
  y = tf.relu(batchNorm(y, stem.bn2, config, ctx));
  y = tf.conv2d(y, w(stem.conv3), 1, 1);
  y = tf.relu(batchNorm(y, stem.bn3, config, ctx));
  const k = config.patchSize / 2;
  y = tf.conv2d(y, w(stem.proj.weight), k, "valid"); // [B, h, w, D]
  return tf.add(y, stem.proj.bias) as tf.Tensor4D;
}

/** Multi-head self-attention, qkv in one matmul, scale head_dim^-0.5. */
function attention(
  x: tf.Tensor3D,
  params: BlockParams["attn"],
  index: number,
  config: ModelConfig,
  ctx: RunContext,
): tf.Tensor3D {
  const [B, N, D] = x.shape;
  const H = config.numHeads, hd = D / H;
  const qkv = linear(
    x,
    params.qkv.weight,
    params.qkv.bias,
  ) as tf.Tensor3D; // [B, N, 3D], laid out as (3, H, hd)
  let merged: tf.Tensor;
  if (!(ctx.training && config.attnDropRate > 0)) {
    merged = attentionCore(
      qkv,
      H,
      ctx.onAttention && ((p) => ctx.onAttention!(index, p)),
    );
  } else {
    // Attention dropout (0 in every published run) sits between the
    // softmax and the product with v, inside what attentionCore fuses.
    const heads = tf.transpose(tf.reshape(qkv, [B, N, 3 * H, hd]), [
      0,
      2,
      1,
      3,
    ]); // [B, 3H, N, hd]
    const [q, k, v] = tf.split(heads, 3, 1) as tf.Tensor4D[]; // [B, H, N, hd] each
    const scores = tf.matMul(tf.mul(q, hd ** -0.5), k, false, true); // [B, H, N, N]
    const attn = tf.softmax(scores) as tf.Tensor4D;
    ctx.onAttention?.(index, attn);
    const dropped = dropout(
      attn,
      config.attnDropRate,
      requireRng(ctx, "attention dropout"),
    ) as tf.Tensor4D;
    const mixed = tf.matMul(dropped, v); // [B, H, N, hd]
    merged = tf.reshape(tf.transpose(mixed, [0, 2, 1, 3]), [B, N, D]); // [B, N, D]
  }
  let out = linear(merged, params.proj.weight, params.proj.bias);
  if (ctx.training && config.dropRate > 0) {
    out = dropout(out, config.dropRate, requireRng(ctx, "dropout"));
  }
  return out as tf.Tensor3D;
}

/** Linear, GELU (exact), Linear. */
function mlp(
  x: tf.Tensor3D,
  params: BlockParams["mlp"],
  config: ModelConfig,
  ctx: RunContext,
): tf.Tensor3D {
  let h = gelu(linear(x, params.fc1.weight, params.fc1.bias)); // [B, N, hidden]
  if (ctx.training && config.dropRate > 0) {
    h = dropout(h, config.dropRate, requireRng(ctx, "dropout"));
  }
  let out = linear(h, params.fc2.weight, params.fc2.bias); // [B, N, D]
  if (ctx.training && config.dropRate > 0) {
    out = dropout(out, config.dropRate, requireRng(ctx, "dropout"));
  }
  return out as tf.Tensor3D;
}

/** Drop-path rate of each block: linear from 0 to the configured rate. */
export function dropPathRates(config: ModelConfig): number[] {
  return linearDropPathRates(config.depth, config.dropPathRate);
}

/**
 * Pre-norm transformer block with the enhanced residual:
 * x + DropPath(Attn(LN(x))) / skipLam, then x + DropPath(MLP(LN(x))) / skipLam.
 */
function block(
  x: tf.Tensor3D,
  params: BlockParams,
  index: number,
  dpr: number,
  config: ModelConfig,
  ctx: RunContext,
): tf.Tensor3D {
  const eps = config.normEps;
  // x + DropPath(y) / skipLam: with drop path, one per-sample factor
  // (mask / skipLam) applied in the residual add (ops.ts scaledResidual).
  const residual = (x: tf.Tensor3D, y: tf.Tensor3D): tf.Tensor3D => {
    if (ctx.training && dpr > 0) {
      const scale = dropPathScale(
        x.shape[0],
        dpr,
        requireRng(ctx, "drop path"),
      );
      if (config.skipLam !== 1) {
        for (let i = 0; i < scale.length; i++) scale[i] /= config.skipLam;
      }
      return scaledResidual(x, y, scale);
    }
    return tf.add(x, config.skipLam === 1 ? y : tf.div(y, config.skipLam));
  };
  const { norm1, norm2 } = params;
  const n1 = layerNormAffine(x, norm1.weight, norm1.bias, eps) as tf.Tensor3D;
  x = residual(x, attention(n1, params.attn, index, config, ctx));
  const n2 = layerNormAffine(x, norm2.weight, norm2.bias, eps) as tf.Tensor3D;
  return residual(x, mlp(n2, params.mlp, config, ctx));
}

// Defined beside the model state; still exported here.
export { tfToTorchLayout, torchToTfLayout } from "./_model_state.ts";

/** Options of {@linkcode LvVit.create}. */
export interface CreateOptions {
  /** Seed of the weight initialisation (default 0). */
  seed?: number;
}

function checkInput(model: LvVit, x: tf.Tensor): void {
  checkImages(x, model.config, {
    disposed: isDisposed(model),
    strideName: "patch size",
    rebuildNote: " (loading a checkpoint resizes the position embedding)",
  });
}

/** Class token, position embedding, the blocks and the final norm: [B, N+1, D]. */
function encode(
  model: LvVit,
  grid: tf.Tensor4D,
  ctx: RunContext,
): tf.Tensor3D {
  const params = paramsOf(model);
  const [B, h, w, D] = grid.shape;
  const patches = tf.reshape(grid, [B, h * w, D]); // [B, N, D]
  const cls = tf.tile(params.clsToken, [B, 1, 1]); // [B, 1, D]
  let x = tf.add(
    tf.concat([cls, patches], 1),
    params.posEmbed,
  ) as tf.Tensor3D; // [B, N+1, D]
  if (ctx.training && model.config.dropRate > 0) {
    x = dropout(
      x,
      model.config.dropRate,
      requireRng(ctx, "dropout"),
    ) as tf.Tensor3D;
  }
  const dpr = dropPathRates(model.config);
  for (let i = 0; i < model.config.depth; i++) {
    x = block(x, params.blocks[i], i, dpr[i], model.config, ctx);
  }
  return layerNormAffine(
    x,
    params.norm.weight,
    params.norm.bias,
    model.config.normEps,
  ) as tf.Tensor3D; // [B, N+1, D]
}

// Each model's typed parameters, beside the class (it stays structural).
const paramsOf = paramsLookup(lvvitParams);

/**
 * LV-ViT (or, by its config, a DeiT-style ViT): patch embedding, class token,
 * position embedding, pre-norm blocks with the enhanced residual, final norm,
 * `head` on the class token and `aux_head` on every patch token.
 *
 * Inputs are NHWC float32 images [B, imgSize, imgSize, inChans], normalised
 * as the checkpoint expects (ImageNet mean and std for the official ones).
 *
 * @example
 * ```ts
 * import { initBackend, LvVit, Rng, tf } from "tokenlab";
 * await initBackend();
 * const model = LvVit.create({ imgSize: 32, patchSize: 4, embedDim: 32,
 *   depth: 2, numHeads: 2, stemChannels: 8, numClasses: 10 });
 * const x = tf.randomNormal([2, 32, 32, 3], 0, 1, "float32", 1);
 * const { cls, aux } = model.forwardTrain(x, { rng: new Rng(0) });
 * console.log(cls.shape, aux?.shape); // [2, 10] [2, 64, 10]
 * const logits = model.predict(x); // head(cls) + 0.5 max_tokens aux_head
 * tf.dispose([x, cls, aux!, logits]);
 * model.dispose();
 * ```
 */
export class LvVit extends StateModel {
  /** Builds a freshly initialised model (initialised as the official code). */
  static create(
    config: Partial<ModelConfig> = {},
    options: CreateOptions = {},
  ): LvVit {
    const c = resolveConfig(config);
    return new LvVit(c, initialState(c, options.seed ?? 0), paramsOf);
  }

  /**
   * An independent copy: the same configuration and a new variable for every
   * state entry (parameters and buffers, trainable flags kept). Assigning to
   * or disposing either model leaves the other as it was.
   *
   * @example
   * ```ts
   * import { initBackend, LvVit } from "tokenlab";
   * await initBackend();
   * const model = LvVit.create({ imgSize: 32, patchSize: 4, embedDim: 32,
   *   depth: 1, numHeads: 2, stemChannels: 8, numClasses: 10 });
   * const copy = model.clone();
   * model.dispose();
   * console.log(copy.isDisposed); // false
   * copy.dispose();
   * ```
   */
  clone(): LvVit {
    return new LvVit(this.config, cloneState(this, this.state), paramsOf);
  }

  /**
   * All tokens after the final norm, [B, N+1, D] (class token first), in
   * evaluation mode (no mixing, no drop path, running BatchNorm statistics).
   */
  features(x: tf.Tensor): tf.Tensor3D {
    checkInput(this, x);
    const ctx: RunContext = { training: false, rng: null, updateStats: false };
    return tf.tidy(() =>
      encode(
        this,
        patchEmbed(x as tf.Tensor4D, paramsOf(this).stem, this.config, ctx),
        ctx,
      )
    );
  }

  /**
   * The training forward: class logits, un-mixed token logits and the
   * MixToken box, with drop path, dropout and batch statistics on. Call it
   * inside `tf.variableGrads` (or `optimizer.minimize`).
   */
  forwardTrain(x: tf.Tensor, options: ForwardTrainOptions = {}): TrainOutput {
    checkInput(this, x);
    const ctx: RunContext = {
      training: true,
      rng: options.rng ?? null,
      updateStats: options.updateStats ?? true,
      onAttention: options.onAttention,
    };
    let box: TokenBox | null = null;
    const out = tf.tidy(() => {
      let grid = patchEmbed(
        x as tf.Tensor4D,
        paramsOf(this).stem,
        this.config,
        ctx,
      ); // [B, h, w, D]
      if (options.mixer !== undefined) {
        const mixed = options.mixer.mix(
          grid,
          requireRng(ctx, "the token mixer"),
        );
        grid = mixed.tokens;
        box = mixed.box;
      }
      const [B, h, w] = grid.shape;
      const tokens = encode(this, grid, ctx); // [B, N+1, D]
      const D = tokens.shape[2];
      const clsTok = tf.reshape(tf.slice(tokens, [0, 0, 0], [B, 1, D]), [B, D]);
      const cls = applyHead(this.state, "head", clsTok) as tf.Tensor2D; // [B, C]
      if (!this.config.auxHead) return { cls };
      const patches = tf.slice(tokens, [0, 1, 0], [B, h * w, D]); // [B, N, D]
      let aux = applyHead(this.state, "aux_head", patches) as tf.Tensor3D; // [B, N, C]
      if (box !== null) {
        const C = aux.shape[2];
        const back = options.mixer!.unmix(tf.reshape(aux, [B, h, w, C]), box);
        aux = tf.reshape(back, [B, h * w, C]);
      }
      return { cls, aux };
    });
    return { cls: out.cls, aux: out.aux ?? null, box };
  }

  /** A one-line summary for notebooks. */
  override toString(): string {
    const c = this.config;
    return `${c.name}: ${
      c.stem === "conv" ? `conv stem (${c.stemChannels} ch)` : "linear patchify"
    }, D ${c.embedDim}, depth ${c.depth}, ${c.numHeads} heads, MLP x${c.mlpRatio}, skipLam ${c.skipLam}, ${
      c.auxHead ? "aux head" : "no aux head"
    }, ${c.imgSize}px -> ${this.grid}x${this.grid} tokens, ${c.numClasses} classes, ${
      (this.numParameters() / 1e6).toFixed(2)
    }M params`;
  }
}
