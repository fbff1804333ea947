/**
 * The label side of mixing with a partner, written once in
 * `lib/mixing/partner_blend.ts`: the box lambda against hand values, and
 * the blend against a float64 loop, directly and through the three places
 * that use it (MixToken's `mixClassTargets`, the token labeling loss's
 * `box`, CutMix's class targets), on every backend.
 */

import { assertEquals } from "./_assert.ts";
import {
  boxLambda,
  mixClassTargets,
  mixupCutmix,
  Rng,
  softTargetCrossEntropy,
  tf,
  type TokenBox,
  tokenLabelingLossParts,
} from "tokenlab";
import {
  blendWithPartner,
  boxAreaLambda,
} from "tokenlab/mixing/partner_blend.ts";
import { assertClose, assertNoLeaks, backendTest } from "tokenlab/testing";

/** lam y_i + (1 - lam) y_(B-1-i), in float64, row-major [B, C]. */
function blendRef(
  y: readonly number[],
  B: number,
  C: number,
  lam: number,
): number[] {
  const out: number[] = [];
  for (let i = 0; i < B; i++) {
    for (let c = 0; c < C; c++) {
      out.push(lam * y[i * C + c] + (1 - lam) * y[(B - 1 - i) * C + c]);
    }
  }
  return out;
}

await backendTest(
  "partner blend: box lambda and blend, one place for all users",
  async () => {
    // 1 - area / cells by hand: a 7 x 7 box on 14 x 14, a 1 x 3 box on 4 x 6.
    assertEquals(
      boxAreaLambda({ top: 0, left: 0, bottom: 7, right: 7 }, 196),
      0.75,
    );
    assertEquals(
      boxAreaLambda({ top: 2, left: 1, bottom: 3, right: 4 }, 24),
      0.875,
    );
    assertEquals(
      boxAreaLambda({ top: 3, left: 3, bottom: 3, right: 5 }, 24),
      1,
    );

    const B = 3, C = 4;
    const y = [0.7, 0.1, 0.1, 0.1, 0, 0, 1, 0, 0.25, 0.25, 0.5, 0];
    const grid: [number, number] = [4, 6];
    const box: TokenBox = { top: 1, left: 2, bottom: 3, right: 5 }; // 6 of 24 cells
    const lam = 0.75;
    const want = blendRef(y, B, C, lam);
    await assertNoLeaks(async () => {
      const t = tf.tensor2d(y, [B, C]);
      const direct = blendWithPartner(t, lam);
      await assertClose(direct, want, { what: "blendWithPartner" });
      const copy = blendWithPartner(t, 1);
      await assertClose(copy, y, { what: "blendWithPartner at lambda 1" });
      // MixToken's class targets use the same lambda and blend.
      assertEquals(boxLambda(box, grid), lam);
      const mixed = mixClassTargets(t, box, { grid });
      await assertClose(mixed, want, { what: "mixClassTargets" });
      // The token labeling loss with a box: CE against the blended target.
      const logits = tf.tensor2d(
        [0.3, -1, 2, 0.5, 1.5, 0.2, -0.3, 0, -2, 1, 0.1, 0.4],
        [B, C],
      );
      const aux = tf.zeros([B, grid[0] * grid[1], C]);
      const parts = tokenLabelingLossParts({ cls: logits, aux }, { cls: t }, {
        box,
        clsWeight: 1,
        denseWeight: 0,
      });
      const blended = tf.tensor2d(want, [B, C]);
      const reference = softTargetCrossEntropy(logits, blended);
      await assertClose(parts.cls, reference, { what: "loss with a box" });
      tf.dispose([t, direct, copy, mixed, logits, aux, blended, reference]);
      tf.dispose(Object.values(parts));
    });
    // CutMix/MixUp blend their class targets with their own lambda.
    const images = tf.randomUniform([B, 8, 8, 3], 0, 1, "float32", 2);
    const targets = tf.tensor2d(y, [B, C]);
    const m = mixupCutmix(
      { images: images as tf.Tensor4D, classTargets: targets },
      new Rng(4),
      { mixupAlpha: 0.8, cutmixAlpha: 0 },
    );
    await assertClose(m.classTargets, blendRef(y, B, C, m.lambda), {
      what: "mixup class targets",
    });
    m.dispose();
    tf.dispose([images, targets]);
  },
);
