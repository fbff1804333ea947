/**
 * Label pooling: from a batch of top-k score maps and the crop boxes of the
 * training images, the soft labels of the class token and of every patch
 * token (TokenLabeling; with a 1 x 1 grid alone, ReLabel's "LabelPooling").
 *
 * For each image the stored map is made dense ([C, H, W]: the top-k scores
 * at their class ids, 0 elsewhere), flipped along its columns if the image
 * was, and the crop box is pooled out of it with RoIAlign exactly as
 * torchvision's `roi_align(..., aligned=False)` with its adaptive sampling
 * (as the official code calls it): to 1 x 1 for the class token and to
 * S x S for the patch tokens (row-major). Then softmax over the classes and
 * label smoothing. The box geometry is computed in float32, as the official
 * code (float boxes) and torchvision compute it: the number of sample points
 * per bin, ceil(box side / bins), jumps where a side is a whole number of
 * cells, and float32 and float64 can land on either side of it.
 *
 * How it is computed: RoIAlign with bilinear sampling on a Cartesian grid of
 * sample points is separable, pooled[b, i, j, c] = sum over (h, w) of
 * Wy[b, i, h] Wx[b, j, w] dense[b, c, h, w]. The small weight matrices
 * Wy [B, S, H] and Wx [B, S, W] are computed in JavaScript (O(B S (H + W))),
 * and each output row or column touches only a few map rows or columns (a
 * band). Everything else is one batched computation on the backend: the
 * scores of the k sparse planes inside each band are gathered and weighted,
 * then scatter-added into the class axis (no dense [B, C, H, W] map and no
 * matmul over mostly-zero weights), softmax, smoothing. Measured on the
 * 2-core CPU machine (wasm) this is faster than densifying first and
 * pooling with two matmuls, and than weighting the sparse planes along one
 * axis and a matmul along the other. (On webgpu the scatter-add is atomic,
 * so the order of the float additions, and the last bit of a label, may
 * vary from run to run.)
 *
 * @module
 */

import { tf } from "../tf.ts";
import { smoothedOneHot } from "../losses/cross_entropy.ts";
import type { ScoreMap, ScoreMapBatch } from "./score_map.ts";
import { TokenlabError } from "../errors.ts";

/**
 * A batch of top-k score maps: `scores` and `ids` of shape [B, k, height,
 * width] (rank 0 the best class of each cell), as plain arrays (a
 * `ScoreMapBatch` read from a store fits) or as tensors on the active
 * backend.
 */
export interface TopKMaps {
  /** Classes kept per cell (the rank axis). */
  k: number;
  /** Rows of each map. */
  height: number;
  /** Columns of each map. */
  width: number;
  /** Scores [B, k, height, width] (float32). */
  scores: Float32Array | tf.Tensor;
  /** Class ids [B, k, height, width] (int32; a float tensor of whole numbers is accepted). */
  ids: Int32Array | tf.Tensor;
}

/**
 * A crop box, normalised to the image: (top, left, height, width), each a
 * fraction of the image height or width, in the frame of the image after
 * flip and augmentation (as the official code stores it).
 */
export type NormalizedBox = readonly [number, number, number, number];

/**
 * How the crop box is handed to RoIAlign.
 *
 * - `"yx"` (the default, correct): rows from (top, top + height), columns
 *   from (left, left + width).
 * - `"official-transposed"`: what TokenLabeling's and ReLabel's code do.
 *   They pass (top, left, bottom, right), each times the map *width*, minus
 *   0.5, to RoIAlign, which reads (x1, y1, x2, y2): the columns come from
 *   (top, bottom) and the rows from (left, right), so the transposed region
 *   is pooled. A 15 x 15 map whose columns 0-5 hold class 3 and 6-14 class
 *   7, cropped to its left 40 %, gives the class token class 7 and the 2 x 2
 *   tokens [3, 7, 3, 7] (the top 40 % of the rows); `"yx"` gives 3 and
 *   [3, 3, 3, 3]. Use it only to reproduce the official targets.
 */
