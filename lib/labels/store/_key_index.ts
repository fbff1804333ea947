/**
 * The key index of a store: `keys.txt` (the keys in record order),
 * `keys.offsets` (where each line starts), `keys.sorted` (entries in key
 * order, for a binary search on disk) and `keys.sums` (the CRC-32 of every
 * block of the three). Built once when a store is committed
 * ({@linkcode writeKeyIndex}), and read by an open store through
 * {@linkcode KeyIndex}: a key's record by binary search, a record's key,
 * all keys. The rules a key obeys ({@linkcode checkKey}) live here too.
 *
 * Internal to `lib/labels/store/`.
 *
 * @module
 */

import { writeFileAtomic } from "../../io/atomic_write.ts";
import { crc32 } from "../../io/crc32.ts";
import { ScoreMapError } from "../score_map.ts";
import {
  BLOCK_BYTES,
  blockCount,
  blockSums,
  isKeyHash,
  keyHash,
  setKeyHash,
} from "./_checksums.ts";
import {
  damaged,
  ENTRIES_PER_BLOCK,
  ENTRY,
  ENTRY_V1,
  KEY_OFFSETS,
  KEY_SORTED,
  KEY_SUMS,
  KEYS,
  MAX_KEY_BYTES,
  PREFIX,
  PREFIX_V1,
  REBUILD,
} from "./_format.ts";
import type { ScoreMapStoreHeader } from "./format.ts";

/** The UTF-8 bytes of an image key, after checking it can be one (non-empty, one line, at most 4096 bytes, well-formed). */
export function checkKey(key: unknown, what: string): Uint8Array {
  if (typeof key !== "string" || key === "") {
    throw new ScoreMapError(
      `${what}: expected the image key to be a non-empty string (e.g. "n01440764/img_12"), found ${
        JSON.stringify(key) ?? String(key)
      }`,
    );
  }
  if (/[\n\r\0]/.test(key)) {
    throw new ScoreMapError(
      `${what}: image key ${
        JSON.stringify(key)
      } contains a line break or NUL; keys are stored one per line, remove those characters`,
    );
  }
  const bytes = new TextEncoder().encode(key);
  if (bytes.length > MAX_KEY_BYTES) {
    throw new ScoreMapError(
      `${what}: image key of ${bytes.length} bytes is longer than the ${MAX_KEY_BYTES} allowed; use shorter keys (relative paths)`,
    );
  }
  if (key.isWellFormed && !key.isWellFormed()) {
    throw new ScoreMapError(
      `${what}: image key ${
        JSON.stringify(key)
      } holds a lone surrogate and has no UTF-8 form; fix the key`,
    );
  }
  return bytes;
}

/** Compares byte ranges as unsigned bytes (the order of `keys.sorted`): negative, 0 or positive. */
export function compareBytes(
  a: Uint8Array,
  aFrom: number,
  aLen: number,
  b: Uint8Array,
  bFrom: number,
  bLen: number,
): number {
  const n = Math.min(aLen, bLen);
  for (let i = 0; i < n; i++) {
    const d = a[aFrom + i] - b[bFrom + i];
    if (d !== 0) return d;
  }
  return aLen - bLen;
}

/** Index files of a store whose sizes are known after opening. */
export type IndexFile =
  | typeof KEYS
  | typeof KEY_OFFSETS
  | typeof KEY_SORTED
  | typeof KEY_SUMS;

/** Bytes of each index file, from `stat` at open. */
export type IndexSizes = Record<IndexFile, number>;

/** The sizes each index file must have (version 2: all; version 1: all but keys.txt). */
function expectedIndexSizes(
  h: ScoreMapStoreHeader,
): Partial<IndexSizes> {
  const offsets = 8 * (h.count + 1);
  if (h.version === 1) {
    return { [KEY_OFFSETS]: offsets, [KEY_SORTED]: ENTRY_V1 * h.count };
  }
  const sorted = ENTRY * h.count;
  const keys = h.index!.keysBytes;
  return {
    [KEYS]: keys,
    [KEY_OFFSETS]: offsets,
    [KEY_SORTED]: sorted,
    [KEY_SUMS]: 4 *
      (blockCount(offsets) + blockCount(sorted) + blockCount(keys)),
  };
}

