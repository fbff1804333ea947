/**
 * Augmentations that move a score map with its image: the horizontal flip,
 * RandAugment's spatial ops (rotate, shear x/y, translate x/y relative) with
 * the parameters the image was transformed with, and the RandomResizedCrop
 * box (the crop touches the image only; its box goes to label pooling).
 *
 * The spatial ops follow PIL's geometry, as timm's RandAugment applies it to
 * the image: an affine map from each output pixel centre to the input point
 * it samples, nearest neighbour. On the map each cell is treated as the patch
 * of the image it covers (the map spans the whole image), so the same
 * parameters move the map as they moved the image; a map transformed with
 * the image size set to its own is exactly what PIL does to an image of the
 * map's size (PIL's own fixed-point arithmetic included, so cells whose
 * centre lands exactly on a cell edge go where PIL sends them). Cells whose
 * source falls outside the map get score 0 for every rank (after the later
 * softmax: "uniform") and take the ids of the nearest cell inside, as the
 * reference description of the method says.
 *
 * @module
 */

import type { Rng } from "../random.ts";
import type { NormalizedBox } from "./pooling.ts";
import type { ScoreMap } from "./score_map.ts";
import { TokenlabError } from "../errors.ts";

/** Thrown for bad input to a map transform: what was expected, what was found. */
export class MapTransformError extends TokenlabError {
  /** Makes an error with this message. */
  constructor(message: string) {
    super(message);
  }
}

function checkMap(map: ScoreMap, what: string): void {
  const { k, height, width } = map;
  const ok = [k, height, width].every((v) => Number.isInteger(v) && v >= 1);
  const size = k * height * width;
  if (!ok || map.scores.length !== size || map.ids.length !== size) {
    throw new MapTransformError(
      `${what}: the map should hold k x height x width scores and ids (k ${k}, ${height} x ${width}: ${
        ok ? size : "not positive integers"
      }), found ${map.scores.length} scores and ${map.ids.length} ids`,
    );
  }
}

/**
 * The map flipped horizontally (its columns reversed), as the image is by a
 * horizontal flip. A new map; the input is left as it was.
 *
 * @example
 * ```ts
 * import { flipMap } from "tokenlab/labels/map_transforms.ts";
 * const map = {
 *   k: 1, height: 1, width: 3,
 *   scores: new Float32Array([1, 2, 3]), ids: new Int32Array([7, 8, 9]),
 * };
 * console.log(flipMap(map).ids); // Int32Array [9, 8, 7]
 * ```
 */
export function flipMap(map: ScoreMap): ScoreMap {
  checkMap(map, "flipMap");
  const { k, height, width } = map;
  const scores = new Float32Array(map.scores.length);
  const ids = new Int32Array(map.ids.length);
  for (let row = 0; row < k * height; row++) {
    const o = row * width;
    for (let w = 0; w < width; w++) {
      scores[o + w] = map.scores[o + width - 1 - w];
      ids[o + w] = map.ids[o + width - 1 - w];
    }
  }
  return { k, height, width, scores, ids };
}

/**
 * A RandAugment spatial op with its drawn parameters (sign included), the
 * same plain object for the image and its map:
 *
 * - `rotate`: `degrees` counter-clockwise about the image centre, as PIL's
 *   `Image.rotate(degrees)` (timm's `rotate`);
 * - `shearX` / `shearY`: `factor`, as timm's `shear_x` / `shear_y` (PIL
 *   affine (1, factor, 0, 0, 1, 0) / (1, 0, 0, factor, 1, 0), about the
 *   top-left corner);
 * - `translateXRel` / `translateYRel`: `fraction` of the width / height, as
 *   timm's `translate_x_rel` / `translate_y_rel` (pixels = fraction x size;
 *   a positive fraction moves the content left / up).
 */
export type MapOp =
  | { op: "rotate"; degrees: number }
  | { op: "shearX"; factor: number }
  | { op: "shearY"; factor: number }
  | { op: "translateXRel"; fraction: number }
  | { op: "translateYRel"; fraction: number };

