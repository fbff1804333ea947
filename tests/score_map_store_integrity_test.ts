/**
 * A damaged score-map store must answer with the right map or a
 * ScoreMapError, never with another image's map (issue 20, items 6 and 7):
 * the review's edits reproduced, a seeded random-damage loop over every
 * store file, positions beyond the files, version-1 stores still read (and
 * upgraded), constant-time opening, and interrupted writes that hold no
 * records.
 */

import {
  assert,
  assertEquals,
  assertRejects,
  assertStringIncludes,
} from "./_assert.ts";
import {
  type ScoreMap,
  ScoreMapError,
  ScoreMapStore,
  type ScoreMapStoreInit,
  upgradeScoreMapStore,
} from "tokenlab/labels/mod.ts";
import { Rng } from "tokenlab/random.ts";
import { crc32 } from "node:zlib";

const N = 20;
const FILES = [
  "header.json",
  "maps.bin",
  "keys.txt",
  "keys.offsets",
  "keys.sorted",
  "keys.sums",
];

/** The review's keys, two of them long and sharing their first 40+ bytes. */
function keyOf(i: number): string {
  return i === 7 || i === 8 ? `a/${"long_name_".repeat(5)}${i}` : `a/${i}`;
}

/** Map i: values exact in float16, ids in [0, 10). */
function mapOf(i: number): ScoreMap {
  const scores = new Float32Array(8), ids = new Int32Array(8);
  for (let e = 0; e < 8; e++) {
    scores[e] = (i * 8 + e) / 4 - 3;
    ids[e] = (i * 3 + e) % 10;
  }
  return { k: 2, height: 2, width: 2, scores, ids };
}

const INIT: ScoreMapStoreInit = {
  k: 2,
  height: 2,
  width: 2,
  numClasses: 10,
  annotator: "integrity test",
  preprocessing: { mode: "squash", size: 16 },
  scores: "logits",
};

async function withTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "tokenlab-store-integrity-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function writeStore(path: string, count = N): Promise<void> {
  const w = await ScoreMapStore.create(path, INIT, { flushEvery: 7 });
  for (let i = 0; i < count; i++) await w.append(keyOf(i), mapOf(i), i % 10);
  await w.commit();
}

function sameMap(a: ScoreMap, i: number): boolean {
  const b = mapOf(i);
  return a.k === b.k && a.height === b.height && a.width === b.width &&
    a.scores.length === 8 && a.ids.length === 8 &&
    a.scores.every((x, e) => x === b.scores[e]) &&
    a.ids.every((x, e) => x === b.ids[e]);
}

/** CRC-32 of bytes (the writer's checksum, computed here by another route). */
function crc(bytes: Uint8Array): number {
  return crc32(bytes) >>> 0;
}

/** The keys.sorted entry (64 bytes) that points at record `i`. */
function entryOf(sorted: Uint8Array, i: number): number {
  const v = new DataView(sorted.buffer, sorted.byteOffset);
  for (let e = 0; e * 64 < sorted.length; e++) {
    if (v.getUint32(e * 64, true) === i) return e;
  }
  throw new Error(`no entry for record ${i}`);
}

/** Re-signs block 0 of an index file in keys.sums (section = blocks before it). */
async function resignBlock0(dir: string, file: string, section: number) {
  const bytes = await Deno.readFile(`${dir}/${file}`);
  const sums = await Deno.readFile(`${dir}/keys.sums`);
  new DataView(sums.buffer).setUint32(
    4 * section,
    crc(bytes.subarray(0, 4096)),
    true,
  );
  await Deno.writeFile(`${dir}/keys.sums`, sums);
}

