/**
 * Pixel operations (lib/data/image_geometry.ts, lib/data/image_colour.ts)
 * byte for byte against Pillow 9.4:
 * tests/fixtures/augment/pil_ops.json (tests/fixtures/make_augment_fixtures.py)
 * holds small images and what Pillow made of them under every op, called as
 * timm's RandAugment calls it; plus the shortcuts, a few hand-computed
 * cases and the input checks.
 */

import { assert, assertEquals, assertThrows } from "./_assert.ts";
import { ROOT } from "./_helpers.ts";
import {
  applyLut,
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
} from "tokenlab/data/image_colour.ts";
import {
  affineImage,
  cropImage,
  flipImage,
  transformImage,
} from "tokenlab/data/image_geometry.ts";
import { ImageError, type RgbImage } from "tokenlab/data/image.ts";
import { affineMatrix, type MapOp } from "tokenlab/labels/map_transforms.ts";

interface Case {
  image: string;
  op: string;
  args: Record<string, number | string>;
  out: string;
}

const bytes = (s: string) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
const fixture = JSON.parse(
  Deno.readTextFileSync(`${ROOT}tests/fixtures/augment/pil_ops.json`),
) as {
  fill: [number, number, number];
  images: Record<string, { width: number; height: number; data: string }>;
  cases: Case[];
};
const images: Record<string, RgbImage> = Object.fromEntries(
  Object.entries(fixture.images).map((
    [k, v],
  ) => [k, { width: v.width, height: v.height, data: bytes(v.data) }]),
);

function mapOp(op: string, value: number): MapOp {
  switch (op) {
    case "rotate":
      return { op, degrees: value };
    case "shearX":
    case "shearY":
      return { op, factor: value };
    case "translateXRel":
    case "translateYRel":
      return { op, fraction: value };
  }
  throw new Error(`not spatial: ${op}`);
}

function run(c: Case): RgbImage {
  const image = images[c.image];
  const a = c.args as Record<string, number>;
  switch (c.op) {
    case "flip":
      return flipImage(image);
    case "autocontrast":
      return autocontrast(image);
    case "equalize":
      return equalize(image);
    case "invert":
      return invert(image);
    case "posterize":
      return posterize(image, a.bits);
    case "solarize":
      return solarize(image, a.threshold);
    case "solarizeAdd":
      return solarizeAdd(image, a.add);
    case "color":
      return enhanceColor(image, a.factor);
    case "contrast":
      return enhanceContrast(image, a.factor);
    case "brightness":
      return enhanceBrightness(image, a.factor);
    case "sharpness":
      return enhanceSharpness(image, a.factor);
    default:
      return transformImage(image, mapOp(c.op, a.value), {
        filter: c.args.filter as "nearest" | "bilinear" | "bicubic",
        fill: fixture.fill,
      });
  }
}

/** Checks every fixture case of the given ops; returns how many were checked. */
function checkCases(ops: string[], filter?: string): number {
  let n = 0;
  for (const c of fixture.cases) {
    if (!ops.includes(c.op)) continue;
    if (filter !== undefined && c.args.filter !== filter) continue;
    const want = bytes(c.out);
    const got = run(c);
    let bad = 0, worst = 0;
    for (let i = 0; i < want.length; i++) {
      const d = Math.abs(want[i] - got.data[i]);
      if (d > 0) bad++;
      worst = Math.max(worst, d);
    }
    assertEquals(
      { bad, worst },
      { bad: 0, worst: 0 },
      `${c.op} ${
        JSON.stringify(c.args)
      } on ${c.image}: bytes differing from Pillow`,
    );
    n++;
  }
  return n;
}

const SPATIAL = [
  "rotate",
  "shearX",
  "shearY",
  "translateXRel",
  "translateYRel",
];

for (const filter of ["nearest", "bilinear", "bicubic"]) {
  Deno.test(`affine ops (${filter}) are byte-identical to Pillow's`, () => {
    const n = checkCases(SPATIAL, filter);
    assert(n >= 40, `expected the fixture's ${filter} cases, found ${n}`);
  });
}

Deno.test("tables (autocontrast, equalize, invert, posterize, solarize, solarize-add, flip) are byte-identical to Pillow's", () => {
  const n = checkCases([
    "flip",
    "autocontrast",
    "equalize",
    "invert",
    "posterize",
    "solarize",
    "solarizeAdd",
  ]);
  assert(n >= 80, `found ${n} cases`);
});

Deno.test("ImageEnhance Color, Contrast, Brightness and Sharpness are byte-identical to Pillow's", () => {
  const n = checkCases(["color", "contrast", "brightness", "sharpness"]);
  assert(n >= 100, `found ${n} cases`);
});

