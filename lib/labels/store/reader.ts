/**
 * Reading a score-map store: {@linkcode ScoreMapStore} opens a committed
 * store in constant time and reads maps by index or key, a batch at a
 * time, checking everything it reads.
 *
 * What is checked, and when: opening reads `header.json` only and checks its
 * checksum, the shape (a map of at most 2^26 values), the count and every
 * file's size (`stat`), so it takes constant time. Every index block is
 * checked against `keys.sums` when it is read, every position read from an
 * index is bounded by the file's size before use, the sorted entries a
 * lookup reads must be in key order, the entry found must hold the key's
 * hash, and every record read must match its checksum and, read by key, the
 * key's hash. A damaged store therefore answers with the right map or a
 * {@linkcode ScoreMapError} naming the store, the file and what is wrong,
 * never with another image's map. {@linkcode ScoreMapStore.verify} checks a
 * whole store at once.
 *
 * @module
 */

import { exists } from "../../_fs.ts";
import { typeName } from "../_common.ts";
import {
  type ScoreMap,
  type ScoreMapBatch,
  ScoreMapError,
} from "../score_map.ts";
import { hashHex, isKeyHash, keyHash, recordChecksum } from "./_checksums.ts";
import {
  damaged,
  DATA,
  KEY_SORTED,
  readHeaderFile,
  STORE_VERSION,
  storePath,
} from "./_format.ts";
import {
  checkKey,
  type IndexSizes,
  indexSizes,
  KeyIndex,
} from "./_key_index.ts";
import { decodeRecord, recordProblem, recordRuns } from "./_records.ts";
import { StoreFiles } from "./_store_files.ts";
import { verifyStore } from "./_verify.ts";
import type { ScoreMapStoreHeader, ScoreMapStoreInit } from "./format.ts";
import {
  type CreateScoreMapStoreOptions,
  createWriter,
  type ResumeScoreMapStoreOptions,
  resumeWriter,
  type ScoreMapStoreWriter,
} from "./writer.ts";

/** Options of {@linkcode ScoreMapStore.open}. */
export interface OpenScoreMapStoreOptions {
  /**
   * Check every score and id of every record read (default true): a damaged
   * store then fails loudly, naming the record, instead of feeding garbage
   * to training. Costs about a tenth of the decoding time.
   */
  validate?: boolean;
  /**
   * How records are read (default `"async"`): `"async"` never blocks the
   * event loop and reads a batch's records through several file handles at
   * once (good for stores on slow or network disks); `"sync"` reads with
   * blocking calls, about ten times faster for a store in the page cache
   * (a training loop reading batches it awaits anyway).
   */
  io?: "async" | "sync";
  /**
   * Where warnings go (default `console.warn`): opening a version-1 store
   * (no integrity checks) warns once per store and process.
   */
  onWarning?: (message: string) => void;
}

/** What a store has read from disk since it was opened (for profiling). */
export interface ScoreMapStoreStats {
  /** Read calls (seek + read) on the store's files, the header included. */
  reads: number;
  /** Bytes read. */
  bytesRead: number;
}

/** Stores warned about (version 1) in this process: the warning is given once. */
const warnedVersion1 = new Set<string>();

function warnVersion1(
  dir: string,
  onWarning: ((message: string) => void) | undefined,
): void {
  if (warnedVersion1.has(dir)) return;
  warnedVersion1.add(dir);
  (onWarning ?? ((m: string) => console.warn(m)))(
    `score-map store ${dir} is format version 1, which has no checksums: damage to its files can go unnoticed (a damaged key index can answer with another image's map). It is still read; upgrade it once, in place, with \`tokenlab labels ${dir} --upgrade\` or upgradeScoreMapStore(${
      JSON.stringify(dir)
    }) (rewrites it as version ${STORE_VERSION}, checking every record), or re-run the conversion or annotation that made it.`,
  );
}

