/**
 * Fuzzing the torch reader (`torch.save` files: ZIP archives of a pickle and
 * storages, legacy pickles, tar checkpoints): the real PyTorch-written
 * fixtures and files written by the torch writer, mutated as whole files, inside
 * their entries (re-zipped with valid CRCs so the pickle parser is reached),
 * or grown into huge sparse files.
 *
 * @module
 */

import {
  CheckpointError,
  encodeTorchTensor,
  readTorchFile,
  readTorchStateDict,
  TorchZip,
} from "../../../lib/io/torch/mod.ts";
import type { Rng } from "../../../lib/random.ts";
import type { FuzzReader, SeedFile } from "../_reader.ts";
import {
  hostileFile,
  hugeSparse,
  loadFiles,
  randomFile,
  steps,
} from "../_reader.ts";
import { mutateBytes, pick } from "../mutate.ts";
import { mutatePickle, pickleHints } from "../_pickle.ts";
import { storedZip, type ZipFile, zipHints } from "../_zip.ts";

const FIXTURES = new URL("../../fixtures/", import.meta.url);

/** A seed file and, when it is a ZIP archive, its entries. */
export interface TorchSeed extends SeedFile {
  /** The archive's entries (null for a legacy or tar file). */
  entries: ZipFile[] | null;
}

/** Copies fixture files (relative to tests/fixtures/) into `dir`. */
export async function copyFixtures(
  dir: string,
  names: readonly string[],
): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  for (const n of names) {
    await Deno.copyFile(
      new URL(n, FIXTURES),
      `${dir}/${n.replaceAll("/", "__")}`,
    );
  }
}

/** Loads seed files, with the entries of those that are ZIP archives. */
export async function loadTorchSeeds(dir: string): Promise<TorchSeed[]> {
  const out: TorchSeed[] = [];
  for (const f of await loadFiles(dir)) {
    let entries: ZipFile[] | null = null;
    if (f.bytes[0] === 0x50 && f.bytes[1] === 0x4b) {
      try {
        using zip = await TorchZip.open(`${dir}/${f.name}`);
        entries = [];
        for (const name of zip.names()) {
          entries.push({ name, data: await zip.read(name) });
        }
      } catch {
        entries = null; // a seed the reader refuses is still a seed as bytes
      }
    }
    out.push({ ...f, entries });
  }
  return out;
}

/** Mutates the entries of an archive: one entry's bytes, or the list itself. */
function mutateEntries(
  rng: Rng,
  entries: ZipFile[],
  storage: (rng: Rng, data: Uint8Array) => Uint8Array | null,
): { entries: ZipFile[]; what: string[] } {
  const out = entries.map((e) => ({ ...e }));
  const r = rng.float();
  if (r < 0.1) {
    // the list: an entry dropped, doubled or renamed
    const i = rng.int(out.length);
    const kind = rng.int(3);
    if (kind === 0) {
      const [gone] = out.splice(i, 1);
      return { entries: out, what: [`drop entry ${gone.name}`] };
    }
    if (kind === 1) {
      out.push({ ...out[i] });
      return { entries: out, what: [`duplicate entry ${out[i].name}`] };
    }
    const to = pick(rng, [
      "../x",
      "/abs",
      "archive/data/../../x",
      "",
      out[i].name + "x",
      out[i].name.replace(/[^/]*$/, "data.pkl"),
    ]);
    const what = `rename entry ${out[i].name} to ${to}`;
    out[i].name = to;
    return { entries: out, what: [what] };
  }
  const pkls = out.filter((e) => e.name.endsWith(".pkl"));
  const target = pkls.length > 0 && r < 0.75 ? pick(rng, pkls) : pick(rng, out);
  if (target.name.endsWith(".pkl")) {
    const m = rng.float() < 0.6
      ? mutatePickle(rng, target.data)
      : mutateBytes(rng, target.data, { hints: pickleHints(target.data) });
    target.data = m.value;
    return { entries: out, what: [`entry ${target.name}:`, ...m.what] };
  }
  const special = storage(rng, target.data);
  if (special !== null) {
    target.data = special;
    return { entries: out, what: [`entry ${target.name}: storage values`] };
  }
  const m = mutateBytes(rng, target.data);
  target.data = m.value;
  return { entries: out, what: [`entry ${target.name}:`, ...m.what] };
}

/** Options of {@linkcode makeTorchCase}. */
export interface TorchCaseOptions {
  /** A mutation of a storage's values (null: none, use bytes). */
  storage?: (rng: Rng, data: Uint8Array) => Uint8Array | null;
}

