/**
 * The per-sample transforms of token-labeling training and of evaluation,
 * image and score map together, as the official TokenLabeling code composes
 * them (`tlt/data/label_transforms_factory.py` on timm 0.4 and torchvision,
 * PIL images):
 *
 * **Training** ({@linkcode trainTransform}), in this order:
 *
 * 1. horizontal flip with probability `hflip` (0.5): image and map;
 * 2. RandAugment (`rand-m9-mstd0.5-inc1`): colour ops on the image, spatial
 *    ops on the image and, with the same drawn parameters, on the map
 *    (`transformMap`, nearest cell, outside cells score 0); fill colour
 *    `round(255 mean)`; the ops resample with the training interpolation
 *    (random: bilinear or bicubic per op);
 * 3. RandomResizedCrop of the image only (timm's
 *    `RandomResizedCropAndInterpolation` sampling: scale 0.08-1, log-uniform
 *    ratio 3/4-4/3, 10 attempts, then the central crop), the crop resized to
 *    `size` x `size` as torchvision's `resized_crop` does on a PIL image
 *    (crop first, then `Image.resize`, so no pixel outside the crop leaks
 *    in); the box is returned normalised as (top / H, left / W, height / H,
 *    width / W) in the flipped and augmented frame, what `poolLabels` takes;
 * 4. `ToTensor` and `Normalize(mean, std)` in float32 (HWC here; the
 *    official loader's GPU prefetcher computes `(v - 255 mean) / (255 std)`
 *    instead, which can differ in the last float32 bit);
 * 5. random erasing (timm's `RandomErasing`, p 0.25, mode "pixel") of the
 *    normalised image only.
 *
 * **Evaluation** ({@linkcode evalTransform}): timm's
 * `transforms_imagenet_eval`: resize the short side to
 * `floor(size / cropPct)` (torchvision `Resize(int)`: the long side
 * `int(short * long / short_old)`, no resize when the short side already
 * has that length), centre crop `size` (torchvision's `CenterCrop`: offsets
 * `round((H - size) / 2)`, halves to even), normalise.
 *
 * Every random draw comes from the passed {@linkcode Rng}, in the official
 * order (flip, RandAugment, crop box, crop filter, erasing), so the same
 * seed gives the same sample on every machine.
 *
 * @module
 */

import type { Rng } from "../random.ts";
import type { NormalizedBox } from "../labels/pooling.ts";
import type { ScoreMap } from "../labels/score_map.ts";
import {
  flipMap,
  sampleCropBox,
  transformMap,
} from "../labels/map_transforms.ts";
import { checkRgbImage, type RgbImage } from "./image.ts";
import { type AffineFilter, cropImage, flipImage } from "./image_geometry.ts";
import {
  type AppliedOp,
  parseRandAugment,
  randAugment,
} from "./rand_augment.ts";
import { resizeImage } from "./resize.ts";
import { IMAGENET_MEAN, IMAGENET_STD } from "./normalize.ts";
import { TokenlabError } from "../errors.ts";

/** Thrown for a bad transform config or input: what was expected, what was found, what to do. */
export class TransformError extends TokenlabError {
  /** Makes an error with this message. */
  constructor(message: string) {
    super(message);
  }
}

/**
 * The training interpolation: `"random"` (bilinear or bicubic drawn per
 * resampling, the official default), or a fixed filter. `"nearest"` is not
 * an official choice (timm turns unknown names into bilinear); it exists for
 * alignment checks.
 */
export type TrainInterpolation = "random" | AffineFilter;

/** Random erasing fill: per-pixel normal values, one normal value per channel, or zeros. */
export type EraseMode = "pixel" | "rand" | "const";

