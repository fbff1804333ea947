/**
 * Score maps: the official per-image files (read against PyTorch-written
 * fixtures from tests/fixtures/make_score_map_fixtures.py, written back byte
 * for byte), the torch writer, and the score-map store (round trips, the key
 * index on disk, constant-time open, resume after an interruption, every
 * refusal, conversions both ways, speed).
 */

import {
  assert,
  assertEquals,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "./_assert.ts";
import {
  checkStoreAgainst,
  listOfficialMaps,
  officialToStore,
  readOfficialMap,
  type ScoreMap,
  ScoreMapError,
  ScoreMapStore,
  type ScoreMapStoreInit,
  storeToOfficial,
  validateScoreMap,
  writeOfficialMap,
} from "tokenlab/labels/mod.ts";
import {
  CheckpointError,
  encodeTorchTensor,
  readTorchFile,
  TorchZip,
  writeTorchTensor,
} from "tokenlab/io/torch/mod.ts";
import { writeFileAtomic } from "tokenlab/io/atomic_write.ts";
import {
  float16BitsToFloat32,
  float32ToFloat16Bits,
  type RawTensor,
} from "tokenlab/io/raw_tensor.ts";
import { Rng } from "tokenlab/random.ts";
import * as tokenlab from "tokenlab";
import { crc32 } from "node:zlib";

/** A header object signed as version 2 does (CRC-32 of its compact JSON without the checksum), written by an independent route. */
function signedHeader(h: Record<string, unknown>): string {
  const { checksum: _, ...rest } = h;
  const sum = crc32(new TextEncoder().encode(JSON.stringify(rest))) >>> 0;
  return JSON.stringify({ ...rest, checksum: sum });
}

/** Re-signs record i of maps.bin after a test changed it: CRC-32 of the index (uint64) then bytes 4.. of the record. */
function resignRecord(data: Uint8Array, rb: number, i: number): void {
  const ix = new Uint8Array(8);
  new DataView(ix.buffer).setBigUint64(0, BigInt(i), true);
  const rec = data.subarray(i * rb, (i + 1) * rb);
  new DataView(data.buffer, data.byteOffset).setUint32(
    i * rb,
    crc32(rec.subarray(4), crc32(ix)) >>> 0,
    true,
  );
}

const ROOT = new URL("./fixtures/score_maps/", import.meta.url);
const RELABEL = new URL("./fixtures/score_maps_relabel/", import.meta.url);
const BAD = new URL("./fixtures/score_maps_bad/", import.meta.url);

interface ExpectedMap {
  k: number;
  height: number;
  width: number;
  scores: number[];
  ids: number[];
}
interface Expected {
  numClasses: number;
  maps: Record<string, ExpectedMap>;
  relabel: Record<string, ExpectedMap>;
}
type StoredMap = Omit<ExpectedMap, "scores" | "ids"> & {
  scores: string;
  ids: string;
};
const RAW_EXPECTED = JSON.parse(
  await Deno.readTextFile(new URL("expected.json", ROOT)),
);
/** expected.json keeps each map's values as one space-separated string. */
function parseMaps(
  maps: Record<string, StoredMap>,
): Record<string, ExpectedMap> {
  return Object.fromEntries(
    Object.entries(maps).map(([key, m]) => [key, {
      ...m,
      scores: m.scores.split(" ").map(Number),
      ids: m.ids.split(" ").map(Number),
    }]),
  );
}
const EXPECTED: Expected = {
  numClasses: RAW_EXPECTED.numClasses,
  maps: parseMaps(RAW_EXPECTED.maps),
  relabel: parseMaps(RAW_EXPECTED.relabel),
};

/** A fresh temporary folder, removed after `fn`. */
async function withTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "tokenlab-score-map-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function assertMap(map: ScoreMap, want: ExpectedMap, what: string): void {
  assertEquals(
    [map.k, map.height, map.width],
    [want.k, want.height, want.width],
    `${what} shape`,
  );
  assertEquals([...map.scores], want.scores, `${what} scores`);
  assertEquals([...map.ids], want.ids, `${what} ids`);
}

/** Float32 values rounded through float16, as a store keeps them. */
function viaHalf(x: Float32Array): Float32Array {
  return float16BitsToFloat32(float32ToFloat16Bits(x));
}

function randomMap(
  rng: Rng,
  k: number,
  height: number,
  width: number,
  numClasses: number,
): ScoreMap {
  const n = k * height * width;
  const scores = new Float32Array(n);
  const ids = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    scores[i] = rng.normal() * 6;
    ids[i] = rng.int(numClasses);
  }
  // The largest and smallest ids, when there is room.
  if (n > 2) ids[0] = numClasses - 1, ids[1] = 0;
  return { k, height, width, scores, ids };
}

/** Deterministic map number i (the same in the child process of the kill test). */
function mapNumber(i: number, k: number, h: number, w: number, c: number) {
  const n = k * h * w;
  const scores = new Float32Array(n);
  const ids = new Int32Array(n);
  for (let e = 0; e < n; e++) {
    scores[e] = ((i * 31 + e * 7) % 200) / 8 - 12;
    ids[e] = (i * 13 + e * 17) % c;
  }
  return { k, height: h, width: w, scores, ids };
}

function init(over: Partial<ScoreMapStoreInit> = {}): ScoreMapStoreInit {
  return {
    k: 5,
    height: 3,
    width: 4,
    numClasses: 1000,
    annotator: "test annotator",
    preprocessing: { mode: "resize-center-crop", size: 224, cropPct: 0.875 },
    scores: "logits",
    ...over,
  };
}

async function filesOf(dir: string): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for await (const e of Deno.readDir(dir)) {
    out.set(e.name, await Deno.readFile(`${dir}/${e.name}`));
  }
  return out;
}

async function assertSameFolder(a: string, b: string): Promise<void> {
  const fa = await filesOf(a), fb = await filesOf(b);
  assertEquals([...fa.keys()].sort(), [...fb.keys()].sort(), "file names");
  for (const [name, bytes] of fa) {
    assert(
      bytes.length === fb.get(name)!.length &&
        bytes.every((x, i) => x === fb.get(name)![i]),
      `${name} differs between ${a} and ${b}`,
    );
  }
}

async function exists(p: string): Promise<boolean> {
  return await Deno.lstat(p).then(() => true, () => false);
}

// ---------------------------------------------------------------------------
// Official files.

Deno.test("official maps written by PyTorch read exactly (permuted, contiguous, float32, sliced)", async () => {
  for (const [key, want] of Object.entries(EXPECTED.maps)) {
    const map = await readOfficialMap(new URL(`${key}.pt`, ROOT), {
      numClasses: 1000,
    });
    assertMap(map, want, key);
    validateScoreMap(map, { numClasses: 1000 });
  }
  for (const [key, want] of Object.entries(EXPECTED.relabel)) {
    const map = await readOfficialMap(new URL(`${key}.pt`, RELABEL));
    assertEquals([map.k, map.height, map.width], [5, 15, 15]);
    assertMap(map, want, key);
  }
});