/** PIL's affine coefficients (a, b, c, d, e, f): output (x, y) samples input (a x + b y + c, d x + e y + f). */
export type AffineMatrix = readonly [
  number,
  number,
  number,
  number,
  number,
  number,
];

function opValue(op: MapOp): number {
  switch (op.op) {
    case "rotate":
      return op.degrees;
    case "shearX":
    case "shearY":
      return op.factor;
    case "translateXRel":
    case "translateYRel":
      return op.fraction;
    default: {
      const name = (op as { op?: unknown }).op;
      throw new MapTransformError(
        `unknown map op ${
          JSON.stringify(name)
        }: expected "rotate", "shearX", "shearY", "translateXRel" or "translateYRel"`,
      );
    }
  }
}

/** Python's `round(x, 15)`, as PIL rounds the rotation's cosine and sine. */
function round15(x: number): number {
  return Number(x.toFixed(15));
}

/**
 * The affine matrix PIL uses for `op` on an image of `imageSize` ([height,
 * width] in pixels; coordinates are pixel edges, so pixel (x, y) has its
 * centre at (x + 0.5, y + 0.5)): the inverse map, from output to input.
 * Exposed so that an image pipeline can transform the image with exactly
 * the matrix the map is transformed with.
 *
 * @throws {MapTransformError} for an unknown op, a non-finite parameter or a
 *   bad size
 *
 * @example
 * ```ts
 * import { affineMatrix } from "tokenlab/labels/map_transforms.ts";
 * // translate by 10 % of a 200-pixel-wide image: sample 20 pixels to the right
 * console.log(affineMatrix({ op: "translateXRel", fraction: 0.1 }, [100, 200]));
 * // [1, 0, 20, 0, 1, 0]
 * ```
 */
export function affineMatrix(
  op: MapOp,
  imageSize: readonly [number, number],
): AffineMatrix {
  const value = opValue(op);
  if (!Number.isFinite(value)) {
    throw new MapTransformError(
      `map op ${op.op} needs a finite parameter, found ${value}`,
    );
  }
  const [h, w] = imageSize;
  if (!(h > 0 && w > 0)) {
    throw new MapTransformError(
      `imageSize must be [height, width] with both positive, found [${imageSize}]`,
    );
  }
  switch (op.op) {
    case "rotate": {
      // PIL's Image.rotate (expand off, centre (w/2, h/2), no translation).
      // Python's `angle % 360.0`, then `-math.radians(angle)`.
      const angle = -((((op.degrees % 360) + 360) % 360) * (Math.PI / 180));
      const cos = round15(Math.cos(angle)), sin = round15(Math.sin(angle));
      const cx = w / 2, cy = h / 2;
      return [
        cos,
        sin,
        cos * -cx + sin * -cy + cx,
        -sin,
        cos,
        -sin * -cx + cos * -cy + cy,
      ];
    }
    case "shearX":
      return [1, op.factor, 0, 0, 1, 0];
    case "shearY":
      return [1, 0, 0, op.factor, 1, 0];
    case "translateXRel":
      return [1, 0, op.fraction * w, 0, 1, 0];
    case "translateYRel":
      return [1, 0, 0, 0, 1, op.fraction * h];
  }
}

/** Options of {@linkcode transformMap}. */
export interface TransformMapOptions {
  /**
   * [height, width] of the image the op was applied to, in pixels (default:
   * the map's own [height, width]). Only its aspect relative to the map's
   * matters (rotation and shear are isotropic in image pixels, not in map
   * cells, when the two differ); the translation is a fraction either way.
   */
  imageSize?: readonly [number, number];
}

/**
 * Applies a RandAugment spatial op to a score map, with the parameters the
 * image was transformed with: every cell takes the cell its centre maps to
 * under PIL's affine matrix for the op (nearest neighbour, with PIL's
 * arithmetic). Cells whose source falls outside the map get score 0 at every
 * rank and the ids of the nearest cell inside (the source clamped into the
 * map, row and column). A new map; the input is left as it was.
 *
 * @throws {MapTransformError} for a malformed map or op
 *
 * @example
 * ```ts
 * import { transformMap } from "tokenlab/labels/map_transforms.ts";
 * const map = {
 *   k: 1, height: 1, width: 4,
 *   scores: new Float32Array([1, 2, 3, 4]), ids: new Int32Array([10, 11, 12, 13]),
 * };
 * const moved = transformMap(map, { op: "translateXRel", fraction: 0.25 });
 * console.log(moved.scores, moved.ids); // [2, 3, 4, 0] [11, 12, 13, 13]
 * ```
 */
