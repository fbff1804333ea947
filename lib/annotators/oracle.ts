/**
 * The oracle annotator: exact score maps computed from a per-pixel class
 * map (the synthetic scenes of `lib/data/synthetic_scenes.ts` have one), instead of
 * a trained classifier's guesses. With it, token labeling can be studied
 * with a perfect annotator, and an annotator's maps can be compared with the
 * truth.
 *
 * ## Cells and fractions
 *
 * The image (H x W pixels) is divided into a mapH x mapW grid with
 * fractional boundaries: cell row r spans image rows [r H / mapH,
 * (r + 1) H / mapH), likewise for columns, and a pixel counts towards a cell
 * with the area it shares with it. Sizes that do not divide are therefore
 * exact (and the arithmetic is exact: in units of 1 / (mapH mapW) of a pixel
 * every overlap is an integer). In each cell, `f_c` is the fraction of its
 * area covered by class c and `b` the fraction that is background (class
 * map -1); sum f_c + b = 1. See {@linkcode classFractions}.
 *
 * ## Scores
 *
 * - `"log"` (default): the cell's target distribution spreads the
 *   background uniformly over the K classes. With beta = max(b, K eps)
 *   (`epsilon`, default 1e-4, must be below 1 / K),
 *
 *       p_c = (1 - beta) f_c / (1 - b) + beta / K
 *
 *   which is f_c + b / K whenever b >= K eps. When a cell is (almost) fully
 *   covered by objects the classes not in it still get eps each, so the
 *   scores stay finite. The stored score of a class is
 *   s_c = ln p_c - ln p_base, with p_base = beta / K the probability of a
 *   class absent from the cell. A dense map holding these scores at their
 *   ids and 0 elsewhere (how label pooling densifies the top-k) then has
 *   softmax exactly p whenever at most k classes are in the cell: every
 *   absent class has logit 0 and probability p_base, a present one
 *   exp(s_c) p_base = p_c. With more than k classes the classes beyond the
 *   top k fall back to p_base (the official top-k truncation). An all-background cell
 *   has every score 0 (uniform).
 * - `"scaled"`: s_c = scale * f_c (`scale`, default 10): logits growing
 *   linearly with coverage; background and absent classes have logit 0.
 *
 * The top-k of a cell: the classes present, most area first, ties to the
 * lower class id; the remaining ranks (fewer than k classes present) are
 * filled with the lowest absent class ids, score 0, so the ids of a cell
 * are always distinct (as label pooling requires). Hence k <= numClasses.
 *
 * {@linkcode oracleAnnotate} writes the maps of a whole dataset to a
 * `ScoreMapStore` (annotator "oracle ...", scores "logits", preprocessing
 * "squash" at the image size, since every map covers its whole image).
 *
 * @example
 * ```ts
 * import { oracleScoreMap } from "tokenlab/annotators/oracle.ts";
 * // A 3 x 3 image: the left column is class 2, the rest background.
 * const classMap = { width: 3, height: 3, data: new Int16Array([2, -1, -1, 2, -1, -1, 2, -1, -1]) };
 * const map = oracleScoreMap(classMap, { mapSize: 1, k: 2, numClasses: 4 });
 * console.log(map.ids, map.scores); // Int32Array(2) [ 2, 0 ] Float32Array(2) [ 1.0986... (ln 3), 0 ]
 * ```
 *
 * @module
 */

import type { ClassMap } from "../data/image.ts";
import { type ScoreMap, ScoreMapError } from "../labels/score_map.ts";
import {
  ScoreMapStore,
  type ScoreMapStoreHeader,
} from "../labels/store/mod.ts";

