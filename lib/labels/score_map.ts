/**
 * Score maps: the top-k class ids and scores per location of a dense
 * annotator output, and where they live on disk.
 *
 * - {@linkcode ScoreMap}: one image's map, `scores` and `ids` of shape
 *   [k, H, W] (rank-major: rank 0 is the best class of each cell).
 * - The official per-image files (TokenLabeling's `generate_label.py`,
 *   ReLabel): `<root>/<class>/<stem>.pt`, a float16 tensor [2, k, H, W]
 *   holding the scores in [0] and the class ids, as floats, in [1]
 *   ({@linkcode readOfficialMap}, {@linkcode writeOfficialMap},
 *   {@linkcode listOfficialMaps}).
 * - {@linkcode ScoreMapStore}: one folder per dataset with fixed-size
 *   records (one seek + read per image), a key index searched on disk, and
 *   a writer that can resume an interrupted annotation run.
 *
 * ## The store on disk (format version 2)
 *
 * A folder `<name>` holding:
 *
 * - `header.json`: format (`tokenlab.score-map-store`) and version (2), k,
 *   height, width, numClasses, annotator, preprocessing, what the scores are,
 *   count, whether there are labels, createdBy, the record layout, `index`
 *   (`keysBytes`, the size of `keys.txt`; `blockBytes` 4096; `entryBytes`
 *   64) and last `checksum`: the CRC-32 of the header's compact JSON
 *   (`JSON.stringify`, the file's field order) without that field.
 * - `maps.bin`: `count` records of `record.bytes` bytes; record i starts at
 *   byte i * record.bytes, so one image is one seek + read.
 * - `keys.txt`: the image keys in record order, UTF-8, one per line.
 * - `keys.offsets`: count + 1 little-endian uint64, where line i starts in
 *   `keys.txt` (`keyAt` is two small reads).
 * - `keys.sorted`: count entries of 64 bytes sorted by the keys' UTF-8 bytes
 *   (`indexOf` is a binary search by seek; the index is never loaded).
 * - `keys.sums`: little-endian uint32 CRC-32s of every 4096-byte block of
 *   `keys.offsets`, then of `keys.sorted`, then of `keys.txt` (the last
 *   block of each may be short).
 *
 * A record (little-endian): uint32 checksum at byte 0; int32 label at 4 (-1:
 * none); uint64 key hash at 8; float16 scores [k, H, W] at 16; ids
 * [k, H, W] as uint16 (numClasses <= 65536) or int32 from `record.ids.offset`
 * (aligned to the id size); zero padding to a multiple of 8 bytes. The key
 * hash is 64-bit FNV-1a of the key's UTF-8 bytes; the checksum is the
 * CRC-32 (ZIP's) of the record's index as a uint64 followed by the record's
 * bytes from byte 4 on, so a record that is changed, or moved to another
 * place, fails. A `keys.sorted` entry: uint32 record index, uint32 key
 * length in bytes, uint64 offset of the key in `keys.txt`, uint64 key hash,
 * then the key's first 40 bytes zero-padded. A lookup reads one checked
 * 4096-byte block (64 entries) per step of the binary search (the prefix
 * decides unless two keys share their first 40 bytes): 11 reads for 100 000
 * keys, about 15 for 1.3 million, plus the few pages of `keys.sums` they
 * need.
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
 * Version 1 (tokenlab 0.1 before December 2026) has no checksums: records
 * of `record.bytes` with the label at 0 and scores at 4, no key hash,
 * 48-byte sorted entries with a 32-byte prefix, no `keys.sums`, no `index`
 * or `checksum` in the header. It is still read (bounds and order checks
 * apply, checksums cannot), with a one-time warning per store through
 * `onWarning`; {@linkcode upgradeScoreMapStore} rewrites it as version 2 in
 * place, after checking every record and the index. An interrupted
 * version-1 write holding records cannot be resumed: start it over
 * (`overwrite: true`).
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
 * memory (to refuse duplicates at once), and `commit()` sorts them in
 * memory: about 100 bytes per image. An interrupted write that holds no
 * records (a run that failed before its first checkpoint) does not block
 * the next run: `create` replaces it, and so does `resume` when given
 * another header, each with a note; one that holds records is refused
 * unless `overwrite: true` (the error's `option` says so, for a command line
 * to name its flag).
 *
 * @module
 */

import { CheckpointError, isTorchTensor, readTorchFile } from "../io/torch.ts";
import {
  encodeTorchTensor,
  writeFileAtomic,
  writeTorchTensor,
} from "../io/torch_write.ts";
import {
  float16BitsToFloat32,
  float32ToFloat16Bits,
  type RawTensor,
  toFloat32,
} from "../io/raw_tensor.ts";
import { VERSION } from "../version.ts";
import { exists } from "../io/_fs.ts";
import {
  BLOCK_BYTES,
  blockCount,
  blockSums,
  checksum,
  hashHex,
  isKeyHash,
  keyHash,
  recordChecksum,
  setKeyHash,
} from "./_store_checksums.ts";

/** Options of a {@linkcode ScoreMapError}: the cause, and the option that would change the outcome. */
export interface ScoreMapErrorOptions extends ErrorOptions {
  /**
   * The library option the message tells the caller to pass to continue
   * (e.g. `"overwrite"` to start a store over), so that a command line can
   * name its own flag for it without reading the message.
   */
  option?: "overwrite";
}

/** Thrown for a bad score map or store: what was expected, what was found, which file and image, what to do. */
export class ScoreMapError extends Error {
  /** The option that would change the outcome (see {@linkcode ScoreMapErrorOptions}), if any. */
  readonly option: "overwrite" | undefined;
  /** Makes an error with this message (and an optional cause and option). */
  constructor(message: string, options?: ScoreMapErrorOptions) {
    super(message, options);
    this.name = "ScoreMapError";
    this.option = options?.option;
  }
}

/** One image's top-k score map: `scores` and `ids` of shape [k, height, width], rank 0 best. */
export interface ScoreMap {
  /** Classes kept per cell (the rank axis). */
  k: number;
  /** Rows of the map. */
  height: number;
  /** Columns of the map. */
  width: number;
  /** Scores, [k, height, width] row-major. */
  scores: Float32Array;
  /** Class ids, [k, height, width] row-major, parallel to `scores`. */
  ids: Int32Array;
}

/** Options of {@linkcode validateScoreMap}. */
export interface ValidateScoreMapOptions {
  /** The dataset's class count: ids must lie in [0, numClasses). */
  numClasses?: number;
  /** The file or image the map comes from, named in errors. */
  where?: string;
}

function cellOf(i: number, height: number, width: number): string {
  const hw = height * width;
  const r = i % hw;
  return `cell (${Math.floor(r / width)}, ${r % width}) (rank ${
    Math.floor(i / hw)
  })`;
}

function typeName(x: unknown): string {
  if (x === null) return "null";
  if (typeof x !== "object") return typeof x;
  return (x as { constructor?: { name?: string } }).constructor?.name ??
    "object";
}

function checkCount(n: unknown, what: string, where: string): void {
  if (!Number.isSafeInteger(n) || (n as number) <= 0) {
    throw new ScoreMapError(
      `score map shape of ${where}: expected ${what} to be a positive integer, found ${
        JSON.stringify(n) ?? String(n)
      }`,
    );
  }
}

function checkNumClasses(numClasses: unknown, what: string): void {
  if (
    !Number.isSafeInteger(numClasses) || (numClasses as number) < 1 ||
    (numClasses as number) > 2 ** 31 - 1
  ) {
    throw new ScoreMapError(
      `${what}: expected numClasses to be a positive integer below 2^31, found ${
        JSON.stringify(numClasses) ?? String(numClasses)
      }`,
    );
  }
}

/**
 * Checks a score map: positive integer k, height and width; `scores` a
 * Float32Array and `ids` an Int32Array of k * height * width values; every
 * score finite; every id in [0, numClasses) (or non-negative without
 * `numClasses`). Throws a {@linkcode ScoreMapError} naming `where` and the
 * first bad cell.
 *
 * @example
 * ```ts
 * import { validateScoreMap } from "tokenlab/labels/score_map.ts";
 * const map = { k: 1, height: 1, width: 2, scores: new Float32Array([1, 2]), ids: new Int32Array([3, 1203]) };
 * try {
 *   validateScoreMap(map, { numClasses: 1000, where: "n01440764/img_12.pt" });
 * } catch (e) {
 *   console.log((e as Error).message); // score map ids out of range: found class 1203 in cell (0, 1) (rank 0) of n01440764/img_12.pt, ...
 * }
 * ```
 */
export function validateScoreMap(
  map: ScoreMap,
  options: ValidateScoreMapOptions = {},
): void {
  const where = options.where ?? "a score map";
  if (map === null || typeof map !== "object") {
    throw new ScoreMapError(
      `score map of ${where}: expected an object {k, height, width, scores, ids}, found ${
        typeName(map)
      }`,
    );
  }
  checkCount(map.k, "k", where);
  checkCount(map.height, "height", where);
  checkCount(map.width, "width", where);
  const n = map.k * map.height * map.width;
  if (!(map.scores instanceof Float32Array) || map.scores.length !== n) {
    throw new ScoreMapError(
      `score map scores of ${where}: expected a Float32Array of k * height * width = ${map.k} * ${map.height} * ${map.width} = ${n} values, found ${
        map.scores instanceof Float32Array
          ? `${map.scores.length} values`
          : `a ${typeName(map.scores)}`
      }`,
    );
  }
  if (!(map.ids instanceof Int32Array) || map.ids.length !== n) {
    throw new ScoreMapError(
      `score map ids of ${where}: expected an Int32Array of k * height * width = ${n} values, found ${
        map.ids instanceof Int32Array
          ? `${map.ids.length} values`
          : `a ${typeName(map.ids)}`
      }`,
    );
  }
  if (options.numClasses !== undefined) {
    checkNumClasses(options.numClasses, `validating ${where}`);
  }
  const c = options.numClasses ?? 2 ** 31;
  const s = map.scores, ids = map.ids;
  for (let i = 0; i < n; i++) {
    if (!(s[i] - s[i] === 0)) {
      throw new ScoreMapError(
        `score map scores not finite: found ${s[i]} in ${
          cellOf(i, map.height, map.width)
        } of ${where}; the annotator produced NaN or infinity there (check its input and precision) or the file is damaged; regenerate this map`,
      );
    }
    const id = ids[i];
    if (id < 0 || id >= c) {
      throw new ScoreMapError(
        `score map ids out of range: found class ${id} in ${
          cellOf(i, map.height, map.width)
        } of ${where}, but ${
          options.numClasses === undefined
            ? "class ids cannot be negative"
            : `the dataset has ${options.numClasses} classes`
        }; check that the maps were made for this dataset (numClasses) or regenerate them`,
      );
    }
  }
}

// ---------------------------------------------------------------------------
// The official per-image files.

