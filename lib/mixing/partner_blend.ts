/**
 * The label side of mixing with a partner, written once: the lambda of a
 * box (1 - box area / grid area) and the blend
 * `lambda y + (1 - lambda) y.reverse(0)`, where the partner of sample i is
 * sample B-1-i. MixToken's class targets (`mixClassTargets`), the
 * token labeling loss's `box`, CutMix/MixUp and TL-Align's patch CutMix all
 * use these two.
 *
 * @module
 */

import { tf } from "../tf.ts";
import type { TokenBox } from "../models/lvvit.ts";

/**
 * The lambda of a box on a grid of `cells` cells: 1 - box area / cells
 * (the share of each sample that stays its own). The box is not checked:
 * callers check it against their grid and say so in their own errors.
 *
 * @example
 * ```ts
 * import { boxAreaLambda } from "tokenlab/mixing/partner_blend.ts";
 * console.log(boxAreaLambda({ top: 0, left: 0, bottom: 7, right: 7 }, 14 * 14)); // 0.75
 * ```
 */
export function boxAreaLambda(box: TokenBox, cells: number): number {
  const area = (box.bottom - box.top) * (box.right - box.left);
  return 1 - area / cells;
}

/**
 * `lam x + (1 - lam) x.reverse(0)`: each sample blended with its partner
 * B-1-i (a copy when lam is 1). The caller disposes the result.
 *
 * @example
 * ```ts
 * import { initBackend, tf } from "tokenlab";
 * import { blendWithPartner } from "tokenlab/mixing/partner_blend.ts";
 * await initBackend();
 * const y = tf.tensor2d([[1, 0], [0, 1]]);
 * const m = blendWithPartner(y, 0.75);
 * console.log(await m.array()); // [[0.75, 0.25], [0.25, 0.75]]
 * tf.dispose([y, m]);
 * ```
 */
export function blendWithPartner<T extends tf.Tensor>(x: T, lam: number): T {
  if (lam >= 1) return tf.clone(x);
  return tf.tidy(() =>
    tf.add(tf.mul(x, lam), tf.mul(tf.reverse(x, 0), 1 - lam))
  ) as T;
}
