/**
 * Warnings `tokenlab train` prints (on stderr, not errors) when the
 * augmentation looks wrong for the data: colour augmentation on grey
 * images, horizontal flips on small grey images (digits, text: a flipped 2
 * is not a 2), and the ImageNet recipe on a small dataset.
 *
 * @module
 */

import type { ImageDataset } from "../data/image.ts";
import type { ResolvedTrainConfig } from "../train/config.ts";
import type { RecipeName } from "./_recipes.ts";

/** What a look at some of the training images found. */
export interface ImageFacts {
  /** Images looked at (unreadable ones are passed over). */
  sampled: number;
  /** Whether every pixel of every image looked at has R = G = B. */
  grayscale: boolean;
  /** The largest side among them, in pixels. */
  side: number;
}

/** Below this many training images, the ImageNet recipe is out of place (ImageNet has 1.28 million). */
export const SMALL_DATASET = 100_000;

/** The largest side of images called small (digits, glyphs, CIFAR). */
export const SMALL_IMAGE = 64;

/**
 * Looks at up to `n` training images spread evenly over the dataset
 * (deterministic, no draw): are they grey, how large.
 */
export async function inspectImages(
  dataset: ImageDataset,
  n = 16,
): Promise<ImageFacts> {
  const count = Math.min(n, dataset.size);
  let sampled = 0, grayscale = true, side = 0;
  for (let k = 0; k < count; k++) {
    let image;
    try {
      image = await dataset.image(Math.floor(k * dataset.size / count));
    } catch {
      continue; // an unreadable image is the run's to report
    }
    sampled++;
    side = Math.max(side, image.width, image.height);
    const d = image.data;
    for (let p = 0; grayscale && p < d.length; p += 3) {
      if (d[p] !== d[p + 1] || d[p] !== d[p + 2]) grayscale = false;
    }
  }
  return { sampled, grayscale: grayscale && sampled > 0, side };
}

/** The warnings for a run (empty when nothing looks wrong). */
export function augmentationWarnings(
  c: ResolvedTrainConfig,
  recipe: RecipeName,
  facts: ImageFacts,
  trainImages: number,
): string[] {
  const out: string[] = [];
  const grey = facts.grayscale
    ? `the training images look grayscale (R = G = B in all ${facts.sampled} looked at)`
    : null;
  if (grey !== null && c.aa !== null) {
    out.push(
      `${grey}, but RandAugment (--aa ${c.aa}) is on: its colour operations (Color, Solarize, Posterize, Equalize...) and m9 strength are made for photographs; use --no-aa (or --recipe short)`,
    );
  }
  if (grey !== null && c.hflip > 0 && facts.side <= SMALL_IMAGE) {
    out.push(
      `${grey} and small (${facts.side} px), like digits or text, and horizontal flips are on (--hflip ${c.hflip}): a flipped 2 or a flipped letter is not the same class; use --hflip 0`,
    );
  }
  if (recipe === "imagenet" && trainImages < SMALL_DATASET) {
    out.push(
      `the imagenet recipe (batch ${c.batchSize}, ${c.warmupEpochs} warmup + ${c.cooldownEpochs} cooldown epochs, RandAugment, erasing ${c.reprob}, crops down to ${
        c.scale[0] * 100
      } % of the area) is made for ImageNet's 1.28 million images, and this run trains on ${trainImages}; for a small dataset use --recipe short`,
    );
  }
  if (c.schedUpdate === "epoch" && c.warmupEpochs > 0 && c.epochs < 30) {
    out.push(
      `with per-epoch lr updates the first epoch runs entirely at the warmup lr ${c.warmupLr} (a ${c.warmupEpochs}-epoch warmup of a ${
        c.epochs + c.cooldownEpochs
      }-epoch run); use --sched-update step (per-step updates, --recipe short does)`,
    );
  }
  return out.map((w) => `warning: ${w}`);
}
