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

const lazy = <S>(p: Promise<{ reader: FuzzReader<S> }>) =>
  p.then((m) => m.reader as FuzzReader<unknown>);

/** Every reader, in the order they are fuzzed. */
export const READERS: readonly ReaderEntry[] = [
  {
    name: "torch",
    id: 1,
    about: "torch zip/pickle (TorchZip, readTorchFile, readTorchStateDict)",
    load: () => lazy(import("./torch.ts")),
  },
  {
    name: "safetensors",
    id: 2,
    about: "safetensors (readSafetensors, decodeSafetensors)",
    load: () => lazy(import("./safetensors.ts")),
  },
  {
    name: "official-map",
    id: 3,
    about: "official score maps (readOfficialMap)",
    load: () => lazy(import("./official_map.ts")),
  },
  {
    name: "store",
    id: 4,
    about: "score-map store (open, keys, records, labels, batches)",
    load: () => lazy(import("./store.ts")),
  },
  {
    name: "checkpoint",
    id: 5,
    about: "checkpoint folders (readCheckpoint, state.json, tensor files)",
    load: () => lazy(import("./checkpoint.ts")),
  },
  {
    name: "notebook",
    id: 6,
    about: "notebooks (readNotebook, parameters cell, strip, write back)",
    load: () => lazy(import("./notebook.ts")),
  },
  {
    name: "params",
    id: 7,
    about: "parameters (cell, --params file, --param pairs, injection)",
    load: () => lazy(import("./params.ts")),
  },
  {
    name: "results-cache",
    id: 8,
    about: "report results cache (experiment: cache and frozen entries)",
    load: () => lazy(import("./results_cache.ts")),
  },
  {
    name: "arm-result",
    id: 9,
    about: "annotator result.json (annotatorStore, train_arm.ts)",
    load: () => lazy(import("./arm_result.ts")),
  },
  {
    name: "weights",
    id: 10,
    about: "weights into a model (loadWeights, loadModel; safetensors)",
    load: () => lazy(import("./weights.ts")),
  },
  {
    name: "image",
    id: 11,
    about: "images as the image folder reads them (readImage, decodeImage)",
    load: () => lazy(import("./image.ts")),
  },
];

/** A reader that misbehaves on purpose (tests of the harness); never fuzzed by default. */
export const SELF_TEST: ReaderEntry = {
  name: "self-test",
  id: 99,
  about: "the harness's own check: success, own error, defect, hang, memory",
  load: () => lazy(import("./selftest.ts")),
};

/** The reader of a name (the self-test one included), or undefined. */
export function readerNamed(name: string): ReaderEntry | undefined {
  return [...READERS, SELF_TEST].find((r) => r.name === name);
}