export function transformMap(
  map: ScoreMap,
  op: MapOp,
  options: TransformMapOptions = {},
): ScoreMap {
  checkMap(map, `transformMap (${String(op?.op)})`);
  const { k, height: H, width: W } = map;
  const imageSize = options.imageSize ?? [H, W];
  const [a, b, c, d, e, f] = affineMatrix(op, imageSize);
  // The same map in map cells: x_image = x_cell * sx, y_image = y_cell * sy.
  const sy = imageSize[0] / H, sx = imageSize[1] / W;
  const source = nearestSources(
    [a, (b * sy) / sx, c / sx, (d * sx) / sy, e, f / sy],
    H,
    W,
  );
  const plane = H * W;
  const scores = new Float32Array(map.scores.length);
  const ids = new Int32Array(map.ids.length);
  for (let to = 0; to < plane; to++) {
    const col = source[2 * to], row = source[2 * to + 1];
    const inside = col >= 0 && col < W && row >= 0 && row < H;
    const from = Math.min(Math.max(row, 0), H - 1) * W +
      Math.min(Math.max(col, 0), W - 1);
    for (let rank = 0; rank < k; rank++) {
      scores[rank * plane + to] = inside ? map.scores[rank * plane + from] : 0;
      ids[rank * plane + to] = map.ids[rank * plane + from];
    }
  }
  return { k, height: H, width: W, scores, ids };
}

/**
 * For every output pixel of an h x w image, the (column, row) of the input
 * pixel PIL's nearest-neighbour affine transform takes (possibly outside
 * the image), with PIL's own arithmetic so that boundary cases agree: the
 * pixel centre (x + 0.5, y + 0.5) maps to (m0 x + m1 y + m2, m3 x + m4 y +
 * m5); pure scalings and translations are stepped in floating point, other
 * matrices in 16.16 fixed point (libImaging's ImagingScaleAffine and
 * affine_fixed).
 */
function nearestSources(m: AffineMatrix, h: number, w: number): Int32Array {
  const out = new Int32Array(2 * h * w);
  const coord = (v: number) => (v < 0 ? -1 : Math.trunc(v));
  const [m0, m1, m2, m3, m4, m5] = m;
  if (m1 === 0 && m3 === 0) {
    let yo = m5 + m4 * 0.5;
    for (let y = 0; y < h; y++, yo += m4) {
      let xo = m2 + m0 * 0.5;
      for (let x = 0; x < w; x++, xo += m0) {
        out[2 * (y * w + x)] = coord(xo);
        out[2 * (y * w + x) + 1] = coord(yo);
      }
    }
    return out;
  }
  const fits = (x: number, y: number) =>
    Math.abs(x * m0 + y * m1 + m2) < 32768 &&
    Math.abs(x * m3 + y * m4 + m5) < 32768;
  if (fits(0, 0) && fits(w, h) && fits(0, h) && fits(w, 0)) {
    const fix = (v: number) => Math.floor(v * 65536 + 0.5);
    const a0 = fix(m0), a1 = fix(m1), a3 = fix(m3), a4 = fix(m4);
    const a2 = fix(m2 + m0 * 0.5 + m1 * 0.5);
    const a5 = fix(m5 + m3 * 0.5 + m4 * 0.5);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        out[2 * (y * w + x)] = Math.floor((a2 + y * a1 + x * a0) / 65536);
        out[2 * (y * w + x) + 1] = Math.floor((a5 + y * a4 + x * a3) / 65536);
      }
    }
    return out;
  }
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const xc = x + 0.5, yc = y + 0.5;
      out[2 * (y * w + x)] = coord(m0 * xc + m1 * yc + m2);
      out[2 * (y * w + x) + 1] = coord(m3 * xc + m4 * yc + m5);
    }
  }
  return out;
}