Deno.test("the review's edit: a record number changed in keys.sorted never returns another image's map", async () => {
  await withTemp(async (dir) => {
    const p = `${dir}/s`;
    await writeStore(p);
    const sorted = await Deno.readFile(`${p}/keys.sorted`);
    const e = entryOf(sorted, 3);
    const bad = sorted.slice();
    new DataView(bad.buffer).setUint32(e * 64, 0, true); // "a/3" -> record 0
    await Deno.writeFile(`${p}/keys.sorted`, bad);
    {
      using s = await ScoreMapStore.open(p);
      assert(sameMap(await s.read(3), 3), "by index: untouched");
      const err = await assertRejects(
        () => s.read("a/3"),
        ScoreMapError,
        `score-map store ${p} is damaged: block 0 of keys.sorted`,
      );
      assertStringIncludes(err.message, 'looking up the key "a/3"');
      assertStringIncludes(err.message, "re-run the conversion or annotation");
      assert(sameMap(await s.read(0), 0));
    }
    // Even with the block's checksum forged, the key hashes catch it.
    await resignBlock0(p, "keys.sorted", 1);
    {
      using s = await ScoreMapStore.open(p);
      const err = await assertRejects(
        () => s.read("a/3"),
        ScoreMapError,
        `the key index sends the key "a/3"`,
      );
      assertStringIncludes(
        err.message,
        'record 0, which holds the map of another key (key "a/0")',
      );
      await assertRejects(() => s.label("a/3"), ScoreMapError, "another key");
      // The entry's own hash is checked too: an entry moved onto another key.
      const moved = sorted.slice();
      const e5 = entryOf(sorted, 5);
      moved.set(sorted.subarray(e5 * 64 + 16, e5 * 64 + 24), e * 64 + 16);
      await Deno.writeFile(`${p}/keys.sorted`, moved);
      await resignBlock0(p, "keys.sorted", 1);
    }
    using s = await ScoreMapStore.open(p);
    await assertRejects(
      () => s.read("a/3"),
      ScoreMapError,
      `keys.sorted entry ${e} holds a key hash that is not the hash of its key "a/3"`,
    );
  });
});

Deno.test("an offset of 2^64-1 in keys.offsets or keys.sorted is a ScoreMapError naming the file", async () => {
  await withTemp(async (dir) => {
    // Version 2: the block checksum finds it first; forged, the bound does.
    const p = `${dir}/s`;
    await writeStore(p);
    const offsets = await Deno.readFile(`${p}/keys.offsets`);
    const bad = offsets.slice();
    new DataView(bad.buffer).setBigUint64(8 * 3, 2n ** 64n - 1n, true);
    await Deno.writeFile(`${p}/keys.offsets`, bad);
    {
      using s = await ScoreMapStore.open(p);
      await assertRejects(
        () => s.keyAt(3),
        ScoreMapError,
        "block 0 of keys.offsets",
      );
    }
    await resignBlock0(p, "keys.offsets", 0);
    {
      using s = await ScoreMapStore.open(p);
      const e = await assertRejects(
        () => s.keyAt(3),
        ScoreMapError,
        "keys.offsets gives key 3's start as 18446744073709551615, beyond the",
      );
      assertStringIncludes(e.message, `score-map store ${p} is damaged`);
      assertEquals(await s.keyAt(5), "a/5");
    }
    // Version 1 (no checksums): the bounds alone.
    const v1 = `${dir}/v1`;
    await copyFixture(v1);
    const o1 = await Deno.readFile(`${v1}/keys.offsets`);
    new DataView(o1.buffer).setBigUint64(8 * 3, 2n ** 64n - 1n, true);
    await Deno.writeFile(`${v1}/keys.offsets`, o1);
    const s1 = await Deno.readFile(`${v1}/keys.sorted`);
    const view = new DataView(s1.buffer);
    for (let e = 0; e < N; e++) {
      if (view.getUint32(e * 48 + 4, true) > 32) {
        view.setBigUint64(e * 48 + 8, 2n ** 64n - 1n, true); // long keys' offsets
      }
    }
    await Deno.writeFile(`${v1}/keys.sorted`, s1);
    using s = await ScoreMapStore.open(v1, { onWarning: () => {} });
    await assertRejects(
      () => s.keyAt(3),
      ScoreMapError,
      "keys.offsets gives key 3's start as 18446744073709551615",
    );
    await assertRejects(
      () => s.read(keyOf(8)),
      ScoreMapError,
      "keys.sorted gives entry",
    );
    // Declared sizes that would allocate huge memory are refused on open
    // (a version-1 header has no checksum: the bounds alone).
    const header = JSON.parse(await Deno.readTextFile(`${v1}/header.json`));
    for (
      const [change, msg] of [
        [{ height: 2 ** 32, width: 2 ** 32 }, "too large for a record"],
        [{ k: 2 ** 40 }, "too large for a record"],
        [{ count: 2 ** 40 }, "count to be an integer in [0, 2^32)"],
        [{ count: 2 ** 31 }, "maps.bin should hold 2147483648 records"],
      ] as const
    ) {
      await Deno.writeTextFile(
        `${v1}/header.json`,
        JSON.stringify({ ...header, ...change }),
      );
      const e = await assertRejects(
        () => ScoreMapStore.open(v1, { onWarning: () => {} }),
        ScoreMapError,
        msg,
      );
      assertStringIncludes(e.message, v1);
    }
  });
});

