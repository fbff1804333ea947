/**
 * Synthetic scenes: a deterministic, procedurally drawn image dataset whose
 * every pixel's class is known exactly. It exists to test and measure token
 * labeling where no real annotator is at hand: the exact per-pixel class map
 * gives perfect ("oracle") score maps (see `lib/annotators/oracle.ts`), and the
 * scenes are cluttered enough that a random crop often shows something other
 * than the image label, which is the situation token labeling addresses.
 *
 * ## What a scene is
 *
 * A muted, textured background (a base grey with a slight tint, smooth
 * low-frequency noise, a linear gradient and, in half of the scenes, faint
 * stripes; all variation is in brightness, so the background stays nearly
 * grey) on which `minObjects` to `maxObjects` objects are drawn one after the
 * other: later objects cover earlier ones. Every object belongs to one of
 * `numClasses` classes, and a class is a fixed combination of a shape (11),
 * a colour (8 saturated hues) and a texture (5; the pattern alternates
 * between the object's colour and a darker shade of it): the catalogue, and
 * the options with their defaults, are in `synthetic_options.ts`.
 *
 * Every instance is jittered: size (log-uniform in `scale`), position
 * (centre anywhere in the image, so objects may be cut by the border),
 * rotation, a stretch of each axis (`aspectJitter`), hue (`hueJitter`),
 * saturation and brightness, and the texture's period and phase. Then
 * per-pixel noise (`noise`) is added to the whole image.
 *
 * ## The class map, and the label
 *
 * A pixel belongs to an object when the object's shape contains the pixel's
 * centre (x + 0.5, y + 0.5); the topmost (last drawn) such object wins. The
 * pixel is drawn in that object's colours, and the class map holds that
 * object's class (-1 where no object is). There is no anti-aliasing, so the
 * drawing and the class map agree exactly: an object pixel lies within
 * `noise` of one of its object's two palette colours in every channel, and a
 * background pixel is nearly grey (its channels differ by at most
 * 2 * 8 + 2 * `noise` + 1), while every object colour is strongly saturated.
 *
 * The label of an image is the class with the most pixels in the class map
 * (two objects of one class count together); a tie goes to the lower class
 * id. A scene in which no object covers any pixel centre (a tiny ring, say)
 * is redrawn from the same stream, so every image has at least one object
 * pixel.
 *
 * ## Determinism
 *
 * Image `i` is drawn from `Rng.derive(seed, split, i)` alone (split 0 train,
 * 1 val, 2 test): random access in any order gives the same bytes, on every
 * machine, and the splits are independent streams, so a train and a val set
 * made with one seed do not share images.
 *
 * ## The knobs
 *
 * Image size, count, classes, seed, split, objects per scene, their scale,
 * rotation and stretch, occlusion, the background's strength, hue jitter and
 * noise: {@linkcode SyntheticOptions}, with the table of defaults in
 * `synthetic_options.ts`.
 *
 * A cache of generated scenes on disk is in `synthetic_cache.ts`.
 *
 * @example
 * ```ts
 * import { SyntheticScenes } from "tokenlab/data/synthetic_scenes.ts";
 * const train = new SyntheticScenes({ size: 32, count: 100, seed: 1 });
 * const val = new SyntheticScenes({ size: 32, count: 20, seed: 1, split: "val" });
 * const scene = train.render(0);
 * console.log(train.classes[scene.label], scene.objects.length, train.key(0));
 * console.log(val.description);
 * ```
 *
 * @module
 */

import { Rng } from "../random.ts";
import type { ClassMap, ImageDataset, RgbImage } from "./image.ts";
import { readRange } from "./_read_range.ts";
import {
  type ResolvedSyntheticOptions,
  resolveSyntheticOptions,
  SYNTHETIC_COLOURS,
  SYNTHETIC_TEXTURES,
  syntheticClass,
  syntheticClassNames,
  type SyntheticOptions,
  type SyntheticSplit,
} from "./synthetic_options.ts";

/** Largest tint (per channel, +-) of the background's grey. */
const TINT = 8;

// ---------------------------------------------------------------------------
// Shapes: inside tests in the object's unit frame (radius about 1).

type Inside = (u: number, v: number) => boolean;

function regularPolygon(n: number, radius: number, start: number): Inside {
  // Inside iff the point lies behind every edge: edge normals sit halfway
  // between consecutive vertices.
  const nx: number[] = [], ny: number[] = [];
  for (let k = 0; k < n; k++) {
    const a = start + (2 * k + 1) * Math.PI / n;
    nx.push(Math.cos(a));
    ny.push(Math.sin(a));
  }
  const d = radius * Math.cos(Math.PI / n);
  return (u, v) => {
    for (let k = 0; k < n; k++) if (u * nx[k] + v * ny[k] > d) return false;
    return true;
  };
}

