/**
 * The readers under fuzzing, by name, each loaded only in the child that
 * fuzzes it (so fuzzing notebooks never loads tfjs). The id keys each
 * reader's cases: case i of reader r under seed s draws from
 * `Rng.derive(s, id, i)`, so adding a reader changes no other reader's cases.
 *
 * @module
 */

import type { FuzzReader } from "../_reader.ts";

/** One registered reader. */
export interface ReaderEntry {
  /** Its name on the command line. */
  name: string;
  /** Its key in case seeds (never reused). */
  id: number;
  /** What it reads, in a few words. */
  about: string;
  /** Loads its module. */
  load: () => Promise<FuzzReader<unknown>>;
}

// deno-lint-ignore no-explicit-any
type Module = () => Promise<{ reader: FuzzReader<any> }>;

/** Each reader's module, loaded only when it is fuzzed. */
const MODULES: Record<string, Module> = {
  "torch": () => import("./torch.ts"),
  "safetensors": () => import("./safetensors.ts"),
  "official-map": () => import("./official_map.ts"),
  "store": () => import("./store.ts"),
  "checkpoint": () => import("./checkpoint.ts"),
  "notebook": () => import("./notebook.ts"),
  "params": () => import("./params.ts"),
  "results-cache": () => import("./results_cache.ts"),
  "arm-result": () => import("./arm_result.ts"),
  "weights": () => import("./weights.ts"),
  "image": () => import("./image.ts"),
  "self-test": () => import("./selftest.ts"),
};

/** Id, name and what each reader reads (the functions fuzzed). */
const TABLE: readonly (readonly [number, string, string])[] = [
  [1, "torch", "torch zip/pickle (TorchZip, readTorch*)"],
  [2, "safetensors", "safetensors (read/decodeSafetensors)"],
  [3, "official-map", "official score maps (readOfficialMap)"],
  [4, "store", "score-map store (open, keys, records, batches)"],
  [5, "checkpoint", "checkpoints (readCheckpoint, tensor files)"],
  [6, "notebook", "notebooks (read, parameters, strip, write)"],
  [7, "params", "parameters (cell, --params, --param, inject)"],
  [8, "results-cache", "report results cache (experiment)"],
  [9, "arm-result", "annotator result.json (annotatorStore)"],
  [10, "weights", "weights (loadWeights, loadModel)"],
  [11, "image", "images (readImage, decodeImage)"],
  [99, "self-test", "the harness's own check (never by default)"],
];

const ENTRIES: ReaderEntry[] = TABLE.map(([id, name, about]) => ({
  name,
  id,
  about,
  load: () => MODULES[name]().then((m) => m.reader as FuzzReader<unknown>),
}));

/** Every reader, in the order they are fuzzed. */
export const READERS: readonly ReaderEntry[] = ENTRIES.filter((e) =>
  e.id !== 99
);

/** A reader that misbehaves on purpose (tests of the harness); never fuzzed by default. */
export const SELF_TEST: ReaderEntry = ENTRIES.find((e) => e.id === 99)!;

/** The reader of a name (the self-test one included), or undefined. */
export function readerNamed(name: string): ReaderEntry | undefined {
  return [...READERS, SELF_TEST].find((r) => r.name === name);
}
