/**
 * Pixel and colour operations of the training augmentation on 8-bit RGB
 * images, each reproducing what Pillow 9.4 does byte for byte (checked
 * against Pillow by `tests/image_ops_test.ts` on the fixtures of
 * `tests/fixtures/make_augment_fixtures.py`):
 *
 * - **Tables.** autocontrast, equalize, invert, posterize, solarize and
 *   solarize-add are per-channel lookup tables computed as `ImageOps` (and
 *   timm's `solarize_add`) do, values clipped to 0..255 as `Image.point` does.
 * - **Enhance.** Color, Contrast, Brightness and Sharpness blend a degenerate
 *   image with the image as `Image.blend` does: in float32 (the factor is a C
 *   `float`), truncated, and clipped to 0..255 when the factor lies outside
 *   [0, 1]. The degenerate images: the ITU-R 601 grey (`(R 19595 + G 38470 +
 *   B 7471 + 32768) >> 16`), the grey mean (rounded) as a flat image, black,
 *   and the SMOOTH filter (3 x 3 kernel 1 1 1 / 1 5 1 / 1 1 1 over 13, in
 *   float32, border pixels kept).
 *
 * The geometric operations (affine transforms, flip, crop) are in
 * `image_geometry.ts`. Every function returns a new image and leaves its
 * input as it was.
 *
 * @module
 */

import { checkRgbImage, ImageError, type RgbImage } from "./image.ts";

// ---------------------------------------------------------------- tables

/** Per-channel histograms: 768 counts (R, then G, then B), as `Image.histogram()`. */
function histogram(image: RgbImage): Int32Array {
  const h = new Int32Array(768);
  const d = image.data;
  for (let i = 0; i < d.length; i += 3) {
    h[d[i]]++;
    h[256 + d[i + 1]]++;
    h[512 + d[i + 2]]++;
  }
  return h;
}

/**
 * The image through per-channel lookup tables, as `Image.point(lut)`:
 * `lut` holds 256 values (the same table for every channel) or 768 (R, G,
 * B tables in turn); values are clipped to 0..255 (Pillow's CLIP8).
 *
 * @throws {ImageError} for a table of another length
 *
 * @example
 * ```ts
 * import { applyLut } from "tokenlab/data/image_colour.ts";
 * const image = { width: 1, height: 1, data: new Uint8Array([0, 100, 255]) };
 * const lut = Array.from({ length: 256 }, (_, i) => i + 10);
 * console.log(applyLut(image, lut).data); // [10, 110, 255]
 * ```
 */
export function applyLut(image: RgbImage, lut: ArrayLike<number>): RgbImage {
  checkRgbImage(image, "applyLut");
  if (lut.length !== 256 && lut.length !== 768) {
    throw new ImageError(
      `applyLut: a lookup table holds 256 values (all channels) or 768 (R, G, B), found ${lut.length}`,
    );
  }
  const table = new Uint8Array(768);
  for (let i = 0; i < 768; i++) {
    const v = Math.trunc(lut[lut.length === 256 ? i & 255 : i]);
    table[i] = v <= 0 ? 0 : v >= 255 ? 255 : v;
  }
  const d = image.data, out = new Uint8Array(d.length);
  for (let i = 0; i < d.length; i += 3) {
    out[i] = table[d[i]];
    out[i + 1] = table[256 + d[i + 1]];
    out[i + 2] = table[512 + d[i + 2]];
  }
  return { width: image.width, height: image.height, data: out };
}

/**
 * Stretches each channel to the full range, as `ImageOps.autocontrast(image)`
 * (no cutoff): the darkest value present goes to 0, the brightest to 255
 * (`int(v * scale + offset)`); a channel holding one value is left as is.
 *
 * @example
 * ```ts
 * import { autocontrast } from "tokenlab/data/image_colour.ts";
 * const image = { width: 2, height: 1, data: new Uint8Array([50, 50, 50, 150, 150, 150]) };
 * console.log(autocontrast(image).data); // [0, 0, 0, 255, 255, 255]
 * ```
 */