/** Options of {@linkcode readOfficialMap}. */
export interface ReadOfficialMapOptions {
  /** The dataset's class count, to check the ids against. */
  numClasses?: number;
  /** How to name the file in errors (default: the path). */
  where?: string;
  /**
   * Accept float16 ids of 2048 and above (default false: refused). float16
   * cannot hold every integer from 2048 on (the spacing is 2, then 4, ...),
   * so such ids as the official code stored them may be off.
   */
  allowInexactIds?: boolean;
}

function pathString(path: string | URL): string {
  if (path instanceof URL) {
    return path.protocol === "file:" ? decodeURIComponent(path.pathname) : path
      .href;
  }
  return path;
}

/**
 * Reads one official score-map file (TokenLabeling's `generate_label.py`, or
 * ReLabel's, which have the same layout): a torch-saved float16 (or float32)
 * tensor [2, k, H, W], [0] the scores, [1] the class ids stored as floats.
 * Checks the shape, dtype, that scores are finite and ids integral (and
 * below `numClasses` when given).
 *
 * @example
 * ```ts
 * import { readOfficialMap } from "tokenlab/labels/score_map.ts";
 * const url = new URL("../../tests/fixtures/score_maps/n01440764/img_1.pt", import.meta.url);
 * const map = await readOfficialMap(url, { numClasses: 1000 });
 * console.log(map.k, map.height, map.width); // 5 3 4
 * ```
 */
export async function readOfficialMap(
  path: string | URL,
  options: ReadOfficialMapOptions = {},
): Promise<ScoreMap> {
  const where = options.where ?? pathString(path);
  let root: unknown;
  try {
    root = await readTorchFile(path);
  } catch (e) {
    if (e instanceof CheckpointError) {
      throw new ScoreMapError(
        `cannot read the score map ${where}: ${e.message}`,
        { cause: e },
      );
    }
    throw e;
  }
  return officialFromTensor(root, where, options);
}

function officialFromTensor(
  root: unknown,
  where: string,
  options: ReadOfficialMapOptions,
): ScoreMap {
  const expect =
    "a float16 tensor [2, k, H, W] (scores in [0], class ids in [1]), as torch.save writes in generate_label.py";
  if (!isTorchTensor(root)) {
    const found = root instanceof Map
      ? `a dict with ${root.size} entries`
      : Array.isArray(root)
      ? `a list or tuple of ${root.length}`
      : `${typeName(root)}`;
    throw new ScoreMapError(
      `score map ${where}: expected ${expect}, found ${found}; this is not a score-map file`,
    );
  }
  const t = root as RawTensor;
  if (t.dtype !== "float16" && t.dtype !== "float32") {
    throw new ScoreMapError(
      `score map ${where}: expected ${expect}, found a ${t.dtype} tensor of shape [${
        t.shape.join(", ")
      }]; save the maps with t.half() (or float32)`,
    );
  }
  if (t.shape.length !== 4 || t.shape[0] !== 2 || t.shape.includes(0)) {
    throw new ScoreMapError(
      `score map ${where}: expected ${expect}, found shape [${
        t.shape.join(", ")
      }]${
        t.shape.length === 3
          ? " (only 3 axes: scores without ids, or a single map?)"
          : ""
      }; the file was not written as a [2, k, H, W] map`,
    );
  }
  const [, k, height, width] = t.shape;
  const n = k * height * width;
  const all = toFloat32(t);
  const scores = all.slice(0, n);
  const idf = all.subarray(n);
  const ids = new Int32Array(n);
  const half = t.dtype === "float16";
  const limit = options.numClasses;
  if (limit !== undefined) checkNumClasses(limit, `reading ${where}`);
  for (let i = 0; i < n; i++) {
    const v = idf[i];
    if (!Number.isInteger(v)) {
      throw new ScoreMapError(
        `score map ${where}: expected integral class ids in [1], found ${v} in ${
          cellOf(i, height, width)
        }; the file is not a [scores, ids] map or is damaged`,
      );
    }
    if (half && v >= 2048 && !options.allowInexactIds) {
      throw new ScoreMapError(
        `score map ${where}: found class ${v} in ${
          cellOf(i, height, width)
        }, but float16 holds class ids exactly only below 2048 (this one may have been rounded); regenerate the maps storing ids exactly (float32 files or a ScoreMapStore), or pass allowInexactIds: true to accept them as stored`,
      );
    }
    ids[i] = v;
  }
  const map = { k, height, width, scores, ids };
  validateScoreMap(map, { numClasses: limit, where });
  return map;
}

/** Options of {@linkcode writeOfficialMap}. */
export interface WriteOfficialMapOptions {
  /** Replace an existing file (default false: refuse). */
  overwrite?: boolean;
  /** Element type of the file (default `"float16"`, as the official code). */
  dtype?: "float16" | "float32";
  /** The dataset's class count, to check the ids against. */
  numClasses?: number;
  /** Flush to disk before the file is renamed into place (default true). */
  sync?: boolean;
  /** How to name the map in errors (default: the path). */
  where?: string;
}

/** [2, k, H, W] official values of a map (ids as floats), float32. */
function officialValues(map: ScoreMap): Float32Array {
  const n = map.scores.length;
  const v = new Float32Array(2 * n);
  v.set(map.scores);
  for (let i = 0; i < n; i++) v[n + i] = map.ids[i];
  return v;
}

/**
 * Writes one score map as an official file, exactly as TokenLabeling's
 * `generate_label.py` does (`torch.save(torch.stack([values.half(),
 * ids.half()]).permute(0, 3, 1, 2), path)`: the same bytes, with torch 1.13).
 * float16 files cannot hold class ids of 2048 and above exactly, and are
 * refused for them: write `dtype: "float32"` or use a
 * {@linkcode ScoreMapStore}. Atomic; never replaces a file unless
 * `overwrite: true`.
 *
 * @example
 * ```ts
 * import { readOfficialMap, writeOfficialMap } from "tokenlab/labels/score_map.ts";
 * const dir = await Deno.makeTempDir();
 * const map = { k: 1, height: 1, width: 2, scores: new Float32Array([2.5, -1]), ids: new Int32Array([7, 3]) };
 * await writeOfficialMap(`${dir}/img.pt`, map);
 * console.log((await readOfficialMap(`${dir}/img.pt`)).ids); // Int32Array(2) [ 7, 3 ]
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeOfficialMap(
  path: string | URL,
  map: ScoreMap,
  options: WriteOfficialMapOptions = {},
): Promise<void> {
  const where = options.where ?? pathString(path);
  const raw = officialRaw(map, options, where);
  try {
    await writeTorchTensor(path, raw, {
      overwrite: options.overwrite,
      sync: options.sync,
      memoryOrder: OFFICIAL_ORDER,
    });
  } catch (e) {
    if (e instanceof CheckpointError) {
      throw new ScoreMapError(e.message, { cause: e });
    }
    throw e;
  }
}

/** generate_label.py saves stack([values, ids]) [2, H, W, k] permuted to [2, k, H, W]. */
const OFFICIAL_ORDER = [0, 2, 3, 1];

/** The checked [2, k, H, W] tensor of an official file. */
function officialRaw(
  map: ScoreMap,
  options: WriteOfficialMapOptions,
  where: string,
): RawTensor {
  validateScoreMap(map, { numClasses: options.numClasses, where });
  const dtype = options.dtype ?? "float16";
  if (dtype !== "float16" && dtype !== "float32") {
    throw new ScoreMapError(
      `writing ${where}: expected dtype "float16" or "float32", found ${
        JSON.stringify(dtype)
      }`,
    );
  }
  const values = officialValues(map);
  const shape = [2, map.k, map.height, map.width];
  if (dtype === "float16") {
    const n = map.scores.length;
    for (let i = 0; i < n; i++) {
      if (map.ids[i] >= 2048) {
        throw new ScoreMapError(
          `cannot write ${where} as float16: found class ${map.ids[i]} in ${
            cellOf(i, map.height, map.width)
          }, but float16 holds class ids exactly only below 2048; write it with dtype: "float32" (torch.load reads it the same way) or keep the maps in a ScoreMapStore`,
        );
      }
    }
    const bits = float32ToFloat16Bits(values);
    checkHalfRange(bits, map, where);
    return { dtype, shape, data: bits };
  }
  return { dtype, shape, data: values };
}

/** Refuses finite scores that float16 turned into infinities. */
function checkHalfRange(bits: Uint16Array, map: ScoreMap, where: string) {
  const n = map.scores.length;
  for (let i = 0; i < n; i++) {
    if ((bits[i] & 0x7c00) === 0x7c00) {
      throw new ScoreMapError(
        `cannot store the score ${map.scores[i]} in ${
          cellOf(i, map.height, map.width)
        } of ${where} as float16: its largest finite value is 65504; scale the logits down or store probabilities`,
      );
    }
  }
}

/** Compares strings by Unicode code point (Python's `sorted` order). */
function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i), y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (astral code points) sort above the rest of the BMP.
    const sx = x >= 0xd800 && x <= 0xdfff, sy = y >= 0xd800 && y <= 0xdfff;
    if (sx !== sy) return sx ? 1 : -1;
    return x - y;
  }
  return a.length - b.length;
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false;
  }
}

/**
 * The score maps under an official root (`<root>/<class>/<stem>.pt`), as keys
 * `<class>/<stem>`, sorted by code point (Python's order, as ImageFolder).
 * Hidden files (names starting with `.`, such as temporary files) and files
 * not ending in `.pt` are left out.
 *
 * @example
 * ```ts
 * import { listOfficialMaps } from "tokenlab/labels/score_map.ts";
 * const root = new URL("../../tests/fixtures/score_maps", import.meta.url);
 * console.log((await listOfficialMaps(root))[0]); // n01440764/img_1
 * ```
 */
export async function listOfficialMaps(root: string | URL): Promise<string[]> {
  const dir = pathString(root).replace(/\/+$/, "");
  if (!(await isDirectory(dir))) {
    throw new ScoreMapError(
      `no score-map folder at ${dir}: expected a folder of <class>/<stem>.pt files (the official layout); check the path`,
    );
  }
  const classes: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.name.startsWith(".")) continue;
    if (
      e.isDirectory || (e.isSymlink && await isDirectory(`${dir}/${e.name}`))
    ) {
      classes.push(e.name);
    }
  }
  const keys: string[] = [];
  for (const c of classes) {
    for await (const e of Deno.readDir(`${dir}/${c}`)) {
      if (e.name.startsWith(".") || !e.name.endsWith(".pt")) continue;
      if (e.isDirectory) continue;
      keys.push(`${c}/${e.name.slice(0, -3)}`);
    }
  }
  return keys.sort(compareCodePoints);
}

// ---------------------------------------------------------------------------
// The store: header, record layout, file I/O helpers.