Deno.test("writeOfficialMap writes generate_label.py's bytes exactly", async () => {
  await withTemp(async (dir) => {
    for (const key of ["n01440764/img_1", "n01440764/img_12"]) {
      const map = await readOfficialMap(new URL(`${key}.pt`, ROOT));
      const stem = key.split("/")[1];
      await writeOfficialMap(`${dir}/${stem}.pt`, map);
      assertEquals(
        await Deno.readFile(`${dir}/${stem}.pt`),
        await Deno.readFile(new URL(`${key}.pt`, ROOT)),
        `${key} bytes`,
      );
    }
    // float32 files hold every id exactly, and read back the same.
    const rng = new Rng(5);
    const map = randomMap(rng, 3, 2, 5, 100000);
    await writeOfficialMap(`${dir}/wide.pt`, map, { dtype: "float32" });
    const back = await readOfficialMap(`${dir}/wide.pt`, {
      numClasses: 100000,
    });
    assertEquals(back.scores, map.scores);
    assertEquals(back.ids, map.ids);
    const raw = await readTorchFile(`${dir}/wide.pt`) as RawTensor;
    assertEquals([raw.dtype, raw.shape], ["float32", [2, 3, 2, 5]]);
    // float16: scores rounded to nearest even.
    const small = randomMap(rng, 2, 3, 3, 2000);
    await writeOfficialMap(`${dir}/small.pt`, small);
    const half = await readOfficialMap(`${dir}/small.pt`);
    assertEquals(half.scores, viaHalf(small.scores));
    assertEquals(half.ids, small.ids);
  });
});

Deno.test("writeOfficialMap refuses what float16 cannot hold, and existing files", async () => {
  await withTemp(async (dir) => {
    const map = randomMap(new Rng(1), 2, 2, 2, 1000);
    map.ids[5] = 2048;
    await assertRejects(
      () => writeOfficialMap(`${dir}/a.pt`, map),
      ScoreMapError,
      "found class 2048 in cell (0, 1) (rank 1)",
    );
    await writeOfficialMap(`${dir}/a.pt`, map, { dtype: "float32" });
    map.ids[5] = 7;
    map.scores[2] = 70000;
    await assertRejects(
      () => writeOfficialMap(`${dir}/b.pt`, map),
      ScoreMapError,
      "largest finite value is 65504",
    );
    map.scores[2] = 1;
    const before = await Deno.readFile(`${dir}/a.pt`);
    const e = await assertRejects(
      () => writeOfficialMap(`${dir}/a.pt`, map),
      ScoreMapError,
      "already exists",
    );
    assertStringIncludes(e.message, "overwrite: true");
    assertEquals(await Deno.readFile(`${dir}/a.pt`), before);
    await writeOfficialMap(`${dir}/a.pt`, map, { overwrite: true });
    assertEquals((await readOfficialMap(`${dir}/a.pt`)).ids, map.ids);
    await assertRejects(
      () => writeOfficialMap(`${dir}/c.pt`, map, { numClasses: 5 }),
      ScoreMapError,
      "but the dataset has 5 classes",
    );
    await assertRejects(
      () => writeOfficialMap(`${dir}/no/such/dir/c.pt`, map),
      ScoreMapError,
      "no/such/dir/c.pt",
    );
    // Only the finished files, no temporaries.
    const names = [];
    for await (const f of Deno.readDir(dir)) names.push(f.name);
    assertEquals(names.sort(), ["a.pt"]);
  });
});

Deno.test("bad official files are refused, naming the file and the problem", async () => {
  const cases: [string, string[], object?][] = [
    ["wrong_shape", ["expected a float16 tensor [2, k, H, W]", "[5, 3, 4]"]],
    ["three_planes", ["found shape [3, 5, 3, 4]"]],
    ["wrong_dtype", ["found a int64 tensor"]],
    ["not_tensor", ["found a dict with 1 entries"]],
    ["nan_score", ["not finite: found NaN in cell (2, 3) (rank 1)"]],
    ["inf_score", ["found Infinity in cell (0, 1) (rank 0)"]],
    ["fractional_id", ["integral class ids", "3.5 in cell (1, 2) (rank 0)"]],
    [
      "id_1203",
      [
        "score map ids out of range: found class 1203 in cell (2, 3) (rank 0) of",
        "but the dataset has 1000 classes",
      ],
      { numClasses: 1000 },
    ],
    ["negative_id", ["found class -1 in cell (0, 0) (rank 2)"]],
    ["inexact_id", ["found class 3000", "allowInexactIds"]],
    ["exact_id_f32", ["found class 3001", "1000 classes"], {
      numClasses: 1000,
    }],
    ["truncated", ["truncated"]],
    ["corrupt", ["damaged"]],
    ["not_torch", ["HTML"]],
  ];
  for (const [name, parts, options] of cases) {
    const file = new URL(`${name}.pt`, BAD);
    const e = await assertRejects(
      () => readOfficialMap(file, options),
      ScoreMapError,
    );
    for (const p of [...parts, `${name}.pt`]) {
      assert(
        e.message.includes(p),
        `${name}: expected ${JSON.stringify(p)} in: ${e.message}`,
      );
    }
  }
  // What is refused by default can be accepted on request.
  const inexact = await readOfficialMap(new URL("inexact_id.pt", BAD), {
    allowInexactIds: true,
  });
  assertEquals(inexact.ids[0], 3000);
  assertEquals(
    (await readOfficialMap(new URL("exact_id_f32.pt", BAD), {
      numClasses: 4000,
    })).ids[0],
    3001,
  );
  // `where` renames the file in messages.
  await assertRejects(
    () =>
      readOfficialMap(new URL("id_1203.pt", BAD), {
        numClasses: 1000,
        where: "n01440764/img_12.pt",
      }),
    ScoreMapError,
    "found class 1203 in cell (2, 3) (rank 0) of n01440764/img_12.pt, but the dataset has 1000 classes",
  );
  await assertRejects(
    () => readOfficialMap(new URL("missing.pt", BAD)),
    ScoreMapError,
    "missing.pt",
  );
});

Deno.test("listOfficialMaps: sorted <class>/<stem> keys, hidden and other files left out", async () => {
  assertEquals(await listOfficialMaps(ROOT), Object.keys(EXPECTED.maps).sort());
  await withTemp(async (dir) => {
    for (const c of ["b", "a", "Z", "é"]) await Deno.mkdir(`${dir}/${c}`);
    for (const f of ["a/2.pt", "a/10.pt", "b/x.pt", "Z/y.pt", "é/q.pt"]) {
      await Deno.writeFile(`${dir}/${f}`, new Uint8Array(1));
    }
    await Deno.writeFile(`${dir}/a/.tmp.pt`, new Uint8Array(1));
    await Deno.writeFile(`${dir}/a/notes.txt`, new Uint8Array(1));
    await Deno.writeFile(`${dir}/top.pt`, new Uint8Array(1));
    await Deno.mkdir(`${dir}/.hidden`);
    await Deno.writeFile(`${dir}/.hidden/h.pt`, new Uint8Array(1));
    assertEquals(await listOfficialMaps(dir), [
      "Z/y",
      "a/10",
      "a/2",
      "b/x",
      "é/q",
    ]);
    await assertRejects(
      () => listOfficialMaps(`${dir}/nope`),
      ScoreMapError,
      "no score-map folder at",
    );
  });
});

