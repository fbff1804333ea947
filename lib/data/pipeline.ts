/**
 * One sample, ready for the model: a dataset image, decoded, paired with its
 * score map, and transformed (the training augmentation, the evaluation
 * resize and centre crop, or nothing but normalisation). A
 * {@linkcode SamplePipeline} is described by a plain, serialisable
 * {@linkcode PipelineSpec}, so the {@linkcode DataLoader}'s workers can open
 * the very same pipeline.
 *
 * @module
 */

import type { Rng } from "../random.ts";
import type { NormalizedBox } from "../labels/pooling.ts";
import type { ScoreMap } from "../labels/score_map.ts";
import {
  type ScoreMapPreprocessing,
  ScoreMapStore,
} from "../labels/store/mod.ts";
import { preprocessingGeometry, withScoreMaps } from "./paired.ts";
import { checkRgbImage, type ImageDataset, ImageError } from "./image.ts";
import { type DataSpec, openDataset } from "./datasets.ts";
import {
  evalTransform,
  type EvalTransformConfig,
  normalizeImage,
  trainTransform,
  type TrainTransformConfig,
} from "./transforms.ts";
import { IMAGENET_MEAN, IMAGENET_STD } from "./normalize.ts";
import { TokenlabError } from "../errors.ts";

/**
 * What a pipeline does to each image:
 * - `train`: the official training transform (flip, RandAugment, random
 *   resized crop with its box, normalisation, random erasing), image and
 *   score map together;
 * - `eval`: resize the short side, centre crop (`cropPct`), normalise;
 * - `none`: normalisation only (every image must have the same size).
 */
export type TransformSpec =
  | { kind: "train"; config: Partial<TrainTransformConfig> & { size: number } }
  | ({ kind: "eval" } & Partial<EvalTransformConfig> & { size: number })
  | { kind: "none"; mean?: readonly number[]; std?: readonly number[] };

/** A pipeline, as plain data (what workers receive). */
export interface PipelineSpec {
  /** Where the images come from. */
  data: DataSpec;
  /** A score-map store folder whose keys cover the dataset's (optional). */
  maps?: string;
  /** What to do to each image. */
  transform: TransformSpec;
  /**
   * An unreadable or truncated image: `"stop"` (default) fails the batch
   * naming the file; `"skip"` leaves it out of its batch with a warning and
   * counts it.
   */
  onBadImage?: "skip" | "stop";
  /**
   * Where a store's maps lie on their images. `"image"` (default): as the
   * store's preprocessing says; maps made with a short-side resize and a
   * centre crop (the official label generation) cover only the central
   * square of a non-square image, so they are first placed on a grid over
   * the whole image (same cell size, cells outside the covered square
   * uniform) and then move and crop with the image. `"official"`: stretch
   * every map over the whole image, as the official training code does.
   */
  mapFrame?: "image" | "official";
}

/**
 * Places a map made with `preprocessing` on a grid over the whole
 * `width` x `height` image: the cells keep their size in image pixels
 * (rounded so a whole number of cells spans each side), each new cell takes
 * the cell under its centre, and cells outside the area the annotator saw
 * get score 0 at every rank (uniform after the softmax) with the ids of the
 * nearest covered cell, as augmentations treat cells moved in from outside.
 * A squashed map, or one that already covers the whole image, is returned
 * as it is.
 *
 * @example
 * ```ts
 * import { mapToImageFrame } from "tokenlab/data/pipeline.ts";
 * const map = { k: 1, height: 2, width: 2, scores: new Float32Array([1, 2, 3, 4]), ids: new Int32Array([5, 6, 7, 8]) };
 * // made from the central 100 x 100 square of a 200 x 100 image
 * const full = mapToImageFrame(map, { mode: "resize-center-crop", size: 100 }, 200, 100);
 * console.log(full.width, full.height, full.scores); // 4 2 [0, 1, 2, 0, 0, 3, 4, 0]
 * ```
 */
