/**
 * The training data as `tokenlab train` sees it before training: opened
 * once (the datasets the engine opens next), to count the steps of an
 * epoch for the plan and the warmup, to say which images a limit keeps,
 * and to look at some images for the warnings.
 *
 * @module
 */

import type { TrainConfig } from "../train/config.ts";
import { resolveData } from "../train/engine.ts";
import { openDataset } from "../data/datasets.ts";
import { DatasetError } from "../data/tensor_dataset.ts";
import { limitSample } from "../data/limit_sample.ts";
import { UsageError } from "./_args.ts";
import type { DataFacts } from "./_train_plan.ts";
import { type ImageFacts, inspectImages } from "./_data_warnings.ts";

/** Opens a dataset; a reader's refusal names --data or --val-data (exit 2). */
async function open(
  flag: string,
  spec: Parameters<typeof openDataset>[0],
) {
  try {
    return await openDataset(spec);
  } catch (e) {
    if (!(e instanceof DatasetError)) throw e;
    throw new UsageError(`tokenlab train: ${flag}: ${e.message}`, {
      cause: e,
    });
  }
}

/**
 * The facts of the plan and a look at the images, for a config with the
 * recipe applied (`batchSize`, `trainLimit`, `valLimit`, `seed` as the run
 * will have them).
 */
export async function trainingData(
  config: Record<string, unknown>,
  defaults: { batchSize: number; seed: number; batchFromFlag: boolean },
): Promise<{ facts: DataFacts; images: ImageFacts }> {
  const data = await resolveData(
    config as Pick<TrainConfig, "data" | "valData">,
  );
  const train = await open("--data", data.train);
  const seed = (config.seed as number | undefined) ?? defaults.seed;
  const batch = (config.batchSize as number | undefined) ?? defaults.batchSize;
  const trainLimit = config.trainLimit as number | undefined;
  const sample = trainLimit === undefined
    ? null
    : limitSample(train, trainLimit, seed);
  const used = sample?.indices.length ?? train.size;
  let valImages: number | null = null;
  if (data.val !== null) {
    const val = await open("--val-data", data.val);
    const valLimit = config.valLimit as number | undefined;
    valImages = Math.min(val.size, valLimit ?? val.size);
  }
  const stepsPerEpoch = Math.floor(used / batch);
  if (stepsPerEpoch === 0) {
    throw new UsageError(
      `tokenlab train: --batch-size ${batch}${
        defaults.batchFromFlag ? "" : " (the recipe's)"
      } is larger than the ${used} training images: every step takes a full batch; give a smaller --batch-size (--recipe short uses 64)`,
    );
  }
  return {
    facts: {
      images: train.size,
      used,
      limit: sample === null ? null : {
        how: sample.how,
        classes: sample.perClass.size,
      },
      classes: train.classes.length,
      valImages,
      stepsPerEpoch,
    },
    images: await inspectImages(train),
  };
}
