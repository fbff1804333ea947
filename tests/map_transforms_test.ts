/**
 * Map transforms (lib/labels/map_transforms.ts): the flip, RandAugment's
 * spatial ops against PIL itself (tests/fixtures/make_map_transforms_fixture.py
 * applies timm's calls to map-sized images whose pixels name their own
 * position) and hand-computed cases for what falls outside, and
 * RandomResizedCrop boxes (inside the image, within the ranges, the same
 * for the same seed, torchvision's fallback).
 */

import { assert, assertEquals, assertThrows } from "./_assert.ts";
import { ROOT } from "./_helpers.ts";
import { Rng } from "tokenlab";
import {
  affineMatrix,
  flipMap,
  type MapOp,
  MapTransformError,
  sampleCropBox,
  transformMap,
} from "tokenlab/labels/map_transforms.ts";
import type { ScoreMap } from "tokenlab/labels/score_map.ts";

/**
 * A map whose cells encode their own position: rank r of cell (h, w) has
 * score 1 + h * W + w + r * 1000 (never 0) and id h * W + w + r * 1000.
 */
function coordinateMap(k: number, H: number, W: number): ScoreMap {
  const scores = new Float32Array(k * H * W), ids = new Int32Array(k * H * W);
  for (let r = 0; r < k; r++) {
    for (let p = 0; p < H * W; p++) {
      scores[r * H * W + p] = 1 + p + r * 1000;
      ids[r * H * W + p] = p + r * 1000;
    }
  }
  return { k, height: H, width: W, scores, ids };
}

/** Per output cell: the source cell index its rank 0 came from, or -1 (score 0). */
function sources(map: ScoreMap): number[] {
  return Array.from(
    map.scores.subarray(0, map.height * map.width),
    (s) => (s === 0 ? -1 : s - 1),
  );
}

/** Checks that every rank of every cell moved together. */
function assertRanksTogether(out: ScoreMap): void {
  const plane = out.height * out.width;
  for (let r = 1; r < out.k; r++) {
    for (let p = 0; p < plane; p++) {
      const s0 = out.scores[p], s = out.scores[r * plane + p];
      assertEquals(s === 0 ? 0 : s - r * 1000, s0, `score rank ${r} cell ${p}`);
      assertEquals(
        out.ids[r * plane + p] - r * 1000,
        out.ids[p],
        `id rank ${r}`,
      );
    }
  }
}

Deno.test("flipMap reverses the columns of every rank", () => {
  const map = coordinateMap(3, 4, 5);
  const before = map.scores.slice();
  const flipped = flipMap(map);
  for (let r = 0; r < 3; r++) {
    for (let h = 0; h < 4; h++) {
      for (let w = 0; w < 5; w++) {
        const to = (r * 4 + h) * 5 + w, from = (r * 4 + h) * 5 + (4 - w);
        assertEquals(flipped.scores[to], map.scores[from]);
        assertEquals(flipped.ids[to], map.ids[from]);
      }
    }
  }
  assertEquals(map.scores, before, "the input is left as it was");
  assertEquals(flipMap(flipped), map, "two flips: the original");
  assertEquals(flipped.k, 3);
  assertEquals([flipped.height, flipped.width], [4, 5]);
});

interface PilCase {
  height: number;
  width: number;
  op: MapOp["op"];
  value: number;
  source: number[];
}

const PIL: { cases: PilCase[] } = JSON.parse(
  await Deno.readTextFile(`${ROOT}tests/fixtures/map_transforms_pil.json`),
);

function opOf(name: MapOp["op"], value: number): MapOp {
  switch (name) {
    case "rotate":
      return { op: "rotate", degrees: value };
    case "shearX":
    case "shearY":
      return { op: name, factor: value };
    default:
      return { op: name, fraction: value };
  }
}

Deno.test("spatial ops move the map as PIL moves an image (every cell, every rank)", () => {
  assert(PIL.cases.length >= 50, "the fixture holds the cases");
  for (const c of PIL.cases) {
    const map = coordinateMap(2, c.height, c.width);
    const out = transformMap(map, opOf(c.op, c.value));
    assertEquals(
      sources(out),
      c.source,
      `${c.op} ${c.value} on ${c.height} x ${c.width}`,
    );
    assertRanksTogether(out);
    // Outside cells: the ids of the nearest cell inside (a cell of the map).
    for (let p = 0; p < c.height * c.width; p++) {
      assert(out.ids[p] >= 0 && out.ids[p] < c.height * c.width);
      if (c.source[p] >= 0) assertEquals(out.ids[p], c.source[p]);
    }
  }
});

