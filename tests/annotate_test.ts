/**
 * The annotator: dense top-k maps of a tiny model over a tiny dataset,
 * stored; an interrupted and resumed run gives the same store, byte for
 * byte, as an uninterrupted one; existing stores are not overwritten.
 */

import {
  assert,
  assertEquals,
  assertRejects,
  assertStringIncludes,
} from "./_assert.ts";
import {
  exists,
  ROOT,
  runCli,
  sha256Hex,
  tinyVit,
  writeTinyDataset,
} from "./_helpers.ts";
import {
  annotate,
  chooseAnnotatorHead,
  createModel,
  denseTopK,
  initBackend,
  LvVit,
  openTensorDataset,
  preprocessImages,
  saveWeights,
  ScoreMapError,
  ScoreMapStore,
  tf,
  toImageSource,
  writeTensorDataset,
} from "tokenlab";

const TINY = tinyVit(7, { embedDim: 32, depth: 2 });

async function setup(): Promise<{ dir: string; data: string }> {
  await initBackend({ backend: "wasm" });
  const dir = await Deno.makeTempDir({
    dir: `${ROOT}tests`,
    prefix: ".tmp-annotate-",
  });
  await writeTinyDataset(`${dir}/data.safetensors`, { n: 10, classes: 7 });
  return { dir, data: `${dir}/data.safetensors` };
}

async function filesOf(path: string): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for await (const e of Deno.readDir(path)) {
    if (e.isFile) out.set(e.name, await Deno.readFile(`${path}/${e.name}`));
  }
  return out;
}

