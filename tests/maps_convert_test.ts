/**
 * `tokenlab maps convert`: official per-image maps into a store from the
 * command line (checked against the files, refusing an existing --out,
 * never half-written, resumable), and the messages that send a command-line
 * user to it (and to tokenlab annotate) instead of library functions.
 */

import {
  assert,
  assertEquals,
  assertRejects,
  assertStringIncludes,
} from "./_assert.ts";
import { exists, ROOT, runCli } from "./_helpers.ts";
import {
  readOfficialMap,
  ScoreMapError,
  ScoreMapStore,
  writeOfficialMap,
} from "tokenlab";

const FIXTURES = `${ROOT}tests/fixtures/score_maps`;

async function tempDir(): Promise<string> {
  return await Deno.makeTempDir({ dir: `${ROOT}tests`, prefix: ".tmp-maps-" });
}

/** `n` maps in two class folders a/ and b/ (ids below 10). */
async function officialFolder(root: string, n: number): Promise<string[]> {
  const keys: string[] = [];
  for (let i = 0; i < n; i++) {
    const key = `${i % 2 === 0 ? "a" : "b"}/img_${String(i).padStart(3, "0")}`;
    await Deno.mkdir(`${root}/${key.slice(0, 1)}`, { recursive: true });
    await writeOfficialMap(`${root}/${key}.pt`, {
      k: 1,
      height: 2,
      width: 2,
      scores: new Float32Array([1, 2, 3, i]),
      ids: new Int32Array([i % 10, 1, 2, 3]),
    });
    keys.push(key);
  }
  return keys.sort();
}