/** Options of {@linkcode oracleScoreMap}. */
export interface OracleScoreMapOptions {
  /** Map size: rows = columns = n, or [rows, columns]. */
  mapSize: number | readonly [number, number];
  /** Classes kept per cell (default 5, as the official maps); at most numClasses. */
  k?: number;
  /** Classes of the dataset K: ids in the class map lie in [0, K) (or -1). */
  numClasses: number;
  /** `"log"` (default): log-probability ratios; `"scaled"`: scale x fraction. */
  mode?: "log" | "scaled";
  /**
   * `"log"` mode: the least probability of a class absent from a cell,
   * used when the cell has less than K eps of background (default 1e-4;
   * must be in (0, 1 / K)).
   */
  epsilon?: number;
  /** `"scaled"` mode: the logit of a class covering the whole cell (default 10). */
  scale?: number;
}

/** Per-cell class fractions, from {@linkcode classFractions}. */
export interface ClassFractions {
  /** Rows of the grid. */
  height: number;
  /** Columns of the grid. */
  width: number;
  /** Classes. */
  numClasses: number;
  /** [height, width, numClasses] row-major: the fraction f_c of each cell covered by class c. */
  fractions: Float64Array;
  /** [height, width]: the background fraction b of each cell. */
  background: Float64Array;
}

function fail(message: string): never {
  throw new ScoreMapError(`oracle annotator: ${message}`);
}

function show(v: unknown): string {
  return typeof v === "number" ? String(v) : JSON.stringify(v) ?? String(v);
}

function checkClassMap(map: ClassMap, numClasses: number): void {
  if (map === null || typeof map !== "object") {
    fail(`expected a class map {width, height, data}, found ${show(map)}`);
  }
  const { width, height, data } = map;
  if (
    !Number.isInteger(width) || !Number.isInteger(height) || width < 1 ||
    height < 1
  ) {
    fail(
      `expected a class map with a positive integer width and height, found ${
        show(width)
      } x ${show(height)}`,
    );
  }
  if (!(data instanceof Int16Array) || data.length !== width * height) {
    fail(
      `expected the class map's data to be an Int16Array of width * height = ${
        width * height
      } ids, found ${
        data instanceof Int16Array
          ? `${data.length} ids`
          : (data as object)?.constructor?.name ?? show(data)
      }`,
    );
  }
  for (let i = 0; i < data.length; i++) {
    const c = data[i];
    if (c < -1 || c >= numClasses) {
      fail(
        `class map pixel (${Math.floor(i / width)}, ${
          i % width
        }) holds class ${c}, expected -1 (background) or a class in [0, ${numClasses})`,
      );
    }
  }
}

function checkNumClasses(numClasses: unknown): number {
  if (
    typeof numClasses !== "number" || !Number.isInteger(numClasses) ||
    numClasses < 1 || numClasses > 65536
  ) {
    fail(
      `option "numClasses" must be an integer in [1, 65536], found ${
        show(numClasses)
      }`,
    );
  }
  return numClasses;
}

function mapShape(mapSize: unknown): [number, number] {
  const pair = typeof mapSize === "number" ? [mapSize, mapSize] : mapSize;
  if (
    !Array.isArray(pair) || pair.length !== 2 ||
    !pair.every((v) => Number.isInteger(v) && v >= 1 && v <= 4096)
  ) {
    fail(
      `option "mapSize" must be a positive integer or [rows, columns] of positive integers (at most 4096), found ${
        show(mapSize)
      }`,
    );
  }
  return [pair[0], pair[1]];
}

/**
 * For each of m cells along an axis of n pixels: the pixels it touches and
 * their overlaps, in units of 1 / m pixel (integers). Cell r spans
 * [r n, (r + 1) n) in those units, pixel y spans [y m, (y + 1) m).
 */
function axisWeights(
  n: number,
  m: number,
): { from: number[]; weights: number[][] } {
  const from: number[] = [], weights: number[][] = [];
  for (let r = 0; r < m; r++) {
    const lo = r * n, hi = (r + 1) * n;
    const y0 = Math.floor(lo / m), y1 = Math.ceil(hi / m); // pixels [y0, y1)
    const w: number[] = [];
    for (let y = y0; y < y1; y++) {
      w.push(Math.min(hi, (y + 1) * m) - Math.max(lo, y * m));
    }
    from.push(y0);
    weights.push(w);
  }
  return { from, weights };
}

