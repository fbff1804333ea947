/**
 * The ZIP container of a `torch.save` file (and of other archives the kit
 * reads): random access to its entries through one open file. Opening reads
 * only the end records (Zip64 included) and the central directory, checked
 * against the file's size; each read takes one entry, stored or deflated,
 * within the limits of {@linkcode CheckpointLimitOptions}, with its CRC-32
 * checked where asked.
 *
 * @module
 */

import { inflateBounded } from "../_inflate.ts";
import {
  DEFAULT_MAX_ENTRY_BYTES,
  DEFAULT_MAX_INFLATE_RATIO,
  MAX_ENTRY_BYTES_ENV,
  MAX_INFLATE_RATIO_ENV,
  type ReadLimits,
  resolveReadLimits,
} from "../_limits.ts";
import { CheckpointError } from "../checkpoint_error.ts";
import { crc32 } from "../crc32.ts";
import {
  describeNonZip,
  fileSize,
  internalError,
  isZipHead,
  openError,
  pathLabel,
  readAt,
} from "./_file.ts";

/** One entry of a ZIP archive's central directory. */
export interface ZipEntry {
  /** The entry's path inside the archive. */
  name: string;
  /** Compression method: 0 stored, 8 deflate. */
  method: number;
  /** Bytes in the archive. */
  compressedSize: number;
  /** Bytes once decompressed. */
  size: number;
  /** CRC-32 of the decompressed bytes. */
  crc32: number;
  /** Where the entry's local header starts in the file. */
  localHeaderOffset: number;
}

/** Options of {@linkcode TorchZip.read}. */
export interface ZipReadOptions {
  /**
   * Check the CRC-32 of the bytes read. Always done for deflated entries;
   * for stored ones (torch's) only when this is true (default false: a
   * checksum over a 600 MB checkpoint costs more than reading it).
   */
  verify?: boolean;
}

const SMALL_ENTRY = 1 << 16;

/**
 * Limits on what a checkpoint may make the reader allocate, against damaged
 * or hostile files. Each falls back to an environment variable, then to its
 * default; raise them for real checkpoints that need more.
 *
 * @example
 * ```ts
 * import { readTorchFile } from "tokenlab/io/torch/read.ts";
 * const url = new URL("../../../tests/fixtures/torch/single_f16.pt", import.meta.url);
 * const t = await readTorchFile(url, { maxEntryBytes: 16 * 2 ** 30 }); // a 16 GiB ceiling
 * console.log(t !== null); // true
 * ```
 */
export interface CheckpointLimitOptions {
  /**
   * The most bytes one archive entry (one tensor storage, or `data.pkl`) may
   * hold once read, and one tensor may take once a view that repeats
   * elements (zero or overlapping strides, e.g. `x.expand(...)`) is
   * expanded. Default 4 GiB (2^32 bytes), or the environment variable
   * `TOKENLAB_MAX_ENTRY_BYTES` (a number of bytes, e.g. `8589934592` or
   * `8 GiB`) when it is set and the program may read it (`--allow-env`).
   * An entry declaring more is refused before anything is read.
   */
  maxEntryBytes?: number;
  /**
   * The most bytes a deflated entry may declare per compressed byte.
   * Deflate cannot exceed about 1032:1, so the default, 1100 (or the
   * environment variable `TOKENLAB_MAX_INFLATE_RATIO`), only refuses entries
   * whose declared size is a lie; inflating also stops as soon as the output
   * passes the declared size.
   */
  maxInflateRatio?: number;
  /**
   * The most bytes one read of a checkpoint may allocate for tensor data in
   * all: every storage read (inflated) plus every tensor copied out of a
   * storage (a view of part of one, or one that repeats elements; a tensor
   * that is its whole storage shares it and costs nothing more). Checked
   * before any storage is read. Default 16 GiB, or twice the file's size
   * when that is more (a genuine checkpoint needs about its own size), or
   * the environment variable `TOKENLAB_MAX_TOTAL_BYTES` (e.g. `64 GiB`)
   * when it is set and readable. It stops a small file that makes many
   * views of one storage, each under `maxEntryBytes` but together far more.
   */
  maxTotalBytes?: number;
}

/** Options of {@linkcode TorchZip.open}. */
export interface TorchZipOpenOptions extends CheckpointLimitOptions {
  /** What the file should be, for the message when it is not a ZIP archive. */
  expected?: string;
}

/** The smallest central directory header: 46 bytes plus name, extra, comment. */
const CD_HEADER = 46;

