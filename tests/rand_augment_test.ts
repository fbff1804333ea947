/**
 * RandAugment (lib/data/rand_augment.ts): the config parser (good and bad
 * strings), timm 0.4's level-to-argument functions, the op distribution
 * (every op appears, each runs half the time, magnitude noise clipped),
 * determinism, and that the reported ops replay to the same image (so the
 * score map, moved by the reported `mapOp`s, follows the image).
 */

import { assert, assertEquals, assertThrows } from "./_assert.ts";
import { Rng } from "tokenlab";
import type { RgbImage } from "tokenlab/data/image.ts";
import {
  type AppliedOp,
  MAX_MAGNITUDE,
  parseRandAugment,
  RAND_AUGMENT_FILL,
  RAND_INCREASING_TRANSFORMS,
  RAND_TRANSFORMS,
  randAugment,
  type RandAugmentConfig,
  RandAugmentError,
} from "tokenlab/data/rand_augment.ts";
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
} from "tokenlab/data/image_colour.ts";
import { transformImage } from "tokenlab/data/image_geometry.ts";

function testImage(width = 12, height = 9, seed = 1): RgbImage {
  const rng = new Rng(seed);
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = rng.int(256);
  return { width, height, data };
}

Deno.test("parser: the official strings and the defaults", () => {
  assertEquals(parseRandAugment("rand-m9-mstd0.5-inc1"), {
    numOps: 2,
    magnitude: 9,
    magnitudeStd: 0.5,
    increasing: true,
    weights: null,
    probability: 0.5,
    ops: RAND_INCREASING_TRANSFORMS,
  });
  const large = parseRandAugment("rand-n3-m9-mstd0.5-inc1");
  assertEquals([large.numOps, large.magnitude, large.increasing], [3, 9, true]);
  const bare = parseRandAugment("rand");
  assertEquals(
    [bare.numOps, bare.magnitude, bare.magnitudeStd, bare.increasing, bare.ops],
    [2, 10, 0, false, RAND_TRANSFORMS],
  );
  // Sections in any order; inc0 is off; w0 weights.
  const c = parseRandAugment("rand-inc0-mstd1-m0-w0-n4");
  assertEquals(
    [c.numOps, c.magnitude, c.magnitudeStd, c.increasing, c.weights],
    [4, 0, 1, false, 0],
  );
  assertEquals(parseRandAugment("rand-m10").magnitude, MAX_MAGNITUDE);
  assertEquals(RAND_TRANSFORMS.length, 15);
  assertEquals(RAND_INCREASING_TRANSFORMS.length, 15);
});

Deno.test("parser: bad strings give errors saying what is known", () => {
  const cases: [string, string][] = [
    ["", 'starts with "rand"'],
    ["rnd-m9", 'starts with "rand"'],
    ["rand-x3", "the known keys are m (magnitude"],
    ["rand-mmax10", "came with later timm versions"],
    ["rand-p0.5", "came with later timm versions"],
    ["rand-m", "has no value"],
    ["rand-m11", "integer magnitude 0..10"],
    ["rand-m9.5", "integer magnitude 0..10"],
    ["rand-n0", "positive integer count"],
    ["rand-inc2", "needs 0 or 1"],
    ["rand-w1", "needs 0"],
    ["rand-mstd-1", "has no value"],
    ["rand-mstdx", "has no value"],
    ["rand-m9--inc1", "is not a key followed by a value"],
    ["rand-w0-n14", "at most 13"],
  ];
  for (const [spec, message] of cases) {
    assertThrows(() => parseRandAugment(spec), RandAugmentError, message);
  }
  assertThrows(
    () =>
      randAugment(testImage(), {
        ...parseRandAugment("rand"),
        ops: ["Blur" as "Invert"],
      }, new Rng(0)),
    RandAugmentError,
    "unknown RandAugment op",
  );
  assertThrows(
    () =>
      randAugment(testImage(), "rand", new Rng(0), {
        interpolation: "lanczos" as "bilinear",
      }),
    RandAugmentError,
    "interpolation must be",
  );
});

/** A config that runs exactly one given op, always. */
function only(name: string, spec = "rand-m9-n1"): RandAugmentConfig {
  return {
    ...parseRandAugment(spec),
    ops: [name as RandAugmentConfig["ops"][number]],
    probability: 1,
  };
}

