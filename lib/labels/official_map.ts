/**
 * The official per-image score-map files of TokenLabeling's
 * `generate_label.py` (and ReLabel's, which have the same layout):
 * `<root>/<class>/<stem>.pt`, a float16 tensor [2, k, H, W] holding the
 * scores in [0] and the class ids, as floats, in [1]. Reading one
 * ({@linkcode readOfficialMap}), writing one byte for byte as the official
 * code does ({@linkcode writeOfficialMap}), and listing a root's maps in
 * Python's order ({@linkcode listOfficialMaps}).
 *
 * @module
 */

import {
  CheckpointError,
  isTorchTensor,
  readTorchFile,
} from "../io/torch/mod.ts";
import { writeTorchTensor } from "../io/torch/mod.ts";
import { type RawTensor, toFloat32 } from "../io/raw_tensor.ts";
import {
  cellOf,
  compareCodePoints,
  isDirectory,
  numClassesProblem,
  pathString,
  typeName,
} from "./_common.ts";
import {
  OFFICIAL_ORDER,
  officialRaw,
  type WriteOfficialMapOptions,
} from "./_official_tensor.ts";
import { type ScoreMap, ScoreMapError, validateScoreMap } from "./score_map.ts";

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

/**
 * Reads one official score-map file (TokenLabeling's `generate_label.py`, or
 * ReLabel's, which have the same layout): a torch-saved float16 (or float32)
 * tensor [2, k, H, W], [0] the scores, [1] the class ids stored as floats.
 * Checks the shape, dtype, that scores are finite and ids integral (and
 * below `numClasses` when given).
 *
 * @example
 * ```ts
 * import { readOfficialMap } from "tokenlab/labels/official_map.ts";
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
  if (limit !== undefined) {
    const bad = numClassesProblem(limit, `reading ${where}`);
    if (bad !== undefined) throw new ScoreMapError(bad);
  }
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

// Defined beside the official tensor; still exported here.
export type { WriteOfficialMapOptions } from "./_official_tensor.ts";

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
 * import { readOfficialMap, writeOfficialMap } from "tokenlab/labels/official_map.ts";
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

/**
 * The score maps under an official root (`<root>/<class>/<stem>.pt`), as keys
 * `<class>/<stem>`, sorted by code point (Python's order, as ImageFolder).
 * Hidden files (names starting with `.`, such as temporary files) and files
 * not ending in `.pt` are left out.
 *
 * @example
 * ```ts
 * import { listOfficialMaps } from "tokenlab/labels/official_map.ts";
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

/**
 * The class folders of a listing of official maps (keys `<class>/<stem>`,
 * as {@linkcode listOfficialMaps} returns them), sorted by code point: the
 * class names in label order, as ImageFolder numbers its folders.
 *
 * @example
 * ```ts
 * import { officialMapClassNames } from "tokenlab/labels/official_map.ts";
 * console.log(officialMapClassNames(["dog/b", "cat/a", "dog/c"])); // [ "cat", "dog" ]
 * ```
 */
export function officialMapClassNames(keys: readonly string[]): string[] {
  const names = new Set<string>();
  for (const key of keys) {
    const slash = key.indexOf("/");
    names.add(slash < 0 ? key : key.slice(0, slash));
  }
  return [...names].sort(compareCodePoints);
}
