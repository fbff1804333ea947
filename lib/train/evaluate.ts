/**
 * Evaluation: top-1 and top-5 accuracy and the cross-entropy of a model's
 * evaluation forward (head + 0.5 max over tokens of aux_head, as the
 * official LV-ViT) over a labelled dataset.
 *
 * @module
 */

import { tf } from "../tf.ts";
import type { Batch, DataLoader } from "../data/loader.ts";
import type { LvVit } from "../models/lvvit.ts";
import { TokenlabError } from "../errors.ts";

/** Accuracy of one set of weights on one dataset. */
export interface EvalResult {
  /** Top-1 accuracy in percent. */
  top1: number;
  /** Top-5 accuracy in percent (top-k with k = classes when there are fewer than 5). */
  top5: number;
  /** Mean cross-entropy of the evaluation logits against the labels. */
  loss: number;
  /** Images evaluated. */
  images: number;
}

/** Raised when a dataset cannot be evaluated on (no labels, wrong classes). */
export class EvaluationError extends TokenlabError {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
  }
}

/** Running sums of an evaluation: feed batches, read the result. */
export class Accuracy {
  #top1 = 0;
  #top5 = 0;
  #loss = 0;
  #n = 0;

  /**
   * Adds a batch of logits [B, C] and labels: counts images whose label
   * ranks first (top-1) and among the first five (a label ties with a
   * higher-scored class only when equal, and ties count in its favour, as
   * `torch.topk` usually breaks them by index).
   */
  async add(logits: tf.Tensor2D, labels: Int32Array): Promise<void> {
    const [B, C] = logits.shape;
    if (labels.length !== B) {
      throw new EvaluationError(
        `expected ${B} labels for ${B} logits, found ${labels.length}`,
      );
    }
    for (let i = 0; i < B; i++) {
      if (!(labels[i] >= 0 && labels[i] < C)) {
        throw new EvaluationError(
          `label ${
            labels[i]
          } of image ${i} is not a class of this ${C}-class model; evaluation needs a labelled dataset with the model's classes`,
        );
      }
    }
    const sums = tf.tidy(() => {
      const y = tf.tensor1d(labels, "int32");
      const own = tf.sum(
        tf.mul(logits, tf.oneHot(y, C).toFloat()),
        1,
        true,
      ); // [B, 1] the label's logit
      const above = tf.sum(tf.greater(logits, own).toFloat(), 1); // [B] classes scored higher
      const k5 = Math.min(5, C);
      const top1 = tf.sum(tf.equal(above, 0).toFloat());
      const top5 = tf.sum(tf.less(above, k5).toFloat());
      const ce = tf.sum(
        tf.sub(tf.logSumExp(logits, 1), tf.reshape(own, [B])),
      );
      return tf.stack([top1, top5, ce]);
    });
    const [t1, t5, ce] = await sums.data();
    sums.dispose();
    this.#top1 += t1;
    this.#top5 += t5;
    this.#loss += ce;
    this.#n += B;
  }

  /** The result so far. */
  result(): EvalResult {
    const n = Math.max(1, this.#n);
    return {
      top1: 100 * this.#top1 / n,
      top5: 100 * this.#top5 / n,
      loss: this.#loss / n,
      images: this.#n,
    };
  }
}

function batchImages(batch: Batch): tf.Tensor4D {
  return tf.tensor4d(batch.images, [batch.size, batch.height, batch.width, 3]);
}

/**
 * Evaluates one or more models over a loader's epoch 0 (one pass, in
 * order): each batch is read once and given to every model.
 *
 * @throws {EvaluationError} for unlabelled images or labels outside the model's classes
 *
 * @example
 * ```ts
 * import { createModel, DataLoader, evaluate, initBackend } from "tokenlab";
 * await initBackend();
 * const model = createModel("vit_xs32", { numClasses: 10 });
 * const loader = await DataLoader.open(
 *   { data: { kind: "synthetic", options: { size: 32, count: 8, split: "val" } }, transform: { kind: "eval", size: 32, cropPct: 1 } },
 *   { batchSize: 4, shuffle: false },
 * );
 * const [r] = await evaluate([model], loader);
 * console.log(r.top1, r.top5, r.images); // an untrained model: near chance
 * loader.close();
 * model.dispose();
 * ```
 */
export async function evaluate(
  models: readonly LvVit[],
  loader: DataLoader,
  onBatch?: (done: number, total: number) => void,
): Promise<EvalResult[]> {
  const acc = models.map(() => new Accuracy());
  let done = 0;
  for await (const batch of loader.epoch(0)) {
    if (batch.size === 0) continue;
    const x = batchImages(batch);
    try {
      for (let m = 0; m < models.length; m++) {
        const logits = models[m].predict(x);
        try {
          await acc[m].add(logits, batch.labels);
        } finally {
          logits.dispose();
        }
      }
    } finally {
      x.dispose();
    }
    done += batch.size;
    onBatch?.(done, loader.size);
  }
  return acc.map((a) => a.result());
}
