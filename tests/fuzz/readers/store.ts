/**
 * Fuzzing the score-map store reader: four valid stores (converted from the
 * official fixtures with labels; int32 ids with keys sharing long prefixes;
 * empty; the project's version-1 fixture, without checksums, drawn twice as
 * often), one of their files mutated per case: header.json as JSON or
 * bytes, maps.bin, keys.txt, keys.offsets, keys.sorted or keys.sums as bytes
 * (aimed at their offset, length and index fields), the count changed with
 * maps.bin resized to match, or a file gone. Version-2 checksums are
 * mostly brought up to date after the mutation, so that it reaches the
 * reader's bounds and order checks.
 *
 * @module
 */

import { ScoreMapError } from "../../../lib/labels/score_map.ts";
import {
  officialToStore,
  ScoreMapStore,
} from "../../../lib/labels/store/mod.ts";
import type { FuzzReader, MakeCase, SeedFile } from "../_reader.ts";
import { hostileFile, loadFiles, steps } from "../_reader.ts";
import { type FieldHint, mutateBytes, mutateJson, pick } from "../mutate.ts";
import { crc32 } from "node:zlib";

/** A store's files by name. */
type StoreSeed = { name: string; files: SeedFile[] };

const STORE = "store";
const MAX_READ = 40;

function hintsFor(
  name: string,
  bytes: Uint8Array,
  header: { version?: number; record?: { bytes?: number } },
): FieldHint[] {
  const hints: FieldHint[] = [];
  const v2 = header.version === 2;
  if (name === "keys.offsets") {
    for (let p = 0; p + 8 <= bytes.length; p += 8) {
      hints.push({ offset: p, width: 8 });
    }
  } else if (name === "keys.sorted") {
    const entry = v2 ? 64 : 48;
    for (let p = 0; p + entry <= bytes.length; p += entry) {
      hints.push({ offset: p, width: 4 }, { offset: p + 4, width: 4 }, {
        offset: p + 8,
        width: 8,
      });
    }
  } else if (name === "maps.bin") {
    const rec = header.record?.bytes;
    if (typeof rec === "number" && rec > 0) {
      for (let p = 0; p + 8 <= bytes.length; p += rec) {
        hints.push({ offset: p + (v2 ? 4 : 0), width: 4 });
      }
    }
  }
  return hints;
}

const BLOCK = 4096;

/**
 * Brings a version-2 store's checksums up to date after a mutation (as
 * re-zipping does for torch files), so that the mutation reaches the
 * reader's bounds and order checks instead of the first checksum: the
 * records' CRCs, keys.sums, index.keysBytes and the header's CRC, as the
 * format (lib/labels/store/format.ts, module doc) defines them. Leaves a
 * header that is not a JSON object as it is.
 */
function fixChecksums(files: SeedFile[], keysChanged: boolean): void {
  const get = (n: string) => files.find((f) => f.name === n);
  const headerFile = get("header.json");
  if (!headerFile) return;
  let text = new TextDecoder().decode(headerFile.bytes);
  let h: Record<string, unknown>;
  try {
    h = JSON.parse(text);
  } catch {
    return;
  }
  if (h === null || typeof h !== "object" || Array.isArray(h)) return;
  if (h.version !== 2) return;
  const rec = (h.record as { bytes?: unknown } | undefined)?.bytes;
  const maps = get("maps.bin");
  if (maps && typeof rec === "number" && Number.isInteger(rec) && rec >= 8) {
    const b = maps.bytes.slice();
    const v = new DataView(b.buffer);
    for (let i = 0; (i + 1) * rec <= b.length && i < 100_000; i++) {
      const both = new Uint8Array(8 + rec - 4);
      new DataView(both.buffer).setBigUint64(0, BigInt(i), true);
      both.set(b.subarray(i * rec + 4, (i + 1) * rec), 8);
      v.setUint32(i * rec, crc32(both) >>> 0, true);
    }
    maps.bytes = b;
  }
  const parts = ["keys.offsets", "keys.sorted", "keys.txt"].map((n) =>
    get(n)?.bytes ?? new Uint8Array()
  );
  const sums = get("keys.sums");
  if (sums) {
    const n = parts.reduce((k, p) => k + Math.ceil(p.length / BLOCK), 0);
    const out = new Uint8Array(4 * n);
    const v = new DataView(out.buffer);
    let at = 0;
    for (const p of parts) {
      for (let from = 0; from < p.length; from += BLOCK, at += 4) {
        v.setUint32(at, crc32(p.subarray(from, from + BLOCK)) >>> 0, true);
      }
    }
    sums.bytes = out;
  }
  const index = h.index as Record<string, unknown> | undefined;
  if (keysChanged && index !== null && typeof index === "object") {
    index.keysBytes = parts[2].length;
    text = JSON.stringify(h, null, 2);
  }
  // the header's CRC: of its compact JSON without the checksum field,
  // written into the (perhaps oddly spelled) text as the last field
  const { checksum: _, ...rest } = h;
  const sum = crc32(new TextEncoder().encode(JSON.stringify(rest))) >>> 0;
  const re = /"checksum"\s*:\s*-?[0-9.eE+-]+/g;
  text = re.test(text)
    ? text.replace(re, `"checksum": ${sum}`)
    : text.replace(/\}\s*$/, `, "checksum": ${sum}}`);
  headerFile.bytes = new TextEncoder().encode(text);
}

