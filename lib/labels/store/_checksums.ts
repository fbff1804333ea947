/**
 * The checksums of a score-map store (format version 2): the 64-bit key
 * hash every record and sorted-index entry carries, the CRC-32 of each
 * record (seeded with its index, so a record copied to another place fails
 * too) and the CRC-32 of each fixed-size block of the index files (the
 * kit's one CRC-32, `lib/io/crc32.ts`). They detect damage (bit flips,
 * overwrites, truncation, a changed number), not deliberate forgery.
 *
 * Internal to `lib/labels/store/`.
 *
 * @module
 */

import { crc32 } from "../../io/crc32.ts";

/** Bytes per checksummed block of `keys.offsets`, `keys.sorted` and `keys.txt`. */
export const BLOCK_BYTES = 4096;

/**
 * FNV-1a, 64 bits, over the UTF-8 bytes of a key, as 16 hex digits (the
 * form a header or message shows) — computed on two 32-bit halves, so no
 * BigInt per byte.
 */
export function keyHash(bytes: Uint8Array): { hi: number; lo: number } {
  let hi = 0xcbf29ce4, lo = 0x84222325;
  for (let i = 0; i < bytes.length; i++) {
    lo = (lo ^ bytes[i]) >>> 0;
    // (hi, lo) * (2^40 + 0x1b3) mod 2^64
    const p = lo * 0x1b3; // < 2^41, exact
    const carry = Math.floor(p / 4294967296);
    hi = (Math.imul(hi, 0x1b3) + carry + (lo << 8)) >>> 0;
    lo = p >>> 0;
  }
  return { hi, lo };
}

/** Writes a key hash at `at` (little-endian uint64). */
export function setKeyHash(
  v: DataView,
  at: number,
  h: { hi: number; lo: number },
): void {
  v.setUint32(at, h.lo, true);
  v.setUint32(at + 4, h.hi, true);
}

/** Whether the uint64 at `at` is this key hash. */
export function isKeyHash(
  v: DataView,
  at: number,
  h: { hi: number; lo: number },
): boolean {
  return v.getUint32(at, true) === h.lo && v.getUint32(at + 4, true) === h.hi;
}

/** The key hash as 16 hex digits (for messages). */
export function hashHex(h: { hi: number; lo: number }): string {
  return h.hi.toString(16).padStart(8, "0") +
    h.lo.toString(16).padStart(8, "0");
}

/**
 * The checksum of record `index`: CRC-32 of the index as a little-endian
 * uint64, then of the record's bytes after its own 4-byte checksum.
 */
export function recordChecksum(record: Uint8Array, index: number): number {
  const ix = new Uint8Array(8);
  new DataView(ix.buffer).setBigUint64(0, BigInt(index), true);
  return crc32(record.subarray(4), crc32(ix));
}

/** Blocks of `BLOCK_BYTES` a file of `bytes` bytes has (the last may be short). */
export function blockCount(bytes: number): number {
  return Math.ceil(bytes / BLOCK_BYTES);
}

/** The CRC-32 of every block of `bytes`, appended to `out` from `at`; returns the next position. */
export function blockSums(
  bytes: Uint8Array,
  out: DataView,
  at: number,
): number {
  for (let from = 0; from < bytes.length; from += BLOCK_BYTES) {
    out.setUint32(
      at,
      crc32(
        bytes.subarray(from, Math.min(bytes.length, from + BLOCK_BYTES)),
      ),
      true,
    );
    at += 4;
  }
  return at;
}