Deno.test("tokenlab maps convert: official .pt maps into a store, equal to the files, labels and class names from the folders; an existing --out is refused", async () => {
  const dir = await tempDir();
  try {
    const out = `${dir}/store`;
    const ok = await runCli([
      "maps",
      "convert",
      FIXTURES,
      "--out",
      out,
      "--num-classes",
      "1000",
      "--annotator",
      "nfnet_f6 @ 576",
    ]);
    assertEquals(ok.code, 0, ok.stderr);
    assertStringIncludes(ok.stderr, `${out}: 5 score maps`);
    using store = await ScoreMapStore.open(out);
    assertEquals(store.size, 5);
    assertEquals(store.header.annotator, "nfnet_f6 @ 576");
    assertEquals(store.header.numClasses, 1000);
    assertEquals(store.header.preprocessing, {
      mode: "resize-center-crop",
      size: 576,
      cropPct: 1,
    });
    assertEquals(await store.keyAt(0), "n01440764/img_1");
    assertEquals(await store.label("n01443537/img_3"), 1);
    const want = await readOfficialMap(`${FIXTURES}/n01443537/img_3.pt`);
    const got = await store.read("n01443537/img_3");
    assertEquals(Array.from(got.ids), Array.from(want.ids));
    // 2 class folders, 1000 classes: no class names to record.
    assertEquals(store.header.classNames, undefined);
    await store.verify();

    // The store at --out is kept as it is.
    const before = await Deno.readFile(`${out}/header.json`);
    const again = await runCli([
      "maps",
      "convert",
      FIXTURES,
      "--out",
      out,
      "--num-classes",
      "1000",
    ]);
    assertEquals(again.code, 2, again.stderr);
    assertStringIncludes(again.stderr, `--out ${out} already exists`);
    assertStringIncludes(again.stderr, "--overwrite");
    assertEquals(await Deno.readFile(`${out}/header.json`), before);

    // The class count defaults to the class folders, and says so; maps
    // with larger ids are refused before anything is written (exit 2).
    const counted = await runCli([
      "maps",
      "convert",
      FIXTURES,
      "--out",
      `${dir}/c`,
    ]);
    assertEquals(counted.code, 2, counted.stderr);
    assertStringIncludes(counted.stderr, "2 classes: the class folders");
    assertStringIncludes(counted.stderr, "pass --num-classes C");
    assert(!(await exists(`${dir}/c`)));

    // Folders as classes: names recorded when they are the classes.
    await officialFolder(`${dir}/small`, 4);
    const named = await runCli([
      "maps",
      "convert",
      `${dir}/small`,
      "--out",
      `${dir}/named`,
      "--num-classes",
      "2",
    ]);
    // ids up to 3 do not fit 2 classes: refused, naming the flag.
    assertEquals(named.code, 2, named.stderr);
    const fits = await runCli([
      "maps",
      "convert",
      `${dir}/small`,
      "--out",
      `${dir}/named`,
      "--num-classes",
      "10",
      "--no-labels",
    ]);
    assertEquals(fits.code, 0, fits.stderr);
    using n = await ScoreMapStore.open(`${dir}/named`);
    assertEquals(n.header.labels, false);

    // Usage errors: no folder, a store given as the folder, no --out.
    const missing = await runCli([
      "maps",
      "convert",
      `${dir}/none`,
      "--out",
      `${dir}/x`,
    ]);
    assertEquals(missing.code, 2, missing.stderr);
    assertStringIncludes(missing.stderr, "found nothing at");
    const isStore = await runCli(["maps", "convert", out, "--out", `${dir}/x`]);
    assertEquals(isStore.code, 2, isStore.stderr);
    assertStringIncludes(isStore.stderr, "is already a score-map store");
    const noOut = await runCli(["maps", "convert", FIXTURES]);
    assertEquals(noOut.code, 2, noOut.stderr);
    assertStringIncludes(noOut.stderr, "--out is required");
    const sub = await runCli(["maps", "export"]);
    assertEquals(sub.code, 2, sub.stderr);
    assertStringIncludes(sub.stderr, "expected convert");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tokenlab maps convert: a bad file mid-way leaves nothing at --out (exit 1), the maps so far resumable with --resume", async () => {
  const dir = await tempDir();
  try {
    // 40 maps: the first chunk of 32 is written before the bad one.
    const keys = await officialFolder(`${dir}/maps`, 40);
    const bad = `${dir}/maps/${keys[37]}.pt`;
    const good = await Deno.readFile(bad);
    await Deno.writeTextFile(bad, "not a torch file");
    const out = `${dir}/store`;
    const args = ["maps", "convert", `${dir}/maps`, "--out", out];
    const failed = await runCli([...args, "--num-classes", "10"]);
    assertEquals(failed.code, 1, failed.stderr);
    assertStringIncludes(failed.stderr, keys[37]);
    assertStringIncludes(failed.stderr, `nothing was written at ${out}`);
    assertStringIncludes(failed.stderr, "--resume");
    assert(!(await exists(out)), "a half-written store is at --out");
    assert(await exists(`${out}.partial`));

    // Without --resume or --overwrite the interrupted conversion is not
    // silently discarded.
    const refused = await runCli([...args, "--num-classes", "10"]);
    assertEquals(refused.code, 2, refused.stderr);
    assertStringIncludes(refused.stderr, "--resume");

    await Deno.writeFile(bad, good);
    const resumed = await runCli([
      ...args,
      "--num-classes",
      "10",
      "--resume",
    ]);
    assertEquals(resumed.code, 0, resumed.stderr);
    assertStringIncludes(resumed.stderr, "resumed after 32");
    using store = await ScoreMapStore.open(out);
    assertEquals(await store.keys(), keys);
    assertEquals(store.header.classNames, undefined); // 2 folders, 10 classes
    await store.verify();
    assert(!(await exists(`${out}.partial`)));

    // Two folders as the two classes: their names are recorded.
    const two = `${dir}/two`;
    await Deno.mkdir(`${two}/a`, { recursive: true });
    await Deno.mkdir(`${two}/b`, { recursive: true });
    for (const [key, id] of [["a/x", 0], ["b/y", 1]] as const) {
      await writeOfficialMap(`${two}/${key}.pt`, {
        k: 1,
        height: 1,
        width: 1,
        scores: new Float32Array([3]),
        ids: new Int32Array([id]),
      });
    }
    const ok = await runCli(["maps", "convert", two, "--out", `${dir}/ab`]);
    assertEquals(ok.code, 0, ok.stderr);
    using ab = await ScoreMapStore.open(`${dir}/ab`);
    assertEquals(ab.header.classNames, ["a", "b"]);
    assertEquals(await ab.label("b/y"), 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("store messages: a folder of official maps and a missing store name the commands that make a store", async () => {
  const dir = await tempDir();
  try {
    const notStore = await assertRejects(
      () => ScoreMapStore.open(FIXTURES),
      ScoreMapError,
    );
    assertStringIncludes(notStore.message, "tokenlab maps convert");
    assertStringIncludes(notStore.message, "--out STORE");
    const missing = await assertRejects(
      () => ScoreMapStore.open(`${dir}/nothing`),
      ScoreMapError,
    );
    assertStringIncludes(missing.message, "tokenlab annotate");
    assertStringIncludes(missing.message, `--out ${dir}/nothing`);
    assertStringIncludes(missing.message, "tokenlab maps convert");

    // What tokenlab train says when --token-label-data is such a folder.
    const train = await runCli([
      "train",
      "--data",
      "synthetic:count=4,size=32",
      "--model",
      "vit_xs32",
      "--aux-head",
      "--token-label",
      "--token-label-data",
      FIXTURES,
      "--epochs",
      "1",
      "--warmup-epochs",
      "0",
      "--cooldown-epochs",
      "0",
      "--batch-size",
      "4",
      "--backend",
      "wasm",
    ]);
    assertEquals(train.code, 2, train.stderr);
    assertStringIncludes(
      train.stderr,
      `tokenlab maps convert ${FIXTURES} --out STORE`,
    );
    assertEquals(train.stderr.includes("readOfficialMap or"), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
