/**
 * The store header's optional provenance fields (annotatorHead,
 * annotatorWeights, classNames): written in a fixed place only when given
 * (a header without them is byte for byte what it was before they existed,
 * so older stores open unchanged), covered by the checksum, checked on
 * create, and part of what a resumed write must agree with.
 */

import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { ROOT } from "./_helpers.ts";
import {
  ScoreMapError,
  ScoreMapStore,
  type ScoreMapStoreInit,
  upgradeScoreMapStore,
} from "tokenlab";

const BASE: ScoreMapStoreInit = {
  k: 1,
  height: 1,
  width: 2,
  numClasses: 3,
  annotator: "toy @ 32",
  preprocessing: { mode: "squash", size: 32 },
  scores: "logits",
};
const WEIGHTS = {
  file: "annotator.safetensors",
  bytes: 1234,
  sha256: "ab".repeat(32),
};
const MAP = {
  k: 1,
  height: 1,
  width: 2,
  scores: new Float32Array([2, 1]),
  ids: new Int32Array([2, 0]),
};

async function tempDir(): Promise<string> {
  return await Deno.makeTempDir({ dir: `${ROOT}tests`, prefix: ".tmp-prov-" });
}

Deno.test("score-map store header: provenance fields round-trip in a fixed order, are checksummed, and are absent (old layout) when not given", async () => {
  const dir = await tempDir();
  try {
    const w = await ScoreMapStore.create(`${dir}/with`, {
      ...BASE,
      annotatorHead: "aux_head",
      annotatorWeights: WEIGHTS,
      classNames: ["cat", "dog", "emu"],
    });
    await w.append("a/1", MAP, 2);
    await w.commit();
    using store = await ScoreMapStore.open(`${dir}/with`);
    assertEquals(store.header.annotatorHead, "aux_head");
    assertEquals(store.header.annotatorWeights, WEIGHTS);
    assertEquals(store.header.classNames, ["cat", "dog", "emu"]);
    await store.verify();
    const keys = Object.keys(
      JSON.parse(await Deno.readTextFile(`${dir}/with/header.json`)),
    );
    assertEquals(keys, [
      "format",
      "version",
      "k",
      "height",
      "width",
      "numClasses",
      "annotator",
      "annotatorHead",
      "annotatorWeights",
      "preprocessing",
      "scores",
      "count",
      "labels",
      "createdBy",
      "record",
      "classNames",
      "index",
      "checksum",
    ]);
    const display = (store as unknown as {
      [k: symbol]: () => Record<string, string>;
    })[Symbol.for("Jupyter.display")]()["text/plain"];
    assert(display.includes("annotator head: aux_head"), display);
    assert(display.includes("class names: cat, dog, emu"), display);

    // A changed class name fails the header's checksum.
    const text = await Deno.readTextFile(`${dir}/with/header.json`);
    await Deno.writeTextFile(
      `${dir}/with/header.json`,
      text.replace('"emu"', '"elk"'),
    );
    await assertRejects(
      () => ScoreMapStore.open(`${dir}/with`),
      ScoreMapError,
      "checksum",
    );

    // Without them: the header of before (no new keys at all).
    const plain = await ScoreMapStore.create(`${dir}/plain`, BASE);
    await plain.append("a/1", MAP);
    await plain.commit();
    const h = JSON.parse(await Deno.readTextFile(`${dir}/plain/header.json`));
    for (const f of ["annotatorHead", "annotatorWeights", "classNames"]) {
      assertEquals(f in h, false, f);
    }
    using p = await ScoreMapStore.open(`${dir}/plain`);
    assertEquals(p.header.annotatorHead, undefined);

    // A version-1 store (before the fields existed) still opens and upgrades.
    await Deno.mkdir(`${dir}/v1`);
    for await (
      const f of Deno.readDir(`${ROOT}tests/fixtures/score_map_store_v1`)
    ) {
      await Deno.copyFile(
        `${ROOT}tests/fixtures/score_map_store_v1/${f.name}`,
        `${dir}/v1/${f.name}`,
      );
    }
    using v1 = await ScoreMapStore.open(`${dir}/v1`, { onWarning: () => {} });
    assertEquals(v1.header.classNames, undefined);
    v1.close();
    assertEquals((await upgradeScoreMapStore(`${dir}/v1`)).to, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("score-map store header: bad provenance is refused on create, naming the field; a resume with other provenance is refused", async () => {
  const dir = await tempDir();
  try {
    const cases: [Partial<ScoreMapStoreInit>, string][] = [
      [
        { classNames: ["a", "b"] },
        "expected classNames to list the 3 class names",
      ],
      [
        { classNames: ["a", "b", 3 as unknown as string] },
        "every class name to be a string",
      ],
      [
        { annotatorWeights: { ...WEIGHTS, sha256: "XYZ" } },
        "expected annotatorWeights",
      ],
      [
        { annotatorWeights: { ...WEIGHTS, file: "/home/me/w.safetensors" } },
        "without its folder",
      ],
      [{ annotatorHead: "" }, "expected annotatorHead"],
    ];
    for (const [extra, message] of cases) {
      await assertRejects(
        () => ScoreMapStore.create(`${dir}/bad`, { ...BASE, ...extra }),
        ScoreMapError,
        message,
      );
    }
    const w = await ScoreMapStore.create(`${dir}/s`, {
      ...BASE,
      annotatorWeights: WEIGHTS,
    });
    await w.append("a/1", MAP);
    await w.close();
    // Another weights file, or none: not the run that started the write.
    await assertRejects(
      () =>
        ScoreMapStore.resume(`${dir}/s`, {
          header: { ...BASE, annotatorWeights: { ...WEIGHTS, bytes: 99 } },
        }),
      ScoreMapError,
      "annotatorWeights",
    );
    await assertRejects(
      () => ScoreMapStore.resume(`${dir}/s`, { header: BASE }),
      ScoreMapError,
      "annotatorWeights",
    );
    const again = await ScoreMapStore.resume(`${dir}/s`, {
      header: { ...BASE, annotatorWeights: WEIGHTS },
    });
    assertEquals(again.size, 1);
    assertEquals((await again.commit()).annotatorWeights, WEIGHTS);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