/** How the annotator's input images were made from the originals. */
export interface ScoreMapPreprocessing {
  /**
   * `"resize-center-crop"`: short side resized, centre crop (official
   * TokenLabeling; the map covers the central square only); `"squash"`: the
   * whole image resized to a square (ReLabel).
   */
  mode: "resize-center-crop" | "squash";
  /** The annotator's input size in pixels (square). */
  size: number;
  /**
   * For `resize-center-crop`: crop size / resized short side (timm's
   * `crop_pct`; default 1, the whole short side). Ignored for `squash`.
   */
  cropPct?: number;
}

/** What a store's scores are. */
export type ScoreKind = "logits" | "probabilities" | "unknown";

/** What {@linkcode ScoreMapStore.create} needs: the maps' shape and where they come from. */
export interface ScoreMapStoreInit {
  /** Classes kept per cell. */
  k: number;
  /** Rows of every map. */
  height: number;
  /** Columns of every map. */
  width: number;
  /** Classes of the dataset (ids lie in [0, numClasses)). */
  numClasses: number;
  /** The annotator, e.g. `"nfnet_f6 @ 576"`. */
  annotator: string;
  /** How the annotator's inputs were made. */
  preprocessing: ScoreMapPreprocessing;
  /** Whether the scores are raw logits (official), probabilities, or unknown (ReLabel). */
  scores: ScoreKind;
  /** Who made the store (default `"tokenlab <version>"`). */
  createdBy?: string;
}

/** Where a field sits in a record. */
export interface ScoreMapRecordField {
  /** Element type. */
  dtype: "int32" | "float16" | "uint16" | "uint32" | "uint64";
  /** Byte offset in the record. */
  offset: number;
}

/** The layout of one record of `maps.bin`. */
export interface ScoreMapRecordLayout {
  /** Bytes per record (a multiple of 8). */
  bytes: number;
  /**
   * Version 2: the record's CRC-32 (uint32 at byte 0), of the record index
   * as a uint64 then the record's bytes after the checksum.
   */
  checksum?: ScoreMapRecordField;
  /** Version 2: the 64-bit FNV-1a hash of the record's key (uint64). */
  keyHash?: ScoreMapRecordField;
  /** The ground-truth label (int32, -1 for none). */
  label: ScoreMapRecordField;
  /** The scores [k, H, W]. */
  scores: ScoreMapRecordField;
  /** The class ids [k, H, W]. */
  ids: ScoreMapRecordField;
}

/** Version 2: what a reader needs to check the key index (see the module doc). */
export interface ScoreMapStoreIndexInfo {
  /** Bytes of `keys.txt`. */
  keysBytes: number;
  /** Bytes per checksummed block of the index files (4096). */
  blockBytes: number;
  /** Bytes per `keys.sorted` entry (64). */
  entryBytes: number;
}

/** A store's `header.json`. */
export interface ScoreMapStoreHeader extends ScoreMapStoreInit {
  /** Always `"tokenlab.score-map-store"`. */
  format: string;
  /** Format version: 2 is written; 1 (without checksums) is still read. */
  version: number;
  /** Who made the store. */
  createdBy: string;
  /** Number of images. */
  count: number;
  /** Whether the records hold ground-truth labels. */
  labels: boolean;
  /** Where things are in a record of `maps.bin`. */
  record: ScoreMapRecordLayout;
  /** Version 2, committed stores: the key index's sizes. */
  index?: ScoreMapStoreIndexInfo;
  /**
   * Version 2: CRC-32 of the header's compact JSON (`JSON.stringify`) without
   * this field, in the file's field order.
   */
  checksum?: number;
}

/** The format name in every store header. */
export const SCORE_MAP_STORE_FORMAT = "tokenlab.score-map-store";
/** The store format version written (version 1 is still read, with a warning). */
export const SCORE_MAP_STORE_VERSION = 2;
const STORE_VERSION = SCORE_MAP_STORE_VERSION;
const DATA = "maps.bin";
const KEYS = "keys.txt";
const KEY_OFFSETS = "keys.offsets";
const KEY_SORTED = "keys.sorted";
const KEY_SUMS = "keys.sums";
const HEADER = "header.json";
const PARTIAL_INFO = "partial.json";
const PROGRESS = "progress.json";
/** `keys.sorted` entry bytes and key-prefix bytes, by format version. */
const ENTRY_V1 = 48, PREFIX_V1 = 32, ENTRY = 64, PREFIX = 40;
/** Sorted-index entries per checksummed block (version 2; a read unit in version 1). */
const ENTRIES_PER_BLOCK = BLOCK_BYTES / ENTRY;
const MAX_KEY_BYTES = 4096;
/** What a message about damage tells the user to do. */
const REBUILD =
  "re-run the conversion or annotation that made the store (officialToStore, or tokenlab annotate with --overwrite) or copy it again from an intact copy";
/** File handles a batch read uses at once (async reads). */
const READ_HANDLES = 4;

function recordLayout(
  k: number,
  height: number,
  width: number,
  numClasses: number,
  version: number = STORE_VERSION,
): ScoreMapRecordLayout {
  const n = k * height * width;
  const wide = numClasses > 65536;
  const idSize = wide ? 4 : 2;
  const scoresAt = version === 1 ? 4 : 16;
  const idsOffset = Math.ceil((scoresAt + 2 * n) / idSize) * idSize;
  const bytes = Math.ceil((idsOffset + idSize * n) / 8) * 8;
  const ids = { dtype: wide ? "int32" : "uint16", offset: idsOffset } as const;
  if (version === 1) {
    return {
      bytes,
      label: { dtype: "int32", offset: 0 },
      scores: { dtype: "float16", offset: 4 },
      ids,
    };
  }
  return {
    bytes,
    checksum: { dtype: "uint32", offset: 0 },
    label: { dtype: "int32", offset: 4 },
    keyHash: { dtype: "uint64", offset: 8 },
    scores: { dtype: "float16", offset: 16 },
    ids,
  };
}

function checkInit(init: ScoreMapStoreInit, where: string): void {
  if (init === null || typeof init !== "object") {
    throw new ScoreMapError(
      `${where}: expected a header {k, height, width, numClasses, annotator, preprocessing, scores}, found ${
        typeName(init)
      }`,
    );
  }
  for (const f of ["k", "height", "width"] as const) {
    if (!Number.isSafeInteger(init[f]) || init[f] <= 0) {
      throw new ScoreMapError(
        `${where}: expected ${f} to be a positive integer, found ${
          JSON.stringify(init[f])
        }`,
      );
    }
  }
  if (init.k * init.height * init.width > 2 ** 26) {
    throw new ScoreMapError(
      `${where}: a map of k * height * width = ${
        init.k * init.height * init.width
      } values is too large for a record (at most 2^26); keep fewer classes per cell`,
    );
  }
  checkNumClasses(init.numClasses, where);
  if (typeof init.annotator !== "string" || init.annotator === "") {
    throw new ScoreMapError(
      `${where}: expected annotator to name the model that made the maps (e.g. "nfnet_f6 @ 576"), found ${
        JSON.stringify(init.annotator)
      }`,
    );
  }
  if (!["logits", "probabilities", "unknown"].includes(init.scores)) {
    throw new ScoreMapError(
      `${where}: expected scores to be "logits", "probabilities" or "unknown", found ${
        JSON.stringify(init.scores)
      }`,
    );
  }
  checkPreprocessing(init.preprocessing, where);
  if (init.createdBy !== undefined && typeof init.createdBy !== "string") {
    throw new ScoreMapError(
      `${where}: expected createdBy to be a string, found ${
        JSON.stringify(init.createdBy)
      }`,
    );
  }
}

function checkPreprocessing(p: ScoreMapPreprocessing, where: string): void {
  const bad = (what: string) =>
    new ScoreMapError(
      `${where}: expected preprocessing {mode: "resize-center-crop" | "squash", size, cropPct?}, ${what}`,
    );
  if (p === null || typeof p !== "object") {
    throw bad(`found ${JSON.stringify(p)}`);
  }
  if (p.mode !== "resize-center-crop" && p.mode !== "squash") {
    throw bad(`found mode ${JSON.stringify(p.mode)}`);
  }
  if (!Number.isSafeInteger(p.size) || p.size <= 0) {
    throw bad(`found size ${JSON.stringify(p.size)} (a positive integer)`);
  }
  if (
    p.cropPct !== undefined &&
    (typeof p.cropPct !== "number" || !(p.cropPct > 0 && p.cropPct <= 1))
  ) {
    throw bad(`found cropPct ${JSON.stringify(p.cropPct)} (in (0, 1])`);
  }
}

/** The stored form: `squash` has no crop; `resize-center-crop` always states its crop (default 1). */
function normPreprocessing(p: ScoreMapPreprocessing): ScoreMapPreprocessing {
  return p.mode === "squash"
    ? { mode: p.mode, size: p.size }
    : { mode: p.mode, size: p.size, cropPct: p.cropPct ?? 1 };
}

/**
 * Whether two preprocessings are the same (`cropPct` defaults to 1 and is
 * ignored for `"squash"`).
 */
export function samePreprocessing(
  a: ScoreMapPreprocessing,
  b: ScoreMapPreprocessing,
): boolean {
  return sameJson(normPreprocessing(a), normPreprocessing(b));
}

/** The header object in a fixed field order (the JSON bytes are deterministic). */
function makeHeader(
  init: ScoreMapStoreInit,
  count: number,
  labels: boolean,
  index?: ScoreMapStoreIndexInfo,
): ScoreMapStoreHeader {
  const h: ScoreMapStoreHeader = {
    format: SCORE_MAP_STORE_FORMAT,
    version: STORE_VERSION,
    k: init.k,
    height: init.height,
    width: init.width,
    numClasses: init.numClasses,
    annotator: init.annotator,
    preprocessing: normPreprocessing(init.preprocessing),
    scores: init.scores,
    count,
    labels,
    createdBy: init.createdBy ?? `tokenlab ${VERSION}`,
    record: recordLayout(init.k, init.height, init.width, init.numClasses),
  };
  if (index) h.index = index;
  return h;
}

/** CRC-32 of a header's compact JSON without its `checksum` field. */
function headerChecksum(h: Record<string, unknown>): number {
  const { checksum: _, ...rest } = h;
  return checksum(new TextEncoder().encode(JSON.stringify(rest)));
}

/** A version-2 header as file bytes, its checksum added last. */
function headerBytes(h: ScoreMapStoreHeader): Uint8Array {
  const { checksum: _, ...rest } = h;
  return jsonBytes({
    ...rest,
    checksum: headerChecksum(rest as Record<string, unknown>),
  });
}

function jsonBytes(x: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(x, null, 2) + "\n");
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) done += await file.write(bytes.subarray(done));
}

async function readFull(
  file: Deno.FsFile,
  offset: number,
  out: Uint8Array,
  what: () => string,
): Promise<void> {
  await file.seek(offset, Deno.SeekMode.Start);
  let done = 0;
  while (done < out.length) {
    const n = await file.read(out.subarray(done));
    if (n === null || n === 0) {
      throw new ScoreMapError(
        `${what()}: expected ${out.length} bytes at byte ${offset}, found the end of the file after ${done}; the store is truncated or damaged, rebuild it or copy it again`,
      );
    }
    done += n;
  }
}