async function copyFixture(to: string): Promise<void> {
  const from = new URL("./fixtures/score_map_store_v1/", import.meta.url);
  await Deno.mkdir(to);
  for (const f of FILES.filter((f) => f !== "keys.sums")) {
    await Deno.copyFile(new URL(f, from), `${to}/${f}`);
  }
}

Deno.test("a version-1 store (the committed fixture) is still read, with one warning, and upgrades in place", async () => {
  await withTemp(async (dir) => {
    const p = `${dir}/v1`;
    await copyFixture(p);
    const notes: string[] = [];
    {
      using s = await ScoreMapStore.open(p, {
        onWarning: (m) => notes.push(m),
      });
      assertEquals([s.header.version, s.size], [1, N]);
      for (let i = 0; i < N; i++) {
        assertEquals(await s.keyAt(i), keyOf(i));
        assertEquals(await s.indexOf(keyOf(i)), i);
        assert(sameMap(await s.read(keyOf(i)), i), `v1 map ${i} by key`);
        assert(sameMap(await s.read(i), i), `v1 map ${i}`);
        assertEquals(await s.label(keyOf(i)), i % 10);
      }
      assertEquals(await s.indexOf("a/20"), -1);
      assertEquals(await s.indexOf(`a/${"long_name_".repeat(5)}9`), -1);
      await s.verify();
    }
    using again = await ScoreMapStore.open(p, {
      onWarning: (m) => notes.push(m),
    });
    again.close();
    assertEquals(notes.length, 1, "warned once per store");
    assertStringIncludes(notes[0], "format version 1, which has no checksums");
    assertStringIncludes(notes[0], `upgradeScoreMapStore("${p}")`);

    assertEquals(await upgradeScoreMapStore(p), { from: 1, to: 2, count: N });
    // The upgrade writes what a version-2 writer writes for the same maps.
    await ScoreMapStore.create(`${dir}/fresh`, {
      ...INIT,
      annotator: "v1 fixture",
      createdBy: "tokenlab 0.1.0",
    }).then(async (w) => {
      for (let i = 0; i < N; i++) {
        await w.append(keyOf(i), mapOf(i), i % 10);
      }
      await w.commit();
    });
    for (const f of FILES) {
      assertEquals(
        await Deno.readFile(`${p}/${f}`),
        await Deno.readFile(`${dir}/fresh/${f}`),
        f,
      );
    }
    using up = await ScoreMapStore.open(p);
    assertEquals(up.header.version, 2);
    await up.verify();
    assert(sameMap(await up.read(keyOf(8)), 8));
    assertEquals(await upgradeScoreMapStore(p), { from: 2, to: 2, count: N });
  });
});

/** What a read gave: right, refused with ScoreMapError, wrong, or another exception. */
type Outcome = "right" | "refused" | "wrong" | "other";

async function outcome(
  fn: () => Promise<boolean>,
  others: string[],
): Promise<Outcome> {
  try {
    return (await fn()) ? "right" : "wrong";
  } catch (e) {
    if (e instanceof ScoreMapError) return "refused";
    others.push(`${(e as Error)?.name}: ${(e as Error)?.message}`);
    return "other";
  }
}

