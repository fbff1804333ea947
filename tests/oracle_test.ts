/**
 * The oracle annotator: class fractions against a brute-force per-pixel
 * computation on sizes that do not divide; the log scores reproduce the
 * target distribution after densifying and softmax (in JavaScript and
 * through label pooling); ties and fill ids; the scaled mode; errors; the
 * store it writes.
 */

import {
  assert,
  assertEquals,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "./_assert.ts";
import {
  classFractions,
  initBackend,
  oracleAnnotate,
  oracleScoreMap,
  poolLabels,
  Rng,
  ScoreMapError,
  ScoreMapStore,
  SyntheticScenes,
  tf,
} from "tokenlab";
import type { ClassMap } from "tokenlab";

const TMP = new URL("./.tmp-oracle/", import.meta.url).pathname;

/** A random class map with blocky regions (so cells hold several classes). */
function randomMap(
  rng: Rng,
  height: number,
  width: number,
  numClasses: number,
  background = 0.3,
): ClassMap {
  const data = new Int16Array(height * width);
  const block = 1 + rng.int(4);
  const ids: number[] = [];
  for (
    let i = 0;
    i < Math.ceil(height / block) * Math.ceil(width / block);
    i++
  ) {
    ids.push(rng.float() < background ? -1 : rng.int(numClasses));
  }
  const bw = Math.ceil(width / block);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      data[y * width + x] =
        ids[Math.floor(y / block) * bw + Math.floor(x / block)];
    }
  }
  return { width, height, data };
}

/** Fractions by brute force: float overlaps of each pixel with each cell. */
function bruteFractions(
  map: ClassMap,
  mh: number,
  mw: number,
  K: number,
): { f: number[][]; b: number[] } {
  const f: number[][] = [], b: number[] = [];
  const ch = map.height / mh, cw = map.width / mw;
  for (let r = 0; r < mh; r++) {
    for (let c = 0; c < mw; c++) {
      const fr = new Array(K).fill(0);
      let bg = 0;
      for (let y = 0; y < map.height; y++) {
        const oy = Math.max(
          0,
          Math.min(y + 1, (r + 1) * ch) - Math.max(y, r * ch),
        );
        if (oy <= 0) continue;
        for (let x = 0; x < map.width; x++) {
          const ox = Math.max(
            0,
            Math.min(x + 1, (c + 1) * cw) - Math.max(x, c * cw),
          );
          if (ox <= 0) continue;
          const id = map.data[y * map.width + x];
          if (id < 0) bg += oy * ox;
          else fr[id] += oy * ox;
        }
      }
      f.push(fr.map((v) => v / (ch * cw)));
      b.push(bg / (ch * cw));
    }
  }
  return { f, b };
}

/** The log mode's target distribution of a cell (module doc formula). */
function target(f: number[], b: number, K: number, eps: number): number[] {
  if (b >= 1 - 1e-12) return new Array(K).fill(1 / K);
  const beta = Math.max(b, K * eps);
  return f.map((v) => (1 - beta) * v / (1 - b) + beta / K);
}

function softmaxDense(
  map: {
    k: number;
    height: number;
    width: number;
    scores: Float32Array;
    ids: Int32Array;
  },
  cell: number,
  K: number,
): number[] {
  const logits = new Array(K).fill(0);
  const hw = map.height * map.width;
  for (let r = 0; r < map.k; r++) {
    logits[map.ids[r * hw + cell]] = map.scores[r * hw + cell];
  }
  const m = Math.max(...logits);
  const e = logits.map((v) => Math.exp(v - m));
  const z = e.reduce((a, v) => a + v, 0);
  return e.map((v) => v / z);
}

const SHAPES: [number, number, number | [number, number]][] = [
  [37, 37, [5, 7]],
  [32, 32, 14],
  [30, 45, [4, 9]],
  [17, 16, 3],
  [16, 16, 40], // cells smaller than pixels
  [23, 29, 1],
];

