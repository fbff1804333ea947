/**
 * The training and evaluation transforms (lib/data/transforms.ts):
 *
 * - alignment: on an image whose pixels encode their own coordinates and a
 *   score map at the image's resolution whose cells encode the same, the
 *   flip and every spatial RandAugment op (nearest filter for the image)
 *   leave image and map agreeing at every pixel, inside (same source) and
 *   outside (fill colour / score 0); `trainTransform`'s map is exactly the
 *   chain of its reported ops;
 * - RandomResizedCrop: the returned box, applied to the coordinate image,
 *   selects exactly the pixels the crop shows;
 * - Pillow exactness of the crop resize and of the evaluation resize and
 *   centre crop (tests/fixtures/augment/pil_ops.json);
 * - determinism, random erasing (ranges, image only), config errors.
 */

import { assert, assertEquals, assertThrows } from "./_assert.ts";
import { ROOT } from "./_helpers.ts";
import { Rng } from "tokenlab";
import type { RgbImage } from "tokenlab/data/image.ts";
import type { ScoreMap } from "tokenlab/labels/score_map.ts";
import {
  flipMap,
  type MapOp,
  transformMap,
} from "tokenlab/labels/map_transforms.ts";
import {
  cropImage,
  flipImage,
  type RgbColor,
  transformImage,
} from "tokenlab/data/image_geometry.ts";
import { parseRandAugment, randAugment } from "tokenlab/data/rand_augment.ts";
import { resizeImage } from "tokenlab/data/resize.ts";
import {
  DEFAULT_TRAIN_TRANSFORM,
  evalImage,
  evalTransform,
  normalizeImage,
  randomErase,
  resizedCrop,
  resolveTrainTransform,
  trainTransform,
  TransformError,
} from "tokenlab/data/transforms.ts";

const FILL: RgbColor = [124, 116, 104];
const BLUE = 200; // never equal to the fill's blue

/** Pixel (x, y) holds (x, y, 200). */
function coordinateImage(width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      data.set([x, y, BLUE], (y * width + x) * 3);
    }
  }
  return { width, height, data };
}

/** Cell (y, x), rank r: id y * W + x + 100000 r, score 1 + that. */
function coordinateMap(height: number, width: number, k = 2): ScoreMap {
  const n = height * width;
  const scores = new Float32Array(k * n), ids = new Int32Array(k * n);
  for (let r = 0; r < k; r++) {
    for (let p = 0; p < n; p++) {
      ids[r * n + p] = p + 100000 * r;
      scores[r * n + p] = 1 + p + 100000 * r;
    }
  }
  return { k, height, width, scores, ids };
}

/** Asserts that image and map agree at every pixel: same source inside, fill / score 0 outside. */
function assertAligned(image: RgbImage, map: ScoreMap, what: string): void {
  const { width: W, height: H } = image;
  assertEquals([map.height, map.width], [H, W]);
  let inside = 0;
  for (let p = 0; p < W * H; p++) {
    const px = Array.from(image.data.subarray(3 * p, 3 * p + 3));
    for (let r = 1; r < map.k; r++) {
      assertEquals(
        map.ids[r * W * H + p] - 100000 * r,
        map.ids[p],
        `${what}: ranks move together`,
      );
    }
    if (map.scores[p] === 0) {
      assertEquals(
        px,
        [...FILL],
        `${what}: pixel ${p % W},${Math.floor(p / W)} is outside in the map`,
      );
    } else {
      const id = map.ids[p];
      assertEquals(
        px,
        [id % W, Math.floor(id / W), BLUE],
        `${what}: pixel ${p % W},${Math.floor(p / W)}`,
      );
      inside++;
    }
  }
  assert(inside > 0, `${what}: nothing left inside`);
}

const OPS: MapOp[] = [
  { op: "rotate", degrees: 30 },
  { op: "rotate", degrees: -30 },
  { op: "rotate", degrees: 27 },
  { op: "rotate", degrees: -13.7 },
  { op: "rotate", degrees: 0 },
  { op: "shearX", factor: 0.3 },
  { op: "shearX", factor: -0.27 },
  { op: "shearY", factor: 0.3 },
  { op: "shearY", factor: -0.11 },
  { op: "translateXRel", fraction: 0.45 },
  { op: "translateXRel", fraction: -0.405 },
  { op: "translateYRel", fraction: 0.45 },
  { op: "translateYRel", fraction: -0.2 },
];