/** The training transform's settings; every field has the official default. */
export interface TrainTransformConfig {
  /** Output side in pixels (official 224; 384 when fine-tuning). */
  size: number;
  /** Probability of the horizontal flip (official 0.5; 0 turns it off). */
  hflip: number;
  /**
   * The RandAugment config string (official `"rand-m9-mstd0.5-inc1"`; LV-ViT-L
   * `"rand-n3-m9-mstd0.5-inc1"`), or `null` for none. Without RandAugment the
   * official code would apply ColorJitter(0.4) instead, which this kit does
   * not implement: `null` means no colour augmentation at all.
   */
  autoAugment: string | null;
  /** Interpolation of the RandAugment spatial ops and of the crop resize (official `"random"`). */
  interpolation: TrainInterpolation;
  /** RandomResizedCrop area fraction range (official [0.08, 1]). */
  scale: readonly [number, number];
  /** RandomResizedCrop aspect ratio (width / height) range, log-uniform (official [3/4, 4/3]). */
  ratio: readonly [number, number];
  /** Per-channel mean of pixels in [0, 1] (official ImageNet [0.485, 0.456, 0.406]); also gives RandAugment's fill colour. */
  mean: readonly number[];
  /** Per-channel standard deviation (official ImageNet [0.229, 0.224, 0.225]). */
  std: readonly number[];
  /** Probability of random erasing (official 0.25; 0 turns it off). */
  reprob: number;
  /** Random erasing fill (official `"pixel"`: per-pixel standard normal values). */
  remode: EraseMode;
  /** Most erased rectangles per image; the count is drawn from 1..recount (official 1). */
  recount: number;
}

/** The official training settings (LV-ViT on ImageNet at 224). */
export const DEFAULT_TRAIN_TRANSFORM: Readonly<TrainTransformConfig> = Object
  .freeze({
    size: 224,
    hflip: 0.5,
    autoAugment: "rand-m9-mstd0.5-inc1",
    interpolation: "random",
    scale: [0.08, 1] as const,
    ratio: [3 / 4, 4 / 3] as const,
    mean: IMAGENET_MEAN,
    std: IMAGENET_STD,
    reprob: 0.25,
    remode: "pixel",
    recount: 1,
  });

/** The evaluation transform's settings. */
export interface EvalTransformConfig {
  /** Output side in pixels. */
  size: number;
  /** Fraction of the resized short side kept by the centre crop (timm's default 0.875; LV-ViT's model configs: 0.9 for T and S, 1.0 for M and L). */
  cropPct: number;
  /** Resize filter (`"bicubic"`, LV-ViT's; timm's generic default is bilinear). */
  interpolation: AffineFilter;
  /** Per-channel mean (ImageNet by default). */
  mean: readonly number[];
  /** Per-channel standard deviation (ImageNet by default). */
  std: readonly number[];
}

/** The evaluation defaults (timm's crop percentage, LV-ViT's bicubic filter, ImageNet statistics). */
export const DEFAULT_EVAL_TRANSFORM: Readonly<
  Omit<EvalTransformConfig, "size">
> = Object.freeze({
  cropPct: 0.875,
  interpolation: "bicubic",
  mean: IMAGENET_MEAN,
  std: IMAGENET_STD,
});

/** One erased rectangle, in output pixels. */
export interface ErasedBox {
  /** First row. */
  top: number;
  /** First column. */
  left: number;
  /** Rows. */
  height: number;
  /** Columns. */
  width: number;
}

/** What the training transform did to a sample (for display and debugging). */
export interface AppliedTransforms {
  /** Whether the image (and map) were flipped. */
  flipped: boolean;
  /** The RandAugment ops that ran. */
  randAugment: AppliedOp[];
  /** The crop in pixels of the flipped and augmented image, and the filter that resized it. */
  crop: {
    top: number;
    left: number;
    height: number;
    width: number;
    filter: AffineFilter;
  };
  /** The erased rectangles (empty when erasing did not fire). */
  erased: ErasedBox[];
}

/** The output of {@linkcode trainTransform}. */
export interface TrainSample {
  /** `size * size * 3` normalised float32 pixels, HWC. */
  pixels: Float32Array;
  /** The score map after the flip and the spatial RandAugment ops (not cropped: the box says where the crop lies). */
  map?: ScoreMap;
  /** The crop box (top / H, left / W, height / H, width / W) in the flipped and augmented image. */
  box: NormalizedBox;
  /** What was applied. */
  applied: AppliedTransforms;
}