Deno.test("validateScoreMap names every problem", () => {
  const ok = (): ScoreMap => ({
    k: 2,
    height: 3,
    width: 4,
    scores: new Float32Array(24),
    ids: new Int32Array(24),
  });
  validateScoreMap(ok(), { numClasses: 1 });
  const cases: [Partial<ScoreMap> | null, string][] = [
    [{ k: 0 }, "expected k to be a positive integer, found 0"],
    [{ height: 1.5 }, "expected height to be a positive integer, found 1.5"],
    [{ scores: new Float32Array(23) }, "= 24 values, found 23 values"],
    [
      { scores: new Float64Array(24) as unknown as Float32Array },
      "found a Float64Array",
    ],
    [
      { ids: new Float32Array(24) as unknown as Int32Array },
      "expected an Int32Array",
    ],
  ];
  for (const [change, msg] of cases) {
    assertThrows(
      () => validateScoreMap({ ...ok(), ...change }, { where: "img.pt" }),
      ScoreMapError,
      msg,
    );
  }
  assertThrows(
    () => validateScoreMap(null as unknown as ScoreMap),
    ScoreMapError,
    "expected an object",
  );
  const nan = ok();
  nan.scores[17] = NaN;
  assertThrows(
    () => validateScoreMap(nan, { where: "x.pt" }),
    ScoreMapError,
    "found NaN in cell (1, 1) (rank 1) of x.pt",
  );
  const inf = ok();
  inf.scores[0] = -Infinity;
  assertThrows(() => validateScoreMap(inf), ScoreMapError, "-Infinity");
  const far = ok();
  far.ids[12 + 3 * 0 + 7] = 1203; // rank 1, cell (1, 3)
  assertThrows(
    () =>
      validateScoreMap(far, {
        numClasses: 1000,
        where: "n01440764/img_12.pt",
      }),
    ScoreMapError,
    "score map ids out of range: found class 1203 in cell (1, 3) (rank 1) of n01440764/img_12.pt, but the dataset has 1000 classes",
  );
  const neg = ok();
  neg.ids[3] = -4;
  assertThrows(
    () => validateScoreMap(neg),
    ScoreMapError,
    "cannot be negative",
  );
  assertThrows(
    () => validateScoreMap(ok(), { numClasses: 0 }),
    ScoreMapError,
    "numClasses",
  );
});

// ---------------------------------------------------------------------------
// The torch writer.

Deno.test("torch writer: every dtype, permuted storage, scalars and empties read back", async () => {
  await withTemp(async (dir) => {
    const rng = new Rng(3);
    const tensors: RawTensor[] = [
      {
        dtype: "float32",
        shape: [2, 3],
        data: Float32Array.of(1, -2, 3.5, 0, NaN, Infinity),
      },
      {
        dtype: "float64",
        shape: [3],
        data: Float64Array.of(Math.PI, -0, 1e-300),
      },
      {
        dtype: "float16",
        shape: [4],
        data: Uint16Array.of(0x3c00, 0xc000, 0x7c00, 0x0001),
      },
      { dtype: "bfloat16", shape: [2], data: Uint16Array.of(0x3f80, 0xc000) },
      {
        dtype: "int64",
        shape: [2],
        data: BigInt64Array.of(-(2n ** 63n), 2n ** 63n - 1n),
      },
      {
        dtype: "int32",
        shape: [2, 1],
        data: Int32Array.of(-(2 ** 31), 2 ** 31 - 1),
      },
      { dtype: "int16", shape: [2], data: Int16Array.of(-32768, 32767) },
      { dtype: "int8", shape: [2], data: Int8Array.of(-128, 127) },
      { dtype: "uint8", shape: [3], data: Uint8Array.of(0, 128, 255) },
      { dtype: "bool", shape: [3], data: Uint8Array.of(1, 0, 1) },
      { dtype: "float32", shape: [], data: Float32Array.of(42) },
      { dtype: "float32", shape: [0, 4], data: new Float32Array(0) },
      {
        dtype: "float32",
        shape: [70000],
        data: Float32Array.from({ length: 70000 }, () => rng.normal()),
      },
    ];
    for (const [i, t] of tensors.entries()) {
      const file = `${dir}/t${i}.pt`;
      await writeTorchTensor(file, t);
      const back = await readTorchFile(file) as RawTensor;
      assertEquals(back.dtype, t.dtype, `${file} dtype`);
      assertEquals(back.shape, t.shape, `${file} shape`);
      assertEquals(
        new Uint8Array(
          back.data.buffer,
          back.data.byteOffset,
          back.data.byteLength,
        ),
        new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength),
        `${file} data`,
      );
    }
    // A permuted storage gives the same tensor, with torch's strides.
    const x: RawTensor = {
      dtype: "int64",
      shape: [2, 3, 4],
      data: BigInt64Array.from({ length: 24 }, (_, i) => BigInt(i * 1000003)),
    };
    for (const order of [[0, 1, 2], [2, 0, 1], [1, 2, 0], [0, 2, 1]]) {
      await writeTorchTensor(`${dir}/p.pt`, x, {
        memoryOrder: order,
        overwrite: true,
      });
      const back = await readTorchFile(`${dir}/p.pt`) as RawTensor;
      assertEquals(back.data, x.data, `order ${order}`);
    }
    // The archive's folder is the file name without its last extension.
    await writeTorchTensor(`${dir}/a.b.pt`, tensors[0]);
    using zip = await TorchZip.open(`${dir}/a.b.pt`);
    assertEquals(zip.names(), ["a.b/data.pkl", "a.b/data/0", "a.b/version"]);
    for (const name of zip.names()) {
      // Every entry's data starts on a 64-byte boundary, as torch writes.
      assertEquals(zip.entry(name)!.method, 0);
    }
  });
});

Deno.test("torch writer: the bytes of torch.save for the fixtures' contiguous tensors", async () => {
  for (
    const [key, dtype] of [["n01443537/img_3", "float16"], [
      "n01443537/img_4",
      "float32",
    ]] as const
  ) {
    const file = new URL(`${key}.pt`, ROOT);
    const t = await readTorchFile(file) as RawTensor;
    assertEquals(t.dtype, dtype);
    const bytes = encodeTorchTensor(
      { dtype: t.dtype, shape: t.shape, data: t.data },
      { archiveName: key.split("/")[1] },
    );
    assertEquals(bytes, await Deno.readFile(file), key);
  }
});

Deno.test("torch writer: refusals, atomic writes, no overwrite", async () => {
  await withTemp(async (dir) => {
    const t: RawTensor = {
      dtype: "float32",
      shape: [2],
      data: Float32Array.of(1, 2),
    };
    assertThrows(
      () => encodeTorchTensor(t, { memoryOrder: [0, 0] }),
      RangeError,
      "expected a permutation of the 1 axes",
    );
    assertThrows(
      () => encodeTorchTensor(t, { archiveName: "a/b" }),
      RangeError,
      "must not contain a slash",
    );
    assertThrows(
      () =>
        encodeTorchTensor({
          dtype: "float32",
          shape: [3],
          data: Float32Array.of(1),
        }),
      TypeError,
      "needs 3 elements",
    );
    await writeTorchTensor(`${dir}/t.pt`, t);
    const before = await Deno.readFile(`${dir}/t.pt`);
    await assertRejects(
      () =>
        writeTorchTensor(`${dir}/t.pt`, { ...t, data: Float32Array.of(3, 4) }),
      CheckpointError,
      "a file already exists there; pass overwrite: true",
    );
    assertEquals(await Deno.readFile(`${dir}/t.pt`), before);
    await writeTorchTensor(
      `${dir}/t.pt`,
      { ...t, data: Float32Array.of(3, 4) },
      {
        overwrite: true,
        sync: false,
      },
    );
    assertEquals(
      (await readTorchFile(`${dir}/t.pt`) as RawTensor).data,
      Float32Array.of(3, 4),
    );
    await Deno.mkdir(`${dir}/folder.pt`);
    await assertRejects(
      () => writeTorchTensor(`${dir}/folder.pt`, t, { overwrite: true }),
      CheckpointError,
      "nothing was changed there",
    );
    await assertRejects(
      () => writeFileAtomic(`${dir}/`, new Uint8Array(1)),
      TypeError,
      "expected a file path",
    );
    const names = [];
    for await (const f of Deno.readDir(dir)) names.push(f.name);
    assertEquals(names.sort(), ["folder.pt", "t.pt"]);
  });
});

