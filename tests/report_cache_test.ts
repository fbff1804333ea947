/**
 * The results cache: a miss computes and stores, a hit reads back without
 * computing, a changed config misses, refresh recomputes, frozen results
 * are used when the cache has none and say where they came from, and smoke
 * results are never frozen.
 */

import {
  assert,
  assertEquals,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "./_assert.ts";
import {
  canonicalJson,
  codeVersion,
  experiment,
  ExperimentError,
  sessionExperiments,
} from "../lib/report/cache.ts";
import { provenance } from "../lib/report/provenance.ts";
import { ROOT, sealed } from "./_helpers.ts";

async function dirs() {
  const root = await Deno.makeTempDir({
    dir: `${ROOT}tests`,
    prefix: ".tmp-cache-",
  });
  return {
    root,
    cacheDir: `${root}/cache`,
    frozenDir: `${root}/frozen`,
  };
}

async function files(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string, rel: string) => {
    try {
      for await (const e of Deno.readDir(d)) {
        if (e.isDirectory) await walk(`${d}/${e.name}`, `${rel}${e.name}/`);
        else out.push(`${rel}${e.name}`);
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  };
  await walk(dir, "");
  return out.sort();
}

Deno.test("cache: a miss computes and stores, a hit reads back, a new config misses, refresh recomputes", async () => {
  const d = await dirs();
  const opts = { cacheDir: d.cacheDir, frozenDir: d.frozenDir, freeze: false };
  try {
    let calls = 0;
    const compute = () => {
      calls++;
      return { top1: 51.25, curve: new Array(3).fill(0).map((_, i) => i / 2) };
    };
    const config = { seed: 3, epochs: 4, model: { depth: 2, embedDim: 64 } };
    const a = await experiment("toy", config, compute, opts);
    assertEquals([a.source, calls], ["computed", 1]);
    assertEquals(a.value, { top1: 51.25, curve: [0, 0.5, 1] });
    assertEquals(a.provenance.codeVersion, await codeVersion());
    assert(a.provenance.computedAt.endsWith("Z"));
    const stored = await files(d.cacheDir);
    assertEquals(stored.length, 1);
    assert(
      stored[0].startsWith(`toy/${a.provenance.configKey}-`),
      stored[0],
    );

    // The same config with its keys in another order is the same config.
    const b = await experiment(
      "toy",
      { model: { embedDim: 64, depth: 2 }, epochs: 4, seed: 3 },
      compute,
      opts,
    );
    assertEquals([b.source, calls], ["cache", 1]);
    assertEquals(b.value, a.value);
    assertEquals(b.provenance, a.provenance);

    const c = await experiment("toy", { ...config, seed: 4 }, compute, opts);
    assertEquals([c.source, calls], ["computed", 2]);
    assert(c.provenance.configKey !== a.provenance.configKey);

    const r = await experiment("toy", config, compute, {
      ...opts,
      refresh: true,
    });
    assertEquals([r.source, calls], ["computed", 3]);
    assertEquals(await files(d.frozenDir), []);
  } finally {
    await Deno.remove(d.root, { recursive: true });
  }
});

Deno.test("cache: a frozen result is used when the cache has none, with its provenance", async () => {
  const d = await dirs();
  try {
    let calls = 0;
    const compute = () => ({ top1: 40 + ++calls });
    const frozenRun = await experiment("full_run", { seed: 1 }, compute, {
      cacheDir: `${d.root}/other-cache`,
      frozenDir: d.frozenDir,
      freeze: true,
    });
    assertEquals(frozenRun.source, "computed");
    assertEquals((await files(d.frozenDir)).length, 1);

    // A clean clone: no cache, the frozen file only.
    const again = await experiment("full_run", { seed: 1 }, compute, {
      cacheDir: d.cacheDir,
      frozenDir: d.frozenDir,
      freeze: false,
    });
    assertEquals([again.source, calls], ["frozen", 1]);
    assertEquals(again.value, { top1: 41 });
    assertEquals(again.codeChanged, false);
    assertEquals(again.provenance.computedAt, frozenRun.provenance.computedAt);

    // The code moved on since: still used, and flagged. (The file is
    // written as older code would have, its digest made for it.)
    const path =
      `${d.frozenDir}/full_run/${frozenRun.provenance.configKey}.json`;
    const text = JSON.parse(await Deno.readTextFile(path));
    assertEquals(text.format, "tokenlab-result/2");
    text.provenance.codeVersion = "0000000000000000";
    await Deno.writeTextFile(path, JSON.stringify(await sealed(text)));
    const old = await experiment("full_run", { seed: 1 }, compute, {
      cacheDir: d.cacheDir,
      frozenDir: d.frozenDir,
      freeze: false,
    });
    assertEquals([old.source, old.codeChanged, calls], ["frozen", true, 1]);

    // The provenance footer says which numbers came from where.
    const footer = await provenance({ seeds: [1] });
    const md = footer.toMarkdown();
    assertStringIncludes(md, "experiment `full_run`: frozen run of");
    assertStringIncludes(md, "(the code has changed since)");
    assertStringIncludes(md, "seeds: 1");
    assert(sessionExperiments().length >= 3);

    // A damaged frozen file is an error that says what to do.
    await Deno.writeTextFile(path, "{not json");
    const e = await assertRejects(
      () =>
        experiment("full_run", { seed: 1 }, compute, {
          cacheDir: d.cacheDir,
          frozenDir: d.frozenDir,
          freeze: false,
        }),
      ExperimentError,
    );
    assertStringIncludes(e.message, "--refresh");
  } finally {
    await Deno.remove(d.root, { recursive: true });
  }
});

Deno.test("cache: smoke results are not frozen; names, configs and results must be JSON-safe", async () => {
  const d = await dirs();
  const opts = { cacheDir: d.cacheDir, frozenDir: d.frozenDir };
  const before = Deno.env.get("TOKENLAB_SCALE");
  try {
    Deno.env.set("TOKENLAB_SCALE", "smoke");
    const e = await assertRejects(
      () => experiment("s", {}, () => 1, { ...opts, freeze: true }),
      ExperimentError,
    );
    assertStringIncludes(e.message, "smoke scale");
    assertEquals(await files(d.frozenDir), []);
    await assertRejects(
      () => experiment("../escape", {}, () => 1, opts),
      ExperimentError,
    );
    const bad = await assertRejects(
      () => experiment("nan", { lr: NaN }, () => 1, opts),
      ExperimentError,
    );
    assertStringIncludes(bad.message, "$.lr");
    const typed = await assertRejects(
      () => experiment("typed", {}, () => ({ w: new Float32Array(2) }), opts),
      ExperimentError,
    );
    assertStringIncludes(typed.message, "Float32Array at $.w");
  } finally {
    if (before === undefined) Deno.env.delete("TOKENLAB_SCALE");
    else Deno.env.set("TOKENLAB_SCALE", before);
    await Deno.remove(d.root, { recursive: true });
  }
});

Deno.test("cache: canonical JSON sorts keys and drops undefined fields", () => {
  assertEquals(
    canonicalJson({ b: [1, { d: 2, c: undefined, a: "x" }], a: null }),
    '{"a":null,"b":[1,{"a":"x","d":2}]}',
  );
  assertThrows(() => canonicalJson({ f: () => 1 }), ExperimentError);
  assertThrows(() => canonicalJson([Infinity]), ExperimentError);
});
