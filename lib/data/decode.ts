/**
 * Decoding JPEG and PNG files to 8-bit RGB, with the pixels Pillow's
 * `Image.open(f).convert("RGB")` gives (what torchvision's and timm's
 * loaders feed a model).
 *
 * **Decoder: `npm:sharp` (libvips with libjpeg-turbo and libspng, a native
 * addon), chosen on measurement.** 50 photo-like 500 x 375 JPEGs (quality
 * 90, written by Pillow), decoded one after another in Deno 2.9.6:
 *
 * | decoder                         | ms per image | max abs difference to Pillow |
 * | ------------------------------- | -----------: | ---------------------------- |
 * | sharp 0.34.4 (`decodeImage`)    |    1.7 - 2.5 | 0 (identical bytes)          |
 * | jpeg-js 0.4.4 (pure JS)         |  10.6 - 12.3 | 43 (53% of bytes differ)     |
 * | Pillow 9.4 itself, for scale    |          2.1 | -                            |
 *
 * (one process, one image at a time, two runs; 50 at once through sharp's
 * thread pool is no faster per image on this machine).
 *
 * Pillow also decodes with libjpeg-turbo, so sharp's JPEG pixels are the same
 * bytes (same IDCT, same "fancy" chroma upsampling); jpeg-js upsamples and
 * rounds differently and is five times slower. PNG is lossless, so any
 * decoder is exact; only the conversions below matter.
 *
 * Conversions (each checked against Pillow 9.4 by `tests/decode_test.ts`):
 *
 * - grayscale (JPEG or PNG, 1-bit or 8-bit), gray + alpha: the gray value in
 *   R, G and B;
 * - palette PNG (with or without transparency): the palette colours;
 * - RGBA / LA PNG: alpha dropped, not composited (as `convert("RGB")`);
 * - 16-bit RGB PNG: the high byte of each sample (as Pillow);
 * - 16-bit grayscale PNG: the high byte. **Differs from Pillow**, which opens
 *   it as 32-bit integers and clips them to 255 in `convert("RGB")` (a white
 *   image); the high byte is the image a viewer shows;
 * - CMYK JPEG (Adobe, as Photoshop writes them; YCCK is turned into CMYK by
 *   libjpeg in both): Pillow's naive conversion, R = (255 - K) - C(255 - K)/255
 *   (rounded as Pillow does), not an ICC conversion; identical bytes to
 *   Pillow on the fixture (YCCK is untested: no YCCK file could be made here);
 * - EXIF orientation is **not** applied (neither Pillow nor torchvision do).
 *
 * Failures (an empty file, a file that is not an image, e.g. an HTML error
 * page saved under a `.jpg` name, a truncated download, corrupt data) raise an
 * {@linkcode ImageError} naming the file and saying what to do. As Pillow,
 * a truncated file fails, while libjpeg's warnings about recoverable
 * corruption (stray bytes between segments) do not.
 *
 * sharp is loaded on the first decode (it is a native addon: it needs
 * `--allow-ffi`, `--allow-env`, `--allow-read`, or `-A`).
 *
 * @module
 */

import { ImageError, type RgbImage } from "./image.ts";

/** The image file kinds {@linkcode sniffImageFormat} recognises. */
export type ImageFormat = "jpeg" | "png" | "gif" | "webp" | "tiff" | "bmp";

/**
 * The format of an image file from its first bytes, or undefined when they
 * are no image format known here (names and extensions lie: ImageNet holds a
 * PNG and CMYK JPEGs under `.JPEG` names).
 *
 * @example
 * ```ts
 * import { sniffImageFormat } from "tokenlab/data/decode.ts";
 * console.log(sniffImageFormat(new Uint8Array([0xff, 0xd8, 0xff, 0xe0]))); // jpeg
 * console.log(sniffImageFormat(new TextEncoder().encode("<html>"))); // undefined
 * ```
 */
export function sniffImageFormat(bytes: Uint8Array): ImageFormat | undefined {
  const b = bytes;
  const at = (i: number, ...v: number[]) => v.every((x, j) => b[i + j] === x);
  if (at(0, 0xff, 0xd8, 0xff)) return "jpeg";
  if (at(0, 0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a)) return "png";
  if (at(0, 0x47, 0x49, 0x46, 0x38)) return "gif";
  if (at(0, 0x52, 0x49, 0x46, 0x46) && at(8, 0x57, 0x45, 0x42, 0x50)) {
    return "webp";
  }
  if (at(0, 0x49, 0x49, 0x2a, 0x00) || at(0, 0x4d, 0x4d, 0x00, 0x2a)) {
    return "tiff";
  }
  if (at(0, 0x42, 0x4d)) return "bmp";
  return undefined;
}

