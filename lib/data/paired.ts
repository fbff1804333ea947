/**
 * Joining datasets to the rest of the kit: an {@linkcode ImageDataset}
 * paired with its score-map store ({@linkcode withScoreMaps}), and an
 * `ImageDataset` of any image sizes seen as the fixed-size
 * {@linkcode ImageSource} the annotator reads ({@linkcode toImageSource}).
 *
 * @module
 */

import type { ImageDataset, RgbImage } from "./image.ts";
import { ImageError } from "./image.ts";
import { type ResizeFilter, resizeImage } from "./resize.ts";
import { cropImage } from "./image_geometry.ts";
import type { ImageSource } from "./tensor_dataset.ts";
import type { ScoreMap } from "../labels/score_map.ts";
import {
  checkStoreAgainst,
  type ScoreMapPreprocessing,
  type ScoreMapStore,
} from "../labels/store/mod.ts";

/** An image dataset whose every image has a score map in a store. */
export interface PairedDataset extends ImageDataset {
  /** The images. */
  readonly dataset: ImageDataset;
  /** The score maps. */
  readonly store: ScoreMapStore;
  /** The score map of image `i` (found by its key). */
  map(i: number): Promise<ScoreMap>;
}

/** Options of {@linkcode withScoreMaps}: what the training expects of the store. */
export interface WithScoreMapsOptions {
  /** How the maps must have been made (checked against the store's header when given). */
  preprocessing?: ScoreMapPreprocessing;
  /** The map size the training expects, `[height, width]` (checked when given). */
  mapSize?: readonly [number, number];
}

/**
 * Pairs a dataset with a score-map store, checking up front (with
 * `checkStoreAgainst`) that the store was made for as many classes as the
 * dataset has and holds a map for every key of the dataset (and, when
 * given, the preprocessing and map size): a missing map fails now, naming
 * the missing keys, not mid-epoch.
 *
 * @example
 * ```ts
 * import { withScoreMaps } from "tokenlab/data/paired.ts";
 * import { ScoreMapStore } from "tokenlab/labels/store/mod.ts";
 * const dir = await Deno.makeTempDir({ dir: "tests", prefix: ".tmp-doc-" });
 * const writer = await ScoreMapStore.create(`${dir}/maps`, {
 *   k: 1, height: 1, width: 1, numClasses: 2, annotator: "toy",
 *   preprocessing: { mode: "squash", size: 8 }, scores: "logits",
 * });
 * await writer.append("b/x", { k: 1, height: 1, width: 1, scores: new Float32Array([2]), ids: new Int32Array([1]) }, 1);
 * await writer.commit();
 * const dataset = {
 *   size: 1, description: "toy", classes: ["a", "b"],
 *   key: () => "b/x", label: () => 1,
 *   image: () => Promise.resolve({ width: 1, height: 1, data: new Uint8Array(3) }),
 * };
 * using store = await ScoreMapStore.open(`${dir}/maps`);
 * const paired = await withScoreMaps(dataset, store);
 * console.log((await paired.map(0)).ids); // Int32Array(1) [ 1 ]
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function withScoreMaps(
  dataset: ImageDataset,
  store: ScoreMapStore,
  options: WithScoreMapsOptions = {},
): Promise<PairedDataset> {
  const keys = Array.from({ length: dataset.size }, (_, i) => dataset.key(i));
  await checkStoreAgainst(store, {
    numClasses: dataset.classes.length > 0 ? dataset.classes.length : undefined,
    keys,
    preprocessing: options.preprocessing,
    mapSize: options.mapSize,
  });
  return {
    dataset,
    store,
    size: dataset.size,
    description: `${dataset.description} with score maps ${store.path}`,
    classes: dataset.classes,
    key: (i) => dataset.key(i),
    label: (i) => dataset.label(i),
    image: (i) => dataset.image(i),
    map: (i) => store.read(dataset.key(i)),
  };
}

/** An {@linkcode ImageSource} made by {@linkcode toImageSource}. */
export interface PreprocessedImageSource extends ImageSource {
  /** The preprocessing already applied to every image (what a store header should record). */
  readonly preprocessing: ScoreMapPreprocessing;
}

/** Options of {@linkcode toImageSource}. */
export interface ToImageSourceOptions {
  /** Resampling filter (default `"bicubic"`, timm's and the official annotation's). */
  filter?: ResizeFilter;
}

/**
 * The geometry of the annotator's preprocessing for one image: the resized
 * size and the crop (as `preprocessImages` computes it).
 */