export function autocontrast(image: RgbImage): RgbImage {
  checkRgbImage(image, "autocontrast");
  const h = histogram(image);
  const lut = new Int32Array(768);
  for (let c = 0; c < 3; c++) {
    const base = c * 256;
    let lo = 0, hi = 255;
    while (lo < 255 && h[base + lo] === 0) lo++;
    while (hi > 0 && h[base + hi] === 0) hi--;
    for (let i = 0; i < 256; i++) {
      if (hi <= lo) lut[base + i] = i;
      else {
        const scale = 255 / (hi - lo);
        const offset = -lo * scale;
        const v = Math.trunc(i * scale + offset);
        lut[base + i] = v < 0 ? 0 : v > 255 ? 255 : v;
      }
    }
  }
  return applyLut(image, lut);
}

/**
 * Equalises each channel's histogram, as `ImageOps.equalize(image)`:
 * `step = (count - count of the last present value) // 255`, value i maps to
 * `(step // 2 + count below i) // step`; a channel with one value (or a
 * zero step) is left as is.
 *
 * @example
 * ```ts
 * import { equalize } from "tokenlab/data/image_colour.ts";
 * // 300 pixels of 10 and 300 of 20: the two values spread to the ends
 * const data = new Uint8Array(600 * 3).map((_, i) => (i < 900 ? 10 : 20));
 * const out = equalize({ width: 600, height: 1, data });
 * console.log(out.data[0], out.data[1799]); // 0 255
 * ```
 */
export function equalize(image: RgbImage): RgbImage {
  checkRgbImage(image, "equalize");
  const h = histogram(image);
  const lut = new Int32Array(768);
  for (let c = 0; c < 3; c++) {
    const base = c * 256;
    let total = 0, last = 0, present = 0;
    for (let i = 0; i < 256; i++) {
      const n = h[base + i];
      if (n > 0) {
        total += n;
        last = n;
        present++;
      }
    }
    const step = present <= 1 ? 0 : Math.floor((total - last) / 255);
    if (step === 0) {
      for (let i = 0; i < 256; i++) lut[base + i] = i;
      continue;
    }
    let n = Math.floor(step / 2);
    for (let i = 0; i < 256; i++) {
      lut[base + i] = Math.floor(n / step);
      n += h[base + i];
    }
  }
  return applyLut(image, lut);
}

/**
 * The negative image (`ImageOps.invert`: 255 - v).
 *
 * @example
 * ```ts
 * import { invert } from "tokenlab/data/image_colour.ts";
 * console.log(invert({ width: 1, height: 1, data: new Uint8Array([0, 55, 255]) }).data); // [255, 200, 0]
 * ```
 */
export function invert(image: RgbImage): RgbImage {
  return applyLut(image, Array.from({ length: 256 }, (_, i) => 255 - i));
}

/**
 * Keeps the `bits` most significant bits of every value
 * (`ImageOps.posterize`; 0 bits gives black, 8 the image itself).
 *
 * @throws {ImageError} unless `bits` is an integer 0..8
 *
 * @example
 * ```ts
 * import { posterize } from "tokenlab/data/image_colour.ts";
 * console.log(posterize({ width: 1, height: 1, data: new Uint8Array([255, 100, 7]) }, 2).data); // [192, 64, 0]
 * ```
 */
export function posterize(image: RgbImage, bits: number): RgbImage {
  if (!(Number.isInteger(bits) && bits >= 0 && bits <= 8)) {
    throw new ImageError(
      `posterize keeps 0..8 bits, found ${bits}`,
    );
  }
  const mask = ~((1 << (8 - bits)) - 1);
  return applyLut(image, Array.from({ length: 256 }, (_, i) => i & mask));
}

/**
 * Inverts every value at or above `threshold` (`ImageOps.solarize`: v <
 * threshold stays, otherwise 255 - v; 256 leaves the image as is).
 *
 * @example
 * ```ts
 * import { solarize } from "tokenlab/data/image_colour.ts";
 * console.log(solarize({ width: 1, height: 1, data: new Uint8Array([10, 128, 250]) }, 128).data); // [10, 127, 5]
 * ```
 */