// ---------------------------------------------------------------------------
// The store.

Deno.test("store round trip: many shapes and class counts (uint16 and int32 ids), keys found on disk", async () => {
  const combos: [number, number, number, number, boolean][] = [
    [1, 1, 1, 1, false],
    [5, 3, 4, 1000, true],
    [5, 15, 15, 1000, false],
    [3, 2, 5, 65536, true],
    [2, 3, 3, 65537, false],
    [5, 7, 7, 100000, true],
    [1, 1, 3, 2 ** 31 - 1, false],
    [4, 1, 2, 3, true],
  ];
  const rng = new Rng(11);
  await withTemp(async (dir) => {
    for (const [ci, [k, h, w, c, withLabels]] of combos.entries()) {
      const count = 1 + rng.int(150);
      const keys: string[] = [];
      for (let i = 0; i < count; i++) {
        // Keys sharing long prefixes, unicode, and short ones.
        const kind = i % 4;
        keys.push(
          kind === 0
            ? `n${String(rng.int(1e8)).padStart(8, "0")}/img_${i}`
            : kind === 1
            ? `a_very_long_class_folder_name_that_is_shared/${i}_${
              "x".repeat(i % 7)
            }`
            : kind === 2
            ? `ünïcödé/画像_${i}`
            : `${i}`,
        );
      }
      const maps = keys.map(() => randomMap(rng, k, h, w, c));
      const labels = keys.map(() => rng.int(Math.min(c, 1000)));
      const store = `${dir}/s${ci}`;
      const writer = await ScoreMapStore.create(
        store,
        init({ k, height: h, width: w, numClasses: c }),
        { flushEvery: 17 },
      );
      for (let i = 0; i < count; i++) {
        await writer.append(
          keys[i],
          maps[i],
          withLabels ? labels[i] : undefined,
        );
      }
      assertEquals(writer.size, count);
      const header = await writer.commit();
      assertEquals(header.count, count);
      assertEquals(header.labels, withLabels);
      assertEquals(header.record.ids.dtype, c > 65536 ? "int32" : "uint16");
      assertEquals(header.record.bytes % 8, 0);
      assert(!(await exists(`${store}.partial`)));
      assertEquals(
        [...(await filesOf(store)).keys()].sort(),
        [
          "header.json",
          "keys.offsets",
          "keys.sorted",
          "keys.sums",
          "keys.txt",
          "maps.bin",
        ],
      );

      using s = await ScoreMapStore.open(store);
      assertEquals(s.size, count);
      assertEquals(s.header, header);
      assertEquals(await s.keys(), keys);
      for (let i = 0; i < count; i++) {
        const what = `combo ${ci} record ${i}`;
        assertEquals(await s.keyAt(i), keys[i], `${what} key`);
        assertEquals(await s.indexOf(keys[i]), i, `${what} indexOf`);
        const m = await s.read(i);
        assertEquals(m.scores, viaHalf(maps[i].scores), `${what} scores`);
        assertEquals(m.ids, maps[i].ids, `${what} ids`);
        assertEquals(
          await s.label(i),
          withLabels ? labels[i] : undefined,
          `${what} label`,
        );
      }
      const byKey = await s.read(keys[count - 1]);
      assertEquals(byKey.ids, maps[count - 1].ids);
      for (
        const absent of [
          "",
          "0x",
          "zzz",
          "n",
          "a_very_long_class_folder_name_that_is_shared/",
          `${keys[0]}!`,
          "ünïcödé/画像_",
        ]
      ) {
        if (absent === "" || keys.includes(absent)) continue;
        assertEquals(await s.indexOf(absent), -1, `absent ${absent}`);
      }
      await assertRejects(
        () => s.read("no/such"),
        ScoreMapError,
        'no image with key "no/such"',
      );
      // A batch in any order, with repeats.
      const idx = Array.from({ length: 40 }, () => rng.int(count));
      const batch = await s.readBatch(idx);
      const n = k * h * w;
      assertEquals([batch.size, batch.k, batch.height, batch.width], [
        40,
        k,
        h,
        w,
      ]);
      for (let j = 0; j < idx.length; j++) {
        assertEquals(
          batch.scores.subarray(j * n, (j + 1) * n),
          viaHalf(maps[idx[j]].scores),
        );
        assertEquals(batch.ids.subarray(j * n, (j + 1) * n), maps[idx[j]].ids);
      }
      assertEquals(
        batch.labels && [...batch.labels],
        withLabels ? idx.map((i) => labels[i]) : undefined,
      );
      const all = await s.readBatch(Array.from({ length: count }, (_, i) => i));
      assertEquals(all.ids.length, count * n);
      assertEquals((await s.readBatch([])).size, 0);
      await assertRejects(
        () => s.readBatch([count]),
        ScoreMapError,
        `[0, ${count})`,
      );
      await assertRejects(() => s.keyAt(-1), ScoreMapError, "found -1");
    }
  });
});

Deno.test("store header: fields, layout, deterministic JSON, notebook display", async () => {
  await withTemp(async (dir) => {
    const w = await ScoreMapStore.create(
      `${dir}/s`,
      init({
        createdBy: "test run",
        preprocessing: { mode: "resize-center-crop", size: 576 },
      }),
    );
    await w.append("a/1", randomMap(new Rng(0), 5, 3, 4, 1000), 3);
    await w.commit();
    const text = await Deno.readTextFile(`${dir}/s/header.json`);
    const parsed = JSON.parse(text);
    assertEquals(parsed, {
      format: "tokenlab.score-map-store",
      version: 2,
      k: 5,
      height: 3,
      width: 4,
      numClasses: 1000,
      annotator: "test annotator",
      preprocessing: { mode: "resize-center-crop", size: 576, cropPct: 1 },
      scores: "logits",
      count: 1,
      labels: true,
      createdBy: "test run",
      record: {
        // 4 checksum + 4 label + 8 key hash, 60 float16 scores, 60 uint16 ids
        bytes: 256,
        checksum: { dtype: "uint32", offset: 0 },
        label: { dtype: "int32", offset: 4 },
        keyHash: { dtype: "uint64", offset: 8 },
        scores: { dtype: "float16", offset: 16 },
        ids: { dtype: "uint16", offset: 136 },
      },
      index: { keysBytes: 4, blockBytes: 4096, entryBytes: 64 },
      checksum: parsed.checksum,
    });
    assertEquals(
      JSON.stringify(JSON.parse(signedHeader(parsed))),
      JSON.stringify(parsed),
      "the checksum is the CRC-32 of the compact JSON without it",
    );
    assertEquals((await Deno.stat(`${dir}/s/maps.bin`)).size, 256);
    using s = await ScoreMapStore.open(`${dir}/s`);
    const display = Symbol.for("Jupyter.display");
    const shown = (s as unknown as Record<symbol, () => Record<string, string>>)
      [display]();
    assertStringIncludes(shown["text/markdown"], "| images | 1 |");
    assertStringIncludes(
      shown["text/plain"],
      "resize-center-crop 576px, crop 1",
    );
    // The store is reachable from the package entry.
    assertEquals(tokenlab.ScoreMapStore, ScoreMapStore);
    assertEquals(typeof tokenlab.writeTorchTensor, "function");
  });
});

