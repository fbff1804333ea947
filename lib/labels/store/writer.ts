/**
 * Writing a score-map store: {@linkcode ScoreMapStoreWriter} appends records
 * in image order, keeps the write resumable, and commits it (builds the key
 * index and the header, then moves the folder into place).
 *
 * ## Writing, and resuming
 *
 * While being written a store lives in `<name>.partial`: `partial.json` (its
 * creation header), `maps.bin` and `keys.txt` (appended in order) and
 * `progress.json` (the records safely on disk, replaced atomically at each
 * checkpoint: every `flushEvery` appends, on `flush()` and `close()`, after
 * the data files are flushed to disk). `commit()` builds the key index and
 * the header and renames the folder to `<name>`: nothing under the final
 * name is ever half-written. {@linkcode ScoreMapStore.resume} keeps the
 * records of the last checkpoint that are whole in both files (a torn
 * record is dropped) and continues after them; the committed store is
 * byte-identical to one written without interruption (the header has no
 * timestamp). One writer per store at a time. The writer keeps the keys in
 * memory (to refuse duplicates at once), and `commit()` sorts them and
 * builds the key index in memory: about 100 bytes per image, plus the 64 of
 * its `keys.sorted` entry while that file is written. An interrupted write
 * that holds no records (a run that failed before its first checkpoint)
 * does not block the next run: `create` replaces it, and so does `resume`
 * when given another header, each with a note; one that holds records is
 * refused unless `overwrite: true` (the error's `option` says so, for a
 * command line to name its flag).
 *
 * @module
 */

import { float32ToFloat16Bits } from "../../io/raw_tensor.ts";
import { writeFileAtomic } from "../../io/atomic_write.ts";
import { exists } from "../../_fs.ts";
import { writeAll } from "../_common.ts";
import { halfRangeProblem } from "../_half_range.ts";
import {
  type ScoreMap,
  ScoreMapError,
  validateScoreMap,
} from "../score_map.ts";
import { BLOCK_BYTES } from "./_checksums.ts";
import { encodeRecord } from "./_records.ts";
import {
  checkInit,
  DATA,
  ENTRY,
  HEADER,
  headerBytes,
  KEYS,
  makeHeader,
  parseHeader,
  PARTIAL_INFO,
  PROGRESS,
  STORE_VERSION,
  storePath,
} from "./_format.ts";
import { checkKey, writeKeyIndex } from "./_key_index.ts";
import {
  describeFields,
  headerDifferences,
  moveIntoPlace,
  partialState,
  plural,
  type Progress,
  recoverPartial,
  removeTemporaries,
  writeProgress,
} from "./_partial.ts";
import type { ScoreMapStoreHeader, ScoreMapStoreInit } from "./format.ts";

/** Options of {@linkcode ScoreMapStore.create}. */
export interface CreateScoreMapStoreOptions {
  /**
   * Replace an existing store at the path when committing, and discard an
   * interrupted write (`<path>.partial`) now (default false: both refused).
   */
  overwrite?: boolean;
  /**
   * Appends between progress checkpoints (default 1000): every that many
   * appends the data is flushed to disk and `progress.json` updated, so an
   * interrupted run loses at most that many records.
   */
  flushEvery?: number;
  /**
   * Where notes go (default `console.warn`): an interrupted write that
   * holds no records is replaced, with a note saying so.
   */
  onWarning?: (message: string) => void;
}

/** Options of {@linkcode ScoreMapStore.resume}. */
export interface ResumeScoreMapStoreOptions {
  /**
   * The header the caller would create the store with: the interrupted
   * write is refused if it was started with another (a different annotator,
   * map size, class count, ...), rather than mixing two runs in one store.
   */
  header?: ScoreMapStoreInit;
  /** Replace an existing store at the path when committing (default false). */
  overwrite?: boolean;
  /** Appends between progress checkpoints (default 1000). */
  flushEvery?: number;
  /**
   * Where notes go (default `console.warn`): an interrupted write that holds
   * no records but was started with another header is replaced by a new
   * one with `header`, with a note saying so.
   */
  onWarning?: (message: string) => void;
}

/**
 * Starts writing a new store (what {@linkcode ScoreMapStore.create} does; see
 * there). Internal to `lib/labels/store/`: not exported from its `mod.ts`.
 */