Deno.test("oracle: class fractions equal a brute-force per-pixel computation", () => {
  const rng = new Rng(1);
  for (const [h, w, size] of SHAPES) {
    for (let t = 0; t < 3; t++) {
      const K = 3 + rng.int(8);
      const map = randomMap(rng, h, w, K);
      const fr = classFractions(map, size, K);
      const [mh, mw] = typeof size === "number" ? [size, size] : size;
      assertEquals([fr.height, fr.width], [mh, mw]);
      const ref = bruteFractions(map, mh, mw, K);
      for (let cell = 0; cell < mh * mw; cell++) {
        let sum = fr.background[cell];
        assert(Math.abs(fr.background[cell] - ref.b[cell]) < 1e-9);
        for (let c = 0; c < K; c++) {
          const v = fr.fractions[cell * K + c];
          sum += v;
          assert(
            Math.abs(v - ref.f[cell][c]) < 1e-9,
            `${h}x${w} -> ${mh}x${mw}, cell ${cell}, class ${c}: ${v} vs ${
              ref.f[cell][c]
            }`,
          );
        }
        assert(Math.abs(sum - 1) < 1e-12);
      }
    }
  }
});

Deno.test("oracle: log scores and ids match the brute-force top-k", () => {
  const rng = new Rng(2);
  for (const [h, w, size] of SHAPES) {
    const K = 6, k = 3, eps = 1e-4;
    const map = randomMap(rng, h, w, K, 0.25);
    const om = oracleScoreMap(map, { mapSize: size, k, numClasses: K });
    const [mh, mw] = typeof size === "number" ? [size, size] : size;
    const ref = bruteFractions(map, mh, mw, K);
    const hw = mh * mw;
    for (let cell = 0; cell < hw; cell++) {
      const f = ref.f[cell], b = ref.b[cell];
      const p = target(f, b, K, eps);
      const pBase = b >= 1 - 1e-12 ? 1 / K : Math.max(b, K * eps) / K;
      const present = f.map((v, c) => [v, c]).filter(([v]) => v > 1e-12);
      // Equal areas (up to the brute force's float error) go to the lower id.
      present.sort((x, y) =>
        Math.abs(y[0] - x[0]) > 1e-9 ? y[0] - x[0] : x[1] - y[1]
      );
      const want: number[] = present.slice(0, k).map(([, c]) => c);
      for (let c = 0; want.length < k; c++) if (!want.includes(c)) want.push(c);
      const ids = [], scores = [];
      for (let r = 0; r < k; r++) {
        ids.push(om.ids[r * hw + cell]);
        scores.push(om.scores[r * hw + cell]);
      }
      assertEquals(ids, want, `cell ${cell}`);
      for (let r = 0; r < k; r++) {
        const c = ids[r];
        const s = f[c] > 1e-12 ? Math.log(p[c]) - Math.log(pBase) : 0;
        assert(Math.abs(scores[r] - s) < 1e-5 * Math.max(1, Math.abs(s)));
      }
    }
  }
});

Deno.test("oracle: softmax of the densified map reproduces the target when at most k classes are present", () => {
  const rng = new Rng(3);
  let checked = 0, full = 0, empty = 0;
  for (const K of [2, 5, 10, 100]) {
    for (const [h, w, size] of SHAPES) {
      const k = Math.min(K, 4);
      const map = randomMap(rng, h, w, Math.min(K, 6), 0.3);
      const om = oracleScoreMap(map, { mapSize: size, k, numClasses: K });
      const fr = classFractions(map, size, K);
      for (let cell = 0; cell < om.height * om.width; cell++) {
        const f = Array.from(fr.fractions.subarray(cell * K, (cell + 1) * K));
        const n = f.filter((v) => v > 0).length;
        if (n > k) continue;
        const b = fr.background[cell];
        const p = target(f, b, K, 1e-4);
        const q = softmaxDense(om, cell, K);
        for (let c = 0; c < K; c++) {
          assert(
            Math.abs(q[c] - p[c]) < 2e-6,
            `K ${K}, cell ${cell}, class ${c}: ${q[c]} vs ${p[c]}`,
          );
        }
        checked++;
        if (b === 0) full++;
        if (b === 1) empty++;
      }
    }
  }
  assert(
    checked > 500 && full > 20 && empty > 5,
    `${checked} ${full} ${empty}`,
  );
  // Where there is background, p_c = f_c + b / K exactly.
  const map: ClassMap = {
    width: 4,
    height: 1,
    data: new Int16Array([0, 0, 1, -1]),
  };
  const q = softmaxDense(
    oracleScoreMap(map, { mapSize: 1, k: 2, numClasses: 4 }),
    0,
    4,
  );
  const want = [0.5 + 0.0625, 0.25 + 0.0625, 0.0625, 0.0625];
  q.forEach((v, c) => assert(Math.abs(v - want[c]) < 1e-7, `${c}: ${v}`));
});

