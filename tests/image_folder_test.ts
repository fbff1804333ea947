/**
 * Image folders (layout, class lists, order, keys, bad input), pairing with
 * score-map stores, and the fixed-size ImageSource adapter.
 */

import {
  assert,
  assertEquals,
  assertRejects,
  assertStringIncludes,
} from "./_assert.ts";
import { openImageFolder } from "tokenlab/data/image_folder.ts";
import {
  applyPreprocessing,
  toImageSource,
  withScoreMaps,
} from "tokenlab/data/paired.ts";
import { decodeImage } from "tokenlab/data/decode.ts";
import { resizeImage } from "tokenlab/data/resize.ts";
import { type ImageDataset, ImageError } from "tokenlab/data/image.ts";
import { ScoreMapError, ScoreMapStore } from "tokenlab/labels/mod.ts";

const FIXTURE = new URL("./fixtures/image_folder", import.meta.url).pathname;
const IMAGES = new URL("./fixtures/images/", import.meta.url);

async function tmp(): Promise<string> {
  const root = new URL("./", import.meta.url).pathname;
  return await Deno.makeTempDir({ dir: root, prefix: ".tmp-folder-" });
}

async function put(root: string, files: Record<string, string | Uint8Array>) {
  for (const [rel, content] of Object.entries(files)) {
    const path = `${root}/${rel}`;
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    if (typeof content === "string") {
      await Deno.writeFile(path, await Deno.readFile(new URL(content, IMAGES)));
    } else await Deno.writeFile(path, content);
  }
}

Deno.test("openImageFolder: sorted classes, sorted files, keys <class>/<stem>", async () => {
  const ds = await openImageFolder(FIXTURE, { split: "train" });
  assertEquals(ds.classes, ["cat", "dog"]);
  assertEquals(
    Array.from({ length: ds.size }, (_, i) => [ds.key(i), ds.label(i)]),
    [["cat/a", 0], ["cat/b", 0], ["dog/c", 1]],
  );
  assertEquals(ds.path(1), `${FIXTURE}/train/cat/b.jpg`);
  const img = await ds.image(2);
  assertEquals([img.width, img.height], [6, 4]);
  assertEquals([...img.data.slice(0, 3)], [0, 0, 255]);
  assertStringIncludes(ds.description, "3 images, 2 classes");
  // the split folder itself as root, with or without split
  const direct = await openImageFolder(`${FIXTURE}/train`);
  assertEquals(direct.size, 3);
  const same = await openImageFolder(`${FIXTURE}/train`, { split: "train" });
  assertEquals(same.key(0), "cat/a");
  // no split: train is taken
  assertEquals((await openImageFolder(FIXTURE)).dir, `${FIXTURE}/train`);
});

Deno.test("openImageFolder: a class list fixes the label order", async () => {
  const ds = await openImageFolder(FIXTURE, {
    split: "val",
    classes: `${FIXTURE}/classes.txt`,
  });
  assertEquals(ds.classes, ["dog", "cat"]);
  assertEquals(ds.key(0), "dog/e");
  assertEquals(ds.label(0), 0);
  assertEquals(ds.label(1), 1);
  const missing = await assertRejects(
    () => openImageFolder(FIXTURE, { split: "val", classes: ["cat", "cow"] }),
    ImageError,
    "1 of the 2 classes of the classes given have no folder (cow)",
  );
  assertStringIncludes(missing.message, 'missingClasses: "empty"');
  const kept = await openImageFolder(FIXTURE, {
    split: "val",
    classes: ["cat", "cow", "dog"],
    missingClasses: "empty",
  });
  assertEquals(kept.classes, ["cat", "cow", "dog"]);
  assertEquals(kept.label(1), 2);
  const warnings: string[] = [];
  const partial = await openImageFolder(FIXTURE, {
    split: "val",
    classes: ["dog"],
    onWarning: (m) => warnings.push(m),
  });
  assertEquals(partial.size, 1);
  assertStringIncludes(warnings[0], "1 folders are not in the classes given");
});

