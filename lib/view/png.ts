/**
 * A small PNG encoder (8-bit RGB or RGBA, zlib through the platform's
 * `CompressionStream`), for views that embed images. Decoding real files
 * is `data/decode.ts`'s job.
 *
 * @module
 */

import { crc32 } from "../io/crc32.ts";

async function zlib(data: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([data as BlobPart]).stream().pipeThrough(
    new CompressionStream("deflate"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/**
 * Encodes 8-bit pixels (`height * width * channels` bytes, rows top to
 * bottom, channels 3 = RGB or 4 = RGBA) as a PNG file.
 *
 * @example
 * ```ts
 * import { encodePng } from "tokenlab/view/png.ts";
 * const png = await encodePng(new Uint8Array([255, 0, 0]), 1, 1);
 * console.log(png.length, png.subarray(1, 4)); // ... "PNG"
 * ```
 */
export async function encodePng(
  pixels: Uint8Array,
  width: number,
  height: number,
  channels: 3 | 4 = 3,
): Promise<Uint8Array> {
  if (pixels.length !== width * height * channels) {
    throw new RangeError(
      `encodePng: expected ${
        width * height * channels
      } bytes (${height} x ${width} x ${channels}), found ${pixels.length}`,
    );
  }
  // Filter type 0 (none) on every row.
  const row = width * channels;
  const raw = new Uint8Array((row + 1) * height);
  for (let y = 0; y < height; y++) {
    raw.set(pixels.subarray(y * row, (y + 1) * row), y * (row + 1) + 1);
  }
  const idat = await zlib(raw);
  const chunks: [string, Uint8Array][] = [];
  const ihdr = new Uint8Array(13);
  const dv = new DataView(ihdr.buffer);
  dv.setUint32(0, width);
  dv.setUint32(4, height);
  ihdr[8] = 8; // bit depth
  ihdr[9] = channels === 4 ? 6 : 2; // colour type RGBA / RGB
  chunks.push(["IHDR", ihdr], ["IDAT", idat], ["IEND", new Uint8Array(0)]);
  const total = 8 + chunks.reduce((s, [, d]) => s + 12 + d.length, 0);
  const out = new Uint8Array(total);
  out.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const ov = new DataView(out.buffer);
  let o = 8;
  for (const [type, data] of chunks) {
    ov.setUint32(o, data.length);
    for (let i = 0; i < 4; i++) out[o + 4 + i] = type.charCodeAt(i);
    out.set(data, o + 8);
    ov.setUint32(
      o + 8 + data.length,
      crc32(out.subarray(o + 4, o + 8 + data.length)),
    );
    o += 12 + data.length;
  }
  return out;
}
