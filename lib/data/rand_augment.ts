/**
 * RandAugment as timm 0.4 implements it (timm/data/auto_augment.py, the
 * version the official TokenLabeling code pins: `timm==0.4.5`), on 8-bit RGB
 * images with Pillow-exact pixel operations (`image_colour.ts` and
 * `image_geometry.ts`), and with the spatial ops reported as
 * {@linkcode MapOp}s so that the score map is moved by exactly the same op
 * (`transformMap`).
 *
 * ## The config string
 *
 * `rand-<section>-<section>...`, sections in any order, each a key followed
 * by its value (timm 0.4's keys):
 *
 * - `m<int>`: magnitude, 0..10 (default 10, timm's `_MAX_LEVEL`);
 * - `n<int>`: ops applied per image (default 2);
 * - `mstd<float>`: standard deviation of Gaussian noise added to the
 *   magnitude at every op application, the result clipped to [0, 10]
 *   (default 0: none);
 * - `inc<0|1>`: the "increasing" op set, whose ops all grow stronger with
 *   the magnitude (default 0);
 * - `w<int>`: op choice weights (only `w0`, timm's experimental table; the
 *   ops are then drawn without replacement).
 *
 * The official default is `rand-m9-mstd0.5-inc1` (LV-ViT-L: `rand-n3-...`).
 * timm 0.4 has no `mmax` or `p` key (both arrived in later timm versions);
 * this parser rejects them, as any other unknown key, with an error listing
 * the known ones. Two timm 0.4 quirks are not reproduced: it skips sections
 * without a digit silently (here an error) and turns `inc` on for any value,
 * `inc0` included (Python's `bool("0")`; here `inc0` means off).
 *
 * ## What an op does (timm 0.4)
 *
 * Ops are chosen uniformly with replacement (`np.random.choice`). Each op
 * then runs with probability 0.5; its magnitude is `m`, plus `mstd` times a
 * standard normal draw when `mstd > 0`, clipped to [0, 10]; `level = m / 10`:
 *
 * | op | argument |
 * | --- | --- |
 * | Rotate | `30 level` degrees, sign random (50 %) |
 * | ShearX, ShearY | factor `0.3 level`, sign random |
 * | TranslateXRel, TranslateYRel | `0.45 level` of the width / height, sign random |
 * | Posterize | keep `int(4 level)` bits (0 bits: black) |
 * | PosterizeIncreasing | keep `4 - int(4 level)` bits |
 * | Solarize | threshold `int(256 level)` |
 * | SolarizeIncreasing | threshold `256 - int(256 level)` |
 * | SolarizeAdd | add `int(110 level)` below 128 |
 * | Color, Contrast, Brightness, Sharpness | factor `1.8 level + 0.1` |
 * | the same, Increasing | factor `1 + 0.9 level`, sign random |
 * | AutoContrast, Equalize, Invert | no argument |
 *
 * Spatial ops fill the uncovered area with the ImageNet mean colour as the
 * official code passes it (`round(255 mean)` = (124, 116, 104)) and resample
 * with bilinear or bicubic drawn per op application (timm's default when
 * the training interpolation is `"random"`), or a fixed filter.
 *
 * Draw order per image, all from the passed {@linkcode Rng}: the `n` op
 * indices; then per op: the probability draw, the magnitude noise (when
 * `mstd > 0`, for every op), the sign (ops that have one), the filter
 * (spatial ops, when random): timm's order.
 *
 * @module
 */

import type { Rng } from "../random.ts";
import type { MapOp } from "../labels/map_transforms.ts";
import type { RgbImage } from "./image.ts";
import {
  autocontrast,
  enhanceBrightness,
  enhanceColor,
  enhanceContrast,
  enhanceSharpness,
  equalize,
  invert,
  posterize,
  solarize,
  solarizeAdd,
} from "./image_colour.ts";
import {
  type AffineFilter,
  type RgbColor,
  transformImage,
} from "./image_geometry.ts";
import { TokenlabError } from "../errors.ts";

/** Thrown for a bad RandAugment config: what was expected, what was found, what to do. */
export class RandAugmentError extends TokenlabError {
  /** Makes an error with this message. */
  constructor(message: string) {
    super(message);
  }
}

