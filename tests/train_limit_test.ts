/**
 * `trainLimit` / `valLimit` (and the loader's `limit` with `limitSample:
 * "stratified"`): a seeded sample spread over the classes in proportion,
 * read from the labels alone, the same for the same seed; not the first N
 * of data ordered by class (128 MNIST training digits were all zeros).
 */

import { assert, assertEquals } from "./_assert.ts";
import { DataLoader } from "../lib/data/loader.ts";
import { SamplePipeline } from "../lib/data/pipeline.ts";
import type { ImageDataset } from "../lib/data/image.ts";
import {
  labelsAreCheap,
  limitSample,
  proportionalQuotas,
} from "../lib/data/limit_sample.ts";
import { SyntheticScenes } from "../lib/data/synthetic_scenes.ts";
import { Rng } from "../lib/random.ts";

/** `perClass` images of each of `classes` classes, sorted by class; decoding one counts. */
function sortedDataset(
  classes: number,
  perClass: readonly number[] | number,
): ImageDataset & { decoded: number } {
  const sizes = typeof perClass === "number"
    ? Array.from({ length: classes }, () => perClass)
    : perClass;
  const labels: number[] = sizes.flatMap((n, c) => Array(n).fill(c));
  const ds = {
    decoded: 0,
    size: labels.length,
    description: "sorted by class",
    classes: Array.from({ length: classes }, (_, c) => `c${c}`),
    key: (i: number) => `c${labels[i]}/${i}`,
    label: (i: number) => labels[i],
    image(_i: number) {
      ds.decoded++;
      return Promise.resolve({
        width: 2,
        height: 2,
        data: new Uint8Array(12),
      });
    },
  };
  return ds;
}

async function loaderOver(
  ds: ImageDataset,
  options: {
    limit: number;
    seed: number;
    limitSample?: "first" | "stratified";
  },
): Promise<DataLoader> {
  // An eval transform: opening it decodes nothing ("none" reads image 0).
  const pipeline = await SamplePipeline.fromDataset(ds, {
    transform: { kind: "eval", size: 2, cropPct: 1 },
  });
  return DataLoader.fromPipeline(pipeline, {
    batchSize: 8,
    shuffle: false,
    limitSample: "stratified",
    ...options,
  });
}

function labelCounts(ds: ImageDataset, indices: ArrayLike<number>) {
  const counts = new Map<number, number>();
  for (const i of Array.from(indices)) {
    const l = ds.label(i)!;
    counts.set(l, (counts.get(l) ?? 0) + 1);
  }
  return [...counts].sort((a, b) => a[0] - b[0]);
}

Deno.test("limit: 128 of data sorted by class cover every class in proportion, without decoding", async () => {
  const ds = sortedDataset(10, 100);
  const loader = await loaderOver(ds, { limit: 128, seed: 42 });
  try {
    assertEquals(loader.size, 128);
    const order = loader.order(0);
    const counts = labelCounts(ds, order);
    assertEquals(counts.length, 10, JSON.stringify(counts));
    for (const [, n] of counts) assert(n === 12 || n === 13, String(n));
    assertEquals(new Set(order).size, 128);
    assertEquals(loader.limited?.how, "stratified");
    assertEquals(ds.decoded, 0);
    // The first N, as before, would be class 0 and a bit of class 1.
    const first = await loaderOver(ds, {
      limit: 128,
      seed: 42,
      limitSample: "first",
    });
    assertEquals(labelCounts(ds, first.order(0)).length, 2);
    first.close();
  } finally {
    loader.close();
  }
});

Deno.test("limit: the sample follows the seed and only the seed (resume sees the same images)", async () => {
  const ds = sortedDataset(4, [50, 30, 15, 5]);
  const pick = async (seed: number) => {
    const l = await loaderOver(ds, { limit: 20, seed });
    try {
      return Array.from(l.order(0));
    } finally {
      l.close();
    }
  };
  const a = await pick(7), b = await pick(7), c = await pick(8);
  assertEquals(a, b);
  assert(a.join() !== c.join(), "another seed keeps other images");
  // In proportion to 50:30:15:5 of 20: 10, 6, 3, 1.
  assertEquals(labelCounts(ds, a), [[0, 10], [1, 6], [2, 3], [3, 1]]);
  // Shuffled epochs serve the kept images and no others.
  const pipeline = await SamplePipeline.fromDataset(ds, {
    transform: { kind: "none" },
  });
  const shuffled = DataLoader.fromPipeline(pipeline, {
    batchSize: 5,
    seed: 7,
    limit: 20,
    limitSample: "stratified",
  });
  try {
    assertEquals(
      Array.from(shuffled.order(3)).sort((x, y) => x - y),
      [...a].sort((x, y) => x - y),
    );
  } finally {
    shuffled.close();
  }
});

Deno.test("limit: every class gets one when the limit allows; quotas sum to the limit", () => {
  const q = proportionalQuotas([1000, 1000, 2, 1], 10, new Rng(1));
  assertEquals(q.reduce((a, b) => a + b, 0), 10);
  assert(q.every((n) => n >= 1), q.join());
  const few = proportionalQuotas([5, 5, 5, 5], 2, new Rng(1));
  assertEquals(few.reduce((a, b) => a + b, 0), 2);
  const ds = sortedDataset(3, [10, 10, 10]);
  assertEquals(limitSample(ds, 30, 1), null); // keeps all
});

Deno.test("limit: synthetic scenes (labels drawn with the image) keep their first N", () => {
  const scenes = new SyntheticScenes({ size: 16, count: 40, seed: 1 });
  assertEquals(labelsAreCheap(scenes), false);
  const s = limitSample(scenes, 8, 42)!;
  assertEquals(s.how, "first");
  assertEquals(Array.from(s.indices), [0, 1, 2, 3, 4, 5, 6, 7]);
});

Deno.test("limit: real MNIST digits (sorted by class): 128 of them hold all ten", async () => {
  const loader = await DataLoader.open({
    data: { kind: "mnist", options: { size: 28 } },
    transform: { kind: "none" },
  }, {
    batchSize: 64,
    seed: 42,
    limit: 128,
    limitSample: "stratified",
  });
  try {
    const ds = loader.pipeline.dataset;
    // MNIST's first 128 training digits are all zeros.
    assertEquals(labelCounts(ds, [...Array(128).keys()]).length, 1);
    assertEquals(labelCounts(ds, loader.order(0)).length, 10);
  } finally {
    loader.close();
  }
});
