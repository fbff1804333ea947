/**
 * Geometric operations of the training augmentation on 8-bit RGB images,
 * each reproducing what Pillow 9.4 does byte for byte (checked against
 * Pillow by `tests/image_ops_test.ts` on the fixtures of
 * `tests/fixtures/make_augment_fixtures.py`): {@linkcode affineImage} is
 * Pillow's `Image.transform(size, AFFINE, matrix, resample, fillcolor)`:
 * output pixel centre (x + 0.5, y + 0.5) samples the input at `(a x' + b y' +
 * c, d x' + e y' + f)`. Nearest neighbour uses Pillow's two fast paths (a
 * pure scale/translation stepped in doubles, otherwise 16.16 fixed point);
 * bilinear and bicubic use its generic engine: a sample point outside
 * [0, W) x [0, H) gives the fill colour, inside, the taps are clamped to the
 * border, bicubic is the a = -1 cubic with values clipped to 0..255, and the
 * result is truncated (not rounded) to 8 bits. {@linkcode transformImage}
 * applies a RandAugment spatial op ({@linkcode MapOp}) with the very matrix
 * {@linkcode affineMatrix} gives the score map, so image and map move
 * together; rotations by 0, 180 (and 90 / 270 on a square image) take
 * Pillow's exact transpose shortcuts. {@linkcode flipImage} and
 * {@linkcode cropImage} are the transpose and the crop.
 *
 * The pixel and colour operations (lookup tables, enhance) are in
 * `image_colour.ts`. Every function returns a new image and leaves its input
 * as it was.
 *
 * @module
 */

import {
  type AffineMatrix,
  affineMatrix,
  type MapOp,
} from "../labels/map_transforms.ts";
import { checkRgbImage, ImageError, type RgbImage } from "./image.ts";

/** A resampling filter of the affine transforms (Pillow's names). */
export type AffineFilter = "nearest" | "bilinear" | "bicubic";

/** An RGB colour, 0..255 per channel. */
export type RgbColor = readonly [number, number, number];

/** Options of {@linkcode affineImage} and {@linkcode transformImage}. */
export interface AffineOptions {
  /** Resampling filter (default `"nearest"`, Pillow's default). */
  filter?: AffineFilter;
  /** Colour of the pixels whose source lies outside the image (default black). */
  fill?: RgbColor;
}

const FILTERS: readonly AffineFilter[] = ["nearest", "bilinear", "bicubic"];

function checkFill(fill: RgbColor): void {
  if (
    !Array.isArray(fill) || fill.length !== 3 ||
    !fill.every((v) => Number.isInteger(v) && v >= 0 && v <= 255)
  ) {
    throw new ImageError(
      `fill must be an RGB colour [r, g, b] of integers 0..255, found ${
        JSON.stringify(fill)
      }`,
    );
  }
}

function checkFilter(filter: AffineFilter): void {
  if (!FILTERS.includes(filter)) {
    throw new ImageError(
      `filter must be "nearest", "bilinear" or "bicubic", found ${
        JSON.stringify(filter)
      }`,
    );
  }
}

function filled(width: number, height: number, fill: RgbColor): Uint8Array {
  const out = new Uint8Array(width * height * 3);
  const [r, g, b] = fill;
  if (r === g && g === b) out.fill(r);
  else {
    for (let i = 0; i < out.length; i += 3) {
      out[i] = r;
      out[i + 1] = g;
      out[i + 2] = b;
    }
  }
  return out;
}

/** C's `(int)` of a coordinate as libImaging's COORD: -1 for anything negative. */
function coord(v: number): number {
  return v < 0 ? -1 : Math.trunc(v);
}

/**
 * The image under an affine transform, as Pillow's `Image.transform(size,
 * Image.AFFINE, matrix, resample, fillcolor=fill)` with `size` the image's
 * own: output pixel (x, y) samples the input at (a (x + 0.5) + b (y + 0.5) +
 * c, d (x + 0.5) + e (y + 0.5) + f).
 *
 * @param matrix Pillow's (a, b, c, d, e, f), from output to input
 * @throws {ImageError} for a malformed image, matrix, filter or fill
 *
 * @example
 * ```ts
 * import { affineImage } from "tokenlab/data/image_geometry.ts";
 * const image = { width: 3, height: 1, data: new Uint8Array([10, 10, 10, 20, 20, 20, 30, 30, 30]) };
 * // sample one pixel to the right: the content moves left, the fill enters
 * const moved = affineImage(image, [1, 0, 1, 0, 1, 0], { fill: [0, 0, 0] });
 * console.log(moved.data); // [20, 20, 20, 30, 30, 30, 0, 0, 0]
 * ```
 */
