/**
 * What a synthetic-scenes dataset is made of: its classes and its options.
 * The scenes drawn from them, and the dataset, are in `synthetic_scenes.ts`.
 *
 * ## The classes
 *
 * Every object of a scene belongs to one of `numClasses` classes, and a
 * class is a fixed combination of
 *
 * - a shape (11: circle, square, triangle, star, ring, cross, hexagon,
 *   diamond, ellipse, crescent, heart),
 * - a colour (8 saturated hues: red, orange, yellow, green, cyan, blue,
 *   purple, magenta), and
 * - a texture (5: plain, striped, dotted, checkered, ringed; the pattern
 *   alternates between the object's colour and a darker shade of it).
 *
 * Class `c` has shape `c mod 11`, colour `c mod 8` and texture `c mod 5`:
 * because 11, 8 and 5 share no factor, the first 440 classes are distinct
 * combinations ({@linkcode SYNTHETIC_MAX_CLASSES}). The first 88 classes
 * already differ in shape and colour; beyond 88, some pairs of classes
 * differ only in texture (hard to see at 32 px). Ten classes (the default)
 * have ten different shapes, and two pairs of them share a colour.
 *
 * ## The knobs (see {@linkcode SyntheticOptions})
 *
 * | option | default | what it does |
 * | --- | --- | --- |
 * | `size` | 32 | image side in pixels (square images; any integer >= 16) |
 * | `count` | 1000 | number of images |
 * | `numClasses` | 10 | classes K (1 to 440) |
 * | `seed` | 0 | the generator's seed |
 * | `split` | `"train"` | which independent stream: `"train"`, `"val"`, `"test"` |
 * | `minObjects`, `maxObjects` | 1, 4 | objects per scene (uniform) |
 * | `scale` | [0.25, 0.7] | object diameter as a fraction of the side (log-uniform) |
 * | `rotation` | 180 | rotation drawn uniformly in [-rotation, rotation] degrees |
 * | `aspectJitter` | 0.15 | each axis stretched by a factor in [1 - a, 1 + a] |
 * | `occlusion` | true | objects may overlap (later on top); false: placed apart |
 * | `background` | 0.6 | strength of the background's texture, 0 (flat) to 1 |
 * | `hueJitter` | 8 | hue jitter of object colours in degrees |
 * | `noise` | 8 | per-pixel noise, uniform integer in [-noise, noise] per channel |
 *
 * @example
 * ```ts
 * import { resolveSyntheticOptions, syntheticClassNames } from "tokenlab/data/synthetic_options.ts";
 * const options = resolveSyntheticOptions({ size: 64, numClasses: 3 });
 * console.log(options.count, syntheticClassNames(options.numClasses)); // 1000 [ "red_circle_plain", "orange_square_striped", "yellow_triangle_dotted" ]
 * ```
 *
 * @module
 */

import { checkOptionKeys, found, rangeChecks } from "./_options.ts";

const { int: checkInt, number: checkNum } = rangeChecks("SyntheticScenes");

// ---------------------------------------------------------------------------
// Classes.

/** The shapes, in class order (class c has shape c mod 11). */
export const SYNTHETIC_SHAPES: readonly string[] = [
  "circle",
  "square",
  "triangle",
  "star",
  "ring",
  "cross",
  "hexagon",
  "diamond",
  "ellipse",
  "crescent",
  "heart",
];

/** The colours and their hues in degrees (class c has colour c mod 8). */
export const SYNTHETIC_COLOURS: readonly { name: string; hue: number }[] = [
  { name: "red", hue: 0 },
  { name: "orange", hue: 28 },
  { name: "yellow", hue: 55 },
  { name: "green", hue: 120 },
  { name: "cyan", hue: 185 },
  { name: "blue", hue: 225 },
  { name: "purple", hue: 270 },
  { name: "magenta", hue: 315 },
];

/** The textures (class c has texture c mod 5). */
export const SYNTHETIC_TEXTURES: readonly string[] = [
  "plain",
  "striped",
  "dotted",
  "checkered",
  "ringed",
];

/**
 * The most classes the generator can make distinct: 11 shapes x 8 colours
 * x 5 textures = 440 (the three counts share no factor).
 */
export const SYNTHETIC_MAX_CLASSES = 440;

/** What a synthetic class is made of. */
export interface SyntheticClass {
  /** Class id. */
  id: number;
  /** Readable name, `<colour>_<shape>_<texture>`, e.g. `red_circle_plain`. */
  name: string;
  /** Shape name (one of {@linkcode SYNTHETIC_SHAPES}). */
  shape: string;
  /** Colour name (one of {@linkcode SYNTHETIC_COLOURS}). */
  colour: string;
  /** Texture name (one of {@linkcode SYNTHETIC_TEXTURES}). */
  texture: string;
}