/**
 * A score-map store: one folder per dataset of fixed-size records (one seek +
 * read per image) with a key index searched on disk. Opening reads only the
 * header, whatever the size. Every record read is checked against its
 * checksum (and, read by key, against the key's hash); a damaged store
 * answers with a {@linkcode ScoreMapError}, never with another image's map.
 * The layout on disk is described in `lib/labels/store/format.ts`.
 *
 * @example
 * ```ts
 * import { ScoreMapStore } from "tokenlab/labels/store/mod.ts";
 * const dir = await Deno.makeTempDir();
 * const writer = await ScoreMapStore.create(`${dir}/maps`, {
 *   k: 2, height: 1, width: 1, numClasses: 10, annotator: "toy",
 *   preprocessing: { mode: "squash", size: 32 }, scores: "logits",
 * });
 * await writer.append("cat/1", { k: 2, height: 1, width: 1, scores: new Float32Array([3, 1]), ids: new Int32Array([4, 2]) }, 4);
 * await writer.commit();
 * using store = await ScoreMapStore.open(`${dir}/maps`);
 * console.log(store.size, (await store.read("cat/1")).ids, await store.label(0)); // 1 Int32Array(2) [ 4, 2 ] 4
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class ScoreMapStore {
  /** The store's folder. */
  readonly path: string;
  /** The store's `header.json`. */
  readonly header: ScoreMapStoreHeader;
  #files: StoreFiles;
  #index: KeyIndex;
  #validate: boolean;
  #queue: Promise<unknown> = Promise.resolve();
  /** What the current operation is doing, for messages about damage (operations run one at a time). */
  #context = "";

  private constructor(
    path: string,
    header: ScoreMapStoreHeader,
    files: StoreFiles,
    sizes: IndexSizes,
    options: OpenScoreMapStoreOptions,
  ) {
    this.path = path;
    this.header = header;
    this.#files = files;
    this.#index = new KeyIndex({
      path,
      header,
      read: (file, offset, out, name) => files.read(file, offset, out, name),
      damaged: (what) => this.#damaged(what),
      checkOpen: () => void files.data(),
    }, sizes);
    this.#validate = options.validate ?? true;
  }

  /**
   * Opens a committed store in constant time: reads `header.json` and checks
   * it (its checksum, the shape and count within bounds), and checks the
   * sizes of `maps.bin` and the index files against it (`stat` only; the
   * index is read, block by checked block, on first use). A version-1 store
   * (no checksums) is read too, with a one-time warning.
   *
   * @example
   * ```ts
   * import { ScoreMapStore } from "tokenlab/labels/store/mod.ts";
   * await ScoreMapStore.open("/nonexistent/maps").catch((e) => console.log(e.name)); // ScoreMapError
   * ```
   */
  static async open(
    path: string | URL,
    options: OpenScoreMapStoreOptions = {},
  ): Promise<ScoreMapStore> {
    const dir = storePath(path);
    const { header, bytes: headerSize } = await readHeaderFile(dir);
    const files = await StoreFiles.open(dir, header, {
      sync: options.io === "sync",
      headerBytes: headerSize,
    });
    let sizes: IndexSizes;
    try {
      sizes = await indexSizes(dir, header);
    } catch (e) {
      files.close();
      throw e;
    }
    if (header.version === 1) warnVersion1(dir, options.onWarning);
    return new ScoreMapStore(dir, header, files, sizes, options);
  }

  /**
   * Starts writing a new store. Everything is written under `<path>.partial`
   * and renamed to `path` by `commit()`. Refuses an existing store unless
   * `overwrite: true`. An interrupted write (`<path>.partial`) that holds
   * records is refused too (resume it, or pass `overwrite: true`); one that
   * holds none (a run that failed before its first checkpoint) is replaced,
   * with a note through `onWarning`.
   *
   * @example
   * ```ts
   * import { ScoreMapStore } from "tokenlab/labels/store/mod.ts";
   * const dir = await Deno.makeTempDir();
   * const w = await ScoreMapStore.create(`${dir}/s`, { k: 1, height: 1, width: 1, numClasses: 2, annotator: "a", preprocessing: { mode: "squash", size: 8 }, scores: "unknown" });
   * console.log(w.size); // 0
   * await w.abort();
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  static async create(
    path: string | URL,
    header: ScoreMapStoreInit,
    options: CreateScoreMapStoreOptions = {},
  ): Promise<ScoreMapStoreWriter> {
    return await createWriter(path, header, options);
  }

  /**
   * Whether an interrupted write of the store at `path` (`<path>.partial`)
   * is there to be resumed.
   *
   * @example
   * ```ts
   * import { ScoreMapStore } from "tokenlab/labels/store/mod.ts";
   * console.log(await ScoreMapStore.hasInterruptedWrite("no/such/store")); // false
   * ```
   */
  static hasInterruptedWrite(path: string | URL): Promise<boolean> {
    return exists(`${storePath(path)}.partial`);
  }

  /**
   * Reopens an interrupted write (`<path>.partial`) to continue it: keeps
   * the records safely on disk (those of the last progress checkpoint that
   * are whole in `maps.bin` and `keys.txt`), discards anything after them (a
   * torn last record), and reports the count in `writer.size`. Append from
   * image `writer.size` on; the committed store is byte-identical to one
   * written without interruption. An interrupted write started with another
   * `header` is refused (pass `overwrite: true` to `create` to start over)
   * unless it holds no records: then it is replaced by a new write with
   * `header`, with a note through `onWarning`.
   *
   * @example
   * ```ts
   * import { ScoreMapStore } from "tokenlab/labels/store/mod.ts";
   * const dir = await Deno.makeTempDir();
   * const w = await ScoreMapStore.create(`${dir}/s`, { k: 1, height: 1, width: 1, numClasses: 2, annotator: "a", preprocessing: { mode: "squash", size: 8 }, scores: "unknown" });
   * await w.append("a", { k: 1, height: 1, width: 1, scores: new Float32Array([1]), ids: new Int32Array([1]) });
   * await w.close(); // as if the run stopped here
   * const again = await ScoreMapStore.resume(`${dir}/s`);
   * console.log(again.size); // 1
   * await again.commit();
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  static async resume(
    path: string | URL,
    options: ResumeScoreMapStoreOptions = {},
  ): Promise<ScoreMapStoreWriter> {
    return await resumeWriter(path, options);
  }

  /** Number of images in the store. */
  get size(): number {
    return this.header.count;
  }

  /** What has been read from disk since opening (reads and bytes; for profiling). */
  get stats(): ScoreMapStoreStats {
    return this.#files.stats;
  }

  /** Runs `fn` after every earlier read of this store (one file position at a time). */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => {});
    return run;
  }

  /** A ScoreMapError about damage, naming the store and what the current operation was doing. */
  #damaged(what: string): ScoreMapError {
    return damaged(
      this.path,
      this.#context === "" ? what : `${what} (${this.#context})`,
    );
  }

  /** Runs `fn` with `context` named in its messages about damage. */
  async #within<T>(context: string, fn: () => Promise<T>): Promise<T> {
    const outer = this.#context;
    this.#context = outer === "" ? context : `${outer}, ${context}`;
    try {
      return await fn();
    } finally {
      this.#context = outer;
    }
  }

  #checkIndex(i: number, what: string): void {
    if (!Number.isSafeInteger(i) || i < 0 || i >= this.header.count) {
      throw new ScoreMapError(
        `${what}: expected an image index in [0, ${this.header.count}) of the store ${this.path}, found ${i}`,
      );
    }
  }

  /**
   * The key of image `i` (two small reads; in version 2 each is a checked
   * 4 KiB block).
   *
   * @example
   * ```ts
   * import { officialToStore, ScoreMapStore } from "tokenlab/labels/store/mod.ts";
   * const dir = await Deno.makeTempDir();
   * const root = new URL("../../../tests/fixtures/score_maps", import.meta.url);
   * await officialToStore(root, `${dir}/maps`, { numClasses: 1000, annotator: "fixture", preprocessing: { mode: "squash", size: 224 }, scores: "logits", labels: "folders" });
   * const store = await ScoreMapStore.open(`${dir}/maps`);
   * console.log(await store.keyAt(0)); // n01440764/img_1
   * store.close();
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  async keyAt(i: number): Promise<string> {
    this.#checkIndex(i, "keyAt");
    return await this.#serial(() => this.#index.keyAt(i));
  }

  /**
   * The index of the image with this key, or -1: a binary search on disk
   * through `keys.sorted`, one checked 4 KiB block (64 entries) per step
   * (about log2(count) - 5 reads; the index is never loaded whole).
   *
   * @example
   * ```ts
   * import { officialToStore, ScoreMapStore } from "tokenlab/labels/store/mod.ts";
   * const dir = await Deno.makeTempDir();
   * const root = new URL("../../../tests/fixtures/score_maps", import.meta.url);
   * await officialToStore(root, `${dir}/maps`, { numClasses: 1000, annotator: "fixture", preprocessing: { mode: "squash", size: 224 }, scores: "logits", labels: "folders" });
   * const store = await ScoreMapStore.open(`${dir}/maps`);
   * console.log(await store.indexOf("n01440764/img_12"), await store.indexOf("nope")); // 1 -1
   * store.close();
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  async indexOf(key: string): Promise<number> {
    const want = checkKey(key, `indexOf in ${this.path}`);
    return await this.#serial(() =>
      this.#within(
        `looking up the key ${JSON.stringify(key)}`,
        () => this.#index.search(want),
      )
    );
  }

  /** A record index, and the key it must hold when `iOrKey` is a key. */
  async #resolve(
    iOrKey: number | string,
    what: string,
  ): Promise<{ i: number; key?: string }> {
    if (typeof iOrKey === "string") {
      const i = await this.indexOf(iOrKey);
      if (i < 0) {
        const first = this.header.count > 0
          ? `; its keys look like ${JSON.stringify(await this.keyAt(0))}`
          : "";
        throw new ScoreMapError(
          `${what}: no image with key ${
            JSON.stringify(iOrKey)
          } in the score-map store ${this.path} (${this.header.count} images)${first}; check the key (<class>/<stem>) and that the store was made for this dataset`,
        );
      }
      return { i, key: iOrKey };
    }
    this.#checkIndex(iOrKey, what);
    return { i: iOrKey };
  }

  /**
   * One image's map, by index or key (one seek + read, plus the key lookup
   * for a key). Checked against the record's checksum (and, by key, the
   * key's hash: never another image's map) and the header (finite scores,
   * ids in range).
   *
   * @example
   * ```ts
   * import { officialToStore, ScoreMapStore } from "tokenlab/labels/store/mod.ts";
   * const dir = await Deno.makeTempDir();
   * const root = new URL("../../../tests/fixtures/score_maps", import.meta.url);
   * await officialToStore(root, `${dir}/maps`, { numClasses: 1000, annotator: "fixture", preprocessing: { mode: "squash", size: 224 }, scores: "logits", labels: "folders" });
   * const store = await ScoreMapStore.open(`${dir}/maps`);
   * const map = await store.read("n01440764/img_12"); // or store.read(1)
   * console.log(map.k, map.height, map.width, map.ids[0] < 1000); // 5 3 4 true
   * store.close();
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  async read(iOrKey: number | string): Promise<ScoreMap> {
    const { i, key } = await this.#resolve(iOrKey, "read");
    this.#files.data();
    const b = await this.#serial(() =>
      key === undefined ? this.#readBatch([i]) : this.#within(
        `reading the key ${JSON.stringify(key)}`,
        () => this.#readBatch([i], [key]),
      )
    );
    return {
      k: b.k,
      height: b.height,
      width: b.width,
      scores: b.scores,
      ids: b.ids,
    };
  }

  /**
   * The ground-truth label of image `i`, or undefined when the store has
   * none (one read: the record, checked, in version 2; 4 bytes in version 1).
   *
   * @example
   * ```ts
   * import { officialToStore, ScoreMapStore } from "tokenlab/labels/store/mod.ts";
   * const dir = await Deno.makeTempDir();
   * const root = new URL("../../../tests/fixtures/score_maps", import.meta.url);
   * await officialToStore(root, `${dir}/maps`, { numClasses: 1000, annotator: "fixture", preprocessing: { mode: "squash", size: 224 }, scores: "logits", labels: "folders" });
   * const store = await ScoreMapStore.open(`${dir}/maps`);
   * console.log(await store.label(0), await store.label("n01443537/img_3")); // 0 1
   * store.close();
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  label(i: number | string): Promise<number | undefined> {
    return this.#resolve(i, "label").then(({ i: j, key }) =>
      this.#serial(async () => {
        if (!this.header.labels) return undefined;
        if (this.header.version !== 1) {
          const b = key === undefined
            ? await this.#readBatch([j])
            : await this.#within(
              `reading the key ${JSON.stringify(key)}`,
              () => this.#readBatch([j], [key]),
            );
          const v = b.labels![0];
          return v < 0 ? undefined : v;
        }
        const b = new Uint8Array(4);
        await this.#files.read(
          this.#files.data(),
          j * this.header.record.bytes + this.header.record.label.offset,
          b,
          DATA,
        );
        const v = new DataView(b.buffer).getInt32(0, true);
        if (v < -1 || v >= this.header.numClasses) {
          throw this.#damaged(
            `record ${j} of ${DATA} holds the label ${v}, outside [-1, ${this.header.numClasses})`,
          );
        }
        return v < 0 ? undefined : v;
      })
    );
  }

  /**
   * The maps of several images concatenated into [B, k, H, W] arrays (for
   * label pooling), with their labels when the store has them. Records of
   * consecutive indices are read together; any order and repeats are fine.
   * Every record is checked against its checksum.
   *
   * @example
   * ```ts
   * import { officialToStore, ScoreMapStore } from "tokenlab/labels/store/mod.ts";
   * const dir = await Deno.makeTempDir();
   * const root = new URL("../../../tests/fixtures/score_maps", import.meta.url);
   * await officialToStore(root, `${dir}/maps`, { numClasses: 1000, annotator: "fixture", preprocessing: { mode: "squash", size: 224 }, scores: "logits", labels: "folders" });
   * const store = await ScoreMapStore.open(`${dir}/maps`);
   * const batch = await store.readBatch([3, 1, 4]); // [B, k, H, W] scores and ids
   * console.log(batch.scores.length === 3 * 5 * 3 * 4, batch.labels); // true Int32Array(3) [ 1, 0, 1 ]
   * store.close();
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  async readBatch(indices: ArrayLike<number>): Promise<ScoreMapBatch> {
    const count = indices?.length;
    if (!Number.isSafeInteger(count)) {
      throw new ScoreMapError(
        `readBatch: expected an array of image indices, found ${
          typeName(indices)
        }`,
      );
    }
    for (let j = 0; j < count; j++) this.#checkIndex(indices[j], "readBatch");
    this.#files.data();
    return await this.#serial(() => this.#readBatch(indices));
  }

  /** Reads and decodes records; `keys[j]` (when given) is the key record `indices[j]` must hold. */
  async #readBatch(
    indices: ArrayLike<number>,
    keys?: readonly string[],
    validate = this.#validate,
  ): Promise<ScoreMapBatch> {
    const h = this.header, rec = h.record;
    const B = indices.length;
    const n = h.k * h.height * h.width;
    const scores = new Float32Array(B * n);
    const ids = new Int32Array(B * n);
    const labels = h.labels ? new Int32Array(B) : undefined;
    const order = Array.from({ length: B }, (_, j) => j);
    order.sort((a, b) => indices[a] - indices[b]);
    const checked = h.version !== 1;
    const runs = recordRuns(indices, order, rec.bytes);
    await this.#files.readRecords(runs);
    for (const { p, q, buf } of runs) {
      const first = indices[order[p]];
      const u16 = new Uint16Array(buf.buffer);
      const i32 = new Int32Array(buf.buffer);
      const view = new DataView(buf.buffer);
      for (let r = p; r < q; r++) {
        const j = order[r], i = indices[j];
        const base = (i - first) * rec.bytes;
        if (checked) {
          const got = recordChecksum(
            buf.subarray(base, base + rec.bytes),
            i,
          );
          const stored = view.getUint32(base, true);
          if (got !== stored) {
            throw this.#damaged(
              `record ${i} of ${DATA} (${await this.#keyForError(
                i,
              )}) fails its checksum: it holds ${stored}, its bytes give ${got}`,
            );
          }
          if (keys !== undefined) {
            const want = keyHash(new TextEncoder().encode(keys[j]));
            if (!isKeyHash(view, base + rec.keyHash!.offset, want)) {
              const other = await this.#keyForError(i);
              throw this.#damaged(
                `the key index sends the key ${JSON.stringify(keys[j])} (hash ${
                  hashHex(want)
                }) to record ${i}, which holds the map of another key (${other}): ${KEY_SORTED} points at the wrong record`,
              );
            }
          }
        }
        const out = j * n;
        const label = decodeRecord(rec, u16, i32, base, scores, ids, out, n);
        if (labels) labels[j] = label;
        const bad = validate
          ? recordProblem(h, scores, ids, out, n, label)
          : undefined;
        if (bad !== undefined) {
          throw this.#damaged(
            `record ${i} (${await this.#keyForError(i)}) holds ${bad}`,
          );
        }
      }
    }
    return {
      size: B,
      k: h.k,
      height: h.height,
      width: h.width,
      scores,
      ids,
      labels,
    };
  }

  /** The key of record i for an error message, without the read queue (already inside it). */
  async #keyForError(i: number): Promise<string> {
    try {
      return `key ${JSON.stringify(await this.#index.keyAt(i))}`;
    } catch {
      return "key unknown";
    }
  }

  /**
   * Every key, in record order (reads `keys.txt` whole: for checks and
   * listings, not per-image lookups).
   *
   * @example
   * ```ts
   * import { officialToStore, ScoreMapStore } from "tokenlab/labels/store/mod.ts";
   * const dir = await Deno.makeTempDir();
   * const root = new URL("../../../tests/fixtures/score_maps", import.meta.url);
   * await officialToStore(root, `${dir}/maps`, { numClasses: 1000, annotator: "fixture", preprocessing: { mode: "squash", size: 224 }, scores: "logits", labels: "folders" });
   * const store = await ScoreMapStore.open(`${dir}/maps`);
   * console.log(await store.keys()); // [ "n01440764/img_1", "n01440764/img_12", ... ]
   * store.close();
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  keys(): Promise<string[]> {
    this.#files.data();
    return this.#serial(() => this.#index.allKeys());
  }

  /**
   * Checks the whole store, linearly: every block of the index files against
   * its checksum, every `keys.offsets` entry against `keys.txt`, every
   * `keys.sorted` entry (in key order, each record once, its key, length,
   * offset and hash), and every record (checksum, key hash, scores, ids and
   * label). Throws the first {@linkcode ScoreMapError} found; a version-1
   * store gets every check its format allows. Reads everything once and
   * keeps the keys in memory (about 100 bytes per image).
   *
   * @example
   * ```ts
   * import { officialToStore, ScoreMapStore } from "tokenlab/labels/store/mod.ts";
   * const dir = await Deno.makeTempDir();
   * const root = new URL("../../../tests/fixtures/score_maps", import.meta.url);
   * await officialToStore(root, `${dir}/maps`, { numClasses: 1000, annotator: "fixture", preprocessing: { mode: "squash", size: 224 }, scores: "logits" });
   * using store = await ScoreMapStore.open(`${dir}/maps`);
   * await store.verify(); // throws if anything is damaged
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  verify(): Promise<void> {
    this.#files.data();
    return this.#serial(() =>
      verifyStore({
        header: this.header,
        index: this.#index,
        damaged: (what) => this.#damaged(what),
        checkRecords: (indices, keys) => this.#readBatch(indices, keys, true),
      })
    );
  }

  /** Closes the store's files (reads after this fail). */
  close(): void {
    if (this.#files.closed) return;
    this.#files.close();
    this.#index.close();
  }

  /** Closes the store (for `using`). */
  [Symbol.dispose](): void {
    this.close();
  }

  /** A summary for notebooks (Jupyter display bundle). */
  [Symbol.for("Jupyter.display")](): Record<string, string> {
    const h = this.header;
    const pre = h.preprocessing;
    const rows = [
      ["images", String(h.count)],
      ["map", `k = ${h.k}, ${h.height} x ${h.width}`],
      ["classes", String(h.numClasses)],
      ["annotator", h.annotator],
      ...(h.annotatorHead !== undefined
        ? [["annotator head", h.annotatorHead]]
        : []),
      ...(h.annotatorWeights !== undefined
        ? [[
          "annotator weights",
          `${h.annotatorWeights.file} (${h.annotatorWeights.bytes} bytes, sha256 ${
            h.annotatorWeights.sha256.slice(0, 12)
          }…)`,
        ]]
        : []),
      ...(h.classNames !== undefined
        ? [[
          "class names",
          h.classNames.slice(0, 10).join(", ") +
          (h.classNames.length > 10 ? ", …" : ""),
        ]]
        : []),
      [
        "preprocessing",
        `${pre.mode} ${pre.size}px${
          pre.cropPct !== undefined ? `, crop ${pre.cropPct}` : ""
        }`,
      ],
      ["scores", h.scores],
      ["labels", h.labels ? "yes" : "no"],
      ["record", `${h.record.bytes} bytes (ids ${h.record.ids.dtype})`],
      [
        "format",
        `version ${h.version}${
          h.version === 1 ? " (no checksums: upgradeScoreMapStore)" : ""
        }`,
      ],
    ];
    const md = [
      `**score-map store** \`${this.path}\``,
      "",
      "| | |",
      "|---|---|",
      ...rows.map(([a, b]) => `| ${a} | ${b.replaceAll("|", "\\|")} |`),
    ].join("\n");
    return {
      "text/plain": rows.map(([a, b]) => `${a}: ${b}`).join("\n"),
      "text/markdown": md,
    };
  }
}
