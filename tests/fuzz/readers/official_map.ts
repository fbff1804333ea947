/**
 * Fuzzing the official score-map reader (TokenLabeling's and ReLabel's
 * torch-saved [2, k, H, W] maps): the fixtures (good, bad and ReLabel's) and
 * maps written by writeOfficialMap, mutated as torch files, plus the stored
 * values themselves (NaN, infinities, ids past float16's exact range).
 *
 * @module
 */

import {
  readOfficialMap,
  writeOfficialMap,
} from "../../../lib/labels/official_map.ts";
import { ScoreMapError } from "../../../lib/labels/score_map.ts";
import type { Rng } from "../../../lib/random.ts";
import { type FuzzReader, steps } from "../_reader.ts";
import { pick } from "../mutate.ts";
import {
  copyFixtures,
  INPUT,
  loadTorchSeeds,
  makeTorchCase,
  type TorchSeed,
} from "./torch.ts";

// float16 bit patterns: inf, -inf, NaN, 2048, 2049 (not exact), -1, 0.5, 65504, 1e-7 (subnormal)
const HALF_VALUES = [
  0x7c00,
  0xfc00,
  0x7e00,
  0x6800,
  0x6801,
  0xbc00,
  0x3800,
  0x7bff,
  0x0001,
];
// float32: inf, NaN, 1e9, -1, 0.5, 70000
const FLOAT_VALUES = [Infinity, NaN, 1e9, -1, 0.5, 70000, 2 ** 31];

/** Some values of a storage set to edge values, as float16 or float32 (drawn). */
function storageValues(rng: Rng, data: Uint8Array): Uint8Array | null {
  if (data.length < 2 || rng.float() < 0.4) return null;
  const out = data.slice();
  const v = new DataView(out.buffer);
  const half = rng.float() < 0.7 || data.length < 4;
  const n = 1 + rng.int(4);
  for (let i = 0; i < n; i++) {
    if (half) {
      v.setUint16(2 * rng.int(out.length >> 1), pick(rng, HALF_VALUES), true);
    } else {
      v.setFloat32(4 * rng.int(out.length >> 2), pick(rng, FLOAT_VALUES), true);
    }
  }
  return out;
}

const own = [ScoreMapError] as const;

/** The official map reader: readOfficialMap with and without a class count. */
export const reader: FuzzReader<TorchSeed[]> = {
  own,
  async prepare(dir) {
    const names: string[] = [];
    for (const sub of ["score_maps", "score_maps_bad", "score_maps_relabel"]) {
      const root = new URL(`../../fixtures/${sub}/`, import.meta.url);
      const walk = async (rel: string) => {
        for await (const e of Deno.readDir(new URL(rel, root))) {
          if (e.isDirectory) await walk(`${rel}${e.name}/`);
          else if (e.name.endsWith(".pt")) names.push(`${sub}/${rel}${e.name}`);
        }
      };
      await walk("");
    }
    await copyFixtures(dir, names.sort());
    await writeOfficialMap(`${dir}/w_f32.pt`, {
      k: 2,
      height: 1,
      width: 2,
      scores: new Float32Array([3, 1, 2, 0]),
      ids: new Int32Array([5, 999, 3, 4]),
    }, { dtype: "float32" });
    await writeOfficialMap(`${dir}/w_f16.pt`, {
      k: 1,
      height: 3,
      width: 3,
      scores: new Float32Array(9).fill(0.25),
      ids: new Int32Array(9).map((_, i) => i * 100),
    });
  },
  load: loadTorchSeeds,
  make: (rng, seeds, dir) =>
    makeTorchCase(rng, seeds, `${dir}/${INPUT}`, { storage: storageValues }),
  async run(dir) {
    const path = `${dir}/${INPUT}`;
    await steps(
      own,
      () => readOfficialMap(path, { numClasses: 1000 }),
      () => readOfficialMap(path, { allowInexactIds: true }),
    );
  },
};
