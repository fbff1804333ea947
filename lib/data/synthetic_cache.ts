/**
 * A cache of synthetic scenes on disk: {@linkcode cacheSyntheticScenes}
 * writes a dataset (images, labels, class maps, keys, class names and the
 * options) to one safetensors file, {@linkcode openSyntheticCache} reads it
 * back (it is also a plain tensor dataset for `openTensorDataset`). What the
 * scenes are is in `synthetic_scenes.ts`, their options in
 * `synthetic_options.ts`.
 *
 * @module
 */

import { readSafetensors, writeSafetensors } from "../io/safetensors.ts";
import { toFloat32 } from "../io/raw_tensor.ts";
import type { ClassMap, ImageDataset } from "./image.ts";
import { DatasetError } from "./tensor_dataset.ts";
import { found } from "./_options.ts";
import { readRange } from "./_read_range.ts";
import {
  type ResolvedSyntheticOptions,
  resolveSyntheticOptions,
  syntheticClassNames,
  type SyntheticOptions,
} from "./synthetic_options.ts";
import { SyntheticScenes } from "./synthetic_scenes.ts";

// ---------------------------------------------------------------------------
// The cache file.

/** The format name in a cache's metadata. */
export const SYNTHETIC_CACHE_FORMAT = "tokenlab.synthetic-scenes";
const CACHE_VERSION = "1";

/**
 * Writes a synthetic dataset to one safetensors file: `images` uint8
 * [N, S, S, 3], `labels` int64 [N], `classMaps` int16 [N, S, S], and
 * metadata `format`, `version`, `options` (the resolved options, JSON),
 * `keys` and `classes` (so `openTensorDataset` reads it as a plain image
 * dataset too). Atomic: a failed write leaves no file. Returns the path.
 *
 * @example
 * ```ts
 * import { cacheSyntheticScenes, openSyntheticCache } from "tokenlab/data/synthetic_cache.ts";
 * const dir = await Deno.makeTempDir();
 * await cacheSyntheticScenes(`${dir}/s.safetensors`, { count: 4, size: 16 });
 * const ds = await openSyntheticCache(`${dir}/s.safetensors`);
 * console.log(ds.size, ds.classMap(0).width); // 4 16
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function cacheSyntheticScenes(
  path: string,
  source: SyntheticOptions | SyntheticScenes,
): Promise<string> {
  const ds = source instanceof SyntheticScenes
    ? source
    : new SyntheticScenes(source);
  const { count: n, size } = ds.options;
  const np = size * size;
  const images = new Uint8Array(n * np * 3);
  const maps = new Int16Array(n * np);
  const labels = new BigInt64Array(n);
  const keys: string[] = [];
  for (let i = 0; i < n; i++) {
    const s = ds.render(i);
    images.set(s.image.data, i * np * 3);
    maps.set(s.classMap.data, i * np);
    labels[i] = BigInt(s.label);
    keys.push(ds.key(i));
  }
  await writeSafetensors(path, {
    images: { dtype: "uint8", shape: [n, size, size, 3], data: images },
    labels: { dtype: "int64", shape: [n], data: labels },
    classMaps: { dtype: "int16", shape: [n, size, size], data: maps },
  }, {
    metadata: {
      format: SYNTHETIC_CACHE_FORMAT,
      version: CACHE_VERSION,
      options: JSON.stringify(ds.options),
      keys: JSON.stringify(keys),
      classes: JSON.stringify(ds.classes),
    },
  });
  return path;
}

/** Options of {@linkcode openSyntheticCache}. */
export interface OpenSyntheticCacheOptions {
  /**
   * The options the caller expects (defaults filled in before comparing):
   * a cache made with others is refused, naming the options that differ.
   */
  expect?: SyntheticOptions;
  /**
   * How many images (the first ones) to draw again and compare with the
   * file (default 1; 0 skips): catches a cache made by an older generator.
   */
  verify?: number;
}

/** A synthetic dataset read back from a cache file. */
export interface SyntheticCache extends ImageDataset {
  /** The options the cache was made with. */
  readonly options: Readonly<ResolvedSyntheticOptions>;
  /** Image height in pixels. */
  readonly height: number;
  /** Image width in pixels. */
  readonly width: number;
  /** The label of image `i`. */
  label(i: number): number;
  /** The class map of image `i` (-1 background). */
  classMap(i: number): ClassMap;
  /** Images [start, start + count) as NHWC float32 values in [0, 1]. */
  read(start: number, count: number): Promise<Float32Array>;
}

/**
 * Opens a file written by {@linkcode cacheSyntheticScenes}: checks that it
 * is such a cache (format, version, options valid, tensor shapes agreeing
 * with them), optionally that it was made with the expected options, and
 * that its first images are what the generator draws now.
 *
 * @example
 * ```ts
 * import { openSyntheticCache } from "tokenlab/data/synthetic_cache.ts";
 * await openSyntheticCache("/nonexistent.safetensors").catch((e) => console.log(e.name)); // DatasetError
 * ```
 */
