/**
 * Reading PyTorch checkpoints (`torch.save` output: `.pt`, `.pth`,
 * `.pth.tar`) in plain TypeScript, without Python and without tfjs.
 *
 * A checkpoint written by torch >= 1.6 is a ZIP archive holding
 * `<folder>/data.pkl` (a pickle of the saved object), one file
 * `<folder>/data/<key>` per tensor storage, and `<folder>/version`. The
 * pickle is read by a restricted unpickler that never runs anything: it knows
 * only the opcodes torch writes for state dicts and training checkpoints, and
 * only an allow-list of globals (`collections.OrderedDict`, the tensor and
 * parameter rebuild functions, the typed storage classes, `argparse.Namespace`
 * and `_codecs.encode` for bytes). Anything else is refused with a
 * {@linkcode CheckpointError} naming what was asked for.
 *
 * @module
 */

import {
  dataView,
  itemSize,
  type RawData,
  type RawDType,
  type RawTensor,
} from "./raw_tensor.ts";
import { inflateBounded } from "./_inflate.ts";
import {
  DEFAULT_MAX_ENTRY_BYTES,
  DEFAULT_MAX_INFLATE_RATIO,
  DEFAULT_MAX_TOTAL_BYTES,
  defaultMaxTotalBytes,
  MAX_ENTRY_BYTES_ENV,
  MAX_INFLATE_RATIO_ENV,
  MAX_TOTAL_BYTES_ENV,
  type ReadLimits,
  resolveReadLimits,
} from "./_limits.ts";
import { CheckpointError } from "./checkpoint_error.ts";
import { crc32 } from "./crc32.ts";

export { CheckpointError } from "./checkpoint_error.ts";

function pathLabel(path: string | URL): string {
  if (path instanceof URL) {
    return path.protocol === "file:" ? decodeURIComponent(path.pathname) : path
      .href;
  }
  return path;
}

// ---------------------------------------------------------------------------
// Reading the bytes of a file at an offset, and naming what a file is.

async function readAt(
  file: Deno.FsFile,
  offset: number,
  length: number,
  label: string,
): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  await file.seek(offset, Deno.SeekMode.Start);
  let done = 0;
  while (done < length) {
    const n = await file.read(out.subarray(done));
    if (n === null || n === 0) {
      throw new CheckpointError(
        `${label}: expected ${length} bytes at byte ${offset}, found the end of the file after ${done}; the file is truncated (an interrupted download or copy?), fetch or copy it again`,
      );
    }
    done += n;
  }
  return out;
}

const LEGACY_MAGIC = [
  0x8a,
  0x0a,
  0x6c,
  0xfc,
  0x9c,
  0x46,
  0xf9,
  0x20,
  0x6a,
  0xa8,
  0x50,
  0x19,
];

function startsWith(head: Uint8Array, bytes: number[], at = 0): boolean {
  if (head.length < at + bytes.length) return false;
  for (let i = 0; i < bytes.length; i++) {
    if (head[at + i] !== bytes[i]) return false;
  }
  return true;
}

function ascii(head: Uint8Array, from: number, to: number): string {
  let s = "";
  for (let i = from; i < Math.min(to, head.length); i++) {
    s += String.fromCharCode(head[i]);
  }
  return s;
}

/** Whether the first bytes are those of a ZIP archive. */
function isZipHead(head: Uint8Array): boolean {
  return startsWith(head, [0x50, 0x4b, 0x03, 0x04]) ||
    startsWith(head, [0x50, 0x4b, 0x05, 0x06]) ||
    startsWith(head, [0x50, 0x4b, 0x07, 0x08]);
}

/**
 * Says what a file that is not a ZIP archive is, from its first bytes, and
 * what to do about it (for error messages).
 */
function describeNonZip(head: Uint8Array, size: number): string {
  if (size === 0) return "an empty file (0 bytes); fetch or copy it again";
  if (
    head[0] === 0x80 && head[1] >= 1 && head[1] <= 5 &&
    startsWith(head, LEGACY_MAGIC, 2)
  ) {
    return "the legacy PyTorch format (torch < 1.6, or torch.save(..., _use_new_zipfile_serialization=False)), a chain of raw pickles that tokenlab does not read; re-save it as a zip checkpoint with torch >= 1.6: torch.save(torch.load(old_path, map_location='cpu'), new_path)";
  }
  if (head[0] === 0x80 && head[1] >= 1 && head[1] <= 5) {
    return "a plain Python pickle, not a torch.save zip archive; tokenlab only reads the zip checkpoints torch >= 1.6 writes: save the tensors with torch.save(obj, path)";
  }
  if (ascii(head, 257, 262) === "ustar") {
    return "a tar archive (the format of torch < 0.4, or a .tar of several files; a .pth.tar written by torch >= 1.6 is a zip despite its name); extract it, or load it in Python and re-save with torch.save(obj, path) in torch >= 1.6";
  }
  if (head[0] === 0x1f && head[1] === 0x8b) {
    return "a gzip-compressed file; decompress it first (gunzip) and read the result";
  }
  if (startsWith(head, [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59])) {
    return "a NumPy .npy file, not a torch checkpoint";
  }
  if (startsWith(head, [0x89, 0x48, 0x44, 0x46])) {
    return "an HDF5 file (e.g. a Keras .h5), not a torch checkpoint";
  }
  const text = ascii(head, 0, 64);
  if (text.startsWith("version https://git-lfs")) {
    return "a Git LFS pointer, not the checkpoint itself; fetch the real file (git lfs pull)";
  }
  if (/^\s*<(!doctype|html|\?xml)/i.test(text)) {
    return "an HTML/XML page (a failed download, e.g. a login or error page?); download the checkpoint again";
  }
  if (size >= 10 && head[8] === 0x7b) {
    return "a safetensors file (8-byte header length, then a JSON header); read it with readSafetensors from tokenlab/io/safetensors.ts";
  }
  const hex = [...head.subarray(0, 8)].map((b) =>
    b.toString(16).padStart(2, "0")
  ).join(" ");
  return `an unknown format (first bytes ${hex}), not a ZIP archive; torch.save (torch >= 1.6) writes ZIP archives starting with "PK"`;
}

// ---------------------------------------------------------------------------
// The ZIP reader.

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
 * import { readTorchFile } from "tokenlab/io/torch.ts";
 * const url = new URL("../../tests/fixtures/torch/single_f16.pt", import.meta.url);
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
 * import { TorchZip } from "tokenlab/io/torch.ts";
 * const url = new URL("../../tests/fixtures/torch/single_f16.pt", import.meta.url);
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
   * import { TorchZip } from "tokenlab/io/torch.ts";
   * const zip = await TorchZip.open(new URL("../../tests/fixtures/torch/single_f16.pt", import.meta.url));
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
   * import { TorchZip } from "tokenlab/io/torch.ts";
   * using zip = await TorchZip.open(new URL("../../tests/fixtures/torch/single_f16.pt", import.meta.url));
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
   * import { TorchZip } from "tokenlab/io/torch.ts";
   * using zip = await TorchZip.open(new URL("../../tests/fixtures/torch/single_f16.pt", import.meta.url));
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

/**
 * Passes a CheckpointError through; turns an engine error (a RangeError or
 * TypeError from a check that should have come first) into one, naming
 * `where`, so a damaged file never surfaces as a bare engine error.
 */
function internalError(e: unknown, where: string): unknown {
  if (e instanceof RangeError || e instanceof TypeError) {
    return new CheckpointError(
      `${where} could not be read (${e.name}: ${e.message}); the file is damaged or hostile, fetch or copy it again`,
      { cause: e },
    );
  }
  return e;
}