function readFullSync(
  file: Deno.FsFile,
  offset: number,
  out: Uint8Array,
  what: () => string,
): void {
  file.seekSync(offset, Deno.SeekMode.Start);
  let done = 0;
  while (done < out.length) {
    const n = file.readSync(out.subarray(done));
    if (n === null || n === 0) {
      throw new ScoreMapError(
        `${what()}: expected ${out.length} bytes at byte ${offset}, found the end of the file after ${done}; the store is truncated or damaged, rebuild it or copy it again`,
      );
    }
    done += n;
  }
}

let halfTable: Float32Array | undefined;

function half(): Float32Array {
  if (!halfTable) {
    const all = new Uint16Array(65536);
    for (let i = 0; i < 65536; i++) all[i] = i;
    halfTable = float16BitsToFloat32(all);
  }
  return halfTable;
}

function checkKey(key: unknown, what: string): Uint8Array {
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

function compareBytes(
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

function isScoreMapStoreHeader(h: unknown): h is ScoreMapStoreHeader {
  return h !== null && typeof h === "object";
}

// ---------------------------------------------------------------------------
// Reading a store.

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

/** Maps of several images, concatenated: what {@linkcode ScoreMapStore.readBatch} returns. */
export interface ScoreMapBatch {
  /** Images in the batch. */
  size: number;
  /** Classes kept per cell. */
  k: number;
  /** Rows of every map. */
  height: number;
  /** Columns of every map. */
  width: number;
  /** Scores [B, k, H, W]. */
  scores: Float32Array;
  /** Class ids [B, k, H, W]. */
  ids: Int32Array;
  /** Ground-truth labels [B] (-1 where none), when the store has labels. */
  labels?: Int32Array;
}

/** What a store has read from disk since it was opened (for profiling). */
export interface ScoreMapStoreStats {
  /** Read calls (seek + read) on the store's files, the header included. */
  reads: number;
  /** Bytes read. */
  bytesRead: number;
}

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

function storePath(path: string | URL): string {
  const p = pathString(path).replace(/\/+$/, "");
  if (p === "") {
    throw new ScoreMapError(
      `expected a store path (a folder name), found ${JSON.stringify(path)}`,
    );
  }
  return p;
}

/** Index files of a store whose sizes are known after opening. */
type IndexFile =
  | typeof KEYS
  | typeof KEY_OFFSETS
  | typeof KEY_SORTED
  | typeof KEY_SUMS;

/** Bytes of each index file, from `stat` at open. */
type IndexSizes = Record<IndexFile, number>;

/** Stores warned about (version 1) in this process: the warning is given once. */
const warnedVersion1 = new Set<string>();

/** A message about a damaged store: the store, what is wrong, what to do. */
function damaged(path: string, what: string): ScoreMapError {
  return new ScoreMapError(
    `score-map store ${path} is damaged: ${what}; ${REBUILD}`,
  );
}

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
async function indexSizes(
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
 * See the module doc for the layout.
 *
 * @example
 * ```ts
 * import { ScoreMapStore } from "tokenlab/labels/score_map.ts";
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
  #data: Deno.FsFile | null;
  #index: Partial<Record<IndexFile, Deno.FsFile>> = {};
  #sizes: IndexSizes;
  /** Pages of keys.sums (1024 checksums each) read so far. */
  #sumPages = new Map<number, DataView>();
  #validate: boolean;
  #sync: boolean;
  #pool: Deno.FsFile[] = [];
  #queue: Promise<unknown> = Promise.resolve();
  #reads = 0;
  #bytesRead = 0;
  #closed = false;
  /** What the current operation is doing, for messages about damage (operations run one at a time). */
  #context = "";

  private constructor(
    path: string,
    header: ScoreMapStoreHeader,
    data: Deno.FsFile,
    sizes: IndexSizes,
    options: OpenScoreMapStoreOptions,
    headerBytes: number,
  ) {
    this.path = path;
    this.header = header;
    this.#data = data;
    this.#sizes = sizes;
    this.#validate = options.validate ?? true;
    this.#sync = options.io === "sync";
    this.#reads = 1;
    this.#bytesRead = headerBytes;
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
   * import { ScoreMapStore } from "tokenlab/labels/score_map.ts";
   * await ScoreMapStore.open("/nonexistent/maps").catch((e) => console.log(e.name)); // ScoreMapError
   * ```
   */
  static async open(
    path: string | URL,
    options: OpenScoreMapStoreOptions = {},
  ): Promise<ScoreMapStore> {
    const dir = storePath(path);
    let text: string;
    let headerSize = 0;
    try {
      const file = await Deno.open(`${dir}/${HEADER}`, { read: true });
      try {
        // A header is small; a huge file is not one (never read it whole).
        const size = (await file.stat()).size;
        if (size > 1 << 20) {
          throw damaged(
            dir,
            `${HEADER} is ${size} bytes, expected a small JSON object (under 1 MiB)`,
          );
        }
        const b = new Uint8Array(size);
        await readFull(file, 0, b, () => `reading ${dir}/${HEADER}`);
        text = new TextDecoder().decode(b);
        headerSize = size;
      } finally {
        file.close();
      }
    } catch (e) {
      if (e instanceof ScoreMapError) throw e;
      if (!(e instanceof Deno.errors.NotFound)) {
        throw new ScoreMapError(
          `cannot open the score-map store ${dir}: reading ${HEADER} failed: ${
            (e as Error).message
          }`,
          { cause: e },
        );
      }
      if (await exists(`${dir}.partial`)) {
        throw new ScoreMapError(
          `no committed score-map store at ${dir}, but an interrupted write is at ${dir}.partial: continue it with ScoreMapStore.resume(${
            JSON.stringify(dir)
          }) and commit() it`,
        );
      }
      if (await exists(dir)) {
        throw new ScoreMapError(
          `${dir} is not a score-map store: expected a folder holding ${HEADER}, found ${
            (await isDirectory(dir)) ? "a folder without one" : "a file"
          }; for official per-image maps (<class>/<stem>.pt) use readOfficialMap or officialToStore`,
        );
      }
      throw new ScoreMapError(
        `no score-map store at ${dir}: nothing is there; check the path, or build one with ScoreMapStore.create or officialToStore`,
      );
    }
    const header = parseHeader(text, dir, HEADER);
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
    let sizes: IndexSizes;
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
      sizes = await indexSizes(dir, header);
    } catch (e) {
      file.close();
      throw e;
    }
    if (header.version === 1) warnVersion1(dir, options.onWarning);
    return new ScoreMapStore(
      dir,
      header,
      file,
      sizes,
      options,
      headerSize,
    );
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
   * import { ScoreMapStore } from "tokenlab/labels/score_map.ts";
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
   * Whether an interrupted write of the store at `path` (`<path>.partial`)
   * is there to be resumed.
   *
   * @example
   * ```ts
   * import { ScoreMapStore } from "tokenlab/labels/score_map.ts";
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
   * import { ScoreMapStore } from "tokenlab/labels/score_map.ts";
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
        return await ScoreMapStore.create(dir, options.header ?? init, {
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

  /** Number of images in the store. */
  get size(): number {
    return this.header.count;
  }

  /** What has been read from disk since opening (reads and bytes; for profiling). */
  get stats(): ScoreMapStoreStats {
    return { reads: this.#reads, bytesRead: this.#bytesRead };
  }

  /** Runs `fn` after every earlier read of this store (one file position at a time). */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => {});
    return run;
  }

  async #read(
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
  async #readData(reqs: { offset: number; buf: Uint8Array }[]): Promise<void> {
    const data = this.#dataFile();
    if (this.#sync || reqs.length === 1) {
      for (const r of reqs) await this.#read(data, r.offset, r.buf, DATA);
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
        await this.#read(f, reqs[i].offset, reqs[i].buf, DATA);
      }
    }));
  }

  #dataFile(): Deno.FsFile {
    if (this.#closed || !this.#data) {
      throw new ScoreMapError(
        `the score-map store ${this.path} is closed; open it again with ScoreMapStore.open`,
      );
    }
    return this.#data;
  }

  /** An index file, opened on first use. */
  async #indexFile(name: IndexFile): Promise<Deno.FsFile> {
    this.#dataFile();
    const open = this.#index[name];
    if (open) return open;
    try {
      const f = await Deno.open(`${this.path}/${name}`, { read: true });
      this.#index[name] = f;
      return f;
    } catch (e) {
      throw new ScoreMapError(
        `score-map store ${this.path} is incomplete: cannot open ${name} (${
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
      await this.#read(await this.#indexFile(KEY_SUMS), from, buf, KEY_SUMS);
      v = new DataView(buf.buffer);
      this.#sumPages.set(page, v);
    }
    return v.getUint32((g % 1024) * 4, true);
  }

  /**
   * Bytes [from, from + len) of an index file, `field` naming what gave the
   * position: bounded by the file's size before any seek; in version 2 the
   * blocks covering them are read whole and checked against keys.sums.
   */
  async #bytes(
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
      throw this.#damaged(
        `${field()} points at bytes [${from}, ${
          from + len
        }) of ${name}, which has ${size} bytes`,
      );
    }
    const file = await this.#indexFile(name);
    if (this.header.version === 1 || len === 0) {
      const out = new Uint8Array(len);
      if (len > 0) await this.#read(file, from, out, name);
      return out;
    }
    const b0 = Math.floor(from / BLOCK_BYTES);
    const b1 = Math.floor((from + len - 1) / BLOCK_BYTES);
    const start = b0 * BLOCK_BYTES;
    const buf = new Uint8Array(Math.min(size, (b1 + 1) * BLOCK_BYTES) - start);
    await this.#read(file, start, buf, name);
    for (let b = b0; b <= b1; b++) {
      const at = (b - b0) * BLOCK_BYTES;
      const got = checksum(
        buf.subarray(at, Math.min(buf.length, at + BLOCK_BYTES)),
      );
      const want = await this.#blockSum(name, b);
      if (got !== want) {
        throw this.#damaged(
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
      throw this.#damaged(
        `${name} gives ${field} as ${x}, beyond the ${limit} bytes of ${KEYS}`,
      );
    }
    return Number(x);
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
   * import { officialToStore, ScoreMapStore } from "tokenlab/labels/score_map.ts";
   * const dir = await Deno.makeTempDir();
   * const root = new URL("../../tests/fixtures/score_maps", import.meta.url);
   * await officialToStore(root, `${dir}/maps`, { numClasses: 1000, annotator: "fixture", preprocessing: { mode: "squash", size: 224 }, scores: "logits", labels: "folders" });
   * const store = await ScoreMapStore.open(`${dir}/maps`);
   * console.log(await store.keyAt(0)); // n01440764/img_1
   * store.close();
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  async keyAt(i: number): Promise<string> {
    this.#checkIndex(i, "keyAt");
    return await this.#serial(() => this.#keyAt(i));
  }

  async #keyAt(i: number): Promise<string> {
    const o = await this.#bytes(
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
      throw this.#damaged(
        `${KEY_OFFSETS} gives key ${i} the bytes [${from}, ${to}) of ${KEYS}, expected 2 to ${
          MAX_KEY_BYTES + 1
        } bytes (the key and its line break)`,
      );
    }
    const b = await this.#bytes(
      KEYS,
      from,
      to - from,
      () => `key ${i} (from ${KEY_OFFSETS})`,
    );
    const nl = b.indexOf(0x0a);
    if (nl !== b.length - 1) {
      throw this.#damaged(
        `${KEY_OFFSETS} gives key ${i} the bytes [${from}, ${to}) of ${KEYS}, which are not one line`,
      );
    }
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(
        b.subarray(0, nl),
      );
    } catch (e) {
      throw this.#damaged(
        `key ${i} in ${KEYS} (bytes [${from}, ${to})) is not valid UTF-8 (${
          (e as Error).message
        })`,
      );
    }
  }

  /**
   * The index of the image with this key, or -1: a binary search on disk
   * through `keys.sorted`, one checked 4 KiB block (64 entries) per step
   * (about log2(count) - 5 reads; the index is never loaded whole).
   *
   * @example
   * ```ts
   * import { officialToStore, ScoreMapStore } from "tokenlab/labels/score_map.ts";
   * const dir = await Deno.makeTempDir();
   * const root = new URL("../../tests/fixtures/score_maps", import.meta.url);
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
        () => this.#search(want),
      )
    );
  }

  /** Entry bytes, key-prefix bytes and where the prefix starts, for this store's version. */
  #entryLayout(): { entry: number; prefix: number; at: number } {
    return this.header.version === 1
      ? { entry: ENTRY_V1, prefix: PREFIX_V1, at: 16 }
      : { entry: ENTRY, prefix: PREFIX, at: 24 };
  }

  async #search(want: Uint8Array): Promise<number> {
    const { entry, prefix, at: pAt } = this.#entryLayout();
    const count = this.header.count;
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
        throw this.#damaged(
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
      const full = await this.#bytes(
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
      const block = await this.#bytes(
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
    const { entry, prefix, at } = this.#entryLayout();
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
        throw this.#damaged(
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
    if (i >= this.header.count) {
      throw this.#damaged(
        `${KEY_SORTED} entry ${e} points at record ${i} of ${this.header.count}`,
      );
    }
    if (this.header.version !== 1 && !isKeyHash(v, 16, keyHash(want))) {
      throw this.#damaged(
        `${KEY_SORTED} entry ${e} holds a key hash that is not the hash of its key ${
          JSON.stringify(new TextDecoder().decode(want))
        }`,
      );
    }
    return i;
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
   * import { officialToStore, ScoreMapStore } from "tokenlab/labels/score_map.ts";
   * const dir = await Deno.makeTempDir();
   * const root = new URL("../../tests/fixtures/score_maps", import.meta.url);
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
    this.#dataFile();
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
   * import { officialToStore, ScoreMapStore } from "tokenlab/labels/score_map.ts";
   * const dir = await Deno.makeTempDir();
   * const root = new URL("../../tests/fixtures/score_maps", import.meta.url);
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
        await this.#read(
          this.#dataFile(),
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
   * import { officialToStore, ScoreMapStore } from "tokenlab/labels/score_map.ts";
   * const dir = await Deno.makeTempDir();
   * const root = new URL("../../tests/fixtures/score_maps", import.meta.url);
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
    this.#dataFile();
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
    const maxRun = Math.max(1, Math.floor((8 << 20) / rec.bytes));
    const table = half();
    const checked = h.version !== 1;
    // Runs of consecutive (or repeated) record indices: one read each.
    const runs: { p: number; q: number; offset: number; buf: Uint8Array }[] =
      [];
    for (let p = 0; p < B;) {
      const first = indices[order[p]];
      let q = p + 1;
      while (
        q < B && indices[order[q]] - first <= maxRun - 1 &&
        indices[order[q]] - indices[order[q - 1]] <= 1
      ) q++;
      const last = indices[order[q - 1]];
      const buf = new Uint8Array((last - first + 1) * rec.bytes);
      runs.push({ p, q, offset: first * rec.bytes, buf });
      p = q;
    }
    await this.#readData(runs);
    for (const { p, q, buf } of runs) {
      const first = indices[order[p]];
      const u16 = new Uint16Array(buf.buffer);
      const i32 = new Int32Array(buf.buffer);
      const view = new DataView(buf.buffer);
      for (let r = p; r < q; r++) {
        const j = order[r];
        const base = (indices[j] - first) * rec.bytes;
        if (checked) {
          const i = indices[j];
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
        const s0 = (base + rec.scores.offset) >> 1;
        for (let e = 0; e < n; e++) scores[out + e] = table[u16[s0 + e]];
        if (rec.ids.dtype === "uint16") {
          const i0 = (base + rec.ids.offset) >> 1;
          for (let e = 0; e < n; e++) ids[out + e] = u16[i0 + e];
        } else {
          const i0 = (base + rec.ids.offset) >> 2;
          for (let e = 0; e < n; e++) ids[out + e] = i32[i0 + e];
        }
        const label = i32[(base + rec.label.offset) >> 2];
        if (labels) labels[j] = label;
        if (validate && !recordOk(h, scores, ids, out, n, label)) {
          await this.#checkRecord(indices[j], scores, ids, out, n, label);
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

  async #checkRecord(
    i: number,
    scores: Float32Array,
    ids: Int32Array,
    from: number,
    n: number,
    label: number,
  ): Promise<void> {
    const h = this.header;
    const c = h.numClasses;
    let bad = -1;
    for (let e = 0; e < n; e++) {
      const s = scores[from + e], id = ids[from + e];
      if (!(s - s === 0) || id < 0 || id >= c) {
        bad = e;
        break;
      }
    }
    const labelBad = h.labels ? label < -1 || label >= c : label !== -1;
    if (bad < 0 && !labelBad) return;
    const key = await this.#keyForError(i);
    if (labelBad) {
      throw this.#damaged(
        `record ${i} (${key}) holds the label ${label}, but ${
          h.labels ? `labels lie in [-1, ${c})` : "the store has no labels"
        }`,
      );
    }
    const s = scores[from + bad], id = ids[from + bad];
    throw this.#damaged(
      `record ${i} (${key}) holds ${
        !(s - s === 0)
          ? `the score ${s}`
          : `class ${id}, but the store has ${c} classes,`
      } in ${cellOf(bad, h.height, h.width)}`,
    );
  }

  /** The key of record i for an error message, without the read queue (already inside it). */
  async #keyForError(i: number): Promise<string> {
    try {
      return `key ${JSON.stringify(await this.#keyAt(i))}`;
    } catch {
      return "key unknown";
    }
  }

  /** Every key, in record order, read whole (and checked, in version 2). */
  async #allKeys(): Promise<string[]> {
    const b = await this.#bytes(
      KEYS,
      0,
      this.#sizes[KEYS],
      () => "the whole file",
    );
    let text: string;
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(b);
    } catch (e) {
      throw this.#damaged(
        `${KEYS} is not valid UTF-8 (${(e as Error).message})`,
      );
    }
    const list = text.split("\n");
    list.pop();
    if (list.length !== this.header.count || !text.endsWith("\n")) {
      throw this.#damaged(
        `${KEYS} should hold ${this.header.count} lines, found ${list.length}`,
      );
    }
    return list;
  }

  /**
   * Every key, in record order (reads `keys.txt` whole: for checks and
   * listings, not per-image lookups).
   *
   * @example
   * ```ts
   * import { officialToStore, ScoreMapStore } from "tokenlab/labels/score_map.ts";
   * const dir = await Deno.makeTempDir();
   * const root = new URL("../../tests/fixtures/score_maps", import.meta.url);
   * await officialToStore(root, `${dir}/maps`, { numClasses: 1000, annotator: "fixture", preprocessing: { mode: "squash", size: 224 }, scores: "logits", labels: "folders" });
   * const store = await ScoreMapStore.open(`${dir}/maps`);
   * console.log(await store.keys()); // [ "n01440764/img_1", "n01440764/img_12", ... ]
   * store.close();
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  keys(): Promise<string[]> {
    this.#dataFile();
    return this.#serial(() => this.#allKeys());
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
   * import { officialToStore, ScoreMapStore } from "tokenlab/labels/score_map.ts";
   * const dir = await Deno.makeTempDir();
   * const root = new URL("../../tests/fixtures/score_maps", import.meta.url);
   * await officialToStore(root, `${dir}/maps`, { numClasses: 1000, annotator: "fixture", preprocessing: { mode: "squash", size: 224 }, scores: "logits" });
   * using store = await ScoreMapStore.open(`${dir}/maps`);
   * await store.verify(); // throws if anything is damaged
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  verify(): Promise<void> {
    this.#dataFile();
    return this.#serial(() => this.#verify());
  }

  async #verify(): Promise<void> {
    const n = this.header.count;
    const keys = await this.#allKeys();
    const enc = new TextEncoder();
    const bytes = keys.map((k) => enc.encode(k));
    // keys.offsets: the line starts of keys.txt.
    const off = await this.#bytes(KEY_OFFSETS, 0, 8 * (n + 1), () => "all");
    const ov = new DataView(off.buffer, off.byteOffset, off.length);
    let pos = 0;
    for (let i = 0; i <= n; i++) {
      if (ov.getBigUint64(8 * i, true) !== BigInt(pos)) {
        throw this.#damaged(
          `${KEY_OFFSETS} entry ${i} is ${
            ov.getBigUint64(8 * i, true)
          }, but line ${i} of ${KEYS} starts at byte ${pos}`,
        );
      }
      if (i < n) pos += bytes[i].length + 1;
    }
    // keys.sorted: a permutation of the records, in key order, each entry
    // describing its key.
    const { entry, prefix, at } = this.#entryLayout();
    const sorted = await this.#bytes(KEY_SORTED, 0, entry * n, () => "all");
    const sv = new DataView(sorted.buffer, sorted.byteOffset, sorted.length);
    const seen = new Uint8Array(n);
    let prev = -1;
    for (let e = 0; e < n; e++) {
      const p = e * entry;
      const i = sv.getUint32(p, true);
      const bad = (what: string) =>
        this.#damaged(`${KEY_SORTED} entry ${e} ${what}`);
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
      if (this.header.version !== 1 && !isKeyHash(sv, p + 16, keyHash(k))) {
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
      await this.#readBatch(
        idx,
        this.header.version === 1 ? undefined : keys.slice(from, from + m),
        true,
      );
    }
  }

  /** Closes the store's files (reads after this fail). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (
      const f of [
        ...this.#pool.slice(1),
        this.#data,
        ...Object.values(this.#index),
      ]
    ) {
      try {
        f?.close();
      } catch { /* already closed */ }
    }
    this.#pool = [];
    this.#data = null;
    this.#index = {};
    this.#sumPages.clear();
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

