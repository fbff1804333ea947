/**
 * `tokenlab labels` on the spec's worked example: a 15 x 15 map whose
 * columns 0-5 hold class 3 and 6-14 class 7, cropped to its left 40 %. The
 * correct pooling gives the class token 3 and the 2 x 2 tokens all 3; the
 * official code's transposed box order gives 7 and [3, 7, 3, 7].
 */

import { assertEquals, assertStringIncludes } from "./_assert.ts";
import { ROOT, runCli } from "./_helpers.ts";
import { ScoreMapStore, syntheticClassNames, writeOfficialMap } from "tokenlab";

async function halves(dir: string) {
  const H = 15, W = 15, k = 2;
  const scores = new Float32Array(k * H * W), ids = new Int32Array(k * H * W);
  for (let r = 0; r < H; r++) {
    for (let c = 0; c < W; c++) {
      const cell = r * W + c;
      scores[cell] = 8;
      ids[cell] = c <= 5 ? 3 : 7;
      scores[H * W + cell] = 1;
      ids[H * W + cell] = 0;
    }
  }
  const map = { k, height: H, width: W, scores, ids };
  const writer = await ScoreMapStore.create(`${dir}/store`, {
    k,
    height: H,
    width: W,
    numClasses: 10,
    annotator: "hand-made",
    preprocessing: { mode: "squash", size: 240 },
    scores: "logits",
  });
  await writer.append("cls/halves", map, 3);
  await writer.commit();
  await Deno.mkdir(`${dir}/official/cls`, { recursive: true });
  await writeOfficialMap(`${dir}/official/cls/halves.pt`, map);
}

