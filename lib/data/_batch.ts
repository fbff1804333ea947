// Assembling one batch from prepared samples: shared by the loader on the
// calling thread and by its workers. Not part of the public API.

import { Rng } from "../random.ts";
import type { ScoreMap } from "../labels/score_map.ts";
import type { PreparedSample, SamplePipeline } from "./pipeline.ts";
import { ImageError } from "./image.ts";
import { LoaderError } from "./loader_error.ts";

export interface BatchRequest {
  epoch: number;
  step: number;
  indices: number[];
}

/** What assembling a batch produces before the loader's bookkeeping. */
export interface BatchBody {
  size: number;
  height: number;
  width: number;
  images: Float32Array;
  labels: Int32Array;
  indices: Int32Array;
  keys: string[];
  maps?: ScoreMap[];
  boxes?: Float32Array;
  skipped: string[];
}

/** Assembles prepared samples into one batch body (shared by both modes). */
export async function prepareBatch(
  pipeline: SamplePipeline,
  req: BatchRequest,
  seed: number,
): Promise<BatchBody> {
  const samples: PreparedSample[] = [];
  const skipped: string[] = [];
  const results = await Promise.allSettled(
    req.indices.map((i) => pipeline.prepare(i, Rng.derive(seed, req.epoch, i))),
  );
  results.forEach((r, j) => {
    if (r.status === "fulfilled") {
      samples.push(r.value);
      return;
    }
    const e = r.reason;
    if (e instanceof ImageError && pipeline.onBadImage === "skip") {
      skipped.push(e.file ?? pipeline.dataset.key(req.indices[j]));
      return;
    }
    throw new LoaderError(
      `epoch ${req.epoch}, batch ${req.step}: sample ${req.indices[j]} (${
        safeKey(pipeline, req.indices[j])
      }) failed: ${e instanceof Error ? e.message : String(e)}`,
      { cause: e },
    );
  });
  const [height, width] = pipeline.outputSize;
  const n = samples.length;
  const plane = height * width * 3;
  const images = new Float32Array(n * plane);
  const labels = new Int32Array(n);
  const indices = new Int32Array(n);
  const keys: string[] = [];
  const withMaps = pipeline.hasMaps;
  const maps: ScoreMap[] = [];
  let boxes: Float32Array | undefined;
  samples.forEach((s, j) => {
    images.set(s.pixels, j * plane);
    labels[j] = s.label ?? -1;
    indices[j] = s.index;
    keys.push(s.key);
    if (withMaps && s.map) maps.push(s.map);
    if (s.box) {
      boxes ??= new Float32Array(n * 4);
      boxes.set(s.box, j * 4);
    }
  });
  return {
    size: n,
    height,
    width,
    images,
    labels,
    indices,
    keys,
    maps: withMaps ? maps : undefined,
    boxes,
    skipped,
  };
}

function safeKey(pipeline: SamplePipeline, i: number): string {
  try {
    return pipeline.dataset.key(i);
  } catch {
    return `index ${i}`;
  }
}
