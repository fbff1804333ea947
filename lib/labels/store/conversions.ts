/**
 * A store and the data around it: checking that a store fits a dataset
 * ({@linkcode checkStoreAgainst}), and converting between a store and a
 * root of official per-image files ({@linkcode officialToStore},
 * {@linkcode storeToOfficial}).
 *
 * @module
 */

import { encodeTorchTensor } from "../../io/torch/mod.ts";
import { exists } from "../../_fs.ts";
import { pathString, writeAll } from "../_common.ts";
import { OFFICIAL_ORDER, officialRaw } from "../_official_tensor.ts";
import {
  listOfficialMaps,
  officialMapClassNames,
  readOfficialMap,
  writeOfficialMap,
} from "../official_map.ts";
import { type ScoreMap, ScoreMapError } from "../score_map.ts";
import { KEYS } from "./_format.ts";
import { normPreprocessing } from "./_preprocessing.ts";
import {
  samePreprocessing,
  type ScoreKind,
  type ScoreMapPreprocessing,
} from "./format.ts";
import { ScoreMapStore } from "./reader.ts";
import type { ScoreMapStoreWriter } from "./writer.ts";

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
 * import { checkStoreAgainst, officialToStore, ScoreMapStore } from "tokenlab/labels/store/mod.ts";
 * const dir = await Deno.makeTempDir();
 * const root = new URL("../../../tests/fixtures/score_maps", import.meta.url);
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
  /** The class names in id order, recorded in the header (`numClasses` of them). */
  classNames?: readonly string[];
  /**
   * Stops the conversion between chunks when aborted: the maps done so far
   * stay in `<store>.partial` (continue with `resume: true`) and the result
   * says `interrupted`.
   */
  signal?: AbortSignal;
}

/** What a conversion did. */
export interface ConversionResult {
  /** Maps in the result. */
  count: number;
  /** Maps that were already done (a resumed conversion). */
  skipped: number;
  /** Whether the signal stopped it (nothing committed; resumable). */
  interrupted?: boolean;
}

/**
 * Converts an official root (`<root>/<class>/<stem>.pt`) into a store, in
 * sorted key order, checking every map. Atomic like every store write; with
 * `resume: true` an interrupted conversion continues where it stopped.
 *
 * @example
 * ```ts
 * import { officialToStore, ScoreMapStore } from "tokenlab/labels/store/mod.ts";
 * const dir = await Deno.makeTempDir();
 * const root = new URL("../../../tests/fixtures/score_maps", import.meta.url);
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
      classNames: options.classNames,
    }, { overwrite: options.overwrite, flushEvery: 4096 });
  }
  try {
    for (let from = skip; from < keys.length; from += concurrency) {
      if (options.signal?.aborted) {
        await writer.close();
        return { count: from, skipped: skip, interrupted: true };
      }
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
    const names = officialMapClassNames(keys);
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
 * import { officialToStore, storeToOfficial } from "tokenlab/labels/store/mod.ts";
 * const dir = await Deno.makeTempDir();
 * const root = new URL("../../../tests/fixtures/score_maps", import.meta.url);
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