Deno.test("outside cells: score 0 and the nearest cell's ids (hand-computed)", () => {
  // 2 x 4 map, translate x by a quarter of the width: content moves one
  // column left; the last column comes from outside and takes column 3's ids.
  const map = coordinateMap(2, 2, 4);
  let out = transformMap(map, { op: "translateXRel", fraction: 0.25 });
  assertEquals(sources(out), [1, 2, 3, -1, 5, 6, 7, -1]);
  assertEquals(Array.from(out.ids.subarray(0, 8)), [1, 2, 3, 3, 5, 6, 7, 7]);
  assertEquals(Array.from(out.scores.subarray(8, 16)), [
    1002,
    1003,
    1004,
    0,
    1006,
    1007,
    1008,
    0,
  ]);
  assertEquals(Array.from(out.ids.subarray(8, 16)), [
    1001,
    1002,
    1003,
    1003,
    1005,
    1006,
    1007,
    1007,
  ]);
  // Down by half the height (negative fraction): row 0 comes from above.
  out = transformMap(map, { op: "translateYRel", fraction: -0.5 });
  assertEquals(sources(out), [-1, -1, -1, -1, 0, 1, 2, 3]);
  assertEquals(Array.from(out.ids.subarray(0, 8)), [0, 1, 2, 3, 0, 1, 2, 3]);
  // shear x 0.5: row 0 samples x + 0.75, row 1 x + 1.25 (its last cell is
  // outside, nearest column 3 of row 1).
  out = transformMap(map, { op: "shearX", factor: 0.5 });
  assertEquals(sources(out), [0, 1, 2, 3, 5, 6, 7, -1]);
  assertEquals(Array.from(out.ids.subarray(0, 8)), [0, 1, 2, 3, 5, 6, 7, 7]);
  // Rotating a 3 x 3 map by 45 degrees: the corners' sources lie inside
  // (the centre of cell (0, 0) comes from (0.086, 1.5): cell (0, 1)).
  const r = transformMap(coordinateMap(1, 3, 3), { op: "rotate", degrees: 45 });
  assertEquals(sources(r)[0], 1);
  assertEquals(sources(r)[4], 4, "the centre stays");
  // Nothing moves for the identity parameters.
  const still: MapOp[] = [
    { op: "rotate", degrees: 0 },
    { op: "rotate", degrees: 360 },
    { op: "shearX", factor: 0 },
    { op: "shearY", factor: 0 },
    { op: "translateXRel", fraction: 0 },
    { op: "translateYRel", fraction: 0 },
  ];
  for (const op of still) assertEquals(transformMap(map, op), map, op.op);
});

Deno.test("the image's aspect: rotation and shear are isotropic in image pixels", () => {
  // A 4 x 4 map of an image twice as tall as wide: one cell is 2 pixels
  // high per pixel wide, so shear x by f in image pixels is 2 f in cells.
  const map = coordinateMap(1, 4, 4);
  assertEquals(
    transformMap(map, { op: "shearX", factor: 0.25 }, {
      imageSize: [200, 100],
    }),
    transformMap(map, { op: "shearX", factor: 0.5 }),
  );
  assertEquals(
    transformMap(map, { op: "shearY", factor: 0.5 }, { imageSize: [200, 100] }),
    transformMap(map, { op: "shearY", factor: 0.25 }),
  );
  // Translations are fractions: the image size does not matter.
  for (
    const op of [
      { op: "translateXRel", fraction: 0.3 },
      { op: "translateYRel", fraction: -0.2 },
    ] as MapOp[]
  ) {
    assertEquals(
      transformMap(map, op, { imageSize: [375, 500] }),
      transformMap(map, op),
    );
  }
  // A square image: the same as the map alone, also for a rotation.
  assertEquals(
    transformMap(map, { op: "rotate", degrees: 23 }, { imageSize: [224, 224] }),
    transformMap(map, { op: "rotate", degrees: 23 }),
  );
});

Deno.test("affineMatrix: PIL's matrices", () => {
  assertEquals(affineMatrix({ op: "shearX", factor: 0.3 }, [10, 20]), [
    1,
    0.3,
    0,
    0,
    1,
    0,
  ]);
  assertEquals(
    affineMatrix({ op: "translateYRel", fraction: -0.45 }, [200, 100]),
    [
      1,
      0,
      0,
      0,
      1,
      -90,
    ],
  );
  // 90 degrees counter-clockwise about (10, 5) of a 20 x 10 (w x h) image:
  // output (x, y) samples (-(y - 5) + 10, (x - 10) + 5).
  assertEquals(affineMatrix({ op: "rotate", degrees: 90 }, [10, 20]), [
    0,
    -1,
    15,
    1,
    0,
    -5,
  ]);
});