/** Options of {@linkcode sampleCropBox}. */
export interface CropBoxOptions {
  /** Range of the crop's area as a fraction of the image's (default [0.08, 1]). */
  scale?: readonly [number, number];
  /** Range of the crop's aspect ratio width / height, drawn log-uniformly (default [3/4, 4/3]). */
  ratio?: readonly [number, number];
}

/** A crop box in pixels of the image, and normalised for label pooling. */
export interface CropBox {
  /** First row of the crop. */
  top: number;
  /** First column of the crop. */
  left: number;
  /** Rows of the crop. */
  height: number;
  /** Columns of the crop. */
  width: number;
  /** (top / H, left / W, height / H, width / W), what {@linkcode poolLabels} takes. */
  normalized: NormalizedBox;
}

/** Python's `round`: to the nearest integer, halves to the even one. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Draws a RandomResizedCrop box as torchvision's
 * `RandomResizedCrop.get_params`: up to 10 attempts of an area fraction
 * uniform in `scale` and an aspect ratio log-uniform in `ratio`, sides
 * rounded (halves to even, as Python), kept if they fit, at a uniform
 * position; otherwise the central crop of the largest box whose ratio lies
 * in `ratio` (the whole image when its own ratio does). Every draw comes from
 * `rng`, so the same seed gives the same boxes.
 *
 * @param imageSize [height, width] of the image in pixels
 * @param rng the seeded generator to draw from
 * @throws {MapTransformError} for a bad size, scale or ratio
 *
 * @example
 * ```ts
 * import { Rng } from "tokenlab";
 * import { sampleCropBox } from "tokenlab/labels/map_transforms.ts";
 * const box = sampleCropBox([375, 500], new Rng(0));
 * console.log(box.top, box.left, box.height, box.width, box.normalized);
 * ```
 */
export function sampleCropBox(
  imageSize: readonly [number, number],
  rng: Rng,
  options: CropBoxOptions = {},
): CropBox {
  const [H, W] = imageSize;
  if (!(Number.isInteger(H) && Number.isInteger(W) && H >= 1 && W >= 1)) {
    throw new MapTransformError(
      `imageSize must be [height, width] in whole pixels, both at least 1; found [${imageSize}]`,
    );
  }
  const [s0, s1] = options.scale ?? [0.08, 1];
  const [r0, r1] = options.ratio ?? [3 / 4, 4 / 3];
  if (!(s0 > 0 && s0 <= s1)) {
    throw new MapTransformError(
      `scale must be [min, max] with 0 < min <= max (area fractions), found [${s0}, ${s1}]; the default is [0.08, 1]`,
    );
  }
  if (!(r0 > 0 && r0 <= r1 && Number.isFinite(r1))) {
    throw new MapTransformError(
      `ratio must be [min, max] with 0 < min <= max (width / height), found [${r0}, ${r1}]; the default is [3/4, 4/3]`,
    );
  }
  const box = (top: number, left: number, h: number, w: number): CropBox => ({
    top,
    left,
    height: h,
    width: w,
    normalized: [top / H, left / W, h / H, w / W],
  });
  const area = H * W;
  const lo = Math.log(r0), hi = Math.log(r1);
  for (let attempt = 0; attempt < 10; attempt++) {
    const target = area * (s0 + (s1 - s0) * rng.float());
    const aspect = Math.exp(lo + (hi - lo) * rng.float());
    const w = roundHalfEven(Math.sqrt(target * aspect));
    const h = roundHalfEven(Math.sqrt(target / aspect));
    if (w > 0 && w <= W && h > 0 && h <= H) {
      const top = rng.int(H - h + 1);
      const left = rng.int(W - w + 1);
      return box(top, left, h, w);
    }
  }
  // Fallback: the central crop.
  const own = W / H;
  let w = W, h = H;
  if (own < r0) h = roundHalfEven(w / r0);
  else if (own > r1) w = roundHalfEven(h * r1);
  return box(Math.floor((H - h) / 2), Math.floor((W - w) / 2), h, w);
}