/** Stats the index files and checks their sizes against the header (constant time, nothing read). */
export async function indexSizes(
  dir: string,
  h: ScoreMapStoreHeader,
): Promise<IndexSizes> {
  const want = expectedIndexSizes(h);
  const names: IndexFile[] = h.version === 1
    ? [KEYS, KEY_OFFSETS, KEY_SORTED]
    : [KEYS, KEY_OFFSETS, KEY_SORTED, KEY_SUMS];
  const sizes: IndexSizes = {
    [KEYS]: 0,
    [KEY_OFFSETS]: 0,
    [KEY_SORTED]: 0,
    [KEY_SUMS]: 0,
  };
  for (const name of names) {
    let size: number;
    try {
      const info = await Deno.stat(`${dir}/${name}`);
      if (!info.isFile) {
        throw damaged(
          dir,
          `${name} should be a file, found ${
            info.isDirectory ? "a folder" : "something that is not a file"
          }`,
        );
      }
      size = info.size;
    } catch (e) {
      if (e instanceof ScoreMapError) throw e;
      throw new ScoreMapError(
        `score-map store ${dir} is incomplete: cannot find ${name} (${
          (e as Error).message
        }); copy the whole folder again, or ${REBUILD}`,
        { cause: e },
      );
    }
    const w = want[name];
    if (w !== undefined && size !== w) {
      throw damaged(
        dir,
        `${name} should be ${w} bytes for ${h.count} images${
          name === KEYS ? " (index.keysBytes of header.json)" : ""
        }, found ${size} bytes (${
          size < w ? "truncated, an interrupted copy?" : "extra bytes"
        })`,
      );
    }
    sizes[name] = size;
  }
  return sizes;
}

/** What the key index needs of its store: which store, and its reads and messages. */
export interface KeyIndexStore {
  /** The store's folder. */
  readonly path: string;
  /** The store's header. */
  readonly header: ScoreMapStoreHeader;
  /** Reads bytes of one of the store's files (counted in its stats). */
  read(
    file: Deno.FsFile,
    offset: number,
    out: Uint8Array,
    name: string,
  ): Promise<void>;
  /** A message about damage, naming what the store's current operation was doing. */
  damaged(what: string): ScoreMapError;
  /** Throws if the store is closed. */
  checkOpen(): void;
}

/**
 * The key index of an open store, read block by block from disk (never
 * loaded whole): every block checked against `keys.sums` (version 2), every
 * position bounded by the file's size before use.
 */
export class KeyIndex {
  #store: KeyIndexStore;
  #sizes: IndexSizes;
  #files: Partial<Record<IndexFile, Deno.FsFile>> = {};
  /** Pages of keys.sums (1024 checksums each) read so far. */
  #sumPages = new Map<number, DataView>();

  /** The index of `store`, whose files have `sizes` (checked at open). */
  constructor(store: KeyIndexStore, sizes: IndexSizes) {
    this.#store = store;
    this.#sizes = sizes;
  }

  /** Bytes of each index file. */
  get sizes(): IndexSizes {
    return this.#sizes;
  }

