/**
 * Score maps: the top-k class ids and scores per location of a dense
 * annotator output, one map per image.
 *
 * - {@linkcode ScoreMap}: one image's map, `scores` and `ids` of shape
 *   [k, H, W] (rank-major: rank 0 is the best class of each cell).
 * - {@linkcode validateScoreMap}: the checks every map passes before it is
 *   written or used (shape, finite scores, ids in range).
 * - {@linkcode ScoreMapError}: what every reader and writer of score maps
 *   throws for a bad map, file or store, saying what was expected, what was
 *   found, where, and what to do.
 *
 * Where maps live on disk: the official per-image files
 * (`official_map.ts`) and the compact store per dataset (`store/`).
 *
 * @module
 */

import { cellOf, numClassesProblem, typeName } from "./_common.ts";
import { TokenlabError } from "../errors.ts";

/** Options of a {@linkcode ScoreMapError}: the cause, and the option that would change the outcome. */
export interface ScoreMapErrorOptions extends ErrorOptions {
  /**
   * The library option the message tells the caller to pass to continue
   * (e.g. `"overwrite"` to start a store over), so that a command line can
   * name its own flag for it without reading the message.
   */
  option?: "overwrite";
}

/** Thrown for a bad score map or store: what was expected, what was found, which file and image, what to do. */
export class ScoreMapError extends TokenlabError {
  /** The option that would change the outcome (see {@linkcode ScoreMapErrorOptions}), if any. */
  readonly option: "overwrite" | undefined;
  /** Makes an error with this message (and an optional cause and option). */
  constructor(message: string, options?: ScoreMapErrorOptions) {
    super(message, options);
    this.option = options?.option;
  }
}

/** One image's top-k score map: `scores` and `ids` of shape [k, height, width], rank 0 best. */
export interface ScoreMap {
  /** Classes kept per cell (the rank axis). */
  k: number;
  /** Rows of the map. */
  height: number;
  /** Columns of the map. */
  width: number;
  /** Scores, [k, height, width] row-major. */
  scores: Float32Array;
  /** Class ids, [k, height, width] row-major, parallel to `scores`. */
  ids: Int32Array;
}

/** Maps of several images, concatenated: what a store's `readBatch` returns. */
export interface ScoreMapBatch {
  /** Images in the batch. */
  size: number;
  /** Classes kept per cell. */
  k: number;
  /** Rows of every map. */
  height: number;
  /** Columns of every map. */
  width: number;
  /** Scores [B, k, H, W]. */
  scores: Float32Array;
  /** Class ids [B, k, H, W]. */
  ids: Int32Array;
  /** Ground-truth labels [B] (-1 where none), when the store has labels. */
  labels?: Int32Array;
}

/** Options of {@linkcode validateScoreMap}. */
export interface ValidateScoreMapOptions {
  /** The dataset's class count: ids must lie in [0, numClasses). */
  numClasses?: number;
  /** The file or image the map comes from, named in errors. */
  where?: string;
}

function checkCount(n: unknown, what: string, where: string): void {
  if (!Number.isSafeInteger(n) || (n as number) <= 0) {
    throw new ScoreMapError(
      `score map shape of ${where}: expected ${what} to be a positive integer, found ${
        JSON.stringify(n) ?? String(n)
      }`,
    );
  }
}

/**
 * Checks a score map: positive integer k, height and width; `scores` a
 * Float32Array and `ids` an Int32Array of k * height * width values; every
 * score finite; every id in [0, numClasses) (or non-negative without
 * `numClasses`). Throws a {@linkcode ScoreMapError} naming `where` and the
 * first bad cell.
 *
 * @example
 * ```ts
 * import { validateScoreMap } from "tokenlab/labels/score_map.ts";
 * const map = { k: 1, height: 1, width: 2, scores: new Float32Array([1, 2]), ids: new Int32Array([3, 1203]) };
 * try {
 *   validateScoreMap(map, { numClasses: 1000, where: "n01440764/img_12.pt" });
 * } catch (e) {
 *   console.log((e as Error).message); // score map ids out of range: found class 1203 in cell (0, 1) (rank 0) of n01440764/img_12.pt, ...
 * }
 * ```
 */
export function validateScoreMap(
  map: ScoreMap,
  options: ValidateScoreMapOptions = {},
): void {
  const where = options.where ?? "a score map";
  if (map === null || typeof map !== "object") {
    throw new ScoreMapError(
      `score map of ${where}: expected an object {k, height, width, scores, ids}, found ${
        typeName(map)
      }`,
    );
  }
  checkCount(map.k, "k", where);
  checkCount(map.height, "height", where);
  checkCount(map.width, "width", where);
  const n = map.k * map.height * map.width;
  if (!(map.scores instanceof Float32Array) || map.scores.length !== n) {
    throw new ScoreMapError(
      `score map scores of ${where}: expected a Float32Array of k * height * width = ${map.k} * ${map.height} * ${map.width} = ${n} values, found ${
        map.scores instanceof Float32Array
          ? `${map.scores.length} values`
          : `a ${typeName(map.scores)}`
      }`,
    );
  }
  if (!(map.ids instanceof Int32Array) || map.ids.length !== n) {
    throw new ScoreMapError(
      `score map ids of ${where}: expected an Int32Array of k * height * width = ${n} values, found ${
        map.ids instanceof Int32Array
          ? `${map.ids.length} values`
          : `a ${typeName(map.ids)}`
      }`,
    );
  }
  if (options.numClasses !== undefined) {
    const bad = numClassesProblem(options.numClasses, `validating ${where}`);
    if (bad !== undefined) throw new ScoreMapError(bad);
  }
  const c = options.numClasses ?? 2 ** 31;
  const s = map.scores, ids = map.ids;
  for (let i = 0; i < n; i++) {
    if (!(s[i] - s[i] === 0)) {
      throw new ScoreMapError(
        `score map scores not finite: found ${s[i]} in ${
          cellOf(i, map.height, map.width)
        } of ${where}; the annotator produced NaN or infinity there (check its input and precision) or the file is damaged; regenerate this map`,
      );
    }
    const id = ids[i];
    if (id < 0 || id >= c) {
      throw new ScoreMapError(
        `score map ids out of range: found class ${id} in ${
          cellOf(i, map.height, map.width)
        } of ${where}, but ${
          options.numClasses === undefined
            ? "class ids cannot be negative"
            : `the dataset has ${options.numClasses} classes`
        }; check that the maps were made for this dataset (numClasses) or regenerate them`,
      );
    }
  }
}
