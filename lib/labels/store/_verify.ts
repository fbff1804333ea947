/**
 * Verifying a whole store at once, linearly: every block of the index
 * files against its checksum, every `keys.offsets` entry against
 * `keys.txt`, every `keys.sorted` entry (in key order, each record once,
 * its key, length, offset and hash), then every record. What
 * {@linkcode ScoreMapStore.verify} runs.
 *
 * Internal to `lib/labels/store/`.
 *
 * @module
 */

import type { ScoreMapError } from "../score_map.ts";
import { isKeyHash, keyHash } from "./_checksums.ts";
import { KEY_OFFSETS, KEY_SORTED, KEYS } from "./_format.ts";
import { compareBytes, type KeyIndex } from "./_key_index.ts";
import type { ScoreMapStoreHeader } from "./format.ts";

/** What verifying needs of an open store. */
export interface StoreToVerify {
  /** The store's header. */
  readonly header: ScoreMapStoreHeader;
  /** Its key index. */
  readonly index: KeyIndex;
  /** A message about damage, naming the store. */
  damaged(what: string): ScoreMapError;
  /**
   * Reads records `indices` with every check (checksum, values, label) and,
   * when `keys` is given, checks that record `indices[j]` holds `keys[j]`.
   */
  checkRecords(
    indices: number[],
    keys: string[] | undefined,
  ): Promise<unknown>;
}

/** Checks the whole store; throws the first {@linkcode ScoreMapError} found. */
export async function verifyStore(store: StoreToVerify): Promise<void> {
  const n = store.header.count;
  const keys = await store.index.allKeys();
  const enc = new TextEncoder();
  const bytes = keys.map((k) => enc.encode(k));
  // keys.offsets: the line starts of keys.txt.
  const off = await store.index.bytes(KEY_OFFSETS, 0, 8 * (n + 1), () => "all");
  const ov = new DataView(off.buffer, off.byteOffset, off.length);
  let pos = 0;
  for (let i = 0; i <= n; i++) {
    if (ov.getBigUint64(8 * i, true) !== BigInt(pos)) {
      throw store.damaged(
        `${KEY_OFFSETS} entry ${i} is ${
          ov.getBigUint64(8 * i, true)
        }, but line ${i} of ${KEYS} starts at byte ${pos}`,
      );
    }
    if (i < n) pos += bytes[i].length + 1;
  }
  // keys.sorted: a permutation of the records, in key order, each entry
  // describing its key.
  const { entry, prefix, at } = store.index.entryLayout();
  const sorted = await store.index.bytes(KEY_SORTED, 0, entry * n, () => "all");
  const sv = new DataView(sorted.buffer, sorted.byteOffset, sorted.length);
  const seen = new Uint8Array(n);
  let prev = -1;
  for (let e = 0; e < n; e++) {
    const p = e * entry;
    const i = sv.getUint32(p, true);
    const bad = (what: string) =>
      store.damaged(`${KEY_SORTED} entry ${e} ${what}`);
    if (i >= n || seen[i]) {
      throw bad(`points at record ${i}${i < n ? ", already listed" : ""}`);
    }
    seen[i] = 1;
    const k = bytes[i];
    if (
      sv.getUint32(p + 4, true) !== k.length ||
      sv.getBigUint64(p + 8, true) !== ov.getBigUint64(8 * i, true) ||
      compareBytes(
          sorted,
          p + at,
          Math.min(k.length, prefix),
          k,
          0,
          Math.min(k.length, prefix),
        ) !== 0
    ) {
      throw bad(`does not describe key ${i} ${JSON.stringify(keys[i])}`);
    }
    if (store.header.version !== 1 && !isKeyHash(sv, p + 16, keyHash(k))) {
      throw bad(`holds a key hash that is not that of its key`);
    }
    if (prev >= 0) {
      const a = bytes[prev];
      if (compareBytes(a, 0, a.length, k, 0, k.length) >= 0) {
        throw bad(`is not after entry ${e - 1} in key order`);
      }
    }
    prev = i;
  }
  // Every record, with its key's hash and its values.
  const chunk = 256;
  for (let from = 0; from < n; from += chunk) {
    const m = Math.min(chunk, n - from);
    const idx = Array.from({ length: m }, (_, j) => from + j);
    await store.checkRecords(
      idx,
      store.header.version === 1 ? undefined : keys.slice(from, from + m),
    );
  }
}