export function affineImage(
  image: RgbImage,
  matrix: AffineMatrix,
  options: AffineOptions = {},
): RgbImage {
  checkRgbImage(image, "affineImage");
  const filter = options.filter ?? "nearest";
  const fill = options.fill ?? [0, 0, 0];
  checkFilter(filter);
  checkFill(fill);
  if (matrix.length !== 6 || !matrix.every((v) => Number.isFinite(v))) {
    throw new ImageError(
      `affineImage: the matrix must be 6 finite numbers (a, b, c, d, e, f), found ${
        JSON.stringify(matrix)
      }`,
    );
  }
  const { width: W, height: H } = image;
  const out = filled(W, H, fill);
  if (filter === "nearest") nearestAffine(image, out, matrix);
  else genericAffine(image, out, matrix, filter === "bicubic");
  return { width: W, height: H, data: out };
}

/** Copies input pixel (col, row) to output pixel index `o` (both in pixels). */
function nearestAffine(
  image: RgbImage,
  out: Uint8Array,
  m: AffineMatrix,
): void {
  const { width: W, height: H, data } = image;
  const [a0, a1, a2, a3, a4, a5] = m;
  if (a1 === 0 && a3 === 0) {
    // ImagingScaleAffine: positions stepped in doubles from the first centre.
    const xin = new Int32Array(W);
    let xo = a2 + a0 * 0.5;
    for (let x = 0; x < W; x++, xo += a0) xin[x] = coord(xo);
    let yo = a5 + a4 * 0.5;
    for (let y = 0; y < H; y++, yo += a4) {
      const yi = coord(yo);
      if (yi < 0 || yi >= H) continue;
      const rowIn = yi * W, rowOut = y * W;
      for (let x = 0; x < W; x++) {
        const xi = xin[x];
        if (xi < 0 || xi >= W) continue;
        const s = (rowIn + xi) * 3, o = (rowOut + x) * 3;
        out[o] = data[s];
        out[o + 1] = data[s + 1];
        out[o + 2] = data[s + 2];
      }
    }
    return;
  }
  const fits = (x: number, y: number) =>
    Math.abs(x * a0 + y * a1 + a2) < 32768 &&
    Math.abs(x * a3 + y * a4 + a5) < 32768;
  if (fits(0, 0) && fits(W, H) && fits(0, H) && fits(W, 0)) {
    // affine_fixed: 16.16 fixed point, stepped in integers.
    const fix = (v: number) => Math.floor(v * 65536 + 0.5) | 0;
    const f0 = fix(a0), f1 = fix(a1), f3 = fix(a3), f4 = fix(a4);
    let f2 = fix(a2 + a0 * 0.5 + a1 * 0.5);
    let f5 = fix(a5 + a3 * 0.5 + a4 * 0.5);
    for (let y = 0; y < H; y++) {
      let xx = f2, yy = f5;
      let o = y * W * 3;
      for (let x = 0; x < W; x++, o += 3) {
        const xi = xx >> 16;
        if (xi >= 0 && xi < W) {
          const yi = yy >> 16;
          if (yi >= 0 && yi < H) {
            const s = (yi * W + xi) * 3;
            out[o] = data[s];
            out[o + 1] = data[s + 1];
            out[o + 2] = data[s + 2];
          }
        }
        xx = (xx + f0) | 0;
        yy = (yy + f3) | 0;
      }
      f2 = (f2 + f1) | 0;
      f5 = (f5 + f4) | 0;
    }
    return;
  }
  // Pillow's floating-point fallback (coordinates beyond +-32768).
  let xo = a2 + a1 * 0.5 + a0 * 0.5;
  let yo = a5 + a4 * 0.5 + a3 * 0.5;
  for (let y = 0; y < H; y++, xo += a1, yo += a4) {
    let xx = xo, yy = yo;
    let o = y * W * 3;
    for (let x = 0; x < W; x++, o += 3, xx += a0, yy += a3) {
      const xi = coord(xx);
      if (xi < 0 || xi >= W) continue;
      const yi = coord(yy);
      if (yi < 0 || yi >= H) continue;
      const s = (yi * W + xi) * 3;
      out[o] = data[s];
      out[o + 1] = data[s + 1];
      out[o + 2] = data[s + 2];
    }
  }
}