Deno.test("opening is constant time: the header only; the index is read on demand, by seek", async () => {
  await withTemp(async (dir) => {
    const count = 100_000;
    const w = await ScoreMapStore.create(
      `${dir}/big`,
      init({ k: 1, height: 1, width: 1, numClasses: 10 }),
      { flushEvery: 50_000 },
    );
    const map = {
      k: 1,
      height: 1,
      width: 1,
      scores: new Float32Array(1),
      ids: new Int32Array(1),
    };
    for (let i = 0; i < count; i++) {
      map.scores[0] = i % 100;
      map.ids[0] = i % 10;
      await w.append(`class_${i % 7}/image_${i}`, map);
    }
    await w.commit();
    let t = performance.now();
    const s = await ScoreMapStore.open(`${dir}/big`);
    const m = await s.read(count - 1);
    const openRead = performance.now() - t;
    assertEquals(s.stats.reads, 2, "the header, then one record");
    assertEquals([m.scores[0], m.ids[0]], [
      (count - 1) % 100,
      (count - 1) % 10,
    ]);
    t = performance.now();
    assertEquals(await s.indexOf("class_3/image_77777"), -1);
    const i = await s.indexOf(`class_${77777 % 7}/image_77777`);
    const lookups = performance.now() - t;
    assertEquals(i, 77777);
    const reads = s.stats.reads - 2;
    assert(reads <= 2 * 18, `two lookups in 100k keys took ${reads} reads`);
    assertEquals(await s.keyAt(12345), `class_${12345 % 7}/image_12345`);
    s.close();
    console.log(
      `  100k records: open + read one ${
        openRead.toFixed(1)
      } ms, two key lookups ${lookups.toFixed(1)} ms (${reads} reads)`,
    );
    assert(openRead < 100, `open + read took ${openRead} ms`);
    // Opening never reads the index: garbage in it is found when used (its
    // blocks fail their checksums), and reads by index still work.
    const sorted = `${dir}/big/keys.sorted`;
    const size = (await Deno.stat(sorted)).size;
    await Deno.writeFile(sorted, new Uint8Array(size).fill(0xff));
    using again = await ScoreMapStore.open(`${dir}/big`);
    assertEquals(again.stats.reads, 1, "the header only");
    assertEquals((await again.read(5)).ids[0], 5);
    await assertRejects(
      () => again.indexOf("class_5/image_5"),
      ScoreMapError,
      "of keys.sorted (bytes",
    );
    // A file of the wrong size is found by its size on open (stat, no read).
    await Deno.writeFile(sorted, new Uint8Array(10));
    await assertRejects(
      () => ScoreMapStore.open(`${dir}/big`),
      ScoreMapError,
      "keys.sorted should be 6400000 bytes for 100000 images, found 10 bytes",
    );
  });
});

async function writeStore(
  path: string,
  count: number,
  from = 0,
  writer?: Awaited<ReturnType<typeof ScoreMapStore.create>>,
): Promise<void> {
  const w = writer ??
    await ScoreMapStore.create(
      path,
      init({ k: 2, height: 3, width: 3, numClasses: 50 }),
      { flushEvery: 7 },
    );
  for (let i = from; i < count; i++) {
    await w.append(`c${i % 3}/img_${i}`, mapNumber(i, 2, 3, 3, 50), i % 50);
  }
  await w.commit();
}

Deno.test("resume after an interruption gives a byte-identical store", async () => {
  await withTemp(async (dir) => {
    const N = 60;
    await writeStore(`${dir}/reference`, N);

    // A) A flush interrupted after the last checkpoint: a torn record and a
    // partial key line past it are discarded.
    {
      const p = `${dir}/a`;
      const w = await ScoreMapStore.create(
        p,
        init({ k: 2, height: 3, width: 3, numClasses: 50 }),
        { flushEvery: 7 },
      );
      for (let i = 0; i < 30; i++) {
        await w.append(`c${i % 3}/img_${i}`, mapNumber(i, 2, 3, 3, 50), i % 50);
      }
      assertEquals(w.flushedSize, 28);
      await w.close(); // checkpoint at 30
      assert(!(await exists(p)), "nothing under the final name before commit");
      await Deno.writeFile(
        `${p}.partial/maps.bin`,
        new Uint8Array(21).fill(7),
        { append: true },
      );
      await Deno.writeFile(
        `${p}.partial/keys.txt`,
        new TextEncoder().encode("c0/img_3"),
        { append: true },
      );
      await assertRejects(
        () => ScoreMapStore.open(p),
        ScoreMapError,
        "ScoreMapStore.resume",
      );
      const r = await ScoreMapStore.resume(p);
      assertEquals(r.size, 30);
      assertEquals(r.resumed, { records: 30, discardedBytes: 21 + 8 });
      await writeStore(p, N, 30, r);
      await assertSameFolder(p, `${dir}/reference`);
    }

    // B) The data file cut mid-record below the checkpoint (a crash before
    // the disk had it): the torn record is dropped, the run redoes it.
    {
      const p = `${dir}/b`;
      const w = await ScoreMapStore.create(
        p,
        init({ k: 2, height: 3, width: 3, numClasses: 50 }),
        { flushEvery: 7 },
      );
      for (let i = 0; i < 40; i++) {
        await w.append(`c${i % 3}/img_${i}`, mapNumber(i, 2, 3, 3, 50), i % 50);
      }
      await w.close();
      const rb = w.header.record.bytes;
      await Deno.truncate(
        `${p}.partial/maps.bin`,
        22 * rb + Math.floor(rb / 2),
      );
      await assertRejects(
        () =>
          ScoreMapStore.resume(p, {
            header: init({ k: 2, height: 3, width: 3, numClasses: 51 }),
          }),
        ScoreMapError,
        "was started with numClasses 50, but this run has numClasses 51",
      );
      const r = await ScoreMapStore.resume(p, {
        header: init({ k: 2, height: 3, width: 3, numClasses: 50 }),
      });
      assertEquals(r.size, 22);
      assertEquals(r.resumed?.records, 22);
      await writeStore(p, N, 22, r);
      await assertSameFolder(p, `${dir}/reference`);
    }

    // C) Stopped before the first checkpoint: nothing is kept.
    {
      const p = `${dir}/c`;
      const w = await ScoreMapStore.create(
        p,
        init({ k: 2, height: 3, width: 3, numClasses: 50 }),
        { flushEvery: 100 },
      );
      for (let i = 0; i < 5; i++) {
        await w.append(`c${i % 3}/img_${i}`, mapNumber(i, 2, 3, 3, 50), i % 50);
      }
      await w.abort();
      assert(!(await exists(`${p}.partial`)));
      await ScoreMapStore.create(
        p,
        init({ k: 2, height: 3, width: 3, numClasses: 50 }),
      ).then((x) => x.close());
      await Deno.remove(`${p}.partial/progress.json`).catch(() => {});
      const r = await ScoreMapStore.resume(p);
      assertEquals(r.size, 0);
      await writeStore(p, N, 0, r);
      await assertSameFolder(p, `${dir}/reference`);
    }
    await assertRejects(
      () => ScoreMapStore.resume(`${dir}/reference`),
      ScoreMapError,
      "already committed",
    );
  });
});