export function mapToImageFrame(
  map: ScoreMap,
  preprocessing: ScoreMapPreprocessing,
  width: number,
  height: number,
): ScoreMap {
  if (preprocessing.mode === "squash") return map;
  const g = preprocessingGeometry(width, height, preprocessing);
  const sx = width / g.width, sy = height / g.height; // image px per resized px
  const x0 = g.left * sx, y0 = g.top * sy;
  const cw = (preprocessing.size * sx) / map.width;
  const ch = (preprocessing.size * sy) / map.height;
  const W = Math.max(1, Math.round(width / cw));
  const H = Math.max(1, Math.round(height / ch));
  if (
    W === map.width && H === map.height && Math.abs(x0) < 1e-9 &&
    Math.abs(y0) < 1e-9
  ) return map;
  const { k } = map;
  const scores = new Float32Array(k * H * W);
  const ids = new Int32Array(k * H * W);
  for (let r = 0; r < H; r++) {
    const v = Math.floor((((r + 0.5) * height) / H - y0) / ch);
    const vr = Math.min(map.height - 1, Math.max(0, v));
    for (let c = 0; c < W; c++) {
      const u = Math.floor((((c + 0.5) * width) / W - x0) / cw);
      const uc = Math.min(map.width - 1, Math.max(0, u));
      const inside = u === uc && v === vr;
      const from = vr * map.width + uc, to = r * W + c;
      for (let j = 0; j < k; j++) {
        ids[j * H * W + to] = map.ids[j * map.height * map.width + from];
        if (inside) {
          scores[j * H * W + to] =
            map.scores[j * map.height * map.width + from];
        }
      }
    }
  }
  return { k, height: H, width: W, scores, ids };
}

/** One prepared sample. */
export interface PreparedSample {
  /** Dataset index. */
  index: number;
  /** Dataset key. */
  key: string;
  /** Label (undefined for an unlabelled dataset). */
  label: number | undefined;
  /** HWC float32 normalised pixels of the output size. */
  pixels: Float32Array;
  /** The score map, moved with the image, when the pipeline has maps. */
  map?: ScoreMap;
  /** The crop box (top, left, height, width), normalised, for cropping transforms. */
  box?: NormalizedBox;
}

/** Raised for a pipeline that cannot be built as described. */
export class PipelineError extends TokenlabError {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
  }
}

/** Options of {@linkcode SamplePipeline.fromDataset}. */
export interface FromDatasetOptions {
  /** Score maps for the dataset's keys. */
  maps?: ScoreMapStore;
  /** What to do to each image. */
  transform: TransformSpec;
  /** See {@linkcode PipelineSpec.onBadImage}. */
  onBadImage?: "skip" | "stop";
  /** See {@linkcode PipelineSpec.mapFrame}. */
  mapFrame?: "image" | "official";
  /**
   * Check that the store has a map for every key and the dataset's class
   * count (default true; loader workers skip it, the loader checked).
   */
  verify?: boolean;
}

/** Turns dataset images (and maps) into model inputs. */
export class SamplePipeline {
  /** The dataset read. */
  readonly dataset: ImageDataset;
  /** The score maps, when given. */
  readonly store: ScoreMapStore | null;
  /** The transform. */
  readonly transform: TransformSpec;
  /** What an unreadable image does. */
  readonly onBadImage: "skip" | "stop";
  /** See {@linkcode PipelineSpec.mapFrame}. */
  readonly mapFrame: "image" | "official";
  /** Output [height, width] in pixels. */
  readonly outputSize: readonly [number, number];
  /** The normalisation applied (for display and checks). */
  readonly normalization: { mean: readonly number[]; std: readonly number[] };

  private constructor(
    dataset: ImageDataset,
    store: ScoreMapStore | null,
    transform: TransformSpec,
    onBadImage: "skip" | "stop",
    outputSize: readonly [number, number],
    mapFrame: "image" | "official",
  ) {
    this.mapFrame = mapFrame;
    this.dataset = dataset;
    this.store = store;
    this.transform = transform;
    this.onBadImage = onBadImage;
    this.outputSize = outputSize;
    const t = transform.kind === "train" ? transform.config : transform;
    this.normalization = {
      mean: t.mean ?? IMAGENET_MEAN,
      std: t.std ?? IMAGENET_STD,
    };
  }