/** Whether a decoded record has finite scores, ids and label in range. */
function recordOk(
  h: ScoreMapStoreHeader,
  scores: Float32Array,
  ids: Int32Array,
  from: number,
  n: number,
  label: number,
): boolean {
  const c = h.numClasses;
  for (let e = from; e < from + n; e++) {
    const s = scores[e], id = ids[e];
    if (!(s - s === 0) || id < 0 || id >= c) return false;
  }
  return h.labels ? label >= -1 && label < c : label === -1;
}

/** "1 record", "2 records". */
function plural(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? "" : "s"}`;
}

/** The header fields (but the record layout, which follows from them) where `want` and `have` differ. */
function headerDifferences(
  want: ScoreMapStoreHeader,
  have: ScoreMapStoreHeader,
): (keyof ScoreMapStoreHeader)[] {
  return (Object.keys(want) as (keyof ScoreMapStoreHeader)[])
    .filter((f) =>
      f !== "record" && f !== "checksum" && !sameJson(want[f], have[f])
    );
}

/** `field value, ...` of a header, for messages. */
function describeFields(
  h: ScoreMapStoreHeader,
  fields: (keyof ScoreMapStoreHeader)[],
): string {
  return fields.map((f) => `${f} ${JSON.stringify(h[f])?.slice(0, 100)}`)
    .join(", ");
}

/**
 * What an interrupted write holds, without changing it: its creation header
 * (undefined when `partial.json` is unreadable) and how many records a
 * resume would keep (-1: unknown).
 */
async function partialState(
  partial: string,
): Promise<{ header?: ScoreMapStoreHeader; records: number }> {
  let header: ScoreMapStoreHeader;
  try {
    header = parseHeader(
      await Deno.readTextFile(`${partial}/${PARTIAL_INFO}`),
      partial,
      PARTIAL_INFO,
      false,
    );
  } catch {
    return { records: -1 };
  }
  let claimed = 0;
  try {
    const p = JSON.parse(await Deno.readTextFile(`${partial}/${PROGRESS}`));
    claimed = Number.isSafeInteger(p?.count) && p.count >= 0 ? p.count : -1;
  } catch (e) {
    // No progress file: no checkpoint yet (what resume keeps: nothing).
    if (!(e instanceof Deno.errors.NotFound)) claimed = -1;
  }
  const size = async (name: string) => {
    try {
      return (await Deno.stat(`${partial}/${name}`)).size;
    } catch {
      return 0;
    }
  };
  const onDisk = Math.min(
    Math.floor((await size(DATA)) / header.record.bytes),
    (await size(KEYS)) > 0 ? Number.MAX_SAFE_INTEGER : 0,
  );
  if (onDisk === 0) return { header, records: 0 };
  return { header, records: claimed < 0 ? -1 : Math.min(claimed, onDisk) };
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

/**
 * Parses and checks a store header (`header.json`, or `partial.json` with
 * `committed: false`): the format, a version this tokenlab reads, the
 * version-2 checksum, the shape (bounded: no header makes a reader allocate
 * more than a record of 2^26 values), count, labels, the record layout and,
 * for a committed version-2 store, the index sizes.
 */
function parseHeader(
  text: string,
  where: string,
  file: string,
  committed = true,
): ScoreMapStoreHeader {
  const at = `${where}/${file}`;
  let h: unknown;
  try {
    h = JSON.parse(text);
  } catch (e) {
    throw new ScoreMapError(
      `score-map store ${where}: its ${file} is not valid JSON (${
        (e as Error).message
      }); the store is damaged, ${REBUILD}`,
      { cause: e },
    );
  }
  if (!isScoreMapStoreHeader(h) || h.format !== SCORE_MAP_STORE_FORMAT) {
    throw new ScoreMapError(
      `${where} is not a score-map store: expected ${file} with format ${
        JSON.stringify(SCORE_MAP_STORE_FORMAT)
      }, found ${
        JSON.stringify(isScoreMapStoreHeader(h) ? h.format : h)?.slice(0, 200)
      }`,
    );
  }
  if (h.version !== 1 && h.version !== STORE_VERSION) {
    throw new ScoreMapError(
      `score-map store ${where} has format version ${
        JSON.stringify(h.version)?.slice(0, 40)
      } in ${file}, this tokenlab reads versions 1 and ${STORE_VERSION}; ${
        typeof h.version === "number" && h.version > STORE_VERSION
          ? "upgrade tokenlab"
          : `the header is damaged, ${REBUILD}`
      }`,
    );
  }
  if (h.version === STORE_VERSION) {
    const want = headerChecksum(h as unknown as Record<string, unknown>);
    if (h.checksum !== want) {
      throw new ScoreMapError(
        `score-map store ${where} is damaged: the checksum of ${at} is ${
          JSON.stringify(h.checksum)?.slice(0, 40)
        }, but its fields give ${want} (a field was changed or the file is corrupted); ${REBUILD}`,
      );
    }
  }
  checkInit(h, `score-map store ${at}`);
  if (!Number.isSafeInteger(h.count) || h.count < 0 || h.count >= 2 ** 32) {
    throw new ScoreMapError(
      `score-map store ${at}: expected count to be an integer in [0, 2^32), found ${
        JSON.stringify(h.count)?.slice(0, 40)
      }; the header is damaged, ${REBUILD}`,
    );
  }
  if (typeof h.labels !== "boolean") {
    throw new ScoreMapError(
      `score-map store ${at}: expected labels to be true or false, found ${
        JSON.stringify(h.labels)?.slice(0, 40)
      }; the header is damaged, ${REBUILD}`,
    );
  }
  const layout = recordLayout(h.k, h.height, h.width, h.numClasses, h.version);
  if (!sameJson(h.record, layout)) {
    throw new ScoreMapError(
      `score-map store ${at}: its record layout ${
        JSON.stringify(h.record)?.slice(0, 300)
      } is not the one this tokenlab computes for version ${h.version}, k=${h.k}, ${h.height} x ${h.width}, ${h.numClasses} classes (${
        JSON.stringify(layout)
      }); the header is damaged or from another writer`,
    );
  }
  if (h.count * layout.bytes > Number.MAX_SAFE_INTEGER) {
    throw new ScoreMapError(
      `score-map store ${at}: count ${h.count} of ${layout.bytes}-byte records is too large a store; the header is damaged, ${REBUILD}`,
    );
  }
  if (h.version === STORE_VERSION && committed) {
    const ix = h.index as unknown;
    const ok = ix !== null && typeof ix === "object" &&
      sameJson(
        Object.keys(ix as object),
        ["keysBytes", "blockBytes", "entryBytes"],
      ) && (ix as ScoreMapStoreIndexInfo).blockBytes === BLOCK_BYTES &&
      (ix as ScoreMapStoreIndexInfo).entryBytes === ENTRY &&
      Number.isSafeInteger((ix as ScoreMapStoreIndexInfo).keysBytes) &&
      (ix as ScoreMapStoreIndexInfo).keysBytes >= 2 * h.count &&
      (ix as ScoreMapStoreIndexInfo).keysBytes <=
        (MAX_KEY_BYTES + 1) * h.count;
    if (!ok) {
      throw new ScoreMapError(
        `score-map store ${at}: expected index {keysBytes (2 to ${
          MAX_KEY_BYTES + 1
        } bytes per key), blockBytes: ${BLOCK_BYTES}, entryBytes: ${ENTRY}}, found ${
          JSON.stringify(ix)?.slice(0, 200)
        }; the header is damaged, ${REBUILD}`,
      );
    }
  }
  return h;
}

// ---------------------------------------------------------------------------
// Writing a store.

interface WriterStart {
  overwrite: boolean;
  flushEvery: number;
  resume: boolean;
}

interface Progress {
  count: number;
  dataBytes: number;
  keysBytes: number;
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
 * import { ScoreMapStore } from "tokenlab/labels/score_map.ts";
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
   * import { ScoreMapStore } from "tokenlab/labels/score_map.ts";
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
    checkHalfRange(bits, map, where);
    // Encode now (synchronously), so the caller may reuse its arrays.
    const rec = new Uint8Array(h.record.bytes);
    const v = new DataView(rec.buffer);
    v.setInt32(h.record.label.offset, hasLabel ? label : -1, true);
    rec.set(new Uint8Array(bits.buffer), h.record.scores.offset);
    const n = map.ids.length;
    if (h.record.ids.dtype === "uint16") {
      new Uint16Array(rec.buffer, h.record.ids.offset, n).set(map.ids);
    } else {
      new Int32Array(rec.buffer, h.record.ids.offset, n).set(map.ids);
    }
    setKeyHash(
      v,
      h.record.keyHash!.offset,
      keyHash(new TextEncoder().encode(key)),
    );
    v.setUint32(0, recordChecksum(rec, this.#count), true);
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
   * import { ScoreMapStore } from "tokenlab/labels/score_map.ts";
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
   * import { ScoreMapStore } from "tokenlab/labels/score_map.ts";
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
   * import { ScoreMapStore } from "tokenlab/labels/score_map.ts";
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
   * import { ScoreMapStore } from "tokenlab/labels/score_map.ts";
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
  const rb = header.record.bytes;
  const dataPath = `${partial}/${DATA}`;
  const keysPath = `${partial}/${KEYS}`;
  let progress: Progress = { count: 0, dataBytes: 0, keysBytes: 0 };
  let resumed: ScoreMapResumeInfo | undefined;
  const keySet = new Set<string>();
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
      await removeTemporaries(partial);
      let claimed = 0;
      try {
        const p = JSON.parse(await Deno.readTextFile(`${partial}/${PROGRESS}`));
        if (Number.isSafeInteger(p?.count) && p.count >= 0) claimed = p.count;
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) {
          // A damaged progress file: trust only what the files prove.
          claimed = Number.MAX_SAFE_INTEGER;
        }
      }
      const dataSize = (await data.stat()).size;
      const keysSize = (await keys.stat()).size;
      const keyBytes = new Uint8Array(keysSize);
      await readFull(keys, 0, keyBytes, () => `resuming ${partial}/${KEYS}`);
      // Whole lines of keys.txt, and where each ends.
      const ends: number[] = [];
      for (let i = 0; i < keyBytes.length; i++) {
        if (keyBytes[i] === 0x0a) ends.push(i + 1);
      }
      const count = Math.min(claimed, Math.floor(dataSize / rb), ends.length);
      const keysBytes = count > 0 ? ends[count - 1] : 0;
      const dec = new TextDecoder("utf-8", { fatal: true });
      let text: string;
      try {
        text = dec.decode(keyBytes.subarray(0, keysBytes));
      } catch (e) {
        throw new ScoreMapError(
          `cannot resume ${partial}: ${KEYS} is not valid UTF-8; the partial store is damaged, start over with ScoreMapStore.create(path, header, { overwrite: true })`,
          { cause: e },
        );
      }
      if (count > 0) {
        for (const k of text.slice(0, -1).split("\n")) keySet.add(k);
        const lb = new Uint8Array(4);
        await readFull(
          data,
          header.record.label.offset,
          lb,
          () => `resuming ${partial}/${DATA}`,
        );
        labels = new DataView(lb.buffer).getInt32(0, true) >= 0;
      }
      progress = { count, dataBytes: count * rb, keysBytes };
      resumed = {
        records: count,
        discardedBytes: dataSize - progress.dataBytes + keysSize - keysBytes,
      };
      await data.truncate(progress.dataBytes);
      await keys.truncate(keysBytes);
      await data.syncData();
      await keys.syncData();
      await writeProgress(partial, progress);
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

/** Removes leftover temporary files (`.<name>.tmp-*`) of an interrupted write. */
async function removeTemporaries(partial: string): Promise<void> {
  for await (const e of Deno.readDir(partial)) {
    if (e.isFile && e.name.startsWith(".")) {
      await Deno.remove(`${partial}/${e.name}`);
    }
  }
}

async function writeProgress(partial: string, p: Progress): Promise<void> {
  await writeFileAtomic(`${partial}/${PROGRESS}`, jsonBytes(p), {
    overwrite: true,
  });
}

/** Renames the finished folder to its final name; with `overwrite` the old store goes only after. */
async function moveIntoPlace(
  partial: string,
  dir: string,
  overwrite: boolean,
): Promise<void> {
  if (!(await exists(dir))) {
    await Deno.rename(partial, dir);
    return;
  }
  if (!overwrite) {
    throw new ScoreMapError(
      `cannot commit the score-map store ${dir}: something already exists there (the finished store stays at ${partial}); remove or move it and call ScoreMapStore.resume(${
        JSON.stringify(dir)
      }, { overwrite: true }) then commit(), or pass overwrite: true when creating`,
    );
  }
  const old = `${dir}.old-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.rename(dir, old);
  try {
    await Deno.rename(partial, dir);
  } catch (e) {
    await Deno.rename(old, dir).catch(() => {});
    throw e;
  }
  await Deno.remove(old, { recursive: true });
}