async function fileSize(file: Deno.FsFile, label: string): Promise<number> {
  const stat = await file.stat();
  if (stat.isDirectory) {
    throw new CheckpointError(
      `cannot read ${label}: expected a file, found a directory; name the checkpoint file inside it`,
    );
  }
  return stat.size;
}

function openError(label: string, e: unknown): Error {
  if (e instanceof Deno.errors.NotFound) {
    return new CheckpointError(
      `cannot read ${label}: expected a file there, found nothing; check the path`,
      { cause: e },
    );
  }
  if (e instanceof Deno.errors.PermissionDenied) {
    return new CheckpointError(
      `cannot read ${label}: permission denied (${
        (e as Error).message
      }); run with --allow-read or fix the file's permissions`,
      { cause: e },
    );
  }
  if (e instanceof Deno.errors.IsADirectory) {
    return new CheckpointError(
      `cannot read ${label}: expected a file, found a directory; name the checkpoint file inside it`,
      { cause: e },
    );
  }
  return e as Error;
}

// ---------------------------------------------------------------------------
// Values the unpickler produces.

/** A dict key as read from a pickle. */
export type PickleKey = string | number | bigint | boolean | null;

/** A record built from an `argparse.Namespace` (its attributes). */
export interface PickleRecord {
  /** One attribute. */
  [key: string]: PickleValue;
}

/**
 * A value read from a checkpoint: `null` (None), booleans, numbers (ints
 * beyond 2^53 as bigint), strings, bytes, arrays (lists, tuples and sets),
 * `Map`s (dicts and OrderedDicts), tensors and records (Namespace).
 */
export type PickleValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | TorchTensor
  | PickleValue[]
  | Map<PickleKey, PickleValue>
  | PickleRecord;

/** Where a {@linkcode TorchTensor}'s elements live in the archive. */
export interface TorchStorageView {
  /** The storage's key: its data is the archive entry `<folder>/data/<key>`. */
  key: string;
  /** Elements in the whole storage. */
  storageNumel: number;
  /** Index of the tensor's first element in the storage. */
  offset: number;
  /** Elements to step along each axis (torch's `stride()`). */
  stride: number[];
}

/**
 * A tensor read from a checkpoint: a {@linkcode RawTensor} (contiguous,
 * row-major data) plus what torch recorded about it.
 */
export class TorchTensor implements RawTensor {
  /** Element type (from the storage class). */
  readonly dtype: RawDType;
  /** Sizes of the axes. */
  readonly shape: number[];
  /** The elements in row-major order; empty until loaded (see `loaded`). */
  data: RawData;
  /** Whether `data` holds the elements yet. */
  loaded = false;
  /** torch's `requires_grad`. */
  requiresGrad: boolean;
  /** Whether it was saved as an `nn.Parameter`. */
  isParameter = false;
  /** Where the elements come from in the archive. */
  readonly storage: TorchStorageView;

  /** Makes an unloaded tensor (the unpickler does this). */
  constructor(
    dtype: RawDType,
    shape: number[],
    storage: TorchStorageView,
    requiresGrad: boolean,
  ) {
    this.dtype = dtype;
    this.shape = shape;
    this.storage = storage;
    this.requiresGrad = requiresGrad;
    this.data = dataView(dtype, new ArrayBuffer(0), 0, 0);
  }
}

/**
 * Whether a value read from a checkpoint is a tensor.
 *
 * @example
 * ```ts
 * import { isTorchTensor } from "tokenlab/io/torch.ts";
 * console.log(isTorchTensor(3)); // false
 * ```
 */
export function isTorchTensor(value: unknown): value is TorchTensor {
  return value instanceof TorchTensor;
}

const pickleStates = new WeakMap<object, PickleValue>();

/**
 * The state a pickle attached to a value with BUILD, if any: for a state dict
 * saved by `nn.Module.state_dict()` a dict holding `_metadata` (per-module
 * `version`s, e.g. BatchNorm's).
 *
 * @example
 * ```ts
 * import { pickleState } from "tokenlab/io/torch.ts";
 * console.log(pickleState(new Map())); // undefined
 * ```
 */
export function pickleState(value: object): PickleValue | undefined {
  return pickleStates.get(value);
}

// ---------------------------------------------------------------------------
// The restricted unpickler.

class Global {
  constructor(readonly module: string, readonly name: string) {}
  get full(): string {
    return `${this.module}.${this.name}`;
  }
}

class StorageRef {
  constructor(
    readonly dtype: RawDType,
    readonly key: string,
    readonly numel: number,
  ) {}
}

const STORAGE_DTYPES: Record<string, RawDType> = {
  FloatStorage: "float32",
  HalfStorage: "float16",
  BFloat16Storage: "bfloat16",
  DoubleStorage: "float64",
  LongStorage: "int64",
  IntStorage: "int32",
  ShortStorage: "int16",
  CharStorage: "int8",
  ByteStorage: "uint8",
  BoolStorage: "bool",
};

const ALLOWED_GLOBALS = new Set([
  "collections.OrderedDict",
  "torch._utils._rebuild_tensor_v2",
  "torch._utils._rebuild_parameter",
  "torch._utils._rebuild_parameter_with_state",
  "argparse.Namespace",
  "_codecs.encode",
  ...Object.keys(STORAGE_DTYPES).map((s) => `torch.${s}`),
]);

const OPCODE_NAMES: Record<number, string> = {
  0x28: "MARK",
  0x2e: "STOP",
  0x30: "POP",
  0x31: "POP_MARK",
  0x32: "DUP",
  0x46: "FLOAT",
  0x49: "INT",
  0x4a: "BININT",
  0x4b: "BININT1",
  0x4c: "LONG",
  0x4d: "BININT2",
  0x4e: "NONE",
  0x50: "PERSID",
  0x51: "BINPERSID",
  0x52: "REDUCE",
  0x53: "STRING",
  0x54: "BINSTRING",
  0x55: "SHORT_BINSTRING",
  0x56: "UNICODE",
  0x58: "BINUNICODE",
  0x61: "APPEND",
  0x62: "BUILD",
  0x63: "GLOBAL",
  0x64: "DICT",
  0x7d: "EMPTY_DICT",
  0x65: "APPENDS",
  0x67: "GET",
  0x68: "BINGET",
  0x69: "INST",
  0x6a: "LONG_BINGET",
  0x6c: "LIST",
  0x5d: "EMPTY_LIST",
  0x6f: "OBJ",
  0x70: "PUT",
  0x71: "BINPUT",
  0x72: "LONG_BINPUT",
  0x73: "SETITEM",
  0x74: "TUPLE",
  0x29: "EMPTY_TUPLE",
  0x75: "SETITEMS",
  0x47: "BINFLOAT",
  0x80: "PROTO",
  0x81: "NEWOBJ",
  0x82: "EXT1",
  0x83: "EXT2",
  0x84: "EXT4",
  0x85: "TUPLE1",
  0x86: "TUPLE2",
  0x87: "TUPLE3",
  0x88: "NEWTRUE",
  0x89: "NEWFALSE",
  0x8a: "LONG1",
  0x8b: "LONG4",
  0x42: "BINBYTES",
  0x43: "SHORT_BINBYTES",
  0x8c: "SHORT_BINUNICODE",
  0x8d: "BINUNICODE8",
  0x8e: "BINBYTES8",
  0x8f: "EMPTY_SET",
  0x90: "ADDITEMS",
  0x91: "FROZENSET",
  0x92: "NEWOBJ_EX",
  0x93: "STACK_GLOBAL",
  0x94: "MEMOIZE",
  0x95: "FRAME",
  0x96: "BYTEARRAY8",
  0x97: "NEXT_BUFFER",
  0x98: "READONLY_BUFFER",
};