function pyRound(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function fail(
  field: string,
  expected: string,
  found: unknown,
  todo: string,
): never {
  throw new TransformError(
    `${field}: expected ${expected}, found ${
      JSON.stringify(found) ?? String(found)
    }; ${todo}`,
  );
}

function checkStats(
  mean: readonly number[],
  std: readonly number[],
  where: string,
): void {
  if (
    !Array.isArray(mean) || mean.length !== 3 ||
    !mean.every((v) => Number.isFinite(v))
  ) {
    fail(
      `${where}.mean`,
      "3 finite numbers (RGB, pixels in [0, 1])",
      mean,
      "the ImageNet mean is [0.485, 0.456, 0.406]",
    );
  }
  if (
    !Array.isArray(std) || std.length !== 3 ||
    !std.every((v) => Number.isFinite(v) && v > 0)
  ) {
    fail(
      `${where}.std`,
      "3 positive numbers (RGB)",
      std,
      "the ImageNet std is [0.229, 0.224, 0.225]",
    );
  }
}

function checkSize(size: unknown, where: string): void {
  if (!(Number.isInteger(size) && (size as number) >= 1)) {
    fail(
      `${where}.size`,
      "a positive integer (output side in pixels)",
      size,
      "the official size is 224",
    );
  }
}

function checkRange(
  v: readonly [number, number],
  field: string,
  todo: string,
): void {
  if (
    !Array.isArray(v) || v.length !== 2 || !(v[0] > 0) || !(v[0] <= v[1]) ||
    !Number.isFinite(v[1])
  ) {
    fail(field, "[min, max] with 0 < min <= max", v, todo);
  }
}

function checkProbability(p: number, field: string, todo: string): void {
  if (!(typeof p === "number" && p >= 0 && p <= 1)) {
    fail(field, "a probability in [0, 1]", p, todo);
  }
}

/**
 * Fills in the official defaults and checks every field, throwing a
 * {@linkcode TransformError} that names the field, what was expected and
 * found, and what to do.
 *
 * @example
 * ```ts
 * import { resolveTrainTransform } from "tokenlab/data/transforms.ts";
 * const c = resolveTrainTransform({ size: 64, reprob: 0 });
 * console.log(c.autoAugment, c.hflip, c.reprob); // rand-m9-mstd0.5-inc1 0.5 0
 * ```
 */
export function resolveTrainTransform(
  config: Partial<TrainTransformConfig> = {},
): TrainTransformConfig {
  const known = Object.keys(DEFAULT_TRAIN_TRANSFORM);
  for (const key of Object.keys(config ?? {})) {
    if (!known.includes(key)) {
      fail(
        `trainTransform config`,
        `only the fields ${known.join(", ")}`,
        key,
        "remove or rename that field",
      );
    }
  }
  const c: TrainTransformConfig = {
    ...DEFAULT_TRAIN_TRANSFORM,
    ...Object.fromEntries(
      Object.entries(config ?? {}).filter(([, v]) => v !== undefined),
    ),
  };
  checkSize(c.size, "trainTransform");
  checkProbability(
    c.hflip,
    "trainTransform.hflip",
    "the official value is 0.5; 0 turns the flip off",
  );
  checkProbability(
    c.reprob,
    "trainTransform.reprob",
    "the official value is 0.25; 0 turns erasing off",
  );
  if (c.autoAugment !== null) {
    if (typeof c.autoAugment !== "string") {
      fail(
        "trainTransform.autoAugment",
        "a RandAugment string or null",
        c.autoAugment,
        'the official one is "rand-m9-mstd0.5-inc1"',
      );
    }
    parseRandAugment(c.autoAugment);
  }
  if (!["random", "bilinear", "bicubic", "nearest"].includes(c.interpolation)) {
    fail(
      "trainTransform.interpolation",
      '"random", "bilinear", "bicubic" or "nearest"',
      c.interpolation,
      'the official value is "random"',
    );
  }
  checkRange(
    c.scale,
    "trainTransform.scale",
    "the official range is [0.08, 1] (area fractions, max at most 1 for the 10 tries to succeed)",
  );
  checkRange(
    c.ratio,
    "trainTransform.ratio",
    "the official range is [3/4, 4/3]",
  );
  checkStats(c.mean, c.std, "trainTransform");
  if (!["pixel", "rand", "const"].includes(c.remode)) {
    fail(
      "trainTransform.remode",
      '"pixel", "rand" or "const"',
      c.remode,
      'the official value is "pixel"',
    );
  }
  if (!(Number.isInteger(c.recount) && c.recount >= 1)) {
    fail(
      "trainTransform.recount",
      "a positive integer",
      c.recount,
      "the official value is 1",
    );
  }
  return c;
}

/**
 * float32 lookup tables of `ToTensor` + `Normalize`: channel c of byte v is
 * `(v / 255 - mean[c]) / std[c]`, each step rounded to float32 as PyTorch
 * computes it.
 */
function normalizeTables(
  mean: readonly number[],
  std: readonly number[],
): Float32Array {
  const f = Math.fround;
  const lut = new Float32Array(768);
  for (let c = 0; c < 3; c++) {
    const m = f(mean[c]), s = f(std[c]);
    for (let v = 0; v < 256; v++) lut[c * 256 + v] = f(f(f(v / 255) - m) / s);
  }
  return lut;
}

const tableCache = new Map<string, Float32Array>();

function tablesFor(
  mean: readonly number[],
  std: readonly number[],
): Float32Array {
  const key = `${mean.join(",")}|${std.join(",")}`;
  let t = tableCache.get(key);
  if (!t) {
    t = normalizeTables(mean, std);
    if (tableCache.size > 16) tableCache.clear();
    tableCache.set(key, t);
  }
  return t;
}

/**
 * An 8-bit RGB image as normalised float32 HWC pixels: `(v / 255 - mean) /
 * std` per channel, in float32 as torchvision's `ToTensor` + `Normalize`.
 *
 * @example
 * ```ts
 * import { normalizeImage } from "tokenlab/data/transforms.ts";
 * const px = normalizeImage({ width: 1, height: 1, data: new Uint8Array([0, 128, 255]) }, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]);
 * console.log(px); // Float32Array [-1, 0.0039..., 1]
 * ```
 */
export function normalizeImage(
  image: RgbImage,
  mean: readonly number[] = IMAGENET_MEAN,
  std: readonly number[] = IMAGENET_STD,
): Float32Array {
  checkRgbImage(image, "normalizeImage");
  checkStats(mean, std, "normalizeImage");
  const lut = tablesFor(mean, std);
  const d = image.data, out = new Float32Array(d.length);
  for (let i = 0; i < d.length; i += 3) {
    out[i] = lut[d[i]];
    out[i + 1] = lut[256 + d[i + 1]];
    out[i + 2] = lut[512 + d[i + 2]];
  }
  return out;
}

/** Options of {@linkcode randomErase}. */
export interface RandomEraseOptions {
  /** Probability that erasing happens at all (default 0.25). */
  probability?: number;
  /** Fill mode (default `"pixel"`). */
  mode?: EraseMode;
  /** Most rectangles; the count is drawn from 1..maxCount (default 1). */
  maxCount?: number;
  /** Area fraction range of a rectangle (default [0.02, 1/3], divided by the count). */
  area?: readonly [number, number];
  /** Smallest aspect ratio height / width (default 0.3; the largest is its inverse, drawn log-uniformly). */
  minAspect?: number;
}

/**
 * timm's `RandomErasing` on a normalised HWC float image, in place: with
 * probability `probability`, up to `maxCount` rectangles, each of area
 * uniform in `area` (times the image area, over the count) and aspect
 * (height / width) log-uniform in [minAspect, 1 / minAspect], sides
 * rounded, tried 10 times to fit strictly inside, at a uniform position,
 * filled with standard normal values per pixel and channel (`"pixel"`), one
 * normal value per channel (`"rand"`) or zeros (`"const"`, the mean colour
 * after normalisation). Returns the rectangles erased.
 *
 * @example
 * ```ts
 * import { Rng } from "tokenlab";
 * import { randomErase } from "tokenlab/data/transforms.ts";
 * const px = new Float32Array(32 * 32 * 3);
 * const boxes = randomErase(px, 32, 32, new Rng(1), { probability: 1, mode: "const" });
 * console.log(boxes.length); // 1
 * ```
 */
export function randomErase(
  pixels: Float32Array,
  width: number,
  height: number,
  rng: Rng,
  options: RandomEraseOptions = {},
): ErasedBox[] {
  const p = options.probability ?? 0.25;
  const mode = options.mode ?? "pixel";
  const maxCount = options.maxCount ?? 1;
  const [a0, a1] = options.area ?? [0.02, 1 / 3];
  const minAspect = options.minAspect ?? 0.3;
  if (pixels.length !== width * height * 3) {
    fail(
      "randomErase pixels",
      `${width * height * 3} floats (${height} x ${width} x 3)`,
      pixels.length,
      "pass the HWC image and its size",
    );
  }
  checkProbability(
    p,
    "randomErase probability",
    "timm's default is 0.5, the official 0.25",
  );
  if (!["pixel", "rand", "const"].includes(mode)) {
    fail(
      "randomErase mode",
      '"pixel", "rand" or "const"',
      mode,
      'the official mode is "pixel"',
    );
  }
  if (!(Number.isInteger(maxCount) && maxCount >= 1)) {
    fail(
      "randomErase maxCount",
      "a positive integer",
      maxCount,
      "the official count is 1",
    );
  }
  if (!(a0 > 0 && a0 <= a1 && a1 <= 1) || !(minAspect > 0 && minAspect <= 1)) {
    fail(
      "randomErase area / minAspect",
      "0 < area min <= max <= 1 and 0 < minAspect <= 1",
      [a0, a1, minAspect],
      "the defaults are [0.02, 1/3] and 0.3",
    );
  }
  const erased: ErasedBox[] = [];
  if (rng.float() > p) return erased;
  const area = width * height;
  const count = maxCount === 1 ? 1 : 1 + rng.int(maxCount);
  const lo = Math.log(minAspect), hi = Math.log(1 / minAspect);
  for (let k = 0; k < count; k++) {
    for (let attempt = 0; attempt < 10; attempt++) {
      const target = (a0 + (a1 - a0) * rng.float()) * area / count;
      const aspect = Math.exp(lo + (hi - lo) * rng.float());
      const h = pyRound(Math.sqrt(target * aspect));
      const w = pyRound(Math.sqrt(target / aspect));
      if (w < width && h < height) {
        const top = rng.int(height - h + 1);
        const left = rng.int(width - w + 1);
        fillRect(pixels, width, top, left, h, w, mode, rng);
        erased.push({ top, left, height: h, width: w });
        break;
      }
    }
  }
  return erased;
}

function fillRect(
  px: Float32Array,
  W: number,
  top: number,
  left: number,
  h: number,
  w: number,
  mode: EraseMode,
  rng: Rng,
): void {
  if (mode === "pixel") {
    // Channel-major draw order, as torch fills a (C, h, w) tensor.
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < h; y++) {
        let o = ((top + y) * W + left) * 3 + c;
        for (let x = 0; x < w; x++, o += 3) px[o] = rng.normal();
      }
    }
    return;
  }
  const colour = mode === "rand"
    ? [rng.normal(), rng.normal(), rng.normal()]
    : [0, 0, 0];
  for (let y = 0; y < h; y++) {
    let o = ((top + y) * W + left) * 3;
    for (let x = 0; x < w; x++, o += 3) {
      px[o] = colour[0];
      px[o + 1] = colour[1];
      px[o + 2] = colour[2];
    }
  }
}