/**
 * Visits every cell with its class areas: `visit(cell, classes, areas,
 * count, background, total)` where classes[0..count) are the distinct
 * classes in the cell and areas their overlap areas (in units whose total
 * per cell is `total`).
 */
function eachCell(
  classMap: ClassMap,
  mh: number,
  mw: number,
  numClasses: number,
  visit: (
    cell: number,
    classes: Int32Array,
    areas: Float64Array,
    count: number,
    background: number,
    total: number,
  ) => void,
): void {
  const { width: W, height: H, data } = classMap;
  const ay = axisWeights(H, mh), ax = axisWeights(W, mw);
  const acc = new Float64Array(numClasses);
  const classes = new Int32Array(numClasses);
  const areas = new Float64Array(numClasses);
  const total = H * W; // (n units per cell row) x (W units per cell column)
  for (let r = 0; r < mh; r++) {
    const wy = ay.weights[r], y0 = ay.from[r];
    for (let c = 0; c < mw; c++) {
      const wx = ax.weights[c], x0 = ax.from[c];
      let count = 0, bg = 0;
      for (let i = 0; i < wy.length; i++) {
        const row = (y0 + i) * W + x0;
        for (let j = 0; j < wx.length; j++) {
          const w = wy[i] * wx[j];
          const id = data[row + j];
          if (id < 0) {
            bg += w;
          } else {
            if (acc[id] === 0) classes[count++] = id;
            acc[id] += w;
          }
        }
      }
      for (let q = 0; q < count; q++) {
        areas[q] = acc[classes[q]];
        acc[classes[q]] = 0;
      }
      visit(r * mw + c, classes, areas, count, bg, total);
    }
  }
}

/**
 * The exact fraction of every cell of a mapH x mapW grid covered by each
 * class and by background (cell boundaries at fractional pixel positions;
 * see the module doc).
 *
 * @example
 * ```ts
 * import { classFractions } from "tokenlab/annotators/oracle.ts";
 * // 3 pixels in a row, classes 0, 1, -1, split into 2 cells of 1.5 pixels.
 * const fr = classFractions({ width: 3, height: 1, data: new Int16Array([0, 1, -1]) }, [1, 2], 2);
 * console.log(fr.fractions, fr.background); // Float64Array(4) [ 0.666..., 0.333..., 0, 0.333... ] Float64Array(2) [ 0, 0.666... ]
 * ```
 */
export function classFractions(
  classMap: ClassMap,
  mapSize: number | readonly [number, number],
  numClasses: number,
): ClassFractions {
  const K = checkNumClasses(numClasses);
  const [mh, mw] = mapShape(mapSize);
  checkClassMap(classMap, K);
  const fractions = new Float64Array(mh * mw * K);
  const background = new Float64Array(mh * mw);
  eachCell(classMap, mh, mw, K, (cell, classes, areas, count, bg, total) => {
    for (let q = 0; q < count; q++) {
      fractions[cell * K + classes[q]] = areas[q] / total;
    }
    background[cell] = bg / total;
  });
  return { height: mh, width: mw, numClasses: K, fractions, background };
}

/**
 * Exact top-k score maps from a class map, at any map size (see the module
 * doc for the cells, the two modes and the tie rules). Throws a
 * `ScoreMapError` naming the bad option or pixel.
 *
 * @example
 * ```ts
 * import { oracleScoreMap } from "tokenlab/annotators/oracle.ts";
 * const classMap = { width: 4, height: 4, data: new Int16Array(16).fill(1) };
 * const map = oracleScoreMap(classMap, { mapSize: [2, 3], k: 2, numClasses: 3, mode: "scaled" });
 * console.log(map.height, map.width, map.ids.slice(0, 6), map.scores[0]); // 2 3 Int32Array(6) [ 1, 1, 1, 1, 1, 1 ] 10
 * ```
 */
