/**
 * Synthetic scenes: determinism and random access, the class map against
 * the drawn pixels, the label rule, disjoint splits, every size and class
 * count, option errors, the cache file.
 */

import {
  assert,
  assertEquals,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "./_assert.ts";
import {
  cacheSyntheticScenes,
  DatasetError,
  openSyntheticCache,
  openTensorDataset,
  resolveSyntheticOptions,
  SYNTHETIC_DEFAULTS,
  SYNTHETIC_MAX_CLASSES,
  syntheticBackgroundChroma,
  syntheticClass,
  syntheticClassNames,
  SyntheticScenes,
  writeTensorDataset,
} from "tokenlab";

const TMP = new URL("./.tmp-synthetic/", import.meta.url).pathname;

function same(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function chroma(d: Uint8Array, q: number): number {
  const r = d[3 * q], g = d[3 * q + 1], b = d[3 * q + 2];
  return Math.max(r, g, b) - Math.min(r, g, b);
}

Deno.test("synthetic: the same options and seed give the same bytes; another seed differs", () => {
  for (const size of [32, 64]) {
    const a = new SyntheticScenes({ size, count: 20, seed: 7 });
    const b = new SyntheticScenes({ size, count: 20, seed: 7 });
    const c = new SyntheticScenes({ size, count: 20, seed: 8 });
    for (let i = 0; i < 20; i++) {
      const sa = a.render(i), sb = b.render(i), sc = c.render(i);
      assert(same(sa.image.data, sb.image.data), `image ${i} differs`);
      assert(same(sa.classMap.data, sb.classMap.data), `map ${i} differs`);
      assertEquals(sa.label, sb.label);
      assert(!same(sa.image.data, sc.image.data), `seed 8 image ${i} equal`);
    }
  }
});

Deno.test("synthetic: random access does not depend on order", async () => {
  const a = new SyntheticScenes({ count: 50, seed: 3 });
  const forward = [];
  for (let i = 0; i < 50; i++) forward.push((await a.image(i)).data);
  const b = new SyntheticScenes({ count: 50, seed: 3 });
  for (let i = 49; i >= 0; i -= 3) {
    assert(same((await b.image(i)).data, forward[i]), `image ${i}`);
  }
  // Asking for labels, keys and class maps first changes nothing either.
  const c = new SyntheticScenes({ count: 50, seed: 3 });
  c.key(17);
  c.classMap(4);
  assert(same(c.render(17).image.data, forward[17]));
  // A dataset's count does not change its images.
  const d = new SyntheticScenes({ count: 1000, seed: 3 });
  assert(same(d.render(9).image.data, forward[9]));
});

Deno.test("synthetic: the class map matches the drawn pixels", () => {
  for (const size of [32, 64, 37]) {
    const ds = new SyntheticScenes({ size, count: 40, seed: 1 });
    const noise = ds.options.noise;
    const bgMax = syntheticBackgroundChroma(noise);
    for (let i = 0; i < 40; i++) {
      const s = ds.render(i);
      const { data } = s.image, map = s.classMap.data, obj = s.objectMap;
      assertEquals(s.image.width, size);
      assertEquals(map.length, size * size);
      const visible = new Array(s.objects.length).fill(0);
      for (let q = 0; q < map.length; q++) {
        const j = obj[q];
        if (j < 0) {
          assertEquals(map[q], -1, `image ${i} pixel ${q}: background`);
          assert(
            chroma(data, q) <= bgMax,
            `image ${i} pixel ${q}: a background pixel is coloured (${
              chroma(data, q)
            } > ${bgMax})`,
          );
          continue;
        }
        const o = s.objects[j];
        visible[j]++;
        assertEquals(map[q], o.classId, `image ${i} pixel ${q}: class`);
        // Drawn in one of its object's two colours, up to the noise.
        const fits = o.palette.some((p) =>
          p.every((v, ch) => Math.abs(data[3 * q + ch] - v) <= noise)
        );
        assert(fits, `image ${i} pixel ${q}: not in its object's palette`);
        assert(
          chroma(data, q) > bgMax,
          `image ${i} pixel ${q}: an object pixel looks like background`,
        );
      }
      s.objects.forEach((o, j) => assertEquals(o.visiblePixels, visible[j]));
      // Every object pixel lies within the object's bounding circle.
      for (let q = 0; q < map.length; q++) {
        if (obj[q] < 0) continue;
        const o = s.objects[obj[q]];
        const d = Math.hypot(
          (q % size) + 0.5 - o.centre[0],
          Math.floor(q / size) + 0.5 - o.centre[1],
        );
        assert(d <= 1.25 * o.radius * Math.max(...o.stretch) + 1e-9);
      }
    }
  }
});

Deno.test("synthetic: without noise object pixels are exactly their palette colours", () => {
  const ds = new SyntheticScenes({ count: 10, noise: 0, size: 48 });
  for (let i = 0; i < 10; i++) {
    const s = ds.render(i);
    let dark = 0;
    for (let q = 0; q < s.objectMap.length; q++) {
      const j = s.objectMap[q];
      if (j < 0) continue;
      const px = [0, 1, 2].map((c) => s.image.data[3 * q + c]);
      const k = s.objects[j].palette.findIndex((p) => same(p, px));
      assert(k >= 0, `image ${i} pixel ${q}`);
      dark += k;
    }
    void dark;
  }
});

Deno.test("synthetic: the label is the class with the most pixels, ties to the lower id", () => {
  const ds = new SyntheticScenes({ count: 300, seed: 4, numClasses: 6 });
  let multi = 0;
  for (let i = 0; i < 300; i++) {
    const s = ds.render(i);
    const counts = new Array(6).fill(0);
    for (const c of s.classMap.data) if (c >= 0) counts[c]++;
    const best = Math.max(...counts);
    assert(best > 0, `image ${i} has no object pixel`);
    assertEquals(s.label, counts.indexOf(best), `image ${i}`);
    assertEquals(ds.label(i), s.label);
    if (new Set(s.objects.map((o) => o.classId)).size > 1) multi++;
  }
  assert(multi > 100, `only ${multi} scenes with several classes`);
  // One object per scene: the label is that object's class.
  const one = new SyntheticScenes({ count: 30, minObjects: 1, maxObjects: 1 });
  for (let i = 0; i < 30; i++) {
    const s = one.render(i);
    assertEquals(s.objects.length, 1);
    assertEquals(s.label, s.objects[0].classId);
  }
});

Deno.test("synthetic: train, val and test splits are disjoint; keys look like <class>/<stem>", () => {
  const opts = { count: 300, seed: 2 };
  const seen = new Set<string>();
  const keys = new Set<string>();
  for (const split of ["train", "val", "test"] as const) {
    const ds = new SyntheticScenes({ ...opts, split });
    for (let i = 0; i < 300; i++) {
      const h = Array.from(ds.render(i).image.data.subarray(0, 96)).join();
      assert(!seen.has(h), `${split} image ${i} also in another split`);
      seen.add(h);
      const key = ds.key(i);
      assertEquals(
        key,
        `${ds.classes[ds.label(i)]}/${split}_${String(i).padStart(6, "0")}`,
      );
      keys.add(key);
    }
  }
  assertEquals(keys.size, 900);
});

Deno.test("synthetic: classes are distinct combinations; up to 440", () => {
  const names = syntheticClassNames(SYNTHETIC_MAX_CLASSES);
  assertEquals(new Set(names).size, SYNTHETIC_MAX_CLASSES);
  const pairs = new Set(
    Array.from({ length: 88 }, (_, c) => {
      const s = syntheticClass(c);
      return `${s.shape}/${s.colour}`;
    }),
  );
  assertEquals(pairs.size, 88); // the first 88 differ in shape and colour
  const ten = Array.from({ length: 10 }, (_, c) => syntheticClass(c).shape);
  assertEquals(new Set(ten).size, 10);
  assertEquals(syntheticClass(0).name, "red_circle_plain");
  const ds = new SyntheticScenes({ numClasses: 50, count: 400 });
  const used = new Set<number>();
  for (let i = 0; i < 400; i++) {
    for (const o of ds.render(i).objects) used.add(o.classId);
  }
  assertEquals(used.size, 50);
  assertThrows(() => syntheticClass(440), RangeError, "[0, 440)");
});

Deno.test("synthetic: any size from 16 works (non-powers of two included)", () => {
  for (const size of [16, 17, 45, 100, 224]) {
    const ds = new SyntheticScenes({ size, count: 3 });
    for (let i = 0; i < 3; i++) {
      const s = ds.render(i);
      assertEquals(s.image.data.length, size * size * 3);
      assert(s.classMap.data.some((c) => c >= 0));
    }
  }
});

Deno.test("synthetic: without occlusion objects are placed apart", () => {
  const ds = new SyntheticScenes({
    count: 40,
    occlusion: false,
    minObjects: 3,
    maxObjects: 4,
    scale: [0.2, 0.4],
  });
  let total = 0;
  for (let i = 0; i < 40; i++) {
    const { objects } = ds.render(i);
    total += objects.length;
    assert(objects.length >= 1);
    for (let a = 0; a < objects.length; a++) {
      for (let b = 0; b < a; b++) {
        const oa = objects[a], ob = objects[b];
        const reach = (o: typeof oa) =>
          1.25 * o.radius * Math.max(...o.stretch);
        const d = Math.hypot(
          oa.centre[0] - ob.centre[0],
          oa.centre[1] - ob.centre[1],
        );
        assert(
          d > reach(oa) + reach(ob),
          `image ${i}: objects ${b}, ${a} overlap`,
        );
      }
    }
  }
  assert(total > 80, `only ${total} objects placed`);
});

Deno.test("synthetic: the ImageSource view reads [0, 1] floats", async () => {
  const ds = new SyntheticScenes({ count: 5, size: 16 });
  const x = await ds.read(1, 3);
  assertEquals(x.length, 3 * 16 * 16 * 3);
  const img = ds.render(2).image.data;
  for (let j = 0; j < img.length; j++) {
    assertEquals(x[16 * 16 * 3 + j], Math.fround(img[j] / 255));
  }
  await assertRejects(() => ds.read(3, 3), RangeError, "[3, 6)");
  assertThrows(() => ds.render(5), RangeError, "found 5");
  assertThrows(() => ds.render(-1), RangeError, "[0, 5)");
  await assertRejects(() => ds.image(1.5), RangeError, "found 1.5");
});

Deno.test("synthetic: bad options name the option, the expectation and what was found", () => {
  const cases: [Record<string, unknown>, string[]][] = [
    [{ size: 8 }, ['"size"', "[16,", "found 8"]],
    [{ size: 32.5 }, ['"size"', "integer", "found 32.5"]],
    [{ count: 0 }, ['"count"', "found 0"]],
    [{ numClasses: 441 }, ['"numClasses"', "[1, 440]", "found 441"]],
    [{ seed: "a" }, ['"seed"', 'found "a"']],
    [{ split: "dev" }, ['"split"', '"train", "val", "test"', 'found "dev"']],
    [{ minObjects: 3, maxObjects: 2 }, [
      '"maxObjects"',
      ">= minObjects (3)",
      "found 2",
    ]],
    [{ scale: [0.5, 0.2] }, ['"scale"', "min <= max", "found [0.5,0.2]"]],
    [{ scale: 0.5 }, ['"scale"', "found 0.5"]],
    [{ rotation: 270 }, ['"rotation"', "[0, 180]", "found 270"]],
    [{ aspectJitter: -1 }, ['"aspectJitter"', "found -1"]],
    [{ occlusion: "yes" }, ['"occlusion"', "true or false", 'found "yes"']],
    [{ background: 2 }, ['"background"', "[0, 1]", "found 2"]],
    [{ hueJitter: NaN }, ['"hueJitter"', "found NaN"]],
    [{ noise: 1.5 }, ['"noise"', "found 1.5"]],
    [{ colour: 3 }, ['unknown option "colour"', "numClasses"]],
  ];
  for (const [opts, parts] of cases) {
    const e = assertThrows(() => new SyntheticScenes(opts), RangeError);
    for (const p of parts) assertStringIncludes(e.message, p);
  }
  assertEquals(resolveSyntheticOptions({ size: undefined }).size, 32);
  assertEquals(resolveSyntheticOptions(), {
    ...SYNTHETIC_DEFAULTS,
    scale: [...SYNTHETIC_DEFAULTS.scale],
  });
});

Deno.test("synthetic: the cache file round-trips and is checked", async () => {
  await Deno.mkdir(TMP, { recursive: true });
  try {
    const opts = { count: 12, size: 24, seed: 9, numClasses: 7 };
    const ds = new SyntheticScenes(opts);
    const path = `${TMP}/c.safetensors`;
    await cacheSyntheticScenes(path, opts);
    const c = await openSyntheticCache(path, { expect: opts, verify: 12 });
    assertEquals(c.size, 12);
    assertEquals(c.options, ds.options);
    assertEquals([...c.classes], [...ds.classes]);
    for (let i = 0; i < 12; i++) {
      assert(same((await c.image(i)).data, ds.render(i).image.data));
      assert(same(c.classMap(i).data, ds.classMap(i).data));
      assertEquals(c.label(i), ds.label(i));
      assertEquals(c.key(i), ds.key(i));
    }
    assert(same(await c.read(2, 4), await ds.read(2, 4)));
    // A plain tensor dataset reader sees images, labels and keys.
    const plain = await openTensorDataset(path);
    assertEquals(plain.key(3), ds.key(3));
    assertEquals(plain.label(3), ds.label(3));
    // Expected options that differ are named.
    await assertRejects(
      () => openSyntheticCache(path, { expect: { ...opts, seed: 10 } }),
      DatasetError,
      "seed: expected 10, found 9",
    );
    // Not a cache: a plain tensor dataset, and random bytes.
    const other = `${TMP}/plain.safetensors`;
    await writeTensorDataset(other, {
      images: new Uint8Array(2 * 4 * 4 * 3),
      height: 4,
      width: 4,
    });
    await assertRejects(
      () => openSyntheticCache(other),
      DatasetError,
      'is not a synthetic-scenes cache: expected metadata format "tokenlab.synthetic-scenes"',
    );
    await Deno.writeFile(`${TMP}/junk`, new Uint8Array([1, 2, 3]));
    await assertRejects(
      () => openSyntheticCache(`${TMP}/junk`),
      DatasetError,
      "cannot read it as safetensors",
    );
    assertThrows(() => c.classMap(12), RangeError, "found 12");
  } finally {
    await Deno.remove(TMP, { recursive: true });
  }
});