/**
 * The shape, colour and texture of class `id`.
 *
 * @example
 * ```ts
 * import { syntheticClass } from "tokenlab/data/synthetic_options.ts";
 * console.log(syntheticClass(0).name, syntheticClass(9).name); // red_circle_plain orange_crescent_ringed
 * ```
 */
export function syntheticClass(id: number): SyntheticClass {
  if (!(Number.isInteger(id) && id >= 0 && id < SYNTHETIC_MAX_CLASSES)) {
    throw new RangeError(
      `syntheticClass: expected a class id, an integer in [0, ${SYNTHETIC_MAX_CLASSES}), found ${id}`,
    );
  }
  const shape = SYNTHETIC_SHAPES[id % SYNTHETIC_SHAPES.length];
  const colour = SYNTHETIC_COLOURS[id % SYNTHETIC_COLOURS.length].name;
  const texture = SYNTHETIC_TEXTURES[id % SYNTHETIC_TEXTURES.length];
  return { id, name: `${colour}_${shape}_${texture}`, shape, colour, texture };
}

/**
 * The class names of a synthetic dataset with `numClasses` classes.
 *
 * @example
 * ```ts
 * import { syntheticClassNames } from "tokenlab/data/synthetic_options.ts";
 * console.log(syntheticClassNames(3)); // [ "red_circle_plain", "orange_square_striped", "yellow_triangle_dotted" ]
 * ```
 */
export function syntheticClassNames(numClasses: number): string[] {
  checkInt("numClasses", numClasses, 1, SYNTHETIC_MAX_CLASSES);
  return Array.from({ length: numClasses }, (_, c) => syntheticClass(c).name);
}

// ---------------------------------------------------------------------------
// Options.

/** The independent streams of one generator. */
export type SyntheticSplit = "train" | "val" | "test";

const SPLITS: readonly SyntheticSplit[] = ["train", "val", "test"];

/** Options of {@linkcode SyntheticScenes}; every field has a default. */
export interface SyntheticOptions {
  /** Image side in pixels: square images, any integer >= 16 (default 32). */
  size?: number;
  /** Number of images (default 1000). */
  count?: number;
  /**
   * Number of classes K, 1 to {@linkcode SYNTHETIC_MAX_CLASSES} (default 10).
   * Class c is shape c mod 11, colour c mod 8, texture c mod 5.
   */
  numClasses?: number;
  /** Seed of the generator (default 0); any 32-bit integer. */
  seed?: number;
  /**
   * Which stream of the generator (default `"train"`): `"train"`, `"val"`
   * and `"test"` with one seed are independent, so they make disjoint sets.
   */
  split?: SyntheticSplit;
  /** Fewest objects in a scene (default 1). */
  minObjects?: number;
  /** Most objects in a scene (default 4); the count is uniform in between. */
  maxObjects?: number;
  /**
   * Range of the object diameter as a fraction of the image side (default
   * [0.25, 0.7]), drawn log-uniformly. Both ends in (0, 2].
   */
  scale?: readonly [number, number];
  /**
   * Objects are rotated by an angle uniform in [-rotation, rotation]
   * degrees (default 180: any orientation; 0: upright).
   */
  rotation?: number;
  /**
   * Each object axis is stretched by a factor uniform in [1 - a, 1 + a]
   * (default 0.15; 0 to 0.5).
   */
  aspectJitter?: number;
  /**
   * Whether objects may overlap (default true: drawn in order, later ones
   * cover earlier ones). With false each object is placed where its
   * bounding circle (1.25 x its radius x its larger stretch) meets no earlier one (up to 30 tries, else it is left
   * out, so a scene may have fewer than `minObjects`, never none).
   */
  occlusion?: boolean;
  /**
   * Strength of the background texture, 0 (a flat tinted grey) to 1
   * (default 0.6): scales the smooth noise (up to +-45 levels), the
   * gradient (up to 30) and the stripes (up to +-18).
   */
  background?: number;
  /** Hue jitter of object colours, in degrees, 0 to 20 (default 8). */
  hueJitter?: number;
  /**
   * Per-pixel noise: every channel of every pixel gets an integer uniform in
   * [-noise, noise] (default 8; 0 to 24).
   */
  noise?: number;
}

