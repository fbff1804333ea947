import {
  AblationError,
  annotatorStore,
  pairedDifference,
  runAblation,
  TableError,
  tQuantile975,
  trainArm,
  verdictOf,
} from "tokenlab";
import { assert, assertEquals, assertThrows } from "./_assert.ts";
import { tinyAnnotator } from "./_helpers.ts";

function assertAlmostEquals(actual: number, expected: number, tol: number) {
  assert(
    Math.abs(actual - expected) <= tol,
    `expected ${expected} within ${tol}, found ${actual}`,
  );
}

Deno.test("tQuantile975: table values and the large-df expansion", () => {
  // Independent values (R's qt(0.975, df)).
  assertAlmostEquals(tQuantile975(1), 12.7062, 1e-4);
  assertAlmostEquals(tQuantile975(4), 2.7764, 1e-4);
  assertAlmostEquals(tQuantile975(40), 2.021075, 2e-4);
  assertAlmostEquals(tQuantile975(120), 1.979930, 2e-4);
  assertThrows(() => tQuantile975(0), TableError, ">= 1");
});

Deno.test("pairedDifference: pairs by seed, t interval, unshared seeds dropped", () => {
  const d = pairedDifference(
    new Map([[1, 61], [2, 63], [3, 62], [9, 100]]),
    new Map([[1, 60], [2, 61], [3, 61], [7, 0]]),
  );
  assertEquals(d.n, 3);
  assertEquals(d.differences, [1, 2, 1]);
  // mean 4/3, sd sqrt(1/3), half = 4.3027 * sd / sqrt(3)
  const half = 4.302653 * Math.sqrt(1 / 3) / Math.sqrt(3);
  assertAlmostEquals(d.mean, 4 / 3, 1e-12);
  assertAlmostEquals(d.lo!, 4 / 3 - half, 1e-4);
  assertAlmostEquals(d.hi!, 4 / 3 + half, 1e-4);
  const one = pairedDifference(new Map([[1, 2]]), new Map([[1, 1]]));
  assertEquals([one.lo, one.hi, one.std], [null, null, null]);
  assertThrows(
    () => pairedDifference(new Map([[1, 2]]), new Map([[2, 1]])),
    TableError,
    "share no seed",
  );
});

Deno.test("verdictOf: the four outcomes", () => {
  const d = (xs: number[]) =>
    pairedDifference(
      new Map(xs.map((x, i) => [i, x])),
      new Map(xs.map((_, i) => [i, 0])),
    );
  assertEquals(verdictOf(d([1, 1.2, 0.9]), 0.9).kind, "reproduced");
  assertEquals(verdictOf(d([-1, -1.2, -0.9]), -1.4).kind, "reproduced");
  assertEquals(verdictOf(d([-1, -1.2, -0.9]), 0.9).kind, "not reproduced");
  assertEquals(verdictOf(d([1, -1, 0.5]), 0.9).kind, "inconclusive");
  assertEquals(verdictOf(d([1]), 0.9).kind, "inconclusive");
  const m = verdictOf(d([1, 1.2, 0.9]), null);
  assertEquals(m.kind, "measured only");
  assert(m.text.includes("gain"), m.text);
});

Deno.test("runAblation: grid, caching, table, figures and verdicts", async () => {
  const cache = await Deno.makeTempDir();
  let calls = 0;
  try {
    const ab = await runAblation({
      name: "ablation-test",
      arms: [
        {
          key: "a",
          label: "A",
          config: { g: 0 },
          published: { value: 79.8, source: "paper" },
        },
        {
          key: "b",
          label: "B",
          config: { g: 2 },
          published: { value: 80.7, source: "paper" },
        },
        { key: "c", label: "C", config: { g: -3 } },
      ],
      baseline: "a",
      seeds: [1, 2, 3],
      run: (c, seed) => {
        calls++;
        return Promise.resolve({
          value: 50 + c.g + 0.1 * seed * (c.g === 0 ? 1 : 0.5),
          curve: [{ epoch: 1, value: 10 + c.g }, { epoch: 2, value: 20 + c.g }],
          extra: { ema: 1 + c.g },
        });
      },
      extraColumns: [{ key: "ema", label: "EMA", unit: "%" }],
      experimentOptions: { cacheDir: cache, frozenDir: cache, refresh: false },
      setting: {
        dataset: "toy",
        real: false,
        model: "none",
        epochs: 2,
        scale: "tiny",
      },
    });
    assertEquals(calls, 9);
    // A second call reads every run back from the cache.
    const again = await runAblation({
      ...ab.options,
      run: () => Promise.reject(new Error("recomputed")),
    });
    assertEquals(again.compute().cached, 9);
    assertEquals(again.values("b"), ab.values("b"));
    assertEquals(ab.values("b"), [52.05, 52.1, 52.15]);
    assertEquals(ab.publishedEffect("b"), 0.9);
    assertEquals(ab.publishedEffect("c"), null);
    assertEquals(ab.verdict("b").kind, "reproduced");
    assertEquals(ab.verdict("c").kind, "measured only");
    const md = ab.table().toMarkdown();
    assert(md.includes("reproduced") && md.includes("+0.9"), md);
    assert(ab.verdictText().includes("**B**"));
    assertEquals(ab.effectFigure().figure.data.length, 3);
    assertEquals(ab.curvesFigure()!.figure.data.length, 3);
  } finally {
    await Deno.remove(cache, { recursive: true });
  }
});