Deno.test("resume after the writing process is killed (SIGKILL) gives a byte-identical store", async () => {
  await withTemp(async (dir) => {
    const N = 300;
    await writeStore(`${dir}/reference`, N);
    const lib = new URL("../lib/labels/store/mod.ts", import.meta.url).href;
    const p = `${dir}/killed`;
    const code = `
      import { ScoreMapStore } from ${JSON.stringify(lib)};
      ${mapNumber.toString()}
      const w = await ScoreMapStore.create(${JSON.stringify(p)}, ${
      JSON.stringify(init({ k: 2, height: 3, width: 3, numClasses: 50 }))
    }, { flushEvery: 7 });
      for (let i = 0; i < ${N}; i++) {
        await w.append("c" + (i % 3) + "/img_" + i, mapNumber(i, 2, 3, 3, 50), i % 50);
        if (i === 100) console.log("ready");
        if (i > 100) await new Promise((r) => setTimeout(r, 2));
      }
      console.log("finished too early");
    `;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["eval", "--no-check", code],
      stdout: "piped",
      stderr: "inherit",
      stdin: "null",
    }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream())
      .getReader();
    let seen = "";
    while (!seen.includes("ready")) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += value;
    }
    assertStringIncludes(seen, "ready");
    await new Promise((r) => setTimeout(r, 60));
    child.kill("SIGKILL");
    await reader.cancel();
    const status = await child.status;
    assertEquals(status.signal, "SIGKILL");
    assert(!(await exists(p)), "no store under the final name");
    const r = await ScoreMapStore.resume(p);
    assert(r.size >= 98 && r.size < N, `resumed at ${r.size}`);
    assertEquals(r.size % 7, 0, "a checkpoint boundary");
    await writeStore(p, N, r.size, r);
    await assertSameFolder(p, `${dir}/reference`);
  });
});

Deno.test("stores: never overwritten unless asked, never half-written under the final name", async () => {
  await withTemp(async (dir) => {
    const p = `${dir}/s`;
    await writeStore(p, 10);
    const before = await filesOf(p);
    await assertRejects(
      () => ScoreMapStore.create(p, init()),
      ScoreMapError,
      "something already exists there; pass overwrite: true",
    );
    // Overwrite: the old store stays until the new one is committed.
    const w = await ScoreMapStore.create(
      p,
      init({ k: 2, height: 3, width: 3, numClasses: 50 }),
      { overwrite: true, flushEvery: 3 },
    );
    for (let i = 0; i < 5; i++) {
      await w.append(`x/${i}`, mapNumber(i, 2, 3, 3, 50), i);
    }
    await w.flush();
    assertEquals(
      await filesOf(p),
      before,
      "old store intact while the new one is written",
    );
    await w.commit();
    using s = await ScoreMapStore.open(p);
    assertEquals(s.size, 5);
    assertEquals(await s.keyAt(0), "x/0");
    // An interrupted write holding records blocks a new one, and is named;
    // one holding none is replaced with a note.
    const q = `${dir}/q`;
    const w1 = await ScoreMapStore.create(q, init());
    await w1.close();
    const notes: string[] = [];
    const w2 = await ScoreMapStore.create(q, init(), {
      onWarning: (m) => notes.push(m),
    });
    assertEquals(notes.length, 1);
    assertStringIncludes(notes[0], "it holds no records");
    await w2.append("a/0", mapNumber(0, 5, 3, 4, 1000));
    await w2.close();
    const e = await assertRejects(
      () => ScoreMapStore.create(q, init()),
      ScoreMapError,
      "an interrupted write of it, holding 1 record, is at",
    );
    assertEquals(e.option, "overwrite");
    assertStringIncludes(e.message, "pass overwrite: true to discard it");
    const w3 = await ScoreMapStore.create(q, init(), { overwrite: true });
    assertEquals(w3.size, 0);
    await w3.abort();
    assert(!(await exists(`${q}.partial`)));
    // Something appearing at the path meanwhile is not replaced; the writer
    // stays usable, and the write resumable.
    const w4 = await ScoreMapStore.create(q, init());
    await w4.append("a/0", mapNumber(0, 5, 3, 4, 1000));
    await Deno.mkdir(q);
    await Deno.writeTextFile(`${q}/mine.txt`, "keep me");
    await assertRejects(
      () => w4.commit(),
      ScoreMapError,
      "something already exists there; move or remove it and call commit() again",
    );
    assertEquals(await Deno.readTextFile(`${q}/mine.txt`), "keep me");
    await w4.append("a/1", mapNumber(1, 5, 3, 4, 1000));
    await w4.close();
    await assertRejects(
      () => w4.append("a/2", mapNumber(2, 5, 3, 4, 1000)),
      ScoreMapError,
      "finished",
    );
    const w5 = await ScoreMapStore.resume(q, { overwrite: true });
    assertEquals(w5.size, 2);
    await w5.commit();
    using q5 = await ScoreMapStore.open(q);
    assertEquals(await q5.keys(), ["a/0", "a/1"]);
    assert(!(await exists(`${q}/mine.txt`)), "replaced on request");
    // Not a store / nothing there.
    await Deno.mkdir(`${dir}/plain`);
    await assertRejects(
      () => ScoreMapStore.open(`${dir}/plain`),
      ScoreMapError,
      "is not a score-map store",
    );
    await assertRejects(
      () => ScoreMapStore.open(`${dir}/none`),
      ScoreMapError,
      "nothing is there",
    );
    await assertRejects(
      () => ScoreMapStore.resume(`${dir}/none`),
      ScoreMapError,
      "no interrupted write",
    );
  });
});

Deno.test("append refuses bad input and keeps going", async () => {
  await withTemp(async (dir) => {
    const w = await ScoreMapStore.create(
      `${dir}/s`,
      init({ k: 2, height: 2, width: 2, numClasses: 10 }),
    );
    const good = () => mapNumber(1, 2, 2, 2, 10);
    await w.append("a/1", good(), 1);
    const nan = good();
    nan.scores[5] = NaN;
    const far = good();
    far.ids[6] = 10;
    const big = good();
    big.scores[0] = 1e5;
    const cases: [string, ScoreMap, number | undefined, string][] = [
      [
        "a/2",
        mapNumber(1, 2, 2, 3, 10),
        1,
        "has k = 2, 2 x 3, but this store holds k = 2, 2 x 2",
      ],
      [
        "a/2",
        nan,
        1,
        'found NaN in cell (0, 1) (rank 1) of image "a/2" (record 1)',
      ],
      [
        "a/2",
        far,
        1,
        'found class 10 in cell (1, 0) (rank 1) of image "a/2" (record 1), but the dataset has 10 classes',
      ],
      ["a/2", big, 1, "largest finite value is 65504"],
      ["a/2", good(), 10, "has the label 10, expected an integer in [0, 10)"],
      ["a/2", good(), 1.5, "label 1.5"],
      [
        "a/2",
        good(),
        undefined,
        "has no label, but the earlier records have labels",
      ],
      ["a/1", good(), 1, 'the key "a/1" is already in the store'],
      ["a\n2", good(), 1, "line break"],
      ["", good(), 1, "non-empty string"],
    ];
    for (const [key, map, label, msg] of cases) {
      await assertRejects(() => w.append(key, map, label), ScoreMapError, msg);
    }
    await w.append("a/2", good(), 2);
    const h = await w.commit();
    assertEquals(h.count, 2);
    await assertRejects(
      () => ScoreMapStore.create(`${dir}/t`, init({ numClasses: 0 })),
      ScoreMapError,
      "numClasses",
    );
    await assertRejects(
      () =>
        ScoreMapStore.create(
          `${dir}/t`,
          init({ preprocessing: { mode: "crop" as "squash", size: 3 } }),
        ),
      ScoreMapError,
      'found mode "crop"',
    );
    await assertRejects(
      () =>
        ScoreMapStore.create(
          `${dir}/t`,
          init({ scores: "softmax" as "logits" }),
        ),
      ScoreMapError,
      '"logits", "probabilities" or "unknown"',
    );
    await assertRejects(
      () => ScoreMapStore.create(`${dir}/t`, init(), { flushEvery: 0 }),
      ScoreMapError,
      "flushEvery",
    );
  });
});