async function writeStore(dir: string, files: readonly SeedFile[]) {
  await Deno.mkdir(`${dir}/${STORE}`, { recursive: true });
  for (const f of files) {
    await Deno.writeFile(`${dir}/${STORE}/${f.name}`, f.bytes);
  }
}

const make: MakeCase<StoreSeed[]> = async (rng, seeds, dir) => {
  const seed = pick(rng, seeds);
  const files = seed.files.map((f) => ({ ...f }));
  const what = [`seed ${seed.name}`];
  const headerFile = files.find((f) => f.name === "header.json")!;
  const headerText = new TextDecoder().decode(headerFile.bytes);
  const header = JSON.parse(headerText);
  const r = rng.float();
  if (r < 0.3) {
    const m = mutateJson(rng, headerText);
    headerFile.bytes = new TextEncoder().encode(m.value);
    what.push("header.json:", ...m.what);
  } else if (r < 0.38) {
    const m = mutateBytes(rng, headerFile.bytes);
    headerFile.bytes = m.value;
    what.push("header.json bytes:", ...m.what);
  } else if (r < 0.85) {
    const others = files.filter((f) => f.name !== "header.json");
    const f = pick(rng, others);
    const m = mutateBytes(rng, f.bytes, {
      hints: hintsFor(f.name, f.bytes, header),
    });
    f.bytes = m.value;
    what.push(`${f.name}:`, ...m.what);
  } else if (r < 0.95) {
    // the count changed and maps.bin resized to match, so open() passes
    const count = pick(rng, [
      0,
      1,
      header.count - 1,
      header.count + 1,
      header.count * 3,
    ]);
    const bytes = Math.max(0, count) * header.record.bytes;
    const maps = files.find((f) => f.name === "maps.bin")!;
    const grown = new Uint8Array(bytes);
    grown.set(maps.bytes.subarray(0, Math.min(bytes, maps.bytes.length)));
    maps.bytes = grown;
    header.count = count;
    headerFile.bytes = new TextEncoder().encode(
      JSON.stringify(header, null, 2),
    );
    what.push(`count ${count}, maps.bin ${bytes} bytes`);
  } else {
    await writeStore(dir, files);
    const f = pick(rng, files);
    return [...what, await hostileFile(rng, `${dir}/${STORE}/${f.name}`)];
  }
  if (rng.float() < 0.8) {
    fixChecksums(files, what.some((w) => w.startsWith("keys.txt")));
    what.push("(checksums updated)");
  }
  await writeStore(dir, files);
  return what;
};

const own = [ScoreMapError] as const;

async function readAll(path: string, io: "async" | "sync") {
  using store = await ScoreMapStore.open(path, { io });
  const n = Math.min(store.size, MAX_READ);
  const keys: string[] = [];
  await steps(
    own,
    async () => keys.push(...(await store.keys()).slice(0, MAX_READ)),
    async () => {
      for (let i = 0; i < n; i++) {
        const key = await store.keyAt(i);
        await store.indexOf(key);
        await store.read(i);
        await store.label(i);
      }
    },
    async () => {
      for (const k of keys) await store.read(k);
    },
    () => store.readBatch(Array.from({ length: n }, (_, i) => i)),
    () => store.indexOf("no/such/key"),
  );
}

/** The store reader: open, then every key, record and label, by index and by key, one by one and as a batch. */
export const reader: FuzzReader<StoreSeed[]> = {
  own,
  async prepare(dir) {
    await Deno.mkdir(dir, { recursive: true });
    await officialToStore(
      new URL("../../fixtures/score_maps", import.meta.url),
      `${dir}/official`,
      {
        numClasses: 1000,
        annotator: "fixture",
        preprocessing: {
          mode: "resize-center-crop",
          size: 224,
          cropPct: 0.875,
        },
        scores: "logits",
        labels: "folders",
      },
    );
    const wide = await ScoreMapStore.create(`${dir}/wide`, {
      k: 2,
      height: 2,
      width: 3,
      numClasses: 70_000,
      annotator: "toy",
      preprocessing: { mode: "squash", size: 32 },
      scores: "probabilities",
    });
    const prefix = "a_class_folder_whose_name_is_long/image_";
    for (let i = 0; i < 6; i++) {
      await wide.append(`${prefix}${5 - i}${"é".repeat(i)}`, {
        k: 2,
        height: 2,
        width: 3,
        scores: new Float32Array(12).map((_, j) => (j + i) / 12),
        ids: new Int32Array(12).map((_, j) => 69_990 - j - i),
      });
    }
    await wide.commit();
    const empty = await ScoreMapStore.create(`${dir}/empty`, {
      k: 1,
      height: 1,
      width: 1,
      numClasses: 2,
      annotator: "none",
      preprocessing: { mode: "squash", size: 8 },
      scores: "unknown",
    });
    await empty.commit();
    // a version-1 store (no checksums: every mutation reaches the bounds
    // and order checks), as the project's fixture holds one
    const v1 = new URL("../../fixtures/score_map_store_v1/", import.meta.url);
    await Deno.mkdir(`${dir}/v1`);
    for await (const e of Deno.readDir(v1)) {
      await Deno.copyFile(new URL(e.name, v1), `${dir}/v1/${e.name}`);
    }
  },
  async load(dir) {
    const out: StoreSeed[] = [];
    for (const name of ["official", "wide", "empty", "v1", "v1"]) {
      out.push({ name, files: await loadFiles(`${dir}/${name}`) });
    }
    return out;
  },
  make,
  async run(dir) {
    const path = `${dir}/${STORE}`;
    await steps(own, () => readAll(path, "async"), () => readAll(path, "sync"));
  },
};