Deno.test("alignment: flip and every spatial op move image and map together", () => {
  for (const [W, H] of [[40, 30], [33, 47], [24, 24]]) {
    const image0 = coordinateImage(W, H), map0 = coordinateMap(H, W);
    for (const flip of [false, true]) {
      const image1 = flip ? flipImage(image0) : image0;
      const map1 = flip ? flipMap(map0) : map0;
      assertAligned(image1, map1, `${W}x${H} flip ${flip}`);
      for (const op of OPS) {
        const image = transformImage(image1, op, {
          filter: "nearest",
          fill: FILL,
        });
        const map = transformMap(map1, op, { imageSize: [H, W] });
        assertAligned(
          image,
          map,
          `${W}x${H} flip ${flip} ${JSON.stringify(op)}`,
        );
      }
    }
  }
});

Deno.test("alignment: chains of RandAugment spatial ops (drawn, nearest) keep image and map together", () => {
  const W = 37, H = 29;
  const image0 = coordinateImage(W, H), map0 = coordinateMap(H, W);
  const config = {
    ...parseRandAugment("rand-n3-m9-mstd0.5"),
    ops: [
      "Rotate",
      "ShearX",
      "ShearY",
      "TranslateXRel",
      "TranslateYRel",
    ] as const,
    probability: 1,
  };
  for (let s = 0; s < 40; s++) {
    const rng = new Rng(s);
    const flip = rng.float() < 0.5;
    let map = flip ? flipMap(map0) : map0;
    const { image, ops } = randAugment(
      flip ? flipImage(image0) : image0,
      config,
      rng,
      {
        interpolation: "nearest",
        fill: FILL,
      },
    );
    assertEquals(ops.length, 3);
    for (const op of ops) {
      map = transformMap(map, op.mapOp!, { imageSize: [H, W] });
    }
    assertAligned(
      image,
      map,
      `seed ${s} ${JSON.stringify(ops.map((o) => o.mapOp))}`,
    );
  }
});

Deno.test("trainTransform's map is the flip and the reported spatial ops applied to the input map", () => {
  const image = coordinateImage(50, 40);
  const map = coordinateMap(7, 9, 3); // a coarser map: imageSize scales the ops
  let spatial = 0;
  for (let s = 0; s < 30; s++) {
    const out = trainTransform({ image, map }, { size: 16 }, new Rng(s));
    let want = out.applied.flipped ? flipMap(map) : map;
    for (const op of out.applied.randAugment) {
      if (op.mapOp) {
        spatial++;
        want = transformMap(want, op.mapOp, { imageSize: [40, 50] });
      }
    }
    assertEquals(out.map, want, `seed ${s}`);
  }
  assert(spatial > 5, `spatial ops drawn: ${spatial}`);
});

/** Bytes back from pixels normalised with mean 0, std 1. */
function bytesOf(pixels: Float32Array): Uint8Array {
  return Uint8Array.from(pixels, (v) => Math.round(v * 255));
}