/** Number of colour components in a JPEG's frame header, or undefined if not found. */
function jpegComponents(b: Uint8Array): number | undefined {
  let i = 2;
  while (i + 4 <= b.length) {
    if (b[i] !== 0xff) return undefined;
    const m = b[i + 1];
    if (m === 0xff) {
      i++; // fill byte
      continue;
    }
    if (m === 0x01 || (m >= 0xd0 && m <= 0xd7)) {
      i += 2;
      continue;
    }
    if (m === 0xda || m === 0xd9) return undefined; // scan before any frame
    const len = (b[i + 2] << 8) | b[i + 3];
    const isFrame = m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 &&
      m !== 0xcc;
    if (isFrame) return i + 9 < b.length ? b[i + 9] : undefined;
    i += 2 + len;
  }
  return undefined;
}

// deno-lint-ignore no-explicit-any
type Sharp = any;
let sharpModule: Promise<Sharp> | null = null;

function loadSharp(): Promise<Sharp> {
  sharpModule ??= import("sharp").then((m) => {
    const sharp = m.default;
    // Every file is decoded once: libvips' operation cache only holds memory.
    sharp.cache(false);
    return sharp;
  }).catch((e) => {
    sharpModule = null;
    throw new ImageError(
      `cannot load the image decoder npm:sharp (libvips, a native addon): ${
        (e as Error).message
      }; run Deno with -A (or --allow-ffi --allow-env --allow-read), on a platform sharp ships binaries for (Linux, macOS, Windows on x64/arm64)`,
    );
  });
  return sharpModule;
}

/** Pillow's CMYK -> RGB: each of R, G, B = (255 - K) - C * (255 - K) / 255, rounded as Pillow. */
function cmykToRgb(cmyk: Uint8Array, pixels: number): Uint8Array {
  const out = new Uint8Array(pixels * 3);
  for (let p = 0; p < pixels; p++) {
    const nk = 255 - cmyk[4 * p + 3];
    for (let c = 0; c < 3; c++) {
      const t = cmyk[4 * p + c] * nk + 128;
      out[3 * p + c] = nk - (((t >> 8) + t) >> 8);
    }
  }
  return out;
}

function toRgb(
  data: Uint8Array,
  channels: number,
  pixels: number,
): Uint8Array {
  if (channels === 3) return data;
  const out = new Uint8Array(pixels * 3);
  if (channels >= 3) {
    for (let p = 0; p < pixels; p++) {
      out[3 * p] = data[channels * p];
      out[3 * p + 1] = data[channels * p + 1];
      out[3 * p + 2] = data[channels * p + 2];
    }
  } else {
    for (let p = 0; p < pixels; p++) {
      const v = data[channels * p];
      out[3 * p] = out[3 * p + 1] = out[3 * p + 2] = v;
    }
  }
  return out;
}

function showStart(bytes: Uint8Array): string {
  const head = bytes.subarray(0, 16);
  const text = Array.from(
    head,
    (c) => c >= 32 && c < 127 ? String.fromCharCode(c) : ".",
  ).join("");
  const hex = Array.from(head, (c) => c.toString(16).padStart(2, "0")).join(
    " ",
  );
  return `${hex} ("${text}")`;
}

/** The most pixels {@linkcode decodeImage} decodes by default: 8192 x 8192, above the largest photos of image datasets. */
export const MAX_IMAGE_PIXELS: number = 8192 * 8192;

/** Options of {@linkcode decodeImage}. */
export interface DecodeImageOptions {
  /**
   * The most pixels (width x height) an image may declare (default
   * {@linkcode MAX_IMAGE_PIXELS}); a larger one is an {@linkcode ImageError}
   * before its pixels are allocated.
   */
  maxPixels?: number;
}

/** The width and height an image's header declares (null when it cannot be read). */
async function declaredSize(
  sharp: Sharp,
  bytes: Uint8Array,
): Promise<{ width: number; height: number } | null> {
  try {
    const m = await sharp(bytes, { limitInputPixels: false }).metadata();
    return typeof m.width === "number" && typeof m.height === "number"
      ? { width: m.width, height: m.height }
      : null;
  } catch {
    return null;
  }
}

