/**
 * The own-data notebook's helpers: the per-seed table and the computed gap
 * claim (lib/report/seed_comparison.ts) against numbers worked out by hand,
 * and the score-map gallery (lib/report/score_map_gallery.ts) against maps
 * whose pooled label is known.
 */

import { type Ablation, runAblation } from "tokenlab/report/ablation.ts";
import { gapClaim, seedTable } from "tokenlab/report/seed_comparison.ts";
import { showScoreMapGallery } from "tokenlab/report/score_map_gallery.ts";
import { initBackend } from "tokenlab/backend.ts";
import { ScoreMapStore } from "tokenlab/labels/store/mod.ts";
import type { ImageDataset } from "tokenlab/data/image.ts";
import { assert, assertEquals, assertStringIncludes } from "./_assert.ts";

/** A two-arm ablation whose values are given per seed, cached in a fresh folder. */
async function twoArms(
  plain: number[],
  tl: number[],
): Promise<{ ab: Ablation<{ v: number[] }>; dir: string }> {
  const dir = await Deno.makeTempDir({ prefix: "tokenlab-seed-table-" });
  const seeds = plain.map((_, i) => i + 1);
  const ab = await runAblation<{ v: number[] }>({
    name: "seed-comparison-test",
    arms: [
      { key: "plain", label: "plain", config: { v: plain } },
      { key: "tl", label: "token labels", config: { v: tl } },
    ],
    baseline: "plain",
    seeds,
    run: (c, seed) => Promise.resolve({ value: c.v[seed - 1] }),
    setting: {
      dataset: "digits",
      real: true,
      model: "m",
      epochs: 1,
      scale: "tiny",
    },
    experimentOptions: { cacheDir: dir, frozenDir: dir, refresh: true },
  });
  return { ab, dir };
}

Deno.test("seedTable: one column per seed, mean ± sample std, the paired Δ", async () => {
  const { ab, dir } = await twoArms([80, 82, 84], [85, 86, 90]);
  try {
    const t = seedTable(ab).toJSON();
    assertEquals(t.columns.map((c) => c.key), [
      "arm",
      "seed1",
      "seed2",
      "seed3",
      "mean",
      "delta",
    ]);
    const mean = t.rows[1].mean as { mean: number; std: number };
    // 85, 86, 90: mean 87, sample std sqrt((4 + 1 + 9) / 2) = sqrt(7).
    assertEquals(mean.mean, 87);
    assert(Math.abs(mean.std - Math.sqrt(7)) < 1e-12, `std ${mean.std}`);
    assertEquals(t.rows[0].delta, "reference");
    // Differences 5, 4, 6: mean 5, std 1, half-width t(2) 4.302653 / sqrt(3).
    const hw = 4.302653 / Math.sqrt(3);
    assertEquals(
      t.rows[1].delta,
      `+5.00 [+${(5 - hw).toFixed(2)}, +${(5 + hw).toFixed(2)}] vs plain`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("gapClaim: the words follow the gap, the spread and the interval", async () => {
  // Gap 5 > spread sqrt(7) = 2.65; paired interval [2.52, 7.48] above 0.
  let { ab, dir } = await twoArms([80, 82, 84], [85, 86, 90]);
  try {
    const c = gapClaim(ab, "tl");
    assertEquals(c.gap, 5);
    assertEquals(c.exceedsSpread, true);
    assertEquals(c.interval, "above");
    assertStringIncludes(c.text, "a gap of +5.0 points");
    assertStringIncludes(c.text, "is 2.6 points, so the gap is **larger than");
    assertStringIncludes(c.text, "token labels **helped**");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  // Gap −1 against a spread of 4: the interval holds 0.
  ({ ab, dir } = await twoArms([80, 88, 84], [83, 83, 83]));
  try {
    const c = gapClaim(ab, "tl");
    assertEquals(c.gap, -1);
    assertEquals(c.spread, 4);
    assertEquals(c.exceedsSpread, false);
    assertEquals(c.interval, "holds 0");
    assertStringIncludes(c.text, "**not larger than the seed spread**");
    assertStringIncludes(c.text, "**no difference shown**");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  // Consistently lower by 3 to 4 points: below 0.
  ({ ab, dir } = await twoArms([90, 92, 91], [87, 88, 87.5]));
  try {
    const c = gapClaim(ab, "tl", { what: "TL" });
    assertEquals(c.interval, "below");
    assertStringIncludes(c.text, "TL **hurt**");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  // One seed: no spread, no interval, and the sentence says so.
  ({ ab, dir } = await twoArms([80], [90]));
  try {
    const c = gapClaim(ab, "tl");
    assertEquals(c.interval, "none");
    assertEquals(c.exceedsSpread, false);
    assertStringIncludes(c.text, "With one seed there is no seed spread");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("showScoreMapGallery: pooled labels, cells of the label, a seeded choice", async () => {
  await initBackend({ backend: "cpu" });
  const dir = await Deno.makeTempDir({ prefix: "tokenlab-gallery-" });
  try {
    // Four 4 x 4 grey images; image i has label i % 3. Its 2 x 2 map names
    // class 2 in its top-left cell (score 9) and its label elsewhere (score
    // 1): pooled over the whole image, class 2 wins (9 > 3 x 1 in logit
    // mass after densifying and averaging), so only label 2 agrees.
    const n = 4;
    const dataset: ImageDataset = {
      size: n,
      description: "four test images",
      classes: ["a", "b", "c"],
      key: (i) => `k/${i}`,
      label: (i) => i % 3,
      image: (i) =>
        Promise.resolve({
          width: 4,
          height: 4,
          data: new Uint8Array(48).fill(40 * i),
        }),
    };
    const w = await ScoreMapStore.create(`${dir}/maps`, {
      k: 1,
      height: 2,
      width: 2,
      numClasses: 3,
      annotator: "hand-made",
      preprocessing: { mode: "squash", size: 4 },
      scores: "logits",
    });
    for (let i = 0; i < n; i++) {
      const l = i % 3;
      await w.append(`k/${i}`, {
        k: 1,
        height: 2,
        width: 2,
        scores: new Float32Array([9, 1, 1, 1]),
        ids: new Int32Array([2, l, l, l]),
      }, l);
    }
    await w.commit();
    using store = await ScoreMapStore.open(`${dir}/maps`);
    const g = await showScoreMapGallery(store, dataset, { count: 4 });
    assertEquals(g.tiles.map((t) => t.key), ["k/0", "k/1", "k/2", "k/3"]);
    assertEquals(g.tiles.map((t) => t.pooled), [2, 2, 2, 2]);
    assertEquals(g.agreeing, 1);
    assertEquals(g.tiles.map((t) => t.cellsOfLabel), [3, 3, 4, 3]);
    assertStringIncludes(g.toString(), "k/2: label c, pooled label c (agrees)");
    // A seeded choice: the same seed, the same images; another, others.
    const a = await showScoreMapGallery(store, dataset, { count: 2, seed: 1 });
    const b = await showScoreMapGallery(store, dataset, { count: 2, seed: 1 });
    assertEquals(a.tiles.map((t) => t.key), b.tiles.map((t) => t.key));
    const svg = g.svg();
    assertEquals((svg.match(/<image /g) ?? []).length, 8);
    assertStringIncludes(svg, "a → c ✗");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