  /** An index file, opened on first use. */
  async #indexFile(name: IndexFile): Promise<Deno.FsFile> {
    this.#store.checkOpen();
    const open = this.#files[name];
    if (open) return open;
    try {
      const f = await Deno.open(`${this.#store.path}/${name}`, { read: true });
      this.#files[name] = f;
      return f;
    } catch (e) {
      throw new ScoreMapError(
        `score-map store ${this.#store.path} is incomplete: cannot open ${name} (${
          (e as Error).message
        }); copy the whole folder again`,
        { cause: e },
      );
    }
  }

  /** The checksum keys.sums holds for block `b` of an index file (version 2). */
  async #blockSum(name: IndexFile, b: number): Promise<number> {
    const o = blockCount(this.#sizes[KEY_OFFSETS]);
    const s = blockCount(this.#sizes[KEY_SORTED]);
    const g = b + (name === KEY_OFFSETS ? 0 : name === KEY_SORTED ? o : o + s);
    const page = Math.floor(g / 1024);
    let v = this.#sumPages.get(page);
    if (!v) {
      const from = page * 4096;
      const buf = new Uint8Array(
        Math.min(4096, this.#sizes[KEY_SUMS] - from),
      );
      await this.#store.read(
        await this.#indexFile(KEY_SUMS),
        from,
        buf,
        KEY_SUMS,
      );
      v = new DataView(buf.buffer);
      this.#sumPages.set(page, v);
    }
    return v.getUint32((g % 1024) * 4, true);
  }

  /**
   * Bytes [from, from + len) of an index file, `field` naming what gave the
   * position: bounded by the file's size before any seek; in version 2 the
   */
  async bytes(
    name: IndexFile,
    from: number,
    len: number,
    field: () => string,
  ): Promise<Uint8Array> {
    const size = this.#sizes[name];
    if (
      !Number.isSafeInteger(from) || !Number.isSafeInteger(len) || from < 0 ||
      len < 0 || from + len > size
    ) {
      throw this.#store.damaged(
        `${field()} points at bytes [${from}, ${
          from + len
        }) of ${name}, which has ${size} bytes`,
      );
    }
    const file = await this.#indexFile(name);
    if (this.#store.header.version === 1 || len === 0) {
      const out = new Uint8Array(len);
      if (len > 0) await this.#store.read(file, from, out, name);
      return out;
    }
    const b0 = Math.floor(from / BLOCK_BYTES);
    const b1 = Math.floor((from + len - 1) / BLOCK_BYTES);
    const start = b0 * BLOCK_BYTES;
    const buf = new Uint8Array(Math.min(size, (b1 + 1) * BLOCK_BYTES) - start);
    await this.#store.read(file, start, buf, name);
    for (let b = b0; b <= b1; b++) {
      const at = (b - b0) * BLOCK_BYTES;
      const got = crc32(
        buf.subarray(at, Math.min(buf.length, at + BLOCK_BYTES)),
      );
      const want = await this.#blockSum(name, b);
      if (got !== want) {
        throw this.#store.damaged(
          `block ${b} of ${name} (bytes ${b * BLOCK_BYTES} to ${
            Math.min(size, (b + 1) * BLOCK_BYTES)
          }, read for ${field()}) has the CRC-32 ${got}, but ${KEY_SUMS} holds ${want}`,
        );
      }
    }
    return buf.subarray(from - start, from - start + len);
  }

  /** A uint64 position read from an index file, bounded by `limit` before it becomes a number. */
  #position(
    v: DataView,
    at: number,
    limit: number,
    name: IndexFile,
    field: string,
  ): number {
    const x = v.getBigUint64(at, true);
    if (x > BigInt(limit)) {
      throw this.#store.damaged(
        `${name} gives ${field} as ${x}, beyond the ${limit} bytes of ${KEYS}`,
      );
    }
    return Number(x);
  }

  /** The key of record `i`: two small reads (each a checked block in version 2). */
  async keyAt(i: number): Promise<string> {
    const o = await this.bytes(
      KEY_OFFSETS,
      8 * i,
      16,
      () => `key ${i}'s entry`,
    );
    const v = new DataView(o.buffer, o.byteOffset, 16);
    const limit = this.#sizes[KEYS];
    const from = this.#position(v, 0, limit, KEY_OFFSETS, `key ${i}'s start`);
    const to = this.#position(v, 8, limit, KEY_OFFSETS, `key ${i + 1}'s start`);
    if (!(to > from + 1 && to - from - 1 <= MAX_KEY_BYTES)) {
      throw this.#store.damaged(
        `${KEY_OFFSETS} gives key ${i} the bytes [${from}, ${to}) of ${KEYS}, expected 2 to ${
          MAX_KEY_BYTES + 1
        } bytes (the key and its line break)`,
      );
    }
    const b = await this.bytes(
      KEYS,
      from,
      to - from,
      () => `key ${i} (from ${KEY_OFFSETS})`,
    );
    const nl = b.indexOf(0x0a);
    if (nl !== b.length - 1) {
      throw this.#store.damaged(
        `${KEY_OFFSETS} gives key ${i} the bytes [${from}, ${to}) of ${KEYS}, which are not one line`,
      );
    }
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(
        b.subarray(0, nl),
      );
    } catch (e) {
      throw this.#store.damaged(
        `key ${i} in ${KEYS} (bytes [${from}, ${to})) is not valid UTF-8 (${
          (e as Error).message
        })`,
      );
    }
  }

  /** Entry bytes, key-prefix bytes and where the prefix starts, for this store's version. */
  entryLayout(): { entry: number; prefix: number; at: number } {
    return this.#store.header.version === 1
      ? { entry: ENTRY_V1, prefix: PREFIX_V1, at: 16 }
      : { entry: ENTRY, prefix: PREFIX, at: 24 };
  }

  /** The record of the key with UTF-8 bytes `want`, or -1: a binary search on disk through keys.sorted. */
  async search(want: Uint8Array): Promise<number> {
    const { entry, prefix, at: pAt } = this.entryLayout();
    const count = this.#store.header.count;
    const keysSize = this.#sizes[KEYS];
    // Compares the wanted key with entry e (at byte `at` of `buf`): -1, 0 or 1.
    const compare = async (
      buf: Uint8Array,
      at: number,
      e: number,
    ): Promise<number> => {
      const v = new DataView(buf.buffer, buf.byteOffset + at, entry);
      const len = v.getUint32(4, true);
      if (len < 1 || len > MAX_KEY_BYTES) {
        throw this.#store.damaged(
          `${KEY_SORTED} entry ${e} gives its key a length of ${len} bytes, expected 1 to ${MAX_KEY_BYTES}`,
        );
      }
      const known = Math.min(len, prefix); // bytes of the key in the entry
      const m = Math.min(want.length, known);
      for (let i = 0; i < m; i++) {
        const d = want[i] - buf[at + pAt + i];
        if (d !== 0) return d < 0 ? -1 : 1;
      }
      if (want.length < known) return -1; // a proper prefix sorts first
      if (len <= prefix) return Math.sign(want.length - len);
      // Both share the first bytes of the prefix: compare the whole key.
      const from = this.#position(
        v,
        8,
        keysSize,
        KEY_SORTED,
        `entry ${e}'s key start`,
      );
      const full = await this.bytes(
        KEYS,
        from,
        len,
        () => `${KEY_SORTED} entry ${e}`,
      );
      return Math.sign(compareBytes(want, 0, want.length, full, 0, len));
    };
    let lo = 0, hi = count;
    while (lo < hi) {
      // The block holding the middle entry: a binary search inside it
      // either ends the search or excludes the whole block.
      const b = Math.floor(((lo + hi) >>> 1) / ENTRIES_PER_BLOCK);
      const first = b * ENTRIES_PER_BLOCK;
      const last = Math.min(count, first + ENTRIES_PER_BLOCK);
      const block = await this.bytes(
        KEY_SORTED,
        first * entry,
        (last - first) * entry,
        () => `entries ${first} to ${last - 1}`,
      );
      this.#checkOrder(block, first, last);
      const s = Math.max(lo, first), e = Math.min(hi, last);
      let a = s, z = e;
      while (a < z) {
        const m = (a + z) >>> 1;
        const c = await compare(block, (m - first) * entry, m);
        if (c === 0) return this.#found(block, (m - first) * entry, m, want);
        if (c < 0) z = m;
        else a = m + 1;
      }
      if (a > s && a < e) return -1;
      if (a === s) hi = s;
      else lo = e;
    }
    return -1;
  }

  /** Checks that the entries of a block are in key order, as far as their prefixes tell. */
  #checkOrder(block: Uint8Array, first: number, last: number): void {
    const { entry, prefix, at } = this.entryLayout();
    const v = new DataView(block.buffer, block.byteOffset, block.length);
    for (let e = first; e + 1 < last; e++) {
      const p = (e - first) * entry, q = p + entry;
      const la = v.getUint32(p + 4, true), lb = v.getUint32(q + 4, true);
      const ka = Math.min(la, prefix), kb = Math.min(lb, prefix);
      const d = compareBytes(
        block,
        p + at,
        Math.min(ka, kb),
        block,
        q + at,
        Math.min(ka, kb),
      );
      const broken = d !== 0
        ? d > 0
        : (la <= prefix && lb <= prefix)
        ? la >= lb
        : lb <= prefix && ka >= kb; // b whole and a prefix of a: a > b
      if (broken) {
        throw this.#store.damaged(
          `${KEY_SORTED} entries ${e} and ${e + 1} are not in key order`,
        );
      }
    }
  }

  /** The record of a found entry, checked: in range, and (version 2) the entry's key hash is the key's. */
  #found(
    block: Uint8Array,
    at: number,
    e: number,
    want: Uint8Array,
  ): number {
    const v = new DataView(block.buffer, block.byteOffset + at, 24);
    const i = v.getUint32(0, true);
    if (i >= this.#store.header.count) {
      throw this.#store.damaged(
        `${KEY_SORTED} entry ${e} points at record ${i} of ${this.#store.header.count}`,
      );
    }
    if (this.#store.header.version !== 1 && !isKeyHash(v, 16, keyHash(want))) {
      throw this.#store.damaged(
        `${KEY_SORTED} entry ${e} holds a key hash that is not the hash of its key ${
          JSON.stringify(new TextDecoder().decode(want))
        }`,
      );
    }
    return i;
  }

  /** Every key, in record order, read whole (and checked, in version 2). */
  async allKeys(): Promise<string[]> {
    const b = await this.bytes(
      KEYS,
      0,
      this.#sizes[KEYS],
      () => "the whole file",
    );
    let text: string;
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(b);
    } catch (e) {
      throw this.#store.damaged(
        `${KEYS} is not valid UTF-8 (${(e as Error).message})`,
      );
    }
    const list = text.split("\n");
    list.pop();
    if (list.length !== this.#store.header.count || !text.endsWith("\n")) {
      throw this.#store.damaged(
        `${KEYS} should hold ${this.#store.header.count} lines, found ${list.length}`,
      );
    }
    return list;
  }

  /** Closes the index files (reads after this fail). */
  close(): void {
    for (const f of Object.values(this.#files)) {
      try {
        f?.close();
      } catch { /* already closed */ }
    }
    this.#files = {};
    this.#sumPages.clear();
  }
}

