/**
 * Fuzzing the safetensors reader: the fixture and files written by
 * encodeSafetensors, mutated as bytes (the 8-byte header length first), or
 * in their JSON header (rewritten with its length kept right, so the
 * header's checks are reached).
 *
 * @module
 */

import { CheckpointError } from "../../../lib/io/checkpoint_error.ts";
import {
  decodeSafetensors,
  encodeSafetensors,
  readSafetensors,
} from "../../../lib/io/safetensors.ts";
import type { Rng } from "../../../lib/random.ts";
import {
  filesReader,
  hostileFile,
  randomFile,
  readOrNull,
  type SeedFile,
  steps,
} from "../_reader.ts";
import { type FieldHint, mutateBytes, mutateJson, pick } from "../mutate.ts";
import { copyFixtures } from "./torch.ts";

const INPUT = "input.safetensors";

/** The header length and header text of safetensors bytes (null when they are not that). */
function split(b: Uint8Array): { header: string; body: Uint8Array } | null {
  if (b.length < 8) return null;
  const n = Number(
    new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true),
  );
  if (8 + n > b.length) return null;
  return {
    header: new TextDecoder().decode(b.subarray(8, 8 + n)),
    body: b.subarray(8 + n),
  };
}

/** Safetensors bytes from a header text and the data after it (the length right, or off by a drawn amount). */
function join(rng: Rng, header: string, body: Uint8Array): Uint8Array {
  let h = new TextEncoder().encode(header);
  if (rng.float() < 0.5) {
    // padded with spaces to 8 bytes, as the reference writer does
    const pad = (8 - (h.length % 8)) % 8;
    const p = new Uint8Array(h.length + pad).fill(0x20);
    p.set(h);
    h = p;
  }
  const out = new Uint8Array(8 + h.length + body.length);
  const len = rng.float() < 0.9 ? h.length : h.length + pick(rng, [-1, 1, 8]);
  new DataView(out.buffer).setBigUint64(0, BigInt(Math.max(0, len)), true);
  out.set(h, 8);
  out.set(body, 8 + h.length);
  return out;
}

/** Writes one mutated safetensors file to `path`; returns what was done. */
export async function makeSafetensorsCase(
  rng: Rng,
  seeds: readonly SeedFile[],
  path: string,
): Promise<string[]> {
  const seed = pick(rng, seeds);
  const what = [`seed ${seed.name}`];
  const parts = split(seed.bytes);
  const r = rng.float();
  if (r < 0.45 && parts !== null) {
    const m = mutateJson(rng, parts.header.trimEnd());
    await Deno.writeFile(path, join(rng, m.value, parts.body));
    return [...what, "header:", ...m.what];
  }
  if (r < 0.92) {
    const hints: FieldHint[] = [{ offset: 0, width: 8 }, {
      offset: 0,
      width: 4,
    }];
    const m = mutateBytes(rng, seed.bytes, { hints });
    await Deno.writeFile(path, m.value);
    return [...what, ...m.what];
  }
  if (r < 0.97) return await randomFile(rng, path, 512);
  return [await hostileFile(rng, path)];
}

const own = [CheckpointError] as const;

/** The safetensors reader: readSafetensors (a file) and decodeSafetensors (bytes). */
export const reader = filesReader({
  own,
  async prepare(dir) {
    await copyFixtures(dir, ["safetensors/hand.safetensors"]);
    const write = (name: string, bytes: Uint8Array) =>
      Deno.writeFile(`${dir}/${name}`, bytes);
    await write(
      "dtypes.safetensors",
      encodeSafetensors({
        f64: { dtype: "float64", shape: [2], data: new Float64Array([1, -2]) },
        f16: { dtype: "float16", shape: [1, 2], data: new Uint16Array([1, 2]) },
        bf16: { dtype: "bfloat16", shape: [2], data: new Uint16Array([3, 4]) },
        i8: { dtype: "int8", shape: [3], data: new Int8Array([-1, 0, 1]) },
        i16: { dtype: "int16", shape: [1], data: new Int16Array([7]) },
        i32: { dtype: "int32", shape: [2], data: new Int32Array([1, 2]) },
        i64: {
          dtype: "int64",
          shape: [1],
          data: new BigInt64Array([-(2n ** 62n)]),
        },
        b: { dtype: "bool", shape: [2], data: new Uint8Array([1, 0]) },
        u8: { dtype: "uint8", shape: [0], data: new Uint8Array(0) },
        s: { dtype: "float32", shape: [], data: new Float32Array([0.5]) },
      }, { metadata: { format: "pt", note: "x" } }),
    );
    await write(
      "empty.safetensors",
      encodeSafetensors(new Map(), { metadata: { format: "pt" } }),
    );
    await write(
      "matrix.safetensors",
      encodeSafetensors({
        "blocks.0.attn.qkv.weight": {
          dtype: "float32",
          shape: [24, 8],
          data: new Float32Array(192).map((_, i) => i / 7),
        },
        "naïve/ключ": {
          dtype: "float32",
          shape: [3],
          data: new Float32Array(3),
        },
      }),
    );
  },
  make: (rng, seeds, dir) => makeSafetensorsCase(rng, seeds, `${dir}/${INPUT}`),
  async run(dir) {
    const path = `${dir}/${INPUT}`;
    const bytes = await readOrNull(path);
    await steps(
      own,
      () => readSafetensors(path),
      () => bytes === null ? undefined : decodeSafetensors(bytes),
    );
  },
});