/**
 * Decodes a JPEG or PNG file (also GIF, WebP, TIFF: the first frame) to 8-bit
 * RGB, with the pixels of Pillow's `Image.open(f).convert("RGB")` (see the
 * module doc for the conversions and the one deliberate difference). `file`
 * names the file in error messages. Throws an {@linkcode ImageError} for an
 * empty, truncated, corrupt or non-image file, and for one whose header
 * declares more than `options.maxPixels` pixels (checked before decoding).
 *
 * @example
 * ```ts
 * import { decodeImage } from "tokenlab/data/decode.ts";
 * const url = new URL("../../tests/fixtures/images/gray.png", import.meta.url);
 * const image = await decodeImage(await Deno.readFile(url), "gray.png");
 * console.log(image.width, image.height, image.data.length); // 23 17 1173
 * await decodeImage(new Uint8Array(0), "x.jpg").catch((e) => console.log(e.name)); // ImageError
 * ```
 */
export async function decodeImage(
  bytes: Uint8Array,
  file = "image",
  options: DecodeImageOptions = {},
): Promise<RgbImage> {
  const maxPixels = options.maxPixels ?? MAX_IMAGE_PIXELS;
  if (bytes.length === 0) {
    throw new ImageError(
      `${file}: the file is empty (0 bytes), expected a JPEG or PNG image; it was probably not downloaded or copied completely: copy it again, or remove it`,
      file,
    );
  }
  const format = sniffImageFormat(bytes);
  if (format === undefined || format === "bmp") {
    throw new ImageError(
      `${file}: expected a JPEG or PNG image, found ${bytes.length} bytes starting ${
        showStart(bytes)
      }${
        format === "bmp"
          ? ", a BMP file, which the decoder does not read; convert it to PNG"
          : bytes[0] === 0x3c
          ? ", which looks like an HTML/XML page saved under an image name (a failed download); download it again, or remove it"
          : ", which is no image format known here; replace or remove the file"
      }`,
      file,
    );
  }
  const sharp = await loadSharp();
  const cmyk = format === "jpeg" && jpegComponents(bytes) === 4;
  let data: Uint8Array,
    info: { width: number; height: number; channels: number };
  try {
    // failOn "truncated": fail on truncated files as Pillow does, tolerate
    // libjpeg's warnings about recoverable corruption as Pillow does.
    // limitInputPixels: the size a header declares is checked before
    // anything is allocated for it (a damaged header can declare gigabytes).
    let pipeline = sharp(bytes, {
      failOn: "truncated",
      limitInputPixels: maxPixels,
    });
    pipeline = cmyk
      ? pipeline.pipelineColourspace("cmyk").toColourspace("cmyk")
      : pipeline.removeAlpha();
    const out = await pipeline.raw().toBuffer({ resolveWithObject: true });
    data = new Uint8Array(
      out.data.buffer,
      out.data.byteOffset,
      out.data.length,
    );
    info = out.info;
  } catch (e) {
    const size = await declaredSize(sharp, bytes);
    if (size !== null && size.width * size.height > maxPixels) {
      throw new ImageError(
        `${file}: the ${format.toUpperCase()} header declares ${size.width} x ${size.height} pixels, more than the ${maxPixels} decoded at most (options.maxPixels); a damaged header, or an image too large to train on: check the file, or resize it`,
        file,
      );
    }
    const msg = (e as Error).message.replace(/\s+$/, "");
    const truncated = /premature end|truncat|unexpected end|EOF/i.test(msg);
    throw new ImageError(
      `${file}: cannot decode this ${format.toUpperCase()} file (${bytes.length} bytes): ${msg}; ${
        truncated
          ? "the file is truncated (an interrupted download or copy)"
          : "the file is corrupt"
      }: copy it again from its source, or leave it out (openImageFolder's onBadImage: "skip")`,
      file,
    );
  }
  const { width, height, channels } = info;
  const pixels = width * height;
  if (data.length !== pixels * channels) {
    throw new ImageError(
      `${file}: the decoder returned ${data.length} bytes for ${width} x ${height} x ${channels} (expected 8-bit samples); this image kind is not supported: convert it to an 8-bit RGB PNG or JPEG`,
      file,
    );
  }
  const rgb = cmyk && channels === 4
    ? cmykToRgb(data, pixels)
    : toRgb(data, channels, pixels);
  return { width, height, data: rgb };
}

/**
 * Reads and decodes an image file ({@linkcode decodeImage}); a file that
 * cannot be read also raises an {@linkcode ImageError} naming it.
 *
 * @example
 * ```ts
 * import { readImage } from "tokenlab/data/decode.ts";
 * const image = await readImage(new URL("../../tests/fixtures/images/rgb.jpg", import.meta.url));
 * console.log(image.width, image.height); // 23 17
 * ```
 */
export async function readImage(path: string | URL): Promise<RgbImage> {
  const name = path instanceof URL ? decodeURIComponent(path.pathname) : path;
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new ImageError(
      `${name}: cannot read the image file: ${
        (e as Error).message
      }; check that it exists and is readable`,
      name,
    );
  }
  return decodeImage(bytes, name);
}