Deno.test("oracle: label pooling of a 1 x 1 oracle map gives the target distribution", async () => {
  await initBackend();
  const map: ClassMap = {
    width: 5,
    height: 3,
    data: new Int16Array([0, 0, 1, 1, -1, 0, 0, 1, 3, -1, 2, 2, 1, 3, -1]),
  };
  const K = 6;
  const om = oracleScoreMap(map, { mapSize: 1, k: 4, numClasses: K });
  const out = await poolLabels(om, [[0, 0, 1, 1]], {
    numClasses: K,
    tokenGrid: 1,
    smoothing: 0,
  });
  const got = await out.cls.data();
  tf.dispose(Object.values(out));
  const fr = classFractions(map, 1, K);
  const p = target(Array.from(fr.fractions), fr.background[0], K, 1e-4);
  for (let c = 0; c < K; c++) {
    assert(Math.abs(got[c] - p[c]) < 1e-5, `class ${c}: ${got[c]} vs ${p[c]}`);
  }
});

Deno.test("oracle: ties go to the lower id; fill ids are the lowest absent ones, distinct", () => {
  // Classes 4 and 2 cover equal areas, 7 less; background the rest.
  const map: ClassMap = {
    width: 6,
    height: 1,
    data: new Int16Array([4, 4, 2, 2, 7, -1]),
  };
  const om = oracleScoreMap(map, { mapSize: 1, k: 6, numClasses: 9 });
  assertEquals([...om.ids], [2, 4, 7, 0, 1, 3]);
  assertEquals(om.scores[0], om.scores[1]);
  assert(om.scores[1] > om.scores[2] && om.scores[2] > 0);
  assertEquals([...om.scores.subarray(3)], [0, 0, 0]);
  // An all-background cell: every score 0, ids 0..k-1.
  const bg = oracleScoreMap(
    { width: 2, height: 2, data: new Int16Array(4).fill(-1) },
    { mapSize: 1, k: 3, numClasses: 5 },
  );
  assertEquals([...bg.ids], [0, 1, 2]);
  assertEquals([...bg.scores], [0, 0, 0]);
  // Fully covered by one class: ln((1 - K eps) / eps) + ... = ln(p / eps).
  const one = oracleScoreMap(
    { width: 2, height: 2, data: new Int16Array(4).fill(1) },
    { mapSize: 1, k: 2, numClasses: 10, epsilon: 1e-3 },
  );
  assertEquals([...one.ids], [1, 0]);
  assert(Math.abs(one.scores[0] - Math.log((1 - 9e-3) / 1e-3)) < 1e-5);
});

Deno.test("oracle: the scaled mode stores scale x fraction", () => {
  const rng = new Rng(5);
  const map = randomMap(rng, 19, 23, 4);
  const om = oracleScoreMap(map, {
    mapSize: [3, 4],
    k: 4,
    numClasses: 4,
    mode: "scaled",
    scale: 7,
  });
  const fr = classFractions(map, [3, 4], 4);
  for (let cell = 0; cell < 12; cell++) {
    for (let r = 0; r < 4; r++) {
      const id = om.ids[r * 12 + cell];
      assert(
        Math.abs(om.scores[r * 12 + cell] - 7 * fr.fractions[cell * 4 + id]) <
          1e-5,
      );
    }
  }
});