Deno.test("RandomResizedCrop: the box selects exactly the pixels the crop shows", () => {
  const W = 48, H = 40, size = 64;
  const image = coordinateImage(W, H);
  const config = {
    size,
    autoAugment: null,
    reprob: 0,
    interpolation: "nearest" as const,
    mean: [0, 0, 0],
    std: [1, 1, 1],
  };
  const fallbacks = { n: 0 };
  for (let s = 0; s < 60; s++) {
    const out = trainTransform(
      { image },
      { ...config, hflip: s % 2 },
      new Rng(s),
    );
    const [t, l, h, w] = out.box;
    const top = Math.round(t * H), left = Math.round(l * W);
    const height = Math.round(h * H), width = Math.round(w * W);
    for (
      const [v, n] of [[t, top / H], [l, left / W], [h, height / H], [
        w,
        width / W,
      ]]
    ) {
      assert(Math.abs(v - n) < 1e-12, `box ${out.box} is not on whole pixels`);
    }
    assertEquals(out.applied.crop, {
      top,
      left,
      height,
      width,
      filter: "nearest",
    });
    if (height === H || width === W) fallbacks.n++;
    const frame = s % 2 ? flipImage(image) : image;
    const shown = bytesOf(out.pixels);
    // Exactly the crop, resized.
    assertEquals(
      shown,
      resizeImage(cropImage(frame, top, left, height, width), size, size, {
        filter: "nearest",
      }).data,
    );
    // Upsampled with nearest: every pixel of the box appears, none outside.
    // (The flipped frame's column x shows original column W - 1 - x.)
    const xs = new Set<number>(), ys = new Set<number>();
    for (let p = 0; p < size * size; p++) {
      xs.add(shown[3 * p]);
      ys.add(shown[3 * p + 1]);
    }
    const cols = [...xs].sort((a, b) => a - b);
    assertEquals(
      [cols.length, cols[0], cols[width - 1]],
      s % 2
        ? [width, W - left - width, W - 1 - left]
        : [width, left, left + width - 1],
    );
    const rows = [...ys].sort((a, b) => a - b);
    assertEquals([rows.length, rows[0], rows[height - 1]], [
      height,
      top,
      top + height - 1,
    ]);
  }
  assert(fallbacks.n < 60);
});

const bytes = (s: string) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
const fixture = JSON.parse(
  Deno.readTextFileSync(`${ROOT}tests/fixtures/augment/pil_ops.json`),
) as {
  images: Record<string, { width: number; height: number; data: string }>;
  cases: {
    image: string;
    op: string;
    args: Record<string, number & string>;
    out: string;
  }[];
};

Deno.test("the crop resize and the evaluation resize + centre crop are byte-identical to Pillow/torchvision", () => {
  let crops = 0, evals = 0;
  for (const c of fixture.cases) {
    const f = fixture.images[c.image];
    const image = { width: f.width, height: f.height, data: bytes(f.data) };
    const a = c.args;
    if (c.op === "resizedCrop") {
      const out = resizedCrop(
        image,
        a.top,
        a.left,
        a.height,
        a.width,
        a.size,
        a.filter,
      );
      assertEquals(out.data, bytes(c.out), `resizedCrop ${JSON.stringify(a)}`);
      crops++;
    } else if (c.op === "evalResize") {
      const out = evalImage(image, {
        size: a.size,
        cropPct: a.cropPct,
        interpolation: a.filter,
      });
      assertEquals(
        out.data,
        bytes(c.out),
        `eval ${c.image} ${JSON.stringify(a)}`,
      );
      evals++;
    }
  }
  assert(crops >= 20 && evals >= 16, `${crops} crops, ${evals} eval cases`);
});

Deno.test("evalTransform: short side floor(size / cropPct), centre crop, normalised", () => {
  const image = {
    width: 500,
    height: 375,
    data: new Uint8Array(500 * 375 * 3).map((_, i) => i % 253),
  };
  const out = evalTransform(image, { size: 224 });
  assertEquals(out.length, 224 * 224 * 3);
  // 224 / 0.875 = 256: 375 -> 256, 500 -> int(256 * 500 / 375) = 341; crop at (16, 58).
  const resized = resizeImage(image, 341, 256, { filter: "bicubic" });
  assertEquals(
    evalImage(image, { size: 224 }).data,
    cropImage(resized, 16, 58, 224, 224).data,
  );
  assertEquals(out, normalizeImage(cropImage(resized, 16, 58, 224, 224)));
  // No resize when the short side is already floor(size / cropPct).
  const exact = {
    width: 9,
    height: 8,
    data: new Uint8Array(216).map((_, i) => i),
  };
  assertEquals(
    evalImage(exact, { size: 7, cropPct: 0.875 }).data,
    cropImage(exact, 0, 1, 7, 7).data,
  );
});