export type BoxOrder = "yx" | "official-transposed";

/**
 * Label smoothing of the pooled soft labels (eps = `smoothing`, C classes).
 *
 * - `"normalized"` (the default): t (1 - eps) + eps / C, which sums to 1.
 * - `"official"`: t (1 - eps + eps / C) + eps / C, what the official
 *   TokenLabeling code does (`token_label * on_value + off_value` with timm's
 *   `on_value = 1 - eps + eps / C`, `off_value = eps / C`): each label then
 *   sums to 1 + eps / C. The ground truth is smoothed the same (correct) way
 *   by both: timm's one-hot with those on and off values, which sums to 1.
 */
export type SmoothingRule = "normalized" | "official";

/** Options of {@linkcode poolLabels}. */
export interface PoolLabelsOptions {
  /** Number of classes C: every id must lie in [0, C). */
  numClasses: number;
  /** S, the side of the token grid (default 14: image size / 16 at 224). */
  tokenGrid?: number;
  /**
   * Per image, whether it was flipped horizontally while its map was not:
   * the map is then flipped along its columns before pooling. Leave it out
   * (or all false) when the maps were flipped with the images already.
   */
  flips?: ArrayLike<boolean>;
  /** Label smoothing eps in [0, 1) (default 0.1, the official value). */
  smoothing?: number;
  /** How pooled labels are smoothed (default `"normalized"`). */
  smoothingRule?: SmoothingRule;
  /** Ground-truth class per image: returns the smoothed one-hot as `truth`. */
  labels?: ArrayLike<number>;
  /** How the box is handed to RoIAlign (default `"yx"`). */
  boxOrder?: BoxOrder;
  /**
   * `"probabilities"` (default): softmax and smoothing. `"scores"`: the
   * pooled scores themselves (before softmax), for inspection and tests;
   * `smoothing` is ignored and `truth` is not smoothed.
   */
  output?: "probabilities" | "scores";
}

/** Pooled soft labels of a batch, as tensors on the active backend (the caller disposes them: `tf.dispose(Object.values(labels))`). */
export interface PooledLabels {
  /** Class-token soft labels [B, C]. */
  cls: tf.Tensor2D;
  /** Patch-token soft labels [B, S*S, C], tokens row-major. */
  tokens: tf.Tensor3D;
  /** Smoothed ground-truth one-hot [B, C], when `labels` was given. */
  truth?: tf.Tensor2D;
}

/** Thrown for bad input to label pooling: which image, what is wrong, what to do. */
export class LabelPoolingError extends TokenlabError {
  /** Makes an error with this message. */
  constructor(message: string) {
    super(message);
  }
}

/** Slack allowed on box edges for float rounding (a box may end at 1 + this). */
const BOX_SLACK = 1e-6;

/**
 * Pools the crop box of every image out of its score map: the class-token
 * soft label (RoIAlign 1 x 1), the S x S patch-token soft labels (RoIAlign
 * S x S, row-major), softmax over the classes and label smoothing; with
 * `labels`, also the smoothed ground-truth one-hot. One batched computation
 * on the active backend; inputs are checked first (boxes, shapes, ids,
 * scores), and a bad one is reported with its image's batch index.
 *
 * @param maps the batch of top-k maps [B, k, H, W]
 * @param boxes one normalised (top, left, height, width) box per image, as
 *   an array of boxes or a flat array of 4 B numbers
 * @throws {LabelPoolingError} for a bad box, shape, id or score
 *
 * @example
 * ```ts
 * import { initBackend, tf } from "tokenlab";
 * import { poolLabels } from "tokenlab/labels/pooling.ts";
 * await initBackend();
 * // One image, k = 1, a 2 x 2 map: class 3 on the left column, class 7 on the right.
 * const maps = {
 *   k: 1, height: 2, width: 2,
 *   scores: new Float32Array([5, 5, 5, 5]),
 *   ids: new Int32Array([3, 7, 3, 7]),
 * };
 * const out = await poolLabels(maps, [[0, 0, 1, 0.5]], {
 *   numClasses: 10, tokenGrid: 2, labels: [3],
 * });
 * console.log(out.cls.shape, out.tokens.shape); // [1, 10] [1, 4, 10]
 * const best = tf.argMax(out.cls, 1);
 * console.assert((await best.data())[0] === 3); // the left half is class 3
 * tf.dispose([best, ...Object.values(out)]);
 * ```
 */