/** Builds `keys.offsets`, `keys.sorted` and their checksums `keys.sums` from `keys.txt`. */
async function writeKeyIndex(
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
  const tmp = `${partial}/.${KEY_SORTED}.tmp`;
  const file = await Deno.open(tmp, {
    write: true,
    create: true,
    truncate: true,
  });
  try {
    const chunk = 65536; // entries: a whole number of checksum blocks
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
      await writeAll(file, out);
    }
    await file.syncData();
  } finally {
    file.close();
  }
  await Deno.rename(tmp, `${partial}/${KEY_SORTED}`);
  blockSums(text, sums, at);
  await writeFileAtomic(
    `${partial}/${KEY_SUMS}`,
    new Uint8Array(sums.buffer),
    { overwrite: true },
  );
}

// ---------------------------------------------------------------------------
// Checking a store against a dataset, and conversions.

/** Options of {@linkcode checkStoreAgainst}: what the dataset is. */
export interface CheckStoreOptions {
  /** The dataset's class count. */
  numClasses?: number;
  /** The dataset's image keys (`<class>/<stem>`): each must be in the store. */
  keys?: readonly string[];
  /** How the training expects the maps were made. */
  preprocessing?: ScoreMapPreprocessing;
  /** The map size the training expects, `[height, width]`. */
  mapSize?: readonly [number, number];
}