/** The names of timm's RandAugment ops. */
export type RandAugmentOpName =
  | "AutoContrast"
  | "Equalize"
  | "Invert"
  | "Rotate"
  | "Posterize"
  | "PosterizeIncreasing"
  | "Solarize"
  | "SolarizeIncreasing"
  | "SolarizeAdd"
  | "Color"
  | "ColorIncreasing"
  | "Contrast"
  | "ContrastIncreasing"
  | "Brightness"
  | "BrightnessIncreasing"
  | "Sharpness"
  | "SharpnessIncreasing"
  | "ShearX"
  | "ShearY"
  | "TranslateXRel"
  | "TranslateYRel";

/** timm's `_RAND_TRANSFORMS` (the default op set), in timm's order. */
export const RAND_TRANSFORMS: readonly RandAugmentOpName[] = [
  "AutoContrast",
  "Equalize",
  "Invert",
  "Rotate",
  "Posterize",
  "Solarize",
  "SolarizeAdd",
  "Color",
  "Contrast",
  "Brightness",
  "Sharpness",
  "ShearX",
  "ShearY",
  "TranslateXRel",
  "TranslateYRel",
];

/** timm's `_RAND_INCREASING_TRANSFORMS` (`inc1`), in timm's order. */
export const RAND_INCREASING_TRANSFORMS: readonly RandAugmentOpName[] = [
  "AutoContrast",
  "Equalize",
  "Invert",
  "Rotate",
  "PosterizeIncreasing",
  "SolarizeIncreasing",
  "SolarizeAdd",
  "ColorIncreasing",
  "ContrastIncreasing",
  "BrightnessIncreasing",
  "SharpnessIncreasing",
  "ShearX",
  "ShearY",
  "TranslateXRel",
  "TranslateYRel",
];

/**
 * timm's `_RAND_CHOICE_WEIGHTS_0` (`w0`), by position in the op list (timm
 * looks the weights up by the default set's names and applies them to the
 * chosen set by position, so the increasing ops take their plain
 * counterparts' weights).
 */
const CHOICE_WEIGHTS_0: readonly number[] = [
  0.025, // AutoContrast
  0.005, // Equalize
  0, // Invert
  0.3, // Rotate
  0, // Posterize
  0.005, // Solarize
  0.005, // SolarizeAdd
  0.025, // Color
  0.005, // Contrast
  0.005, // Brightness
  0.025, // Sharpness
  0.2, // ShearX
  0.2, // ShearY
  0.1, // TranslateXRel
  0.1, // TranslateYRel
];

/** The most magnitude of timm 0.4 (`_MAX_LEVEL`). */
export const MAX_MAGNITUDE = 10;

/** A parsed RandAugment config. */
export interface RandAugmentConfig {
  /** Ops applied per image (`n`, default 2). */
  numOps: number;
  /** Magnitude 0..10 (`m`, default 10). */
  magnitude: number;
  /** Standard deviation of the per-op magnitude noise (`mstd`, default 0). */
  magnitudeStd: number;
  /** Whether the increasing op set is used (`inc1`). */
  increasing: boolean;
  /** The choice weights index (`w`), or null for uniform choice with replacement. */
  weights: number | null;
  /** Probability of applying each chosen op (timm 0.4: always 0.5). */
  probability: number;
  /** The op set chosen from. */
  ops: readonly RandAugmentOpName[];
}

const KNOWN_KEYS = "m (magnitude, integer 0..10), n (ops per image), " +
  "mstd (magnitude noise std), inc (0 or 1: increasing ops), w (0: weighted choice)";

/**
 * Parses a timm RandAugment config string such as `"rand-m9-mstd0.5-inc1"`.
 *
 * @throws {RandAugmentError} for a string not starting with `rand`, an
 *   unknown key (the error lists the known ones), or a bad value
 *
 * @example
 * ```ts
 * import { parseRandAugment } from "tokenlab/data/rand_augment.ts";
 * const c = parseRandAugment("rand-m9-mstd0.5-inc1");
 * console.log(c.numOps, c.magnitude, c.magnitudeStd, c.increasing); // 2 9 0.5 true
 * ```
 */
