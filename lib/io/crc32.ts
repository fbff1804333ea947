/**
 * CRC-32 as ZIP, PNG and zlib compute it (the reflected polynomial
 * `0xEDB88320`, starting from and finished with `0xFFFFFFFF`): the one
 * checksum the kit uses for torch archives, PNG chunks and the score-map
 * store. Table-driven, eight bytes a step ("slicing by 8"), in plain
 * TypeScript so that it runs wherever the kit runs.
 *
 * @module
 */

/** The 256-entry table of each of the eight byte positions, one after the other. */
const TABLES = (() => {
  const t = new Int32Array(8 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  for (let n = 0; n < 256; n++) {
    let c = t[n];
    for (let k = 1; k < 8; k++) {
      c = t[c & 0xff] ^ (c >>> 8);
      t[k * 256 + n] = c;
    }
  }
  return t;
})();

/**
 * The CRC-32 of `bytes` (ZIP's, PNG's and zlib's), as an unsigned integer.
 * Pass the CRC-32 of the bytes before as `seed` to continue a sum:
 * `crc32(b, crc32(a))` is the CRC-32 of `a` followed by `b` (zlib's
 * `crc32(data, value)`).
 *
 * @example
 * ```ts
 * import { crc32 } from "tokenlab/io/crc32.ts";
 * const bytes = new TextEncoder().encode("123456789");
 * console.log(crc32(bytes).toString(16)); // cbf43926
 * console.log(crc32(bytes.subarray(4), crc32(bytes.subarray(0, 4))) === crc32(bytes)); // true
 * ```
 */
export function crc32(bytes: Uint8Array, seed = 0): number {
  const t = TABLES;
  let c = ~seed;
  const n = bytes.length;
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const a = c ^
      (bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) |
        (bytes[i + 3] << 24));
    c = t[1792 + (a & 0xff)] ^ t[1536 + ((a >>> 8) & 0xff)] ^
      t[1280 + ((a >>> 16) & 0xff)] ^ t[1024 + (a >>> 24)] ^
      t[768 + bytes[i + 4]] ^ t[512 + bytes[i + 5]] ^
      t[256 + bytes[i + 6]] ^ t[bytes[i + 7]];
  }
  for (; i < n; i++) c = t[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}