/** libImaging's generic transform with the bilinear or bicubic filter (RGB). */
function genericAffine(
  image: RgbImage,
  out: Uint8Array,
  m: AffineMatrix,
  cubic: boolean,
): void {
  const { width: W, height: H, data } = image;
  const [a0, a1, a2, a3, a4, a5] = m;
  const stride = W * 3;
  let o = 0;
  for (let y = 0; y < H; y++) {
    const yc = y + 0.5;
    for (let x = 0; x < W; x++, o += 3) {
      const xc = x + 0.5;
      let xin = a0 * xc + a1 * yc + a2;
      let yin = a3 * xc + a4 * yc + a5;
      if (!(xin >= 0 && xin < W && yin >= 0 && yin < H)) continue;
      xin -= 0.5;
      yin -= 0.5;
      const xf = Math.floor(xin) | 0, yf = Math.floor(yin) | 0;
      const dx = xin - xf, dy = yin - yf;
      if (!cubic) {
        if (xf >= 0 && xf + 1 < W && yf >= 0 && yf + 1 < H) {
          const p = yf * stride + xf * 3, q = p + stride;
          for (let b = 0; b < 3; b++) {
            const p0 = data[p + b], p1 = data[p + b + 3];
            const q0 = data[q + b], q1 = data[q + b + 3];
            const v1 = p0 + (p1 - p0) * dx;
            const v2 = q0 + (q1 - q0) * dx;
            out[o + b] = v1 + (v2 - v1) * dy; // truncates, as (UINT8)
          }
        } else bilinearEdge(data, W, H, xf, yf, dx, dy, out, o);
        continue;
      }
      if (xf >= 1 && xf + 2 < W && yf >= 1 && yf + 2 < H) {
        let r = (yf - 1) * stride + (xf - 1) * 3;
        for (let b = 0; b < 3; b++, r++) {
          const v1 = cubicTaps(data, r, dx);
          const v2 = cubicTaps(data, r + stride, dx);
          const v3 = cubicTaps(data, r + 2 * stride, dx);
          const v4 = cubicTaps(data, r + 3 * stride, dx);
          const v = cubic4(v1, v2, v3, v4, dy);
          out[o + b] = v <= 0 ? 0 : v >= 255 ? 255 : v;
        }
      } else bicubicEdge(data, W, H, xf, yf, dx, dy, out, o);
    }
  }
}

function clampTo(v: number, n: number): number {
  return v < 0 ? 0 : v >= n ? n - 1 : v;
}

/**
 * A filter's sample near the border, where some of its taps fall outside
 * the W x H image `data`: the source position (xf + dx, yf + dy), its
 * integer part and fraction, into the three bytes `out[o..o+2]`.
 */
type EdgeSample = (
  data: Uint8Array,
  W: number,
  H: number,
  xf: number,
  yf: number,
  dx: number,
  dy: number,
  out: Uint8Array,
  o: number,
) => void;

/** Bilinear near the border: taps clamped (libImaging's XCLIP / YCLIP), a missing lower row repeats the upper. */
const bilinearEdge: EdgeSample = (data, W, H, xf, yf, dx, dy, out, o) => {
  const stride = W * 3;
  const r0 = clampTo(yf, H) * stride;
  const c0 = clampTo(xf, W) * 3, c1 = clampTo(xf + 1, W) * 3;
  const hasR1 = yf + 1 >= 0 && yf + 1 < H;
  const r1 = (yf + 1) * stride;
  for (let b = 0; b < 3; b++) {
    const p = data[r0 + c0 + b], q = data[r0 + c1 + b];
    const v1 = p + (q - p) * dx;
    let v2 = v1;
    if (hasR1) {
      const s = data[r1 + c0 + b], t = data[r1 + c1 + b];
      v2 = s + (t - s) * dx;
    }
    out[o + b] = v1 + (v2 - v1) * dy;
  }
};