const utf8Decoder = new TextDecoder("utf-8");

function describe(v: unknown): string {
  if (v === null) return "None";
  if (v instanceof TorchTensor) {
    return `a ${v.dtype} tensor of shape [${v.shape.join(", ")}]`;
  }
  if (v instanceof Map) return `a dict with ${v.size} entries`;
  if (Array.isArray(v)) return `a list/tuple of ${v.length}`;
  if (v instanceof Uint8Array) return `bytes (${v.length})`;
  if (v instanceof Global) return `the global ${v.full}`;
  if (v instanceof StorageRef) return `a ${v.dtype} storage`;
  if (typeof v === "string") return `the string ${JSON.stringify(v)}`;
  if (typeof v === "object") return "an object (Namespace)";
  return `the ${typeof v} ${String(v)}`;
}

function setProp(obj: PickleRecord, key: string, value: PickleValue): void {
  Object.defineProperty(obj, key, {
    value,
    enumerable: true,
    writable: true,
    configurable: true,
  });
}

class Unpickler {
  #b: Uint8Array;
  #v: DataView;
  #pos = 0;
  #stack: unknown[] = [];
  #marks: number[] = [];
  #memo = new Map<number, unknown>();
  #storages = new Map<string, StorageRef>();
  /**
   * What the builders (REDUCE, BUILD) may still copy, in items: a memoized
   * argument used again costs 5 bytes of pickle per call, so without a
   * budget a small pickle could copy one large value millions of times.
   * A pickle torch writes copies less than its own length.
   */
  #budget: number;
  readonly tensors: TorchTensor[] = [];

  constructor(bytes: Uint8Array, readonly label: string) {
    this.#b = bytes;
    this.#v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#budget = 4 * bytes.length + 4096;
  }

