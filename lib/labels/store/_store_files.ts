/**
 * The files of an open store as its reads see them: `maps.bin` (opened and
 * checked against the header's size at open), a few more handles onto it
 * for a batch's records read at once (async), blocking or async reads of
 * exact byte ranges, what has been read (for profiling), and closing.
 *
 * Internal to `lib/labels/store/`.
 *
 * @module
 */

import { ScoreMapError } from "../score_map.ts";
import { damaged, DATA, readFull, readFullSync } from "./_format.ts";
import type { ScoreMapStoreHeader } from "./format.ts";

/** File handles a batch read uses at once (async reads). */
const READ_HANDLES = 4;

/** How {@linkcode StoreFiles.open} reads, and what opening has read already. */
export interface StoreFilesOptions {
  /** Blocking reads (`io: "sync"`) instead of async ones. */
  sync: boolean;
  /** Bytes of `header.json`, read at open (one read, in the stats). */
  headerBytes: number;
}

/** The data file and read counters of one open store. */
export class StoreFiles {
  /** The store's folder. */
  readonly path: string;
  #data: Deno.FsFile | null;
  #sync: boolean;
  #pool: Deno.FsFile[] = [];
  #reads: number;
  #bytesRead: number;
  #closed = false;

  private constructor(
    path: string,
    data: Deno.FsFile,
    options: StoreFilesOptions,
  ) {
    this.path = path;
    this.#data = data;
    this.#sync = options.sync;
    this.#reads = 1;
    this.#bytesRead = options.headerBytes;
  }

  /** Opens `maps.bin` of the store at `dir` and checks its size against `header`. */
  static async open(
    dir: string,
    header: ScoreMapStoreHeader,
    options: StoreFilesOptions,
  ): Promise<StoreFiles> {
    const data = `${dir}/${DATA}`;
    let file: Deno.FsFile;
    try {
      file = await Deno.open(data, { read: true });
    } catch (e) {
      throw new ScoreMapError(
        `score-map store ${dir} is incomplete: cannot open ${DATA} (${
          (e as Error).message
        }); copy the whole folder again`,
        { cause: e },
      );
    }
    try {
      const size = (await file.stat()).size;
      const want = header.count * header.record.bytes;
      if (size !== want) {
        throw damaged(
          dir,
          `${DATA} should hold ${header.count} records of ${header.record.bytes} bytes (${want} bytes), found ${size} bytes (${
            size < want ? "truncated, an interrupted copy?" : "extra bytes"
          })`,
        );
      }
    } catch (e) {
      file.close();
      throw e;
    }
    return new StoreFiles(dir, file, options);
  }

  /** Whether the store is closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Reads and bytes read since opening. */
  get stats(): { reads: number; bytesRead: number } {
    return { reads: this.#reads, bytesRead: this.#bytesRead };
  }

  /** `maps.bin`'s handle; throws if the store is closed. */
  data(): Deno.FsFile {
    if (this.#closed || !this.#data) {
      throw new ScoreMapError(
        `the score-map store ${this.path} is closed; open it again with ScoreMapStore.open`,
      );
    }
    return this.#data;
  }

  /** Reads exactly `out.length` bytes at `offset` of `file` (a file `name` of the store), counted in the stats. */
  async read(
    file: Deno.FsFile,
    offset: number,
    out: Uint8Array,
    name: string,
  ): Promise<void> {
    this.#reads++;
    this.#bytesRead += out.length;
    const what = () => `reading ${this.path}/${name}`;
    try {
      if (this.#sync) readFullSync(file, offset, out, what);
      else await readFull(file, offset, out, what);
    } catch (e) {
      if (e instanceof ScoreMapError) throw e;
      // The file system refused (a folder where a file belongs, an offset
      // it cannot seek to): the store is damaged, not the program.
      throw new ScoreMapError(
        `${what()}: ${out.length} bytes at byte ${offset} could not be read (${
          (e as Error).message
        }); the store is damaged, rebuild it or copy it again`,
        { cause: e },
      );
    }
  }

  /** Reads records of maps.bin: in parallel through a few handles (async), or one after another (sync). */
  async readRecords(
    reqs: { offset: number; buf: Uint8Array }[],
  ): Promise<void> {
    const data = this.data();
    if (this.#sync || reqs.length === 1) {
      for (const r of reqs) await this.read(data, r.offset, r.buf, DATA);
      return;
    }
    if (this.#pool.length === 0) {
      this.#pool.push(data);
      for (let i = 1; i < READ_HANDLES; i++) {
        this.#pool.push(
          await Deno.open(`${this.path}/${DATA}`, { read: true }),
        );
      }
    }
    const pool = this.#pool;
    await Promise.all(pool.map(async (f, w) => {
      for (let i = w; i < reqs.length; i += pool.length) {
        await this.read(f, reqs[i].offset, reqs[i].buf, DATA);
      }
    }));
  }

  /** Closes the handles (reads after this fail). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const f of [...this.#pool.slice(1), this.#data]) {
      try {
        f?.close();
      } catch { /* already closed */ }
    }
    this.#pool = [];
    this.#data = null;
  }
}
