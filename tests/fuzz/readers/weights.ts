/**
 * Fuzzing weights loading (lib/models/weights.ts): the weights of a tiny
 * LV-ViT (saveWeights, with its tokenlab config in the metadata) and the same
 * without the config, mutated as safetensors files (bytes, header JSON with
 * its length kept right, random bytes, gone or a folder), or re-encoded with
 * the tensors changed consistently (a shape and its data, so the checks of
 * loadStateDict are reached: head classes, position-embedding grids,
 * missing, unexpected, `module.` prefixes) or the config metadata mutated
 * as JSON. Each case is loaded strictly and leniently into a model of the
 * seed's config built once per child on the cpu backend, then as a model
 * built from the file's own config (loadModel).
 *
 * @module
 */

import { CheckpointError } from "../../../lib/io/checkpoint_error.ts";
import {
  decodeSafetensors,
  encodeSafetensors,
} from "../../../lib/io/safetensors.ts";
import type { RawTensor } from "../../../lib/io/raw_tensor.ts";
import {
  loadModel,
  loadWeights,
  saveWeights,
  WeightsError,
} from "../../../lib/models/weights.ts";
import { createModel } from "../../../lib/models/registry.ts";
import type { TokenModel } from "../../../lib/models/model.ts";
import type { Rng } from "../../../lib/random.ts";
import { filesReader, type MakeCase, steps } from "../_reader.ts";
import { mutateJson, pick } from "../mutate.ts";
import { makeSafetensorsCase } from "./safetensors.ts";

const INPUT = "model.safetensors";
const CONFIG_KEY = "tokenlab.config";
const VARIANT = "lvvit_xs32";
const OVERRIDES = {
  embedDim: 16,
  depth: 1,
  numHeads: 2,
  stemChannels: 4,
  imgSize: 16,
  numClasses: 3,
};

async function backend(): Promise<void> {
  const { initBackend } = await import("../../../lib/backend.ts");
  await initBackend({ backend: "cpu" });
}

let model: TokenModel | undefined;

/** The model the cases load into (built once per child). */
async function target(): Promise<TokenModel> {
  if (model === undefined) {
    await backend();
    model = createModel(VARIANT, OVERRIDES, { seed: 1 });
  }
  return model;
}

/** A tensor of a new shape, its data float32 counting up (empty past 2^20 values). */
function shaped(shape: number[]): RawTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return {
    dtype: "float32",
    shape,
    data: new Float32Array(n <= 2 ** 20 ? n : 0).map((_, i) => i / 64),
  } as RawTensor;
}

/** The tensors changed consistently (shapes with their data); what was done. */
function changeTensors(
  rng: Rng,
  tensors: Map<string, RawTensor>,
): string {
  const names = [...tensors.keys()];
  const name = pick(rng, names);
  const t = tensors.get(name)!;
  const kind = pick(
    rng,
    [
      "head classes",
      "pos grid",
      "shape",
      "drop",
      "extra",
      "module prefix",
      "dtype",
    ] as const,
  );
  if (kind === "head classes") {
    const w = tensors.get("head.weight");
    const classes = pick(rng, [0, 1, 2, 1000]);
    if (w) tensors.set("head.weight", shaped([classes, ...w.shape.slice(1)]));
    tensors.set("head.bias", shaped([classes]));
    return `head: ${classes} classes`;
  }
  if (kind === "pos grid") {
    const p = tensors.get("pos_embed");
    const g = pick(rng, [0, 1, 3, 7, 31]);
    const dim = p?.shape.at(-1) ?? 16;
    tensors.set("pos_embed", shaped([1, 1 + g * g + rng.int(2), dim]));
    return `pos_embed: grid ${g}`;
  }
  if (kind === "shape") {
    const shape = t.shape.map((d) =>
      rng.float() < 0.5 ? d : pick(rng, [0, 1, d + 1, 2 * d])
    );
    if (rng.float() < 0.3) shape.push(1);
    tensors.set(name, shaped(shape));
    return `${name}: shape ${JSON.stringify(shape)}`;
  }
  if (kind === "drop") {
    tensors.delete(name);
    return `${name}: dropped`;
  }
  if (kind === "extra") {
    tensors.set(`${name}.extra`, shaped([2]));
    return `${name}.extra: added`;
  }
  if (kind === "module prefix") {
    const all = [...tensors];
    tensors.clear();
    const skip = rng.float() < 0.3 ? pick(rng, all)[0] : "";
    for (const [k, v] of all) tensors.set(k === skip ? k : `module.${k}`, v);
    return `module. prefix${skip ? ` (not on ${skip})` : ""}`;
  }
  const n = t.shape.reduce((a, b) => a * b, 1);
  const dtype = pick(rng, ["float64", "int64", "bool", "float16"] as const);
  const data = dtype === "float64"
    ? new Float64Array(n)
    : dtype === "int64"
    ? new BigInt64Array(n)
    : dtype === "bool"
    ? new Uint8Array(n)
    : new Uint16Array(n);
  tensors.set(name, { dtype, shape: t.shape, data } as RawTensor);
  return `${name}: as ${dtype}`;
}

const make: MakeCase = async (rng, seeds, dir) => {
  const path = `${dir}/${INPUT}`;
  const r = rng.float();
  if (r < 0.5) return await makeSafetensorsCase(rng, seeds, path);
  const seed = pick(rng, seeds);
  const { tensors, metadata } = decodeSafetensors(seed.bytes);
  const what = [`seed ${seed.name}`];
  const meta: Record<string, string> = { ...metadata };
  if (r < 0.8 || meta[CONFIG_KEY] === undefined) {
    what.push(changeTensors(rng, tensors));
    if (rng.float() < 0.3) what.push(changeTensors(rng, tensors));
  } else {
    const m = mutateJson(rng, meta[CONFIG_KEY]);
    meta[CONFIG_KEY] = m.value;
    what.push(`${CONFIG_KEY}:`, ...m.what);
  }
  await Deno.writeFile(path, encodeSafetensors(tensors, { metadata: meta }));
  return what;
};

const own = [WeightsError, CheckpointError] as const;

/** Weights loading: loadWeights (strict and not) into a built model, and loadModel from the file's config. */
export const reader = filesReader({
  own,
  async prepare(dir) {
    await backend();
    await Deno.mkdir(dir, { recursive: true });
    const m = createModel(VARIANT, OVERRIDES, { seed: 1 });
    try {
      await saveWeights(m, `${dir}/tokenlab.safetensors`);
      const { tensors } = decodeSafetensors(
        await Deno.readFile(`${dir}/tokenlab.safetensors`),
      );
      await Deno.writeFile(
        `${dir}/plain.safetensors`,
        encodeSafetensors(tensors, { metadata: { format: "pt" } }),
      );
    } finally {
      m.dispose();
    }
  },
  make,
  async run(dir) {
    const path = `${dir}/${INPUT}`;
    const into = await target();
    await steps(
      own,
      () => loadWeights(into, path),
      () => loadWeights(into, path, { strict: false }),
      async () => (await loadModel(path)).model.dispose(),
      async () =>
        (await loadModel(path, {
          model: VARIANT,
          overrides: { ...OVERRIDES, imgSize: 32 },
          strict: false,
        })).model.dispose(),
    );
  },
});