export async function poolLabels(
  maps: TopKMaps,
  boxes: readonly NormalizedBox[] | ArrayLike<number>,
  options: PoolLabelsOptions,
): Promise<PooledLabels> {
  const plan = await checkInputs(maps, boxes, options);
  const { B, k, H, W, C, S } = plan;
  const cls = bandWeights(plan, 1);
  const tok = bandWeights(plan, S);
  const probabilities = (options.output ?? "probabilities") === "probabilities";
  const eps = probabilities ? (options.smoothing ?? 0.1) : 0;
  const official = options.smoothingRule === "official";
  const [clsScores, tokenScores] = tf.tidy(() => {
    // Index arithmetic runs in float32 (exact below 2^24, checked above):
    // tfjs 4.22's wasm backend broadcasts int32 tensors about 20x slower.
    const scores = tf.reshape(asTensor(maps.scores, "float32"), [-1]);
    const ids = tf.reshape(asTensor(maps.ids, "int32"), [-1]);
    const plane = tf.reshape(
      tf.range(0, B * k * H * W, H * W, "float32"),
      [B, 1, 1, 1, 1, k],
    ); // where each image's rank planes start in the flat maps
    const pool = (w: Bands, s: number): tf.Tensor3D => {
      const { ny, nx } = w;
      const n = B * s * s * ny * nx * k; // contributions
      // Which map cell each (image, token row i, token column j, band row t,
      // band column u, rank r) reads: ((b k + r) H + row) W + col. (A flat
      // gather: tfjs 4.22's wasm gather with batchDims mixes images up.)
      const at = tf.reshape(
        tf.cast(
          tf.add(
            tf.add(
              tf.tensor(w.rowStart, [B, s, 1, ny, 1, 1], "float32"),
              tf.tensor(w.colIndex, [B, 1, s, 1, nx, 1], "float32"),
            ),
            plane,
          ),
          "int32",
        ),
        [n],
      );
      const weight = tf.mul(
        tf.tensor(w.rowWeight, [B, s, 1, ny, 1, 1]),
        tf.tensor(w.colWeight, [B, 1, s, 1, nx, 1]),
      ); // [B, s, s, ny, nx, 1]
      const values = tf.mul(
        tf.reshape(tf.gather(scores, at), [B, s, s, ny, nx, k]),
        weight,
      ); // [B, s, s, ny, nx, k]
      // Where each contribution goes: token (b, i, j) times C plus its class.
      const token = tf.cast(
        tf.add(
          tf.reshape(tf.range(0, B * s * s, 1, "float32"), [B, s, s, 1, 1, 1]),
          tf.zeros([1, 1, 1, ny, nx, k]),
        ),
        "int32",
      ); // [B, s, s, ny, nx, k]
      const target = tf.add(
        tf.mul(tf.reshape(token, [n]), tf.scalar(C, "int32")),
        tf.gather(ids, at),
      ); // [n]: flat index into [B, s*s, C]
      const pooled = tf.scatterND(
        tf.reshape(target, [n, 1]),
        tf.reshape(values, [n]),
        [B * s * s * C],
      );
      return tf.reshape(pooled, [B, s * s, C]) as tf.Tensor3D;
    };
    return [
      tf.reshape(pool(cls, 1), [B, C]), // [B, C]
      pool(tok, S), // [B, S*S, C]
    ];
  });
  // One [B, S*S, C] step at a time, each input freed as soon as it is used,
  // so that at most two such tensors live at once.
  const step = (x: tf.Tensor, f: (x: tf.Tensor) => tf.Tensor): tf.Tensor => {
    const y = tf.tidy(() => f(x));
    x.dispose();
    return y;
  };
  const finish = (x: tf.Tensor): tf.Tensor => {
    if (!probabilities) return x;
    const p = step(x, (z) => tf.softmax(z));
    if (eps === 0 && !official) return p;
    const on = official ? 1 - eps + eps / C : 1 - eps;
    return step(step(p, (q) => tf.mul(q, on)), (q) => tf.add(q, eps / C));
  };
  const out: PooledLabels = {
    cls: finish(clsScores) as tf.Tensor2D,
    tokens: finish(tokenScores) as tf.Tensor3D,
  };
  if (options.labels !== undefined) {
    // timm's one_hot(on = 1 - eps + eps / C, off = eps / C); the labels
    // and eps were checked above, with this module's errors.
    out.truth = smoothedOneHot(options.labels, C, { smoothing: eps });
  }
  return out;
}

