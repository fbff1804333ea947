/**
 * How well a store's maps agree with its images' labels: the check of an
 * annotator's maps before training on them. Two measures: the share of
 * images whose pooled label (the class token's soft label of the whole
 * image, RoIAlign 1 x 1 as training pools it) has the image's class on top,
 * and the share of map cells whose best class (rank 0) is the image's
 * class. The first should be close to the annotator's accuracy; far below
 * it means the wrong head (the class head of an LV-ViT instead of its aux
 * head), the wrong preprocessing or the wrong weights.
 *
 * @module
 */

import { tf } from "../tf.ts";
import { poolLabels, type TopKMaps } from "./pooling.ts";
import { ScoreMapError } from "./score_map.ts";
import type { ScoreMapStore } from "./store/reader.ts";

/** What {@linkcode scoreMapAgreement} measured. */
export interface ScoreMapAgreement {
  /** Images checked (those with a label). */
  images: number;
  /** Images whose pooled label has their class on top. */
  imagesAgreeing: number;
  /** Map cells checked. */
  cells: number;
  /** Cells whose best class (rank 0) is their image's class. */
  cellsAgreeing: number;
  /** Per class id: images of the class, and those agreeing (only classes with images). */
  perClass: Map<number, { images: number; agreeing: number }>;
}

/** Options of {@linkcode scoreMapAgreement}. */
export interface ScoreMapAgreementOptions {
  /** Only the first `limit` images (default all). */
  limit?: number;
  /** Images per pooled batch (default 256). */
  batchSize?: number;
  /** Called after each batch with the images done and the total. */
  onProgress?: (done: number, total: number) => void;
}

/**
 * Compares every map of a store with its image's ground-truth label (the
 * store must hold labels): pooled over the whole image (the class token's
 * label, no smoothing) and cell by cell. Runs on the active backend.
 *
 * @example
 * ```ts
 * import { initBackend, ScoreMapStore, scoreMapAgreement } from "tokenlab";
 * await initBackend();
 * const dir = await Deno.makeTempDir();
 * const w = await ScoreMapStore.create(`${dir}/maps`, { k: 1, height: 1, width: 2, numClasses: 3, annotator: "toy", preprocessing: { mode: "squash", size: 8 }, scores: "logits" });
 * await w.append("a/0", { k: 1, height: 1, width: 2, scores: new Float32Array([4, 4]), ids: new Int32Array([0, 0]) }, 0);
 * await w.append("b/1", { k: 1, height: 1, width: 2, scores: new Float32Array([4, 1]), ids: new Int32Array([2, 1]) }, 1);
 * await w.commit();
 * using store = await ScoreMapStore.open(`${dir}/maps`);
 * const a = await scoreMapAgreement(store);
 * console.log(a.imagesAgreeing, a.images, a.cellsAgreeing, a.cells); // 1 2 3 4
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function scoreMapAgreement(
  store: ScoreMapStore,
  options: ScoreMapAgreementOptions = {},
): Promise<ScoreMapAgreement> {
  const h = store.header;
  if (!h.labels) {
    throw new ScoreMapError(
      `score-map store ${store.path} holds no ground-truth labels, so its maps cannot be compared with them; annotate a labelled dataset (its labels are stored with the maps)`,
    );
  }
  const total = Math.min(h.count, options.limit ?? h.count);
  const batchSize = options.batchSize ?? 256;
  if (!(Number.isSafeInteger(batchSize) && batchSize >= 1)) {
    throw new ScoreMapError(
      `scoreMapAgreement: expected batchSize to be a positive integer, found ${batchSize}`,
    );
  }
  const cellsPerMap = h.height * h.width;
  const result: ScoreMapAgreement = {
    images: 0,
    imagesAgreeing: 0,
    cells: 0,
    cellsAgreeing: 0,
    perClass: new Map(),
  };
  for (let from = 0; from < total; from += batchSize) {
    const n = Math.min(batchSize, total - from);
    const batch = await store.readBatch(
      Array.from({ length: n }, (_, j) => from + j),
    );
    const top = await pooledTopClasses(batch, n, h.numClasses);
    const per = h.k * cellsPerMap;
    for (let j = 0; j < n; j++) {
      const label = batch.labels![j];
      if (label < 0) continue;
      const agree = top[j] === label;
      result.images++;
      if (agree) result.imagesAgreeing++;
      const c = result.perClass.get(label) ?? { images: 0, agreeing: 0 };
      c.images++;
      if (agree) c.agreeing++;
      result.perClass.set(label, c);
      // Rank 0 is the first plane of the image's [k, H, W] ids.
      for (let cell = 0; cell < cellsPerMap; cell++) {
        result.cells++;
        if (batch.ids[j * per + cell] === label) result.cellsAgreeing++;
      }
    }
    options.onProgress?.(from + n, total);
  }
  return result;
}

/**
 * The top class of each map's pooled label: the class token's soft label
 * of the whole image (RoIAlign 1 x 1, no smoothing, as training pools it),
 * on the active backend; one class id per map of `maps` (`count` of them).
 *
 * @example
 * ```ts
 * import { initBackend, pooledTopClasses } from "tokenlab";
 * await initBackend();
 * const maps = { k: 1, height: 1, width: 2, scores: new Float32Array([2, 1]), ids: new Int32Array([4, 6]) };
 * console.log(await pooledTopClasses(maps, 1, 10)); // Int32Array(1) [ 4 ]
 * ```
 */
export async function pooledTopClasses(
  maps: TopKMaps,
  count: number,
  numClasses: number,
): Promise<Int32Array> {
  const pooled = await poolLabels(
    maps,
    Array.from({ length: count }, () => [0, 0, 1, 1] as const),
    { numClasses, tokenGrid: 1, smoothing: 0 },
  );
  const best = tf.tidy(() => tf.argMax(pooled.cls, 1));
  try {
    return Int32Array.from(await best.data() as Int32Array);
  } finally {
    tf.dispose([best, ...Object.values(pooled)]);
  }
}
