/**
 * Fuzzing image decoding as the image-folder dataset does it (readImage,
 * decodeImage, checkRgbImage): the project's image fixtures (PNG of every
 * colour type, baseline, progressive and CMYK JPEG) and two PNGs written by
 * encodePng, mutated as bytes aimed at their length and size fields (PNG
 * chunk lengths, IHDR width, height, depth and colour type; JPEG segment
 * lengths and frame sizes), with the PNG chunk CRCs mostly re-sealed after
 * the mutation so that it reaches the decoder's checks past the CRC; or
 * random bytes, or the file gone, a folder or empty.
 *
 * @module
 */

import { crc32 } from "node:zlib";
import { decodeImage, readImage } from "../../../lib/data/decode.ts";
import { checkRgbImage, ImageError } from "../../../lib/data/image.ts";
import { encodePng } from "../../../lib/view/png.ts";
import {
  filesReader,
  hostileFile,
  type MakeCase,
  randomFile,
  readOrNull,
  steps,
} from "../_reader.ts";
import { type FieldHint, mutateBytes, pick } from "../mutate.ts";

const INPUT = "input.img";
const PNG_SIGNATURE = 8;

/** The start of every PNG chunk (at its length field), while they are whole. */
function pngChunks(b: Uint8Array): number[] {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out: number[] = [];
  for (let p = PNG_SIGNATURE; p + 12 <= b.length;) {
    out.push(p);
    const end = p + 12 + v.getUint32(p);
    if (end > b.length) break;
    p = end;
  }
  return out;
}

/** The fields mutations aim at: PNG chunk lengths and IHDR; JPEG segment lengths and frame sizes. */
function hints(b: Uint8Array): FieldHint[] {
  const out: FieldHint[] = [];
  if (b[0] === 0x89 && b[1] === 0x50) {
    for (const p of pngChunks(b)) out.push({ offset: p, width: 4 });
    // IHDR: width, height, bit depth, colour type, interlace
    out.push({ offset: 16, width: 4 }, { offset: 20, width: 4 });
    out.push({ offset: 24, width: 1 }, { offset: 25, width: 1 });
    out.push({ offset: 28, width: 1 });
  } else if (b[0] === 0xff && b[1] === 0xd8) {
    for (let p = 2; p + 4 <= b.length;) {
      if (b[p] !== 0xff) break;
      const m = b[p + 1];
      if (m === 0xda || m === 0xd9) break;
      out.push({ offset: p + 2, width: 2 });
      if (m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc) {
        // frame: precision, height, width, components
        out.push({ offset: p + 4, width: 1 }, { offset: p + 5, width: 2 });
        out.push({ offset: p + 7, width: 2 }, { offset: p + 9, width: 1 });
      }
      p += 2 + ((b[p + 2] << 8) | b[p + 3]);
    }
  }
  return out.filter((h) => h.offset + h.width <= b.length);
}

/** The CRC of every whole PNG chunk brought up to date (in place). */
function resealPng(b: Uint8Array): void {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  for (const p of pngChunks(b)) {
    const end = p + 8 + v.getUint32(p);
    if (end + 4 > b.length) break;
    v.setUint32(end, crc32(b.subarray(p + 4, end)) >>> 0);
  }
}

const make: MakeCase = async (rng, seeds, dir) => {
  const path = `${dir}/${INPUT}`;
  const seed = pick(rng, seeds);
  const what = [`seed ${seed.name}`];
  const r = rng.float();
  if (r < 0.9) {
    const m = mutateBytes(rng, seed.bytes, { hints: hints(seed.bytes) });
    const bytes = m.value.slice();
    what.push(...m.what);
    if (bytes[0] === 0x89 && bytes[1] === 0x50 && rng.float() < 0.8) {
      resealPng(bytes);
      what.push("(chunk CRCs re-sealed)");
    }
    await Deno.writeFile(path, bytes);
    return what;
  }
  if (r < 0.96) return await randomFile(rng, path, 600);
  return [await hostileFile(rng, path)];
};

const own = [ImageError] as const;

/** Image decoding: readImage (a file) and decodeImage (bytes), each result checked. */
export const reader = filesReader({
  own,
  async prepare(dir) {
    await Deno.mkdir(dir, { recursive: true });
    const root = new URL("../../fixtures/images/", import.meta.url);
    for await (const e of Deno.readDir(root)) {
      if (!/\.(png|jpg)$/.test(e.name)) continue;
      const bytes = await Deno.readFile(new URL(e.name, root));
      if (bytes.length > 0) await Deno.writeFile(`${dir}/${e.name}`, bytes);
    }
    const w = 40, h = 9;
    const rgba = new Uint8Array(w * h * 4).map((_, i) => (i * 37) & 255);
    await Deno.writeFile(
      `${dir}/made_rgba.png`,
      await encodePng(rgba, w, h, 4),
    );
    const rgb = new Uint8Array(w * h * 3).map((_, i) => (i * 11) & 255);
    await Deno.writeFile(`${dir}/made_rgb.png`, await encodePng(rgb, w, h, 3));
  },
  make,
  async run(dir) {
    const path = `${dir}/${INPUT}`;
    const bytes = await readOrNull(path);
    await steps(
      own,
      async () => checkRgbImage(await readImage(path), path),
      async () => {
        if (bytes !== null) checkRgbImage(await decodeImage(bytes, path), path);
      },
    );
  },
});