function polygon(xs: number[], ys: number[]): Inside {
  // Even-odd rule: count the edges a ray towards +u crosses.
  const n = xs.length;
  return (u, v) => {
    let inside = false;
    for (let a = 0, b = n - 1; a < n; b = a++) {
      if ((ys[a] > v) !== (ys[b] > v)) {
        const x = xs[a] + (v - ys[a]) * (xs[b] - xs[a]) / (ys[b] - ys[a]);
        if (u < x) inside = !inside;
      }
    }
    return inside;
  };
}

function starShape(): Inside {
  const xs: number[] = [], ys: number[] = [];
  for (let k = 0; k < 10; k++) {
    const a = -Math.PI / 2 + k * Math.PI / 5;
    const r = k % 2 === 0 ? 1.15 : 0.5;
    xs.push(r * Math.cos(a));
    ys.push(r * Math.sin(a));
  }
  return polygon(xs, ys);
}

// v grows downwards (image rows).
const SHAPE_TESTS: readonly Inside[] = [
  (u, v) => u * u + v * v <= 1, // circle
  (u, v) => Math.abs(u) <= 0.85 && Math.abs(v) <= 0.85, // square
  regularPolygon(3, 1.2, -Math.PI / 2), // triangle
  starShape(), // star
  (u, v) => {
    const r = u * u + v * v;
    return r <= 1 && r >= 0.3025; // ring, inner radius 0.55
  },
  (u, v) => {
    const a = Math.abs(u), b = Math.abs(v);
    return (a <= 0.32 && b <= 1) || (b <= 0.32 && a <= 1); // cross
  },
  regularPolygon(6, 1.0, 0), // hexagon
  (u, v) => Math.abs(u) / 0.65 + Math.abs(v) / 1.15 <= 1, // diamond
  (u, v) => (u / 1.1) ** 2 + (v / 0.6) ** 2 <= 1, // ellipse
  (u, v) => u * u + v * v <= 1 && (u - 0.5) ** 2 + v * v > 0.64, // crescent
  (u, v) => {
    // heart: (x^2 + y^2 - 1)^3 <= x^2 y^3, y up, tip at the bottom
    const x = u / 0.9, y = -v / 0.9 + 0.12;
    const q = x * x + y * y - 1;
    return q * q * q <= x * x * y * y * y;
  },
];

/** Bounding radius of every shape in the unit frame (with margin). */
const SHAPE_RADIUS = 1.25;

// ---------------------------------------------------------------------------
// Colours.

function hsvToRgb(h: number, s: number, v: number): [number, number, number] {
  const hh = (((h % 360) + 360) % 360) / 60;
  const c = v * s, x = c * (1 - Math.abs((hh % 2) - 1)), m = v - c;
  let r = 0, g = 0, b = 0;
  if (hh < 1) [r, g, b] = [c, x, 0];
  else if (hh < 2) [r, g, b] = [x, c, 0];
  else if (hh < 3) [r, g, b] = [0, c, x];
  else if (hh < 4) [r, g, b] = [0, x, c];
  else if (hh < 5) [r, g, b] = [x, 0, c];
  else [r, g, b] = [c, 0, x];
  return [
    Math.round((r + m) * 255),
    Math.round((g + m) * 255),
    Math.round((b + m) * 255),
  ];
}

// ---------------------------------------------------------------------------
// Rendering.

/** One object of a scene, as drawn. */
export interface ObjectInfo {
  /** Its class id. */
  classId: number;
  /** Shape name. */
  shape: string;
  /** Colour name. */
  colour: string;
  /** Texture name. */
  texture: string;
  /** Centre in pixels, [x, y] (may lie near the border). */
  centre: [number, number];
  /** Radius in pixels (half the drawn diameter, before the stretch). */
  radius: number;
  /** Rotation in degrees. */
  rotation: number;
  /** Stretch of the object's own axes, [along its x, along its y]. */
  stretch: [number, number];
  /** The two colours it is drawn with: [main, darker], 0-255 RGB. */
  palette: [[number, number, number], [number, number, number]];
  /** Pixels where it is on top (visible). */
  visiblePixels: number;
}

/** One rendered scene: what {@linkcode SyntheticScenes.render} returns. */
export interface SyntheticScene {
  /** The image. */
  image: RgbImage;
  /** The class of every pixel (-1 background). */
  classMap: ClassMap;
  /**
   * Which object covers every pixel: an index into `objects`, -1 for
   * background (row-major, width * height).
   */
  objectMap: Int16Array;
  /** The label: the class with the most pixels (ties: the lower id). */
  label: number;
  /** The objects, in drawing order (later ones on top). */
  objects: ObjectInfo[];
}

