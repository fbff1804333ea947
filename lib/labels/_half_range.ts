/**
 * The float16 range check of a map's scores, shared by the writers of
 * official files and of stores.
 *
 * Internal to `lib/labels/` (and its `store/` folder).
 *
 * @module
 */

import { cellOf } from "./_common.ts";
import type { ScoreMap } from "./score_map.ts";

/**
 * Why the float16 `bits` of a map's scores cannot stand for them (a finite
 * score beyond float16's range became an infinity), as a message naming
 * the first such cell of `where`; undefined when every score fits.
 */
export function halfRangeProblem(
  bits: Uint16Array,
  map: ScoreMap,
  where: string,
): string | undefined {
  const n = map.scores.length;
  for (let i = 0; i < n; i++) {
    if ((bits[i] & 0x7c00) === 0x7c00) {
      return `cannot store the score ${map.scores[i]} in ${
        cellOf(i, map.height, map.width)
      } of ${where} as float16: its largest finite value is 65504; scale the logits down or store probabilities`;
    }
  }
  return undefined;
}