Deno.test("level to argument: timm 0.4's functions at m9 (no noise)", () => {
  const image = testImage();
  const values = (name: string, spec?: string) => {
    const seen = new Set<number>();
    for (let s = 0; s < 40; s++) {
      const { ops } = randAugment(image, only(name, spec), new Rng(s));
      assertEquals(ops.length, 1);
      assertEquals(
        ops[0].magnitude,
        parseRandAugment(spec ?? "rand-m9").magnitude,
      );
      seen.add(Math.round((ops[0].value ?? NaN) * 1e9) / 1e9);
    }
    return [...seen].sort((a, b) => a - b);
  };
  assertEquals(values("Rotate"), [-27, 27]);
  assertEquals(values("ShearX"), [-0.27, 0.27]);
  assertEquals(values("ShearY"), [-0.27, 0.27]);
  assertEquals(values("TranslateXRel"), [-0.405, 0.405]);
  assertEquals(values("TranslateYRel"), [-0.405, 0.405]);
  assertEquals(values("PosterizeIncreasing"), [1]); // 4 - int(3.6)
  assertEquals(values("Posterize"), [3]);
  assertEquals(values("SolarizeIncreasing"), [26]); // 256 - int(230.4)
  assertEquals(values("Solarize"), [230]);
  assertEquals(values("SolarizeAdd"), [99]);
  assertEquals(values("ColorIncreasing"), [0.19, 1.81]);
  assertEquals(values("SharpnessIncreasing"), [0.19, 1.81]);
  assertEquals(values("Brightness"), [1.72]); // 1.8 * 0.9 + 0.1
  assertEquals(values("Rotate", "rand-m0-n1"), [0]);
  assertEquals(values("PosterizeIncreasing", "rand-m10-n1"), [0]);
  assertEquals(values("SolarizeIncreasing", "rand-m0-n1"), [256]);
  const { ops } = randAugment(image, only("AutoContrast"), new Rng(0));
  assertEquals(ops[0].value, undefined);
  assertEquals(ops[0].mapOp, undefined);
});

Deno.test("distribution: every op appears, each chosen op runs half the time, noise clipped to [0, 10]", () => {
  const image = testImage(6, 5);
  const config = parseRandAugment("rand-m9-mstd0.5-inc1");
  const counts = new Map<string, number>();
  const filters = new Map<string, number>();
  let applied = 0, magnitudes = 0, sum = 0, spread = 0;
  const draws = 3000;
  for (let i = 0; i < draws; i++) {
    const { ops } = randAugment(image, config, Rng.derive(11, i));
    applied += ops.length;
    for (const op of ops) {
      counts.set(op.name, (counts.get(op.name) ?? 0) + 1);
      assert(op.magnitude >= 0 && op.magnitude <= 10);
      magnitudes++;
      sum += op.magnitude;
      spread += (op.magnitude - 9) ** 2;
      if (op.filter) filters.set(op.filter, (filters.get(op.filter) ?? 0) + 1);
    }
  }
  assertEquals(
    [...counts.keys()].sort(),
    [...RAND_INCREASING_TRANSFORMS].sort(),
  );
  // 2 ops x p 0.5 = 1 op per image on average; each op 1/15 of them.
  assert(
    Math.abs(applied / draws - 1) < 0.05,
    `ops per image ${applied / draws}`,
  );
  for (const [name, n] of counts) {
    assert(Math.abs(n / applied - 1 / 15) < 0.02, `${name}: ${n / applied}`);
  }
  // N(9, 0.5) clipped at 10: mean a little below 9, spread about 0.5.
  const mean = sum / magnitudes, std = Math.sqrt(spread / magnitudes);
  assert(mean > 8.9 && mean < 9.02, `mean magnitude ${mean}`);
  assert(std > 0.4 && std < 0.55, `magnitude spread ${std}`);
  // Random interpolation: bilinear and bicubic about equally.
  const bl = filters.get("bilinear") ?? 0, bc = filters.get("bicubic") ?? 0;
  assert(
    Math.abs(bl / (bl + bc) - 0.5) < 0.05,
    `bilinear share ${bl / (bl + bc)}`,
  );
  assertEquals(filters.get("nearest"), undefined);
});