/** {@linkcode SyntheticOptions} with every default filled in. */
export interface ResolvedSyntheticOptions {
  /** Image side in pixels. */
  size: number;
  /** Number of images. */
  count: number;
  /** Number of classes. */
  numClasses: number;
  /** Seed. */
  seed: number;
  /** Stream. */
  split: SyntheticSplit;
  /** Fewest objects. */
  minObjects: number;
  /** Most objects. */
  maxObjects: number;
  /** Diameter range, fraction of the side. */
  scale: [number, number];
  /** Maximum rotation in degrees. */
  rotation: number;
  /** Axis stretch amplitude. */
  aspectJitter: number;
  /** Whether objects may overlap. */
  occlusion: boolean;
  /** Background texture strength. */
  background: number;
  /** Hue jitter in degrees. */
  hueJitter: number;
  /** Per-pixel noise amplitude. */
  noise: number;
}

/** The defaults of {@linkcode SyntheticOptions}. */
export const SYNTHETIC_DEFAULTS: Readonly<ResolvedSyntheticOptions> = {
  size: 32,
  count: 1000,
  numClasses: 10,
  seed: 0,
  split: "train",
  minObjects: 1,
  maxObjects: 4,
  scale: [0.25, 0.7],
  rotation: 180,
  aspectJitter: 0.15,
  occlusion: true,
  background: 0.6,
  hueJitter: 8,
  noise: 8,
};

const KNOWN: readonly string[] = Object.keys(SYNTHETIC_DEFAULTS);

/**
 * Fills in the defaults and checks every option; a bad one throws a
 * `RangeError` naming the option, what was expected and what was found.
 *
 * @example
 * ```ts
 * import { resolveSyntheticOptions } from "tokenlab/data/synthetic_options.ts";
 * console.log(resolveSyntheticOptions({ size: 64 }).scale); // [ 0.25, 0.7 ]
 * try { resolveSyntheticOptions({ size: 8 }); } catch (e) { console.log((e as Error).message); }
 * ```
 */
export function resolveSyntheticOptions(
  options: SyntheticOptions = {},
): ResolvedSyntheticOptions {
  checkOptionKeys("SyntheticScenes", options, KNOWN);
  const d = SYNTHETIC_DEFAULTS;
  const o = { ...d, ...options } as ResolvedSyntheticOptions;
  // An explicit undefined means the default.
  for (const k of KNOWN) {
    const key = k as keyof ResolvedSyntheticOptions;
    if (o[key] === undefined) {
      (o as unknown as Record<string, unknown>)[k] = d[key];
    }
  }
  const size = checkInt("size", o.size, 16, 4096);
  const count = checkInt("count", o.count, 1, 2 ** 31 - 1);
  const numClasses = checkInt(
    "numClasses",
    o.numClasses,
    1,
    SYNTHETIC_MAX_CLASSES,
  );
  const seed = checkInt("seed", o.seed, -(2 ** 31), 2 ** 32 - 1);
  if (!SPLITS.includes(o.split)) {
    throw new RangeError(
      `SyntheticScenes: option "split" must be one of "train", "val", "test", found ${
        found(o.split)
      }`,
    );
  }
  const minObjects = checkInt("minObjects", o.minObjects, 1, 64);
  const maxObjects = checkInt("maxObjects", o.maxObjects, 1, 64);
  if (maxObjects < minObjects) {
    throw new RangeError(
      `SyntheticScenes: option "maxObjects" must be >= minObjects (${minObjects}), found ${maxObjects}`,
    );
  }
  const s = o.scale;
  if (
    !Array.isArray(s) || s.length !== 2 ||
    !s.every((v) => typeof v === "number" && v > 0 && v <= 2) ||
    !(s[0] <= s[1])
  ) {
    throw new RangeError(
      `SyntheticScenes: option "scale" must be [min, max] with 0 < min <= max <= 2 (object diameter / image side), found ${
        found(s)
      }`,
    );
  }
  if (typeof o.occlusion !== "boolean") {
    throw new RangeError(
      `SyntheticScenes: option "occlusion" must be true or false, found ${
        found(o.occlusion)
      }`,
    );
  }
  return {
    size,
    count,
    numClasses,
    seed,
    split: o.split,
    minObjects,
    maxObjects,
    scale: [s[0], s[1]],
    rotation: checkNum("rotation", o.rotation, 0, 180),
    aspectJitter: checkNum("aspectJitter", o.aspectJitter, 0, 0.5),
    occlusion: o.occlusion,
    background: checkNum("background", o.background, 0, 1),
    hueJitter: checkNum("hueJitter", o.hueJitter, 0, 20),
    noise: checkInt("noise", o.noise, 0, 24),
  };
}
