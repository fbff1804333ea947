/**
 * Which images a size limit keeps (`trainLimit`, `valLimit`, a loader's
 * `limit`): a seeded sample spread over the classes in proportion to their
 * sizes (stratified), not the first N, which in a dataset ordered by class
 * (MNIST, image folders, tensor files) would be one or two classes.
 *
 * The labels are read with `dataset.label(i)`, which for MNIST, CIFAR,
 * image folders and tensor datasets is a lookup in a table read when the
 * dataset was opened: no image is decoded. Synthetic scenes know an image's
 * label only by drawing the scene, so they are not stratified: each scene is
 * an independent seeded draw, so their first N already are a random sample
 * over the classes, and the first N are kept (the same as before).
 *
 * Every draw comes from `Rng.derive(seed, LIMIT_STREAM, -2, label)` (the
 * images of a class) and `Rng.derive(seed, LIMIT_STREAM, -3)` (ties of the
 * quotas): the same
 * seed, dataset and limit keep the same images (a resumed run sees the
 * images it started with).
 *
 * @module
 */

import { Rng } from "../random.ts";
import type { ImageDataset } from "./image.ts";
import { SyntheticScenes } from "./synthetic_scenes.ts";

/** The stream of the limit's draws (apart from the loader's and the engine's). */
const LIMIT_STREAM = 0x1173;

/** The images a limit keeps, and how they were chosen. */
export interface LimitSample {
  /** Dataset indices kept, ascending. */
  readonly indices: Int32Array;
  /**
   * `"stratified"`: a seeded sample in proportion to the classes;
   * `"first"`: the first N (a dataset whose labels need its images decoded).
   */
  readonly how: "stratified" | "first";
  /** Images kept per label (label -1: unlabelled), ascending by label. */
  readonly perClass: ReadonlyMap<number, number>;
  /** Distinct labels in the whole dataset (when read; null for `"first"`). */
  readonly classesInData: number | null;
}

/**
 * Whether a dataset's labels can be read without decoding its images:
 * every dataset but synthetic scenes (whose label is drawn with the scene).
 */
export function labelsAreCheap(dataset: ImageDataset): boolean {
  return !(dataset instanceof SyntheticScenes);
}

/**
 * A seeded permutation of 0..n-1 (Fisher-Yates, drawing `rng.int(i + 1)`
 * for i from n-1 down to 1): the same `rng` state gives the same order.
 */
export function seededPermutation(n: number, rng: Rng): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}

/**
 * How many of each group to keep: `limit` split in proportion to the group
 * sizes (largest remainders first, ties in a seeded order), every group
 * given at least one image when `limit` allows it.
 */
export function proportionalQuotas(
  sizes: readonly number[],
  limit: number,
  rng: Rng,
): number[] {
  const total = sizes.reduce((a, b) => a + b, 0);
  const g = sizes.length;
  const rank = seededPermutation(g, rng); // rank[k]: the tie-break order of group k
  const exact = sizes.map((n) => (limit * n) / total);
  const quota = exact.map((x) => Math.floor(x));
  let left = limit - quota.reduce((a, b) => a + b, 0);
  const byRemainder = [...sizes.keys()].sort((a, b) =>
    (exact[b] - quota[b]) - (exact[a] - quota[a]) || rank[a] - rank[b]
  );
  for (const k of byRemainder) {
    if (left === 0) break;
    if (quota[k] < sizes[k]) {
      quota[k]++;
      left--;
    }
  }
  // Every group represented: an empty one takes an image from the group
  // with the most (it keeps at least one).
  if (limit >= g) {
    for (const k of [...sizes.keys()].sort((a, b) => rank[a] - rank[b])) {
      if (quota[k] > 0 || sizes[k] === 0) continue;
      let from = -1;
      for (let j = 0; j < g; j++) {
        if (
          quota[j] > 1 &&
          (from < 0 || quota[j] > quota[from] ||
            (quota[j] === quota[from] && rank[j] < rank[from]))
        ) from = j;
      }
      if (from < 0) break;
      quota[from]--;
      quota[k]++;
    }
  }
  return quota;
}

/**
 * The images a limit of `limit` keeps of `dataset`, drawn with `seed`
 * (null when the limit keeps them all).
 *
 * @example
 * ```ts
 * import { limitSample } from "tokenlab/data/limit_sample.ts";
 * // Ten images sorted by class: 0 0 0 0 0 1 1 1 1 1.
 * const ds = {
 *   size: 10, description: "sorted", classes: ["a", "b"],
 *   key: (i: number) => String(i), label: (i: number) => (i < 5 ? 0 : 1),
 *   image: () => Promise.reject(new Error("not decoded")),
 * };
 * const s = limitSample(ds, 4, 42)!;
 * console.log(s.how, [...s.perClass]); // stratified [ [ 0, 2 ], [ 1, 2 ] ]
 * ```
 */
export function limitSample(
  dataset: ImageDataset,
  limit: number,
  seed: number,
): LimitSample | null {
  const n = dataset.size;
  if (limit >= n) return null;
  if (!labelsAreCheap(dataset)) {
    const indices = new Int32Array(limit);
    for (let i = 0; i < limit; i++) indices[i] = i;
    return { indices, how: "first", perClass: new Map(), classesInData: null };
  }
  const groups = new Map<number, number[]>();
  for (let i = 0; i < n; i++) {
    const label = dataset.label(i) ?? -1;
    let list = groups.get(label);
    if (list === undefined) groups.set(label, list = []);
    list.push(i);
  }
  const labels = [...groups.keys()].sort((a, b) => a - b);
  const lists = labels.map((l) => groups.get(l)!);
  const quota = proportionalQuotas(
    lists.map((l) => l.length),
    limit,
    Rng.derive(seed, LIMIT_STREAM, -3),
  );
  const kept: number[] = [];
  const perClass = new Map<number, number>();
  lists.forEach((list, k) => {
    const perm = seededPermutation(
      list.length,
      Rng.derive(seed, LIMIT_STREAM, -2, labels[k]),
    );
    for (let j = 0; j < quota[k]; j++) kept.push(list[perm[j]]);
    if (quota[k] > 0) perClass.set(labels[k], quota[k]);
  });
  kept.sort((a, b) => a - b);
  return {
    indices: Int32Array.from(kept),
    how: "stratified",
    perClass,
    classesInData: labels.length,
  };
}
