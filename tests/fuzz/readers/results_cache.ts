/**
 * Fuzzing the report results cache: one stored result (version 2, with its
 * digest) written by `experiment()` itself in the child, and the same in the
 * version-1 form (no digest, refused by both stores), put in the cache, in
 * the frozen store, or in both with only the cache entry damaged; the whole file mutated as JSON or
 * bytes, or one part of it (value, provenance, config) mutated as JSON with
 * the digest mostly re-sealed, so mutations reach the field checks; or the
 * file gone, a folder, empty or a huge sparse file.
 *
 * Each case is read through `experiment()` with a compute function that
 * records whether it ran. A damaged cache entry is by design a miss with a
 * warning and a recompute: that case counts as the reader's own error
 * ({@linkcode DamagedEntry}, the warning as its message), as does an
 * `ExperimentError` (a damaged frozen entry). A stored value that differs
 * from the one written, from a file whose digest was not re-sealed, is a
 * wrong silent answer, and so is any result read from a version-1 file: a
 * defect ({@linkcode WrongValue}).
 *
 * @module
 */

import {
  canonicalJson,
  experiment,
  ExperimentError,
} from "../../../lib/report/cache.ts";
import type { Rng } from "../../../lib/random.ts";
import { type FuzzReader, hostileFile, hugeSparse } from "../_reader.ts";
import { DamagedEntry, sealOf, warnedField, WrongValue } from "./_damaged.ts";
import { mutateBytes, mutateJson, pick } from "../mutate.ts";

const NAME = "fuzz-result";
const CONFIG = { lr: 0.001, seeds: [1, 2, 3], data: "synthetic:size=16" };
const VALUE = { top1: 51.25, curve: [10.5, 30, 51.25], title: "arm ü" };

/** The check the report would give: the shape `compute` returns. */
function check(v: unknown): void {
  if (v === null || typeof v !== "object" || Array.isArray(v)) {
    throw new Error(`expected an object, found ${typeof v}`);
  }
  const o = v as Record<string, unknown>;
  if (typeof o.top1 !== "number" || !Array.isArray(o.curve)) {
    throw new Error("expected top1 (a number) and curve (a list)");
  }
}

/** The stored files as `experiment()` wrote them in this process. */
interface Seeds {
  /** The cache file's path under the cache folder. */
  cacheName: string;
  /** The frozen file's path under the frozen folder. */
  frozenName: string;
  /** The version-2 document (cache and frozen hold the same). */
  doc: Record<string, unknown>;
  /** The canonical JSON of the value written. */
  valueText: string;
}

/** The digest a stored file carries, over these fields. */
const SEALED = ["config", "format", "provenance", "value"];

/** The digest of a document's sealed fields (null when they are not JSON data). */
const seal = (doc: Record<string, unknown>) => sealOf(doc, SEALED);

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isDirectory) {
      out.push(
        ...(await walk(`${dir}/${e.name}`)).map((n) => `${e.name}/${n}`),
      );
    } else out.push(e.name);
  }
  return out;
}