/**
 * The crop `top, left, height, width` of the image resized to `size` x
 * `size`, as torchvision's `resized_crop` on a PIL image: `Image.crop`, then
 * `Image.resize` (Pillow-exact through `resizeImage`).
 *
 * @example
 * ```ts
 * import { resizedCrop } from "tokenlab/data/transforms.ts";
 * const image = { width: 8, height: 6, data: new Uint8Array(144).map((_, i) => i) };
 * console.log(resizedCrop(image, 1, 2, 4, 4, 2, "bilinear").width); // 2
 * ```
 */
export function resizedCrop(
  image: RgbImage,
  top: number,
  left: number,
  height: number,
  width: number,
  size: number,
  filter: AffineFilter,
): RgbImage {
  const crop = cropImage(image, top, left, height, width);
  return resizeImage(crop, size, size, { filter });
}

/**
 * The per-sample training transform: flip → RandAugment → RandomResizedCrop
 * → normalise → random erasing (see the module doc), image and score map
 * together. `config` may be partial: the missing fields take the official
 * defaults ({@linkcode DEFAULT_TRAIN_TRANSFORM}). Every random draw comes
 * from `rng`. The map is returned in the flipped and augmented frame
 * (uncropped); `box` locates the crop in it for label pooling.
 *
 * @throws {TransformError} for a bad config or image
 *
 * @example
 * ```ts
 * import { Rng } from "tokenlab";
 * import { trainTransform } from "tokenlab/data/transforms.ts";
 * const image = { width: 40, height: 30, data: new Uint8Array(3600).map((_, i) => i % 251) };
 * const out = trainTransform({ image }, { size: 16 }, new Rng(0));
 * console.log(out.pixels.length, out.box, out.applied.randAugment.map((o) => o.name));
 * ```
 */
