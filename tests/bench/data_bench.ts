/**
 * The data pipeline on its own (no model): images per second from file or
 * generator to a normalised batch, with the official training transform
 * (flip, rand-m9-mstd0.5-inc1 with random bilinear/bicubic, RandomResizedCrop,
 * random erasing 0.25) and score maps moved along.
 *
 * - JPEG photos (500 x 375, quality 90, 64 of them, written once into a
 *   temporary image folder) to 224 x 224: decode (sharp) alone, one training
 *   transform alone, and whole batches of 32 through the loader with 0 and 2
 *   workers;
 * - synthetic scenes at 64 px with oracle score maps (8 x 8, k 5): render
 *   alone, and batches of 64 through the loader with 0 and 2 workers.
 *
 * Each loader iteration is one epoch of the folder (2 batches of 32) or of
 * 256 scenes (4 batches of 64): divide the images by the time for images/s.
 *
 * Side by side, in the same run when Debian's python3-torchvision is
 * installed, tests/bench/data_torch_bench.py times torchvision's equivalent
 * (Pillow decode, RandomResizedCrop, flip, RandAugment(2, 9), ToTensor,
 * Normalize, RandomErasing) on the same JPEG files, one process: its images/s
 * are printed before the table.
 *
 *     npx -y deno@2.9.6 bench -A tests/bench/data_bench.ts
 */

import { Rng } from "tokenlab";
import { SyntheticScenes } from "tokenlab/data/synthetic_scenes.ts";
import { decodeImage } from "tokenlab/data/decode.ts";
import { trainTransform } from "tokenlab/data/transforms.ts";
import { DataLoader } from "tokenlab/data/loader.ts";
import { oracleAnnotate } from "tokenlab/annotators/oracle.ts";
import sharp from "sharp";

const root = new URL("../../", import.meta.url).pathname;
const dir = await Deno.makeTempDir({
  dir: `${root}tests`,
  prefix: ".tmp-data-bench-",
});
globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(dir, { recursive: true });
  } catch { /* already gone */ }
});

// A folder of 64 JPEG "photos": synthetic scenes rendered at 512, cut to 500 x 375.
const photos = new SyntheticScenes({
  size: 512,
  count: 64,
  seed: 11,
  numClasses: 4,
});
const files: string[] = [];
for (let i = 0; i < photos.size; i++) {
  const img = await photos.image(i);
  const w = 500, h = 375, out = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    out.set(img.data.subarray(y * 512 * 3, y * 512 * 3 + w * 3), y * w * 3);
  }
  const cls = photos.classes[photos.label(i)!];
  await Deno.mkdir(`${dir}/photos/train/${cls}`, { recursive: true });
  const file = `${dir}/photos/train/${cls}/img_${i}.jpg`;
  await Deno.writeFile(
    file,
    await sharp(out, { raw: { width: w, height: h, channels: 3 } }).jpeg({
      quality: 90,
    }).toBuffer(),
  );
  files.push(file);
}
const jpegBytes = await Deno.readFile(files[0]);
const decoded = await decodeImage(jpegBytes, files[0]);

// The same files through torchvision, for the ratio.
try {
  const out = await new Deno.Command("/usr/bin/python3", {
    args: [`${root}tests/bench/data_torch_bench.py`, `${dir}/photos/train`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  console.log(
    out.success
      ? text
      : `torchvision reference skipped: ${
        new TextDecoder().decode(out.stderr).trim().split("\n").at(-1)
      }`,
  );
} catch (e) {
  console.log(`torchvision reference skipped: ${(e as Error).message}`);
}

// Synthetic scenes at 64 px with oracle maps.
const scenes = { size: 64, count: 256, seed: 3 };
await oracleAnnotate(new SyntheticScenes(scenes), `${dir}/scene_maps`, {
  mapSize: 8,
  k: 5,
});

const train224 = { kind: "train" as const, config: { size: 224 } };
const train64 = { kind: "train" as const, config: { size: 64 } };
const loaders = {
  photos0: await DataLoader.open(
    { data: { kind: "folder", root: `${dir}/photos` }, transform: train224 },
    { batchSize: 32, seed: 1 },
  ),
  photos2: await DataLoader.open(
    { data: { kind: "folder", root: `${dir}/photos` }, transform: train224 },
    { batchSize: 32, seed: 1, workers: 2, prefetch: 4 },
  ),
  scenes0: await DataLoader.open(
    {
      data: { kind: "synthetic", options: scenes },
      maps: `${dir}/scene_maps`,
      transform: train64,
    },
    { batchSize: 64, seed: 1 },
  ),
  scenes2: await DataLoader.open(
    {
      data: { kind: "synthetic", options: scenes },
      maps: `${dir}/scene_maps`,
      transform: train64,
    },
    { batchSize: 64, seed: 1, workers: 2, prefetch: 4 },
  ),
};
globalThis.addEventListener("unload", () => {
  for (const l of Object.values(loaders)) l.close();
});

let epoch = 0;
async function drain(loader: DataLoader): Promise<void> {
  for await (const _ of loader.epoch(epoch++)) { /* consume */ }
}

Deno.bench("decode one 500x375 JPEG (sharp)", { group: "photo" }, async () => {
  await decodeImage(jpegBytes);
});
let seed = 0;
Deno.bench(
  "train transform of one 500x375 image to 224 (official)",
  { group: "photo" },
  () => {
    trainTransform({ image: decoded }, { size: 224 }, new Rng(seed++));
  },
);
Deno.bench(
  "loader: 64 JPEGs to 224, batches of 32, workers 0",
  { group: "photo loader", baseline: true },
  async () => await drain(loaders.photos0),
);
Deno.bench(
  "loader: 64 JPEGs to 224, batches of 32, workers 2",
  { group: "photo loader" },
  async () => await drain(loaders.photos2),
);
const render = new SyntheticScenes({ size: 64, count: 100000, seed: 5 });
let scene = 0;
Deno.bench("render one synthetic scene at 64 px", { group: "scene" }, () => {
  render.render(scene++ % render.size);
});
Deno.bench(
  "loader: 256 scenes at 64 px with maps, batches of 64, workers 0",
  { group: "scene loader", baseline: true },
  async () => await drain(loaders.scenes0),
);
Deno.bench(
  "loader: 256 scenes at 64 px with maps, batches of 64, workers 2",
  { group: "scene loader" },
  async () => await drain(loaders.scenes2),
);