/**
 * The official code's target layout [B, C, 2 + S*S]: the smoothed
 * ground-truth one-hot, the class-token label, then the S*S token labels, so
 * that targets can be compared with (or handed to) the official losses. A
 * new tensor; the caller disposes it.
 *
 * @throws {LabelPoolingError} when `pooled` has no `truth` (pass `labels` to
 *   {@linkcode poolLabels})
 *
 * @example
 * ```ts
 * import { initBackend, tf } from "tokenlab";
 * import { officialTargetLayout, poolLabels } from "tokenlab/labels/pooling.ts";
 * await initBackend();
 * const maps = {
 *   k: 1, height: 2, width: 2,
 *   scores: new Float32Array([1, 2, 3, 4]), ids: new Int32Array([0, 1, 2, 3]),
 * };
 * const pooled = await poolLabels(maps, [[0, 0, 1, 1]], {
 *   numClasses: 4, tokenGrid: 2, labels: [2],
 * });
 * const target = officialTargetLayout(pooled);
 * console.log(target.shape); // [1, 4, 6]
 * tf.dispose([target, ...Object.values(pooled)]);
 * ```
 */
export function officialTargetLayout(pooled: PooledLabels): tf.Tensor3D {
  if (pooled.truth === undefined) {
    throw new LabelPoolingError(
      "officialTargetLayout needs the ground truth: the pooled labels have no `truth`; pass `labels` (one class per image) to poolLabels",
    );
  }
  const truth = pooled.truth;
  return tf.tidy(() =>
    tf.concat([
      tf.expandDims(truth, 2), // [B, C, 1]
      tf.expandDims(pooled.cls, 2), // [B, C, 1]
      tf.transpose(pooled.tokens, [0, 2, 1]), // [B, C, S*S]
    ], 2) as tf.Tensor3D // [B, C, 2 + S*S]
  );
}

/**
 * Stacks single-image maps (same k, height and width) into one batch of
 * plain arrays, as {@linkcode poolLabels} takes them.
 *
 * @throws {LabelPoolingError} when the maps differ in shape or none is given
 *
 * @example
 * ```ts
 * import { stackScoreMaps } from "tokenlab/labels/pooling.ts";
 * const one = {
 *   k: 1, height: 1, width: 2,
 *   scores: new Float32Array([1, 2]), ids: new Int32Array([0, 1]),
 * };
 * const batch = stackScoreMaps([one, one]);
 * console.assert(batch.scores.length === 4);
 * ```
 */