Deno.test("damaged stores are refused on open and on read, naming the record and the key", async () => {
  await withTemp(async (dir) => {
    const p = `${dir}/s`;
    await writeStore(p, 12);
    const header = JSON.parse(await Deno.readTextFile(`${p}/header.json`));
    const rb = header.record.bytes;
    // An id out of range in record 5.
    const data = await Deno.readFile(`${p}/maps.bin`);
    const bad = data.slice();
    new DataView(bad.buffer).setUint16(
      5 * rb + header.record.ids.offset + 2 * 4,
      999,
      true,
    );
    await Deno.writeFile(`${p}/maps.bin`, bad);
    {
      // Changed bytes fail the record's checksum first.
      using s = await ScoreMapStore.open(p);
      await assertRejects(
        () => s.read(5),
        ScoreMapError,
        'record 5 of maps.bin (key "c2/img_5") fails its checksum',
      );
    }
    // With a valid checksum (a writer's bug), the values are still checked.
    resignRecord(bad, rb, 5);
    await Deno.writeFile(`${p}/maps.bin`, bad);
    {
      using s = await ScoreMapStore.open(p);
      await s.read(4);
      await assertRejects(
        () => s.read(5),
        ScoreMapError,
        'record 5 (key "c2/img_5") holds class 999, but the store has 50 classes, in cell (1, 1) (rank 0)',
      );
      await assertRejects(
        () => s.readBatch([3, 4, 5]),
        ScoreMapError,
        "record 5",
      );
      using lax = await ScoreMapStore.open(p, { validate: false });
      assertEquals((await lax.read(5)).ids[4], 999);
    }
    // A NaN score.
    const nan = data.slice();
    new DataView(nan.buffer).setUint16(
      7 * rb + header.record.scores.offset + 2 * 3,
      0x7e00,
      true,
    );
    resignRecord(nan, rb, 7);
    await Deno.writeFile(`${p}/maps.bin`, nan);
    {
      using s = await ScoreMapStore.open(p);
      await assertRejects(
        () => s.read("c1/img_7"),
        ScoreMapError,
        'record 7 (key "c1/img_7") holds the score NaN in cell (1, 0) (rank 0)',
      );
    }
    // Truncated or padded data.
    await Deno.writeFile(`${p}/maps.bin`, data.subarray(0, data.length - 3));
    await assertRejects(
      () => ScoreMapStore.open(p),
      ScoreMapError,
      "found 1053 bytes (truncated",
    );
    await Deno.writeFile(`${p}/maps.bin`, data);
    // Header damage.
    const text = await Deno.readTextFile(`${p}/header.json`);
    const cases: [string, string][] = [
      ["{", "not valid JSON"],
      [
        signedHeader({ ...header, format: "other" }),
        "is not a score-map store",
      ],
      [signedHeader({ ...header, version: 3 }), "upgrade tokenlab"],
      // Any change without a new checksum is found by the checksum.
      [JSON.stringify({ ...header, count: 11 }), "the checksum of"],
      [signedHeader({ ...header, count: -1 }), "count"],
      [
        signedHeader({ ...header, record: { ...header.record, bytes: 8 } }),
        "record layout",
      ],
      [
        signedHeader({ ...header, k: 0 }),
        "expected k to be a positive integer",
      ],
      // Shapes that would allocate huge memory are refused before any read.
      [
        signedHeader({ ...header, height: 2 ** 32, width: 2 ** 32 }),
        "too large for a record",
      ],
      [signedHeader({ ...header, count: 13 }), "should hold 13 records"],
      [
        signedHeader({
          ...header,
          index: { ...header.index, keysBytes: 2 ** 60 },
        }),
        "expected index",
      ],
    ];
    for (const [h, msg] of cases) {
      await Deno.writeTextFile(`${p}/header.json`, h);
      await assertRejects(() => ScoreMapStore.open(p), ScoreMapError, msg);
    }
    await Deno.writeTextFile(`${p}/header.json`, text);
    await Deno.remove(`${p}/keys.offsets`);
    await assertRejects(
      () => ScoreMapStore.open(p),
      ScoreMapError,
      "cannot find keys.offsets",
    );
    await Deno.remove(`${p}/keys.sums`);
    await assertRejects(
      () => ScoreMapStore.open(p),
      ScoreMapError,
      "cannot find keys.",
    );
    await writeStore(`${dir}/t`, 3);
    using s = await ScoreMapStore.open(`${dir}/t`);
    s.close();
    await assertRejects(() => s.read(0), ScoreMapError, "is closed");
  });
});

Deno.test("checkStoreAgainst: class count, keys, preprocessing, map size", async () => {
  await withTemp(async (dir) => {
    await writeStore(`${dir}/s`, 9);
    using s = await ScoreMapStore.open(`${dir}/s`);
    const keys = await s.keys();
    await checkStoreAgainst(s, {
      numClasses: 50,
      keys: keys.slice(2),
      preprocessing: { mode: "resize-center-crop", size: 224, cropPct: 0.875 },
      mapSize: [3, 3],
    });
    await assertRejects(
      () => checkStoreAgainst(s, { numClasses: 1000 }),
      ScoreMapError,
      "was made for 50 classes, but the dataset has 1000",
    );
    await assertRejects(
      () => checkStoreAgainst(s, { keys: [...keys, "c9/new_1", "c9/new_2"] }),
      ScoreMapError,
      'lacks 2 of the dataset\'s 11 images ("c9/new_1", "c9/new_2")',
    );
    await assertRejects(
      () =>
        checkStoreAgainst(s, { preprocessing: { mode: "squash", size: 224 } }),
      ScoreMapError,
      'was made with preprocessing {"mode":"resize-center-crop","size":224,"cropPct":0.875}, but the training expects {"mode":"squash","size":224}',
    );
    await assertRejects(
      () => checkStoreAgainst(s, { mapSize: [14, 14] }),
      ScoreMapError,
      "holds 3 x 3 maps, but 14 x 14 are expected",
    );
  });
});

