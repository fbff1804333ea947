/**
 * An exponential moving average of a model's weights, as timm's
 * `ModelEmaV2`: a full copy of the model whose every state entry
 * (parameters and buffers alike) moves towards the training model's after
 * each optimizer step.
 *
 * @module
 */

import { tf } from "../tf.ts";
import type { LvVit } from "../models/lvvit.ts";
import { TokenlabError } from "../errors.ts";

/** Raised for a bad decay or a model that does not match the average's. */
export class EmaError extends TokenlabError {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
  }
}

/**
 * The averaged model. After each step, for every state entry:
 * `ema = decay * ema + (1 - decay) * model`. BatchNorm running statistics
 * are averaged too, as timm does (and `num_batches_tracked` with them, which
 * PyTorch's int64 buffer would truncate; the stem's BatchNorm does not read
 * it). Evaluate `ema.model` as any other model.
 *
 * @example
 * ```ts
 * import { initBackend, LvVit, ModelEma, tf } from "tokenlab";
 * await initBackend();
 * const model = LvVit.create({ imgSize: 32, patchSize: 4, embedDim: 32,
 *   depth: 1, numHeads: 2, stemChannels: 8, numClasses: 10 });
 * const ema = new ModelEma(model, 0.9998);
 * // ... an optimizer step on `model`, then:
 * ema.update(model);
 * const logits = ema.model.predict(tf.zeros([1, 32, 32, 3]));
 * logits.dispose();
 * ema.dispose();
 * model.dispose();
 * ```
 */
export class ModelEma {
  /** Weight of the old average in each update (timm's default 0.9998). */
  readonly decay: number;
  /** The averaged model (owned: {@linkcode ModelEma.dispose} releases it). */
  readonly model: LvVit;

  /** Starts the average as an exact copy of `model`. */
  constructor(model: LvVit, decay: number) {
    if (!(Number.isFinite(decay) && decay >= 0 && decay < 1)) {
      throw new EmaError(
        `EMA decay must be a number in [0, 1), found ${decay}; timm's default is 0.9998`,
      );
    }
    if (model.isDisposed) {
      throw new EmaError(
        "the model to average was disposed; create the EMA before disposing it",
      );
    }
    this.decay = decay;
    this.model = model.clone();
  }

  /** Moves every state entry of the average towards `source`'s. */
  update(source: LvVit): void {
    if (this.model.isDisposed) {
      throw new EmaError("this EMA was disposed; create a new one");
    }
    if (source.isDisposed) {
      throw new EmaError(
        "the source model was disposed; update the EMA before disposing it",
      );
    }
    const ema = this.model.state;
    for (const [name, e] of ema) {
      const s = source.state.get(name);
      if (s === undefined) {
        throw new EmaError(
          `the source model has no state entry "${name}"; update the EMA from the model it was created from`,
        );
      }
      if (s.shape.join() !== e.shape.join()) {
        throw new EmaError(
          `state entry "${name}" has shape [${s.shape}] in the source, [${e.shape}] in the EMA; update the EMA from the model it was created from`,
        );
      }
    }
    if (source.state.size !== ema.size) {
      throw new EmaError(
        `the source model has ${source.state.size} state entries, the EMA ${ema.size}; update the EMA from the model it was created from`,
      );
    }
    const d = this.decay;
    const counters = new Set(
      this.model.spec.filter((p) => p.dtype === "int64").map((p) => p.name),
    );
    tf.tidy(() => {
      for (const [name, e] of ema) {
        const s = source.state.get(name)!;
        if (counters.has(name)) {
          // An integer counter (BatchNorm's num_batches_tracked) is copied,
          // not averaged: its average would be fractional, and the saved
          // int64 entry would round it, so a resumed run would diverge from
          // the uninterrupted one. No computation reads it.
          e.assign(tf.clone(s));
          continue;
        }
        // timm: decay * e + (1 - decay) * m, both products in float32.
        e.assign(tf.add(tf.mul(e, d), tf.mul(s, 1 - d)));
      }
    });
  }

  /** Releases the averaged model. */
  dispose(): void {
    this.model.dispose();
  }
}