  /** Charges `items` copied by a builder to the budget; refuses past it. */
  #spend(items: number, what: string): void {
    this.#budget -= items;
    if (this.#budget < 0) {
      this.#damaged(
        `${what} makes the pickle build more than ${
          4 * this.#b.length + 4096
        } items from its ${this.#b.length} bytes (the same large value used again and again?); torch.save never writes that`,
      );
    }
  }

  #refuse(what: string): never {
    throw new CheckpointError(`refusing to load ${this.label}: ${what}`);
  }

  #damaged(what: string): never {
    throw new CheckpointError(
      `cannot read ${this.label}: ${what} in data.pkl at byte ${this.#pos}; the pickle is damaged or not one torch.save wrote, fetch the checkpoint again or re-save it with torch.save(obj, path)`,
    );
  }

  #need(n: number, what?: string): number {
    const at = this.#pos;
    if (n < 0 || at + n > this.#b.length) {
      this.#damaged(
        `${what ? what + ": " : ""}expected ${n} more bytes, found ${
          this.#b.length - at
        } (truncated)`,
      );
    }
    this.#pos = at + n;
    return at;
  }

  #u8(): number {
    return this.#b[this.#need(1)];
  }
  #u16(): number {
    return this.#v.getUint16(this.#need(2), true);
  }
  #u32(): number {
    return this.#v.getUint32(this.#need(4), true);
  }
  #u64(): number {
    const x = this.#v.getBigUint64(this.#need(8), true);
    if (x > BigInt(this.#b.length)) {
      this.#damaged(`a length of ${x} bytes, beyond the pickle's size`);
    }
    return Number(x);
  }

  /** `n` bytes of the pickle (a view), refused when fewer are left. */
  #bytes(n: number, what: string): Uint8Array {
    const at = this.#need(n, what);
    return this.#b.subarray(at, at + n);
  }

  #line(): string {
    const at = this.#pos;
    const end = this.#b.indexOf(0x0a, at);
    if (end < 0) this.#damaged("expected a newline-terminated name");
    this.#pos = end + 1;
    return utf8Decoder.decode(this.#b.subarray(at, end));
  }

  #pop(): unknown {
    if (this.#stack.length === 0 || this.#stack.length <= this.#topMark()) {
      this.#damaged("expected a value on the stack, found none");
    }
    return this.#stack.pop();
  }

  #top(): unknown {
    if (this.#stack.length === 0) {
      this.#damaged("expected a value on the stack, found none");
    }
    return this.#stack[this.#stack.length - 1];
  }

  #topMark(): number {
    return this.#marks.length ? this.#marks[this.#marks.length - 1] : 0;
  }

  #popMark(): unknown[] {
    const m = this.#marks.pop();
    if (m === undefined) this.#damaged("expected a MARK, found none");
    return this.#stack.splice(m);
  }

  #long(bytes: Uint8Array): number | bigint {
    if (bytes.length === 0) return 0;
    // Through hex digits: linear in the length, where shifting a BigInt
    // byte by byte would be quadratic on a long LONG4.
    let hex = "";
    for (let i = bytes.length - 1; i >= 0; i--) {
      hex += bytes[i].toString(16).padStart(2, "0");
    }
    let x = BigInt("0x" + hex);
    if (bytes[bytes.length - 1] & 0x80) x -= 1n << BigInt(8 * bytes.length);
    return x >= -BigInt(Number.MAX_SAFE_INTEGER) &&
        x <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(x)
      : x;
  }

  #global(module: string, name: string): Global {
    const g = new Global(module, name);
    if (!ALLOWED_GLOBALS.has(g.full)) {
      const hint = module === "numpy" || module.startsWith("numpy.")
        ? "It holds NumPy values (e.g. a metric saved as np.float64): load it in Python, turn them into Python numbers (float(x), x.tolist()) or drop them, and re-save with torch.save(obj, path); or save only the weights: torch.save(model.state_dict(), path)"
        : "If the file holds a whole pickled model or other Python objects, load it in Python and re-save only the weights: torch.save(model.state_dict(), path)";
      this.#refuse(
        `the pickle asks for global "${g.full}", which is not a tensor, storage or dict; tokenlab only reads state dicts and never runs code from a checkpoint. ${hint}`,
      );
    }
    return g;
  }

  #memoPut(index: number): void {
    this.#memo.set(index, this.#top());
  }

  #key(k: unknown): PickleKey {
    if (
      k === null || typeof k === "string" || typeof k === "number" ||
      typeof k === "bigint" || typeof k === "boolean"
    ) return k;
    this.#refuse(
      `a dict has a key that is ${
        describe(k)
      }; tokenlab reads dicts keyed by strings or numbers only (as state dicts and training checkpoints are)`,
    );
  }

  #setItems(dict: unknown, items: unknown[]): void {
    if (!(dict instanceof Map)) {
      this.#damaged(`expected a dict to set items on, found ${describe(dict)}`);
    }
    for (let i = 0; i + 1 < items.length; i += 2) {
      dict.set(this.#key(items[i]), items[i + 1]);
    }
  }

  #appendTo(list: unknown, items: unknown[]): void {
    if (!Array.isArray(list)) {
      this.#damaged(`expected a list to append to, found ${describe(list)}`);
    }
    for (const x of items) list.push(x);
  }

  #reduce(fn: unknown, args: unknown): unknown {
    if (!(fn instanceof Global)) {
      this.#damaged(
        `expected a callable global for REDUCE, found ${describe(fn)}`,
      );
    }
    if (!Array.isArray(args)) {
      this.#damaged(
        `expected an argument tuple for ${fn.full}, found ${describe(args)}`,
      );
    }
    switch (fn.full) {
      case "collections.OrderedDict": {
        const m = new Map<PickleKey, unknown>();
        if (args.length > 0 && Array.isArray(args[0])) {
          this.#spend(args[0].length, "collections.OrderedDict(items)");
          for (const pair of args[0]) {
            if (Array.isArray(pair) && pair.length === 2) {
              m.set(this.#key(pair[0]), pair[1]);
            }
          }
        }
        return m;
      }
      case "torch._utils._rebuild_tensor_v2":
        return this.#rebuildTensor(args);
      case "torch._utils._rebuild_parameter":
      case "torch._utils._rebuild_parameter_with_state": {
        const data = args[0];
        if (!(data instanceof TorchTensor)) {
          this.#damaged(
            `expected a tensor as the first argument of ${fn.full}, found ${
              describe(data)
            }`,
          );
        }
        data.isParameter = true;
        data.requiresGrad = args[1] === true;
        return data;
      }
      case "_codecs.encode": {
        const [s, enc] = args;
        if (
          typeof s !== "string" ||
          (enc !== "latin1" && enc !== "latin-1" && enc !== "iso-8859-1")
        ) {
          this.#refuse(
            `the pickle calls _codecs.encode with ${describe(s)} and ${
              describe(enc)
            }; tokenlab only decodes the (str, "latin1") form pickle protocol 2 uses for bytes`,
          );
        }
        this.#spend(s.length, "_codecs.encode");
        const out = new Uint8Array(s.length);
        for (let i = 0; i < s.length; i++) {
          const c = s.charCodeAt(i);
          if (c > 255) {
            this.#damaged("a latin1 bytes string holds a character above 255");
          }
          out[i] = c;
        }
        return out;
      }
      case "argparse.Namespace":
        if (args.length === 0) return {};
        break;
    }
    this.#refuse(
      `the pickle calls ${fn.full} with ${
        describe(args)
      }, which tokenlab does not build; tokenlab only reads state dicts and never runs code from a checkpoint`,
    );
  }

  #rebuildTensor(args: unknown[]): TorchTensor {
    const [storage, offset, size, stride, requiresGrad] = args;
    const intList = (x: unknown): x is number[] =>
      Array.isArray(x) &&
      x.every((d) =>
        typeof d === "number" && Number.isSafeInteger(d) && d >= 0
      );
    if (
      !(storage instanceof StorageRef) || typeof offset !== "number" ||
      !Number.isSafeInteger(offset) || offset < 0 || !intList(size) ||
      !intList(stride) || size.length !== stride.length
    ) {
      this.#damaged(
        `expected _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks), found arguments (${
          args.map(describe).join(", ")
        })`,
      );
    }
    this.#spend(8 + 2 * size.length, "_rebuild_tensor_v2");
    // The element count and the reach of the view are checked once the
    // whole pickle is read (checkTensorViews), where the tensor has a name.
    const t = new TorchTensor(storage.dtype, [...size], {
      key: storage.key,
      storageNumel: storage.numel,
      offset,
      stride: [...stride],
    }, requiresGrad === true);
    this.tensors.push(t);
    return t;
  }

  #persistentLoad(pid: unknown): StorageRef {
    if (
      !Array.isArray(pid) || pid.length < 5 || pid[0] !== "storage" ||
      !(pid[1] instanceof Global) || typeof pid[2] !== "string" ||
      typeof pid[4] !== "number"
    ) {
      this.#refuse(
        `the pickle asks for a persistent object ${
          describe(pid)
        }; tokenlab only resolves torch's ('storage', storage_type, key, location, numel) ids`,
      );
    }
    const [, type, key, , count] = pid as [
      string,
      Global,
      string,
      unknown,
      number,
    ];
    const dtype = type.module === "torch"
      ? STORAGE_DTYPES[type.name]
      : undefined;
    if (!dtype) {
      this.#refuse(
        `a storage of type ${type.full}, which tokenlab does not read; it reads ${
          Object.keys(STORAGE_DTYPES).join(", ")
        }`,
      );
    }
    if (!/^[A-Za-z0-9_.-]+$/.test(key) || key === "." || key === "..") {
      this.#damaged(
        `a storage key ${JSON.stringify(key)} that is not a file name`,
      );
    }
    if (!Number.isSafeInteger(count) || count < 0) {
      this.#damaged(
        `storage "${key}" declares ${count} elements (its numel); expected a non-negative whole number`,
      );
    }
    const known = this.#storages.get(key);
    if (known) {
      if (known.dtype !== dtype) {
        this.#damaged(
          `storage "${key}" used as both ${known.dtype} and ${dtype}`,
        );
      }
      return known;
    }
    const ref = new StorageRef(dtype, key, count);
    this.#storages.set(key, ref);
    return ref;
  }

  load(): PickleValue {
    const b = this.#b;
    while (true) {
      if (this.#pos >= b.length) {
        this.#damaged("expected STOP, found the end of the pickle");
      }
      const at = this.#pos;
      const op = b[this.#pos++];
      switch (op) {
        case 0x80: { // PROTO
          const proto = this.#u8();
          if (proto > 5) {
            this.#refuse(
              `the pickle uses protocol ${proto}; tokenlab reads protocols 2 to 5 (torch.save uses 2)`,
            );
          }
          break;
        }
        case 0x95: { // FRAME
          // A frame's length only groups the opcodes that follow; it must
          // not claim more than the pickle holds.
          const n = this.#v.getBigUint64(this.#need(8), true);
          const left = this.#b.length - this.#pos;
          if (n > BigInt(left)) {
            this.#damaged(
              `a FRAME of ${n} bytes, with only ${left} bytes left in the pickle`,
            );
          }
          break;
        }
        case 0x2e: { // STOP
          const result = this.#pop();
          this.#checkResult(result);
          return result as PickleValue;
        }
        case 0x28: // MARK
          this.#marks.push(this.#stack.length);
          break;
        case 0x30: // POP
          this.#pop();
          break;
        case 0x31: // POP_MARK
          this.#popMark();
          break;
        case 0x32: // DUP
          this.#stack.push(this.#top());
          break;
        case 0x7d: // EMPTY_DICT
          this.#stack.push(new Map());
          break;
        case 0x64: { // DICT
          const items = this.#popMark();
          const m = new Map();
          this.#setItems(m, items);
          this.#stack.push(m);
          break;
        }
        case 0x5d: // EMPTY_LIST
          this.#stack.push([]);
          break;
        case 0x6c: // LIST
          this.#stack.push(this.#popMark());
          break;
        case 0x29: // EMPTY_TUPLE
          this.#stack.push([]);
          break;
        case 0x74: // TUPLE
          this.#stack.push(this.#popMark());
          break;
        case 0x85: // TUPLE1
          this.#stack.push([this.#pop()]);
          break;
        case 0x86: { // TUPLE2
          const y = this.#pop(), x = this.#pop();
          this.#stack.push([x, y]);
          break;
        }
        case 0x87: { // TUPLE3
          const z = this.#pop(), y = this.#pop(), x = this.#pop();
          this.#stack.push([x, y, z]);
          break;
        }
        case 0x8f: // EMPTY_SET
          this.#stack.push([]);
          break;
        case 0x91: // FROZENSET
          this.#stack.push(this.#popMark());
          break;
        case 0x61: { // APPEND
          const x = this.#pop();
          this.#appendTo(this.#top(), [x]);
          break;
        }
        case 0x65: // APPENDS
        case 0x90: { // ADDITEMS
          const items = this.#popMark();
          this.#appendTo(this.#top(), items);
          break;
        }
        case 0x73: { // SETITEM
          const v = this.#pop(), k = this.#pop();
          this.#setItems(this.#top(), [k, v]);
          break;
        }
        case 0x75: { // SETITEMS
          const items = this.#popMark();
          this.#setItems(this.#top(), items);
          break;
        }
        case 0x71: // BINPUT
          this.#memoPut(this.#u8());
          break;
        case 0x72: // LONG_BINPUT
          this.#memoPut(this.#u32());
          break;
        case 0x94: // MEMOIZE
          this.#memoPut(this.#memo.size);
          break;
        case 0x68: // BINGET
        case 0x6a: { // LONG_BINGET
          const i = op === 0x68 ? this.#u8() : this.#u32();
          if (!this.#memo.has(i)) {
            this.#damaged(`a memo lookup of ${i}, which was never stored`);
          }
          this.#stack.push(this.#memo.get(i));
          break;
        }
        case 0x4a: // BININT
          this.#stack.push(this.#v.getInt32(this.#need(4), true));
          break;
        case 0x4b: // BININT1
          this.#stack.push(this.#u8());
          break;
        case 0x4d: // BININT2
          this.#stack.push(this.#u16());
          break;
        case 0x8a: // LONG1
          this.#stack.push(this.#long(this.#bytes(this.#u8(), "LONG1")));
          break;
        case 0x8b: { // LONG4
          // #bytes refuses a negative length or one past the pickle's end.
          const n = this.#v.getInt32(this.#need(4), true);
          this.#stack.push(this.#long(this.#bytes(n, "LONG4")));
          break;
        }
        case 0x47: // BINFLOAT
          this.#stack.push(this.#v.getFloat64(this.#need(8), false));
          break;
        case 0x4e: // NONE
          this.#stack.push(null);
          break;
        case 0x88: // NEWTRUE
          this.#stack.push(true);
          break;
        case 0x89: // NEWFALSE
          this.#stack.push(false);
          break;
        case 0x58: // BINUNICODE
          this.#stack.push(
            utf8Decoder.decode(this.#bytes(this.#u32(), "BINUNICODE string")),
          );
          break;
        case 0x8c: // SHORT_BINUNICODE
          this.#stack.push(
            utf8Decoder.decode(
              this.#bytes(this.#u8(), "SHORT_BINUNICODE string"),
            ),
          );
          break;
        case 0x8d: // BINUNICODE8
          this.#stack.push(
            utf8Decoder.decode(this.#bytes(this.#u64(), "BINUNICODE8 string")),
          );
          break;
        case 0x42: // BINBYTES
          this.#stack.push(this.#bytes(this.#u32(), "BINBYTES").slice());
          break;
        case 0x43: // SHORT_BINBYTES
          this.#stack.push(this.#bytes(this.#u8(), "SHORT_BINBYTES").slice());
          break;
        case 0x8e: // BINBYTES8
        case 0x96: // BYTEARRAY8
          this.#stack.push(
            this.#bytes(this.#u64(), op === 0x8e ? "BINBYTES8" : "BYTEARRAY8")
              .slice(),
          );
          break;
        case 0x63: { // GLOBAL
          const module = this.#line();
          const name = this.#line();
          this.#stack.push(this.#global(module, name));
          break;
        }
        case 0x93: { // STACK_GLOBAL
          const name = this.#pop(), module = this.#pop();
          if (typeof name !== "string" || typeof module !== "string") {
            this.#damaged("expected module and name strings for STACK_GLOBAL");
          }
          this.#stack.push(this.#global(module, name));
          break;
        }
        case 0x52: { // REDUCE
          const args = this.#pop();
          const fn = this.#pop();
          this.#stack.push(this.#reduce(fn, args));
          break;
        }
        case 0x81: // NEWOBJ
        case 0x92: { // NEWOBJ_EX
          if (op === 0x92) this.#pop(); // kwargs
          const args = this.#pop();
          const cls = this.#pop();
          if (!(cls instanceof Global)) {
            this.#damaged(
              `expected a class for NEWOBJ, found ${describe(cls)}`,
            );
          }
          if (cls.full === "argparse.Namespace") this.#stack.push({});
          else if (cls.full === "collections.OrderedDict") {
            this.#stack.push(new Map());
          } else {
            this.#refuse(
              `the pickle creates an object of class ${cls.full} with ${
                describe(args)
              }, which tokenlab does not build; tokenlab only reads state dicts and never runs code from a checkpoint`,
            );
          }
          break;
        }
        case 0x62: { // BUILD
          const state = this.#pop();
          const obj = this.#top();
          this.#build(obj, state);
          break;
        }
        case 0x51: // BINPERSID
          this.#stack.push(this.#persistentLoad(this.#pop()));
          break;
        default: {
          const name = OPCODE_NAMES[op];
          this.#pos = at;
          this.#refuse(
            `the pickle uses ${
              name ? `opcode ${name}` : "an unknown opcode"
            } (0x${
              op.toString(16).padStart(2, "0")
            }) at byte ${at} of data.pkl, which tokenlab's restricted unpickler does not read; it reads what torch.save (pickle protocols 2 to 5) writes for tensors, dicts, lists, numbers and strings. Re-save the checkpoint in Python with torch.save(obj, path) holding only those`,
          );
        }
      }
    }
  }

  /** Refuses a result that still holds a bare global or storage (torch never writes one). */
  #checkResult(value: unknown): void {
    const seen = new Set<object>();
    const todo: unknown[] = [value];
    while (todo.length) {
      const v = todo.pop();
      if (v === null || typeof v !== "object" || seen.has(v)) continue;
      seen.add(v);
      if (v instanceof Global || v instanceof StorageRef) {
        this.#refuse(
          `the unpickled object holds ${
            describe(v)
          } itself rather than a tensor built from it; tokenlab only reads state dicts and plain values`,
        );
      }
      if (v instanceof TorchTensor || v instanceof Uint8Array) continue;
      // Loops, not spreads: a list of millions of items would overflow the
      // call stack as spread arguments.
      if (Array.isArray(v)) { for (const x of v) todo.push(x); }
      else if (v instanceof Map) {
        for (const [k, x] of v) todo.push(k, x);
      } else for (const x of Object.values(v)) todo.push(x);
    }
  }

  #build(obj: unknown, state: unknown): void {
    if (obj instanceof Map) {
      // OrderedDict with attributes: a state dict's `_metadata`.
      pickleStates.set(obj, state as PickleValue);
      return;
    }
    if (obj instanceof TorchTensor) {
      pickleStates.set(obj, state as PickleValue);
      return;
    }
    if (
      obj !== null && typeof obj === "object" && !Array.isArray(obj) &&
      !(obj instanceof Uint8Array) && !(obj instanceof Global) &&
      !(obj instanceof StorageRef)
    ) {
      // A Namespace: state is its __dict__, or (dict, slots).
      let dict = state;
      if (Array.isArray(state) && state.length === 2) {
        dict = state[0] ?? state[1];
      }
      if (!(dict instanceof Map)) {
        this.#damaged(
          `expected a dict of attributes to BUILD a Namespace, found ${
            describe(state)
          }`,
        );
      }
      this.#spend(dict.size, "BUILD of a Namespace");
      for (const [k, v] of dict) {
        if (typeof k !== "string") {
          this.#damaged(`a Namespace attribute named by ${describe(k)}`);
        }
        setProp(obj as PickleRecord, k, v as PickleValue);
      }
      return;
    }
    this.#refuse(
      `the pickle sets the state of ${
        describe(obj)
      } (BUILD), which tokenlab does not do; it only reads state dicts`,
    );
  }
}