Deno.test("bad map ops and maps are refused", () => {
  const map = coordinateMap(1, 3, 3);
  assertThrows(
    () => transformMap(map, { op: "zoom", factor: 2 } as unknown as MapOp),
    MapTransformError,
    'unknown map op "zoom"',
  );
  assertThrows(
    () => transformMap(map, { op: "rotate", degrees: NaN }),
    MapTransformError,
    "finite parameter",
  );
  assertThrows(
    () =>
      transformMap(map, { op: "shearX", factor: 0.1 }, { imageSize: [0, 10] }),
    MapTransformError,
    "imageSize must be [height, width]",
  );
  assertThrows(
    () =>
      transformMap({ ...map, ids: new Int32Array(8) }, {
        op: "shearY",
        factor: 0.1,
      }),
    MapTransformError,
    "found 9 scores and 8 ids",
  );
  assertThrows(
    () => flipMap({ ...map, width: 0 }),
    MapTransformError,
    "not positive integers",
  );
});

Deno.test("RandomResizedCrop boxes: inside the image, in range, reproducible", () => {
  for (
    const [H, W] of [[224, 224], [375, 500], [500, 333], [7, 9], [
      1,
      1,
    ]] as const
  ) {
    const rng = new Rng(H * 1000 + W);
    const again = new Rng(H * 1000 + W);
    for (let i = 0; i < 500; i++) {
      const box = sampleCropBox([H, W], rng);
      assertEquals(sampleCropBox([H, W], again), box, "same seed, same box");
      const { top, left, height, width } = box;
      for (const v of [top, left, height, width]) assert(Number.isInteger(v));
      assert(height >= 1 && width >= 1, `empty box ${JSON.stringify(box)}`);
      assert(top >= 0 && left >= 0, `box ${JSON.stringify(box)}`);
      assert(
        top + height <= H && left + width <= W,
        `box ${JSON.stringify(box)} in ${H} x ${W}`,
      );
      assertEquals(box.normalized, [top / H, left / W, height / H, width / W]);
      if (H >= 100) {
        // The drawn area and ratio, up to the rounding of the sides.
        const area = (height * width) / (H * W);
        assert(area > 0.07 && area <= 1, `area ${area}`);
        const ratio = width / height;
        assert(ratio > 0.74 && ratio < 1.35, `ratio ${ratio}`);
      }
    }
  }
  // Different seeds, different boxes.
  const a = sampleCropBox([224, 224], new Rng(1));
  const b = sampleCropBox([224, 224], new Rng(2));
  assert(JSON.stringify(a) !== JSON.stringify(b));
});

Deno.test("RandomResizedCrop: torchvision's centre-crop fallback, halves to even", () => {
  // A 10 x 1000 strip: no box of area >= 0.99 fits, ratio 100 > 4/3, so the
  // central crop of height 10 and width round(10 * 4/3) = 13.
  let box = sampleCropBox([10, 1000], new Rng(0), { scale: [0.99, 1] });
  assertEquals(
    [box.top, box.left, box.height, box.width],
    [0, Math.floor((1000 - 13) / 2), 10, 13],
  );
  // Tall: width 10, height round(10 / (3/4)) = 13.
  box = sampleCropBox([1000, 10], new Rng(0), { scale: [0.99, 1] });
  assertEquals([box.top, box.left, box.height, box.width], [493, 0, 13, 10]);
  // 4 * 1.125 = 4.5 rounds to 4, as Python's round does (not 5).
  box = sampleCropBox([4, 1000], new Rng(0), {
    scale: [0.99, 1],
    ratio: [0.9, 1.125],
  });
  assertEquals([box.top, box.left, box.height, box.width], [0, 498, 4, 4]);
  // An image whose ratio is in range falls back to the whole image.
  box = sampleCropBox([4, 5], new Rng(0), { scale: [2, 3] });
  assertEquals([box.top, box.left, box.height, box.width], [0, 0, 4, 5]);
});

Deno.test("RandomResizedCrop: bad sizes and ranges are refused", () => {
  const rng = new Rng(0);
  assertThrows(
    () => sampleCropBox([0, 10], rng),
    MapTransformError,
    "whole pixels",
  );
  assertThrows(
    () => sampleCropBox([10.5, 10], rng),
    MapTransformError,
    "whole pixels",
  );
  assertThrows(
    () => sampleCropBox([10, 10], rng, { scale: [0.5, 0.1] }),
    MapTransformError,
    "scale must be [min, max]",
  );
  assertThrows(
    () => sampleCropBox([10, 10], rng, { ratio: [0, 1] }),
    MapTransformError,
    "ratio must be [min, max]",
  );
});