/** Builds `keys.offsets`, `keys.sorted` and their checksums `keys.sums` from `keys.txt`. */
export async function writeKeyIndex(
  partial: string,
  count: number,
  keysBytes: number,
): Promise<void> {
  const text = await Deno.readFile(`${partial}/${KEYS}`);
  if (text.length !== keysBytes) {
    throw new ScoreMapError(
      `cannot commit ${partial}: ${KEYS} holds ${text.length} bytes, expected ${keysBytes}; another process wrote to it? Resume the store to repair it`,
    );
  }
  const starts = new Float64Array(count + 1);
  let line = 0;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === 0x0a) starts[++line] = i + 1;
  }
  if (line !== count) {
    throw new ScoreMapError(
      `cannot commit ${partial}: ${KEYS} holds ${line} keys, expected ${count}`,
    );
  }
  const off = new Uint8Array(8 * (count + 1));
  const ov = new DataView(off.buffer);
  for (let i = 0; i <= count; i++) {
    ov.setBigUint64(8 * i, BigInt(starts[i]), true);
  }
  await writeFileAtomic(`${partial}/${KEY_OFFSETS}`, off, { overwrite: true });
  // Sort record indices by key bytes; the first 6 bytes as one number first.
  const head = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    const a = starts[i], len = starts[i + 1] - 1 - a;
    let x = 0;
    for (let j = 0; j < 6; j++) x = x * 256 + (j < len ? text[a + j] : 0);
    head[i] = x;
  }
  const order = new Uint32Array(count);
  for (let i = 0; i < count; i++) order[i] = i;
  order.sort((a, b) => {
    const d = head[a] - head[b];
    if (d !== 0) return d;
    const la = starts[a + 1] - 1 - starts[a],
      lb = starts[b + 1] - 1 - starts[b];
    return compareBytes(
      text,
      starts[a] + 6,
      la - 6,
      text,
      starts[b] + 6,
      lb - 6,
    ) ||
      0;
  });
  for (let r = 1; r < count; r++) {
    const a = order[r - 1], b = order[r];
    const la = starts[a + 1] - 1 - starts[a],
      lb = starts[b + 1] - 1 - starts[b];
    if (compareBytes(text, starts[a], la, text, starts[b], lb) === 0) {
      const key = new TextDecoder().decode(
        text.subarray(starts[a], starts[a] + la),
      );
      throw new ScoreMapError(
        `cannot commit ${partial}: the key ${
          JSON.stringify(key)
        } appears twice (records ${Math.min(a, b)} and ${
          Math.max(a, b)
        }); every image needs its own key`,
      );
    }
  }
  // The checksums: keys.offsets' blocks, then keys.sorted's, then keys.txt's.
  const sortedBytes = ENTRY * count;
  const sums = new DataView(
    new ArrayBuffer(
      4 * (blockCount(off.length) + blockCount(sortedBytes) +
        blockCount(text.length)),
    ),
  );
  let at = blockSums(off, sums, 0);
  // Entries in chunks of a whole number of checksum blocks; the file is
  // written atomically from the chunks, one after the other.
  const chunks: Uint8Array[] = [];
  const chunk = 65536;
  for (let from = 0; from < count; from += chunk) {
    const m = Math.min(chunk, count - from);
    const out = new Uint8Array(m * ENTRY);
    const v = new DataView(out.buffer);
    for (let r = 0; r < m; r++) {
      const i = order[from + r];
      const a = starts[i], len = starts[i + 1] - 1 - a;
      v.setUint32(r * ENTRY, i, true);
      v.setUint32(r * ENTRY + 4, len, true);
      v.setBigUint64(r * ENTRY + 8, BigInt(a), true);
      setKeyHash(v, r * ENTRY + 16, keyHash(text.subarray(a, a + len)));
      out.set(text.subarray(a, a + Math.min(len, PREFIX)), r * ENTRY + 24);
    }
    at = blockSums(out, sums, at);
    chunks.push(out);
  }
  await writeFileAtomic(`${partial}/${KEY_SORTED}`, chunks, {
    overwrite: true,
  });
  blockSums(text, sums, at);
  await writeFileAtomic(
    `${partial}/${KEY_SUMS}`,
    new Uint8Array(sums.buffer),
    { overwrite: true },
  );
}