export async function createWriter(
  path: string | URL,
  header: ScoreMapStoreInit,
  options: CreateScoreMapStoreOptions = {},
): Promise<ScoreMapStoreWriter> {
  const dir = storePath(path);
  checkInit(header, `creating the score-map store ${dir}`);
  const flushEvery = checkFlushEvery(options.flushEvery);
  const partial = `${dir}.partial`;
  if (!options.overwrite && await exists(dir)) {
    throw new ScoreMapError(
      `cannot create the score-map store ${dir}: something already exists there; pass overwrite: true to replace it when the new store is committed, or choose another path`,
      { option: "overwrite" },
    );
  }
  const init = makeHeader(header, 0, false);
  if (await exists(partial)) {
    if (!options.overwrite) {
      const found = await partialState(partial);
      if (found.records !== 0) {
        const differ = found.header
          ? headerDifferences(init, found.header)
          : [];
        const held = found.records > 0
          ? plural(found.records, "record")
          : "records (its partial.json is unreadable)";
        throw new ScoreMapError(
          `cannot create the score-map store ${dir}: an interrupted write of it, holding ${held}, is at ${partial}${
            differ.length > 0
              ? `, started with ${
                describeFields(found.header!, differ)
              } where this run has ${describeFields(init, differ)}`
              : ""
          }; ${
            differ.length > 0 || !found.header
              ? ""
              : `continue it with ScoreMapStore.resume(${
                JSON.stringify(dir)
              }), or `
          }pass overwrite: true to discard it and start over`,
          { option: "overwrite" },
        );
      }
      (options.onWarning ?? ((m: string) => console.warn(m)))(
        `replacing the interrupted write at ${partial}: it holds no records (it stopped before its first checkpoint)${
          found.header && headerDifferences(init, found.header).length > 0
            ? ` and was started with ${
              describeFields(
                found.header,
                headerDifferences(init, found.header),
              )
            }`
            : ""
        }`,
      );
    }
    await Deno.remove(partial, { recursive: true });
  }
  try {
    await Deno.mkdir(partial);
  } catch (e) {
    throw new ScoreMapError(
      `cannot create the score-map store ${dir}: making ${partial} failed (${
        (e as Error).message
      }); check that the parent folder exists and is writable`,
      { cause: e },
    );
  }
  await writeFileAtomic(`${partial}/${PARTIAL_INFO}`, headerBytes(init));
  return await startWriter(dir, init, {
    overwrite: options.overwrite ?? false,
    flushEvery,
    resume: false,
  });
}

/**
 * Reopens an interrupted write to continue it (what
 * {@linkcode ScoreMapStore.resume} does; see there). Internal to
 * `lib/labels/store/`: not exported from its `mod.ts`.
 */
export async function resumeWriter(
  path: string | URL,
  options: ResumeScoreMapStoreOptions = {},
): Promise<ScoreMapStoreWriter> {
  const dir = storePath(path);
  const partial = `${dir}.partial`;
  let text: string;
  try {
    text = await Deno.readTextFile(`${partial}/${PARTIAL_INFO}`);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new ScoreMapError(
        `cannot resume the score-map store ${dir}: no interrupted write at ${partial}${
          (await exists(`${dir}/${HEADER}`))
            ? ` (the store at ${dir} is already committed)`
            : ""
        }; start one with ScoreMapStore.create`,
      );
    }
    throw new ScoreMapError(
      `cannot resume the score-map store ${dir}: reading ${partial}/${PARTIAL_INFO} failed (${
        (e as Error).message
      }); start over with ScoreMapStore.create(path, header, { overwrite: true })`,
      { cause: e, option: "overwrite" },
    );
  }
  let init: ScoreMapStoreHeader;
  try {
    init = parseHeader(text, partial, PARTIAL_INFO, false);
  } catch (e) {
    throw new ScoreMapError(
      `cannot resume the score-map store ${dir}: ${
        (e as Error).message
      }; start over with ScoreMapStore.create(path, header, { overwrite: true })`,
      { cause: e, option: "overwrite" },
    );
  }
  const want = options.header === undefined
    ? undefined
    : (checkInit(options.header, `resuming the score-map store ${dir}`),
      makeHeader(options.header, 0, false));
  const differ = want ? headerDifferences(want, init) : [];
  if (init.version !== STORE_VERSION || differ.length > 0) {
    const records = (await partialState(partial)).records;
    if (records === 0) {
      // Nothing to keep: start the write the caller asks for.
      (options.onWarning ?? ((m: string) => console.warn(m)))(
        `replacing the interrupted write at ${partial}: it holds no records (it stopped before its first checkpoint) and was started with ${
          init.version !== STORE_VERSION
            ? `store format version ${init.version}`
            : describeFields(init, differ)
        }`,
      );
      await Deno.remove(partial, { recursive: true });
      return await createWriter(dir, options.header ?? init, {
        overwrite: options.overwrite,
        flushEvery: options.flushEvery,
      });
    }
    if (init.version !== STORE_VERSION) {
      throw new ScoreMapError(
        `cannot resume the score-map store ${dir}: the interrupted write at ${partial} (${
          plural(records, "record")
        }) was started by an older tokenlab in store format version ${init.version}, which this version does not continue; start over with ScoreMapStore.create(path, header, { overwrite: true })`,
        { option: "overwrite" },
      );
    }
    throw new ScoreMapError(
      `cannot resume the score-map store ${dir}: the interrupted write at ${partial} (${
        plural(records, "record")
      }) was started with ${describeFields(init, differ)}, but this run has ${
        describeFields(want!, differ)
      }; resume with the same settings, or start over with ScoreMapStore.create(path, header, { overwrite: true })`,
      { option: "overwrite" },
    );
  }
  return await startWriter(dir, init, {
    overwrite: options.overwrite ?? false,
    flushEvery: checkFlushEvery(options.flushEvery),
    resume: true,
  });
}

