/**
 * One optimizer step of the training loop.
 *
 * @module
 */

import { tf } from "../tf.ts";
import type { Rng } from "../random.ts";
import type { Batch } from "../data/loader.ts";
import type { LvVit } from "../models/lvvit.ts";
import type { ResolvedTrainConfig } from "./config.ts";
import type { ModelEma } from "./ema.ts";
import { type AdamW, clipGradients } from "./optimizer.ts";
import type { TrainingRegime } from "./regimes/regime.ts";
import { NonFiniteLossError } from "./regimes/training_error.ts";

/** What one step of training needs. */
export interface StepContext {
  c: ResolvedTrainConfig;
  model: LvVit;
  optimizer: AdamW;
  ema: ModelEma | null;
  /** How the step prepares its batch and computes its loss. */
  regime: TrainingRegime;
  trainables: tf.Variable[];
  /** tfjs variable name -> official parameter name. */
  paramOf: Map<string, string>;
}

/** What one step computed: its loss (and parts) and gradient norm. */
export interface StepOutcome {
  loss: number;
  lossCls?: number;
  lossDense?: number;
  gradNorm?: number;
}

/**
 * One optimizer step: the regime prepares the inputs and targets, the loss
 * is differentiated, the gradients clipped, the loss (its parts, the
 * gradient norm) read once, then AdamW and the EMA applied.
 */
export async function trainStep(
  ctx: StepContext,
  batch: Batch,
  lr: number,
  rng: Rng,
): Promise<StepOutcome> {
  const { c, model } = ctx;
  const step = await ctx.regime.prepare(batch, rng);
  const owned: tf.Tensor[] = [];
  const own = <T extends tf.Tensor>(t: T): T => {
    owned.push(t);
    return t;
  };
  try {
    // The loss parts the regime reports, kept past the gradient scope.
    const kept: { cls?: tf.Scalar; dense?: tf.Scalar } = {};
    const { value, grads } = tf.variableGrads(() => {
      const out = model.forwardTrain(step.images, { rng, ...step.forward });
      const parts = step.loss(out);
      if (parts.cls !== undefined) kept.cls = own(tf.keep(parts.cls));
      if (parts.dense !== undefined) kept.dense = own(tf.keep(parts.dense));
      return parts.loss;
    }, ctx.trainables);
    owned.push(value, ...Object.values(grads));
    let byName = new Map<string, tf.Tensor>();
    for (const [vname, g] of Object.entries(grads)) {
      byName.set(ctx.paramOf.get(vname)!, g);
    }
    const read: tf.Tensor[] = [value];
    const at = (t: tf.Tensor | undefined) =>
      t === undefined ? -1 : read.push(t) - 1;
    const clsAt = at(kept.cls), denseAt = at(kept.dense);
    if (c.clipGrad !== null) {
      const clipped = clipGradients(byName, c.clipGrad, c.clipMode);
      owned.push(clipped.norm, ...clipped.grads.values());
      byName = clipped.grads;
      read.push(clipped.norm);
    }
    // One read per step: the loss (and its parts, and the gradient norm).
    const parts = await own(tf.stack(read)).data();
    const loss = parts[0];
    if (!Number.isFinite(loss)) throw new NonFiniteLossError(loss);
    const gradNorm = c.clipGrad !== null ? parts[read.length - 1] : undefined;
    if (gradNorm !== undefined && !Number.isFinite(gradNorm)) {
      throw new NonFiniteLossError(loss, gradNorm);
    }
    ctx.optimizer.lr = lr;
    ctx.optimizer.apply(byName);
    ctx.ema?.update(model);
    const out: StepOutcome = { loss };
    if (clsAt >= 0) out.lossCls = parts[clsAt];
    if (denseAt >= 0) out.lossDense = parts[denseAt];
    if (gradNorm !== undefined) out.gradNorm = gradNorm;
    return out;
  } finally {
    step.dispose();
    tf.dispose(owned);
  }
}