Deno.test("rotation shortcuts (0, 180, 90/270 on a square) agree with the affine path", () => {
  for (const name of ["square", "noise"]) {
    const image = images[name];
    for (const degrees of [0, 180, -180, 90, 270, -90, 360]) {
      const op: MapOp = { op: "rotate", degrees };
      if ((degrees % 180 !== 0) && image.width !== image.height) continue;
      const viaMatrix = affineImage(
        image,
        affineMatrix(op, [image.height, image.width]),
      );
      assertEquals(
        transformImage(image, op).data,
        viaMatrix.data,
        `${name} ${degrees}`,
      );
    }
  }
});

Deno.test("hand-computed cases", () => {
  const row = {
    width: 3,
    height: 1,
    data: new Uint8Array([10, 10, 10, 20, 20, 20, 30, 30, 30]),
  };
  // Translation by one pixel: the content moves left, the fill enters.
  assertEquals(
    Array.from(affineImage(row, [1, 0, 1, 0, 1, 0], { fill: [1, 2, 3] }).data),
    [20, 20, 20, 30, 30, 30, 1, 2, 3],
  );
  // Bilinear at a half-pixel shift: the mean of the neighbours, truncated.
  const two = {
    width: 2,
    height: 1,
    data: new Uint8Array([0, 0, 0, 255, 255, 255]),
  };
  assertEquals(
    affineImage(two, [1, 0, 0.5, 0, 1, 0], { filter: "bilinear" }).data[0],
    127,
  );
  assertEquals(Array.from(posterize(row, 0).data), Array(9).fill(0));
  assertEquals(posterize(row, 8).data, row.data);
  assertEquals(solarize(row, 256).data, row.data);
  assertEquals(Array.from(solarize(row, 0).data), [
    245,
    245,
    245,
    235,
    235,
    235,
    225,
    225,
    225,
  ]);
  assertEquals(Array.from(solarizeAdd(row, 240).data.subarray(0, 3)), [
    250,
    250,
    250,
  ]);
  assertEquals(Array.from(solarizeAdd(row, 250).data.subarray(6)), [
    255,
    255,
    255,
  ]);
  assertEquals(Array.from(autocontrast(row).data), [
    0,
    0,
    0,
    127,
    127,
    127,
    255,
    255,
    255,
  ]);
  // A flat image is left alone by autocontrast and equalize.
  const flat = { width: 2, height: 2, data: new Uint8Array(12).fill(77) };
  assertEquals(autocontrast(flat).data, flat.data);
  assertEquals(equalize(flat).data, flat.data);
  // Factor 1 gives the image back for every enhancer.
  for (
    const fn of [
      enhanceColor,
      enhanceContrast,
      enhanceBrightness,
      enhanceSharpness,
    ]
  ) {
    assertEquals(fn(images.photo, 1).data, images.photo.data, fn.name);
  }
  // Sharpness keeps the border pixels at every factor.
  const sharp = enhanceSharpness(images.photo, 1.9);
  const { width: W, height: H } = images.photo;
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      if (y > 0 && y < H - 1 && x > 0 && x < W - 1) continue;
      const o = (y * W + x) * 3;
      assertEquals(
        Array.from(sharp.data.subarray(o, o + 3)),
        Array.from(images.photo.data.subarray(o, o + 3)),
      );
    }
  }
  // 768 entries: one table per channel, values clipped to 0..255.
  const ramps = Array.from({ length: 768 }, (_, i) => i);
  assertEquals(Array.from(applyLut(row, ramps).data), [
    10,
    255,
    255,
    20,
    255,
    255,
    30,
    255,
    255,
  ]);
  assertEquals(Array.from(cropImage(row, 0, 1, 1, 1).data), [20, 20, 20]);
});

Deno.test("inputs are left unchanged", () => {
  const image = images.noise;
  const before = new Uint8Array(image.data);
  transformImage(image, { op: "rotate", degrees: 13 }, { filter: "bicubic" });
  enhanceSharpness(image, 1.5);
  equalize(image);
  flipImage(image);
  assertEquals(image.data, before);
});

Deno.test("bad inputs: clear errors", () => {
  const image = images.tiny;
  assertThrows(() => posterize(image, 9), ImageError, "0..8 bits");
  assertThrows(
    () =>
      affineImage(image, [1, 0, 0, 0, 1, 0], {
        filter: "lanczos" as "nearest",
      }),
    ImageError,
    '"nearest", "bilinear" or "bicubic"',
  );
  assertThrows(
    () => affineImage(image, [1, 0, 0, 0, 1, 0], { fill: [0, 0, 300] }),
    ImageError,
    "fill must be an RGB colour",
  );
  assertThrows(
    () => affineImage(image, [1, 0, NaN, 0, 1, 0]),
    ImageError,
    "6 finite numbers",
  );
  assertThrows(
    () => enhanceColor(image, Infinity),
    ImageError,
    "finite factor",
  );
  assertThrows(
    () => cropImage(image, 0, 0, 5, 1),
    ImageError,
    "inside the 2 x 3 image",
  );
  assertThrows(
    () => flipImage({ width: 2, height: 2, data: new Uint8Array(5) }),
    ImageError,
    "expected 12 bytes",
  );
  assertThrows(() => applyLut(image, [1, 2, 3]), ImageError, "256 values");
});