export function parseRandAugment(spec: string): RandAugmentConfig {
  if (typeof spec !== "string") {
    throw new RandAugmentError(
      `a RandAugment config must be a string such as "rand-m9-mstd0.5-inc1", found ${typeof spec}`,
    );
  }
  const sections = spec.split("-");
  if (sections[0] !== "rand") {
    throw new RandAugmentError(
      `a RandAugment config starts with "rand", found ${
        JSON.stringify(spec)
      }; the official one is "rand-m9-mstd0.5-inc1"`,
    );
  }
  const config: RandAugmentConfig = {
    numOps: 2,
    magnitude: MAX_MAGNITUDE,
    magnitudeStd: 0,
    increasing: false,
    weights: null,
    probability: 0.5,
    ops: RAND_TRANSFORMS,
  };
  const bad = (section: string, why: string) =>
    new RandAugmentError(
      `RandAugment config ${JSON.stringify(spec)}: section ${
        JSON.stringify(section)
      } ${why}`,
    );
  for (const section of sections.slice(1)) {
    const match = /^([a-z]+)(\d.*)?$/.exec(section);
    if (!match) {
      throw bad(
        section,
        `is not a key followed by a value; the known keys are ${KNOWN_KEYS}`,
      );
    }
    const [, key, value] = match;
    if (value === undefined) {
      throw bad(section, `has no value; write it as ${key}<number>`);
    }
    const integer = /^\d+$/.test(value) ? Number(value) : NaN;
    switch (key) {
      case "m":
        if (!(integer <= MAX_MAGNITUDE)) {
          throw bad(
            section,
            `needs an integer magnitude 0..10, found ${value}`,
          );
        }
        config.magnitude = integer;
        break;
      case "n":
        if (!(integer >= 1)) {
          throw bad(
            section,
            `needs a positive integer count of ops, found ${value}`,
          );
        }
        config.numOps = integer;
        break;
      case "mstd": {
        const std = /^\d+(\.\d*)?(e[+-]?\d+)?$/i.test(value)
          ? Number(value)
          : NaN;
        if (!(std >= 0 && Number.isFinite(std))) {
          throw bad(section, `needs a standard deviation >= 0, found ${value}`);
        }
        config.magnitudeStd = std;
        break;
      }
      case "inc":
        if (integer !== 0 && integer !== 1) {
          throw bad(section, `needs 0 or 1, found ${value}`);
        }
        config.increasing = integer === 1;
        config.ops = integer === 1
          ? RAND_INCREASING_TRANSFORMS
          : RAND_TRANSFORMS;
        break;
      case "w":
        if (integer !== 0) {
          throw bad(
            section,
            `needs 0 (timm's only weight table), found ${value}`,
          );
        }
        config.weights = 0;
        break;
      default: {
        const later = key === "mmax" || key === "p"
          ? ` ("${key}" came with later timm versions; timm 0.4, which the official code uses, has no such key)`
          : "";
        throw bad(
          section,
          `has the unknown key ${
            JSON.stringify(key)
          }${later}; the known keys are ${KNOWN_KEYS}`,
        );
      }
    }
  }
  if (config.weights !== null) {
    const usable = CHOICE_WEIGHTS_0.filter((w) => w > 0).length;
    if (config.numOps > usable) {
      throw new RandAugmentError(
        `RandAugment config ${
          JSON.stringify(spec)
        }: with w0 the ops are drawn without replacement from the ${usable} ops of non-zero weight, so n can be at most ${usable}, found ${config.numOps}`,
      );
    }
  }
  return config;
}

/** Options of {@linkcode randAugment}. */
export interface RandAugmentOptions {
  /**
   * The resampling filter of the spatial ops: `"random"` (default, timm's
   * choice between bilinear and bicubic per op application when the
   * training interpolation is random), or a fixed filter (`"nearest"` is
   * not an official choice: timm maps unknown names to bilinear; it is here
   * for alignment tests).
   */
  interpolation?: "random" | AffineFilter;
  /** Fill colour of the spatial ops (default (124, 116, 104), the ImageNet mean as the official code rounds it). */
  fill?: RgbColor;
}