// ---------------------------------------------------------------------------
// Opening a checkpoint, and loading tensor data.

interface OpenCheckpoint {
  zip: TorchZip;
  prefix: string;
  bigEndian: boolean;
  root: PickleValue;
  tensors: TorchTensor[];
  limits: ReadLimits;
}

async function openCheckpoint(
  path: string | URL,
  options: CheckpointLimitOptions,
): Promise<OpenCheckpoint> {
  const label = pathLabel(path);
  const limits = resolveReadLimits(
    options,
    (message) => new CheckpointError(`cannot read ${label}: ${message}`),
  );
  const zip = await TorchZip.open(path, {
    expected:
      "a PyTorch checkpoint (the ZIP archive torch.save writes in torch >= 1.6)",
    maxEntryBytes: limits.maxEntryBytes,
    maxInflateRatio: limits.maxInflateRatio,
  });
  try {
    const names = zip.names();
    const pkls = names.filter((n) => /^[^/]+\/data\.pkl$/.test(n));
    let pkl = pkls[0];
    if (pkls.length > 1) {
      const firstFolder = names[0].split("/")[0];
      pkl = pkls.find((n) => n === `${firstFolder}/data.pkl`) ?? pkl;
    }
    if (!pkl) {
      const some = names.slice(0, 10).map((n) => JSON.stringify(n)).join(", ");
      throw new CheckpointError(
        `cannot read ${label}: expected a PyTorch checkpoint, a ZIP archive holding <folder>/data.pkl, found a ZIP archive without one (${names.length} entries${
          some ? ": " + some : ""
        }${
          names.length > 10 ? ", ..." : ""
        }); it was not written by torch.save, re-save the object with torch.save(obj, path)`,
      );
    }
    const prefix = pkl.slice(0, -"data.pkl".length);
    let bigEndian = false;
    if (zip.has(prefix + "byteorder")) {
      const order = new TextDecoder().decode(
        await zip.read(prefix + "byteorder"),
      ).trim();
      if (order !== "little" && order !== "big") {
        throw new CheckpointError(
          `cannot read ${label}: expected "little" or "big" in ${prefix}byteorder, found ${
            JSON.stringify(order)
          }; the archive is damaged, fetch it again`,
        );
      }
      bigEndian = order === "big";
    }
    const unpickler = new Unpickler(await zip.read(pkl), label);
    let root: PickleValue;
    try {
      root = unpickler.load();
    } catch (e) {
      throw internalError(e, `cannot read ${label}: ${pkl}`);
    }
    const ck = {
      zip,
      prefix,
      bigEndian,
      root,
      tensors: unpickler.tensors,
      limits,
    };
    checkTensorViews(ck);
    return ck;
  } catch (e) {
    zip.close();
    throw e;
  }
}