export function trainTransform(
  sample: { image: RgbImage; map?: ScoreMap },
  config: Partial<TrainTransformConfig>,
  rng: Rng,
): TrainSample {
  const c = resolveTrainTransform(config);
  let { image, map } = sample;
  checkRgbImage(image, "trainTransform image");
  let flipped = false;
  if (c.hflip > 0 && rng.float() < c.hflip) {
    flipped = true;
    image = flipImage(image);
    if (map) map = flipMap(map);
  }
  let ops: AppliedOp[] = [];
  if (c.autoAugment !== null) {
    const fill = [0, 1, 2].map((i) =>
      Math.min(255, pyRound(255 * c.mean[i]))
    ) as unknown as [number, number, number];
    const ra = randAugment(image, c.autoAugment, rng, {
      interpolation: c.interpolation,
      fill,
    });
    image = ra.image;
    ops = ra.ops;
    if (map) {
      for (const op of ops) {
        if (op.mapOp) {
          map = transformMap(map, op.mapOp, {
            imageSize: [image.height, image.width],
          });
        }
      }
    }
  }
  const crop = sampleCropBox([image.height, image.width], rng, {
    scale: c.scale,
    ratio: c.ratio,
  });
  const filter: AffineFilter = c.interpolation === "random"
    ? (rng.int(2) === 0 ? "bilinear" : "bicubic")
    : c.interpolation;
  const resized = resizedCrop(
    image,
    crop.top,
    crop.left,
    crop.height,
    crop.width,
    c.size,
    filter,
  );
  const pixels = normalizeImage(resized, c.mean, c.std);
  const erased = c.reprob > 0
    ? randomErase(pixels, c.size, c.size, rng, {
      probability: c.reprob,
      mode: c.remode,
      maxCount: c.recount,
    })
    : [];
  const out: TrainSample = {
    pixels,
    box: crop.normalized,
    applied: {
      flipped,
      randAugment: ops,
      crop: {
        top: crop.top,
        left: crop.left,
        height: crop.height,
        width: crop.width,
        filter,
      },
      erased,
    },
  };
  if (map) out.map = map;
  return out;
}