/** One op that was applied, with its drawn arguments (for display and debugging). */
export interface AppliedOp {
  /** timm's op name. */
  name: RandAugmentOpName;
  /** The magnitude it ran with (after noise and clipping). */
  magnitude: number;
  /**
   * Its argument: degrees, shear factor, translation fraction, bits kept,
   * threshold, amount added or enhance factor; absent for AutoContrast,
   * Equalize and Invert.
   */
  value?: number;
  /** The filter, for spatial ops. */
  filter?: AffineFilter;
  /** The spatial op to move the score map with (`transformMap`), for spatial ops. */
  mapOp?: MapOp;
}

/** What {@linkcode randAugment} returns. */
export interface RandAugmentResult {
  /** The augmented image (the input itself when no op ran). */
  image: RgbImage;
  /** The ops that ran, in order (skipped ones are not listed). */
  ops: AppliedOp[];
}

/** The ImageNet mean as the official code passes it to RandAugment: `round(255 mean)`. */
export const RAND_AUGMENT_FILL: RgbColor = [124, 116, 104];

function resolveConfig(config: string | RandAugmentConfig): RandAugmentConfig {
  const c = typeof config === "string" ? parseRandAugment(config) : config;
  const ok = c && Number.isInteger(c.numOps) && c.numOps >= 0 &&
    Number.isFinite(c.magnitude) && Number.isFinite(c.magnitudeStd) &&
    c.magnitudeStd >= 0 && c.probability >= 0 && c.probability <= 1 &&
    Array.isArray(c.ops) && c.ops.length > 0;
  if (!ok) {
    throw new RandAugmentError(
      `a RandAugment config needs numOps (integer >= 0), a finite magnitude, magnitudeStd >= 0, probability in [0, 1] and a non-empty op list; found ${
        JSON.stringify(c)
      }. Use parseRandAugment("rand-m9-mstd0.5-inc1") to build one`,
    );
  }
  for (const op of c.ops) {
    if (
      !RAND_TRANSFORMS.includes(op) && !RAND_INCREASING_TRANSFORMS.includes(op)
    ) {
      throw new RandAugmentError(
        `unknown RandAugment op ${JSON.stringify(op)}; the ops are ${
          [...new Set([...RAND_TRANSFORMS, ...RAND_INCREASING_TRANSFORMS])]
            .join(", ")
        }`,
      );
    }
  }
  return c;
}

/** Draws the op indices: uniform with replacement, or weighted without (w0). */
function chooseOps(c: RandAugmentConfig, rng: Rng): number[] {
  const picks: number[] = [];
  if (c.weights === null) {
    for (let i = 0; i < c.numOps; i++) picks.push(rng.int(c.ops.length));
    return picks;
  }
  if (c.ops.length !== CHOICE_WEIGHTS_0.length) {
    throw new RandAugmentError(
      `choice weights w0 are defined for timm's 15-op sets, found ${c.ops.length} ops`,
    );
  }
  const weights = [...CHOICE_WEIGHTS_0];
  for (let i = 0; i < c.numOps; i++) {
    const total = weights.reduce((a, b) => a + b, 0);
    let u = rng.float() * total, j = 0;
    for (; j < weights.length - 1; j++) {
      if (weights[j] > 0 && u < weights[j]) break;
      u -= weights[j];
    }
    while (weights[j] === 0) j--; // rounding at the very end of the range
    picks.push(j);
    weights[j] = 0;
  }
  return picks;
}

/**
 * Applies RandAugment to an image: `numOps` ops chosen from the config's
 * set, each run with probability 0.5 at a (noisy) magnitude, as timm 0.4
 * does. Every random draw comes from `rng`. Spatial ops are returned with
 * their {@linkcode MapOp} so the score map can follow (`transformMap(map,
 * op.mapOp, { imageSize })`).
 *
 * @param config a config string (`"rand-m9-mstd0.5-inc1"`) or a parsed config
 * @throws {RandAugmentError} for a bad config
 *
 * @example
 * ```ts
 * import { Rng } from "tokenlab";
 * import { randAugment } from "tokenlab/data/rand_augment.ts";
 * const image = { width: 8, height: 8, data: new Uint8Array(192).map((_, i) => i) };
 * const { image: out, ops } = randAugment(image, "rand-m9-mstd0.5-inc1", new Rng(3));
 * console.log(out.width, ops.map((o) => `${o.name} ${o.value ?? ""}`));
 * ```
 */