Deno.test("runAblation: bad definitions are refused before anything runs", async () => {
  const base = {
    name: "x",
    arms: [{ key: "a", label: "A", config: {} }],
    baseline: "a",
    seeds: [1],
    run: () => Promise.reject(new Error("must not run")),
    setting: { dataset: "", real: false, model: "", epochs: 0, scale: "tiny" },
  };
  for (
    const [change, fact] of [
      [{ baseline: "z" }, "not an arm"],
      [{ seeds: [1, 1] }, "distinct"],
      [{ arms: [] }, "at least one arm"],
      [{ arms: [{ key: "a b", label: "", config: {} }] }, "a b"],
    ] as const
  ) {
    let err: unknown;
    try {
      await runAblation({ ...base, ...change } as never);
    } catch (e) {
      err = e;
    }
    assert(err instanceof AblationError, String(err));
    assert((err as Error).message.includes(fact), (err as Error).message);
  }
});

Deno.test({
  name:
    "annotatorStore: trains the annotator once; another head reuses its saved weights",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const cacheDir = await Deno.makeTempDir();
    try {
      const data = "synthetic:size=32,count=32,classes=4,seed=0";
      const source = tinyAnnotator(data);
      const a = await annotatorStore(source, data, 1, { cacheDir });
      assert(a.seconds > 0, "the first call trains");
      const header = JSON.parse(
        await Deno.readTextFile(`${a.store}/header.json`),
      );
      assertEquals(header.count, 32);
      const b = await annotatorStore({ ...source, head: "head" }, data, 1, {
        cacheDir,
      });
      assertEquals(b.seconds, 0);
      assertEquals(b.top1, a.top1);
      assert(b.store !== a.store, "each head has its own store");
      const again = await annotatorStore(source, data, 1, { cacheDir });
      assertEquals([again.store, again.seconds], [a.store, 0]);
    } finally {
      await Deno.remove(cacheDir, { recursive: true });
    }
  },
});

Deno.test("runAblation: arms compared against other arms (a grid of pairs)", async () => {
  const cache = await Deno.makeTempDir();
  try {
    const ab = await runAblation({
      name: "ablation-pairs",
      arms: [
        { key: "a", label: "A", config: { v: 10 } },
        { key: "a-tl", label: "A + TL", config: { v: 12 }, against: "a" },
        { key: "b", label: "B", config: { v: 20 }, reference: true },
        {
          key: "b-tl",
          label: "B + TL",
          config: { v: 19 },
          against: "b",
          published: { effect: 1.4, source: "paper" },
        },
      ],
      baseline: "a",
      seeds: [1, 2, 3],
      run: (c, seed) => Promise.resolve({ value: c.v + seed * 0.01 * c.v }),
      setting: {
        dataset: "toy",
        real: false,
        model: "none",
        epochs: 1,
        scale: "tiny",
      },
      experimentOptions: { cacheDir: cache, frozenDir: cache },
    });
    assertEquals(ab.reference("b-tl"), "b");
    assertEquals([
      ab.isCompared("a"),
      ab.isCompared("b"),
      ab.isCompared("b-tl"),
    ], [false, false, true]);
    // B + TL is below B on every seed: the published gain does not reproduce.
    assertEquals(ab.verdict("b-tl").kind, "not reproduced");
    assertEquals(ab.verdict("a-tl").kind, "measured only");
    const md = ab.table().toMarkdown();
    assert(md.includes("compared with"), md);
    assert(
      ab.summary("b-tl").startsWith("B + TL vs B: not reproduced"),
      ab.summary("b-tl"),
    );
    // Only the compared arms appear in the effect figure.
    const y = (ab.effectFigure().figure.data[0] as { y: string[] }).y;
    assertEquals(y, ["A + TL vs A", "B + TL vs B"]);
  } finally {
    await Deno.remove(cache, { recursive: true });
  }
});

Deno.test({
  name:
    "trainArm: a parsed data spec with token labels and a run without evaluation are refused, saying what to do",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const cacheDir = await Deno.makeTempDir();
    try {
      const e1 = await trainArm(
        {
          train: { data: { kind: "synthetic", options: { size: 32 } } },
          labels: { kind: "oracle", mapSize: 8 },
        },
        1,
        { cacheDir },
      ).then(() => null, (e) => e);
      assert(e1 instanceof AblationError, String(e1));
      assert(e1.message.includes("give train.data as text"), e1.message);
      const e2 = await trainArm(
        {
          train: {
            model: "lvvit_xs32",
            modelOverrides: {
              embedDim: 16,
              depth: 1,
              numHeads: 1,
              stemChannels: 4,
            },
            data: "synthetic:size=32,count=16,classes=4,seed=0",
            valData: false,
            batchSize: 16,
            epochs: 1,
            warmupEpochs: 0,
            cooldownEpochs: 0,
            backend: "cpu",
          },
        },
        1,
        { cacheDir },
      ).then(() => null, (e) => e);
      assert(e2 instanceof AblationError, String(e2));
      assert(e2.message.includes("valData"), e2.message);
    } finally {
      await Deno.remove(cacheDir, { recursive: true });
    }
  },
});