/** Bicubic near the border: columns clamped, the first row clamped, missing later rows repeat the previous one. */
const bicubicEdge: EdgeSample = (data, W, H, xf, yf, dx, dy, out, o) => {
  const stride = W * 3;
  const xs = xf - 1, ys = yf - 1;
  const c0 = clampTo(xs, W) * 3, c1 = clampTo(xs + 1, W) * 3;
  const c2 = clampTo(xs + 2, W) * 3, c3 = clampTo(xs + 3, W) * 3;
  const r0 = clampTo(ys, H) * stride;
  const inside = (y: number) => y >= 0 && y < H;
  const has1 = inside(ys + 1), has2 = inside(ys + 2), has3 = inside(ys + 3);
  // cubic4 across the four clamped columns, the row starting at byte r
  const across = (r: number) =>
    cubic4(data[r + c0], data[r + c1], data[r + c2], data[r + c3], dx);
  for (let b = 0; b < 3; b++) {
    const v1 = across(r0 + b);
    const r1 = (ys + 1) * stride + b;
    const v2 = has1 ? across(r1) : v1;
    const v3 = has2 ? across(r1 + stride) : v2;
    const v4 = has3 ? across(r1 + 2 * stride) : v3;
    const v = cubic4(v1, v2, v3, v4, dy);
    out[o + b] = v <= 0 ? 0 : v >= 255 ? 255 : v;
  }
};

/**
 * {@linkcode cubic4} of four horizontally adjacent bytes from index `s`:
 * the polynomial's coefficients are exact integers here, so they are
 * computed in integer arithmetic; the Horner steps keep libImaging's order.
 */
function cubicTaps(data: Uint8Array, s: number, d: number): number {
  const v1 = data[s], v2 = data[s + 3], v3 = data[s + 6], v4 = data[s + 9];
  const p2 = v3 - v1;
  const p3 = 2 * (v1 - v2) + v3 - v4;
  const p4 = v2 - v1 - v3 + v4;
  return v2 + d * (p2 + d * (p3 + d * p4));
}

/** libImaging's BICUBIC: the a = -1 cubic through four samples, in this operation order. */
function cubic4(
  v1: number,
  v2: number,
  v3: number,
  v4: number,
  d: number,
): number {
  const p1 = v2;
  const p2 = -v1 + v3;
  const p3 = 2 * (v1 - v2) + v3 - v4;
  const p4 = -v1 + v2 - v3 + v4;
  return p1 + d * (p2 + d * (p3 + d * p4));
}

/**
 * A RandAugment spatial op applied to the image, as timm applies it with
 * Pillow (`rotate`: `Image.rotate(degrees, resample, fillcolor=fill)`; the
 * shears and relative translations: `Image.transform` with timm's
 * matrices), through {@linkcode affineMatrix}: the same matrix that
 * `transformMap` moves the score map with.
 *
 * @throws {ImageError} for a malformed image, filter or fill
 * @throws {MapTransformError} for an unknown op or a non-finite parameter
 *
 * @example
 * ```ts
 * import { transformImage } from "tokenlab/data/image_geometry.ts";
 * const image = { width: 4, height: 4, data: new Uint8Array(48).fill(200) };
 * const out = transformImage(image, { op: "rotate", degrees: 30 }, {
 *   filter: "bicubic",
 *   fill: [124, 116, 104],
 * });
 * console.log(Array.from(out.data.subarray(0, 3))); // a corner: [124, 116, 104]
 * ```
 */
export function transformImage(
  image: RgbImage,
  op: MapOp,
  options: AffineOptions = {},
): RgbImage {
  checkRgbImage(image, `transformImage (${String(op?.op)})`);
  if (op.op === "rotate" && Number.isFinite(op.degrees)) {
    // Image.rotate's shortcuts (no centre or translation given): Python's
    // angle % 360.0, then a copy or an exact transpose.
    let angle = op.degrees % 360;
    if (angle !== 0 && angle < 0) angle += 360;
    const square = image.width === image.height;
    if (angle === 0) return copyImage(image);
    if (angle === 180) return rotate180(image);
    if (square && (angle === 90 || angle === 270)) {
      return rotateSquare(image, angle === 90);
    }
  }
  const matrix = affineMatrix(op, [image.height, image.width]);
  return affineImage(image, matrix, options);
}