export function randAugment(
  image: RgbImage,
  config: string | RandAugmentConfig,
  rng: Rng,
  options: RandAugmentOptions = {},
): RandAugmentResult {
  const c = resolveConfig(config);
  const interpolation = options.interpolation ?? "random";
  if (!["random", "nearest", "bilinear", "bicubic"].includes(interpolation)) {
    throw new RandAugmentError(
      `interpolation must be "random", "bilinear", "bicubic" or "nearest", found ${
        JSON.stringify(interpolation)
      }`,
    );
  }
  const fill = options.fill ?? RAND_AUGMENT_FILL;
  const applied: AppliedOp[] = [];
  for (const index of chooseOps(c, rng)) {
    const name = c.ops[index];
    if (c.probability < 1 && rng.float() > c.probability) continue;
    let magnitude = c.magnitude;
    if (c.magnitudeStd > 0) magnitude += c.magnitudeStd * rng.normal();
    magnitude = Math.min(MAX_MAGNITUDE, Math.max(0, magnitude));
    const level = magnitude / MAX_MAGNITUDE;
    const signed = (v: number) => (rng.float() > 0.5 ? -v : v);
    let mapOp: MapOp | undefined;
    let value: number | undefined;
    switch (name) {
      case "AutoContrast":
        image = autocontrast(image);
        break;
      case "Equalize":
        image = equalize(image);
        break;
      case "Invert":
        image = invert(image);
        break;
      case "Rotate":
        value = signed(level * 30);
        mapOp = { op: "rotate", degrees: value };
        break;
      case "ShearX":
      case "ShearY":
        value = signed(level * 0.3);
        mapOp = { op: name === "ShearX" ? "shearX" : "shearY", factor: value };
        break;
      case "TranslateXRel":
      case "TranslateYRel":
        value = signed(level * 0.45);
        mapOp = {
          op: name === "TranslateXRel" ? "translateXRel" : "translateYRel",
          fraction: value,
        };
        break;
      case "Posterize":
      case "PosterizeIncreasing": {
        const bits = Math.trunc(level * 4);
        value = name === "Posterize" ? bits : 4 - bits;
        // timm's posterize returns the image itself for 8 bits or more.
        if (value < 8) image = posterize(image, value);
        break;
      }
      case "Solarize":
      case "SolarizeIncreasing": {
        const t = Math.trunc(level * 256);
        value = name === "Solarize" ? t : 256 - t;
        image = solarize(image, value);
        break;
      }
      case "SolarizeAdd":
        value = Math.trunc(level * 110);
        image = solarizeAdd(image, value, 128);
        break;
      case "Color":
      case "Contrast":
      case "Brightness":
      case "Sharpness":
        value = level * 1.8 + 0.1;
        image = enhance(name, image, value);
        break;
      case "ColorIncreasing":
      case "ContrastIncreasing":
      case "BrightnessIncreasing":
      case "SharpnessIncreasing":
        value = 1 + signed(level * 0.9);
        image = enhance(name, image, value);
        break;
    }
    const op: AppliedOp = { name, magnitude };
    if (value !== undefined) op.value = value;
    if (mapOp) {
      const filter: AffineFilter = interpolation === "random"
        ? (rng.int(2) === 0 ? "bilinear" : "bicubic")
        : interpolation;
      image = transformImage(image, mapOp, { filter, fill });
      op.filter = filter;
      op.mapOp = mapOp;
    }
    applied.push(op);
  }
  return { image, ops: applied };
}

function enhance(
  name: RandAugmentOpName,
  image: RgbImage,
  factor: number,
): RgbImage {
  if (name.startsWith("Color")) return enhanceColor(image, factor);
  if (name.startsWith("Contrast")) return enhanceContrast(image, factor);
  if (name.startsWith("Brightness")) return enhanceBrightness(image, factor);
  return enhanceSharpness(image, factor);
}