Deno.test("normalisation: (v / 255 - mean) / std in float32", () => {
  const image = {
    width: 2,
    height: 1,
    data: new Uint8Array([0, 128, 255, 17, 200, 3]),
  };
  const mean = [0.485, 0.456, 0.406], std = [0.229, 0.224, 0.225];
  const f = Math.fround;
  const want = Float32Array.from(
    image.data,
    (v, i) => f(f(f(v / 255) - f(mean[i % 3])) / f(std[i % 3])),
  );
  assertEquals(normalizeImage(image, mean, std), want);
});

Deno.test("determinism: the same seed gives the same sample, another seed another", () => {
  const image = coordinateImage(60, 45);
  const map = coordinateMap(15, 15, 5);
  const a = trainTransform({ image, map }, { size: 32 }, Rng.derive(9, 1, 2));
  const b = trainTransform({ image, map }, { size: 32 }, Rng.derive(9, 1, 2));
  assertEquals(a, b);
  let differ = 0;
  for (let s = 0; s < 10; s++) {
    const c = trainTransform(
      { image, map },
      { size: 32 },
      Rng.derive(9, 1, 3 + s),
    );
    if (JSON.stringify(c.box) !== JSON.stringify(a.box)) differ++;
  }
  assert(differ >= 9, `${differ} of 10 other seeds gave another box`);
  const before = new Uint8Array(image.data),
    scores = new Float32Array(map.scores);
  trainTransform({ image, map }, { size: 32, reprob: 1 }, new Rng(4));
  assertEquals(image.data, before, "the input image is untouched");
  assertEquals(map.scores, scores, "the input map is untouched");
});

Deno.test("random erasing: area and aspect within timm's ranges, only the image changes", () => {
  const W = 64, H = 48;
  let areaLo = 1, areaHi = 0, aspLo = 10, aspHi = 0, fired = 0;
  for (let s = 0; s < 400; s++) {
    const px = new Float32Array(W * H * 3);
    const boxes = randomErase(px, W, H, new Rng(s), { probability: 1 });
    for (const b of boxes) {
      fired++;
      assert(
        b.top >= 0 && b.left >= 0 && b.top + b.height <= H &&
          b.left + b.width <= W,
      );
      assert(b.height < H && b.width < W);
      const frac = (b.height * b.width) / (W * H);
      areaLo = Math.min(areaLo, frac);
      areaHi = Math.max(areaHi, frac);
      aspLo = Math.min(aspLo, b.height / b.width);
      aspHi = Math.max(aspHi, b.height / b.width);
      // Per-pixel normal values inside, zeros outside.
      let outside = 0, inside = 0;
      for (let y = 0; y < H; y++) {
        for (let x = 0; x < W; x++) {
          const inBox = y >= b.top && y < b.top + b.height && x >= b.left &&
            x < b.left + b.width;
          for (let c = 0; c < 3; c++) {
            const v = px[(y * W + x) * 3 + c];
            if (inBox) inside += v !== 0 ? 1 : 0;
            else outside += v !== 0 ? 1 : 0;
          }
        }
      }
      assertEquals(outside, 0);
      assertEquals(inside, 3 * b.height * b.width);
    }
  }
  assert(fired > 380, `erasing fired ${fired} of 400 times`); // a few never fit in 10 tries
  // Sides are rounded, so the bounds hold up to the rounding.
  assert(areaLo >= 0.015 && areaLo < 0.03, `smallest area ${areaLo}`);
  assert(areaHi <= 0.36 && areaHi > 0.3, `largest area ${areaHi}`);
  assert(aspLo >= 0.25 && aspLo < 0.4, `smallest aspect ${aspLo}`);
  assert(aspHi <= 4 && aspHi > 2.5, `largest aspect ${aspHi}`);
  // Probability: about a quarter of images by default.
  let on = 0;
  for (let s = 0; s < 2000; s++) {
    on += randomErase(new Float32Array(W * H * 3), W, H, new Rng(s)).length;
  }
  assert(Math.abs(on / 2000 - 0.25) < 0.03, `erasing rate ${on / 2000}`);
  // Modes: one value per channel ("rand"), zeros ("const").
  const px = new Float32Array(W * H * 3).fill(5);
  const [b] = randomErase(px, W, H, new Rng(1), {
    probability: 1,
    mode: "const",
  });
  assertEquals(px[((b.top * W) + b.left) * 3], 0);
  const py = new Float32Array(W * H * 3);
  const [c] = randomErase(py, W, H, new Rng(1), {
    probability: 1,
    mode: "rand",
  });
  const o1 = (c.top * W + c.left) * 3,
    o2 = ((c.top + c.height - 1) * W + c.left + c.width - 1) * 3;
  assertEquals(
    Array.from(py.subarray(o1, o1 + 3)),
    Array.from(py.subarray(o2, o2 + 3)),
  );
  // In the transform: same seed with and without erasing: map, box, crop the same; pixels differ only in the boxes.
  const image = coordinateImage(50, 40), map = coordinateMap(5, 5);
  for (let s = 0; s < 20; s++) {
    const on = trainTransform(
      { image, map },
      { size: 24, reprob: 1 },
      new Rng(s),
    );
    const off = trainTransform(
      { image, map },
      { size: 24, reprob: 0 },
      new Rng(s),
    );
    assertEquals([on.map, on.box, on.applied.crop], [
      off.map,
      off.box,
      off.applied.crop,
    ]);
    for (let y = 0; y < 24; y++) {
      for (let x = 0; x < 24; x++) {
        const inside = on.applied.erased.some((e) =>
          y >= e.top && y < e.top + e.height && x >= e.left &&
          x < e.left + e.width
        );
        if (inside) continue;
        const o = (y * 24 + x) * 3;
        assertEquals(
          on.pixels.subarray(o, o + 3),
          off.pixels.subarray(o, o + 3),
        );
      }
    }
  }
});