/** Damages `bytes` in one of five ways, chosen by `rng`. */
function damage(bytes: Uint8Array, rng: Rng): Uint8Array {
  const out = bytes.slice();
  const at = rng.int(Math.max(1, bytes.length));
  switch (rng.int(5)) {
    case 0: // one bit
      if (out.length > 0) out[at] ^= 1 << rng.int(8);
      return out;
    case 1: // one byte
      if (out.length > 0) out[at] = (out[at] + 1 + rng.int(255)) & 0xff;
      return out;
    case 2: // eight bytes, as a length or offset field would be
      for (let j = at; j < Math.min(out.length, at + 8); j++) {
        out[j] = rng.int(2) ? 0xff : rng.int(256);
      }
      return out;
    case 3: // truncated
      return out.subarray(0, rng.int(Math.max(1, bytes.length)));
    default: // extra bytes
      return new Uint8Array([...out, ...Array(1 + rng.int(8)).fill(0)]);
  }
}

/** A store to damage: its keys, maps and labels by record. */
interface Spec {
  count: number;
  init: ScoreMapStoreInit;
  key(i: number): string;
  same(map: ScoreMap, i: number): boolean;
  label(i: number): number;
}

const SMALL: Spec = {
  count: N,
  init: INIT,
  key: keyOf,
  same: sameMap,
  label: (i) => i % 10,
};

/** 400 records: keys.sorted spans 7 checksummed blocks; every map differs. */
const LARGE: Spec = {
  count: 400,
  init: { ...INIT, numClasses: 1000 },
  key: (i) => i % 50 === 7 ? `c/${"shared_prefix_".repeat(3)}${i}` : `c/${i}`,
  same: (m, i) =>
    m.k === 2 && m.height === 2 && m.width === 2 &&
    m.ids.every((x, e) => x === (i + 100 * e) % 1000) &&
    m.scores.every((x, e) => x === e - 3.5),
  label: (i) => i % 1000,
};

function largeMap(i: number): ScoreMap {
  const ids = Int32Array.from({ length: 8 }, (_, e) => (i + 100 * e) % 1000);
  const scores = Float32Array.from({ length: 8 }, (_, e) => e - 3.5);
  return { k: 2, height: 2, width: 2, scores, ids };
}

/**
 * Damages one file of a store at a time (`damages` times, seeded), opens it
 * and reads `sample` records by key and by index; returns the tallies.
 */
async function damageLoop(
  p: string,
  spec: Spec,
  damages: number,
  sample: number,
  rng: Rng,
): Promise<Record<Outcome, number> & { openRefused: number }> {
  const pristine = new Map<string, Uint8Array>();
  for (const f of FILES) pristine.set(f, await Deno.readFile(`${p}/${f}`));
  const count = { right: 0, refused: 0, wrong: 0, other: 0, openRefused: 0 };
  const others: string[] = [];
  const wrongs: string[] = [];
  for (let d = 0; d < damages; d++) {
    const f = FILES[rng.int(FILES.length)];
    await Deno.writeFile(`${p}/${f}`, damage(pristine.get(f)!, rng));
    const tally = (what: string, o: Outcome) => {
      count[o]++;
      if (o === "wrong") wrongs.push(`damage ${d} (${f}): ${what}`);
    };
    let store: ScoreMapStore | undefined;
    const opened = await outcome(async () => {
      store = await ScoreMapStore.open(p);
      return true;
    }, others);
    if (opened === "refused") count.openRefused++;
    if (opened === "other") count.other++;
    if (store) {
      const s = store;
      const picks = sample >= spec.count
        ? Array.from({ length: spec.count }, (_, i) => i)
        : Array.from({ length: sample }, () => rng.int(spec.count));
      for (const i of picks) {
        const key = spec.key(i);
        const run = async (what: string, fn: () => Promise<boolean>) =>
          tally(what, await outcome(fn, others));
        await run(`read ${key}`, async () => spec.same(await s.read(key), i));
        await run(`read ${i}`, async () => spec.same(await s.read(i), i));
        await run(`keyAt ${i}`, async () => (await s.keyAt(i)) === key);
        await run(`indexOf ${key}`, async () => (await s.indexOf(key)) === i);
        await run(
          `label ${key}`,
          async () => (await s.label(key)) === spec.label(i),
        );
      }
      tally(
        "indexOf absent",
        await outcome(async () => (await s.indexOf("a/999")) === -1, others),
      );
      s.close();
    }
    await Deno.writeFile(`${p}/${f}`, pristine.get(f)!);
  }
  assertEquals(wrongs, [], "wrong answers");
  assertEquals(others, [], "exceptions other than ScoreMapError");
  return count;
}

