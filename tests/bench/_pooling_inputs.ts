/**
 * The label-pooling inputs every pooling benchmark uses: `batch` top-k maps
 * at the official shape (k 5, 15 x 15, 1000 classes; distinct, ranked ids
 * per cell), a RandomResizedCrop box, a flip and a ground-truth label per
 * map, all from `Rng(2024)`, for pooling to the class token and 14 x 14
 * tokens.
 *
 * @module
 */

import { Rng } from "tokenlab";
import type { NormalizedBox, TopKMaps } from "tokenlab/labels/pooling.ts";
import { sampleCropBox } from "tokenlab/labels/map_transforms.ts";

/** Classes and token grid of the official shape. */
export const POOL_CLASSES = 1000, POOL_TOKENS = 14;

/** The inputs of `poolLabels` for `batch` maps. */
export function poolingInputs(batch: number): {
  maps: TopKMaps;
  boxes: NormalizedBox[];
  flips: boolean[];
  labels: number[];
} {
  const k = 5, H = 15, W = 15, C = POOL_CLASSES;
  const rng = new Rng(2024);
  const scores = new Float32Array(batch * k * H * W);
  const ids = new Int32Array(batch * k * H * W);
  for (let b = 0; b < batch; b++) {
    for (let p = 0; p < H * W; p++) {
      const first = rng.int(C); // distinct ids per cell: first + 37 r (mod C)
      for (let r = 0; r < k; r++) {
        const i = (b * k + r) * H * W + p;
        scores[i] = 12 - 2 * r + rng.normal(); // ranked logits
        ids[i] = (first + 37 * r) % C;
      }
    }
  }
  const boxes = Array.from(
    { length: batch },
    () => sampleCropBox([224, 224], rng).normalized,
  );
  const flips = Array.from({ length: batch }, () => rng.float() < 0.5);
  const labels = Array.from({ length: batch }, () => rng.int(C));
  return {
    maps: { k, height: H, width: W, scores, ids },
    boxes,
    flips,
    labels,
  };
}