interface Placed {
  cls: number;
  cx: number;
  cy: number;
  r: number;
  cos: number;
  sin: number;
  sx: number;
  sy: number;
  rotation: number;
  texture: number;
  period: number;
  ph1: number;
  ph2: number;
  palette: [[number, number, number], [number, number, number]];
}

const SPLIT_CODE: Record<SyntheticSplit, number> = {
  train: 0,
  val: 1,
  test: 2,
};

function drawObject(rng: Rng, o: ResolvedSyntheticOptions): Placed {
  const n = o.size;
  const cls = rng.int(o.numClasses);
  const [s0, s1] = o.scale;
  const d = s0 * Math.exp(rng.float() * Math.log(s1 / s0));
  const r = Math.max(1.5, d * n / 2);
  const cx = rng.float() * n, cy = rng.float() * n;
  const rotation = (2 * rng.float() - 1) * o.rotation;
  const a = o.aspectJitter;
  const sx = 1 + (2 * rng.float() - 1) * a;
  const sy = 1 + (2 * rng.float() - 1) * a;
  const hue = SYNTHETIC_COLOURS[cls % SYNTHETIC_COLOURS.length].hue +
    (2 * rng.float() - 1) * o.hueJitter;
  const sat = 0.7 + 0.3 * rng.float();
  const val = 0.65 + 0.35 * rng.float();
  const period = Math.max(3, r * (0.5 + 0.25 * rng.float()));
  const ph1 = rng.float(), ph2 = rng.float();
  const t = rotation * Math.PI / 180;
  return {
    cls,
    cx,
    cy,
    r,
    cos: Math.cos(t),
    sin: Math.sin(t),
    sx,
    sy,
    rotation,
    texture: cls % SYNTHETIC_TEXTURES.length,
    period,
    ph1,
    ph2,
    palette: [hsvToRgb(hue, sat, val), hsvToRgb(hue, sat, val * 0.6)],
  };
}

/** Texture bit (0 main colour, 1 darker) at object-frame pixel offset (a, b). */
function textureBit(p: Placed, a: number, b: number): number {
  const half = p.period / 2;
  switch (p.texture) {
    case 1: // striped
      return Math.floor(a / half + 2 * p.ph1) & 1;
    case 2: { // dotted
      const fu = a / p.period + p.ph1, fv = b / p.period + p.ph2;
      const du = fu - Math.floor(fu) - 0.5, dv = fv - Math.floor(fv) - 0.5;
      return du * du + dv * dv < 0.09 ? 1 : 0;
    }
    case 3: // checkered
      return (Math.floor(a / half + 2 * p.ph1) +
        Math.floor(b / half + 2 * p.ph2)) & 1;
    case 4: // ringed
      return Math.floor(Math.sqrt(a * a + b * b) / half + 2 * p.ph1) & 1;
    default: // plain
      return 0;
  }
}

/** Brightness of the background at every pixel (before tint and noise). */
function backgroundLuma(rng: Rng, o: ResolvedSyntheticOptions): Float32Array {
  const n = o.size, s = o.background;
  const out = new Float32Array(n * n);
  const base = 70 + 120 * rng.float();
  // Smooth noise: a g x g grid of values, bilinear over the image.
  const g = 4 + rng.int(3);
  const grid = new Float64Array((g + 1) * (g + 1));
  for (let i = 0; i < grid.length; i++) {
    grid[i] = (2 * rng.float() - 1) * 45 * s;
  }
  const phi = rng.float() * 2 * Math.PI;
  const gx = Math.cos(phi) * 30 * s / n, gy = Math.sin(phi) * 30 * s / n;
  const striped = rng.float() < 0.5;
  const psi = rng.float() * Math.PI;
  const period = n * (0.08 + 0.17 * rng.float());
  const w = 2 * Math.PI / period;
  const kx = Math.cos(psi) * w, ky = Math.sin(psi) * w;
  const phase = rng.float() * 2 * Math.PI;
  const amp = striped ? 18 * s : 0;
  const cell = g / n;
  for (let y = 0; y < n; y++) {
    const fy = (y + 0.5) * cell;
    const iy = Math.min(g - 1, Math.floor(fy)), ty = fy - iy;
    for (let x = 0; x < n; x++) {
      const fx = (x + 0.5) * cell;
      const ix = Math.min(g - 1, Math.floor(fx)), tx = fx - ix;
      const a = grid[iy * (g + 1) + ix], b = grid[iy * (g + 1) + ix + 1];
      const c = grid[(iy + 1) * (g + 1) + ix];
      const d = grid[(iy + 1) * (g + 1) + ix + 1];
      const smooth = (a * (1 - tx) + b * tx) * (1 - ty) +
        (c * (1 - tx) + d * tx) * ty;
      let v = base + smooth + gx * (x - n / 2) + gy * (y - n / 2);
      if (amp !== 0) v += amp * Math.sin(kx * x + ky * y + phase);
      out[y * n + x] = v;
    }
  }
  return out;
}