/**
 * A name for each tensor reachable from `root`, for messages: the dict keys
 * and list indices that lead to it (`state_dict.conv.weight`, `[0]`), the
 * first path found breadth first (none for a tensor deeper than 200
 * characters of path, or not reachable from the root).
 */
function tensorPaths(root: PickleValue): Map<TorchTensor, string> {
  const out = new Map<TorchTensor, string>();
  const seen = new Set<object>();
  const todo: [unknown, string][] = [[root, ""]];
  for (let i = 0; i < todo.length; i++) {
    const [v, at] = todo[i];
    if (v === null || typeof v !== "object" || seen.has(v)) continue;
    seen.add(v);
    if (v instanceof TorchTensor) out.set(v, at);
    // Deep nesting would make the paths' total length quadratic: names of
    // more than 200 characters are not followed further.
    else if (v instanceof Uint8Array || at.length > 200) continue;
    else if (Array.isArray(v)) {
      v.forEach((x, j) => todo.push([x, `${at}[${j}]`]));
    } else if (v instanceof Map) {
      for (const [k, x] of v) {
        todo.push([x, at ? `${at}.${String(k)}` : String(k)]);
      }
    } else {
      for (const [k, x] of Object.entries(v)) {
        todo.push([x, at ? `${at}.${k}` : k]);
      }
    }
  }
  return out;
}

/** How messages name a tensor: by its path from the root, when it has one. */
function tensorLabel(t: TorchTensor, paths: Map<TorchTensor, string>): string {
  const at = paths.get(t);
  return at === undefined
    ? `a tensor of shape [${t.shape.join(", ")}]`
    : at === ""
    ? "the tensor at the root"
    : `tensor ${JSON.stringify(at)}`;
}

/**
 * The number of elements of a shape whose sizes are non-negative safe
 * integers: 0 when one size is 0, Infinity when the product passes 2^53.
 */
function elementCount(shape: readonly number[]): number {
  if (shape.includes(0)) return 0;
  let n = 1;
  for (const d of shape) {
    n *= d;
    if (n > Number.MAX_SAFE_INTEGER) return Infinity;
  }
  return n;
}

/**
 * Checks every tensor's view against its storage before anything is read:
 * the element count a safe integer, the last element the view reaches
 * inside the storage, the storage no larger than its archive entry says.
 */
function checkTensorViews(ck: OpenCheckpoint): void {
  let paths: Map<TorchTensor, string> | undefined;
  const named = (t: TorchTensor) =>
    tensorLabel(t, paths ??= tensorPaths(ck.root));
  const bad = (t: TorchTensor, what: string) =>
    new CheckpointError(
      `cannot read ${ck.zip.path}: ${
        named(t)
      } (storage "${ck.prefix}data/${t.storage.key}"): ${what}; the checkpoint is damaged or was not written by torch.save, fetch it again`,
    );
  for (const t of ck.tensors) {
    const { offset, stride, storageNumel, key } = t.storage;
    const n = elementCount(t.shape);
    if (n === Infinity) {
      throw bad(
        t,
        `its shape (size) [${
          t.shape.join(", ")
        }] has more than 2^53 elements; expected at most as many as its storage of ${storageNumel} can give`,
      );
    }
    if (n > 0) {
      let last = offset;
      for (let i = 0; i < t.shape.length; i++) {
        last += (t.shape[i] - 1) * stride[i];
      }
      if (!(last < storageNumel)) {
        throw bad(
          t,
          `a tensor of shape [${t.shape.join(", ")}], stride [${
            stride.join(", ")
          }] at offset ${offset} reaches element ${
            Number.isSafeInteger(last) ? last : "beyond 2^53"
          } of a storage of ${storageNumel}`,
        );
      }
    }
    const entry = ck.zip.entry(`${ck.prefix}data/${key}`);
    const need = storageNumel * itemSize(t.dtype);
    if (entry && entry.size < need) {
      throw new CheckpointError(
        `cannot read ${ck.zip.path}: storage "${entry.name}" should hold ${storageNumel} ${t.dtype} elements (${need} bytes), found ${entry.size} bytes (for ${
          named(t)
        }); the archive is damaged, fetch it again`,
      );
    }
  }
}

