/**
 * ZIP structure for the fuzzer: where an archive keeps its length, count and
 * offset fields (so mutations hit them), and a writer of stored entries with
 * valid CRCs (so a mutated `data.pkl` reaches the pickle parser instead of
 * failing the checksum).
 *
 * @module
 */

import { crc32 } from "node:zlib";
import type { FieldHint } from "./mutate.ts";

/** The length, count, offset and method fields of every ZIP record found in the bytes. */
export function zipHints(b: Uint8Array): FieldHint[] {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const hints: FieldHint[] = [];
  const add = (p: number, fields: [number, 1 | 2 | 4 | 8][]) => {
    for (const [at, width] of fields) {
      if (p + at + width <= b.length) hints.push({ offset: p + at, width });
    }
  };
  for (let p = 0; p + 4 <= b.length; p++) {
    if (b[p] !== 0x50 || b[p + 1] !== 0x4b) continue;
    const sig = v.getUint32(p, true);
    if (sig === 0x04034b50) {
      // local header: flags, method, crc, sizes, name and extra lengths
      add(p, [[6, 2], [8, 2], [14, 4], [18, 4], [22, 4], [26, 2], [28, 2]]);
    } else if (sig === 0x02014b50) {
      add(p, [
        [8, 2],
        [10, 2],
        [16, 4],
        [20, 4],
        [24, 4],
        [28, 2],
        [30, 2],
        [32, 2],
        [34, 2],
        [42, 4],
      ]);
      // a Zip64 extra field (id 1) right after the name: its 8-byte values
      if (p + 32 <= b.length) {
        const nameLen = v.getUint16(p + 28, true);
        const extraLen = v.getUint16(p + 30, true);
        const e = p + 46 + nameLen;
        if (
          extraLen >= 4 && e + 4 <= b.length && v.getUint16(e, true) === 1
        ) {
          add(e, [[2, 2], [4, 8], [12, 8], [20, 8]]);
        }
      }
    } else if (sig === 0x06054b50) {
      add(p, [[4, 2], [6, 2], [8, 2], [10, 2], [12, 4], [16, 4], [20, 2]]);
    } else if (sig === 0x06064b50) {
      add(p, [[4, 8], [24, 8], [32, 8], [40, 8], [48, 8]]);
    } else if (sig === 0x07064b50) {
      add(p, [[4, 4], [8, 8], [16, 4]]);
    }
  }
  return hints;
}

/** One entry to write. */
export interface ZipFile {
  /** Its path in the archive. */
  name: string;
  /** Its bytes (stored, not compressed). */
  data: Uint8Array;
}

/** Options of {@linkcode storedZip}. */
export interface StoredZipOptions {
  /**
   * Write Zip64 records (default false): sizes, offsets and counts in Zip64
   * extra fields and the Zip64 end records, the 32-bit fields all ones, as
   * writers do for archives over 4 GiB.
   */
  zip64?: boolean;
}

/** Writes a Zip64 extra field (id 1) of 8-byte values at `p`; returns where it ends. */
function zip64Extra(v: DataView, p: number, values: number[]): number {
  v.setUint16(p, 1, true);
  v.setUint16(p + 2, 8 * values.length, true);
  values.forEach((x, i) => v.setBigUint64(p + 4 + 8 * i, BigInt(x), true));
  return p + 4 + 8 * values.length;
}

/** A ZIP archive of stored entries with correct CRCs and sizes. */
export function storedZip(
  entries: readonly ZipFile[],
  options: StoredZipOptions = {},
): Uint8Array {
  const z64 = options.zip64 ?? false;
  const enc = new TextEncoder();
  const names = entries.map((e) => enc.encode(e.name));
  const crcs = entries.map((e) => crc32(e.data) >>> 0);
  const localExtra = z64 ? 20 : 0, centralExtra = z64 ? 28 : 0;
  let size = 22 + (z64 ? 56 + 20 : 0);
  entries.forEach((e, i) =>
    size += 30 + localExtra + 46 + centralExtra + 2 * names[i].length +
      e.data.length
  );
  const out = new Uint8Array(size);
  const v = new DataView(out.buffer);
  const ones = 0xffffffff;
  /** The fields a local and a central header share, from `at` (the local header's start). */
  const fields = (at: number, i: number, extra: number) => {
    const n = entries[i].data.length;
    v.setUint16(at + 4, z64 ? 45 : 20, true); // version needed
    v.setUint32(at + 14, crcs[i], true);
    v.setUint32(at + 18, z64 ? ones : n, true);
    v.setUint32(at + 22, z64 ? ones : n, true);
    v.setUint16(at + 26, names[i].length, true);
    v.setUint16(at + 28, extra, true);
  };
  let p = 0;
  const offsets: number[] = [];
  entries.forEach((e, i) => {
    offsets.push(p);
    v.setUint32(p, 0x04034b50, true);
    fields(p, i, localExtra);
    out.set(names[i], p + 30);
    p += 30 + names[i].length;
    if (z64) p = zip64Extra(v, p, [e.data.length, e.data.length]);
    out.set(e.data, p);
    p += e.data.length;
  });
  const cd = p;
  entries.forEach((e, i) => {
    v.setUint32(p, 0x02014b50, true);
    v.setUint16(p + 4, z64 ? 45 : 20, true); // version made by
    fields(p + 2, i, centralExtra); // the same fields, 2 bytes further on
    v.setUint32(p + 42, z64 ? ones : offsets[i], true);
    out.set(names[i], p + 46);
    p += 46 + names[i].length;
    if (z64) {
      p = zip64Extra(v, p, [e.data.length, e.data.length, offsets[i]]);
    }
  });
  const cdSize = p - cd;
  if (z64) {
    const rec = p;
    v.setUint32(p, 0x06064b50, true);
    v.setBigUint64(p + 4, 44n, true);
    v.setUint16(p + 12, 45, true);
    v.setUint16(p + 14, 45, true);
    v.setBigUint64(p + 24, BigInt(entries.length), true);
    v.setBigUint64(p + 32, BigInt(entries.length), true);
    v.setBigUint64(p + 40, BigInt(cdSize), true);
    v.setBigUint64(p + 48, BigInt(cd), true);
    p += 56;
    v.setUint32(p, 0x07064b50, true);
    v.setBigUint64(p + 8, BigInt(rec), true);
    v.setUint32(p + 16, 1, true);
    p += 20;
  }
  v.setUint32(p, 0x06054b50, true);
  v.setUint16(p + 8, z64 ? 0xffff : entries.length, true);
  v.setUint16(p + 10, z64 ? 0xffff : entries.length, true);
  v.setUint32(p + 12, z64 ? ones : cdSize, true);
  v.setUint32(p + 16, z64 ? ones : cd, true);
  return out;
}
