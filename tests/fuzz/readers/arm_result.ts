/**
 * Fuzzing an annotator's `result.json` (lib/report/train_arm.ts): its reader
 * is internal, so cases go through `annotatorStore()`, which reads it first
 * and returns at once when it is valid and the annotator's store is there.
 * A damaged entry is by design trained again with a warning; the label
 * source here names a model that does not exist, so that training stops at
 * once with a `TrainConfigError` instead of running. Each case:
 * `result.json` mutated as JSON (its digest mostly re-sealed, so mutations
 * reach the field checks) or bytes, gone, a folder, empty or a huge sparse
 * file; or the weights changed with the store gone (the weights' digest
 * check).
 *
 * Outcomes: a warning then the stopped training is {@linkcode DamagedEntry}
 * (own); no warning and no `result.json` is a plain miss (success); a top-1
 * other than the one written, from a file whose digest was not re-sealed,
 * is {@linkcode WrongValue} (a defect).
 *
 * @module
 */

import { AblationError } from "../../../lib/report/ablation.ts";
import {
  type AnnotatorLabels,
  annotatorStore,
} from "../../../lib/report/train_arm.ts";
import { canonicalJson, codeVersion } from "../../../lib/report/cache.ts";
import { sha256Hex, sizedDigest } from "../../../lib/io/digest.ts";
import { TrainConfigError } from "../../../lib/train/config.ts";
import { Rng } from "../../../lib/random.ts";
import { type FuzzReader, hostileFile, hugeSparse } from "../_reader.ts";
import { DamagedEntry, sealOf, warnedField, WrongValue } from "./_damaged.ts";
import { mutateBytes, mutateJson, randomBytes } from "../mutate.ts";

const DATA = "synthetic:size=16,count=8,classes=2";
const SEED = 1;
/** A label source whose training stops at once (no such model). */
const SOURCE: AnnotatorLabels = {
  kind: "annotator",
  train: { data: DATA, model: "fuzz_no_such_model" },
};
const TOP1 = 42.5;

/** The valid entry, as the kit writes it, and where it goes. */
interface Seeds {
  /** The annotator's folder under the cache folder (`annotators/<digest>`). */
  folder: string;
  /** The store's folder name in it (`maps-<digest>`). */
  store: string;
  /** `result.json`'s fields without the digest. */
  fields: Record<string, unknown>;
  /** The weights file (any bytes: only their digest is checked). */
  weights: Uint8Array;
}

/** The digest a stored file carries, over these fields. */
const SEALED = ["format", "top1", "seconds", "title", "weights"];

/** The digest of a document's sealed fields (null when they are not JSON data). */
const seal = (doc: Record<string, unknown>) => sealOf(doc, SEALED);

async function resultText(fields: Record<string, unknown>): Promise<string> {
  return JSON.stringify({ ...fields, sha256: await seal(fields) }) + "\n";
}

async function writeEntry(
  seeds: Seeds,
  cache: string,
  result: string | Uint8Array | null,
  withStore = true,
): Promise<string> {
  const dir = `${cache}/${seeds.folder}`;
  await Deno.mkdir(dir, { recursive: true });
  if (withStore) {
    await Deno.mkdir(`${dir}/${seeds.store}`);
    await Deno.writeTextFile(`${dir}/${seeds.store}/header.json`, "{}\n");
  }
  await Deno.writeFile(`${dir}/model.safetensors`, seeds.weights);
  if (typeof result === "string") {
    await Deno.writeTextFile(`${dir}/result.json`, result);
  } else if (result !== null) {
    await Deno.writeFile(`${dir}/result.json`, result);
  }
  return `${dir}/result.json`;
}

/** Reads the entry in `cache` as a report would; the top-1 and the warnings. */
async function read(
  cache: string,
): Promise<{ top1: number | null; warnings: string[] }> {
  const warnings: string[] = [];
  try {
    const got = await annotatorStore(SOURCE, DATA, SEED, {
      cacheDir: cache,
      onWarning: (w) => warnings.push(w),
    });
    return { top1: got.top1, warnings };
  } catch (e) {
    if (!(e instanceof TrainConfigError)) throw e;
    return { top1: null, warnings };
  }
}

