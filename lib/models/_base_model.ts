/**
 * What LV-ViT and the ResNet share as classes (internal): the state a model
 * is made of, every {@linkcode TokenModel} member that reads only that state
 * and `features`, and the lookup of each model's typed parameters. Each
 * architecture adds its forward passes, its copy and its summary.
 *
 * Only public members, as {@linkcode TokenModel} has: a model class stays a
 * structural type, so any TokenModel is assignable where an LvVit is asked
 * for (which is also why the typed parameters and the disposed flag are
 * kept in maps beside the models rather than in private fields).
 *
 * @module
 */

import { tf } from "../tf.ts";
import {
  gridSize,
  type ModelConfig,
  parameterSpec,
  type ParamSpec,
} from "./config.ts";
import type {
  DenseLogitsOptions,
  ForwardTrainOptions,
  TrainOutput,
} from "./forward_types.ts";
import type { TokenModel } from "./model.ts";
import {
  countValues,
  decayedOf,
  denseLogitsOf,
  disposeState,
  isDisposed,
  predictFromFeatures,
  trainableOf,
} from "./_model_state.ts";

/**
 * A lookup of each model's typed parameters, built by `build` from the
 * model's config and state on first use and then remembered.
 */
export function paramsLookup<P>(
  build: (config: ModelConfig, state: ReadonlyMap<string, tf.Variable>) => P,
): (model: TokenModel) => P {
  const params = new WeakMap<TokenModel, P>();
  return (model) => {
    let p = params.get(model);
    if (p === undefined) {
      p = build(model.config, model.state);
      params.set(model, p);
    }
    return p;
  };
}

/**
 * Drop-path (stochastic depth) rate of each of `n` residual blocks: linear
 * from 0 at the first to `rate` at the last (0 for a single block).
 */
export function linearDropPathRates(n: number, rate: number): number[] {
  return Array.from(
    { length: n },
    (_, i) => n === 1 ? 0 : (rate * i) / (n - 1),
  );
}

/** A model made of a state dict: the members LV-ViT and the ResNet share. */
export abstract class StateModel implements TokenModel {
  /** The resolved configuration (`config.family` says which architecture). */
  readonly config: ModelConfig;
  /** Official state-dict entries (names, PyTorch shapes), in order. */
  readonly spec: readonly ParamSpec[];
  /** The state by official name: trainable parameters and buffers (tfjs layout). */
  readonly state: ReadonlyMap<string, tf.Variable>;

  /**
   * Takes `state` (tfjs layout, in `config`'s spec order) as the model's
   * own and builds its typed parameters with `params` (the architecture's
   * {@linkcode paramsLookup}) at once, so that a state short of one fails
   * here. Only the architectures' `create` and `clone` construct.
   */
  protected constructor(
    config: ModelConfig,
    state: ReadonlyMap<string, tf.Variable>,
    params: (model: TokenModel) => unknown,
  ) {
    this.config = config;
    this.spec = parameterSpec(config);
    this.state = state;
    params(this);
  }

  /** An independent copy (new variables, same values and config). */
  abstract clone(): TokenModel;

  /**
   * Evaluation-mode features [B, 1 + N, D]: what `head` reads first, then
   * the N grid tokens row-major. Checks the input before anything else.
   */
  abstract features(x: tf.Tensor): tf.Tensor3D;

  /** The training forward: class logits, token logits or null, the MixToken box. */
  abstract forwardTrain(
    x: tf.Tensor,
    options?: ForwardTrainOptions,
  ): TrainOutput;

  /** Side of the token grid (imgSize / patchSize). */
  get grid(): number {
    return gridSize(this.config);
  }

  /** Whether `dispose` was called. */
  get isDisposed(): boolean {
    return isDisposed(this);
  }

  /** Trainable parameters (buffers excluded), in state-dict order. */
  trainableVariables(): tf.Variable[] {
    return trainableOf(this.spec, this.state);
  }

  /**
   * Parameters weight decay applies to (`spec[i].decay`: the conv and
   * linear weights; not biases, norms, `pos_embed` or `cls_token`).
   */
  decayedVariables(): tf.Variable[] {
    return decayedOf(this.spec, this.state);
  }

  /** Number of trainable values, counted from the model's own variables. */
  numParameters(): number {
    return countValues(this.trainableVariables());
  }

  /**
   * Evaluation logits [B, C]: head(first feature) + 0.5 * max over the grid
   * tokens of aux_head (per class), as the official LV-ViT; head alone
   * without an aux head.
   */
  predict(x: tf.Tensor): tf.Tensor2D {
    // `features` checks the input first, before any tensor is made.
    return tf.tidy(() =>
      predictFromFeatures(this.features(x), this.state, this.config.auxHead)
    );
  }

  /**
   * Dense class scores [B, h, w, C]: a classifier head (`head`, or
   * `aux_head` when asked) applied at every grid token, in evaluation mode.
   * This is the machine annotator's output: the official label generation
   * applies the classifier's final linear layer at every location of the
   * last feature map.
   */
  denseLogits(x: tf.Tensor, options: DenseLogitsOptions = {}): tf.Tensor4D {
    return denseLogitsOf(this, x, options);
  }

  /** Releases every variable of the model. */
  dispose(): void {
    disposeState(this, this.state);
  }
}