function swapBytes(bytes: Uint8Array, size: number): void {
  for (let i = 0; i + size <= bytes.length; i += size) {
    for (let a = i, b = i + size - 1; a < b; a++, b--) {
      const t = bytes[a];
      bytes[a] = bytes[b];
      bytes[b] = t;
    }
  }
}

/** Copies a strided view of `src` into `dst` in row-major order (words = elements, or 2 per element). */
function gather(
  src: Uint8Array | Uint16Array | Uint32Array,
  dst: Uint8Array | Uint16Array | Uint32Array,
  words: 1 | 2,
  shape: number[],
  stride: number[],
  offset: number,
): void {
  const n = dst.length / words;
  if (n === 0) return;
  if (shape.length === 0) {
    for (let w = 0; w < words; w++) dst[w] = src[offset * words + w];
    return;
  }
  const last = shape.length - 1;
  const nLast = shape[last], sLast = stride[last];
  const idx = new Array<number>(shape.length).fill(0);
  let base = offset;
  let o = 0;
  const rows = n / nLast;
  for (let r = 0; r < rows; r++) {
    let p = base;
    if (words === 1) {
      for (let j = 0; j < nLast; j++, p += sLast) dst[o++] = src[p];
    } else {
      for (let j = 0; j < nLast; j++, p += sLast) {
        dst[o++] = src[2 * p];
        dst[o++] = src[2 * p + 1];
      }
    }
    for (let ax = last - 1; ax >= 0; ax--) {
      idx[ax]++;
      base += stride[ax];
      if (idx[ax] < shape[ax]) break;
      base -= stride[ax] * shape[ax];
      idx[ax] = 0;
    }
  }
}

function isContiguous(shape: number[], stride: number[]): boolean {
  let expect = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && stride[i] !== expect) return false;
    expect *= shape[i];
  }
  return true;
}

/** Whether a tensor is its whole storage, in order (its data can share the storage's bytes). */
function sharesStorage(t: TorchTensor): boolean {
  return t.storage.offset === 0 &&
    elementCount(t.shape) === t.storage.storageNumel &&
    isContiguous(t.shape, t.storage.stride);
}

/**
 * Before any storage is read: checks that each view of `byKey` expands to
 * at most `maxEntryBytes`, and that the storages plus the views copied out
 * of them come to at most the total limit, so that a small file declaring
 * many large views fails at once instead of after allocating them.
 */
