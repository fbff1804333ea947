/**
 * The machine annotator: runs a classifier of the kit densely over a dataset
 * and stores the top-k class scores of every location (a score map per
 * image), resumably.
 *
 * @module
 */

import { tf } from "../tf.ts";
import type { LvVit } from "../models/lvvit.ts";
import type { ImageSource } from "../data/tensor_dataset.ts";
import { ScoreMapError } from "../labels/score_map.ts";
import {
  samePreprocessing,
  type ScoreMapAnnotatorWeights,
  type ScoreMapPreprocessing,
  ScoreMapStore,
  type ScoreMapStoreHeader,
  type ScoreMapStoreWriter,
} from "../labels/store/mod.ts";

import { IMAGENET_MEAN, IMAGENET_STD } from "../data/normalize.ts";
import {
  type AnnotatorHead,
  type AnnotatorHeadChoice,
  chooseAnnotatorHead,
} from "./head.ts";
export { IMAGENET_MEAN, IMAGENET_STD };

/** Options of {@linkcode preprocessImages}. */
export interface PreprocessOptions {
  /** Resize mode and size (short side + centre crop, or squash). */
  preprocessing: ScoreMapPreprocessing;
  /** Per-channel mean (default ImageNet's). */
  mean?: readonly number[];
  /** Per-channel std (default ImageNet's). */
  std?: readonly number[];
}

/**
 * NHWC pixels in [0, 1] ([n, height, width, 3] values) to the annotator's
 * normalised input [n, size, size, 3] on the active backend (bilinear
 * resizing, half-pixel centres).
 */
export function preprocessImages(
  pixels: { data: Float32Array; height: number; width: number },
  options: PreprocessOptions,
): tf.Tensor4D {
  const { data, height, width } = pixels;
  const { mode, size, cropPct = 1 } = options.preprocessing;
  const n = data.length / (height * width * 3);
  const mean = options.mean ?? IMAGENET_MEAN, std = options.std ?? IMAGENET_STD;
  return tf.tidy(() => {
    let x = tf.tensor4d(data, [n, height, width, 3]);
    if (mode === "squash") {
      if (height !== size || width !== size) {
        x = tf.image.resizeBilinear(x, [size, size], false, true);
      }
    } else {
      const short = Math.min(height, width);
      const target = Math.round(size / cropPct);
      const h = Math.round((height * target) / short);
      const w = Math.round((width * target) / short);
      if (h !== height || w !== width) {
        x = tf.image.resizeBilinear(x, [h, w], false, true);
      }
      const top = Math.floor((h - size) / 2), left = Math.floor((w - size) / 2);
      if (h !== size || w !== size) {
        x = tf.slice(x, [0, top, left, 0], [n, size, size, 3]);
      }
    }
    return tf.div(
      tf.sub(x, tf.tensor1d([...mean])),
      tf.tensor1d([...std]),
    ) as tf.Tensor4D;
  });
}

/** Top-k of dense logits, laid out per image as score maps expect. */
export interface DenseTopK {
  /** [B, k, h, w] scores, rank 0 the best. */
  scores: Float32Array;
  /** [B, k, h, w] class ids. */
  ids: Int32Array;
}

/**
 * The top-k classes of every location of dense logits [B, h, w, C], read
 * back (asynchronously) in score-map layout [B, k, h, w].
 */
export async function denseTopK(
  logits: tf.Tensor4D,
  k: number,
): Promise<DenseTopK> {
  const [B, h, w, C] = logits.shape;
  if (!(Number.isInteger(k) && k >= 1 && k <= C)) {
    throw new RangeError(
      `top-k needs 1 <= k <= ${C} (the class count), found k = ${k}`,
    );
  }
  const [values, indices] = tf.tidy(() => {
    const { values, indices } = tf.topk(logits, k); // [B, h, w, k]
    return [
      tf.transpose(values, [0, 3, 1, 2]), // [B, k, h, w]
      tf.transpose(indices, [0, 3, 1, 2]),
    ];
  });
  try {
    const scores = Float32Array.from(await values.data() as Float32Array);
    const ids = Int32Array.from(await indices.data() as Int32Array);
    if (scores.length !== B * k * h * w) throw new Error("top-k size mismatch");
    return { scores, ids };
  } finally {
    tf.dispose([values, indices]);
  }
}

/** Dense top-k maps of a batch of images from a model. */
export async function annotateBatch(
  model: LvVit,
  pixels: { data: Float32Array; height: number; width: number },
  options: PreprocessOptions & { k: number; head?: "head" | "aux_head" },
): Promise<DenseTopK> {
  const logits = tf.tidy(() => {
    const x = preprocessImages(pixels, options);
    return model.denseLogits(x, { head: options.head });
  });
  try {
    return await denseTopK(logits, options.k);
  } finally {
    logits.dispose();
  }
}