export function solarize(image: RgbImage, threshold: number): RgbImage {
  if (!Number.isFinite(threshold)) {
    throw new ImageError(
      `solarize needs a finite threshold, found ${threshold}`,
    );
  }
  return applyLut(
    image,
    Array.from({ length: 256 }, (_, i) => (i < threshold ? i : 255 - i)),
  );
}

/**
 * Adds `add` to every value below `threshold` (default 128), clipped at 255,
 * as timm's `solarize_add`.
 *
 * @example
 * ```ts
 * import { solarizeAdd } from "tokenlab/data/image_colour.ts";
 * console.log(solarizeAdd({ width: 1, height: 1, data: new Uint8Array([10, 120, 200]) }, 99).data); // [109, 219, 200]
 * ```
 */
export function solarizeAdd(
  image: RgbImage,
  add: number,
  threshold = 128,
): RgbImage {
  if (!Number.isFinite(add) || !Number.isFinite(threshold)) {
    throw new ImageError(
      `solarizeAdd needs a finite amount and threshold, found ${add} and ${threshold}`,
    );
  }
  return applyLut(
    image,
    Array.from(
      { length: 256 },
      (_, i) => (i < threshold ? Math.min(255, i + add) : i),
    ),
  );
}

// --------------------------------------------------------------- enhance

/**
 * `Image.blend(degenerate, image, factor)`: `degenerate + factor * (image -
 * degenerate)` in float32, truncated; clipped to 0..255 when the factor lies
 * outside [0, 1]. Arrays of equal length.
 */
function blend(
  degenerate: Uint8Array,
  image: Uint8Array,
  factor: number,
): Uint8Array {
  const alpha = Math.fround(factor);
  const n = image.length, out = new Uint8Array(n);
  if (alpha >= 0 && alpha <= 1) {
    for (let i = 0; i < n; i++) {
      const a = degenerate[i];
      out[i] = Math.fround(a + Math.fround(alpha * (image[i] - a)));
    }
  } else {
    for (let i = 0; i < n; i++) {
      const a = degenerate[i];
      const t = Math.fround(a + Math.fround(alpha * (image[i] - a)));
      out[i] = t <= 0 ? 0 : t >= 255 ? 255 : t;
    }
  }
  return out;
}

function checkFactor(factor: number, what: string): void {
  if (!Number.isFinite(factor)) {
    throw new ImageError(`${what} needs a finite factor, found ${factor}`);
  }
}

/** Pillow's RGB to L conversion (ITU-R 601-2 luma, fixed point, rounded). */
function luma(r: number, g: number, b: number): number {
  return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
}

/**
 * `ImageEnhance.Color(image).enhance(factor)`: blends the grey image
 * (factor 0) with the image (factor 1); beyond 1 it saturates.
 *
 * @example
 * ```ts
 * import { enhanceColor } from "tokenlab/data/image_colour.ts";
 * const image = { width: 1, height: 1, data: new Uint8Array([200, 100, 0]) };
 * console.log(enhanceColor(image, 0).data); // the grey: [118, 118, 118]
 * ```
 */
export function enhanceColor(image: RgbImage, factor: number): RgbImage {
  checkRgbImage(image, "enhanceColor");
  checkFactor(factor, "enhanceColor");
  const d = image.data, grey = new Uint8Array(d.length);
  for (let i = 0; i < d.length; i += 3) {
    const l = luma(d[i], d[i + 1], d[i + 2]);
    grey[i] = grey[i + 1] = grey[i + 2] = l;
  }
  return {
    width: image.width,
    height: image.height,
    data: blend(grey, d, factor),
  };
}

/**
 * `ImageEnhance.Contrast(image).enhance(factor)`: blends a flat grey image
 * (the grey mean, rounded) with the image.
 *
 * @example
 * ```ts
 * import { enhanceContrast } from "tokenlab/data/image_colour.ts";
 * const image = { width: 2, height: 1, data: new Uint8Array([0, 0, 0, 200, 200, 200]) };
 * console.log(enhanceContrast(image, 0.5).data); // [50, 50, 50, 150, 150, 150]
 * ```
 */
