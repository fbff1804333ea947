/**
 * CIFAR-10 / CIFAR-100 binary files: parsing against known pixels
 * (tests/fixtures/cifar10/test_batch.bin, made by make_cifar_fixture.py),
 * splits, labels, names, keys, and the errors for damaged files.
 */

import {
  assertEquals,
  assertRejects,
  assertStringIncludes,
} from "./_assert.ts";
import { openCifar } from "tokenlab/data/cifar.ts";
import { ImageError } from "tokenlab/data/image.ts";

const FIXTURE = new URL("./fixtures/cifar10", import.meta.url).pathname;

async function tmp(): Promise<string> {
  const root = new URL("./", import.meta.url).pathname;
  return await Deno.makeTempDir({ dir: root, prefix: ".tmp-cifar-" });
}

/** Records whose pixel (c, y, x) of record r is (seed + r + c * 7 + y * 32 + x) % 256. */
function records(labels: number[][], seed: number): Uint8Array {
  const rec = labels[0].length + 3072;
  const out = new Uint8Array(labels.length * rec);
  labels.forEach((ls, r) => {
    out.set(ls, r * rec);
    for (let p = 0; p < 3072; p++) {
      const c = Math.floor(p / 1024), yx = p % 1024;
      out[r * rec + ls.length + p] = (seed + r + c * 7 + yx) % 256;
    }
  });
  return out;
}

Deno.test("openCifar: the fixture's pixels, planar to interleaved", async () => {
  const ds = await openCifar(FIXTURE, { split: "test" });
  assertEquals([ds.variant, ds.split, ds.size], ["cifar10", "test", 2]);
  assertEquals(ds.classes.length, 10);
  assertEquals([ds.key(0), ds.label(0)], ["cat/test_00000", 3]);
  assertEquals([ds.key(1), ds.label(1)], ["truck/test_00001", 9]);
  for (const r of [0, 1]) {
    const img = await ds.image(r);
    assertEquals([img.width, img.height], [32, 32]);
    for (const [y, x] of [[0, 0], [5, 17], [31, 31]]) {
      for (let c = 0; c < 3; c++) {
        assertEquals(
          img.data[(y * 32 + x) * 3 + c],
          (r * 100 + c * 50 + y * 3 + x) % 256,
          `record ${r} pixel (${y}, ${x}) channel ${c}`,
        );
      }
    }
  }
});

Deno.test("openCifar: CIFAR-10 train spans the five batches in order; names from batches.meta.txt", async () => {
  const dir = await tmp();
  try {
    for (let b = 1; b <= 5; b++) {
      await Deno.writeFile(
        `${dir}/data_batch_${b}.bin`,
        records([[b - 1], [b]], b * 10),
      );
    }
    await Deno.writeFile(`${dir}/test_batch.bin`, records([[0]], 0));
    await Deno.writeTextFile(
      `${dir}/batches.meta.txt`,
      "c0\nc1\nc2\nc3\nc4\nc5\nc6\nc7\nc8\nc9\n\n",
    );
    const ds = await openCifar(dir);
    assertEquals(ds.size, 10);
    assertEquals(
      Array.from({ length: 10 }, (_, i) => ds.label(i)),
      [0, 1, 1, 2, 2, 3, 3, 4, 4, 5],
    );
    assertEquals(ds.key(9), "c5/train_00009");
    const img = await ds.image(7); // batch 4, record 1
    assertEquals(
      [img.data[0], img.data[1], img.data[2]],
      [41, 48, 55],
    );
    assertStringIncludes(ds.description, "CIFAR-10 train");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openCifar: CIFAR-100 fine and coarse labels, archive subfolder found", async () => {
  const dir = await tmp();
  try {
    const sub = `${dir}/cifar-100-binary`;
    await Deno.mkdir(sub);
    await Deno.writeFile(`${sub}/train.bin`, records([[3, 99], [19, 0]], 5));
    await Deno.writeFile(`${sub}/test.bin`, records([[0, 1]], 5));
    const fine = await openCifar(dir);
    assertEquals(fine.variant, "cifar100");
    assertEquals(fine.classes.length, 100);
    assertEquals([fine.label(0), fine.key(0)], [99, "worm/train_00000"]);
    assertEquals(fine.key(1), "apple/train_00001");
    const coarse = await openCifar(dir, { label: "coarse" });
    assertEquals(coarse.classes.length, 20);
    assertEquals(
      [coarse.key(0), coarse.key(1)],
      ["food_containers/train_00000", "vehicles_2/train_00001"],
    );
    const img = await fine.image(1);
    assertEquals([img.data[0], img.data[1], img.data[2]], [6, 13, 20]);
    const test = await openCifar(sub, { split: "test" });
    assertEquals([test.size, test.key(0)], [1, "aquarium_fish/test_00000"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openCifar: damaged or mismatched files name the file, its length and the record size", async () => {
  const dir = await tmp();
  try {
    const good = records([[1], [2], [3]], 0);
    await Deno.writeFile(`${dir}/test_batch.bin`, good.subarray(0, 5000));
    await assertRejects(
      () => openCifar(dir, { split: "test" }),
      ImageError,
      [`${dir}/test_batch.bin`, "5000 bytes", "3073 bytes", "truncated"],
    );
    // CIFAR-100 records read as CIFAR-10
    await Deno.writeFile(`${dir}/test_batch.bin`, records([[1, 2]], 0));
    await assertRejects(
      () => openCifar(dir, { split: "test" }),
      ImageError,
      'its length fits CIFAR-100 records (3074 bytes): pass variant "cifar100"',
    );
    await Deno.writeFile(`${dir}/test_batch.bin`, records([[10]], 0));
    await assertRejects(
      () => openCifar(dir, { split: "test" }),
      ImageError,
      "record 0 has label 10, expected 0..9",
    );
    await Deno.writeFile(`${dir}/test_batch.bin`, records([[1]], 0));
    const e = await assertRejects(
      () => openCifar(dir, { split: "train" }),
      ImageError,
      "cannot read",
    );
    assertEquals(e.file, `${dir}/data_batch_1.bin`);
    await Deno.writeTextFile(`${dir}/batches.meta.txt`, "a\nb\n");
    await assertRejects(
      () => openCifar(dir, { split: "test" }),
      ImageError,
      "expected 10 class names (one per line), found 2",
    );
    const py = `${dir}/py`;
    await Deno.mkdir(py);
    await Deno.writeFile(`${py}/data_batch_1`, new Uint8Array(4));
    await assertRejects(
      () => openCifar(py),
      ImageError,
      "the Python (pickle) version",
    );
    await assertRejects(
      () => openCifar(`${dir}/none`),
      ImageError,
      "no such folder",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