  /** Opens the dataset (and store) a spec names. */
  static async open(
    spec: PipelineSpec,
    options: { verify?: boolean } = {},
  ): Promise<SamplePipeline> {
    const dataset = await openDataset(spec.data);
    const store = spec.maps === undefined
      ? undefined
      : await ScoreMapStore.open(spec.maps);
    try {
      return await SamplePipeline.fromDataset(dataset, {
        maps: store,
        transform: spec.transform,
        onBadImage: spec.onBadImage,
        mapFrame: spec.mapFrame,
        verify: options.verify,
      });
    } catch (e) {
      store?.close();
      throw e;
    }
  }

  /** A pipeline over a dataset object (cannot be reopened in a worker). */
  static async fromDataset(
    dataset: ImageDataset,
    options: FromDatasetOptions,
  ): Promise<SamplePipeline> {
    const t = options.transform;
    const onBad = options.onBadImage ?? "stop";
    if (onBad !== "skip" && onBad !== "stop") {
      throw new PipelineError(
        `onBadImage must be "skip" or "stop", found ${JSON.stringify(onBad)}`,
      );
    }
    let size: [number, number];
    if (t.kind === "train") size = [t.config.size, t.config.size];
    else if (t.kind === "eval") size = [t.size, t.size];
    else if (t.kind === "none") {
      if (dataset.size === 0) {
        throw new PipelineError(`${dataset.description} has no images`);
      }
      const first = await dataset.image(0);
      size = [first.height, first.width];
    } else {
      throw new PipelineError(
        `transform.kind must be "train", "eval" or "none", found ${
          JSON.stringify((t as { kind: unknown }).kind)
        }`,
      );
    }
    if (!Number.isInteger(size[0]) || size[0] < 1) {
      throw new PipelineError(
        `transform.size must be a positive integer, found ${size[0]}`,
      );
    }
    if (options.maps && (options.verify ?? true)) {
      // The pairing check: class count and a map for every key, up front.
      await withScoreMaps(dataset, options.maps);
    }
    const mapFrame = options.mapFrame ?? "image";
    if (mapFrame !== "image" && mapFrame !== "official") {
      throw new PipelineError(
        `mapFrame must be "image" or "official", found ${
          JSON.stringify(mapFrame)
        }`,
      );
    }
    return new SamplePipeline(
      dataset,
      options.maps ?? null,
      t,
      onBad,
      size,
      mapFrame,
    );
  }

  /** Number of images. */
  get size(): number {
    return this.dataset.size;
  }

  /** Whether samples carry score maps. */
  get hasMaps(): boolean {
    return this.store !== null;
  }

  /** Prepares sample `index`; every random draw comes from `rng`. */
  async prepare(index: number, rng: Rng): Promise<PreparedSample> {
    const key = this.dataset.key(index);
    const label = this.dataset.label(index);
    const image = await this.dataset.image(index);
    let map = this.store ? await this.store.read(key) : undefined;
    if (map && this.mapFrame === "image") {
      map = mapToImageFrame(
        map,
        this.store!.header.preprocessing,
        image.width,
        image.height,
      );
    }
    const t = this.transform;
    if (t.kind === "train") {
      const out = trainTransform({ image, map }, t.config, rng);
      return {
        index,
        key,
        label,
        pixels: out.pixels,
        map: out.map,
        box: out.box,
      };
    }
    if (t.kind === "eval") {
      return { index, key, label, pixels: evalTransform(image, t), map };
    }
    const [h, w] = this.outputSize;
    checkRgbImage(image, key);
    if (image.height !== h || image.width !== w) {
      throw new ImageError(
        `${key}: transform "none" needs every image at ${h} x ${w} (the first image's size), found ${image.height} x ${image.width}; use transform "eval" to resize`,
      );
    }
    const { mean, std } = this.normalization;
    const px = normalizeImage(image, mean, std);
    return { index, key, label, pixels: px, map };
  }

  /** Closes the score-map store. */
  close(): void {
    this.store?.close();
  }
}
