/**
 * Speed of the per-sample training transform (lib/data/transforms.ts) on one
 * thread: images per second for a 500 x 375 image to 224 x 224 (an ImageNet
 * photo's typical size) and for a 64 x 64 image to 64 x 64 (the synthetic
 * datasets), with the official settings (flip, rand-m9-mstd0.5-inc1 with
 * random bilinear/bicubic, RandomResizedCrop, normalisation, random erasing
 * 0.25) and a 5 x 15 x 15 score map moved along; plus the evaluation
 * transform and each RandAugment op alone at the large size.
 *
 *     npx -y deno@2.9.6 run -A tests/bench/transforms_speed.ts
 */

import { Rng } from "tokenlab";
import type { RgbImage } from "tokenlab/data/image.ts";
import type { ScoreMap } from "tokenlab/labels/score_map.ts";
import { evalTransform, trainTransform } from "tokenlab/data/transforms.ts";
import {
  parseRandAugment,
  RAND_INCREASING_TRANSFORMS,
  randAugment,
} from "tokenlab/data/rand_augment.ts";

function photo(width: number, height: number, seed: number): RgbImage {
  const rng = new Rng(seed);
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 3;
      data[o] = (128 + 100 * Math.sin(x / 17) * Math.cos(y / 23)) | 0;
      data[o + 1] = (x + y) & 255;
      data[o + 2] = Math.min(255, (rng.float() * 40 + 100) | 0);
    }
  }
  return { width, height, data };
}

function map(k: number, h: number, w: number): ScoreMap {
  const n = k * h * w;
  return {
    k,
    height: h,
    width: w,
    scores: new Float32Array(n).map((_, i) => (i % 97) / 10),
    ids: new Int32Array(n).map((_, i) => i % 1000),
  };
}

function rate(label: string, seconds: number, fn: (i: number) => void): void {
  for (let i = 0; i < 5; i++) fn(i); // warm up
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) fn(n++);
  const dt = (performance.now() - t0) / 1000;
  console.log(
    `${label.padEnd(44)} ${(n / dt).toFixed(1).padStart(8)} images/s  (${
      (1000 * dt / n).toFixed(2)
    } ms each, ${n} runs)`,
  );
}

const big = photo(500, 375, 1);
const small = photo(64, 64, 2);
const bigMap = map(5, 15, 15);
const smallMap = map(5, 4, 4);

rate("train 500x375 -> 224 (official, with map)", 3, (i) => {
  trainTransform({ image: big, map: bigMap }, { size: 224 }, Rng.derive(0, i));
});
rate("train 64x64 -> 64 (official, with map)", 3, (i) => {
  trainTransform(
    { image: small, map: smallMap },
    { size: 64 },
    Rng.derive(1, i),
  );
});
rate("train 500x375 -> 224 (no RandAugment)", 2, (i) => {
  trainTransform(
    { image: big },
    { size: 224, autoAugment: null },
    Rng.derive(2, i),
  );
});
rate("eval 500x375 -> 224 (bicubic, crop 0.875)", 2, () => {
  evalTransform(big, { size: 224 });
});
for (const name of RAND_INCREASING_TRANSFORMS) {
  const config = {
    ...parseRandAugment("rand-m9-n1-inc1"),
    ops: [name],
    probability: 1,
  };
  rate(`  RandAugment ${name} alone, 500x375`, 0.5, (i) => {
    randAugment(big, config, Rng.derive(3, i));
  });
}