/**
 * Random access to the entries of a ZIP archive (torch checkpoints, score-map
 * stores) through one open file: opening reads only the end records and the
 * central directory, each {@linkcode TorchZip.read} only its entry. Handles
 * Zip64 archives, stored and deflated entries.
 *
 * @example
 * ```ts
 * import { TorchZip } from "tokenlab/io/torch/zip.ts";
 * const url = new URL("../../../tests/fixtures/torch/single_f16.pt", import.meta.url);
 * using zip = await TorchZip.open(url);
 * const pkl = zip.names().find((n) => n.endsWith("/data.pkl"))!;
 * console.log(pkl, (await zip.read(pkl)).length > 0); // single_f16/data.pkl true
 * ```
 */
export class TorchZip {
  /** The file's path, as given. */
  readonly path: string;
  /** The file's size in bytes. */
  readonly fileSize: number;
  #file: Deno.FsFile | null;
  #index: Map<string, number>;
  #names: string[];
  #method: Uint16Array;
  #flags: Uint16Array;
  #crc: Uint32Array;
  #csize: Float64Array;
  #size: Float64Array;
  #offset: Float64Array;
  #nameLen: Uint16Array;
  #extraLen: Uint16Array;
  #limits: ReadLimits;
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(
    path: string,
    file: Deno.FsFile,
    fileSize: number,
    count: number,
    limits: ReadLimits,
  ) {
    this.path = path;
    this.#file = file;
    this.fileSize = fileSize;
    this.#limits = limits;
    this.#index = new Map();
    this.#names = [];
    this.#method = new Uint16Array(count);
    this.#flags = new Uint16Array(count);
    this.#crc = new Uint32Array(count);
    this.#csize = new Float64Array(count);
    this.#size = new Float64Array(count);
    this.#offset = new Float64Array(count);
    this.#nameLen = new Uint16Array(count);
    this.#extraLen = new Uint16Array(count);
  }