/** Writes one mutated torch file to `path`; returns what was done. */
export async function makeTorchCase(
  rng: Rng,
  seeds: readonly TorchSeed[],
  path: string,
  options: TorchCaseOptions = {},
): Promise<string[]> {
  const seed = pick(rng, seeds);
  const what = [`seed ${seed.name}`];
  const r = rng.float();
  if (r < 0.45 && seed.entries !== null && seed.entries.length > 0) {
    const zip64 = rng.float() < 0.3;
    const m = mutateEntries(rng, seed.entries, options.storage ?? (() => null));
    let bytes = storedZip(m.entries, { zip64 });
    const extra: string[] = [];
    if (rng.float() < 0.4) {
      // and the archive's own fields, now that the entries get through
      const b = mutateBytes(rng, bytes, { hints: zipHints(bytes), rounds: 1 });
      bytes = b.value;
      extra.push(...b.what);
    }
    await Deno.writeFile(path, bytes);
    return [
      ...what,
      zip64 ? "re-zipped (Zip64)" : "re-zipped",
      ...m.what,
      ...extra,
    ];
  }
  if (r < 0.9) {
    const isZip = seed.entries !== null;
    const hints = isZip ? zipHints(seed.bytes) : pickleHints(seed.bytes);
    const m = rng.float() < 0.2 && !isZip
      ? mutatePickle(rng, seed.bytes)
      : mutateBytes(rng, seed.bytes, { hints });
    await Deno.writeFile(path, m.value);
    return [...what, ...m.what];
  }
  if (r < 0.95) return await randomFile(rng, path, 2048);
  if (r < 0.98) return [...what, await hugeSparse(rng, path, seed.bytes)];
  return [await hostileFile(rng, path)];
}

/** A file name for the case whose extension the reader sees (.pt). */
export const INPUT = "input.pt";

function isZipFile(path: string): boolean {
  try {
    const f = Deno.openSync(path);
    try {
      const b = new Uint8Array(2);
      return f.readSync(b) === 2 && b[0] === 0x50 && b[1] === 0x4b;
    } finally {
      f.close();
    }
  } catch {
    return false;
  }
}

const own = [CheckpointError] as const;

/** The torch reader: TorchZip (every entry, CRC checked), readTorchFile (metadata and whole), readTorchStateDict. */
export const reader: FuzzReader<TorchSeed[]> = {
  own,
  async prepare(dir) {
    await copyFixtures(dir, [
      "torch/deflated.pth",
      "torch/legacy.pt",
      "torch/malicious.pt",
      "torch/malicious_inst.pt",
      "torch/missing_storage.pt",
      "torch/model_key.pth",
      "torch/module_prefix.pth",
      "torch/not_torch.zip",
      "torch/numpy_metric.pth",
      "torch/plain.pkl",
      "torch/protocol4.pt",
      "torch/real_tar.pth.tar",
      "torch/single_f16.pt",
      "torch/state_dict.pt",
      "torch/training_checkpoint.pth.tar",
      "lvvit_tiny_ckpt.pth.tar",
      "score_maps/n01440764/img_1.pt",
    ]);
    const written: [string, Uint8Array][] = [
      [
        "w_f32.pt",
        encodeTorchTensor({
          dtype: "float32",
          shape: [2, 3],
          data: new Float32Array([1, 2, 3, 4, 5, 6]),
        }),
      ],
      [
        "w_i64.pt",
        encodeTorchTensor({
          dtype: "int64",
          shape: [4],
          data: new BigInt64Array([1n, -2n, 3n, 2n ** 40n]),
        }),
      ],
      [
        "w_bool.pt",
        encodeTorchTensor({
          dtype: "bool",
          shape: [3],
          data: new Uint8Array([1, 0, 1]),
        }),
      ],
      [
        "w_scalar_f16.pt",
        encodeTorchTensor({
          dtype: "float16",
          shape: [],
          data: new Uint16Array([0x3c00]),
        }),
      ],
      [
        "w_bf16_permuted.pt",
        encodeTorchTensor({
          dtype: "bfloat16",
          shape: [2, 2, 3],
          data: new Uint16Array(12).map((_, i) => 0x3f80 + i),
        }, { memoryOrder: [0, 2, 1] }),
      ],
      [
        "w_empty_u8.pt",
        encodeTorchTensor({
          dtype: "uint8",
          shape: [0, 5],
          data: new Uint8Array(0),
        }),
      ],
    ];
    for (const [name, bytes] of written) {
      await Deno.writeFile(`${dir}/${name}`, bytes);
    }
  },
  load: loadTorchSeeds,
  make: (rng, seeds, dir) => makeTorchCase(rng, seeds, `${dir}/${INPUT}`),
  async run(dir) {
    const path = `${dir}/${INPUT}`;
    await steps(
      own,
      async () => {
        if (!isZipFile(path)) return;
        using zip = await TorchZip.open(path);
        for (const name of zip.names()) await zip.read(name, { verify: true });
      },
      () => readTorchFile(path, { metadataOnly: true }),
      async () => {
        // a state dict is asked of dicts only: a tensor file refused as
        // one says nothing about the reader
        if (await readTorchFile(path) instanceof Map) {
          await readTorchStateDict(path);
        }
      },
    );
  },
};