export function oracleScoreMap(
  classMap: ClassMap,
  options: OracleScoreMapOptions,
): ScoreMap {
  if (options === null || typeof options !== "object") {
    fail(
      `expected options {mapSize, numClasses, k?, mode?}, found ${
        show(options)
      }`,
    );
  }
  const K = checkNumClasses(options.numClasses);
  const [mh, mw] = mapShape(options.mapSize);
  const k = options.k ?? 5;
  if (!Number.isInteger(k) || k < 1 || k > K) {
    fail(
      `option "k" must be an integer in [1, numClasses = ${K}] (the top-k ids of a cell are distinct classes), found ${
        show(k)
      }`,
    );
  }
  const mode = options.mode ?? "log";
  if (mode !== "log" && mode !== "scaled") {
    fail(`option "mode" must be "log" or "scaled", found ${show(mode)}`);
  }
  const eps = options.epsilon ?? 1e-4;
  if (typeof eps !== "number" || !(eps > 0 && eps * K < 1)) {
    fail(
      `option "epsilon" must be a number in (0, 1 / numClasses = ${
        1 / K
      }), found ${show(eps)}`,
    );
  }
  const scale = options.scale ?? 10;
  if (typeof scale !== "number" || !(Number.isFinite(scale) && scale > 0)) {
    fail(`option "scale" must be a positive number, found ${show(scale)}`);
  }
  checkClassMap(classMap, K);
  const hw = mh * mw;
  const scores = new Float32Array(k * hw), ids = new Int32Array(k * hw);
  const order: number[] = [];
  const used = new Uint8Array(K);
  eachCell(classMap, mh, mw, K, (cell, classes, areas, count, bg, total) => {
    order.length = 0;
    for (let q = 0; q < count; q++) order.push(q);
    // Most area first; equal areas (exact integers) to the lower id.
    order.sort((a, b) => areas[b] - areas[a] || classes[a] - classes[b]);
    const kept = Math.min(k, count);
    const b = bg / total;
    const beta = Math.max(b, K * eps);
    for (let r = 0; r < kept; r++) {
      const q = order[r], f = areas[q] / total;
      // ln(p_c / p_base) = ln(1 + (1 - beta) f K / ((1 - b) beta)); b < 1
      // here since the cell holds a class.
      const s = mode === "log"
        ? Math.log1p((1 - beta) * f * K / ((1 - b) * beta))
        : scale * f;
      scores[r * hw + cell] = s;
      ids[r * hw + cell] = classes[q];
      used[classes[q]] = 1;
    }
    // Fill the remaining ranks with the lowest absent ids, score 0.
    for (let r = kept, id = 0; r < k; r++, id++) {
      while (used[id]) id++;
      ids[r * hw + cell] = id;
    }
    for (let r = 0; r < kept; r++) used[ids[r * hw + cell]] = 0;
  });
  return { k, height: mh, width: mw, scores, ids };
}

/** What {@linkcode oracleAnnotate} reads: anything with class maps and keys. */
export interface ClassMapSource {
  /** Number of images. */
  readonly size: number;
  /** Class names (their count is the default numClasses). */
  readonly classes: readonly string[];
  /** Where the images come from, for messages. */
  readonly description?: string;
  /** The key of image `i` (unique). */
  key(i: number): string;
  /** The label of image `i`, stored with its map when defined. */
  label?(i: number): number | undefined;
  /** The class map of image `i`. */
  classMap(i: number): ClassMap;
}

