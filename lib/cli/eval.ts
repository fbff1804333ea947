/**
 * `tokenlab eval`: top-1 and top-5 of a model, a training run or a
 * checkpoint on labelled data.
 *
 * @module
 */

import type { Command } from "./_args.ts";
import type { LimitSample } from "../data/limit_sample.ts";
import {
  checkBackendOption,
  choiceOption,
  FRACTION,
  NON_NEGATIVE_INT,
  numberOption,
  POSITIVE_INT,
  readingInput,
} from "./_args.ts";
import { defineCommand } from "./_command.ts";

const EVAL_USAGE = `usage: tokenlab eval --checkpoint PATH --data DATA [options]

Top-1 and top-5 accuracy of a model's evaluation forward (head + 0.5 max of
aux_head over the tokens, as the official LV-ViT) on labelled data.

  --checkpoint PATH   a weights file (.safetensors, or an official .pth/.pth.tar
                      with --model), a run folder of tokenlab train (its final
                      weights and EMA, or its newest checkpoint), or a
                      checkpoint folder
  --model NAME        the variant (needed for official checkpoints)
  --data DATA         synthetic[:...], an image folder, a CIFAR folder
  --split SPLIT       val (default) or train
  --img-size N        input size (default the model's)
  --crop-pct F        centre crop (default 1 for small variants, 0.9 for lvvit_t/s)
  --batch-size N      images per forward pass (default 64)
  --limit N           only N images: a seeded sample spread over the classes in
                      proportion to their sizes (synthetic scenes: the first
                      N, already independent draws)
  --seed N            the seed of --limit's sample (default 42, tokenlab
                      train's: the same --limit and --seed as a run's
                      --val-limit and --seed evaluate the same images)
  --backend NAME      auto, webgpu, wasm or cpu
  --json              print the results as JSON on stdout`;

/** What `--limit` kept, said once before the results. */
function limitLine(kept: LimitSample, seed: number): string {
  const n = kept.indices.length;
  return kept.how === "stratified"
    ? `--limit ${n}: a sample seeded by ${seed}, ${n} images spread over ${kept.perClass.size} of the ${kept.classesInData} classes in proportion to their sizes`
    : `--limit ${n}: the first ${n} images (independent seeded draws already)`;
}

/** The `eval` command. */
export const evalCommand: Command = defineCommand({
  name: "eval",
  summary: "top-1 / top-5 of a model or a training run on labelled data",
  usage: EVAL_USAGE,
  options: {
    checkpoint: { type: "string" },
    model: { type: "string" },
    data: { type: "string" },
    split: { type: "string" },
    "img-size": { type: "string" },
    "crop-pct": { type: "string" },
    "batch-size": { type: "string" },
    limit: { type: "string" },
    seed: { type: "string" },
    backend: { type: "string" },
    json: { type: "boolean", default: false },
  },
  required: ["checkpoint", "data"],
  async run({ values }) {
    const split = choiceOption("eval", "--split", values.split, [
      "val",
      "train",
    ]);
    const imgSize = numberOption(
      "eval",
      "--img-size",
      values["img-size"],
      POSITIVE_INT,
    );
    const cropPct = numberOption(
      "eval",
      "--crop-pct",
      values["crop-pct"],
      FRACTION,
    );
    const batchSize = numberOption(
      "eval",
      "--batch-size",
      values["batch-size"],
      POSITIVE_INT,
    ) ?? 64;
    const limit = numberOption("eval", "--limit", values.limit, POSITIVE_INT);
    const seedFlag = numberOption(
      "eval",
      "--seed",
      values.seed,
      NON_NEGATIVE_INT,
    );
    await checkBackendOption("eval", values.backend);
    const lib = await import("../mod.ts");
    const seed = seedFlag ?? lib.DEFAULT_TRAIN_CONFIG.seed;
    // Missing or unusable paths are RunFolderError / DataSpecError (bad
    // input, main.ts); a weights or dataset file that its reader refuses is
    // named with its flag here. Failures after that are while running.
    const targets = await readingInput(
      "eval",
      "--checkpoint",
      [lib.RunFolderError],
      () => lib.evaluationTargets(values.checkpoint!),
    );
    const data = await lib.parseDataSpec(values.data!, { split });
    await lib.initBackend({ backend: values.backend });
    const results: Record<string, unknown>[] = [];
    let saidLimit = false;
    for (const t of targets) {
      const { model } = await readingInput(
        "eval",
        "--checkpoint",
        [lib.CheckpointError],
        () =>
          lib.loadModel(t.path, {
            model: values.model,
            overrides: imgSize ? { imgSize } : {},
          }),
      );
      try {
        const crop = cropPct ?? lib.defaultCropPct(model.config.name);
        const loader = await readingInput(
          "eval",
          "--data",
          [lib.DatasetError],
          () =>
            lib.DataLoader.open({
              data,
              transform: {
                kind: "eval",
                size: model.config.imgSize,
                cropPct: crop,
              },
            }, {
              batchSize,
              shuffle: false,
              limit,
              seed,
              limitSample: "stratified",
            }),
        );
        if (!saidLimit && loader.limited !== null) {
          saidLimit = true;
          console.error(limitLine(loader.limited, seed));
        }
        try {
          const [r] = await lib.evaluate([model], loader);
          results.push({ weights: t.which, path: t.path, ...r });
          console.error(
            `${t.which.padEnd(5)} ${model.config.name}: top-1 ${
              r.top1.toFixed(2)
            }% top-5 ${r.top5.toFixed(2)}% loss ${
              r.loss.toFixed(4)
            } on ${r.images} images (${t.path})`,
          );
        } finally {
          loader.close();
        }
      } finally {
        model.dispose();
      }
    }
    if (values.json) console.log(JSON.stringify(results, null, 1));
    return 0;
  },
});
