/**
 * Fuzzing the checkpoint reader: one real checkpoint folder (a one-step
 * training of a tiny model on the cpu backend, made once per run), with
 * state.json mutated as JSON or bytes, a tensor file mutated with its digest
 * in state.json brought up to date (so the safetensors reader is reached) or
 * not, or a file gone or replaced by a folder.
 *
 * @module
 */

import { CheckpointError } from "../../../lib/io/checkpoint_error.ts";
import { readSafetensors } from "../../../lib/io/safetensors.ts";
import { sha256Hex } from "../../../lib/io/digest.ts";
import {
  readCheckpoint,
  RunFolderError,
} from "../../../lib/train/checkpoint.ts";
import {
  filesReader,
  hostileFile,
  type MakeCase,
  readOrNull,
  steps,
} from "../_reader.ts";
import { mutateBytes, mutateJson, pick } from "../mutate.ts";
import { makeSafetensorsCase } from "./safetensors.ts";

const FOLDER = "step-00000001";
const TENSOR_FILES = [
  "model.safetensors",
  "ema.safetensors",
  "optimizer.safetensors",
];

const make: MakeCase = async (rng, seeds, dir) => {
  const folder = `${dir}/${FOLDER}`;
  await Deno.mkdir(folder, { recursive: true });
  const files = new Map(seeds.map((f) => [f.name, f.bytes]));
  const stateText = new TextDecoder().decode(files.get("state.json")!);
  const what: string[] = [];
  const r = rng.float();
  if (r < 0.45) {
    const m = mutateJson(rng, stateText);
    files.set("state.json", new TextEncoder().encode(m.value));
    what.push("state.json:", ...m.what);
  } else if (r < 0.55) {
    const m = mutateBytes(rng, files.get("state.json")!);
    files.set("state.json", m.value);
    what.push("state.json bytes:", ...m.what);
  } else if (r < 0.9) {
    const name = pick(rng, TENSOR_FILES);
    const tmp = `${dir}/tensor.tmp`;
    const m = await makeSafetensorsCase(
      rng,
      [{ name, bytes: files.get(name)! }],
      tmp,
    );
    // (empty when the mutation made a folder or nothing)
    const bytes = await readOrNull(tmp) ?? new Uint8Array();
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    files.set(name, bytes);
    what.push(`${name}:`, ...m);
    if (r < 0.8) {
      // the digest brought up to date, so readCheckpoint lets it through
      const state = JSON.parse(stateText);
      state.files[name] = {
        bytes: bytes.length,
        sha256: await sha256Hex(bytes),
      };
      files.set(
        "state.json",
        new TextEncoder().encode(JSON.stringify(state, null, 2) + "\n"),
      );
      what.push("(digest updated)");
    }
  } else {
    for (const [name, bytes] of files) {
      await Deno.writeFile(`${folder}/${name}`, bytes);
    }
    const name = pick(rng, [...files.keys()]);
    return [await hostileFile(rng, `${folder}/${name}`)];
  }
  if (files.has("state.sha256") && rng.float() < 0.85) {
    // state.json's own digest brought up to date, so the state is parsed
    const sum = await sha256Hex(files.get("state.json")!);
    files.set("state.sha256", new TextEncoder().encode(`${sum}  state.json\n`));
    what.push("(state.sha256 updated)");
  }
  for (const [name, bytes] of files) {
    await Deno.writeFile(`${folder}/${name}`, bytes);
  }
  return what;
};

const own = [RunFolderError, CheckpointError] as const;

/** The checkpoint reader: readCheckpoint (state.json and the digests), then each tensor file it lists, as a resume reads them. */
export const reader = filesReader({
  own,
  async prepare(dir) {
    const { train } = await import("../../../lib/train/engine.ts");
    const out = await Deno.makeTempDir({ prefix: "tokenlab-fuzz-run-" });
    try {
      const run = await train({
        model: "lvvit_xs32",
        modelOverrides: {
          embedDim: 16,
          depth: 1,
          numHeads: 2,
          stemChannels: 4,
        },
        imgSize: 16,
        data: "synthetic:size=16,count=8,classes=2",
        valData: false,
        batchSize: 8,
        epochs: 1,
        warmupEpochs: 0,
        cooldownEpochs: 0,
        checkpointEvery: 1,
        logEvery: 1,
        modelEma: true,
        output: out,
        backend: "cpu",
      }, { live: false });
      run.dispose();
      const names: string[] = [];
      for await (const e of Deno.readDir(`${out}/checkpoints`)) {
        if (e.isDirectory && e.name.startsWith("step-")) names.push(e.name);
      }
      names.sort();
      const from = `${out}/checkpoints/${names.at(-1)}`;
      await Deno.mkdir(dir, { recursive: true });
      for await (const e of Deno.readDir(from)) {
        await Deno.copyFile(`${from}/${e.name}`, `${dir}/${e.name}`);
      }
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  },
  make,
  async run(dir) {
    const folder = `${dir}/${FOLDER}`;
    const ck = await readCheckpoint(folder);
    const files = ck.state?.files;
    const listed = files !== null && typeof files === "object"
      ? TENSOR_FILES.filter((f) => Object.hasOwn(files, f))
      : [];
    await steps(
      own,
      ...listed.map((f) => () => readSafetensors(`${folder}/${f}`)),
    );
  },
});