export function preprocessingGeometry(
  width: number,
  height: number,
  p: ScoreMapPreprocessing,
): { width: number; height: number; left: number; top: number } {
  if (p.mode === "squash") {
    return { width: p.size, height: p.size, left: 0, top: 0 };
  }
  const short = Math.min(width, height);
  const target = Math.round(p.size / (p.cropPct ?? 1));
  const w = Math.round((width * target) / short);
  const h = Math.round((height * target) / short);
  return {
    width: w,
    height: h,
    left: Math.floor((w - p.size) / 2),
    top: Math.floor((h - p.size) / 2),
  };
}

/** One image through the preprocessing: resize (Pillow-exact), then the centre crop. */
export function applyPreprocessing(
  image: RgbImage,
  p: ScoreMapPreprocessing,
  filter: ResizeFilter = "bicubic",
): RgbImage {
  const g = preprocessingGeometry(image.width, image.height, p);
  const resized = g.width === image.width && g.height === image.height
    ? image
    : resizeImage(image, g.width, g.height, { filter });
  if (resized.width === p.size && resized.height === p.size) return resized;
  return cropImage(resized, g.top, g.left, p.size, p.size);
}

/**
 * Adapts a dataset of images of any size to the fixed-size
 * {@linkcode ImageSource} the annotator reads: each image is resized with
 * {@linkcode resizeImage} (bicubic by default, byte for byte Pillow's, as
 * torchvision's `Resize` + `CenterCrop`) to the annotator's input, with the
 * geometry of `preprocessImages`: `"resize-center-crop"` resizes the short
 * side to `round(size / cropPct)` and takes the central `size` square,
 * `"squash"` resizes the whole image to `size x size`.
 *
 * The images come out at `size x size`: the annotator's own resize then
 * does nothing for `"squash"` and for `cropPct` 1; for `cropPct < 1` it
 * must not be applied again (annotate with `{ mode: "squash", size }` for
 * the tensors while recording `source.preprocessing` in the store header).
 * An unreadable image fails `read` with an {@linkcode ImageError} naming the
 * file (the annotator needs every image: remove bad files first).
 *
 * @example
 * ```ts
 * import { toImageSource } from "tokenlab/data/paired.ts";
 * const dataset = {
 *   size: 1, description: "toy", classes: ["a"], key: () => "a/x", label: () => 0,
 *   image: () => Promise.resolve({ width: 6, height: 4, data: new Uint8Array(72).fill(255) }),
 * };
 * const source = toImageSource(dataset, { mode: "resize-center-crop", size: 2 });
 * console.log(source.width, source.height, await source.read(0, 1)); // 2 2 Float32Array(12) [ 1, 1, ... ]
 * ```
 */
export function toImageSource(
  dataset: ImageDataset,
  preprocessing: ScoreMapPreprocessing,
  options: ToImageSourceOptions = {},
): PreprocessedImageSource {
  const { size } = preprocessing;
  if (!Number.isInteger(size) || size < 1) {
    throw new RangeError(
      `toImageSource: expected a positive integer size, found ${size}`,
    );
  }
  const cropPct = preprocessing.cropPct ?? 1;
  if (
    preprocessing.mode === "resize-center-crop" &&
    !(cropPct > 0 && cropPct <= 1)
  ) {
    throw new RangeError(
      `toImageSource: expected cropPct in (0, 1], found ${cropPct}`,
    );
  }
  const filter = options.filter ?? "bicubic";
  const pixels = size * size * 3;
  return {
    size: dataset.size,
    height: size,
    width: size,
    description: dataset.description,
    classes: dataset.classes.length > 0 ? [...dataset.classes] : undefined,
    preprocessing: { ...preprocessing },
    key: (i) => dataset.key(i),
    label: (i) => dataset.label(i),
    read: async (start, count) => {
      if (start < 0 || count < 0 || start + count > dataset.size) {
        throw new RangeError(
          `${dataset.description}: images [${start}, ${
            start + count
          }) requested, the dataset has ${dataset.size}`,
        );
      }
      const out = new Float32Array(count * pixels);
      const images = await Promise.all(
        Array.from({ length: count }, (_, j) => dataset.image(start + j)),
      );
      for (let j = 0; j < count; j++) {
        let img: RgbImage;
        try {
          img = applyPreprocessing(images[j], preprocessing, filter);
        } catch (e) {
          throw new ImageError(
            `${dataset.description}: image ${start + j} (${
              dataset.key(start + j)
            }): ${(e as Error).message}`,
          );
        }
        const o = j * pixels;
        for (let k = 0; k < pixels; k++) out[o + k] = img.data[k] / 255;
      }
      return out;
    },
  };
}