Deno.test("300 seeded random damages: every read is the original map or a ScoreMapError", async () => {
  await withTemp(async (dir) => {
    const p = `${dir}/s`;
    await writeStore(p);
    const c = await damageLoop(p, SMALL, 300, N, new Rng(20));
    console.log(
      `  20 keys, 300 damages: open refused ${c.openRefused}; reads right ${c.right}, refused ${c.refused}, wrong ${c.wrong}, other exceptions ${c.other}`,
    );
    // Not vacuous: damage was found, and undamaged parts still answered.
    assert(c.openRefused > 20 && c.refused > 500 && c.right > 5000);

    const q = `${dir}/large`;
    const w = await ScoreMapStore.create(q, LARGE.init, { flushEvery: 64 });
    for (let i = 0; i < LARGE.count; i++) {
      await w.append(LARGE.key(i), largeMap(i), LARGE.label(i));
    }
    await w.commit();
    const l = await damageLoop(q, LARGE, 80, 25, new Rng(22));
    console.log(
      `  400 keys, 80 damages: open refused ${l.openRefused}; reads right ${l.right}, refused ${l.refused}, wrong ${l.wrong}, other exceptions ${l.other}`,
    );
    assert(l.refused > 50 && l.right > 1000);
  });
});

Deno.test("random damages to a version-1 store: only ScoreMapError, never another exception", async () => {
  await withTemp(async (dir) => {
    const p = `${dir}/v1`;
    await copyFixture(p);
    const files = FILES.filter((f) => f !== "keys.sums");
    const pristine = new Map<string, Uint8Array>();
    for (const f of files) pristine.set(f, await Deno.readFile(`${p}/${f}`));
    const rng = new Rng(21);
    const others: string[] = [];
    let refused = 0;
    for (let d = 0; d < 120; d++) {
      const f = files[rng.int(files.length)];
      await Deno.writeFile(`${p}/${f}`, damage(pristine.get(f)!, rng));
      try {
        using s = await ScoreMapStore.open(p, { onWarning: () => {} });
        for (let i = 0; i < N; i++) {
          for (
            const read of [
              () => s.read(keyOf(i)),
              () => s.read(i),
              () => s.keyAt(i),
              () => s.label(i),
            ]
          ) {
            try {
              await read();
            } catch (e) {
              if (!(e instanceof ScoreMapError)) throw e;
              refused++;
            }
          }
        }
      } catch (e) {
        if (!(e instanceof ScoreMapError)) {
          others.push(`damage ${d} (${f}): ${(e as Error)?.message}`);
        } else refused++;
      }
      await Deno.writeFile(`${p}/${f}`, pristine.get(f)!);
    }
    assertEquals(others, []);
    assert(refused > 20, `only ${refused} refusals`);
  });
});

Deno.test("opening reads the header only, whatever the store's size", async () => {
  await withTemp(async (dir) => {
    await writeStore(`${dir}/small`, N);
    const w = await ScoreMapStore.create(`${dir}/big`, INIT, {
      flushEvery: 5000,
    });
    for (let i = 0; i < 5000; i++) {
      await w.append(`b/${i}`, mapOf(i % N), (i % N) % 10);
    }
    await w.commit();
    const opened = [];
    for (const name of ["small", "big"]) {
      using s = await ScoreMapStore.open(`${dir}/${name}`);
      const header = (await Deno.stat(`${dir}/${name}/header.json`)).size;
      assertEquals(s.stats, { reads: 1, bytesRead: header });
      opened.push(header);
    }
    // The headers differ only in their numbers' digits.
    assert(Math.abs(opened[0] - opened[1]) < 16, `${opened}`);
    // Index files of garbage (of the right sizes) do not matter to opening:
    // they are not read until used.
    for (const f of ["keys.txt", "keys.offsets", "keys.sorted", "keys.sums"]) {
      const size = (await Deno.stat(`${dir}/big/${f}`)).size;
      await Deno.writeFile(`${dir}/big/${f}`, new Uint8Array(size).fill(0xa5));
    }
    using s = await ScoreMapStore.open(`${dir}/big`);
    assert(sameMap(await s.read(4999), 4999 % N));
    await assertRejects(() => s.indexOf("b/7"), ScoreMapError, "keys.s");
    // A lookup reads a few blocks, not the index: 5000 keys are 79 blocks
    // of keys.sorted.
    using t = await ScoreMapStore.open(`${dir}/small`);
    assertEquals(await t.indexOf(keyOf(8)), 8);
    assert(t.stats.reads <= 1 + 4, `${t.stats.reads} reads`);
  });
});