export function stackScoreMaps(maps: readonly ScoreMap[]): ScoreMapBatch {
  if (maps.length === 0) {
    throw new LabelPoolingError(
      "stackScoreMaps needs at least one map; found an empty list",
    );
  }
  const { k, height, width } = maps[0];
  const size = k * height * width;
  const scores = new Float32Array(maps.length * size);
  const ids = new Int32Array(maps.length * size);
  maps.forEach((m, b) => {
    if (m.k !== k || m.height !== height || m.width !== width) {
      throw new LabelPoolingError(
        `map ${b} has k ${m.k} and ${m.height} x ${m.width} cells, but map 0 has k ${k} and ${height} x ${width}; resize or regenerate the maps so that a batch shares one shape`,
      );
    }
    if (m.scores.length !== size || m.ids.length !== size) {
      throw new LabelPoolingError(
        `map ${b} should hold ${size} scores and ids (k ${k} x ${height} x ${width}), found ${m.scores.length} scores and ${m.ids.length} ids`,
      );
    }
    scores.set(m.scores, b * size);
    ids.set(m.ids, b * size);
  });
  return { size: maps.length, k, height, width, scores, ids };
}

// ---------------------------------------------------------------------------
// Input checks

interface Plan {
  B: number;
  k: number;
  H: number;
  W: number;
  C: number;
  S: number;
  /** Box corners per image in map pixels (float32, as torchvision computes). */
  y1: Float64Array;
  y2: Float64Array;
  x1: Float64Array;
  x2: Float64Array;
  flips: boolean[];
}

function positiveInteger(value: unknown, name: string, hint: string): number {
  if (!(typeof value === "number" && Number.isInteger(value) && value >= 1)) {
    throw new LabelPoolingError(
      `${name} must be a positive integer, found ${String(value)}; ${hint}`,
    );
  }
  return value;
}

async function readNumbers(
  x: Float32Array | Int32Array | tf.Tensor,
  what: string,
  shape: number[],
): Promise<ArrayLike<number>> {
  if (x instanceof tf.Tensor) {
    const want = shape.join(", ");
    if (x.shape.join(", ") !== want) {
      throw new LabelPoolingError(
        `${what} tensor should have shape [${want}] (B, k, height, width), found [${x.shape}]`,
      );
    }
    return await x.data() as ArrayLike<number>;
  }
  return x;
}