/** Options of {@linkcode oracleAnnotate}. */
export interface OracleAnnotateOptions
  extends Omit<OracleScoreMapOptions, "numClasses"> {
  /** Classes (default: the source's class count). */
  numClasses?: number;
  /** Store the source's labels with the maps (default true). */
  labels?: boolean;
  /** Replace an existing store, or a leftover partial write (default false). */
  overwrite?: boolean;
  /** Appends between progress checkpoints of the store writer (default 1000). */
  flushEvery?: number;
  /** The annotator name in the header (default `oracle (<mode>, ...)`). */
  annotator?: string;
  /** Called after each image with (done, total). */
  onProgress?: (done: number, total: number) => void;
}

/** What {@linkcode oracleAnnotate} returns. */
export interface OracleAnnotateResult {
  /** The committed store's header. */
  header: ScoreMapStoreHeader;
  /** Wall time in seconds. */
  seconds: number;
}

/**
 * Writes the oracle score map of every image of `source` to a new
 * `ScoreMapStore` at `storePath` (with the labels, unless `labels: false`).
 * The header says annotator "oracle ...", scores "logits", preprocessing
 * "squash" at the image size (the larger side for a non-square map). On an
 * error the partial store is removed (the maps are cheap to make again).
 *
 * @example
 * ```ts
 * import { SyntheticScenes } from "tokenlab/data/synthetic_scenes.ts";
 * import { oracleAnnotate } from "tokenlab/annotators/oracle.ts";
 * import { ScoreMapStore } from "tokenlab/labels/store/mod.ts";
 * const dir = await Deno.makeTempDir();
 * const ds = new SyntheticScenes({ size: 32, count: 8 });
 * const { header } = await oracleAnnotate(ds, `${dir}/maps`, { mapSize: 2, k: 3 });
 * using store = await ScoreMapStore.open(`${dir}/maps`);
 * console.log(header.annotator, store.size, await store.label(0) === ds.label(0)); // oracle (log, epsilon 0.0001) 8 true
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function oracleAnnotate(
  source: ClassMapSource,
  storePath: string,
  options: OracleAnnotateOptions,
): Promise<OracleAnnotateResult> {
  const t0 = performance.now();
  if (options === null || typeof options !== "object") {
    fail(`expected options {mapSize, k?, mode?, ...}, found ${show(options)}`);
  }
  const numClasses = options.numClasses ?? source.classes.length;
  const mode = options.mode ?? "log";
  const mapOptions: OracleScoreMapOptions = {
    mapSize: options.mapSize,
    k: options.k ?? 5,
    numClasses,
    mode,
    epsilon: options.epsilon,
    scale: options.scale,
  };
  if (!(Number.isInteger(source.size) && source.size >= 1)) {
    fail(
      `the source ${
        source.description ?? ""
      } must hold at least one image, found size ${show(source.size)}`,
    );
  }
  // Checks the options (and the first class map) before creating anything.
  const first = source.classMap(0);
  const firstMap = oracleScoreMap(first, mapOptions);
  const annotator = options.annotator ??
    (mode === "log"
      ? `oracle (log, epsilon ${options.epsilon ?? 1e-4})`
      : `oracle (scaled, scale ${options.scale ?? 10})`);
  const writer = await ScoreMapStore.create(storePath, {
    k: firstMap.k,
    height: firstMap.height,
    width: firstMap.width,
    numClasses,
    annotator,
    preprocessing: {
      mode: "squash",
      size: Math.max(first.width, first.height),
    },
    scores: "logits",
  }, { overwrite: options.overwrite ?? false, flushEvery: options.flushEvery });
  const withLabels = options.labels ?? true;
  try {
    for (let i = 0; i < source.size; i++) {
      const map = i === 0
        ? firstMap
        : oracleScoreMap(source.classMap(i), mapOptions);
      const label = withLabels ? source.label?.(i) : undefined;
      await writer.append(source.key(i), map, label);
      options.onProgress?.(i + 1, source.size);
    }
    const header = await writer.commit();
    return { header, seconds: (performance.now() - t0) / 1000 };
  } catch (e) {
    await writer.abort().catch(() => {});
    throw e;
  }
}