/** Options of {@linkcode annotate}. */
export interface AnnotateOptions {
  /** The store to write (a folder; written as `<out>.partial` until done). */
  out: string;
  /** Classes kept per location (default 5). */
  k?: number;
  /** Images per forward pass (default 32). */
  batchSize?: number;
  /**
   * How images become the model's input (default: short side resized and
   * centre-cropped to the model's image size, crop_pct 1, as the official
   * label generation). Its size must be the model's image size.
   */
  preprocessing?: ScoreMapPreprocessing;
  /** Per-channel normalisation mean (default ImageNet's). */
  mean?: readonly number[];
  /** Per-channel normalisation std (default ImageNet's). */
  std?: readonly number[];
  /**
   * The classifier applied at every token (default `"auto"`: the aux head
   * when the model has one, as token labeling's annotators are used, else
   * the class head; see `chooseAnnotatorHead`). Recorded in the header as
   * `annotatorHead`.
   */
  head?: AnnotatorHeadChoice;
  /** The annotator's name in the store header (default the model's name). */
  annotator?: string;
  /**
   * The annotator's weights file (name, size, SHA-256; see
   * `describeWeightsFile`), recorded in the header as `annotatorWeights`.
   */
  weights?: ScoreMapAnnotatorWeights;
  /**
   * Class names in id order, recorded in the header (default the source's
   * `classes` when it has one per class of the model; otherwise none).
   */
  classNames?: readonly string[];
  /** Replace an existing store, and restart an interrupted one (default false). */
  overwrite?: boolean;
  /** Continue an interrupted run at `<out>.partial` (default true). */
  resume?: boolean;
  /** Images between progress checkpoints (rounded up to whole batches; default 1024). */
  flushEvery?: number;
  /** Stops the run cleanly (resumable) when aborted. */
  signal?: AbortSignal;
  /** Called at the start and after every batch with the images done (resumed ones included) and the total. */
  onProgress?: (done: number, total: number) => void;
}

/** What {@linkcode annotate} did. */
export interface AnnotateResult {
  /** The store's header (null when interrupted before the commit). */
  header: ScoreMapStoreHeader | null;
  /** Images annotated by this call. */
  annotated: number;
  /** Images found done by an earlier, interrupted run. */
  resumedFrom: number;
  /** Whether the signal stopped the run (the store is resumable). */
  interrupted: boolean;
  /** The head applied at every token. */
  head: AnnotatorHead;
  /** Wall time of this call in seconds. */
  seconds: number;
}