function renderScene(
  o: ResolvedSyntheticOptions,
  index: number,
): SyntheticScene {
  const rng = Rng.derive(o.seed, SPLIT_CODE[o.split], index);
  const n = o.size, np = n * n;
  for (;;) {
    const luma = backgroundLuma(rng, o);
    const tint = [0, 1, 2].map(() => (2 * rng.float() - 1) * TINT);
    const count = o.minObjects + rng.int(o.maxObjects - o.minObjects + 1);
    const placed: Placed[] = [];
    for (let j = 0; j < count; j++) {
      let p = drawObject(rng, o);
      if (!o.occlusion) {
        const bound = (q: Placed) => q.r * SHAPE_RADIUS * Math.max(q.sx, q.sy);
        const clear = (q: Placed) =>
          placed.every((e) =>
            Math.hypot(e.cx - q.cx, e.cy - q.cy) > bound(e) + bound(q)
          );
        let tries = 1;
        while (!clear(p) && tries < 30) {
          p = drawObject(rng, o);
          tries++;
        }
        if (!clear(p)) continue;
      }
      placed.push(p);
    }
    const objectMap = new Int16Array(np).fill(-1);
    const texMap = new Uint8Array(np);
    for (let j = 0; j < placed.length; j++) {
      const p = placed[j];
      const reach = p.r * SHAPE_RADIUS * Math.max(p.sx, p.sy);
      const x0 = Math.max(0, Math.floor(p.cx - reach));
      const x1 = Math.min(n - 1, Math.ceil(p.cx + reach));
      const y0 = Math.max(0, Math.floor(p.cy - reach));
      const y1 = Math.min(n - 1, Math.ceil(p.cy + reach));
      const inside = SHAPE_TESTS[p.cls % SHAPE_TESTS.length];
      const ru = 1 / (p.r * p.sx), rv = 1 / (p.r * p.sy);
      for (let y = y0; y <= y1; y++) {
        const dy = y + 0.5 - p.cy;
        for (let x = x0; x <= x1; x++) {
          const dx = x + 0.5 - p.cx;
          // Into the object's frame: undo the rotation, then the stretch.
          const a = dx * p.cos + dy * p.sin, b = -dx * p.sin + dy * p.cos;
          if (inside(a * ru, b * rv)) {
            const q = y * n + x;
            objectMap[q] = j;
            texMap[q] = textureBit(p, a, b);
          }
        }
      }
    }
    const visible = new Int32Array(placed.length);
    for (let q = 0; q < np; q++) if (objectMap[q] >= 0) visible[objectMap[q]]++;
    if (visible.every((v) => v === 0)) continue; // nothing shows: draw again
    // Compose, with noise.
    const data = new Uint8Array(np * 3);
    const classes = new Int16Array(np);
    const span = 2 * o.noise + 1;
    for (let q = 0; q < np; q++) {
      const j = objectMap[q];
      let r: number, g: number, b: number;
      if (j < 0) {
        classes[q] = -1;
        const l = luma[q];
        r = l + tint[0];
        g = l + tint[1];
        b = l + tint[2];
      } else {
        const p = placed[j];
        classes[q] = p.cls;
        const c = p.palette[texMap[q]];
        r = c[0];
        g = c[1];
        b = c[2];
      }
      if (o.noise > 0) {
        const u = rng.uint32();
        r += ((u & 255) * span >> 8) - o.noise;
        g += (((u >>> 8) & 255) * span >> 8) - o.noise;
        b += (((u >>> 16) & 255) * span >> 8) - o.noise;
      }
      data[3 * q] = r < 0 ? 0 : r > 255 ? 255 : Math.round(r);
      data[3 * q + 1] = g < 0 ? 0 : g > 255 ? 255 : Math.round(g);
      data[3 * q + 2] = b < 0 ? 0 : b > 255 ? 255 : Math.round(b);
    }
    // The label: most pixels per class, ties to the lower id.
    const perClass = new Map<number, number>();
    for (let j = 0; j < placed.length; j++) {
      const c = placed[j].cls;
      perClass.set(c, (perClass.get(c) ?? 0) + visible[j]);
    }
    let label = -1, best = -1;
    for (const [c, v] of perClass) {
      if (v > best || (v === best && c < label)) {
        label = c;
        best = v;
      }
    }
    const objects: ObjectInfo[] = placed.map((p, j) => {
      const spec = syntheticClass(p.cls);
      return {
        classId: p.cls,
        shape: spec.shape,
        colour: spec.colour,
        texture: spec.texture,
        centre: [p.cx, p.cy],
        radius: p.r,
        rotation: p.rotation,
        stretch: [p.sx, p.sy],
        palette: [[...p.palette[0]], [...p.palette[1]]],
        visiblePixels: visible[j],
      };
    });
    return {
      image: { width: n, height: n, data },
      classMap: { width: n, height: n, data: classes },
      objectMap,
      label,
      objects,
    };
  }
}