  /**
   * Opens a ZIP archive and reads its central directory (not its entries).
   * Every count, size and offset the archive declares is checked against
   * what the file can hold before anything is allocated for it.
   *
   * @example
   * ```ts
   * import { TorchZip } from "tokenlab/io/torch/zip.ts";
   * const zip = await TorchZip.open(new URL("../../../tests/fixtures/torch/single_f16.pt", import.meta.url));
   * console.log(zip.names().length > 0); // true
   * zip.close();
   * ```
   */
  static async open(
    path: string | URL,
    options: TorchZipOpenOptions = {},
  ): Promise<TorchZip> {
    const label = pathLabel(path);
    const expected = options.expected ?? "a ZIP archive";
    const limits = resolveReadLimits(
      options,
      (message) => new CheckpointError(`cannot read ${label}: ${message}`),
    );
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true });
    } catch (e) {
      throw openError(label, e);
    }
    try {
      const size = await fileSize(file, label);
      const head = await readAt(file, 0, Math.min(size, 512), label);
      if (!isZipHead(head)) {
        throw new CheckpointError(
          `cannot read ${label}: expected ${expected}, found ${
            describeNonZip(head, size)
          }`,
        );
      }
      return await TorchZip.#parse(label, file, size, limits);
    } catch (e) {
      file.close();
      throw internalError(e, `cannot read ${label}: the ZIP archive`);
    }
  }

  static async #parse(
    label: string,
    file: Deno.FsFile,
    size: number,
    limits: ReadLimits,
  ): Promise<TorchZip> {
    const bad = (what: string) =>
      new CheckpointError(
        `cannot read ${label}: ${what}; the ZIP archive is damaged or truncated, fetch or copy it again`,
      );
    // End of central directory record: 22 bytes plus a comment of <= 65535.
    const tailLen = Math.min(size, 22 + 65535 + 20);
    const tailStart = size - tailLen;
    const tail = await readAt(file, tailStart, tailLen, label);
    const tv = new DataView(tail.buffer);
    let eocd = -1;
    for (let i = tailLen - 22; i >= 0; i--) {
      if (tv.getUint32(i, true) === 0x06054b50) {
        const commentLen = tv.getUint16(i + 20, true);
        if (i + 22 + commentLen <= tailLen) {
          eocd = i;
          break;
        }
      }
    }
    if (eocd < 0) {
      throw bad(
        "expected an end-of-central-directory record (PK\\x05\\x06) in the last 64 KiB, found none",
      );
    }
    let count = tv.getUint16(eocd + 10, true);
    let cdSize = tv.getUint32(eocd + 12, true);
    let cdOffset = tv.getUint32(eocd + 16, true);
    let record = "end-of-central-directory record";
    // Zip64: a locator just before the EOCD points at the Zip64 EOCD record.
    const locAt = eocd - 20;
    if (locAt >= 0 && tv.getUint32(locAt, true) === 0x07064b50) {
      const z64Offset = u64(
        tv,
        locAt + 8,
        label,
        "the Zip64 locator's record offset",
      );
      if (z64Offset + 56 > size) {
        throw bad(
          `the Zip64 locator points at byte ${z64Offset}, past the end (${size} bytes)`,
        );
      }
      const rec = await readAt(file, z64Offset, 56, label);
      const rv = new DataView(rec.buffer);
      if (rv.getUint32(0, true) !== 0x06064b50) {
        throw bad(
          `expected the Zip64 end-of-central-directory record (PK\\x06\\x06) at byte ${z64Offset}, found other bytes`,
        );
      }
      record = "Zip64 end-of-central-directory record";
      count = u64(rv, 32, label, `the ${record}'s entry count`);
      cdSize = u64(rv, 40, label, `the ${record}'s central directory size`);
      cdOffset = u64(rv, 48, label, `the ${record}'s central directory offset`);
    } else if (
      count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff
    ) {
      throw bad(
        "the end record says the archive is Zip64, but there is no Zip64 locator before it",
      );
    }
    if (cdOffset > size || cdSize > size - cdOffset) {
      throw bad(
        `the central directory (${cdSize} bytes at byte ${cdOffset}, from the ${record}) runs past the end of the file (${size} bytes)`,
      );
    }
    // Each entry takes at least 46 bytes of the central directory, so the
    // count is bounded before anything is allocated for the entries.
    if (count > Math.floor(cdSize / CD_HEADER)) {
      throw bad(
        `the ${record} declares ${count} entries, but its central directory of ${cdSize} bytes holds at most ${
          Math.floor(cdSize / CD_HEADER)
        } (${CD_HEADER} bytes each at least)`,
      );
    }
    const zip = new TorchZip(label, file, size, count, limits);
    const cd = await readAt(file, cdOffset, cdSize, label);
    const v = new DataView(cd.buffer);
    const utf8 = new TextDecoder("utf-8");
    const latin1 = new TextDecoder("latin1");
    let p = 0;
    for (let i = 0; i < count; i++) {
      if (p + CD_HEADER > cd.length || v.getUint32(p, true) !== 0x02014b50) {
        throw bad(
          `expected central directory header ${
            i + 1
          } of ${count} (PK\\x01\\x02) at byte ${
            cdOffset + p
          }, found other bytes`,
        );
      }
      const flags = v.getUint16(p + 8, true);
      const nameLen = v.getUint16(p + 28, true);
      const extraLen = v.getUint16(p + 30, true);
      const commentLen = v.getUint16(p + 32, true);
      if (p + CD_HEADER + nameLen + extraLen + commentLen > cd.length) {
        throw bad(`central directory header ${i + 1} runs past its end`);
      }
      const nameBytes = cd.subarray(p + 46, p + 46 + nameLen);
      const name = (flags & 0x800 ? utf8 : latin1).decode(nameBytes);
      const method = v.getUint16(p + 10, true);
      let usize = v.getUint32(p + 24, true);
      let csize = v.getUint32(p + 20, true);
      let offset = v.getUint32(p + 42, true);
      if (
        usize === 0xffffffff || csize === 0xffffffff || offset === 0xffffffff
      ) {
        // Zip64 extended information extra field (id 0x0001).
        let q = p + 46 + nameLen;
        const end = q + extraLen;
        let found = false;
        while (q + 4 <= end) {
          const id = v.getUint16(q, true);
          const len = v.getUint16(q + 2, true);
          if (q + 4 + len > end) break;
          if (id === 0x0001) {
            let r = q + 4;
            const need = (usize === 0xffffffff ? 8 : 0) +
              (csize === 0xffffffff ? 8 : 0) +
              (offset === 0xffffffff ? 8 : 0);
            if (len < need) break;
            const field = (what: string) => `entry "${name}"'s Zip64 ${what}`;
            if (usize === 0xffffffff) {
              usize = u64(v, r, label, field("uncompressed size"));
              r += 8;
            }
            if (csize === 0xffffffff) {
              csize = u64(v, r, label, field("compressed size"));
              r += 8;
            }
            if (offset === 0xffffffff) {
              offset = u64(v, r, label, field("local header offset"));
              r += 8;
            }
            found = true;
            break;
          }
          q += 4 + len;
        }
        if (!found) {
          throw bad(
            `entry "${name}" needs a Zip64 extra field for its sizes or offset, found none`,
          );
        }
      }
      // Where the entry lies must be inside the file (its local header
      // before the central directory's end, its data no longer than the file).
      if (offset + 30 > size || csize > size - offset - 30) {
        throw bad(
          `entry "${name}" declares ${csize} compressed bytes at byte ${offset} (its local header offset), past the end of the file (${size} bytes)`,
        );
      }
      if (method === 0 && !(flags & 1) && csize !== usize) {
        throw bad(
          `entry "${name}" is stored (not compressed) but declares ${csize} bytes in the archive and ${usize} once read; they must be equal`,
        );
      }
      zip.#names.push(name);
      zip.#index.set(name, i);
      zip.#method[i] = method;
      zip.#flags[i] = flags;
      zip.#crc[i] = v.getUint32(p + 16, true);
      zip.#csize[i] = csize;
      zip.#size[i] = usize;
      zip.#offset[i] = offset;
      zip.#nameLen[i] = nameLen;
      zip.#extraLen[i] = extraLen;
      p += CD_HEADER + nameLen + extraLen + commentLen;
    }
    return zip;
  }

  /**
   * The entries' names, in central-directory order.
   *
   * @example
   * ```ts
   * import { TorchZip } from "tokenlab/io/torch/zip.ts";
   * using zip = await TorchZip.open(new URL("../../../tests/fixtures/torch/single_f16.pt", import.meta.url));
   * console.log(zip.names()); // [ "single_f16/data.pkl", "single_f16/data/0", "single_f16/version" ] (order as written)
   * ```
   */
  names(): string[] {
    return [...this.#names];
  }

  /** Whether the archive has an entry of this name. */
  has(name: string): boolean {
    return this.#index.has(name);
  }

  /** The central-directory record of an entry, or undefined if absent. */
  entry(name: string): ZipEntry | undefined {
    const i = this.#index.get(name);
    if (i === undefined) return undefined;
    return {
      name,
      method: this.#method[i],
      compressedSize: this.#csize[i],
      size: this.#size[i],
      crc32: this.#crc[i],
      localHeaderOffset: this.#offset[i],
    };
  }

  /**
   * The bytes of one entry (decompressed), in a new buffer of their own
   * (byte offset 0, so typed-array views of any element size fit).
   *
   * @example
   * ```ts
   * import { TorchZip } from "tokenlab/io/torch/zip.ts";
   * using zip = await TorchZip.open(new URL("../../../tests/fixtures/torch/single_f16.pt", import.meta.url));
   * const version = zip.names().find((n) => n.endsWith("/version"))!;
   * console.log(new TextDecoder().decode(await zip.read(version)).trim()); // 3
   * ```
   */
  async read(name: string, options: ZipReadOptions = {}): Promise<Uint8Array> {
    const i = this.#index.get(name);
    if (i === undefined) {
      const some = this.#names.slice(0, 8).map((n) => JSON.stringify(n));
      throw new CheckpointError(
        `${this.path}: expected an entry "${name}" in the ZIP archive, found none (it has ${this.#names.length} entries${
          some.length ? ", e.g. " + some.join(", ") : ""
        }); check the entry name`,
      );
    }
    try {
      return await this.#readEntry(i, name, options);
    } catch (e) {
      throw internalError(e, `${this.path}: entry "${name}"`);
    }
  }

  async #readEntry(
    i: number,
    name: string,
    options: ZipReadOptions,
  ): Promise<Uint8Array> {
    const method = this.#method[i];
    if (this.#flags[i] & 1) {
      throw new CheckpointError(
        `${this.path}: entry "${name}" is encrypted; tokenlab reads unencrypted archives only, re-create the archive without a password`,
      );
    }
    if (method !== 0 && method !== 8) {
      throw new CheckpointError(
        `${this.path}: entry "${name}" uses ZIP compression method ${method}; expected 0 (stored, as torch writes) or 8 (deflate); re-create the archive with one of those`,
      );
    }
    const size = this.#size[i];
    const csize = this.#csize[i];
    const { maxEntryBytes, maxInflateRatio } = this.#limits;
    if (size > maxEntryBytes) {
      throw new CheckpointError(
        `${this.path}: entry "${name}" declares ${size} bytes, more than the limit of ${maxEntryBytes} (maxEntryBytes); if the checkpoint is genuine, raise it with the maxEntryBytes option or the ${MAX_ENTRY_BYTES_ENV} environment variable (default ${DEFAULT_MAX_ENTRY_BYTES})`,
      );
    }
    if (method === 8 && size > maxInflateRatio * Math.max(csize, 1)) {
      throw new CheckpointError(
        `${this.path}: entry "${name}" declares ${size} bytes once inflated from ${csize} compressed bytes, a ratio of ${
          Math.round(size / Math.max(csize, 1))
        }:1 beyond the limit of ${maxInflateRatio}:1 (maxInflateRatio; deflate itself cannot exceed about 1032:1); the archive is damaged or a decompression bomb. If it is genuine, raise the maxInflateRatio option or the ${MAX_INFLATE_RATIO_ENV} environment variable (default ${DEFAULT_MAX_INFLATE_RATIO})`,
      );
    }
    const raw = await this.#exclusive(() => this.#readRaw(i, name));
    let out = raw;
    if (method === 8) {
      const r = await inflateBounded(raw, size);
      if (!r.ok) {
        const what = r.reason === "over"
          ? `inflates to more than the ${size} bytes it declares (stopped after ${r.produced} of its ${csize} compressed bytes' output)`
          : r.reason === "short"
          ? `should hold ${size} bytes, found ${r.produced} once inflated from ${csize} compressed bytes`
          : `is not valid deflate data (${
            (r.error as Error)?.message ?? String(r.error)
          })`;
        throw new CheckpointError(
          `${this.path}: entry "${name}" ${what}; the archive is damaged, fetch or copy it again`,
          r.reason === "invalid" ? { cause: r.error } : undefined,
        );
      }
      out = r.bytes;
    }
    if (out.length !== size) {
      throw new CheckpointError(
        `${this.path}: entry "${name}" should hold ${size} bytes, found ${out.length}; the archive is damaged, fetch or copy it again`,
      );
    }
    if (method === 8 || options.verify) {
      const c = crc32(out);
      if (c !== this.#crc[i]) {
        throw new CheckpointError(
          `${this.path}: entry "${name}" has CRC-32 ${
            c.toString(16)
          }, expected ${
            this.#crc[i].toString(16)
          }; the archive is damaged, fetch or copy it again`,
        );
      }
    }
    return out;
  }

  /** Runs `fn` with the file to itself (seek + read pairs must not interleave). */
  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => {});
    return run;
  }

  async #readRaw(i: number, name: string): Promise<Uint8Array> {
    const file = this.#file;
    if (!file) {
      throw new CheckpointError(
        `${this.path}: the archive was closed; open it again to read "${name}"`,
      );
    }
    const offset = this.#offset[i];
    const csize = this.#csize[i];
    const nameLen = this.#nameLen[i];
    const damaged = (what: string) =>
      new CheckpointError(
        `${this.path}: entry "${name}": ${what}; the archive is damaged or truncated, fetch or copy it again`,
      );
    if (offset + 30 > this.fileSize) {
      throw damaged(
        `its local header offset ${offset} is past the end of the file (${this.fileSize} bytes)`,
      );
    }
    // Small entries: header and data in one read, guessing the local extra
    // field's length (torch pads it for 64-byte alignment).
    const guess = 30 + nameLen + this.#extraLen[i] + 128;
    const oneRead = csize <= SMALL_ENTRY;
    const first = Math.min(
      this.fileSize - offset,
      oneRead ? guess + csize : 30,
    );
    const head = await readAt(file, offset, first, this.path);
    const hv = new DataView(head.buffer);
    if (hv.getUint32(0, true) !== 0x04034b50) {
      throw damaged(
        `expected a local file header (PK\\x03\\x04) at byte ${offset}, found other bytes`,
      );
    }
    const start = 30 + hv.getUint16(26, true) + hv.getUint16(28, true);
    if (offset + start + csize > this.fileSize) {
      throw damaged(
        `its ${csize} bytes of data at byte ${
          offset + start
        } run past the end of the file (${this.fileSize} bytes)`,
      );
    }
    if (start + csize <= head.length) {
      return head.slice(start, start + csize);
    }
    return await readAt(file, offset + start, csize, this.path);
  }

  /** Closes the file; later reads fail. Closing twice is harmless. */
  close(): void {
    if (this.#file) {
      this.#file.close();
      this.#file = null;
    }
  }

  /** Closes the file (for `using`). */
  [Symbol.dispose](): void {
    this.close();
  }
}

function u64(
  v: DataView,
  at: number,
  label: string,
  field: string,
): number {
  const x = v.getBigUint64(at, true);
  if (x > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new CheckpointError(
      `cannot read ${label}: ${field} is ${x}, beyond 2^53 (no file is that large); the archive is damaged, fetch or copy it again`,
    );
  }
  return Number(x);
}