/**
 * Runs a model densely over a dataset and writes every image's top-k score
 * map to a store. An interrupted run (the signal, a crash, Ctrl-C in the
 * command) is resumed by calling it again with the same arguments, and ends
 * with the same store, byte for byte, as an uninterrupted run: checkpoints
 * fall on batch boundaries, so the batches are the same.
 *
 * @example
 * ```ts
 * import { annotate, createModel, initBackend, openTensorDataset, ScoreMapStore, writeTensorDataset } from "tokenlab";
 * await initBackend();
 * const dir = await Deno.makeTempDir();
 * await writeTensorDataset(`${dir}/data.safetensors`, {
 *   images: new Uint8Array(3 * 32 * 32 * 3).map((_, i) => i % 251), height: 32, width: 32, labels: [0, 1, 2],
 * });
 * const model = createModel("vit_xs32");
 * const data = await openTensorDataset(`${dir}/data.safetensors`);
 * const result = await annotate(model, data, { out: `${dir}/maps`, k: 3 });
 * console.log(result.header?.count, result.header?.height); // 3 8
 * using store = await ScoreMapStore.open(`${dir}/maps`);
 * console.log((await store.read(0)).ids.length); // 3 * 8 * 8 = 192
 * model.dispose();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function annotate(
  model: LvVit,
  source: ImageSource,
  options: AnnotateOptions,
): Promise<AnnotateResult> {
  const t0 = performance.now();
  const { out, k = 5, batchSize = 32 } = options;
  // Refused before the store is opened, like every setting below.
  const head = chooseAnnotatorHead(model, options.head ?? "auto");
  const size = model.config.imgSize;
  // A source that has already resized and cropped its images (an image
  // folder through toImageSource) says how; the store records that, and the
  // tensors only get normalised.
  const applied = source.preprocessing;
  if (
    applied !== undefined && options.preprocessing !== undefined &&
    !samePreprocessing(options.preprocessing, applied)
  ) {
    throw new ScoreMapError(
      `${source.description} is already preprocessed as ${
        JSON.stringify(applied)
      }, but annotate was asked for ${
        JSON.stringify(options.preprocessing)
      }; pass the same preprocessing to both (or leave annotate's out)`,
    );
  }
  const preprocessing = applied ?? options.preprocessing ??
    { mode: "resize-center-crop", size, cropPct: 1 };
  const tensorStep: ScoreMapPreprocessing = applied === undefined
    ? preprocessing
    : { mode: "squash", size };
  if (preprocessing.size !== size) {
    throw new ScoreMapError(
      `the annotator ${model.config.name} takes ${size}x${size} images, but preprocessing asks for ${preprocessing.size}; build the model with imgSize ${preprocessing.size} or preprocess to ${size}`,
    );
  }
  // Checked before the store is opened: a refused call writes nothing, so
  // there is no partial store to refuse the corrected call.
  if (!(Number.isInteger(batchSize) && batchSize >= 1)) {
    throw new ScoreMapError(
      `annotate: batchSize must be a positive integer, found ${batchSize}; pass the images per forward pass (default 32)`,
    );
  }
  const classes = model.config.numClasses;
  if (!(Number.isInteger(k) && k >= 1 && k <= classes)) {
    throw new ScoreMapError(
      `annotate: k must be an integer in [1, ${classes}] (the classes of the annotator ${model.config.name}), found ${k}; pass k ${
        Math.min(5, classes)
      } or less`,
    );
  }
  const setup = {
    k,
    height: model.grid,
    width: model.grid,
    numClasses: model.config.numClasses,
    annotator: options.annotator ?? `${model.config.name} @ ${size}`,
    annotatorHead: head,
    annotatorWeights: options.weights,
    classNames: options.classNames ??
      (source.classes?.length === model.config.numClasses
        ? source.classes
        : undefined),
    preprocessing,
    scores: "logits" as const,
  };
  const flushEvery = batchSize *
    Math.max(1, Math.ceil((options.flushEvery ?? 1024) / batchSize));
  const overwrite = options.overwrite ?? false;
  // The store refuses an existing store, a leftover partial write, or a
  // partial write started with another setup; annotate only adds the flag
  // that changes its mind.
  const retry = (e: unknown) => {
    if (e instanceof ScoreMapError) {
      // annotate's own option; the command line names its flag itself.
      e.message += " (annotate: pass overwrite: true to start again)";
    }
    return e;
  };
  let writer: ScoreMapStoreWriter;
  if (
    (options.resume ?? true) && !overwrite &&
    await ScoreMapStore.hasInterruptedWrite(out)
  ) {
    writer = await ScoreMapStore.resume(out, { header: setup, flushEvery })
      .catch((e) => Promise.reject(retry(e)));
    if (writer.size % batchSize !== 0 && writer.size !== source.size) {
      // Checkpoints are whole batches; another batch size would regroup the
      // images and the store would no longer match an uninterrupted run.
      await writer.close();
      throw new ScoreMapError(
        `${out}.partial stopped after ${writer.size} images, not a multiple of the batch size ${batchSize}; resume with the batch size it was started with`,
      );
    }
  } else {
    writer = await ScoreMapStore.create(out, setup, { overwrite, flushEvery })
      .catch((e) => Promise.reject(retry(e)));
  }
  const resumedFrom = writer.size;
  if (resumedFrom > source.size) {
    await writer.close();
    throw new ScoreMapError(
      `${out}.partial already holds ${resumedFrom} maps but ${source.description} has only ${source.size} images; it was started on another dataset: pass overwrite: true to start again`,
    );
  }
  let done = resumedFrom;
  options.onProgress?.(done, source.size);
  try {
    while (done < source.size) {
      if (options.signal?.aborted) {
        await writer.close();
        return {
          header: null,
          annotated: done - resumedFrom,
          resumedFrom,
          interrupted: true,
          head,
          seconds: (performance.now() - t0) / 1000,
        };
      }
      const n = Math.min(batchSize, source.size - done);
      const data = await source.read(done, n);
      const top = await annotateBatch(model, {
        data,
        height: source.height,
        width: source.width,
      }, {
        preprocessing: tensorStep,
        mean: options.mean,
        std: options.std,
        k,
        head,
      });
      const cells = k * model.grid * model.grid;
      for (let b = 0; b < n; b++) {
        const i = done + b;
        await writer.append(source.key(i), {
          k,
          height: model.grid,
          width: model.grid,
          scores: top.scores.slice(b * cells, (b + 1) * cells),
          ids: top.ids.slice(b * cells, (b + 1) * cells),
        }, source.label(i));
      }
      done += n;
      options.onProgress?.(done, source.size);
    }
    const header = await writer.commit();
    return {
      header,
      annotated: done - resumedFrom,
      resumedFrom,
      interrupted: false,
      head,
      seconds: (performance.now() - t0) / 1000,
    };
  } catch (e) {
    // Keep what was written resumable; the error says what happened.
    await writer.close().catch(() => {});
    throw e;
  }
}