Deno.test("oracle: bad options and class maps are refused, naming what is wrong", () => {
  const map: ClassMap = {
    width: 2,
    height: 2,
    data: new Int16Array([0, 1, -1, 2]),
  };
  const cases: [unknown, string[]][] = [
    [{ mapSize: 0, numClasses: 3 }, ['"mapSize"', "found 0"]],
    [{ mapSize: [2], numClasses: 3 }, ['"mapSize"', "found [2]"]],
    [{ mapSize: 2, numClasses: 0 }, ['"numClasses"', "found 0"]],
    [{ mapSize: 2, numClasses: 3, k: 4 }, [
      '"k"',
      "[1, numClasses = 3]",
      "found 4",
    ]],
    [{ mapSize: 2, numClasses: 3, k: 1, mode: "exp" }, [
      '"mode"',
      'found "exp"',
    ]],
    [{ mapSize: 2, numClasses: 3, k: 1, epsilon: 0.5 }, [
      '"epsilon"',
      "found 0.5",
    ]],
    [{ mapSize: 2, numClasses: 3, k: 1, scale: -1 }, ['"scale"', "found -1"]],
  ];
  for (const [opts, parts] of cases) {
    const e = assertThrows(
      () => oracleScoreMap(map, opts as never),
      ScoreMapError,
    );
    for (const p of parts) assertStringIncludes(e.message, p);
  }
  assertThrows(
    () => oracleScoreMap(map, { mapSize: 1, k: 1, numClasses: 2 }),
    ScoreMapError,
    "pixel (1, 1) holds class 2, expected -1 (background) or a class in [0, 2)",
  );
  assertThrows(
    () =>
      oracleScoreMap(
        { width: 3, height: 2, data: new Int16Array(4) },
        { mapSize: 1, k: 1, numClasses: 2 },
      ),
    ScoreMapError,
    "Int16Array of width * height = 6 ids, found 4 ids",
  );
});

Deno.test("oracle: oracleAnnotate writes a store that reads back", async () => {
  await Deno.mkdir(TMP, { recursive: true });
  try {
    const ds = new SyntheticScenes({ size: 37, count: 25, seed: 6 });
    const out = `${TMP}/maps`;
    let progress = 0;
    const { header } = await oracleAnnotate(ds, out, {
      mapSize: 5,
      k: 3,
      onProgress: (d) => progress = d,
    });
    assertEquals(progress, 25);
    assertEquals(header.count, 25);
    assertEquals(header.annotator, "oracle (log, epsilon 0.0001)");
    assertEquals(header.scores, "logits");
    assertEquals(header.preprocessing, { mode: "squash", size: 37 });
    assertEquals([header.k, header.height, header.width], [3, 5, 5]);
    assertEquals(header.numClasses, 10);
    using store = await ScoreMapStore.open(out);
    for (let i = 0; i < 25; i++) {
      const m = await store.read(ds.key(i));
      const want = oracleScoreMap(ds.classMap(i), {
        mapSize: 5,
        k: 3,
        numClasses: 10,
      });
      assertEquals([...m.ids], [...want.ids]);
      for (let j = 0; j < m.scores.length; j++) {
        assert(
          Math.abs(m.scores[j] - want.scores[j]) <=
            4e-3 * Math.max(1, want.scores[j]),
        );
      }
      assertEquals(await store.label(i), ds.label(i));
    }
    // An existing store is kept unless overwrite is given.
    await assertRejects(
      () => oracleAnnotate(ds, out, { mapSize: 5, k: 3 }),
      ScoreMapError,
    );
    const again = await oracleAnnotate(ds, out, {
      mapSize: [2, 3],
      k: 2,
      mode: "scaled",
      labels: false,
      overwrite: true,
    });
    assertEquals(again.header.annotator, "oracle (scaled, scale 10)");
    assertEquals(again.header.labels, false);
    assertEquals([again.header.height, again.header.width], [2, 3]);
    // Bad options fail before anything is created.
    await assertRejects(
      () => oracleAnnotate(ds, `${TMP}/bad`, { mapSize: 2, k: 11 }),
      ScoreMapError,
      '"k"',
    );
    assertEquals(await Deno.stat(`${TMP}/bad.partial`).catch(() => null), null);
  } finally {
    await Deno.remove(TMP, { recursive: true });
  }
});