/**
 * Checks that a store fits a dataset: the same class count, every dataset
 * key present, the same preprocessing and map size (each only when given).
 * Throws a {@linkcode ScoreMapError} saying what differs and what to do.
 *
 * @example
 * ```ts
 * import { checkStoreAgainst, officialToStore, ScoreMapStore } from "tokenlab/labels/score_map.ts";
 * const dir = await Deno.makeTempDir();
 * const root = new URL("../../tests/fixtures/score_maps", import.meta.url);
 * await officialToStore(root, `${dir}/maps`, { numClasses: 1000, annotator: "fixture", preprocessing: { mode: "squash", size: 224 }, scores: "logits" });
 * const store = await ScoreMapStore.open(`${dir}/maps`);
 * await checkStoreAgainst(store, { numClasses: 1000, keys: ["n01440764/img_12"] }); // fine
 * await checkStoreAgainst(store, { numClasses: 100 }).catch((e) => console.log(e.message)); // score-map store ... was made for 1000 classes, but the dataset has 100; ...
 * store.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function checkStoreAgainst(
  store: ScoreMapStore,
  options: CheckStoreOptions = {},
): Promise<void> {
  const h = store.header;
  if (options.numClasses !== undefined && options.numClasses !== h.numClasses) {
    throw new ScoreMapError(
      `score-map store ${store.path} was made for ${h.numClasses} classes, but the dataset has ${options.numClasses}; use maps annotated for this dataset's classes (or re-annotate with numClasses ${options.numClasses})`,
    );
  }
  if (options.preprocessing !== undefined) {
    const want = normPreprocessing(options.preprocessing);
    if (!samePreprocessing(want, h.preprocessing)) {
      throw new ScoreMapError(
        `score-map store ${store.path} was made with preprocessing ${
          JSON.stringify(h.preprocessing)
        }, but the training expects ${
          JSON.stringify(want)
        }; crop boxes would land on the wrong part of the maps. Re-annotate with the expected preprocessing, or configure the training for the store's`,
      );
    }
  }
  if (options.mapSize !== undefined) {
    const [hh, ww] = options.mapSize;
    if (hh !== h.height || ww !== h.width) {
      throw new ScoreMapError(
        `score-map store ${store.path} holds ${h.height} x ${h.width} maps, but ${hh} x ${ww} are expected; use the matching store or change the expected size`,
      );
    }
  }
  if (options.keys !== undefined) {
    const have = new Set(await store.keys());
    const missing: string[] = [];
    let nMissing = 0;
    for (const k of options.keys) {
      if (!have.has(k)) {
        nMissing++;
        if (missing.length < 5) missing.push(JSON.stringify(k));
      }
    }
    if (nMissing > 0) {
      const example = have.size > 0
        ? `; the store's keys look like ${
          JSON.stringify(have.values().next().value)
        }`
        : "";
      throw new ScoreMapError(
        `score-map store ${store.path} lacks ${nMissing} of the dataset's ${options.keys.length} images (${
          missing.join(", ")
        }${
          nMissing > missing.length ? ", ..." : ""
        })${example}; annotate the missing images, or check that keys are written <class>/<stem> on both sides`,
      );
    }
  }
}

/** Options of {@linkcode officialToStore}: the header fields the files do not hold, and how to run. */
export interface OfficialToStoreOptions {
  /** Classes of the dataset. */
  numClasses: number;
  /** The annotator that made the maps. */
  annotator: string;
  /** How the annotator's inputs were made. */
  preprocessing: ScoreMapPreprocessing;
  /** What the scores are (official TokenLabeling: `"logits"`; ReLabel: `"unknown"`). */
  scores: ScoreKind;
  /** Who made the store. */
  createdBy?: string;
  /**
   * Ground-truth labels to store: `"none"` (default), `"folders"` (the index
   * of the class folder among the sorted folders, as ImageFolder), or the
   * class names in label order.
   */
  labels?: "none" | "folders" | readonly string[];
  /** Replace an existing store (default false). */
  overwrite?: boolean;
  /** Continue an interrupted conversion (`<store>.partial`) instead of starting over. */
  resume?: boolean;
  /** Files read at once (default 32). */
  concurrency?: number;
  /** Accept float16 ids >= 2048 as stored (see {@linkcode ReadOfficialMapOptions}). */
  allowInexactIds?: boolean;
  /** Called after each chunk with the maps done and the total. */
  onProgress?: (done: number, total: number) => void;
}

/** What a conversion did. */
export interface ConversionResult {
  /** Maps in the result. */
  count: number;
  /** Maps that were already done (a resumed conversion). */
  skipped: number;
}

/**
 * Converts an official root (`<root>/<class>/<stem>.pt`) into a store, in
 * sorted key order, checking every map. Atomic like every store write; with
 * `resume: true` an interrupted conversion continues where it stopped.
 *
 * @example
 * ```ts
 * import { officialToStore, ScoreMapStore } from "tokenlab/labels/score_map.ts";
 * const dir = await Deno.makeTempDir();
 * const root = new URL("../../tests/fixtures/score_maps", import.meta.url);
 * const { count } = await officialToStore(root, `${dir}/maps`, {
 *   numClasses: 1000, annotator: "fixture", preprocessing: { mode: "resize-center-crop", size: 224, cropPct: 0.875 }, scores: "logits", labels: "folders",
 * });
 * using store = await ScoreMapStore.open(`${dir}/maps`);
 * console.log(count === store.size); // true
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function officialToStore(
  root: string | URL,
  storePath: string | URL,
  options: OfficialToStoreOptions,
): Promise<ConversionResult> {
  const rootDir = pathString(root).replace(/\/+$/, "");
  const keys = await listOfficialMaps(rootDir);
  const dest = storePath instanceof URL ? pathString(storePath) : storePath;
  if (keys.length === 0) {
    throw new ScoreMapError(
      `no score maps under ${rootDir}: expected <class>/<stem>.pt files; check the path`,
    );
  }
  const labelOf = labelFunction(keys, options.labels ?? "none", rootDir);
  const concurrency = Math.max(1, options.concurrency ?? 32);
  const readOpts = {
    numClasses: options.numClasses,
    allowInexactIds: options.allowInexactIds,
  };
  const read = (key: string) =>
    readOfficialMap(`${rootDir}/${key}.pt`, {
      ...readOpts,
      where: `${rootDir}/${key}.pt`,
    });
  let writer: ScoreMapStoreWriter;
  let skip = 0;
  if (options.resume && await exists(`${pathString(dest)}.partial`)) {
    writer = await ScoreMapStore.resume(dest, {
      overwrite: options.overwrite,
      flushEvery: 4096,
    });
    skip = writer.size;
    if (skip > keys.length) {
      await writer.close();
      throw new ScoreMapError(
        `cannot resume the conversion into ${dest}: it already holds ${skip} maps, but ${rootDir} has ${keys.length}; start over without resume`,
      );
    }
    // The records on disk must be the first keys of this listing.
    const done = await partialKeys(writer);
    for (let i = 0; i < skip; i++) {
      if (done[i] !== keys[i]) {
        await writer.close();
        throw new ScoreMapError(
          `cannot resume the conversion into ${dest}: its record ${i} is ${
            JSON.stringify(done[i])
          }, but the listing of ${rootDir} has ${
            JSON.stringify(keys[i])
          } there (files added or removed?); start over without resume`,
        );
      }
    }
  } else {
    const first = await read(keys[0]);
    writer = await ScoreMapStore.create(dest, {
      k: first.k,
      height: first.height,
      width: first.width,
      numClasses: options.numClasses,
      annotator: options.annotator,
      preprocessing: options.preprocessing,
      scores: options.scores,
      createdBy: options.createdBy,
    }, { overwrite: options.overwrite, flushEvery: 4096 });
  }
  try {
    for (let from = skip; from < keys.length; from += concurrency) {
      const chunk = keys.slice(from, from + concurrency);
      const maps = await Promise.all(chunk.map(read));
      for (let j = 0; j < chunk.length; j++) {
        await writer.append(chunk[j], maps[j], labelOf(from + j));
      }
      options.onProgress?.(from + chunk.length, keys.length);
    }
    await writer.commit();
  } catch (e) {
    await writer.close().catch(() => {});
    throw e;
  }
  return { count: keys.length, skipped: skip };
}

/** The keys already in a partial store (its keys.txt), for a resumed conversion. */
async function partialKeys(writer: ScoreMapStoreWriter): Promise<string[]> {
  const text = await Deno.readTextFile(`${writer.partialPath}/${KEYS}`);
  return text.split("\n").slice(0, writer.size);
}