Deno.test("conversions: official root -> store -> official files", async () => {
  await withTemp(async (dir) => {
    const progress: number[] = [];
    const res = await officialToStore(ROOT, `${dir}/store`, {
      numClasses: 1000,
      annotator: "fixture",
      preprocessing: { mode: "resize-center-crop", size: 224, cropPct: 0.875 },
      scores: "logits",
      labels: "folders",
      concurrency: 2,
      onProgress: (done) => progress.push(done),
    });
    const keys = Object.keys(EXPECTED.maps).sort();
    assertEquals(res, { count: keys.length, skipped: 0 });
    assertEquals(progress, [2, 4, 5]);
    using s = await ScoreMapStore.open(`${dir}/store`);
    assertEquals(await s.keys(), keys);
    for (const [i, key] of keys.entries()) {
      const m = await s.read(key);
      const want = EXPECTED.maps[key];
      assertEquals(m.ids, Int32Array.from(want.ids));
      assertEquals(m.scores, viaHalf(Float32Array.from(want.scores)));
      assertEquals(await s.label(i), key.startsWith("n01440764") ? 0 : 1);
    }
    // Back to official files: generate_label.py's own bytes for its files.
    const out = await storeToOfficial(`${dir}/store`, `${dir}/official`);
    assertEquals(out.count, keys.length);
    assertEquals(await listOfficialMaps(`${dir}/official`), keys);
    for (const key of ["n01440764/img_1", "n01440764/img_12"]) {
      assertEquals(
        await Deno.readFile(`${dir}/official/${key}.pt`),
        await Deno.readFile(new URL(`${key}.pt`, ROOT)),
        key,
      );
    }
    for (const key of keys) {
      const m = await readOfficialMap(`${dir}/official/${key}.pt`);
      assertEquals(
        m.scores,
        viaHalf(Float32Array.from(EXPECTED.maps[key].scores)),
      );
    }
    await assertRejects(
      () => storeToOfficial(`${dir}/store`, `${dir}/official`),
      ScoreMapError,
      "already exists",
    );
    await storeToOfficial(`${dir}/store`, `${dir}/official`, {
      overwrite: true,
      dtype: "float32",
    });
    assertEquals(
      ((await readTorchFile(`${dir}/official/n01440764/img_1.pt`)) as RawTensor)
        .dtype,
      "float32",
    );
    // Round trip again: the same store, byte for byte.
    await officialToStore(`${dir}/official`, `${dir}/store2`, {
      numClasses: 1000,
      annotator: "fixture",
      preprocessing: { mode: "resize-center-crop", size: 224, cropPct: 0.875 },
      scores: "logits",
      labels: ["n01440764", "n01443537"],
    });
    await assertSameFolder(`${dir}/store`, `${dir}/store2`);
    // A resumed conversion gives the same store.
    const w = await ScoreMapStore.create(`${dir}/store3`, {
      ...init(),
      annotator: "fixture",
    });
    for (const key of keys.slice(0, 2)) {
      await w.append(key, await readOfficialMap(new URL(`${key}.pt`, ROOT)), 0);
    }
    await w.close();
    const resumed = await officialToStore(ROOT, `${dir}/store3`, {
      numClasses: 1000,
      annotator: "fixture",
      preprocessing: { mode: "resize-center-crop", size: 224, cropPct: 0.875 },
      scores: "logits",
      labels: "folders",
      resume: true,
    });
    assertEquals(resumed, { count: keys.length, skipped: 2 });
    await assertSameFolder(`${dir}/store`, `${dir}/store3`);
    // Refusals.
    await assertRejects(
      () =>
        officialToStore(ROOT, `${dir}/store4`, {
          numClasses: 1000,
          annotator: "fixture",
          preprocessing: { mode: "squash", size: 224 },
          scores: "logits",
          labels: ["n01440764"],
        }),
      ScoreMapError,
      'the folder "n01443537"',
    );
    await assertRejects(
      () =>
        officialToStore(ROOT, `${dir}/store4`, {
          numClasses: 100,
          annotator: "fixture",
          preprocessing: { mode: "squash", size: 224 },
          scores: "logits",
        }),
      ScoreMapError,
      "but the dataset has 100 classes",
    );
    assert(
      !(await exists(`${dir}/store4`)),
      "no store after a failed conversion",
    );
    // A new root appears whole or not at all.
    const wide = await ScoreMapStore.create(
      `${dir}/wide`,
      init({ k: 1, height: 1, width: 1, numClasses: 5000 }),
    );
    for (let i = 0; i < 70; i++) {
      const m = mapNumber(i, 1, 1, 1, 5000);
      m.ids[0] = i === 65 ? 4000 : i;
      await wide.append(`c/${i}`, m);
    }
    await wide.commit();
    await assertRejects(
      () => storeToOfficial(`${dir}/wide`, `${dir}/wide_official`),
      ScoreMapError,
      `cannot write ${dir}/wide_official/c/65.pt (image "c/65" of ${dir}/wide) as float16: found class 4000 in cell (0, 0) (rank 0)`,
    );
    const left = [];
    for await (const e of Deno.readDir(dir)) left.push(e.name);
    assert(
      !left.some((n) => n.startsWith("wide_official")),
      `left behind: ${left}`,
    );
    const f32 = await storeToOfficial(`${dir}/wide`, `${dir}/wide_official`, {
      dtype: "float32",
    });
    assertEquals(f32.count, 70);
    assertEquals(
      (await readOfficialMap(`${dir}/wide_official/c/65.pt`)).ids[0],
      4000,
    );
    const unsafe = await ScoreMapStore.create(`${dir}/unsafe`, init());
    await unsafe.append(
      "../escape",
      await readOfficialMap(new URL("n01440764/img_1.pt", ROOT)),
    );
    await unsafe.commit();
    await assertRejects(
      () => storeToOfficial(`${dir}/unsafe`, `${dir}/official2`),
      ScoreMapError,
      "is not a relative path",
    );
  });
});

Deno.test("speed: 10k ReLabel-sized maps convert in seconds; a batch of 128 reads in milliseconds", async () => {
  await withTemp(async (dir) => {
    const count = 10_000;
    const rng = new Rng(2);
    const base = Array.from(
      { length: 16 },
      () => randomMap(rng, 5, 15, 15, 1000),
    );
    let t = performance.now();
    const w = await ScoreMapStore.create(
      `${dir}/s`,
      init({ height: 15, width: 15 }),
      { flushEvery: 2000 },
    );
    for (let i = 0; i < count; i++) {
      await w.append(
        `n${String(i % 1000).padStart(8, "0")}/img_${i}`,
        base[i % 16],
        i % 1000,
      );
    }
    await w.commit();
    const build = performance.now() - t;
    t = performance.now();
    await storeToOfficial(`${dir}/s`, `${dir}/official`);
    const toOfficial = performance.now() - t;
    t = performance.now();
    await officialToStore(`${dir}/official`, `${dir}/s2`, {
      numClasses: 1000,
      annotator: "test annotator",
      preprocessing: { mode: "resize-center-crop", size: 224, cropPct: 0.875 },
      scores: "logits",
    });
    const toStore = performance.now() - t;
    const medians: Record<string, number> = {};
    for (const io of ["async", "sync"] as const) {
      using s = await ScoreMapStore.open(`${dir}/s`, { io });
      const times: number[] = [];
      for (let rep = 0; rep < 7; rep++) {
        const idx = Array.from({ length: 128 }, () => rng.int(count));
        t = performance.now();
        const b = await s.readBatch(idx);
        times.push(performance.now() - t);
        assertEquals(b.ids.length, 128 * 5 * 15 * 15);
        assertEquals(b.labels![0], idx[0] % 1000);
      }
      medians[io] = times.sort((a, b) => a - b)[3];
    }
    console.log(
      `  10k maps [2, 5, 15, 15]: append + commit ${
        (build / 1000).toFixed(2)
      } s, store -> official ${
        (toOfficial / 1000).toFixed(2)
      } s, official -> store ${
        (toStore / 1000).toFixed(2)
      } s; readBatch(128 random) median ${
        medians.async.toFixed(1)
      } ms (io "async"), ${medians.sync.toFixed(1)} ms (io "sync")`,
    );
    assert(toStore < 30_000, `official -> store took ${toStore} ms`);
    assert(medians.async < 50, `readBatch(128) took ${medians.async} ms`);
    assert(medians.sync < 50, `readBatch(128, sync) took ${medians.sync} ms`);
  });
});
