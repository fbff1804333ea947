/**
 * The smoothed one-hot, written once (`smoothedOneHot` in
 * `lib/losses/cross_entropy.ts`): on 1 - eps + eps / C, off eps / C, against
 * values worked out by hand in float64, directly and as `poolLabels`'
 * ground truth `truth`, on every backend.
 */

import { smoothedOneHot, tf } from "tokenlab";
import { poolLabels } from "tokenlab/labels/pooling.ts";
import { assertClose, assertNoLeaks, backendTest } from "tokenlab/testing";

/** timm's one_hot(on = 1 - eps + eps / C, off = eps / C), float64 then float32. */
function oneHotRef(labels: number[], C: number, eps: number): Float32Array {
  const out = new Float32Array(labels.length * C);
  for (let b = 0; b < labels.length; b++) {
    for (let c = 0; c < C; c++) {
      out[b * C + c] = c === labels[b] ? 1 - eps + eps / C : eps / C;
    }
  }
  return out;
}

await backendTest(
  "smoothed one-hot: one builder for the losses and pooling",
  async () => {
    const C = 5, labels = [3, 0, 4];
    // By hand: eps 0.1, C 5: off 0.02, on 0.92.
    await assertNoLeaks(async () => {
      const y = smoothedOneHot(labels, C, { smoothing: 0.1 });
      await assertClose(
        y,
        [
          [0.02, 0.02, 0.02, 0.92, 0.02],
          [0.92, 0.02, 0.02, 0.02, 0.02],
          [0.02, 0.02, 0.02, 0.02, 0.92],
        ].flat(),
        { rtol: 0, atol: 1e-7, what: "smoothedOneHot" },
      );
      y.dispose();
    });
    const maps = {
      k: 1,
      height: 2,
      width: 2,
      scores: new Float32Array(3 * 4).fill(1),
      ids: new Int32Array(3 * 4).fill(2),
    };
    const boxes = [[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1]] as [
      number,
      number,
      number,
      number,
    ][];
    for (const eps of [0.1, 0.3, 0]) {
      await assertNoLeaks(async () => {
        const direct = smoothedOneHot(labels, C, { smoothing: eps });
        const out = await poolLabels(maps, boxes, {
          numClasses: C,
          tokenGrid: 2,
          smoothing: eps,
          labels,
        });
        const want = oneHotRef(labels, C, eps);
        await assertClose(direct, want, {
          rtol: 0,
          atol: 0,
          what: `eps ${eps}`,
        });
        await assertClose(out.truth!, want, {
          rtol: 0,
          atol: 0,
          what: `poolLabels truth, eps ${eps}`,
        });
        tf.dispose([direct, ...Object.values(out)]);
      });
    }
    // Scores output: the ground truth is not smoothed.
    await assertNoLeaks(async () => {
      const out = await poolLabels(maps, boxes, {
        numClasses: C,
        tokenGrid: 2,
        output: "scores",
        labels,
      });
      await assertClose(out.truth!, oneHotRef(labels, C, 0), {
        rtol: 0,
        atol: 0,
        what: "poolLabels truth of scores",
      });
      tf.dispose(Object.values(out));
    });
  },
);