function copyImage(image: RgbImage): RgbImage {
  return {
    width: image.width,
    height: image.height,
    data: new Uint8Array(image.data),
  };
}

function rotate180(image: RgbImage): RgbImage {
  const { width: W, height: H, data } = image;
  const out = new Uint8Array(data.length);
  const n = W * H;
  for (let i = 0; i < n; i++) {
    const s = (n - 1 - i) * 3, o = i * 3;
    out[o] = data[s];
    out[o + 1] = data[s + 1];
    out[o + 2] = data[s + 2];
  }
  return { width: W, height: H, data: out };
}

/** Transpose.ROTATE_90 (counter-clockwise) or ROTATE_270 of a square image. */
function rotateSquare(image: RgbImage, ccw: boolean): RgbImage {
  const { width: N, data } = image;
  const out = new Uint8Array(data.length);
  for (let y = 0; y < N; y++) {
    for (let x = 0; x < N; x++) {
      const s = ccw ? (x * N + (N - 1 - y)) * 3 : ((N - 1 - x) * N + y) * 3;
      const o = (y * N + x) * 3;
      out[o] = data[s];
      out[o + 1] = data[s + 1];
      out[o + 2] = data[s + 2];
    }
  }
  return { width: N, height: N, data: out };
}

/**
 * The image mirrored left to right (`Image.transpose(FLIP_LEFT_RIGHT)`).
 *
 * @example
 * ```ts
 * import { flipImage } from "tokenlab/data/image_geometry.ts";
 * const image = { width: 2, height: 1, data: new Uint8Array([1, 2, 3, 4, 5, 6]) };
 * console.log(flipImage(image).data); // [4, 5, 6, 1, 2, 3]
 * ```
 */
export function flipImage(image: RgbImage): RgbImage {
  checkRgbImage(image, "flipImage");
  const { width: W, height: H, data } = image;
  const out = new Uint8Array(data.length);
  for (let y = 0; y < H; y++) {
    const row = y * W;
    for (let x = 0; x < W; x++) {
      const s = (row + W - 1 - x) * 3, o = (row + x) * 3;
      out[o] = data[s];
      out[o + 1] = data[s + 1];
      out[o + 2] = data[s + 2];
    }
  }
  return { width: W, height: H, data: out };
}

/**
 * The rectangle `top, left, height, width` of the image (a copy), as
 * `Image.crop((left, top, left + width, top + height))` inside the image.
 *
 * @throws {ImageError} when the rectangle is not a non-empty region inside the image
 *
 * @example
 * ```ts
 * import { cropImage } from "tokenlab/data/image_geometry.ts";
 * const image = { width: 3, height: 1, data: new Uint8Array([1, 1, 1, 2, 2, 2, 3, 3, 3]) };
 * console.log(cropImage(image, 0, 1, 1, 2).data); // [2, 2, 2, 3, 3, 3]
 * ```
 */
export function cropImage(
  image: RgbImage,
  top: number,
  left: number,
  height: number,
  width: number,
): RgbImage {
  checkRgbImage(image, "cropImage");
  const ok = [top, left, height, width].every(Number.isInteger) && top >= 0 &&
    left >= 0 && height >= 1 && width >= 1 && top + height <= image.height &&
    left + width <= image.width;
  if (!ok) {
    throw new ImageError(
      `cropImage: the crop (top ${top}, left ${left}, height ${height}, width ${width}) must be whole pixels inside the ${image.height} x ${image.width} image`,
    );
  }
  const out = new Uint8Array(height * width * 3);
  const rowBytes = width * 3;
  for (let y = 0; y < height; y++) {
    const s = ((top + y) * image.width + left) * 3;
    out.set(image.data.subarray(s, s + rowBytes), y * rowBytes);
  }
  return { width, height, data: out };
}