Deno.test("config: the official defaults, and clear errors", () => {
  const c = resolveTrainTransform({ size: 64 });
  assertEquals({ ...c, size: 224 }, { ...DEFAULT_TRAIN_TRANSFORM });
  assertEquals(
    [c.hflip, c.autoAugment, c.interpolation, c.reprob, c.remode, c.recount],
    [0.5, "rand-m9-mstd0.5-inc1", "random", 0.25, "pixel", 1],
  );
  const image = coordinateImage(10, 10);
  const bad: [Record<string, unknown>, string][] = [
    [{ size: 0 }, "trainTransform.size: expected a positive integer"],
    [{ size: 8, hflip: 2 }, "trainTransform.hflip: expected a probability"],
    [{ size: 8, reprob: -1 }, "trainTransform.reprob"],
    [{ size: 8, autoAugment: "rand-q1" }, "unknown key"],
    [{ size: 8, autoAugment: 5 }, "a RandAugment string or null"],
    [
      { size: 8, interpolation: "lanczos" },
      '"random", "bilinear", "bicubic" or "nearest"',
    ],
    [
      { size: 8, scale: [0.5, 0.1] },
      "trainTransform.scale: expected [min, max]",
    ],
    [{ size: 8, ratio: [0, 1] }, "trainTransform.ratio"],
    [
      { size: 8, mean: [0.5, 0.5] },
      "trainTransform.mean: expected 3 finite numbers",
    ],
    [
      { size: 8, std: [1, 0, 1] },
      "trainTransform.std: expected 3 positive numbers",
    ],
    [{ size: 8, remode: "blur" }, '"pixel", "rand" or "const"'],
    [{ size: 8, recount: 0 }, "trainTransform.recount"],
    [{ size: 8, colorJitter: 0.4 }, "expected only the fields"],
  ];
  for (const [config, message] of bad) {
    assertThrows(
      () => trainTransform({ image }, config as { size: number }, new Rng(0)),
      config.autoAugment === "rand-q1" ? Error : TransformError,
      message,
    );
  }
  assertThrows(
    () => evalTransform(image, { size: 8, cropPct: 1.5 }),
    TransformError,
    "a fraction in (0, 1]",
  );
  assertThrows(
    () => evalTransform(image, { size: 2.5 }),
    TransformError,
    "evalTransform.size",
  );
  assertThrows(
    () =>
      evalTransform(image, { size: 8, interpolation: "area" as "bilinear" }),
    TransformError,
    "LV-ViT evaluates with",
  );
});