// ---------------------------------------------------------------------------
// The dataset.

/** Largest chroma (max channel - min channel) a background pixel can have. */
export function syntheticBackgroundChroma(noise: number): number {
  return 2 * TINT + 2 * noise + 1;
}

/**
 * A dataset of synthetic scenes with exact class maps; see the module doc
 * for what is drawn and the options for the knobs. Image `i` depends on the
 * options and `i` only. Implements {@linkcode ImageDataset} (and the
 * fixed-size `ImageSource` of `tensor_dataset.ts`, so the annotator can read
 * it directly).
 *
 * @example
 * ```ts
 * import { SyntheticScenes } from "tokenlab/data/synthetic_scenes.ts";
 * const ds = new SyntheticScenes({ size: 64, count: 10, numClasses: 20, seed: 3 });
 * const img = await ds.image(4);
 * const map = ds.classMap(4);
 * console.log(img.width, map.data.length, ds.label(4), ds.classes.length); // 64 4096 1 20
 * ```
 */
export class SyntheticScenes implements ImageDataset {
  /** The options, defaults filled in. */
  readonly options: Readonly<ResolvedSyntheticOptions>;
  /** Class names, `<colour>_<shape>_<texture>`. */
  readonly classes: readonly string[];
  #labels = new Map<number, number>();
  #digits: number;

  /** Makes the dataset (nothing is drawn until asked for). */
  constructor(options: SyntheticOptions = {}) {
    this.options = Object.freeze(resolveSyntheticOptions(options));
    this.classes = Object.freeze(syntheticClassNames(this.options.numClasses));
    this.#digits = Math.max(6, String(this.options.count - 1).length);
  }

  /** Number of images. */
  get size(): number {
    return this.options.count;
  }

  /** Image height in pixels. */
  get height(): number {
    return this.options.size;
  }

  /** Image width in pixels. */
  get width(): number {
    return this.options.size;
  }

  /** A one-line summary of the options. */
  get description(): string {
    const o = this.options;
    return `synthetic scenes (${o.split}, ${o.count} images, ${o.size}x${o.size}, ${o.numClasses} classes, seed ${o.seed})`;
  }

  #check(i: number): void {
    if (!(Number.isInteger(i) && i >= 0 && i < this.options.count)) {
      throw new RangeError(
        `${this.description}: expected an image index, an integer in [0, ${this.options.count}), found ${i}`,
      );
    }
  }

  /** Draws scene `i`: image, class map, object map, label and objects. */
  render(i: number): SyntheticScene {
    this.#check(i);
    const scene = renderScene(this.options, i);
    this.#labels.set(i, scene.label);
    return scene;
  }

  /** The label of image `i` (drawn once, then remembered). */
  label(i: number): number {
    this.#check(i);
    return this.#labels.get(i) ?? this.render(i).label;
  }

  /** The key of image `i`: `<class name>/<split>_<index>`, e.g. `red_circle_plain/train_000012`. */
  key(i: number): string {
    return `${this.classes[this.label(i)]}/${this.options.split}_${
      String(i).padStart(this.#digits, "0")
    }`;
  }

  /** Image `i`. */
  image(i: number): Promise<RgbImage> {
    try {
      return Promise.resolve(this.render(i).image);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** The class map of image `i` (-1 background). */
  classMap(i: number): ClassMap {
    return this.render(i).classMap;
  }

  /** Images [start, start + count) as NHWC float32 values in [0, 1]. */
  read(start: number, count: number): Promise<Float32Array> {
    try {
      return Promise.resolve(
        readRange(this, start, count, (i) => this.render(i).image.data),
      );
    } catch (e) {
      return Promise.reject(e);
    }
  }
}