async function load(): Promise<Seeds> {
  // Written here, not in prepare: the folder names carry the code version.
  const tmp = await Deno.makeTempDir({ prefix: "tokenlab-fuzz-arm-" });
  try {
    await read(tmp);
    const names: string[] = [];
    for await (const e of Deno.readDir(`${tmp}/annotators`)) names.push(e.name);
    if (names.length !== 1) {
      throw new Error(`expected one annotator folder, found ${names}`);
    }
    const code = await codeVersion();
    const key = canonicalJson({ data: DATA, head: null, k: 5 }) + code;
    const weights = randomBytes(new Rng(7), 256);
    const seeds: Seeds = {
      folder: `annotators/${names[0]}`,
      store: `maps-${(await sha256Hex(key)).slice(0, 16)}`,
      fields: {
        format: "tokenlab-annotator/1",
        top1: TOP1,
        seconds: 3.25,
        title: "fuzz annotator ü",
        weights: await sizedDigest(weights),
      },
      weights,
    };
    // the valid entry must be read back as it is, without training
    const check = `${tmp}/check`;
    await writeEntry(seeds, check, await resultText(seeds.fields));
    const back = await read(check);
    if (back.top1 !== TOP1 || back.warnings.length > 0) {
      throw new Error(
        `the valid annotator entry was not read back (top-1 ${back.top1}, warnings ${back.warnings})`,
      );
    }
    return seeds;
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

async function make(rng: Rng, seeds: Seeds, dir: string): Promise<string[]> {
  const cache = `${dir}/cache`;
  const valid = await resultText(seeds.fields);
  const r = rng.float();
  let sealed = false;
  const what: string[] = [];
  if (r < 0.6) {
    const m = mutateJson(rng, valid);
    what.push("result.json:", ...m.what);
    let text = m.value;
    if (rng.float() < 0.8) {
      try {
        const doc = JSON.parse(m.value);
        const sum = doc !== null && typeof doc === "object"
          ? await seal(doc)
          : null;
        if (sum !== null) {
          text = JSON.stringify({ ...doc, sha256: sum });
          sealed = true;
          what.push("(digest re-sealed)");
        }
      } catch {
        // not JSON, or too deep to write again: as mutated
      }
    }
    await writeEntry(seeds, cache, text);
  } else if (r < 0.8) {
    const m = mutateBytes(rng, new TextEncoder().encode(valid));
    what.push("result.json bytes:", ...m.what);
    await writeEntry(seeds, cache, m.value);
  } else if (r < 0.9) {
    // the weights changed and the store gone: the weights' digest is checked
    const m = mutateBytes(rng, seeds.weights);
    const bytes = m.value.slice();
    if (canonicalJson([...bytes]) === canonicalJson([...seeds.weights])) {
      bytes[0] ^= 1;
    }
    await writeEntry({ ...seeds, weights: bytes }, cache, valid, false);
    what.push("weights:", ...m.what, "(store gone)");
  } else {
    const path = await writeEntry(seeds, cache, valid);
    what.push(
      r < 0.97
        ? await hostileFile(rng, path)
        : await hugeSparse(rng, path, new TextEncoder().encode(valid)),
    );
  }
  await Deno.writeTextFile(`${dir}/meta.json`, JSON.stringify({ sealed }));
  return what;
}

/** An annotator's result.json, read through annotatorStore. */
export const reader: FuzzReader<Seeds> = {
  own: [AblationError, DamagedEntry],
  async prepare() {},
  load,
  make,
  async run(dir) {
    const { sealed } = JSON.parse(await Deno.readTextFile(`${dir}/meta.json`));
    const { top1, warnings } = await read(`${dir}/cache`);
    if (top1 !== null && top1 !== TOP1 && !sealed) {
      throw new WrongValue(
        `a result.json whose digest was not re-sealed was read as valid with top-1 ${top1}`,
      );
    }
    if (warnings.length > 0) {
      const [w] = warnings;
      if (!w.includes(`${dir}/cache/`)) {
        throw new WrongValue(`a warning that names no file: ${w}`);
      }
      const field = w.startsWith("annotator weights")
        ? "(the weights' size or digest)"
        : warnedField(w);
      throw new DamagedEntry(w, `entry warned about, field ${field}`);
    }
  },
};