export function enhanceContrast(image: RgbImage, factor: number): RgbImage {
  checkRgbImage(image, "enhanceContrast");
  checkFactor(factor, "enhanceContrast");
  const d = image.data;
  const h = new Float64Array(256);
  for (let i = 0; i < d.length; i += 3) h[luma(d[i], d[i + 1], d[i + 2])]++;
  let sum = 0;
  for (let i = 0; i < 256; i++) sum += i * h[i];
  const mean = Math.floor(sum / (image.width * image.height) + 0.5);
  const flat = new Uint8Array(d.length).fill(mean);
  return {
    width: image.width,
    height: image.height,
    data: blend(flat, d, factor),
  };
}

/**
 * `ImageEnhance.Brightness(image).enhance(factor)`: blends black with the
 * image.
 *
 * @example
 * ```ts
 * import { enhanceBrightness } from "tokenlab/data/image_colour.ts";
 * const image = { width: 1, height: 1, data: new Uint8Array([100, 150, 200]) };
 * console.log(enhanceBrightness(image, 1.5).data); // [150, 225, 255]
 * ```
 */
export function enhanceBrightness(image: RgbImage, factor: number): RgbImage {
  checkRgbImage(image, "enhanceBrightness");
  checkFactor(factor, "enhanceBrightness");
  const d = image.data;
  return {
    width: image.width,
    height: image.height,
    data: blend(new Uint8Array(d.length), d, factor),
  };
}

/**
 * Pillow's `ImageFilter.SMOOTH` (3 x 3 kernel 1 1 1 / 1 5 1 / 1 1 1, over
 * 13) in float32, the border rows and columns copied; an image smaller than
 * 3 x 3 is returned as is.
 */
function smooth(image: RgbImage): Uint8Array {
  const { width: W, height: H, data } = image;
  const out = new Uint8Array(data);
  if (W < 3 || H < 3) return out;
  const k1 = Math.fround(1 / 13), k5 = Math.fround(5 / 13);
  // The float32 products of every byte with the two kernel values.
  const p1 = new Float32Array(256), p5 = new Float32Array(256);
  for (let v = 0; v < 256; v++) {
    p1[v] = v * k1;
    p5[v] = v * k5;
  }
  const stride = W * 3;
  // ones[r]: per row, the float32 sum of the three k1 products around each
  // pixel (left + centre, then + right), the contribution of that row to
  // the rows above and below it.
  const ones = new Float32Array(H * stride);
  for (let y = 0; y < H; y++) {
    const row = y * stride;
    for (let c = row + 3; c < row + stride - 3; c++) {
      ones[c] = Math.fround(p1[data[c - 3]] + p1[data[c]]) + p1[data[c + 3]];
    }
  }
  for (let y = 1; y < H - 1; y++) {
    const row = y * stride;
    for (let c = row + 3; c < row + stride - 3; c++) {
      const centre = Math.fround(
        Math.fround(p1[data[c - 3]] + p5[data[c]]) + p1[data[c + 3]],
      );
      // Pillow's order: the row below, the centre row, the row above.
      const s = Math.fround(
        Math.fround(ones[c + stride] + centre) + ones[c - stride],
      );
      out[c] = s <= 0 ? 0 : s >= 255 ? 255 : s + 0.5;
    }
  }
  return out;
}

/**
 * `ImageEnhance.Sharpness(image).enhance(factor)`: blends the SMOOTH-filtered
 * image (factor 0, blurred) with the image (1); beyond 1 it sharpens. The
 * border pixels keep their values at every factor.
 *
 * @example
 * ```ts
 * import { enhanceSharpness } from "tokenlab/data/image_colour.ts";
 * const data = new Uint8Array(27).fill(0);
 * data.fill(255, 12, 15); // a bright centre pixel of a 3 x 3 image
 * console.log(enhanceSharpness({ width: 3, height: 3, data }, 0).data[12]); // blurred: 98
 * ```
 */
export function enhanceSharpness(image: RgbImage, factor: number): RgbImage {
  checkRgbImage(image, "enhanceSharpness");
  checkFactor(factor, "enhanceSharpness");
  return {
    width: image.width,
    height: image.height,
    data: blend(smooth(image), image.data, factor),
  };
}
