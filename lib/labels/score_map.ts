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
 * ## The store on disk
 *
 * A folder `<name>` holding:
 *
 * - `header.json`: format (`tokenlab.score-map-store`) and version, k,
 *   height, width, numClasses, annotator, preprocessing, what the scores are,
 *   count, whether there are labels, createdBy, and the record layout.
 * - `maps.bin`: `count` records of `record.bytes` bytes; record i starts at
 *   byte i * record.bytes, so one image is one seek + read.
 * - `keys.txt`: the image keys in record order, UTF-8, one per line.
 * - `keys.offsets`: count + 1 little-endian uint64, where line i starts in
 *   `keys.txt` (`keyAt` is two small reads).
 * - `keys.sorted`: count entries of 48 bytes sorted by the keys' UTF-8 bytes
 *   (`indexOf` is a binary search by seek; the index is never loaded).
 *
 * A record (little-endian): int32 label at byte 0 (-1: none); float16
 * scores [k, H, W] at byte 4; ids [k, H, W] as uint16 (numClasses <= 65536)
 * or int32 from `record.ids.offset` (aligned to the id size); zero padding to
 * a multiple of 8 bytes. A `keys.sorted` entry: uint32 record index, uint32
 * key length in bytes, uint64 offset of the key in `keys.txt`, then the key's
 * first 32 bytes zero-padded. A lookup reads one 48-byte entry per probe
 * (the prefix decides unless two keys share their first 32 bytes) and the
 * last 64 candidates in one read: 12 reads for 100 000 keys, about 16 for
 * 1.3 million. Opening reads `header.json` only.
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
 * memory: about 100 bytes per image.
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

/** Thrown for a bad score map or store: what was expected, what was found, which file and image, what to do. */
export class ScoreMapError extends Error {
  /** Makes an error with this message (and an optional cause). */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ScoreMapError";
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
  dtype: "int32" | "float16" | "uint16";
  /** Byte offset in the record. */
  offset: number;
}

/** The layout of one record of `maps.bin`. */
export interface ScoreMapRecordLayout {
  /** Bytes per record (a multiple of 8). */
  bytes: number;
  /** The ground-truth label (int32, -1 for none). */
  label: ScoreMapRecordField;
  /** The scores [k, H, W]. */
  scores: ScoreMapRecordField;
  /** The class ids [k, H, W]. */
  ids: ScoreMapRecordField;
}

/** A store's `header.json`. */
export interface ScoreMapStoreHeader extends ScoreMapStoreInit {
  /** Always `"tokenlab.score-map-store"`. */
  format: string;
  /** Format version (1). */
  version: number;
  /** Who made the store. */
  createdBy: string;
  /** Number of images. */
  count: number;
  /** Whether the records hold ground-truth labels. */
  labels: boolean;
  /** Where things are in a record of `maps.bin`. */
  record: ScoreMapRecordLayout;
}

/** The format name in every store header. */
export const SCORE_MAP_STORE_FORMAT = "tokenlab.score-map-store";
const STORE_VERSION = 1;
const DATA = "maps.bin";
const KEYS = "keys.txt";
const KEY_OFFSETS = "keys.offsets";
const KEY_SORTED = "keys.sorted";
const HEADER = "header.json";
const PARTIAL_INFO = "partial.json";
const PROGRESS = "progress.json";
const ENTRY = 48;
const PREFIX = 32;
const MAX_KEY_BYTES = 4096;
/** File handles a batch read uses at once (async reads). */
const READ_HANDLES = 4;