Deno.test("tokenlab labels: the left-40% crop, correct and official box order, store entry and .pt file", async () => {
  const dir = await Deno.makeTempDir({
    dir: `${ROOT}tests`,
    prefix: ".tmp-labels-",
  });
  try {
    await halves(dir);
    const run = async (target: string, extra: string[] = []) => {
      const out = await runCli([
        "labels",
        target,
        "--box",
        "0,0,1,0.4",
        "--size",
        "2",
        "--json",
        "--backend",
        "wasm",
        ...extra,
      ]);
      assertEquals(out.code, 0, out.stderr);
      const j = JSON.parse(out.stdout);
      return {
        cls: j.classToken[0].id,
        tokens: j.tokens.flat().map((t: { id: number }) => t.id),
      };
    };
    assertEquals(await run(`${dir}/store:cls/halves`), {
      cls: 3,
      tokens: [3, 3, 3, 3],
    });
    assertEquals(await run(`${dir}/store:0`, ["--official-order"]), {
      cls: 7,
      tokens: [3, 7, 3, 7],
    });
    assertEquals(
      await run(`${dir}/official/cls/halves.pt`, ["--num-classes", "10"]),
      { cls: 3, tokens: [3, 3, 3, 3] },
    );
    // Flipped, the left 40 % of the image is the right 40 % of the map.
    assertEquals(await run(`${dir}/store:0`, ["--flip"]), {
      cls: 7,
      tokens: [7, 7, 7, 7],
    });
    const text = await runCli([
      "labels",
      `${dir}/store:0`,
      "--box",
      "0,0,1,0.4",
      "--backend",
      "wasm",
    ]);
    assertEquals(text.code, 0, text.stderr);
    assertStringIncludes(text.stdout, "store of 1 maps by hand-made");
    assertStringIncludes(text.stdout, "class token: 3 (");
    const bad = await runCli([
      "labels",
      `${dir}/store:0`,
      "--box",
      "0,0,1.5,0.4",
      "--backend",
      "wasm",
    ]);
    assertEquals(bad.code, 2, bad.stderr);
    assertStringIncludes(bad.stderr, "height and width must be at most 1");
    const usage = await runCli(["labels", `${dir}/store`]);
    assertEquals(usage.code, 2);
    assertStringIncludes(usage.stderr, "name an entry");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tokenlab labels --verify and --upgrade: a version-1 store checked, upgraded in place, and damage found (exit 1)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = `${dir}/v1`;
    await Deno.mkdir(store);
    for await (
      const f of Deno.readDir(`${ROOT}/tests/fixtures/score_map_store_v1`)
    ) {
      await Deno.copyFile(
        `${ROOT}/tests/fixtures/score_map_store_v1/${f.name}`,
        `${store}/${f.name}`,
      );
    }
    const v1 = await runCli(["labels", store, "--verify"]);
    assertEquals(v1.code, 0, v1.stderr);
    assertStringIncludes(v1.stdout, "20 maps, format version 1");
    assertStringIncludes(v1.stdout, "no checksums");

    const up = await runCli(["labels", store, "--upgrade"]);
    assertEquals(up.code, 0, up.stderr);
    assertStringIncludes(up.stdout, "upgraded from format version 1 to 2");
    const header = JSON.parse(await Deno.readTextFile(`${store}/header.json`));
    assertEquals(header.version, 2);
    const v2 = await runCli(["labels", store, "--verify"]);
    assertEquals(v2.code, 0, v2.stderr);
    assertStringIncludes(v2.stdout, "format version 2");

    // One byte of the key index changed: the full check names the file (exit 1).
    const f = await Deno.open(`${store}/keys.sorted`, { write: true });
    await f.seek(20, Deno.SeekMode.Start);
    await f.write(new Uint8Array([0x78]));
    f.close();
    const bad = await runCli(["labels", store, "--verify"]);
    assertEquals(bad.code, 1, bad.stdout);
    assertStringIncludes(bad.stderr, "keys.sorted");
    assertStringIncludes(bad.stderr, "is damaged");

    const none = await runCli(["labels", `${dir}/nothing`, "--verify"]);
    assertEquals(none.code, 2);
    assertStringIncludes(none.stderr, "expects a score-map store");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tokenlab labels: an official map's class count is said to be inferred (largest id 1203: 1204 classes), never silently; --num-classes and --data set it", async () => {
  const dir = await Deno.makeTempDir({
    dir: `${ROOT}tests`,
    prefix: ".tmp-labels-",
  });
  try {
    await Deno.mkdir(`${dir}/maps/n1`, { recursive: true });
    const map = {
      k: 2,
      height: 2,
      width: 2,
      scores: new Float32Array([5, 5, 5, 5, 1, 1, 1, 1]),
      ids: new Int32Array([1203, 4, 4, 4, 0, 1, 2, 3]),
    };
    await writeOfficialMap(`${dir}/maps/n1/a.pt`, map);
    const file = `${dir}/maps/n1/a.pt`;
    const text = await runCli(["labels", file, "--backend", "wasm"]);
    assertEquals(text.code, 0, text.stderr);
    assertStringIncludes(text.stderr, "1204 classes, inferred");
    assertStringIncludes(text.stderr, "largest class id in the map is 1203");
    assertStringIncludes(text.stderr, "--num-classes");
    assertStringIncludes(text.stdout, "1204 classes (inferred");
    const json = await runCli(["labels", file, "--json", "--backend", "wasm"]);
    assertEquals(json.code, 0, json.stderr);
    const j = JSON.parse(json.stdout);
    assertEquals(j.numClasses, 1204);
    assertStringIncludes(j.numClassesFrom, "inferred");
    // Below 1000 the ImageNet count is assumed, and said so too.
    map.ids[0] = 4;
    await writeOfficialMap(`${dir}/maps/n1/b.pt`, map);
    const small = await runCli([
      "labels",
      `${dir}/maps/n1/b.pt`,
      "--backend",
      "wasm",
    ]);
    assertEquals(small.code, 0, small.stderr);
    assertStringIncludes(small.stderr, "1000 classes, assumed");
    const given = await runCli([
      "labels",
      file,
      "--num-classes",
      "2000",
      "--json",
      "--backend",
      "wasm",
    ]);
    assertEquals(given.code, 0, given.stderr);
    assertEquals(given.stderr.includes("inferred"), false, given.stderr);
    assertEquals(JSON.parse(given.stdout).numClassesFrom, "--num-classes");
    // A dataset gives the class count and the names.
    const named = await runCli([
      "labels",
      `${dir}/maps/n1/b.pt`,
      "--data",
      "synthetic:classes=10",
      "--box",
      "0,0,1,1",
      "--json",
      "--backend",
      "wasm",
    ]);
    assertEquals(named.code, 0, named.stderr);
    const n = JSON.parse(named.stdout);
    assertEquals(n.numClasses, 10);
    assertEquals(n.classToken[0].id, 4);
    assertEquals(n.classToken[0].name, syntheticClassNames(10)[4]);
    assertEquals(n.classNames.length, 10);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tokenlab labels: class names from the store's header; --agreement counts the maps whose pooled label is the image's class", async () => {
  const dir = await Deno.makeTempDir({
    dir: `${ROOT}tests`,
    prefix: ".tmp-labels-",
  });
  try {
    const names = ["zero", "one", "two", "three", "four"];
    const writer = await ScoreMapStore.create(`${dir}/store`, {
      k: 1,
      height: 2,
      width: 2,
      numClasses: 5,
      annotator: "hand-made",
      annotatorHead: "aux_head",
      classNames: names,
      preprocessing: { mode: "squash", size: 32 },
      scores: "logits",
    });
    const one = (ids: number[]) => ({
      k: 1,
      height: 2,
      width: 2,
      scores: new Float32Array([6, 6, 6, 6]),
      ids: new Int32Array(ids),
    });
    // Image 0 (class 3): all cells 3. Image 1 (class 1): three cells 2,
    // one cell 1 (the pooled label is 2). Image 2 (class 4): all 4.
    await writer.append("a/0", one([3, 3, 3, 3]), 3);
    await writer.append("b/1", one([2, 2, 2, 1]), 1);
    await writer.append("c/2", one([4, 4, 4, 4]), 4);
    await writer.commit();

    const text = await runCli([
      "labels",
      `${dir}/store:0`,
      "--backend",
      "wasm",
    ]);
    assertEquals(text.code, 0, text.stderr);
    assertStringIncludes(text.stdout, "class token: 3 three (");
    assertStringIncludes(text.stdout, "hand-made (aux_head)");
    assertStringIncludes(text.stdout, "classes in the map: 3 three");
    const json = await runCli([
      "labels",
      `${dir}/store:0`,
      "--json",
      "--backend",
      "wasm",
    ]);
    assertEquals(json.code, 0, json.stderr);
    assertEquals(JSON.parse(json.stdout).classToken[0].name, "three");

    const agree = await runCli([
      "labels",
      `${dir}/store`,
      "--agreement",
      "--backend",
      "wasm",
    ]);
    assertEquals(agree.code, 0, agree.stderr);
    assertStringIncludes(agree.stdout, "2 of 3 (66.7%)");
    assertStringIncludes(agree.stdout, "75.0% of 12 cells");
    assertStringIncludes(agree.stdout, "1 one: 0/1");
    const aj = await runCli([
      "labels",
      `${dir}/store`,
      "--agreement",
      "--json",
      "--limit",
      "2",
      "--backend",
      "wasm",
    ]);
    assertEquals(aj.code, 0, aj.stderr);
    const a = JSON.parse(aj.stdout);
    assertEquals([a.images, a.imagesAgreeing, a.cells, a.cellsAgreeing], [
      2,
      1,
      8,
      5,
    ]);
    assertEquals(a.annotatorHead, "aux_head");

    // A store without labels has nothing to agree with: bad input.
    const w2 = await ScoreMapStore.create(`${dir}/nolabels`, {
      k: 1,
      height: 2,
      width: 2,
      numClasses: 5,
      annotator: "hand-made",
      preprocessing: { mode: "squash", size: 32 },
      scores: "logits",
    });
    await w2.append("a/0", one([3, 3, 3, 3]));
    await w2.commit();
    const none = await runCli([
      "labels",
      `${dir}/nolabels`,
      "--agreement",
      "--backend",
      "wasm",
    ]);
    assertEquals(none.code, 2, none.stderr);
    assertStringIncludes(none.stderr, "holds no ground-truth labels");
    const both = await runCli([
      "labels",
      `${dir}/store`,
      "--agreement",
      "--verify",
    ]);
    assertEquals(both.code, 2, both.stderr);
    const stray = await runCli(["labels", `${dir}/store:0`, "--limit", "3"]);
    assertEquals(stray.code, 2, stray.stderr);
    assertStringIncludes(
      stray.stderr,
      "--limit counts the images of --agreement",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