async function checkInputs(
  maps: TopKMaps,
  boxes: readonly NormalizedBox[] | ArrayLike<number>,
  options: PoolLabelsOptions,
): Promise<Plan> {
  const hintShape = "give k, height and width of the maps";
  const k = positiveInteger(maps.k, "maps.k", hintShape);
  const H = positiveInteger(maps.height, "maps.height", hintShape);
  const W = positiveInteger(maps.width, "maps.width", hintShape);
  const C = positiveInteger(
    options.numClasses,
    "numClasses",
    "pass the dataset's class count",
  );
  const S = positiveInteger(
    options.tokenGrid ?? 14,
    "tokenGrid",
    "pass the token grid side (image size / 16)",
  );
  if (k > C) {
    throw new LabelPoolingError(
      `maps keep k = ${k} classes per cell but there are only ${C} classes; k must be at most numClasses`,
    );
  }
  const eps = options.smoothing ?? 0.1;
  if (!(eps >= 0 && eps < 1)) {
    throw new LabelPoolingError(
      `smoothing must lie in [0, 1), found ${eps}; the official value is 0.1`,
    );
  }
  const size = k * H * W;
  const scoresLength = maps.scores instanceof tf.Tensor
    ? maps.scores.size
    : maps.scores.length;
  if (scoresLength === 0 || scoresLength % size !== 0) {
    throw new LabelPoolingError(
      `scores should hold B x ${k} x ${H} x ${W} values (B >= 1), found ${scoresLength}; check k, height and width`,
    );
  }
  const B = scoresLength / size;
  // Index arithmetic: map positions and token numbers in float32 (exact up
  // to 2^24), flat output positions in int32.
  if (B * size > 2 ** 24 || B * S * S > 2 ** 24 || B * S * S * C >= 2 ** 31) {
    throw new LabelPoolingError(
      `too large for one call: ${B} maps of k ${k} x ${H} x ${W} (B * k * H * W = ${
        B * size
      }, at most 2^24) pooled to ${S} x ${S} tokens of ${C} classes (B * S * S * C = ${
        B * S * S * C
      }, at most 2^31 - 1); pool the batch in parts`,
    );
  }
  const shape = [B, k, H, W];
  const scores = await readNumbers(maps.scores, "scores", shape);
  const ids = await readNumbers(maps.ids, "ids", shape);
  if (ids.length !== scores.length) {
    throw new LabelPoolingError(
      `ids should hold as many values as scores (${scores.length}, B ${B} x k ${k} x ${H} x ${W}), found ${ids.length}`,
    );
  }
  const cell = (i: number) => {
    const w = i % W, h = Math.floor(i / W) % H;
    const r = Math.floor(i / (H * W)) % k, b = Math.floor(i / size);
    return { b, r, h, w };
  };
  for (let i = 0; i < scores.length; i++) {
    if (!Number.isFinite(scores[i])) {
      const { b, r, h, w } = cell(i);
      throw new LabelPoolingError(
        `score map of image ${b} (batch index ${b}) has score ${
          scores[i]
        } at rank ${r}, cell (${h}, ${w}); scores must be finite: regenerate or repair that map`,
      );
    }
    const id = ids[i];
    if (!(Number.isInteger(id) && id >= 0 && id < C)) {
      const { b, r, h, w } = cell(i);
      throw new LabelPoolingError(
        `score map of image ${b} (batch index ${b}) names class ${id} at rank ${r}, cell (${h}, ${w}), but the dataset has ${C} classes (ids 0 to ${
          C - 1
        }); check numClasses or the map`,
      );
    }
  }
  // Top-k ids of a cell are distinct; a repeat means a corrupt map.
  for (let b = 0; b < B; b++) {
    for (let p = 0; p < H * W; p++) {
      for (let r = 1; r < k; r++) {
        const id = ids[b * size + r * H * W + p];
        for (let q = 0; q < r; q++) {
          if (ids[b * size + q * H * W + p] === id) {
            throw new LabelPoolingError(
              `score map of image ${b} (batch index ${b}) names class ${id} twice in cell (${
                Math.floor(p / W)
              }, ${
                p % W
              }) (ranks ${q} and ${r}); the top-k ids of a cell must be distinct: regenerate that map`,
            );
          }
        }
      }
    }
  }
  const flat = flattenBoxes(boxes, B);
  const order = options.boxOrder ?? "yx";
  if (order !== "yx" && order !== "official-transposed") {
    throw new LabelPoolingError(
      `boxOrder must be "yx" or "official-transposed", found ${
        JSON.stringify(order)
      }`,
    );
  }
  const f = Math.fround;
  const y1 = new Float64Array(B), y2 = new Float64Array(B);
  const x1 = new Float64Array(B), x2 = new Float64Array(B);
  for (let b = 0; b < B; b++) {
    const [top, left, height, width] = checkBox(flat, b);
    // float32 throughout, as the official code (float boxes) and
    // torchvision compute, so that sample counts match torchvision's.
    const t = f(top), l = f(left);
    const bottom = f(t + f(height)), right = f(l + f(width));
    const corner = (v: number, scale: number) => f(f(v * scale) - 0.5);
    if (order === "yx") {
      y1[b] = corner(t, H), y2[b] = corner(bottom, H);
      x1[b] = corner(l, W), x2[b] = corner(right, W);
    } else {
      // (top, left, bottom, right) * width - 0.5 read as (x1, y1, x2, y2).
      x1[b] = corner(t, W), x2[b] = corner(bottom, W);
      y1[b] = corner(l, W), y2[b] = corner(right, W);
    }
  }
  const flips: boolean[] = new Array(B).fill(false);
  if (options.flips !== undefined) {
    if (options.flips.length !== B) {
      throw new LabelPoolingError(
        `flips should hold one flag per image (${B}), found ${options.flips.length}`,
      );
    }
    for (let b = 0; b < B; b++) flips[b] = Boolean(options.flips[b]);
  }
  if (options.labels !== undefined) {
    if (options.labels.length !== B) {
      throw new LabelPoolingError(
        `labels should hold one class per image (${B}), found ${options.labels.length}`,
      );
    }
    for (let b = 0; b < B; b++) {
      const y = options.labels[b];
      if (!(Number.isInteger(y) && y >= 0 && y < C)) {
        throw new LabelPoolingError(
          `label of image ${b} (batch index ${b}) is ${y}, but the dataset has ${C} classes (0 to ${
            C - 1
          })`,
        );
      }
    }
  }
  return { B, k, H, W, C, S, y1, y2, x1, x2, flips };
}