function recordLayout(
  k: number,
  height: number,
  width: number,
  numClasses: number,
): ScoreMapRecordLayout {
  const n = k * height * width;
  const wide = numClasses > 65536;
  const idSize = wide ? 4 : 2;
  const idsOffset = Math.ceil((4 + 2 * n) / idSize) * idSize;
  const bytes = Math.ceil((idsOffset + idSize * n) / 8) * 8;
  return {
    bytes,
    label: { dtype: "int32", offset: 0 },
    scores: { dtype: "float16", offset: 4 },
    ids: { dtype: wide ? "int32" : "uint16", offset: idsOffset },
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
): ScoreMapStoreHeader {
  return {
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

/**
 * A score-map store: one folder per dataset of fixed-size records (one seek +
 * read per image) with a key index searched on disk. Opening reads only the
 * header, whatever the size. See the module doc for the layout.
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
  #keys: Deno.FsFile | null = null;
  #offsets: Deno.FsFile | null = null;
  #sorted: Deno.FsFile | null = null;
  #keysChecked = false;
  #validate: boolean;
  #sync: boolean;
  #pool: Deno.FsFile[] = [];
  #queue: Promise<unknown> = Promise.resolve();
  #reads = 0;
  #bytesRead = 0;
  #closed = false;

  private constructor(
    path: string,
    header: ScoreMapStoreHeader,
    data: Deno.FsFile,
    options: OpenScoreMapStoreOptions,
    headerBytes: number,
  ) {
    this.path = path;
    this.header = header;
    this.#data = data;
    this.#validate = options.validate ?? true;
    this.#sync = options.io === "sync";
    this.#reads = 1;
    this.#bytesRead = headerBytes;
  }

  /**
   * Opens a committed store: reads `header.json`, checks it, and checks that
   * `maps.bin` has `count` records (constant time; the key index is opened
   * on first use).
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
    try {
      text = await Deno.readTextFile(`${dir}/${HEADER}`);
    } catch (e) {
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
    const header = parseHeader(text, dir);
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
        throw new ScoreMapError(
          `score-map store ${dir} is damaged: ${DATA} should hold ${header.count} records of ${header.record.bytes} bytes (${want} bytes), found ${size} bytes; ${
            size < want
              ? "it is truncated (an interrupted copy?)"
              : "it has extra bytes"
          }, copy or rebuild the store`,
        );
      }
    } catch (e) {
      file.close();
      throw e;
    }
    return new ScoreMapStore(
      dir,
      header,
      file,
      options,
      text.length,
    );
  }

  /**
   * Starts writing a new store. Everything is written under `<path>.partial`
   * and renamed to `path` by `commit()`. Refuses an existing store (or an
   * interrupted write) unless `overwrite: true`.
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
      );
    }
    if (await exists(partial)) {
      if (!options.overwrite) {
        throw new ScoreMapError(
          `cannot create the score-map store ${dir}: an interrupted write of it is at ${partial}; continue it with ScoreMapStore.resume(${
            JSON.stringify(dir)
          }), or pass overwrite: true to discard it and start over`,
        );
      }
      await Deno.remove(partial, { recursive: true });
    }
    const init = makeHeader(header, 0, false);
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
    await writeFileAtomic(`${partial}/${PARTIAL_INFO}`, jsonBytes(init));
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
   * written without interruption.
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
      throw e;
    }
    const init = parseHeader(text, partial);
    if (options.header !== undefined) {
      checkInit(options.header, `resuming the score-map store ${dir}`);
      const want = makeHeader(options.header, 0, false);
      // The record layout follows from k, the map size and the class count;
      // naming those is enough.
      const differ = (Object.keys(want) as (keyof ScoreMapStoreHeader)[])
        .filter((f) => f !== "record" && !sameJson(want[f], init[f]));
      if (differ.length > 0) {
        throw new ScoreMapError(
          `cannot resume the score-map store ${dir}: the interrupted write at ${partial} was started with ${
            differ.map((f) => `${f} ${JSON.stringify(init[f])}`).join(", ")
          }, but this run has ${
            differ.map((f) => `${f} ${JSON.stringify(want[f])}`).join(", ")
          }; resume with the same settings, or start over with ScoreMapStore.create(path, header, { overwrite: true })`,
        );
      }
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
    if (this.#sync) readFullSync(file, offset, out, what);
    else await readFull(file, offset, out, what);
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

  async #keyFiles(): Promise<
    { keys: Deno.FsFile; offsets: Deno.FsFile; sorted: Deno.FsFile }
  > {
    this.#dataFile();
    if (!this.#keys) {
      const open = async (name: string) => {
        try {
          return await Deno.open(`${this.path}/${name}`, { read: true });
        } catch (e) {
          throw new ScoreMapError(
            `score-map store ${this.path} is incomplete: cannot open ${name} (${
              (e as Error).message
            }); copy the whole folder again`,
            { cause: e },
          );
        }
      };
      const keys = await open(KEYS);
      const offsets = await open(KEY_OFFSETS);
      const sorted = await open(KEY_SORTED);
      this.#keys = keys, this.#offsets = offsets, this.#sorted = sorted;
    }
    if (!this.#keysChecked) {
      const n = this.header.count;
      const want: [Deno.FsFile, string, number][] = [
        [this.#offsets!, KEY_OFFSETS, 8 * (n + 1)],
        [this.#sorted!, KEY_SORTED, ENTRY * n],
      ];
      for (const [f, name, bytes] of want) {
        const size = (await f.stat()).size;
        if (size !== bytes) {
          throw new ScoreMapError(
            `score-map store ${this.path} is damaged: ${name} should be ${bytes} bytes for ${n} images, found ${size}; copy or rebuild the store`,
          );
        }
      }
      this.#keysChecked = true;
    }
    return { keys: this.#keys, offsets: this.#offsets!, sorted: this.#sorted! };
  }

  #checkIndex(i: number, what: string): void {
    if (!Number.isSafeInteger(i) || i < 0 || i >= this.header.count) {
      throw new ScoreMapError(
        `${what}: expected an image index in [0, ${this.header.count}) of the store ${this.path}, found ${i}`,
      );
    }
  }

  /**
   * The key of image `i` (two small reads).
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
    const { keys, offsets } = await this.#keyFiles();
    const o = new Uint8Array(16);
    await this.#read(offsets, 8 * i, o, KEY_OFFSETS);
    const v = new DataView(o.buffer);
    const from = Number(v.getBigUint64(0, true));
    const to = Number(v.getBigUint64(8, true));
    if (!(to > from + 1 && to - from - 1 <= MAX_KEY_BYTES)) {
      throw new ScoreMapError(
        `score-map store ${this.path} is damaged: ${KEY_OFFSETS} gives key ${i} the bytes [${from}, ${to}) of ${KEYS}; rebuild the store`,
      );
    }
    const b = new Uint8Array(to - from - 1);
    await this.#read(keys, from, b, KEYS);
    return new TextDecoder().decode(b);
  }

  /**
   * The index of the image with this key, or -1: a binary search on disk
   * through `keys.sorted` (about log2(count) - 5 small reads, the index is
   * never loaded whole).
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
    return await this.#serial(() => this.#search(want));
  }

  async #search(want: Uint8Array): Promise<number> {
    const { keys, sorted } = await this.#keyFiles();
    const entry = new Uint8Array(ENTRY);
    // Compares the wanted key with the entry at `at` of `buf`: -1, 0 or 1.
    const compare = async (buf: Uint8Array, at: number): Promise<number> => {
      const v = new DataView(buf.buffer, buf.byteOffset + at, ENTRY);
      const len = v.getUint32(4, true);
      const known = Math.min(len, PREFIX); // bytes of the key in the entry
      const m = Math.min(want.length, known);
      for (let i = 0; i < m; i++) {
        const d = want[i] - buf[at + 16 + i];
        if (d !== 0) return d < 0 ? -1 : 1;
      }
      if (want.length < known) return -1; // a proper prefix sorts first
      if (len <= PREFIX) return Math.sign(want.length - len);
      // Both share the first 32 bytes: compare the whole key.
      const full = new Uint8Array(len);
      await this.#read(keys, Number(v.getBigUint64(8, true)), full, KEYS);
      return Math.sign(compareBytes(want, 0, want.length, full, 0, len));
    };
    let lo = 0, hi = this.header.count;
    while (hi - lo > 64) {
      const mid = (lo + hi) >>> 1;
      await this.#read(sorted, mid * ENTRY, entry, KEY_SORTED);
      const c = await compare(entry, 0);
      if (c === 0) {
        return this.#found(new DataView(entry.buffer).getUint32(0, true));
      }
      if (c < 0) hi = mid;
      else lo = mid + 1;
    }
    if (hi <= lo) return -1;
    const block = new Uint8Array((hi - lo) * ENTRY);
    await this.#read(sorted, lo * ENTRY, block, KEY_SORTED);
    let a = 0, b = hi - lo;
    while (a < b) {
      const mid = (a + b) >>> 1;
      const c = await compare(block, mid * ENTRY);
      if (c === 0) {
        return this.#found(
          new DataView(block.buffer).getUint32(mid * ENTRY, true),
        );
      }
      if (c < 0) b = mid;
      else a = mid + 1;
    }
    return -1;
  }

  #found(i: number): number {
    if (i >= this.header.count) {
      throw new ScoreMapError(
        `score-map store ${this.path} is damaged: ${KEY_SORTED} points at record ${i} of ${this.header.count}; rebuild the store`,
      );
    }
    return i;
  }

  async #resolve(iOrKey: number | string, what: string): Promise<number> {
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
      return i;
    }
    this.#checkIndex(iOrKey, what);
    return iOrKey;
  }

  /**
   * One image's map, by index or key (one seek + read, plus the key lookup
   * for a key). Checked against the header (finite scores, ids in range).
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
    const i = await this.#resolve(iOrKey, "read");
    const b = await this.readBatch([i]);
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
   * none (one 4-byte read).
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
    return this.#resolve(i, "label").then((j) =>
      this.#serial(async () => {
        if (!this.header.labels) return undefined;
        const b = new Uint8Array(4);
        await this.#read(
          this.#dataFile(),
          j * this.header.record.bytes,
          b,
          DATA,
        );
        const v = new DataView(b.buffer).getInt32(0, true);
        if (v < -1 || v >= this.header.numClasses) {
          throw new ScoreMapError(
            `score-map store ${this.path} is damaged: record ${j} holds the label ${v}, outside [-1, ${this.header.numClasses}); rebuild the store`,
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

  async #readBatch(indices: ArrayLike<number>): Promise<ScoreMapBatch> {
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
      for (let r = p; r < q; r++) {
        const j = order[r];
        const base = (indices[j] - first) * rec.bytes;
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
        const label = i32[base >> 2];
        if (labels) labels[j] = label;
        if (this.#validate && !recordOk(h, scores, ids, out, n, label)) {
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
      throw new ScoreMapError(
        `score-map store ${this.path} is damaged: record ${i} (${key}) holds the label ${label}, but ${
          h.labels ? `labels lie in [-1, ${c})` : "the store has no labels"
        }; rebuild the store`,
      );
    }
    const s = scores[from + bad], id = ids[from + bad];
    throw new ScoreMapError(
      `score-map store ${this.path} is damaged: record ${i} (${key}) holds ${
        !(s - s === 0)
          ? `the score ${s}`
          : `class ${id}, but the store has ${c} classes,`
      } in ${
        cellOf(bad, h.height, h.width)
      }; the file was changed or corrupted, rebuild the store`,
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
    return this.#serial(async () => {
      const { keys } = await this.#keyFiles();
      const size = (await keys.stat()).size;
      const b = new Uint8Array(size);
      await this.#read(keys, 0, b, KEYS);
      const text = new TextDecoder().decode(b);
      const list = text.split("\n");
      list.pop();
      if (list.length !== this.header.count || !text.endsWith("\n")) {
        throw new ScoreMapError(
          `score-map store ${this.path} is damaged: ${KEYS} should hold ${this.header.count} lines, found ${list.length}; rebuild the store`,
        );
      }
      return list;
    });
  }

  /** Closes the store's files (reads after this fail). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (
      const f of [
        ...this.#pool.slice(1),
        this.#data,
        this.#keys,
        this.#offsets,
        this.#sorted,
      ]
    ) {
      try {
        f?.close();
      } catch { /* already closed */ }
    }
    this.#pool = [];
    this.#data =
      this.#keys =
      this.#offsets =
      this.#sorted =
        null;
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

function checkFlushEvery(n: number | undefined): number {
  const v = n ?? 1000;
  if (!Number.isSafeInteger(v) || v < 1) {
    throw new ScoreMapError(
      `expected flushEvery to be a positive integer (appends between progress checkpoints), found ${n}`,
    );
  }
  return v;
}

function parseHeader(text: string, where: string): ScoreMapStoreHeader {
  let h: unknown;
  try {
    h = JSON.parse(text);
  } catch (e) {
    throw new ScoreMapError(
      `score-map store ${where}: its header is not valid JSON (${
        (e as Error).message
      }); the store is damaged, rebuild it`,
      { cause: e },
    );
  }
  if (!isScoreMapStoreHeader(h) || h.format !== SCORE_MAP_STORE_FORMAT) {
    throw new ScoreMapError(
      `${where} is not a score-map store: expected a header with format ${
        JSON.stringify(SCORE_MAP_STORE_FORMAT)
      }, found ${JSON.stringify(isScoreMapStoreHeader(h) ? h.format : h)}`,
    );
  }
  if (h.version !== STORE_VERSION) {
    throw new ScoreMapError(
      `score-map store ${where} has format version ${
        JSON.stringify(h.version)
      }, this tokenlab reads version ${STORE_VERSION}; ${
        typeof h.version === "number" && h.version > STORE_VERSION
          ? "upgrade tokenlab"
          : "rebuild the store"
      }`,
    );
  }
  checkInit(h, `score-map store ${where}`);
  if (!Number.isSafeInteger(h.count) || h.count < 0) {
    throw new ScoreMapError(
      `score-map store ${where}: expected count to be a non-negative integer, found ${
        JSON.stringify(h.count)
      }; the header is damaged`,
    );
  }
  if (typeof h.labels !== "boolean") {
    throw new ScoreMapError(
      `score-map store ${where}: expected labels to be true or false, found ${
        JSON.stringify(h.labels)
      }; the header is damaged`,
    );
  }
  const layout = recordLayout(h.k, h.height, h.width, h.numClasses);
  if (!sameJson(h.record, layout)) {
    throw new ScoreMapError(
      `score-map store ${where}: its record layout ${
        JSON.stringify(h.record)
      } is not the one this tokenlab computes for k=${h.k}, ${h.height} x ${h.width}, ${h.numClasses} classes (${
        JSON.stringify(layout)
      }); the header is damaged or from another writer`,
    );
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
    v.setInt32(0, hasLabel ? label : -1, true);
    rec.set(new Uint8Array(bits.buffer), h.record.scores.offset);
    const n = map.ids.length;
    if (h.record.ids.dtype === "uint16") {
      new Uint16Array(rec.buffer, h.record.ids.offset, n).set(map.ids);
    } else {
      new Int32Array(rec.buffer, h.record.ids.offset, n).set(map.ids);
    }
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
      const header = makeHeader(this.header, count, this.#labels ?? false);
      await writeKeyIndex(partial, count, this.#flushed.keysBytes);
      await writeFileAtomic(`${partial}/${HEADER}`, jsonBytes(header), {
        overwrite: true,
      });
      await Deno.remove(`${partial}/${PROGRESS}`).catch(() => {});
      await Deno.remove(`${partial}/${PARTIAL_INFO}`);
      await moveIntoPlace(partial, this.path, this.#opts.overwrite);
      return header;
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
        await readFull(data, 0, lb, () => `resuming ${partial}/${DATA}`);
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

/** Builds `keys.offsets` and `keys.sorted` from `keys.txt`. */
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
  const tmp = `${partial}/.${KEY_SORTED}.tmp`;
  const file = await Deno.open(tmp, {
    write: true,
    create: true,
    truncate: true,
  });
  try {
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
        out.set(text.subarray(a, a + Math.min(len, PREFIX)), r * ENTRY + 16);
      }
      await writeAll(file, out);
    }
    await file.syncData();
  } finally {
    file.close();
  }
  await Deno.rename(tmp, `${partial}/${KEY_SORTED}`);
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