Deno.test("w0: weighted choice without replacement, never Invert or Posterize", () => {
  const image = testImage(4, 4);
  const config = { ...parseRandAugment("rand-m5-n3-w0"), probability: 1 };
  const counts = new Map<string, number>();
  for (let i = 0; i < 2000; i++) {
    const { ops } = randAugment(image, config, new Rng(i));
    assertEquals(ops.length, 3);
    assertEquals(new Set(ops.map((o) => o.name)).size, 3, "no op twice");
    for (const op of ops) counts.set(op.name, (counts.get(op.name) ?? 0) + 1);
  }
  assertEquals(counts.get("Invert"), undefined);
  assertEquals(counts.get("Posterize"), undefined);
  // Rotate (0.3) is the most likely op.
  const top = [...counts.entries()].sort((a, b) => b[1] - a[1])[0][0];
  assertEquals(top, "Rotate");
});

Deno.test("fixed interpolation and fill", () => {
  const white = { width: 10, height: 10, data: new Uint8Array(300).fill(255) };
  for (const interpolation of ["bilinear", "bicubic", "nearest"] as const) {
    const { image, ops } = randAugment(
      white,
      only("Rotate", "rand-m10-n1"),
      new Rng(3),
      {
        interpolation,
      },
    );
    assertEquals(ops[0].filter, interpolation);
    // A 30-degree rotation uncovers the corners: the ImageNet mean fill.
    assertEquals(Array.from(image.data.subarray(0, 3)), [...RAND_AUGMENT_FILL]);
  }
  const { image } = randAugment(
    white,
    only("Rotate", "rand-m10-n1"),
    new Rng(3),
    {
      fill: [1, 2, 3],
    },
  );
  assertEquals(Array.from(image.data.subarray(0, 3)), [1, 2, 3]);
});

/** Applies the reported ops again, from the op list alone. */
function replay(image: RgbImage, ops: AppliedOp[]): RgbImage {
  for (const op of ops) {
    const v = op.value as number;
    if (op.mapOp) {
      image = transformImage(image, op.mapOp, {
        filter: op.filter,
        fill: RAND_AUGMENT_FILL,
      });
    } else if (op.name === "AutoContrast") image = autocontrast(image);
    else if (op.name === "Equalize") image = equalize(image);
    else if (op.name === "Invert") image = invert(image);
    else if (op.name.startsWith("Posterize")) {
      image = v >= 8 ? image : posterize(image, v);
    } else if (op.name.startsWith("SolarizeAdd")) image = solarizeAdd(image, v);
    else if (op.name.startsWith("Solarize")) image = solarize(image, v);
    else if (op.name.startsWith("Color")) image = enhanceColor(image, v);
    else if (op.name.startsWith("Contrast")) image = enhanceContrast(image, v);
    else if (op.name.startsWith("Brightness")) {
      image = enhanceBrightness(image, v);
    } else image = enhanceSharpness(image, v);
  }
  return image;
}

Deno.test("determinism, and the reported ops replay to the same image", () => {
  const image = testImage(16, 12, 5);
  const before = new Uint8Array(image.data);
  let differing = 0;
  for (
    const spec of ["rand-m9-mstd0.5-inc1", "rand-n3-m7", "rand-m9-mstd1-w0"]
  ) {
    for (let s = 0; s < 60; s++) {
      const a = randAugment(image, spec, new Rng(s));
      const b = randAugment(image, spec, new Rng(s));
      assertEquals(a.ops, b.ops);
      assertEquals(a.image.data, b.image.data);
      assertEquals(
        replay(image, a.ops).data,
        a.image.data,
        `${spec} seed ${s}`,
      );
      const c = randAugment(image, spec, new Rng(s + 1000));
      if (JSON.stringify(c.ops) !== JSON.stringify(a.ops)) differing++;
    }
  }
  assert(differing > 100, `other seeds should give other ops (${differing})`);
  assertEquals(image.data, before, "the input is left as it was");
});

Deno.test("no op: the image itself", () => {
  const image = testImage();
  const none = { ...parseRandAugment("rand"), probability: 0 };
  const out = randAugment(image, none, new Rng(0));
  assertEquals(out.ops, []);
  assert(out.image === image);
});