/**
 * Fills in the evaluation defaults and checks every field.
 *
 * @example
 * ```ts
 * import { resolveEvalTransform } from "tokenlab/data/transforms.ts";
 * console.log(resolveEvalTransform({ size: 224 }).cropPct); // 0.875
 * ```
 */
export function resolveEvalTransform(
  config: Partial<EvalTransformConfig> & { size: number },
): EvalTransformConfig {
  const c: EvalTransformConfig = {
    ...DEFAULT_EVAL_TRANSFORM,
    size: config?.size,
  };
  for (const key of ["cropPct", "interpolation", "mean", "std"] as const) {
    if (config?.[key] !== undefined) {
      (c as unknown as Record<string, unknown>)[key] = config[key];
    }
  }
  checkSize(c.size, "evalTransform");
  if (!(typeof c.cropPct === "number" && c.cropPct > 0 && c.cropPct <= 1)) {
    fail(
      "evalTransform.cropPct",
      "a fraction in (0, 1]",
      c.cropPct,
      "timm's default is 0.875 (LV-ViT-T/S 0.9, M/L 1.0); 1 resizes the short side to the size",
    );
  }
  if (!["nearest", "bilinear", "bicubic"].includes(c.interpolation)) {
    fail(
      "evalTransform.interpolation",
      '"bilinear", "bicubic" or "nearest"',
      c.interpolation,
      'LV-ViT evaluates with "bicubic"',
    );
  }
  checkStats(c.mean, c.std, "evalTransform");
  return c;
}