function labelFunction(
  keys: string[],
  labels: "none" | "folders" | readonly string[],
  root: string,
): (i: number) => number | undefined {
  if (labels === "none") return () => undefined;
  const classOf = (key: string) => key.slice(0, key.indexOf("/"));
  let index: Map<string, number>;
  if (labels === "folders") {
    const names = [...new Set(keys.map(classOf))].sort(compareCodePoints);
    index = new Map(names.map((c, i) => [c, i]));
  } else if (Array.isArray(labels)) {
    index = new Map(labels.map((c, i) => [c, i]));
    for (const k of keys) {
      if (!index.has(classOf(k))) {
        throw new ScoreMapError(
          `officialToStore: the folder ${
            JSON.stringify(classOf(k))
          } of ${root} is not among the ${labels.length} class names given in labels; add it, or check that the names are the folder names`,
        );
      }
    }
  } else {
    throw new ScoreMapError(
      `officialToStore: expected labels to be "none", "folders" or a list of class names, found ${
        JSON.stringify(labels)
      }`,
    );
  }
  return (i) => index.get(classOf(keys[i]));
}

/** Options of {@linkcode storeToOfficial}. */
export interface StoreToOfficialOptions {
  /** Replace existing files (default false: refuse). */
  overwrite?: boolean;
  /** Element type of the files (default `"float16"`, as the official code). */
  dtype?: "float16" | "float32";
  /** Files written at once (default 32). */
  concurrency?: number;
  /**
   * Flush each file to disk before renaming it into place (default false:
   * each file is still written atomically, but a machine crash may leave
   * empty files; re-run with overwrite).
   */
  sync?: boolean;
  /** Called after each chunk with the maps done and the total. */
  onProgress?: (done: number, total: number) => void;
}

/** Writes a file that must not exist yet (inside a folder nobody else uses). */
async function writeNewFile(
  path: string,
  bytes: Uint8Array,
  sync: boolean,
): Promise<void> {
  if (!sync) return await Deno.writeFile(path, bytes, { createNew: true });
  const file = await Deno.open(path, { write: true, createNew: true });
  try {
    await writeAll(file, bytes);
    await file.syncData();
  } finally {
    file.close();
  }
}

function safeRelative(key: string, store: string): string {
  const parts = key.split("/");
  if (
    key.startsWith("/") || key.includes("\\") ||
    parts.some((p) => p === "" || p === "." || p === "..")
  ) {
    throw new ScoreMapError(
      `storeToOfficial: the key ${
        JSON.stringify(key)
      } of ${store} is not a relative path <class>/<stem>; official files are written at <root>/<key>.pt, so keys must not be absolute or contain "..", "." or empty parts`,
    );
  }
  return key;
}

/**
 * Writes every map of a store as official files `<root>/<key>.pt` (float16
 * by default, the bytes `generate_label.py` writes), creating the class
 * folders. A root that does not exist yet is written under a temporary name
 * and renamed when complete; into an existing root each file is written
 * atomically, and existing files are refused unless `overwrite: true`.
 *
 * @example
 * ```ts
 * import { officialToStore, storeToOfficial } from "tokenlab/labels/score_map.ts";
 * const dir = await Deno.makeTempDir();
 * const root = new URL("../../tests/fixtures/score_maps", import.meta.url);
 * await officialToStore(root, `${dir}/maps`, { numClasses: 1000, annotator: "fixture", preprocessing: { mode: "squash", size: 224 }, scores: "logits" });
 * const { count } = await storeToOfficial(`${dir}/maps`, `${dir}/official`);
 * console.log(count > 0); // true
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function storeToOfficial(
  storePath: string | URL,
  root: string | URL,
  options: StoreToOfficialOptions = {},
): Promise<ConversionResult> {
  using store = await ScoreMapStore.open(storePath);
  const dir = pathString(root).replace(/\/+$/, "");
  const keys = await store.keys();
  for (const k of keys) safeRelative(k, store.path);
  // A new root is written whole under a temporary name and renamed at the
  // end (no per-file temporaries needed); into an existing root each file
  // is written atomically on its own.
  const fresh = !(await exists(dir));
  const out = fresh ? `${dir}.partial-${crypto.randomUUID().slice(0, 8)}` : dir;
  const made = new Set<string>();
  const concurrency = Math.max(1, options.concurrency ?? 32);
  const n = store.header.k * store.header.height * store.header.width;
  try {
    if (fresh) await Deno.mkdir(out, { recursive: true });
    for (let from = 0; from < keys.length; from += concurrency) {
      const m = Math.min(concurrency, keys.length - from);
      const batch = await store.readBatch(
        Array.from({ length: m }, (_, j) => from + j),
      );
      // Every write's failure is caught at once (no unhandled rejection
      // while the next folder is made); the first one is thrown.
      const writes: Promise<unknown>[] = [];
      let failure: { error: unknown } | undefined;
      const track = (p: Promise<void>) =>
        writes.push(p.catch((error) => failure ??= { error }));
      for (let j = 0; j < m; j++) {
        const key = keys[from + j];
        const slash = key.lastIndexOf("/");
        const sub = slash > 0 ? `${out}/${key.slice(0, slash)}` : out;
        if (!made.has(sub)) {
          await Deno.mkdir(sub, { recursive: true });
          made.add(sub);
        }
        const map: ScoreMap = {
          k: batch.k,
          height: batch.height,
          width: batch.width,
          scores: batch.scores.subarray(j * n, (j + 1) * n),
          ids: batch.ids.subarray(j * n, (j + 1) * n),
        };
        const file = `${out}/${key}.pt`;
        const opts = {
          overwrite: options.overwrite,
          dtype: options.dtype,
          sync: options.sync ?? false,
          where: `${dir}/${key}.pt (image ${
            JSON.stringify(key)
          } of ${store.path})`,
        };
        track(
          fresh
            ? writeNewFile(
              file,
              encodeTorchTensor(officialRaw(map, opts, opts.where), {
                archiveName: key.slice(slash + 1),
                memoryOrder: OFFICIAL_ORDER,
              }),
              opts.sync,
            )
            : writeOfficialMap(file, map, opts),
        );
      }
      await Promise.all(writes);
      if (failure) throw failure.error;
      options.onProgress?.(from + m, keys.length);
    }
    if (fresh) await Deno.rename(out, dir);
  } catch (e) {
    if (fresh) await Deno.remove(out, { recursive: true }).catch(() => {});
    throw e;
  }
  return { count: keys.length, skipped: 0 };
}

/** Options of {@linkcode upgradeScoreMapStore}. */
export interface UpgradeScoreMapStoreOptions {
  /** Called after each chunk with the maps done and the total. */
  onProgress?: (done: number, total: number) => void;
}

/** What {@linkcode upgradeScoreMapStore} did. */
export interface ScoreMapUpgradeResult {
  /** The store's format version before. */
  from: number;
  /** Its version now ({@linkcode SCORE_MAP_STORE_VERSION}). */
  to: number;
  /** Maps in the store. */
  count: number;
}

/**
 * Rewrites a version-1 store (no checksums) as the current version, in
 * place: first checks everything version 1 allows (every record's values,
 * the key index against `keys.txt`, see {@linkcode ScoreMapStore.verify}),
 * then writes the same keys, maps and labels as a new store at
 * `<path>.partial` and swaps it in when complete (the old store stays until
 * then). A store already at the current version is left as it is.
 *
 * @example
 * ```ts
 * import { ScoreMapStore, upgradeScoreMapStore } from "tokenlab/labels/score_map.ts";
 * const dir = await Deno.makeTempDir();
 * const w = await ScoreMapStore.create(`${dir}/s`, { k: 1, height: 1, width: 1, numClasses: 2, annotator: "a", preprocessing: { mode: "squash", size: 8 }, scores: "unknown" });
 * await w.append("a", { k: 1, height: 1, width: 1, scores: new Float32Array([1]), ids: new Int32Array([1]) });
 * await w.commit();
 * console.log(await upgradeScoreMapStore(`${dir}/s`)); // { from: 2, to: 2, count: 1 } (already current)
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function upgradeScoreMapStore(
  path: string | URL,
  options: UpgradeScoreMapStoreOptions = {},
): Promise<ScoreMapUpgradeResult> {
  const dir = storePath(path);
  const old = await ScoreMapStore.open(dir, { onWarning: () => {} });
  let writer: ScoreMapStoreWriter | undefined;
  try {
    const h = old.header;
    const from = h.version;
    if (from === STORE_VERSION) {
      return { from, to: STORE_VERSION, count: h.count };
    }
    await old.verify();
    const keys = await old.keys();
    writer = await ScoreMapStore.create(dir, {
      k: h.k,
      height: h.height,
      width: h.width,
      numClasses: h.numClasses,
      annotator: h.annotator,
      preprocessing: h.preprocessing,
      scores: h.scores,
      createdBy: h.createdBy,
    }, { overwrite: true, flushEvery: 4096 });
    const n = h.k * h.height * h.width;
    const chunk = 256;
    for (let at = 0; at < h.count; at += chunk) {
      const m = Math.min(chunk, h.count - at);
      const b = await old.readBatch(
        Array.from({ length: m }, (_, j) => at + j),
      );
      for (let j = 0; j < m; j++) {
        await writer.append(keys[at + j], {
          k: h.k,
          height: h.height,
          width: h.width,
          scores: b.scores.subarray(j * n, (j + 1) * n),
          ids: b.ids.subarray(j * n, (j + 1) * n),
        }, b.labels && b.labels[j] >= 0 ? b.labels[j] : undefined);
      }
      options.onProgress?.(at + m, h.count);
    }
    old.close();
    await writer.commit();
    return { from, to: STORE_VERSION, count: h.count };
  } catch (e) {
    await writer?.abort();
    throw e;
  } finally {
    old.close();
  }
}