Deno.test("an interrupted write holding no records (annotate --k 100 on 4 classes) does not block the corrected run", async () => {
  await withTemp(async (dir) => {
    const p = `${dir}/maps`;
    const wrong = { ...INIT, k: 100, numClasses: 4 };
    const right = { ...INIT, k: 4, numClasses: 4 };
    // The failed run: created, then died before any record.
    await ScoreMapStore.create(p, wrong);
    const notes: string[] = [];
    const w = await ScoreMapStore.resume(p, {
      header: right,
      onWarning: (m) => notes.push(m),
    });
    assertEquals([w.size, w.header.k], [0, 4]);
    assertEquals(notes.length, 1);
    assertStringIncludes(notes[0], "it holds no records");
    assertStringIncludes(notes[0], "k 100");
    const map4 = {
      k: 4,
      height: 2,
      width: 2,
      scores: new Float32Array(16),
      ids: new Int32Array(16),
    };
    await w.append("a/0", map4, 1);
    await w.close();
    // Holding a record, the other header is refused, naming the option.
    const e = await assertRejects(
      () => ScoreMapStore.resume(p, { header: wrong }),
      ScoreMapError,
      "(1 record) was started with k 4, but this run has k 100",
    );
    assertEquals(e.option, "overwrite");
    assertStringIncludes(e.message, "{ overwrite: true }");
    // The same header resumes it.
    const again = await ScoreMapStore.resume(p, { header: right });
    assertEquals(again.size, 1);
    await again.commit();
    using s = await ScoreMapStore.open(p);
    assertEquals(await s.label("a/0"), 1);
  });
});

Deno.test("an interrupted version-1 write holding records is refused with the option to start over", async () => {
  await withTemp(async (dir) => {
    const p = `${dir}/maps`;
    const partial = `${p}.partial`;
    await copyFixture(partial);
    const header = JSON.parse(
      await Deno.readTextFile(`${partial}/header.json`),
    );
    await Deno.writeTextFile(
      `${partial}/partial.json`,
      JSON.stringify({ ...header, count: 0, labels: false }),
    );
    for (const f of ["header.json", "keys.offsets", "keys.sorted"]) {
      await Deno.remove(`${partial}/${f}`);
    }
    await Deno.writeTextFile(
      `${partial}/progress.json`,
      JSON.stringify({ count: 20, dataBytes: 800, keysBytes: 190 }),
    );
    const init = {
      ...INIT,
      annotator: "v1 fixture",
      createdBy: "tokenlab 0.1.0",
    };
    const e = await assertRejects(
      () => ScoreMapStore.resume(p, { header: init }),
      ScoreMapError,
      "(20 records) was started by an older tokenlab in store format version 1",
    );
    assertEquals(e.option, "overwrite");
    // Without records, it is replaced by a version-2 write.
    await Deno.writeTextFile(
      `${partial}/progress.json`,
      JSON.stringify({ count: 0, dataBytes: 0, keysBytes: 0 }),
    );
    const w = await ScoreMapStore.resume(p, {
      header: init,
      onWarning: () => {},
    });
    assertEquals([w.size, w.header.version], [0, 2]);
    await w.abort();
  });
});

Deno.test("an index file replaced by a folder is a ScoreMapError on open, in both versions (found by deno task fuzz)", async () => {
  await withTemp(async (dir) => {
    await copyFixture(`${dir}/v1`);
    await writeStore(`${dir}/v2`);
    for (const store of [`${dir}/v1`, `${dir}/v2`]) {
      await Deno.remove(`${store}/keys.txt`);
      await Deno.mkdir(`${store}/keys.txt`);
      const e = await assertRejects(
        () => ScoreMapStore.open(store, { onWarning: () => {} }),
        ScoreMapError,
      );
      assertStringIncludes(
        e.message,
        "keys.txt should be a file, found a folder",
      );
      assertStringIncludes(e.message, store);
    }
  });
});