function flattenBoxes(
  boxes: readonly NormalizedBox[] | ArrayLike<number>,
  B: number,
): ArrayLike<number> {
  const nested = boxes.length > 0 && typeof boxes[0] !== "number";
  if (!nested) {
    if (boxes.length !== 4 * B) {
      throw new LabelPoolingError(
        `boxes should hold one (top, left, height, width) box per image: ${
          4 * B
        } numbers for ${B} images, found ${boxes.length}`,
      );
    }
    return boxes as ArrayLike<number>;
  }
  const list = boxes as readonly NormalizedBox[];
  if (list.length !== B) {
    throw new LabelPoolingError(
      `boxes should hold one (top, left, height, width) box per image (${B}), found ${list.length}`,
    );
  }
  const flat = new Float64Array(4 * B);
  list.forEach((box, b) => {
    if (box === null || typeof box !== "object" || box.length !== 4) {
      throw new LabelPoolingError(
        `box of image ${b} (batch index ${b}) should be 4 numbers (top, left, height, width), found ${
          JSON.stringify(box)
        }`,
      );
    }
    flat.set(box, 4 * b);
  });
  return flat;
}

function checkBox(flat: ArrayLike<number>, b: number): NormalizedBox {
  const box = [flat[4 * b], flat[4 * b + 1], flat[4 * b + 2], flat[4 * b + 3]];
  const [top, left, height, width] = box;
  const fail = (what: string): never => {
    throw new LabelPoolingError(
      `box of image ${b} (batch index ${b}) is (top ${top}, left ${left}, height ${height}, width ${width}): ${what}. Boxes are normalised (top/H, left/W, height/H, width/W) of the crop in the image`,
    );
  };
  if (!box.every(Number.isFinite)) fail("every value must be a finite number");
  if (top < 0 || top > 1 || left < 0 || left > 1) {
    fail("top and left must lie in [0, 1]");
  }
  if (height <= 0 || width <= 0) fail("height and width must be positive");
  if (height > 1 + BOX_SLACK || width > 1 + BOX_SLACK) {
    fail("height and width must be at most 1");
  }
  if (top + height > 1 + BOX_SLACK) {
    fail(`it ends below the image (top + height = ${top + height} > 1)`);
  }
  if (left + width > 1 + BOX_SLACK) {
    fail(`it ends right of the image (left + width = ${left + width} > 1)`);
  }
  return box as unknown as NormalizedBox;
}

// ---------------------------------------------------------------------------
// RoIAlign weights

/** Per image and output row/column: the band of map rows/columns it reads. */
interface Bands {
  /** Band length along the rows (same for every image and output row). */
  ny: number;
  nx: number;
  /** [B, s, ny] map rows times the map width, and weights (weight 0 pads). */
  rowStart: Float32Array;
  rowWeight: Float32Array;
  /** [B, s, nx] map columns, and weights. */
  colIndex: Float32Array;
  colWeight: Float32Array;
}

