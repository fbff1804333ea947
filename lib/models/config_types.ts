/**
 * The shape of a model configuration and of a state entry, and the error
 * a bad configuration raises: what `config.ts` and `resnet_config.ts` both
 * build on. Exported through `config.ts`.
 *
 * @module
 */

import { TokenlabError } from "../errors.ts";

/** Which architecture a config builds. */
export type ModelFamily =
  /** LV-ViT or the DeiT-style ViT (every field but the stage ones applies). */
  | "vit"
  /** A ReLabel-style ResNet: conv stem, residual stages, `head` and a per-cell `aux_head`. */
  | "resnet";

/** How images become patch tokens. */
export type StemKind =
  /** Official "4_2": conv 7x7/2 + BN + ReLU, 2 x (conv 3x3 + BN + ReLU), conv patch/2 with stride patch/2. */
  | "conv"
  /** DeiT/ViT: one conv with kernel = stride = patch size (a linear map of each patch). */
  | "linear";

/**
 * Everything that defines an LV-ViT or a DeiT-style ViT. Every ablation
 * switch of the paper's path from DeiT to LV-ViT is a field: depth, MLP
 * ratio, the conv stem, the enhanced residual (`skipLam`), the aux head.
 */
export interface ModelConfig {
  /** Registry name, informational ("custom" when built by hand). */
  name: string;
  /** The architecture: "vit" (LV-ViT, ViT; the default) or "resnet". */
  family: ModelFamily;
  /** Input side in pixels; inputs are square images of this size. */
  imgSize: number;
  /**
   * Total stride of the patch embedding (16 for the published models); for
   * a ResNet, of the whole network (the final map is imgSize / patchSize).
   */
  patchSize: number;
  /** Input channels. */
  inChans: number;
  /** Classes of `head` and `aux_head`. */
  numClasses: number;
  /** Token width D (for a ResNet, derived: the last stage's width). */
  embedDim: number;
  /** Number of transformer blocks. */
  depth: number;
  /** Attention heads; embedDim must be divisible by it. */
  numHeads: number;
  /** MLP hidden width = int(embedDim * mlpRatio) (LV-ViT 3, DeiT 4). */
  mlpRatio: number;
  /** Bias in the qkv projection (LV-ViT: false, DeiT: true). */
  qkvBias: boolean;
  /** Patch embedding: LV-ViT's 4-conv stem or a plain linear patchify. */
  stem: StemKind;
  /** Channels of the conv stem (64; 128 for LV-ViT-L's "4_2_128"). */
  stemChannels: number;
  /** Enhanced residual: each branch is divided by it (1 = plain residual). */
  skipLam: number;
  /** Whether `aux_head` predicts a class for every patch token. */
  auxHead: boolean;
  /** Drop-path rate of the last block; it rises linearly from 0 at the first. */
  dropPathRate: number;
  /** Dropout after the position embedding, MLP and projections (0 in all published runs). */
  dropRate: number;
  /** Dropout on attention probabilities (0 in all published runs). */
  attnDropRate: number;
  /** LayerNorm epsilon (PyTorch default 1e-5 in LV-ViT; timm's DeiT uses 1e-6). */
  normEps: number;
  /** BatchNorm epsilon of the conv stem (PyTorch default). */
  bnEps: number;
  /** BatchNorm running-statistics momentum (PyTorch convention: new = (1 - m) old + m batch). */
  bnMomentum: number;
  /** ResNet only: channels of each stage (the stem has the first's). */
  stageWidths: readonly number[];
  /** ResNet only: basic residual blocks of each stage (as many entries as stageWidths). */
  stageBlocks: readonly number[];
}

/** Raised for a configuration that cannot describe a model. */
export class ConfigError extends TokenlabError {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
  }
}

/** How a parameter's values are initialised in a fresh model. */
export type InitKind =
  /** Truncated normal, std 0.02 (linear weights, position embedding, class token). */
  | "trunc_normal"
  /** PyTorch's default conv init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
  | "fan_in_uniform"
  /** Ones (norm scales, BatchNorm running variance). */
  | "ones"
  /** Zeros (biases, BatchNorm running mean and count). */
  | "zeros";

/** One entry of a model's state: a parameter or a buffer. */
export interface ParamSpec {
  /** Name as in the official PyTorch state dict (`blocks.3.attn.qkv.weight`). */
  name: string;
  /** Shape in PyTorch's layout (conv [out, in, kh, kw], linear [out, in]). */
  shape: number[];
  /** "param" is trained; "buffer" is state (BatchNorm running statistics). */
  kind: "param" | "buffer";
  /** How the layout differs from tfjs's (weights are transposed on load). */
  layout: "conv" | "linear" | "plain";
  /** Initialisation of a fresh model. */
  init: InitKind;
  /** Fan-in for `fan_in_uniform`. */
  fanIn?: number;
  /** Whether weight decay applies (timm: not to biases, norms, pos_embed, cls_token). */
  decay: boolean;
  /** Element type in PyTorch (`num_batches_tracked` is int64). */
  dtype: "float32" | "int64";
}