/**
 * The evaluation image before normalisation: the short side resized to
 * `floor(size / cropPct)` (torchvision `Resize`), then the central `size` x
 * `size` crop (torchvision `CenterCrop`).
 *
 * @throws {TransformError} for a bad config or image
 *
 * @example
 * ```ts
 * import { evalImage } from "tokenlab/data/transforms.ts";
 * const image = { width: 500, height: 375, data: new Uint8Array(500 * 375 * 3) };
 * const out = evalImage(image, { size: 224 });
 * console.log(out.width, out.height); // 224 224
 * ```
 */
export function evalImage(
  image: RgbImage,
  config: Partial<EvalTransformConfig> & { size: number },
): RgbImage {
  const c = resolveEvalTransform(config);
  checkRgbImage(image, "evalTransform image");
  const scaleSize = Math.floor(c.size / c.cropPct);
  const { width: w, height: h } = image;
  let resized = image;
  if (!((w <= h && w === scaleSize) || (h <= w && h === scaleSize))) {
    const [ow, oh] = w < h
      ? [scaleSize, Math.trunc((scaleSize * h) / w)]
      : [Math.trunc((scaleSize * w) / h), scaleSize];
    resized = resizeImage(image, ow, oh, { filter: c.interpolation });
  }
  const top = pyRound((resized.height - c.size) / 2);
  const left = pyRound((resized.width - c.size) / 2);
  return cropImage(resized, top, left, c.size, c.size);
}

/**
 * The evaluation transform: {@linkcode evalImage} (resize the short side to
 * `floor(size / cropPct)`, centre crop `size`), then normalisation; returns
 * `size * size * 3` float32 pixels, HWC. Missing fields take
 * {@linkcode DEFAULT_EVAL_TRANSFORM}.
 *
 * @throws {TransformError} for a bad config or image
 *
 * @example
 * ```ts
 * import { evalTransform } from "tokenlab/data/transforms.ts";
 * const image = { width: 50, height: 40, data: new Uint8Array(6000).fill(128) };
 * console.log(evalTransform(image, { size: 32 }).length); // 3072
 * ```
 */
export function evalTransform(
  image: RgbImage,
  config: Partial<EvalTransformConfig> & { size: number },
): Float32Array {
  const c = resolveEvalTransform(config);
  return normalizeImage(evalImage(image, c), c.mean, c.std);
}