function planTensorBytes(
  ck: OpenCheckpoint,
  byKey: Map<string, Set<TorchTensor>>,
): void {
  const { maxEntryBytes } = ck.limits;
  const set = ck.limits.maxTotalBytes;
  const limit = set ?? defaultMaxTotalBytes(ck.zip.fileSize);
  const named = (t: TorchTensor) => tensorLabel(t, tensorPaths(ck.root));
  let total = 0;
  for (const [key, views] of byKey) {
    const name = `${ck.prefix}data/${key}`;
    const entry = ck.zip.entry(name);
    if (entry === undefined) {
      throw new CheckpointError(
        `cannot read ${ck.zip.path}: expected the storage file "${name}" the pickle refers to, found no such entry; the archive is incomplete, fetch it again`,
      );
    }
    total += entry.size;
    for (const t of views) {
      // checkTensorViews made the count finite and the view fit the storage;
      // a view that repeats elements (zero or overlapping strides) can still
      // expand past the storage, up to the entry limit.
      const n = elementCount(t.shape);
      const bytesOut = n * itemSize(t.dtype);
      if (bytesOut > maxEntryBytes) {
        throw new CheckpointError(
          `cannot read ${ck.zip.path}: ${named(t)}, of shape [${
            t.shape.join(", ")
          }] and stride [${
            t.storage.stride.join(", ")
          }], repeats the ${t.storage.storageNumel} elements of storage "${name}" into ${n} ${t.dtype} elements (${bytesOut} bytes), more than the limit of ${maxEntryBytes} bytes (maxEntryBytes); if the checkpoint is genuine, raise the maxEntryBytes option or the ${MAX_ENTRY_BYTES_ENV} environment variable`,
        );
      }
      if (n > 0 && !sharesStorage(t)) total += bytesOut;
      if (total > limit) {
        throw new CheckpointError(
          `cannot read ${ck.zip.path}: its tensors need more than ${limit} bytes in all, the limit (maxTotalBytes${
            set === null
              ? `: by default ${DEFAULT_MAX_TOTAL_BYTES} or twice the file's ${ck.zip.fileSize} bytes, whichever is more`
              : ""
          }); the storages read plus the views copied out of them reach ${total} bytes at ${
            named(t)
          } (storage "${name}"). The file is hostile or damaged; if it is genuine, raise the maxTotalBytes option or the ${MAX_TOTAL_BYTES_ENV} environment variable`,
        );
      }
    }
  }
}

/** Reads the storages of `tensors` (each once) and fills their data. */
async function loadTensors(
  ck: OpenCheckpoint,
  tensors: Iterable<TorchTensor>,
): Promise<void> {
  // Sets, not lists: a pickle can make millions of views of one storage,
  // and a membership test per view would be quadratic.
  const byKey = new Map<string, Set<TorchTensor>>();
  for (const t of tensors) {
    if (t.loaded) continue;
    const set = byKey.get(t.storage.key);
    if (set) set.add(t);
    else byKey.set(t.storage.key, new Set([t]));
  }
  planTensorBytes(ck, byKey);
  for (const [key, set] of byKey) {
    const list = [...set];
    const name = `${ck.prefix}data/${key}`;
    const dtype = list[0].dtype;
    const size = itemSize(dtype);
    const storageNumel = list[0].storage.storageNumel;
    const bytes = await ck.zip.read(name);
    if (bytes.length < storageNumel * size) {
      throw new CheckpointError(
        `cannot read ${ck.zip.path}: storage "${name}" should hold ${storageNumel} ${dtype} elements (${
          storageNumel * size
        } bytes), found ${bytes.length} bytes; the archive is damaged, fetch it again`,
      );
    }
    if (ck.bigEndian && size > 1) swapBytes(bytes, size);
    const words: 1 | 2 = size === 8 ? 2 : 1;
    const wordSize = size === 8 ? 4 : size;
    const wordClass = wordSize === 4
      ? Uint32Array
      : wordSize === 2
      ? Uint16Array
      : Uint8Array;
    const src = new wordClass(
      bytes.buffer as ArrayBuffer,
      0,
      Math.floor(bytes.length / wordSize),
    );
    for (const t of list) {
      // planTensorBytes checked each view's size and the total.
      const n = elementCount(t.shape);
      const { offset, stride } = t.storage;
      const bytesOut = n * size;
      if (n === 0) {
        t.data = dataView(dtype, new ArrayBuffer(0), 0, 0);
      } else if (isContiguous(t.shape, stride)) {
        if (sharesStorage(t)) {
          // The whole storage: shared, as torch shares it between the views.
          t.data = dataView(dtype, bytes.buffer, 0, n * size);
        } else {
          const copy = bytes.slice(offset * size, (offset + n) * size);
          t.data = dataView(dtype, copy.buffer, 0, n * size);
        }
      } else {
        let out: ArrayBuffer;
        try {
          out = new ArrayBuffer(bytesOut);
        } catch (e) {
          throw new CheckpointError(
            `cannot read ${ck.zip.path}: ${
              tensorLabel(t, tensorPaths(ck.root))
            } needs ${bytesOut} bytes, which could not be allocated (${
              (e as Error).message
            }); free memory, or lower maxEntryBytes to refuse such tensors`,
            { cause: e },
          );
        }
        gather(
          src,
          new wordClass(out),
          words,
          t.shape,
          stride,
          offset,
        );
        t.data = dataView(dtype, out, 0, n * size);
      }
      t.loaded = true;
    }
  }
}

/**
 * Every tensor reachable from a value read by {@linkcode readTorchFile}.
 *
 * @example
 * ```ts
 * import { tensorsOf } from "tokenlab/io/torch.ts";
 * console.log(tensorsOf(new Map([["a", 1]])).length); // 0
 * ```
 */
export function tensorsOf(value: PickleValue): TorchTensor[] {
  const out: TorchTensor[] = [];
  const seen = new Set<object>();
  const todo: unknown[] = [value];
  while (todo.length) {
    const v = todo.pop();
    if (v === null || typeof v !== "object" || seen.has(v)) continue;
    seen.add(v);
    if (v instanceof TorchTensor) out.push(v);
    else if (v instanceof Uint8Array) continue;
    else if (Array.isArray(v)) { for (const x of v) todo.push(x); }
    else if (v instanceof Map) { for (const x of v.values()) todo.push(x); }
    else for (const x of Object.values(v)) todo.push(x);
  }
  return out;
}

/**
 * Options of {@linkcode readTorchFile}; the limits of
 * {@linkcode CheckpointLimitOptions} (`maxEntryBytes`, `maxInflateRatio`,
 * `maxTotalBytes`)
 * apply.
 */
export interface ReadTorchFileOptions extends CheckpointLimitOptions {
  /**
   * Unpickle only: tensors keep `loaded: false` and empty `data`, with their
   * dtype and shape known (for listing a large checkpoint cheaply).
   */
  metadataOnly?: boolean;
}

/**
 * Reads a whole `torch.save` file: the unpickled object with every tensor's
 * data loaded (as {@linkcode TorchTensor}s, which are {@linkcode RawTensor}s).
 *
 * @example
 * ```ts
 * import { readTorchFile } from "tokenlab/io/torch.ts";
 * const url = new URL("../../tests/fixtures/torch/training_checkpoint.pth.tar", import.meta.url);
 * const ckpt = await readTorchFile(url) as Map<string, unknown>;
 * console.log(ckpt.get("epoch"), ckpt.get("args")); // 3 { lr: 0.001, model: "x" }
 * ```
 */
export async function readTorchFile(
  path: string | URL,
  options: ReadTorchFileOptions = {},
): Promise<PickleValue> {
  const ck = await openCheckpoint(path, options);
  try {
    if (!options.metadataOnly) await loadTensors(ck, ck.tensors);
    return ck.root;
  } catch (e) {
    throw internalError(e, `cannot read ${ck.zip.path}: a tensor`);
  } finally {
    ck.zip.close();
  }
}

/**
 * Options of {@linkcode readTorchStateDict}; the limits of
 * {@linkcode CheckpointLimitOptions} (`maxEntryBytes`, `maxInflateRatio`,
 * `maxTotalBytes`)
 * apply.
 */
export interface ReadTorchStateDictOptions extends CheckpointLimitOptions {
  /**
   * The entry of a checkpoint dict that holds the weights; by default the
   * root if it is a dict of tensors, else the first present of `state_dict`,
   * `model`, `state_dict_ema`, `module`.
   */
  key?: string;
}

const STATE_DICT_KEYS = ["state_dict", "model", "state_dict_ema", "module"];

function hasTensors(v: unknown): v is Map<PickleKey, PickleValue> {
  if (!(v instanceof Map)) return false;
  for (const x of v.values()) if (x instanceof TorchTensor) return true;
  return false;
}

function allTensors(v: unknown): v is Map<PickleKey, PickleValue> {
  if (!(v instanceof Map) || v.size === 0) return false;
  for (const x of v.values()) if (!(x instanceof TorchTensor)) return false;
  return true;
}

function listKeys(m: Map<PickleKey, PickleValue>): string {
  const keys = [...m.keys()].slice(0, 20).map((k) => JSON.stringify(k));
  return keys.join(", ") + (m.size > 20 ? `, ... (${m.size} in all)` : "");
}

/**
 * Reads the state dict (parameter name to tensor) of a `torch.save` file:
 * a plain state dict, or the one inside a training checkpoint (`state_dict`,
 * `model`, `state_dict_ema`, `module`, or `options.key`). Only the tensors
 * of that dict are read from disk; a leading `module.` (DataParallel) is
 * stripped from every name; entries that are not tensors are dropped.
 *
 * @example
 * ```ts
 * import { readTorchStateDict } from "tokenlab/io/torch.ts";
 * const url = new URL("../../tests/fixtures/torch/training_checkpoint.pth.tar", import.meta.url);
 * const sd = await readTorchStateDict(url);
 * console.log([...sd.keys()].slice(0, 2)); // [ "conv.weight", "conv.bias" ]
 * ```
 */
export async function readTorchStateDict(
  path: string | URL,
  options: ReadTorchStateDictOptions = {},
): Promise<Map<string, RawTensor>> {
  const ck = await openCheckpoint(path, options);
  try {
    const label = ck.zip.path;
    const root = ck.root;
    let dict: Map<PickleKey, PickleValue> | undefined;
    if (options.key !== undefined) {
      if (!(root instanceof Map)) {
        throw new CheckpointError(
          `cannot read a state dict from ${label}: expected a dict with an entry "${options.key}", found ${
            describe(root)
          }; read it with readTorchFile`,
        );
      }
      if (!root.has(options.key)) {
        throw new CheckpointError(
          `cannot read a state dict from ${label}: expected an entry "${options.key}", found only the keys ${
            listKeys(root)
          }; pass one of those as key`,
        );
      }
      const v = root.get(options.key);
      if (!hasTensors(v)) {
        throw new CheckpointError(
          `cannot read a state dict from ${label}: expected entry "${options.key}" to be a dict of tensors, found ${
            describe(v)
          }; pass the key of the entry holding the weights`,
        );
      }
      dict = v;
    } else if (allTensors(root)) {
      dict = root;
    } else if (root instanceof Map) {
      for (const k of STATE_DICT_KEYS) {
        const v = root.get(k);
        if (hasTensors(v)) {
          dict = v;
          break;
        }
      }
      if (!dict && hasTensors(root)) dict = root;
      if (!dict) {
        throw new CheckpointError(
          `cannot read a state dict from ${label}: expected a dict of tensors, or a checkpoint dict holding one under ${
            STATE_DICT_KEYS.join(", ")
          }; found a dict with the keys ${
            listKeys(root)
          }; pass {key} naming the entry that holds the weights`,
        );
      }
    } else {
      throw new CheckpointError(
        `cannot read a state dict from ${label}: expected a dict of tensors, found ${
          describe(root)
        }; read it with readTorchFile`,
      );
    }
    const out = new Map<string, TorchTensor>();
    for (const [k, v] of dict) {
      if (!(v instanceof TorchTensor)) continue;
      const name = String(k).startsWith("module.")
        ? String(k).slice("module.".length)
        : String(k);
      if (out.has(name)) {
        throw new CheckpointError(
          `cannot read a state dict from ${label}: two entries map to "${name}" once the DataParallel prefix "module." is stripped; expected unique names, re-save the state dict of the unwrapped model (model.module.state_dict())`,
        );
      }
      out.set(name, v);
    }
    try {
      await loadTensors(ck, out.values());
    } catch (e) {
      throw internalError(e, `cannot read ${label}: a tensor`);
    }
    return out;
  } finally {
    ck.zip.close();
  }
}