async function load(): Promise<Seeds> {
  // Written here, not in prepare: the cache file is named by the code
  // version, which another edit of lib/ may change between processes.
  const tmp = await Deno.makeTempDir({ prefix: "tokenlab-fuzz-cache-" });
  try {
    await experiment(NAME, CONFIG, () => VALUE, {
      cacheDir: `${tmp}/cache`,
      frozenDir: `${tmp}/frozen`,
      freeze: true,
      refresh: false,
      onWarning: () => {},
    });
    const [cacheName] = await walk(`${tmp}/cache`);
    const [frozenName] = await walk(`${tmp}/frozen`);
    const doc = JSON.parse(
      await Deno.readTextFile(`${tmp}/cache/${cacheName}`),
    );
    // What differs from run to run (time, machine, git state) made the
    // same, so that a case is the same input whenever it is made.
    Object.assign(doc.provenance, {
      computedAt: "2026-01-02T03:04:05.678Z",
      seconds: 0.25,
      commit: "unknown",
      machine: "fuzz",
    });
    doc.sha256 = await seal(doc);
    return { cacheName, frozenName, doc, valueText: canonicalJson(VALUE) };
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

/** What a case wrote, for the check after reading it. */
interface Meta {
  /** Which stored file was mutated. */
  target: "cache" | "frozen";
  /** Whether its digest was brought up to date after the mutation. */
  sealed: boolean;
}

async function make(rng: Rng, seeds: Seeds, dir: string): Promise<string[]> {
  const where = pick(rng, ["cache", "cache", "frozen", "both"] as const);
  const target = where === "frozen" ? "frozen" : "cache";
  const cachePath = `${dir}/cache/${seeds.cacheName}`;
  const frozenPath = `${dir}/frozen/${seeds.frozenName}`;
  const path = target === "cache" ? cachePath : frozenPath;
  const doc: Record<string, unknown> = structuredClone(seeds.doc);
  const what = [`${where}`];
  if (rng.float() < 0.25) {
    // the version-1 form, written before results carried a digest (refused)
    doc.format = "tokenlab-result/1";
    delete doc.sha256;
    what.push("version 1");
  }
  const text = (d: unknown) => JSON.stringify(d, null, 1) + "\n";
  for (const p of [cachePath, frozenPath]) {
    await Deno.mkdir(p.slice(0, p.lastIndexOf("/")), { recursive: true });
  }
  if (where === "both") {
    await Deno.writeTextFile(frozenPath, text(seeds.doc));
  }
  let sealed = false;
  const r = rng.float();
  let out: string | Uint8Array;
  if (r < 0.5) {
    // one part mutated as JSON, the digest mostly re-sealed
    const part = pick(rng, ["value", "value", "provenance", "config"]);
    const m = mutateJson(rng, JSON.stringify(doc[part]));
    what.push(`${part}:`, ...m.what);
    // spliced into the file's text as mutated (a deep nesting is never
    // written out again by JSON.stringify)
    const spliced = { ...doc, [part]: "@@PART@@" };
    let parsed: unknown;
    try {
      parsed = JSON.parse(m.value);
    } catch {
      parsed = undefined;
    }
    if (
      parsed !== undefined && doc.format === "tokenlab-result/2" &&
      rng.float() < 0.8
    ) {
      const sum = await seal({ ...doc, [part]: parsed });
      if (sum !== null) {
        spliced.sha256 = sum;
        sealed = true;
        what.push("(digest re-sealed)");
      }
    }
    out = text(spliced).replace('"@@PART@@"', () => m.value);
  } else if (r < 0.75) {
    const m = mutateJson(rng, text(doc));
    what.push("file:", ...m.what);
    out = m.value;
  } else if (r < 0.92) {
    const m = mutateBytes(rng, new TextEncoder().encode(text(doc)));
    what.push("bytes:", ...m.what);
    out = m.value;
  } else if (r < 0.97) {
    what.push(await hostileFile(rng, path));
    out = "";
  } else {
    what.push(
      await hugeSparse(rng, path, new TextEncoder().encode(text(doc))),
    );
    out = "";
  }
  if (r < 0.92) {
    if (typeof out === "string") await Deno.writeTextFile(path, out);
    else await Deno.writeFile(path, out);
  }
  const meta: Meta = { target, sealed };
  await Deno.writeTextFile(`${dir}/meta.json`, JSON.stringify(meta));
  return what;
}

/** Whether the stored file at `path` says it is version 2 (so it carries a digest). */
async function isV2(path: string): Promise<boolean> {
  try {
    const doc = JSON.parse(await Deno.readTextFile(path));
    return doc?.format === "tokenlab-result/2";
  } catch {
    return false;
  }
}

let seeds: Seeds | undefined;

/** The results cache: `experiment()` over a mutated cache or frozen entry. */
export const reader: FuzzReader<Seeds> = {
  own: [ExperimentError, DamagedEntry],
  async prepare() {},
  async load() {
    seeds = await load();
    return seeds;
  },
  make,
  async run(dir) {
    const meta: Meta = JSON.parse(await Deno.readTextFile(`${dir}/meta.json`));
    const warnings: string[] = [];
    let ran = false;
    const r = await experiment(NAME, CONFIG, () => {
      ran = true;
      return VALUE;
    }, {
      cacheDir: `${dir}/cache`,
      frozenDir: `${dir}/frozen`,
      refresh: false,
      freeze: false,
      check,
      onWarning: (w) => warnings.push(w),
    });
    const got = canonicalJson(r.value);
    if (r.source === "computed" && (!ran || got !== seeds!.valueText)) {
      throw new WrongValue(`computed, but the value is ${got.slice(0, 200)}`);
    }
    const from = r.source === "cache"
      ? `${dir}/cache/${seeds!.cacheName}`
      : `${dir}/frozen/${seeds!.frozenName}`;
    if (r.source !== "computed" && !await isV2(from)) {
      throw new WrongValue(
        `a ${r.source} entry that is not version 2 (no digest) was used`,
      );
    }
    if (r.source !== "computed" && got !== seeds!.valueText) {
      const mutated = (r.source === "cache") === (meta.target === "cache");
      if (!mutated || !meta.sealed) {
        throw new WrongValue(
          `a ${r.source} entry whose digest was not re-sealed was returned as valid with another value: ${
            got.slice(0, 200)
          }`,
        );
      }
    }
    if (warnings.length > 0) {
      const [w] = warnings;
      if (!w.includes(`${dir}/cache/`)) {
        throw new WrongValue(`a warning that names no file: ${w}`);
      }
      throw new DamagedEntry(
        w,
        `cache entry warned about, field ${warnedField(w)}`,
      );
    }
  },
};
