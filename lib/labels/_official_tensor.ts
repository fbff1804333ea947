/**
 * The tensor of an official score-map file: a map's scores and ids stacked
 * into [2, k, H, W] (ids as floats), checked, in the element type of the
 * file, and the memory order `generate_label.py` saves it in. Shared by
 * the writer of single files and the conversion of a whole store.
 *
 * Internal to `lib/labels/` (and its `store/` folder);
 * {@linkcode WriteOfficialMapOptions} is public through `official_map.ts`.
 *
 * @module
 */

import { float32ToFloat16Bits, type RawTensor } from "../io/raw_tensor.ts";
import { cellOf } from "./_common.ts";
import { halfRangeProblem } from "./_half_range.ts";
import { type ScoreMap, ScoreMapError, validateScoreMap } from "./score_map.ts";

/** Options of {@linkcode writeOfficialMap}. */
export interface WriteOfficialMapOptions {
  /** Replace an existing file (default false: refuse). */
  overwrite?: boolean;
  /** Element type of the file (default `"float16"`, as the official code). */
  dtype?: "float16" | "float32";
  /** The dataset's class count, to check the ids against. */
  numClasses?: number;
  /** Flush to disk before the file is renamed into place (default true). */
  sync?: boolean;
  /** How to name the map in errors (default: the path). */
  where?: string;
}

/** generate_label.py saves stack([values, ids]) [2, H, W, k] permuted to [2, k, H, W]. */
export const OFFICIAL_ORDER = [0, 2, 3, 1];

/** [2, k, H, W] official values of a map (ids as floats), float32. */
function officialValues(map: ScoreMap): Float32Array {
  const n = map.scores.length;
  const v = new Float32Array(2 * n);
  v.set(map.scores);
  for (let i = 0; i < n; i++) v[n + i] = map.ids[i];
  return v;
}

/** The checked [2, k, H, W] tensor of an official file. */
export function officialRaw(
  map: ScoreMap,
  options: WriteOfficialMapOptions,
  where: string,
): RawTensor {
  validateScoreMap(map, { numClasses: options.numClasses, where });
  const dtype = options.dtype ?? "float16";
  if (dtype !== "float16" && dtype !== "float32") {
    throw new ScoreMapError(
      `writing ${where}: expected dtype "float16" or "float32", found ${
        JSON.stringify(dtype)
      }`,
    );
  }
  const values = officialValues(map);
  const shape = [2, map.k, map.height, map.width];
  if (dtype === "float16") {
    const n = map.scores.length;
    for (let i = 0; i < n; i++) {
      if (map.ids[i] >= 2048) {
        throw new ScoreMapError(
          `cannot write ${where} as float16: found class ${map.ids[i]} in ${
            cellOf(i, map.height, map.width)
          }, but float16 holds class ids exactly only below 2048; write it with dtype: "float32" (torch.load reads it the same way) or keep the maps in a ScoreMapStore`,
        );
      }
    }
    const bits = float32ToFloat16Bits(values);
    const bad = halfRangeProblem(bits, map, where);
    if (bad !== undefined) throw new ScoreMapError(bad);
    return { dtype, shape, data: bits };
  }
  return { dtype, shape, data: values };
}