Deno.test("annotate: stored maps are the model's dense top-k; interrupted + resumed equals uninterrupted", async () => {
  const { dir, data } = await setup();
  const model = LvVit.create(TINY, { seed: 3 });
  try {
    const source = await openTensorDataset(data);
    const full = await annotate(model, source, {
      out: `${dir}/full`,
      k: 3,
      batchSize: 4,
      flushEvery: 4,
    });
    assertEquals(full.header?.count, 10);
    assertEquals([full.header?.k, full.header?.height, full.header?.width], [
      3,
      4,
      4,
    ]);
    assertEquals(full.header?.preprocessing.mode, "resize-center-crop");

    // The stored map of image 5 is the top-k of the dense logits.
    using store = await ScoreMapStore.open(`${dir}/full`);
    assertEquals(await store.keyAt(5), "class5/img_5");
    assertEquals(await store.label(5), 5);
    const x = preprocessImages({
      data: await source.read(5, 1),
      height: 32,
      width: 32,
    }, {
      preprocessing: { mode: "resize-center-crop", size: 32 },
    });
    const logits = model.denseLogits(x);
    const top = await denseTopK(logits, 3);
    tf.dispose([x, logits]);
    const stored = await store.read("class5/img_5");
    assertEquals(Array.from(stored.ids), Array.from(top.ids));
    for (let i = 0; i < top.scores.length; i++) {
      // float16 storage: 11 significant bits.
      assert(
        Math.abs(stored.scores[i] - top.scores[i]) <=
          1e-3 * Math.abs(top.scores[i]) + 1e-3,
        `score ${i}`,
      );
    }

    // Interrupt after the second batch, then resume.
    const controller = new AbortController();
    const first = await annotate(model, source, {
      out: `${dir}/resumed`,
      k: 3,
      batchSize: 4,
      flushEvery: 4,
      signal: controller.signal,
      onProgress: (done) => {
        if (done >= 8) controller.abort();
      },
    });
    assertEquals(first.interrupted, true);
    assertEquals(first.annotated, 8);
    const second = await annotate(model, source, {
      out: `${dir}/resumed`,
      k: 3,
      batchSize: 4,
      flushEvery: 4,
    });
    assertEquals(second.resumedFrom, 8);
    assertEquals(second.annotated, 2);
    const a = await filesOf(`${dir}/full`), b = await filesOf(`${dir}/resumed`);
    assertEquals([...b.keys()].sort(), [...a.keys()].sort());
    for (const [name, bytes] of a) {
      assertEquals(b.get(name)?.length, bytes.length, name);
      assert(
        b.get(name)!.every((v, i) => v === bytes[i]),
        `${name} differs between the resumed and the uninterrupted run`,
      );
    }

    // An existing store is not overwritten; another setup does not resume.
    await assertRejects(
      () => annotate(model, source, { out: `${dir}/full`, k: 3 }),
      Error,
      "already exists",
    );
    // Interrupted after its first checkpoint, so that the partial store
    // holds records (an empty one is simply started over).
    const stop = new AbortController();
    await annotate(model, source, {
      out: `${dir}/other`,
      k: 3,
      batchSize: 4,
      flushEvery: 4,
      signal: stop.signal,
      onProgress: (done) => {
        if (done >= 4) stop.abort();
      },
    });
    await assertRejects(
      () =>
        annotate(model, source, { out: `${dir}/other`, k: 2, batchSize: 4 }),
      Error,
      "was started with k 3, but this run has k 2",
    );
    const redo = await annotate(model, source, {
      out: `${dir}/other`,
      k: 2,
      batchSize: 4,
      overwrite: true,
    });
    assertEquals(redo.header?.k, 2);
  } finally {
    model.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tokenlab annotate: writes a store, refuses to overwrite it, names missing flags", async () => {
  const { dir, data } = await setup();
  const model = LvVit.create(TINY, { seed: 3 });
  try {
    await saveWeights(model, `${dir}/tiny.safetensors`);
    const args = [
      "annotate",
      "--model",
      `${dir}/tiny.safetensors`,
      "--data",
      data,
      "--out",
      `${dir}/maps`,
      "--k",
      "2",
      "--batch-size",
      "4",
      "--backend",
      "wasm",
    ];
    const ok = await runCli(args);
    assertEquals(ok.code, 0, ok.stderr);
    assertStringIncludes(ok.stderr, "10 score maps (k 2, 4x4, 7 classes)");
    using store = await ScoreMapStore.open(`${dir}/maps`);
    assertEquals(store.size, 10);
    const again = await runCli(args);
    assertEquals(again.code, 2, again.stderr);
    assertStringIncludes(again.stderr, `--out ${dir}/maps already exists`);
    assertStringIncludes(again.stderr, "pass --overwrite");
    const missing = await runCli(["annotate", "--model", "vit_xs32"]);
    assertEquals(missing.code, 2);
    assertStringIncludes(missing.stderr, "--data is required");
  } finally {
    model.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tokenlab annotate: an image folder, resized Pillow-exactly, keys <class>/<stem>", async () => {
  const { dir } = await setup();
  try {
    const base = [
      "annotate",
      "--model",
      "vit_xs32",
      "--data",
      `${ROOT}tests/fixtures/image_folder`,
      "--k",
      "2",
      "--backend",
      "wasm",
    ];
    const ok = await runCli([
      ...base,
      "--out",
      `${dir}/maps`,
      "--crop-pct",
      "0.875",
    ]);
    assertEquals(ok.code, 0, ok.stderr);
    using store = await ScoreMapStore.open(`${dir}/maps`);
    assertEquals(await store.keys(), ["cat/a", "cat/b", "dog/c"]);
    assertEquals(store.header.preprocessing, {
      mode: "resize-center-crop",
      size: 32,
      cropPct: 0.875,
    });
    assertEquals(await store.label("dog/c"), 1);
    const bad = await runCli([
      ...base,
      "--out",
      `${dir}/x`,
      "--data",
      `${dir}/none`,
    ]);
    assertEquals(bad.code, 2, bad.stderr);
    assertStringIncludes(bad.stderr, "no such file or folder");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("annotate: a source preprocessed one way refuses another preprocessing", async () => {
  await initBackend({ backend: "wasm" });
  const model = createModel("vit_xs32");
  const dataset = {
    size: 1,
    description: "toy",
    classes: ["a"],
    key: () => "a/x",
    label: () => 0,
    image: () =>
      Promise.resolve({ width: 40, height: 30, data: new Uint8Array(3600) }),
  };
  try {
    await assertRejects(
      () =>
        annotate(model, toImageSource(dataset, { mode: "squash", size: 32 }), {
          out: "tests/.tmp-never-written",
          preprocessing: { mode: "resize-center-crop", size: 32 },
        }),
      ScoreMapError,
      "is already preprocessed as",
    );
    assert(!(await exists("tests/.tmp-never-written")));
  } finally {
    model.dispose();
  }
});

Deno.test("annotate: k beyond the model's classes or a bad batch size is refused before anything is written", async () => {
  const { dir, data } = await setup();
  const model = LvVit.create(TINY, { seed: 3 });
  try {
    const source = await openTensorDataset(data);
    await assertRejects(
      () => annotate(model, source, { out: `${dir}/maps`, k: 100 }),
      ScoreMapError,
      `k must be an integer in [1, ${TINY.numClasses}] (the classes of the annotator tiny_vit), found 100`,
    );
    await assertRejects(
      () => annotate(model, source, { out: `${dir}/maps`, k: 0 }),
      ScoreMapError,
      "found 0",
    );
    await assertRejects(
      () => annotate(model, source, { out: `${dir}/maps`, batchSize: -1 }),
      ScoreMapError,
      "batchSize must be a positive integer, found -1",
    );
    assert(!(await exists(`${dir}/maps`)));
    assert(!(await exists(`${dir}/maps.partial`)));
    // The corrected call is not refused by anything the refusals left.
    const ok = await annotate(model, source, {
      out: `${dir}/maps`,
      k: TINY.numClasses,
    });
    assertEquals(ok.header?.k, TINY.numClasses);
  } finally {
    model.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});

/** A tensor dataset like writeTinyDataset's, with class names. */
async function namedDataset(path: string, n: number, classes: number) {
  const images = new Uint8Array(n * 32 * 32 * 3);
  for (let i = 0; i < images.length; i++) {
    images[i] = (i * 7919 + (i >> 9) * 31) % 256;
  }
  await writeTensorDataset(path, {
    images,
    height: 32,
    width: 32,
    labels: Array.from({ length: n }, (_, i) => i % classes),
    keys: Array.from({ length: n }, (_, i) => `class${i % classes}/img_${i}`),
    classes: Array.from({ length: classes }, (_, c) => `name${c}`),
  });
}

Deno.test("annotate: the default head is the aux head when the model has one (recorded in the header), the class head otherwise", async () => {
  const { dir, data } = await setup();
  const withAux = LvVit.create({ ...TINY, auxHead: true }, { seed: 5 });
  const plain = LvVit.create(TINY, { seed: 5 });
  try {
    const source = await openTensorDataset(data);
    const auto = await annotate(withAux, source, { out: `${dir}/auto`, k: 2 });
    assertEquals(auto.head, "aux_head");
    assertEquals(auto.header?.annotatorHead, "aux_head");
    const cls = await annotate(withAux, source, {
      out: `${dir}/cls`,
      k: 2,
      head: "head",
    });
    assertEquals(cls.header?.annotatorHead, "head");

    // The stored maps are the aux head's dense top-k, not the class head's.
    const x = preprocessImages(
      { data: await source.read(0, 1), height: 32, width: 32 },
      { preprocessing: { mode: "resize-center-crop", size: 32 } },
    );
    const auxLogits = withAux.denseLogits(x, { head: "aux_head" });
    const headLogits = withAux.denseLogits(x, { head: "head" });
    const auxTop = await denseTopK(auxLogits, 2);
    const headTop = await denseTopK(headLogits, 2);
    tf.dispose([x, auxLogits, headLogits]);
    using a = await ScoreMapStore.open(`${dir}/auto`);
    using c = await ScoreMapStore.open(`${dir}/cls`);
    assertEquals(Array.from((await a.read(0)).ids), Array.from(auxTop.ids));
    assertEquals(Array.from((await c.read(0)).ids), Array.from(headTop.ids));
    assert(
      auxTop.ids.some((v, i) => v !== headTop.ids[i]),
      "the two heads of the test model should differ",
    );

    // Without an aux head the class head is the default; asking for the
    // aux head is refused before anything is written.
    const noAux = await annotate(plain, source, { out: `${dir}/plain`, k: 2 });
    assertEquals(noAux.header?.annotatorHead, "head");
    await assertRejects(
      () =>
        annotate(plain, source, {
          out: `${dir}/never`,
          k: 2,
          head: "aux_head",
        }),
      ScoreMapError,
      "has no aux head",
    );
    assert(!(await exists(`${dir}/never`)));
    assert(!(await exists(`${dir}/never.partial`)));
    assertEquals(chooseAnnotatorHead(withAux), "aux_head");
    assertEquals(chooseAnnotatorHead(plain, "auto"), "head");
  } finally {
    withAux.dispose();
    plain.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tokenlab annotate: --head auto by default (aux head recorded), the weights file's name, size and SHA-256 and the dataset's class names in the header; --head aux_head without one is exit 2", async () => {
  const { dir } = await setup();
  const withAux = LvVit.create({ ...TINY, auxHead: true }, { seed: 3 });
  const plain = LvVit.create(TINY, { seed: 3 });
  try {
    await namedDataset(`${dir}/named.safetensors`, 6, 7);
    await saveWeights(withAux, `${dir}/aux.safetensors`);
    await saveWeights(plain, `${dir}/plain.safetensors`);
    const base = (weights: string, out: string) => [
      "annotate",
      "--model",
      `${dir}/${weights}`,
      "--data",
      `${dir}/named.safetensors`,
      "--out",
      `${dir}/${out}`,
      "--k",
      "2",
      "--backend",
      "wasm",
    ];
    const ok = await runCli(base("aux.safetensors", "maps"));
    assertEquals(ok.code, 0, ok.stderr);
    assertStringIncludes(ok.stderr, "aux_head at every location");
    using store = await ScoreMapStore.open(`${dir}/maps`);
    const h = store.header;
    assertEquals(h.annotatorHead, "aux_head");
    const bytes = await Deno.readFile(`${dir}/aux.safetensors`);
    assertEquals(h.annotatorWeights, {
      file: "aux.safetensors",
      bytes: bytes.length,
      sha256: await sha256Hex(bytes),
    });
    assertEquals(h.classNames, Array.from({ length: 7 }, (_, c) => `name${c}`));
    // No machine path in the header.
    const text = await Deno.readTextFile(`${dir}/maps/header.json`);
    assert(!text.includes(dir), "the header holds a folder path");
    await store.verify();

    const cls = await runCli([
      ...base("aux.safetensors", "cls"),
      "--head",
      "head",
    ]);
    assertEquals(cls.code, 0, cls.stderr);
    using clsStore = await ScoreMapStore.open(`${dir}/cls`);
    assertEquals(clsStore.header.annotatorHead, "head");

    const plainRun = await runCli(base("plain.safetensors", "plain"));
    assertEquals(plainRun.code, 0, plainRun.stderr);
    assertStringIncludes(plainRun.stderr, "has no aux head");
    using plainStore = await ScoreMapStore.open(`${dir}/plain`);
    assertEquals(plainStore.header.annotatorHead, "head");

    const refused = await runCli([
      ...base("plain.safetensors", "refused"),
      "--head",
      "aux_head",
    ]);
    assertEquals(refused.code, 2, refused.stderr);
    assertStringIncludes(refused.stderr, "has no aux head");
    assertStringIncludes(refused.stderr, "--aux-head");
    assert(!(await exists(`${dir}/refused`)));
    assert(!(await exists(`${dir}/refused.partial`)));
    const badHead = await runCli([
      ...base("aux.safetensors", "bad"),
      "--head",
      "cls",
    ]);
    assertEquals(badHead.code, 2, badHead.stderr);
    assertStringIncludes(
      badHead.stderr,
      "--head must be auto, aux_head or head",
    );

    const help = await runCli(["annotate", "--help"]);
    assertEquals(help.code, 0);
    for (
      const want of ["--aux-head", "auto (default)", "--agreement", "95%"]
    ) {
      assertStringIncludes(help.stdout, want);
    }
  } finally {
    withAux.dispose();
    plain.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});