/**
 * One axis of torchvision's RoIAlign (aligned=False, adaptive sampling) as a
 * dense [s, length] weight matrix: output bin p averages `grid` sample
 * points at start + p * bin + (i + 0.5) * bin / grid, each linearly
 * interpolated; points outside [-1, length] contribute 0, the others are
 * clamped into [0, length - 1]. Arithmetic in float32 as torchvision's.
 */
function axisWeights(
  start: number,
  end: number,
  length: number,
  s: number,
): Float64Array {
  const f = Math.fround;
  const size = Math.max(f(end - start), 1); // malformed RoIs become 1 cell
  const bin = f(size / s);
  const grid = Math.ceil(bin); // samples per bin along this axis
  const w = new Float64Array(s * length);
  for (let p = 0; p < s; p++) {
    const binStart = f(start + f(p * bin));
    for (let i = 0; i < grid; i++) {
      let y = f(binStart + f(f(f(i + 0.5) * bin) / grid));
      if (!(y >= -1 && y <= length)) continue; // outside: contributes 0
      if (y <= 0) y = 0;
      let lo = Math.trunc(y), hi: number;
      if (lo >= length - 1) {
        lo = hi = length - 1;
        y = lo;
      } else {
        hi = lo + 1;
      }
      const ly = f(y - lo), hy = f(1 - ly);
      w[p * length + lo] += hy / grid;
      w[p * length + hi] += ly / grid;
    }
  }
  return w;
}

/** Packs dense [B][s, length] weights into bands of the longest support. */
function pack(
  dense: Float64Array[],
  s: number,
  length: number,
): { n: number; index: Int32Array; weight: Float32Array } {
  const B = dense.length;
  const first = new Int32Array(B * s);
  let n = 1;
  for (let b = 0; b < B; b++) {
    for (let p = 0; p < s; p++) {
      let lo = -1, hi = -1;
      for (let l = 0; l < length; l++) {
        if (dense[b][p * length + l] !== 0) {
          if (lo < 0) lo = l;
          hi = l;
        }
      }
      first[b * s + p] = Math.max(lo, 0);
      if (lo >= 0) n = Math.max(n, hi - lo + 1);
    }
  }
  const index = new Int32Array(B * s * n);
  const weight = new Float32Array(B * s * n);
  for (let b = 0; b < B; b++) {
    for (let p = 0; p < s; p++) {
      const lo = first[b * s + p];
      for (let t = 0; t < n; t++) {
        const l = Math.min(lo + t, length - 1);
        const o = (b * s + p) * n + t;
        index[o] = l;
        // Past the band's end (or the map's edge) the weight is 0 anyway.
        weight[o] = lo + t < length ? dense[b][p * length + l] : 0;
      }
    }
  }
  return { n, index, weight };
}

function bandWeights(plan: Plan, s: number): Bands {
  const { B, H, W } = plan;
  const rows: Float64Array[] = [], cols: Float64Array[] = [];
  for (let b = 0; b < B; b++) {
    rows.push(axisWeights(plan.y1[b], plan.y2[b], H, s));
    const c = axisWeights(plan.x1[b], plan.x2[b], W, s);
    // A flipped map: column w holds what column W-1-w held.
    if (plan.flips[b]) {
      for (let p = 0; p < s; p++) c.subarray(p * W, (p + 1) * W).reverse();
    }
    cols.push(c);
  }
  const r = pack(rows, s, H), c = pack(cols, s, W);
  return {
    ny: r.n,
    nx: c.n,
    rowStart: Float32Array.from(r.index, (row) => row * W),
    rowWeight: r.weight,
    colIndex: Float32Array.from(c.index),
    colWeight: c.weight,
  };
}

function asTensor(
  x: Float32Array | Int32Array | tf.Tensor,
  dtype: "float32" | "int32",
): tf.Tensor {
  if (x instanceof tf.Tensor) return x.dtype === dtype ? x : tf.cast(x, dtype);
  return tf.tensor1d(x, dtype);
}