export async function openSyntheticCache(
  path: string,
  options: OpenSyntheticCacheOptions = {},
): Promise<SyntheticCache> {
  const not = (why: string) =>
    new DatasetError(
      `${path} is not a synthetic-scenes cache: ${why}; write one with cacheSyntheticScenes`,
    );
  let contents;
  try {
    contents = await readSafetensors(path);
  } catch (e) {
    throw not(`cannot read it as safetensors (${(e as Error).message})`);
  }
  const { tensors, metadata } = contents;
  if (metadata.format !== SYNTHETIC_CACHE_FORMAT) {
    throw not(
      `expected metadata format "${SYNTHETIC_CACHE_FORMAT}", found ${
        found(metadata.format)
      }`,
    );
  }
  if (metadata.version !== CACHE_VERSION) {
    throw not(
      `expected cache version ${CACHE_VERSION}, found ${
        found(metadata.version)
      } (made by another version of tokenlab)`,
    );
  }
  let opts: ResolvedSyntheticOptions;
  try {
    opts = resolveSyntheticOptions(JSON.parse(metadata.options ?? "null"));
  } catch (e) {
    throw not(`its stored options are invalid (${(e as Error).message})`);
  }
  const { count: n, size } = opts;
  const images = tensors.get("images"), labelsRaw = tensors.get("labels");
  const maps = tensors.get("classMaps");
  const shape = (t: typeof images) => t ? `${t.dtype} [${t.shape}]` : "none";
  if (
    !images || images.dtype !== "uint8" ||
    images.shape.join() !== [n, size, size, 3].join()
  ) {
    throw not(
      `expected "images" uint8 [${n}, ${size}, ${size}, 3] (from its options), found ${
        shape(images)
      }`,
    );
  }
  if (
    !maps || maps.dtype !== "int16" ||
    maps.shape.join() !== [n, size, size].join()
  ) {
    throw not(
      `expected "classMaps" int16 [${n}, ${size}, ${size}], found ${
        shape(maps)
      }`,
    );
  }
  if (!labelsRaw || labelsRaw.shape.join() !== String(n)) {
    throw not(`expected "labels" [${n}], found ${shape(labelsRaw)}`);
  }
  const labels = Int32Array.from(toFloat32(labelsRaw));
  let keys: string[];
  try {
    keys = JSON.parse(metadata.keys);
  } catch {
    keys = [];
  }
  if (!Array.isArray(keys) || keys.length !== n) {
    throw not(`expected metadata "keys", a JSON array of ${n} keys`);
  }
  if (options.expect !== undefined) {
    const want = resolveSyntheticOptions(options.expect);
    const diff = (Object.keys(want) as (keyof ResolvedSyntheticOptions)[])
      .filter((k) => JSON.stringify(want[k]) !== JSON.stringify(opts[k]))
      .map((k) =>
        `${k}: expected ${JSON.stringify(want[k])}, found ${
          JSON.stringify(opts[k])
        }`
      );
    if (diff.length > 0) {
      throw new DatasetError(
        `${path} was made with other options (${
          diff.join("; ")
        }); make a new cache with cacheSyntheticScenes`,
      );
    }
  }
  const imgData = images.data as Uint8Array, mapData = maps.data as Int16Array;
  const np = size * size;
  const verify = Math.min(n, options.verify ?? 1);
  if (verify > 0) {
    const gen = new SyntheticScenes(opts);
    for (let i = 0; i < verify; i++) {
      const s = gen.render(i);
      const same = s.label === labels[i] &&
        s.image.data.every((v, j) => v === imgData[i * np * 3 + j]) &&
        s.classMap.data.every((v, j) => v === mapData[i * np + j]);
      if (!same) {
        throw new DatasetError(
          `${path}: image ${i} differs from what the generator draws now with the stored options; the cache was made by another version of the generator or was modified: make a new one with cacheSyntheticScenes`,
        );
      }
    }
  }
  const classes = Object.freeze(syntheticClassNames(opts.numClasses));
  const description =
    `${path} (cached synthetic scenes, ${opts.split}, ${n} images, ${size}x${size}, ${opts.numClasses} classes, seed ${opts.seed})`;
  const check = (i: number) => {
    if (!(Number.isInteger(i) && i >= 0 && i < n)) {
      throw new RangeError(
        `${description}: expected an image index, an integer in [0, ${n}), found ${i}`,
      );
    }
  };
  const pixels = (i: number) => {
    check(i);
    return imgData.subarray(i * np * 3, (i + 1) * np * 3);
  };
  return {
    options: Object.freeze(opts),
    size: n,
    height: size,
    width: size,
    description,
    classes,
    key: (i) => {
      check(i);
      return keys[i];
    },
    label: (i) => {
      check(i);
      return labels[i];
    },
    image: (i) => {
      try {
        return Promise.resolve({
          width: size,
          height: size,
          data: pixels(i).slice(),
        });
      } catch (e) {
        return Promise.reject(e);
      }
    },
    classMap: (i) => {
      check(i);
      return {
        width: size,
        height: size,
        data: mapData.slice(i * np, (i + 1) * np),
      };
    },
    read: (start, count) => {
      try {
        return Promise.resolve(
          readRange(
            { size: n, height: size, width: size, description },
            start,
            count,
            pixels,
          ),
        );
      } catch (e) {
        return Promise.reject(e);
      }
    },
  };
}