Deno.test("openImageFolder: bad layouts say which path and what was expected", async () => {
  await assertRejects(
    () => openImageFolder("/nonexistent/imagenet"),
    ImageError,
    [
      "/nonexistent/imagenet",
      "no such folder",
      "<root>/<split>/<class>/<image>",
    ],
  );
  await assertRejects(
    () => openImageFolder(FIXTURE, { split: "test" }),
    ImageError,
    [`${FIXTURE}/test`, "split folder", "no such folder", "train, val"],
  );
  const root = await tmp();
  try {
    await put(root, {
      "train/a/x.png": "rgb.png",
      "train/b/notes.txt": new Uint8Array(3),
      "train/b/.hidden.png": "rgb.png",
    });
    const e = await assertRejects(
      () => openImageFolder(root, { split: "train" }),
      ImageError,
      `1 class folders hold no images (${root}/train/b)`,
    );
    assertEquals(e.file, `${root}/train/b`);
    const ok = await openImageFolder(root, {
      split: "train",
      allowEmptyClasses: true,
    });
    assertEquals([ok.size, ok.classes], [1, ["a", "b"]]);
    await put(root, { "empty/a/readme.md": new Uint8Array(1) });
    await assertRejects(
      () => openImageFolder(root, { split: "empty" }),
      ImageError,
      "no images found in its 1 class folders",
    );
    await put(root, { "dup/a/x.png": "rgb.png", "dup/a/x.jpg": "rgb.jpg" });
    await assertRejects(
      () => openImageFolder(root, { split: "dup" }),
      ImageError,
      'the same key "a/x"',
    );
    await assertRejects(
      () =>
        openImageFolder(root, { split: "train", classes: `${root}/nope.txt` }),
      ImageError,
      `class list ${root}/nope.txt: cannot read it`,
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("openImageFolder: bad images stop naming the file, or are skipped and counted", async () => {
  const root = await tmp();
  try {
    await put(root, {
      "train/a/good.png": "rgb.png",
      "train/a/cut.jpg": "truncated.jpg",
      "train/b/html.jpg": "not_an_image.jpg",
      "train/b/nested/deep.png": "gray.png",
    });
    const stop = await openImageFolder(root, { split: "train" });
    assertEquals(
      Array.from({ length: stop.size }, (_, i) => stop.key(i)),
      ["a/cut", "a/good", "b/html", "b/nested/deep"],
    );
    const e = await assertRejects(() => stop.image(0), ImageError, "truncated");
    assertEquals(e.file, `${root}/train/a/cut.jpg`);
    assertEquals(stop.badImages, []);

    const warnings: string[] = [];
    const skip = await openImageFolder(root, {
      split: "train",
      onBadImage: "skip",
      onWarning: (m) => warnings.push(m),
    });
    const got: string[] = [];
    for (let epoch = 0; epoch < 2; epoch++) {
      for (let i = 0; i < skip.size; i++) {
        try {
          await skip.image(i);
          got.push(skip.key(i));
        } catch (err) {
          assert(err instanceof ImageError);
        }
      }
    }
    assertEquals(got, ["a/good", "b/nested/deep", "a/good", "b/nested/deep"]);
    assertEquals(skip.badImages, [
      `${root}/train/a/cut.jpg`,
      `${root}/train/b/html.jpg`,
    ]);
    assertEquals(warnings.length, 2, "one warning per bad file");
    assertStringIncludes(warnings[1], `(2 in ${root}/train so far)`);
    assertStringIncludes(warnings[1], `${root}/train/b/html.jpg`);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

function tinyDataset(): ImageDataset {
  const images = [
    { width: 9, height: 6, data: new Uint8Array(9 * 6 * 3).map((_, i) => i) },
    {
      width: 5,
      height: 8,
      data: new Uint8Array(5 * 8 * 3).map((_, i) => 3 * i),
    },
  ];
  return {
    size: 2,
    description: "tiny",
    classes: ["a", "b"],
    key: (i) => ["a/x", "b/y"][i],
    label: (i) => i,
    image: (i) => Promise.resolve(images[i]),
  };
}

Deno.test("withScoreMaps: checks every key up front, then gives map(i)", async () => {
  const dir = await tmp();
  try {
    const init = {
      k: 1,
      height: 1,
      width: 1,
      numClasses: 2,
      annotator: "toy",
      preprocessing: { mode: "squash" as const, size: 4 },
      scores: "logits" as const,
    };
    const writer = await ScoreMapStore.create(`${dir}/maps`, init);
    const one = (id: number) => ({
      k: 1,
      height: 1,
      width: 1,
      scores: new Float32Array([1]),
      ids: new Int32Array([id]),
    });
    await writer.append("b/y", one(1), 1);
    await writer.append("a/x", one(0), 0);
    await writer.commit();
    using store = await ScoreMapStore.open(`${dir}/maps`);
    const paired = await withScoreMaps(tinyDataset(), store);
    assertEquals((await paired.map(0)).ids, new Int32Array([0]));
    assertEquals((await paired.map(1)).ids, new Int32Array([1]));
    assertEquals(paired.key(1), "b/y");
    const lacking = { ...tinyDataset(), key: (i: number) => ["a/x", "c/z"][i] };
    await assertRejects(
      () => withScoreMaps(lacking, store),
      ScoreMapError,
      'lacks 1 of the dataset\'s 2 images ("c/z")',
    );
    await assertRejects(
      () =>
        withScoreMaps(tinyDataset(), store, {
          preprocessing: { mode: "squash", size: 8 },
        }),
      ScoreMapError,
      "preprocessing",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("toImageSource: Pillow-exact resize + centre crop, or squash, in [0, 1]", async () => {
  const ds = tinyDataset();
  const src = toImageSource(ds, { mode: "resize-center-crop", size: 4 });
  assertEquals([src.size, src.width, src.height], [2, 4, 4]);
  assertEquals(src.key(1), "b/y");
  const px = await src.read(0, 2);
  assertEquals(px.length, 2 * 4 * 4 * 3);
  // image 0: 9x6 -> short side 4 -> 6x4, crop left 1
  const first = await ds.image(0);
  const resized = resizeImage(first, 6, 4);
  const want = resizeImage(resized, 4, 4, { box: [1, 0, 5, 4] });
  assertEquals(
    Array.from(px.subarray(0, 48), (v) => Math.round(v * 255)),
    [...want.data],
  );
  // image 1: 5x8 -> 4x6 (round(8 * 4 / 5) = 6), crop top 1
  const second = applyPreprocessing(await ds.image(1), {
    mode: "resize-center-crop",
    size: 4,
  });
  const want2 = resizeImage(
    resizeImage(await ds.image(1), 4, 6),
    4,
    4,
    { box: [0, 1, 4, 5] },
  );
  assertEquals(second.data, want2.data);
  // cropPct: short side to round(4 / 0.8) = 5
  const pct = applyPreprocessing(first, {
    mode: "resize-center-crop",
    size: 4,
    cropPct: 0.8,
  });
  const wantPct = resizeImage(resizeImage(first, 8, 5), 4, 4, {
    box: [2, 0, 6, 4],
  });
  assertEquals(pct.data, wantPct.data);
  const squash = toImageSource(ds, { mode: "squash", size: 3 });
  const sq = await squash.read(1, 1);
  assertEquals(
    Array.from(sq, (v) => Math.round(v * 255)),
    [...resizeImage(await ds.image(1), 3, 3).data],
  );
  assertEquals(squash.preprocessing, { mode: "squash", size: 3 });
});

Deno.test("toImageSource over an image folder; a bad image names its file", async () => {
  const ds = await openImageFolder(FIXTURE, { split: "train" });
  const src = toImageSource(ds, { mode: "squash", size: 2 });
  const px = await src.read(0, 3);
  assertEquals(Array.from(px.subarray(0, 3)), [1, 0, 0]);
  const root = await tmp();
  try {
    await put(root, { "a/ok.png": "rgb.png", "a/zz.jpg": "truncated.jpg" });
    const bad = toImageSource(await openImageFolder(root), {
      mode: "squash",
      size: 2,
    });
    await assertRejects(() => bad.read(0, 2), ImageError, `${root}/a/zz.jpg`);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
  // decodeImage and the folder agree
  const direct = await decodeImage(
    await Deno.readFile(`${FIXTURE}/train/cat/a.png`),
  );
  assertEquals((await ds.image(0)).data, direct.data);
});
