/**
 * notebooks/own_data.ipynb ("Your own data: token labeling end to end")
 * runs through the report runner at the tiny scale, on its default data
 * (MNIST) and on an image folder given as its `data` parameter, and shows
 * the per-seed table with both arms and every seed, the computed claim, the
 * map gallery and a headline. The table's numbers are checked against the
 * values of its own seed columns, recomputed here.
 */

import { runReports } from "tokenlab/report/run.ts";
import { openMnist } from "tokenlab/data/mnist.ts";
import { encodePng } from "tokenlab/view/png.ts";
import { assert, assertEquals, assertStringIncludes } from "./_assert.ts";
import { ROOT } from "./_helpers.ts";

const ARMS = ["plain labels", "token labels + MixToken"];

interface Stats {
  values: number[];
  mean: number | null;
  std: number | null;
  n: number;
}

interface TableJson {
  caption: string;
  columns: { key: string; label: string }[];
  rows: Record<string, Stats | string | null>[];
  notes: string[];
}

/** Every tokenlab table a report's executed notebook shows. */
async function tables(ipynb: string): Promise<TableJson[]> {
  const nb = JSON.parse(await Deno.readTextFile(ipynb));
  const out: TableJson[] = [];
  for (const cell of nb.cells) {
    for (const o of cell.outputs ?? []) {
      const t = o.data?.["application/vnd.tokenlab.table+json"];
      if (t) out.push(t as TableJson);
    }
  }
  return out;
}

/** Runs the notebook at tiny scale into a fresh folder; returns its report files' stem. */
async function render(
  params: string[],
): Promise<{ dir: string; stem: string }> {
  const dir = await Deno.makeTempDir({ prefix: "tokenlab-own-data-" });
  const [r] = await runReports(["own_data"], {
    outDir: dir,
    scale: "tiny",
    params,
    refresh: true,
    browser: false,
    cellTimeout: 600,
    progress: () => {},
  });
  assertEquals(r.status, "ok", `own_data: cell ${r.cell}: ${r.error}`);
  assertEquals(r.scale, "tiny");
  assert(
    r.headline !== null && r.headline.includes("tiny scale"),
    `headline: ${r.headline}`,
  );
  return { dir, stem: `${dir}/own_data` };
}

/** Checks the per-seed table: the two arms in order, one column per seed, mean ± std from those columns. */
async function checkSeedTable(stem: string, seeds: number[]): Promise<void> {
  const all = await tables(`${stem}.ipynb`);
  const t = all.find((x) => x.caption.startsWith("Top-1 per seed"));
  assert(
    t !== undefined,
    `no per-seed table among ${all.map((x) => x.caption).join("; ")}`,
  );
  assertEquals(
    t.columns.map((c) => c.key),
    ["arm", ...seeds.map((s) => `seed${s}`), "mean", "delta"],
  );
  assertEquals(t.rows.map((r) => r.arm), ARMS);
  assertStringIncludes(t.caption, `tiny scale, ${seeds.length} seeds`);
  for (const row of t.rows) {
    const perSeed = seeds.map((s) => {
      const cell = row[`seed${s}`] as Stats;
      assertEquals(cell.n, 1, `${row.arm}, seed ${s}`);
      const v = cell.values[0];
      assert(
        Number.isFinite(v) && v >= 0 && v <= 100,
        `${row.arm}, seed ${s}: top-1 ${v}`,
      );
      return v;
    });
    const mean = row.mean as Stats;
    assertEquals(
      mean.values,
      perSeed,
      `${row.arm}: mean ± std is over the seed columns`,
    );
    const m = perSeed.reduce((a, b) => a + b, 0) / perSeed.length;
    const sd = Math.sqrt(
      perSeed.reduce((a, v) => a + (v - m) ** 2, 0) / (perSeed.length - 1),
    );
    assert(
      Math.abs(mean.mean! - m) < 1e-9,
      `${row.arm}: mean ${mean.mean} vs ${m}`,
    );
    assert(
      Math.abs(mean.std! - sd) < 1e-9,
      `${row.arm}: std ${mean.std} vs ${sd}`,
    );
  }
  assertEquals(t.rows[0].delta, "reference");
  assert(
    /^[+−]\d+\.\d\d \[[+−]\d+\.\d\d, [+−]\d+\.\d\d\] vs plain labels$/.test(
      String(t.rows[1].delta),
    ),
    `Δ cell: ${t.rows[1].delta}`,
  );
}

Deno.test({
  name:
    "own_data notebook: MNIST at tiny scale, the per-seed table of both arms over the 3 default seeds",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { dir, stem } = await render([]);
    try {
      await checkSeedTable(stem, [1, 2, 3]);
      const md = await Deno.readTextFile(`${stem}.md`);
      assertStringIncludes(md, "# Your own data: token labeling end to end");
      assertStringIncludes(md, "**This run: tiny scale.** MNIST digits");
      assertStringIncludes(
        md,
        "**Annotator top-1 on the 64 validation images:",
      );
      assertStringIncludes(md, "**Agreement over all 128 maps:**");
      // The gallery (its text fallback) and the computed claim.
      assertStringIncludes(md, "8 of 128 maps (8 x 8, top 5)");
      assert(
        /than the seed spread\*\*; paired seed by seed, the difference is /
          .test(md),
        "the claim sentence is missing",
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "own_data notebook: an image folder as the data parameter, two seeds",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    // <root>/train/<class>/*.png and <root>/val/<class>/*.png: 28 px
    // digits of three classes, trained at the notebook's 32 px. Inside the
    // project (tests/.tmp-*, ignored by git), like the other tests' files.
    const root = await Deno.makeTempDir({
      dir: `${ROOT}tests`,
      prefix: ".tmp-own-data-",
    });
    const names = ["zero", "one", "two"];
    try {
      for (const [split, perClass] of [["train", 24], ["val", 8]] as const) {
        const digits = await openMnist({
          split,
          limit: split === "train" ? 240 : 80,
          seed: 5,
        });
        const written = names.map(() => 0);
        for (let i = 0; i < digits.size; i++) {
          const d = digits.label(i);
          if (d >= names.length || written[d] >= perClass) continue;
          const img = await digits.image(i);
          await Deno.mkdir(`${root}/${split}/${names[d]}`, { recursive: true });
          await Deno.writeFile(
            `${root}/${split}/${names[d]}/${written[d]++}.png`,
            await encodePng(img.data, img.width, img.height),
          );
        }
        assertEquals(
          written,
          names.map(() => perClass),
          `${split}: digits per class`,
        );
      }
      const { dir, stem } = await render([`data=${root}`, "seeds=2"]);
      try {
        await checkSeedTable(stem, [1, 2]);
        const md = await Deno.readTextFile(`${stem}.md`);
        assertStringIncludes(md, "72 training images");
        assertStringIncludes(md, "24 validation images");
        assertStringIncludes(
          md,
          "Training images per class: one 24, two 24, zero 24",
        );
        assertStringIncludes(md, "an image folder (3 classes, 32 px)");
        assertStringIncludes(md, "Augmentation: the official recipe");
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});