function checkFlushEvery(n: number | undefined): number {
  const v = n ?? 1000;
  if (!Number.isSafeInteger(v) || v < 1) {
    throw new ScoreMapError(
      `expected flushEvery to be a positive integer (appends between progress checkpoints), found ${n}`,
    );
  }
  return v;
}

interface WriterStart {
  overwrite: boolean;
  flushEvery: number;
  resume: boolean;
}

/** What {@linkcode ScoreMapStoreWriter.resumed} reports. */
export interface ScoreMapResumeInfo {
  /** Records found safely written (the writer continues after them). */
  records: number;
  /** Bytes dropped after them from `maps.bin` and `keys.txt` (a torn record, an interrupted flush). */
  discardedBytes: number;
}

interface WriterFiles {
  data: Deno.FsFile;
  keys: Deno.FsFile;
}

interface WriterState {
  keySet: Set<string>;
  labels: boolean | undefined;
  progress: Progress;
  resumed?: ScoreMapResumeInfo;
}

let newWriter: (
  path: string,
  header: ScoreMapStoreHeader,
  opts: WriterStart,
  files: WriterFiles,
  state: WriterState,
) => ScoreMapStoreWriter;

/**
 * Writes a score-map store record by record (from {@linkcode ScoreMapStore.create}
 * or {@linkcode ScoreMapStore.resume}): `append` in image order, `flush` for
 * a progress checkpoint, `commit` to finish; `close` stops keeping the write
 * resumable, `abort` deletes it.
 *
 * @example
 * ```ts
 * import { ScoreMapStore } from "tokenlab/labels/store/mod.ts";
 * const dir = await Deno.makeTempDir();
 * const w = await ScoreMapStore.create(`${dir}/s`, { k: 1, height: 2, width: 1, numClasses: 3, annotator: "a", preprocessing: { mode: "squash", size: 8 }, scores: "probabilities" });
 * await w.append("x/0", { k: 1, height: 2, width: 1, scores: new Float32Array([0.5, 0.25]), ids: new Int32Array([2, 0]) });
 * await w.flush(); // a checkpoint: this record survives a crash
 * await w.commit();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class ScoreMapStoreWriter {
  /** The store's final path. */
  readonly path: string;
  /** Where it is written until committed (`<path>.partial`). */
  readonly partialPath: string;
  /** The header the store will have (count and labels filled in at commit). */
  readonly header: ScoreMapStoreHeader;
  /** For a resumed write, what was found on disk; undefined for a new one. */
  readonly resumed: ScoreMapResumeInfo | undefined;
  #opts: WriterStart;
  #data: Deno.FsFile | null;
  #keys: Deno.FsFile | null;
  #keySet: Set<string>;
  #labels: boolean | undefined;
  #count: number;
  #flushed: Progress;
  #written: Progress;
  #buf: Uint8Array;
  #bufUsed = 0;
  #keyBuf: string[] = [];
  #sinceFlush = 0;
  #done = false;
  #failed: unknown = undefined;
  #busy: Promise<unknown> = Promise.resolve();

  private constructor(
    path: string,
    header: ScoreMapStoreHeader,
    opts: WriterStart,
    files: WriterFiles,
    state: WriterState,
  ) {
    this.path = path;
    this.partialPath = `${path}.partial`;
    this.header = header;
    this.#opts = opts;
    this.#data = files.data;
    this.#keys = files.keys;
    this.#keySet = state.keySet;
    this.#labels = state.labels;
    this.#count = state.progress.count;
    this.#flushed = { ...state.progress };
    this.#written = { ...state.progress };
    this.resumed = state.resumed;
    const rb = header.record.bytes;
    this.#buf = new Uint8Array(Math.max(1, Math.floor((4 << 20) / rb)) * rb);
  }

  static {
    newWriter = (path, header, opts, files, state) =>
      new ScoreMapStoreWriter(path, header, opts, files, state);
  }

  /** Records appended so far (those of a resumed write included). */
  get size(): number {
    return this.#count;
  }

  /** Records safely on disk (at the last progress checkpoint). */
  get flushedSize(): number {
    return this.#flushed.count;
  }

  #check(what: string): void {
    if (this.#failed !== undefined) {
      throw new ScoreMapError(
        `${what}: an earlier write to ${this.partialPath} failed (${
          (this.#failed as Error)?.message ?? this.#failed
        }); close this writer and continue with ScoreMapStore.resume(${
          JSON.stringify(this.path)
        }), which keeps the records up to the last checkpoint`,
        { cause: this.#failed },
      );
    }
    if (this.#done || !this.#data) {
      throw new ScoreMapError(
        `${what}: the writer of ${this.path} is finished (committed, closed or aborted); resume an interrupted write with ScoreMapStore.resume`,
      );
    }
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#busy.then(fn).catch((e) => {
      this.#failed ??= e;
      throw e;
    });
    this.#busy = run.catch(() => {});
    return run;
  }

  /**
   * Appends one image's map (and its ground-truth label): checked against
   * the header (shape, finite scores that fit float16, ids and label in
   * range, a new key). Either every record has a label or none has.
   *
   * @example
   * ```ts
   * import { ScoreMapStore } from "tokenlab/labels/store/mod.ts";
   * const dir = await Deno.makeTempDir();
   * const writer = await ScoreMapStore.create(`${dir}/maps`, { k: 1, height: 1, width: 1, numClasses: 1000, annotator: "toy", preprocessing: { mode: "squash", size: 32 }, scores: "logits" });
   * await writer.append("n01440764/img_12", { k: 1, height: 1, width: 1, scores: new Float32Array([1.5]), ids: new Int32Array([7]) }, 0);
   * console.log(writer.size); // 1
   * await writer.commit();
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  async append(key: string, map: ScoreMap, label?: number): Promise<void> {
    this.#check("append");
    const h = this.header;
    const where = `image ${JSON.stringify(key)} (record ${this.#count})`;
    checkKey(key, `append to ${this.path}`);
    if (this.#keySet.has(key)) {
      throw new ScoreMapError(
        `append to ${this.path}: the key ${
          JSON.stringify(key)
        } is already in the store; every image needs its own key (check that the dataset lists each image once)`,
      );
    }
    validateScoreMap(map, { numClasses: h.numClasses, where });
    if (map.k !== h.k || map.height !== h.height || map.width !== h.width) {
      throw new ScoreMapError(
        `append to ${this.path}: ${where} has k = ${map.k}, ${map.height} x ${map.width}, but this store holds k = ${h.k}, ${h.height} x ${h.width}; all maps of a store share one shape (make them with the same annotator settings, or create another store)`,
      );
    }
    const hasLabel = label !== undefined;
    if (hasLabel) {
      if (!Number.isSafeInteger(label) || label < 0 || label >= h.numClasses) {
        throw new ScoreMapError(
          `append to ${this.path}: ${where} has the label ${label}, expected an integer in [0, ${h.numClasses})`,
        );
      }
    }
    if (this.#labels !== undefined && this.#labels !== hasLabel) {
      throw new ScoreMapError(
        `append to ${this.path}: ${where} ${
          hasLabel ? "has a label" : "has no label"
        }, but the earlier records ${
          this.#labels ? "have labels" : "have none"
        }; give every image a label or none`,
      );
    }
    const bits = float32ToFloat16Bits(map.scores);
    const bad = halfRangeProblem(bits, map, where);
    if (bad !== undefined) throw new ScoreMapError(bad);
    // Encode now (synchronously), so the caller may reuse its arrays.
    const rec = encodeRecord(
      h.record,
      key,
      bits,
      map.ids,
      hasLabel ? label : -1,
      this.#count,
    );
    this.#labels = hasLabel;
    this.#keySet.add(key);
    this.#count++;
    return await this.#serial(async () => {
      if (this.#bufUsed + rec.length > this.#buf.length) await this.#writeOut();
      this.#buf.set(rec, this.#bufUsed);
      this.#bufUsed += rec.length;
      this.#keyBuf.push(key);
      this.#sinceFlush++;
      if (this.#sinceFlush >= this.#opts.flushEvery) await this.#flush();
    });
  }

  /** Writes the buffered records to the files (no checkpoint). */
  async #writeOut(): Promise<void> {
    if (this.#bufUsed === 0) return;
    const keys = new TextEncoder().encode(this.#keyBuf.join("\n") + "\n");
    await writeAll(this.#data!, this.#buf.subarray(0, this.#bufUsed));
    await writeAll(this.#keys!, keys);
    this.#written = {
      count: this.#written.count + this.#keyBuf.length,
      dataBytes: this.#written.dataBytes + this.#bufUsed,
      keysBytes: this.#written.keysBytes + keys.length,
    };
    this.#bufUsed = 0;
    this.#keyBuf = [];
  }

  async #flush(): Promise<void> {
    await this.#writeOut();
    this.#sinceFlush = 0;
    if (this.#written.count === this.#flushed.count) return;
    await this.#data!.syncData();
    await this.#keys!.syncData();
    await writeProgress(this.partialPath, this.#written);
    this.#flushed = { ...this.#written };
  }

  /**
   * A progress checkpoint now: writes the buffered records, flushes the
   * files to disk and records the count in `progress.json` (atomically). A
   * resumed write keeps everything up to the last checkpoint.
   *
   * @example
   * ```ts
   * import { ScoreMapStore } from "tokenlab/labels/store/mod.ts";
   * const dir = await Deno.makeTempDir();
   * const writer = await ScoreMapStore.create(`${dir}/maps`, { k: 1, height: 1, width: 1, numClasses: 1000, annotator: "toy", preprocessing: { mode: "squash", size: 32 }, scores: "logits" });
   * await writer.append("a/1", { k: 1, height: 1, width: 1, scores: new Float32Array([1.5]), ids: new Int32Array([7]) });
   * await writer.flush();
   * console.log(writer.flushedSize); // 1
   * await writer.abort();
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  async flush(): Promise<void> {
    this.#check("flush");
    return await this.#serial(() => this.#flush());
  }

  #closeFiles(): void {
    for (const f of [this.#data, this.#keys]) {
      try {
        f?.close();
      } catch { /* already closed */ }
    }
    this.#data = this.#keys = null;
    this.#done = true;
  }

  /**
   * Checkpoints and closes the files without committing: the write stays
   * resumable with {@linkcode ScoreMapStore.resume}.
   *
   * @example
   * ```ts
   * import { ScoreMapStore } from "tokenlab/labels/store/mod.ts";
   * const dir = await Deno.makeTempDir();
   * const writer = await ScoreMapStore.create(`${dir}/maps`, { k: 1, height: 1, width: 1, numClasses: 1000, annotator: "toy", preprocessing: { mode: "squash", size: 32 }, scores: "logits" });
   * await writer.append("a/1", { k: 1, height: 1, width: 1, scores: new Float32Array([1.5]), ids: new Int32Array([7]) });
   * await writer.close(); // stop here; later:
   * const again = await ScoreMapStore.resume(`${dir}/maps`);
   * console.log(again.size); // 1
   * await again.commit();
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  close(): Promise<void> {
    if (this.#done) return Promise.resolve();
    if (this.#failed !== undefined) {
      this.#closeFiles();
      return Promise.resolve();
    }
    return this.#serial(async () => {
      try {
        await this.#flush();
      } finally {
        this.#closeFiles();
      }
    });
  }

  /**
   * Stops and deletes the partial store (`<path>.partial`).
   *
   * @example
   * ```ts
   * import { ScoreMapStore } from "tokenlab/labels/store/mod.ts";
   * const dir = await Deno.makeTempDir();
   * const writer = await ScoreMapStore.create(`${dir}/maps`, { k: 1, height: 1, width: 1, numClasses: 1000, annotator: "toy", preprocessing: { mode: "squash", size: 32 }, scores: "logits" });
   * await writer.abort();
   * await ScoreMapStore.resume(`${dir}/maps`).catch((e) => console.log(e.name)); // ScoreMapError
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  async abort(): Promise<void> {
    await this.#busy;
    this.#closeFiles();
    await Deno.remove(this.partialPath, { recursive: true }).catch(() => {});
  }

  /**
   * Finishes the store: writes the key index (`keys.offsets`, `keys.sorted`)
   * and `header.json`, then renames `<path>.partial` to `path`. Refuses to
   * replace an existing store unless the writer was made with
   * `overwrite: true`. Returns the header written.
   *
   * @example
   * ```ts
   * import { ScoreMapStore } from "tokenlab/labels/store/mod.ts";
   * const dir = await Deno.makeTempDir();
   * const writer = await ScoreMapStore.create(`${dir}/maps`, { k: 1, height: 1, width: 1, numClasses: 1000, annotator: "toy", preprocessing: { mode: "squash", size: 32 }, scores: "logits" });
   * await writer.append("a/1", { k: 1, height: 1, width: 1, scores: new Float32Array([1.5]), ids: new Int32Array([7]) });
   * console.log((await writer.commit()).count); // 1
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  async commit(): Promise<ScoreMapStoreHeader> {
    this.#check("commit");
    if (!this.#opts.overwrite && await exists(this.path)) {
      // Refused before anything changes: the writer stays usable.
      throw new ScoreMapError(
        `cannot commit the score-map store ${this.path}: something already exists there; move or remove it and call commit() again, or continue with ScoreMapStore.resume(${
          JSON.stringify(this.path)
        }, { overwrite: true }) to replace it`,
      );
    }
    return await this.#serial(async () => {
      await this.#flush();
      this.#closeFiles();
      const partial = this.partialPath;
      await removeTemporaries(partial);
      const count = this.#flushed.count;
      const header = makeHeader(this.header, count, this.#labels ?? false, {
        keysBytes: this.#flushed.keysBytes,
        blockBytes: BLOCK_BYTES,
        entryBytes: ENTRY,
      });
      await writeKeyIndex(partial, count, this.#flushed.keysBytes);
      const bytes = headerBytes(header);
      await writeFileAtomic(`${partial}/${HEADER}`, bytes, {
        overwrite: true,
      });
      await Deno.remove(`${partial}/${PROGRESS}`).catch(() => {});
      await Deno.remove(`${partial}/${PARTIAL_INFO}`);
      await moveIntoPlace(partial, this.path, this.#opts.overwrite);
      return JSON.parse(new TextDecoder().decode(bytes));
    });
  }
}

/** Opens the partial folder's files and makes the writer (for ScoreMapStore.create / resume). */
async function startWriter(
  dir: string,
  header: ScoreMapStoreHeader,
  opts: WriterStart,
): Promise<ScoreMapStoreWriter> {
  const partial = `${dir}.partial`;
  const dataPath = `${partial}/${DATA}`;
  const keysPath = `${partial}/${KEYS}`;
  let progress: Progress = { count: 0, dataBytes: 0, keysBytes: 0 };
  let resumed: ScoreMapResumeInfo | undefined;
  let keySet = new Set<string>();
  let labels: boolean | undefined;
  const data = await Deno.open(dataPath, {
    read: true,
    write: true,
    create: true,
  });
  let keys: Deno.FsFile | null = null;
  try {
    keys = await Deno.open(keysPath, { read: true, write: true, create: true });
    if (opts.resume) {
      ({ progress, resumed, keySet, labels } = await recoverPartial(
        partial,
        header,
        data,
        keys,
      ));
    } else {
      await data.truncate(0);
      await keys.truncate(0);
    }
    await data.seek(progress.dataBytes, Deno.SeekMode.Start);
    await keys.seek(progress.keysBytes, Deno.SeekMode.Start);
  } catch (e) {
    data.close();
    keys?.close();
    throw e;
  }
  return newWriter(dir, header, opts, { data, keys }, {
    keySet,
    labels,
    progress,
    resumed,
  });
}
