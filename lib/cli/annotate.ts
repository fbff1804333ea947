/**
 * `tokenlab annotate`: run a classifier densely over a dataset and store the
 * top-k score map of every image, resumably.
 *
 * @module
 */

import { exists } from "../_fs.ts";
import type { Command } from "./_args.ts";
import {
  checkBackendOption,
  checkNewStore,
  checkPath,
  choiceOption,
  FRACTION,
  numberOption,
  positiveIntOption,
  readingInput,
  UsageError,
} from "./_args.ts";
import { defineCommand } from "./_command.ts";
import { stopOnSigint } from "./_interrupt.ts";

const USAGE =
  `usage: tokenlab annotate --model NAME|WEIGHTS --data DATASET --out STORE [options]

Runs the model densely (a classifier applied to every patch token, the
class token dropped) over every image and writes the top-k classes and
scores of every location to a score-map store. Interrupted (Ctrl-C, a
crash), it resumes where it stopped when run again with the same options.
The store's header records the head used, the weights file (name, size,
SHA-256) and the dataset's class names.

  --model NAME|FILE   a weights file (tokenlab .safetensors, or an official
                      .pth/.pth.tar with --arch), or a registry name (random
                      weights: for trying the pipeline only)
  --arch NAME         the variant of an official checkpoint (e.g. lvvit_s)
  --data DATASET      an image folder (<root>/train/<class>/*.jpg|png; keys
                      <class>/<stem>, as the official maps; resized with
                      Pillow-exact bicubic), a CIFAR-10/100 binary folder,
                      synthetic[:key=value,...], or a .safetensors image
                      dataset ("images" uint8 [N,H,W,3])
  --out STORE         the store folder to write (never overwritten unless
                      --overwrite)
  --k N               classes kept per location (default 5)
  --img-size N        the annotator's input size (default the model's)
  --mode MODE         resize-center-crop (default, as the official label
                      generation) or squash (as ReLabel)
  --crop-pct F        centre crop fraction for resize-center-crop (default 1)
  --head NAME         auto (default): the head the annotator was trained
                      for: aux_head (LV-ViT's token head, trained on every
                      patch token) when the weights have one, else head
                      (the class head, trained on the class token only);
                      or name aux_head or head
  --batch-size N      images per forward pass (default 32)
  --backend NAME      auto, webgpu, wasm or cpu
  --overwrite         replace an existing store / restart an interrupted one

A good annotator (its maps are the students' targets: they can be no better
than it):
  1. train it with an aux head, so that every patch token has a trained
     classifier: tokenlab train --data DATA --model lvvit_xs32 --aux-head
     --output runs/annotator (plus --recipe short on a small dataset)
     (weights trained without --aux-head have only the class head, never
     trained on patch tokens: on MNIST a 95%-accurate annotator's class
     head gave maps agreeing with the image label on 73.5% of images, its
     aux head on 94%)
  2. aim for a top-1 accuracy well above the student you mean to train
     (on MNIST, 95% or more): tokenlab eval --checkpoint runs/annotator
     --data DATA
  3. annotate with its weights (--model runs/annotator/model.safetensors)
     and check that the maps agree with the image labels:
     tokenlab labels STORE --agreement  (the share of images whose pooled
     label is their class; well below the annotator's accuracy means the
     wrong head, preprocessing or weights)`;

/** The `annotate` command. */
export const annotateCommand: Command = defineCommand({
  name: "annotate",
  summary: "make score maps: run a classifier densely over a dataset",
  usage: USAGE,
  options: {
    model: { type: "string" },
    arch: { type: "string" },
    data: { type: "string" },
    out: { type: "string" },
    k: { type: "string" },
    "img-size": { type: "string" },
    mode: { type: "string" },
    "crop-pct": { type: "string" },
    head: { type: "string" },
    "batch-size": { type: "string" },
    backend: { type: "string" },
    overwrite: { type: "boolean", default: false },
  },
  required: ["model", "data", "out"],
  async run({ values }) {
    const mode = choiceOption("annotate", "--mode", values.mode, [
      "resize-center-crop",
      "squash",
    ]);
    const headChoice = choiceOption(
      "annotate",
      "--head",
      values.head,
      ["auto", "aux_head", "head"],
      "; leave it out for the head the annotator was trained for",
    );
    const cropPct =
      numberOption("annotate", "--crop-pct", values["crop-pct"], FRACTION) ??
        1;
    const k = positiveIntOption("annotate", "--k", values.k) ?? 5;
    const imgSize = positiveIntOption(
      "annotate",
      "--img-size",
      values["img-size"],
    );
    const batchSize =
      positiveIntOption("annotate", "--batch-size", values["batch-size"]) ?? 32;
    await checkBackendOption("annotate", values.backend);
    const out = values.out!;
    await checkNewStore("annotate", out, values.overwrite);

    const { initBackend, describeBackend } = await import("../backend.ts");
    const { MODEL_NAMES, createModel } = await import("../models/registry.ts");
    const { loadModel } = await import("../models/weights.ts");
    const { openTensorDataset } = await import("../data/tensor_dataset.ts");
    const { openDataset, parseDataSpec } = await import("../data/datasets.ts");
    const { toImageSource } = await import("../data/paired.ts");
    const { annotate } = await import("../annotators/annotate.ts");
    const { chooseAnnotatorHead } = await import("../annotators/head.ts");
    const { describeWeightsFile } = await import(
      "../annotators/weights_file.ts"
    );
    const { ScoreMapError } = await import("../labels/score_map.ts");
    const { DatasetError } = await import("../data/tensor_dataset.ts");
    const { CheckpointError } = await import("../io/checkpoint_error.ts");
    const { ProgressReports } = await import("./_progress.ts");

    const choice = await initBackend({ backend: values.backend });
    console.error(describeBackend(choice));
    const overrides = imgSize === undefined ? {} : { imgSize };
    const spec = values.model!;
    let model;
    let weights;
    if (MODEL_NAMES.includes(spec)) {
      console.error(
        `tokenlab annotate: ${spec} from the registry has random weights; pass a weights file for real score maps`,
      );
      model = createModel(spec, overrides);
    } else {
      await checkPath("annotate", "--model", spec, {
        kind: "file",
        what:
          `a weights file (.safetensors, or .pth/.pth.tar with --arch) or a registry name (${
            MODEL_NAMES.join(", ")
          })`,
      });
      // A WeightsError (the file does not fit) is bad input (main.ts).
      const loaded = await readingInput(
        "annotate",
        "--model",
        [CheckpointError],
        () => loadModel(spec, { model: values.arch, overrides }),
      );
      model = loaded.model;
      weights = await describeWeightsFile(spec).catch((e) => {
        model!.dispose();
        throw e;
      });
      for (
        const line of [...loaded.report.resized, ...loaded.report.reinitialized]
      ) {
        console.error(`  ${line}`);
      }
    }
    let head;
    try {
      head = chooseAnnotatorHead(model, headChoice);
    } catch (e) {
      model.dispose();
      if (!(e instanceof ScoreMapError)) throw e;
      throw new UsageError(
        `tokenlab annotate: --head aux_head: ${spec} (${model.config.name}) has no aux head: its weights were trained without one; expected --head head or auto (the default) for it, or an annotator trained with tokenlab train --aux-head, whose token head gives much better token labels`,
        { cause: e },
      );
    }
    console.error(
      head === "aux_head"
        ? `tokenlab annotate: applying the aux head (trained on every patch token) at every location${
          headChoice === "auto" ? "; --head head for the class head" : ""
        }`
        : `tokenlab annotate: applying the class head at every location${
          headChoice === "auto"
            ? `: ${model.config.name} has no aux head (an annotator trained with tokenlab train --aux-head gives better token labels)`
            : ""
        }`,
    );
    const classes = model.config.numClasses;
    if (k > classes) {
      model.dispose();
      throw new UsageError(
        `tokenlab annotate: --k ${k} is more than the ${classes} classes of the model ${model.config.name}; expected 1 <= k <= ${classes}: pass --k ${
          Math.min(5, classes)
        } or less`,
      );
    }
    const preprocessing = { mode, size: model.config.imgSize, cropPct };
    let source;
    try {
      // A DataSpecError (no such dataset) is bad input (main.ts).
      const dataSpec = await parseDataSpec(values.data!);
      source = await readingInput(
        "annotate",
        "--data",
        [DatasetError],
        async () =>
          dataSpec.kind === "tensors"
            ? await openTensorDataset(dataSpec.path)
            : toImageSource(await openDataset(dataSpec), preprocessing),
      );
    } catch (e) {
      model.dispose();
      throw e;
    }
    const stop = stopOnSigint("batch");
    // annotate reports progress once the store is open, before the first
    // batch: a ScoreMapError before that is the store refusing --out (an
    // interrupted write made with other settings) or the settings: bad
    // input, exit 2.
    const progress = new ProgressReports("annotate", "img", "before-work");
    const hadPartial = !values.overwrite && await exists(`${out}.partial`);
    try {
      const result = await annotate(model, source, {
        out,
        k,
        batchSize,
        head,
        weights,
        overwrite: values.overwrite,
        preprocessing,
        signal: stop.signal,
        onProgress: progress.report,
      });
      progress.finish();
      if (result.interrupted) {
        console.error(
          `stopped after ${
            result.resumedFrom + result.annotated
          } of ${source.size} images; run the same command again to resume`,
        );
        return 130;
      }
      console.error(
        `${values.out}: ${result.header!.count} score maps (k ${k}, ${
          result.header!.height
        }x${result.header!.width}, ${result.header!.numClasses} classes)${
          result.resumedFrom > 0 ? `, resumed after ${result.resumedFrom}` : ""
        }; ${result.head} at every location`,
      );
      return 0;
    } catch (e) {
      if (!progress.started && e instanceof ScoreMapError) {
        // Refused before the first image: the settings, or the store at
        // --out. The store names the library option that would change its
        // mind (or an interrupted write is there); on the command line that
        // option is a flag.
        const option = (e as { option?: unknown }).option;
        const storeRefused = option === "overwrite" || hadPartial;
        throw new UsageError(
          storeRefused
            ? `tokenlab annotate: --out ${out}: ${e.message}\non the command line: pass --overwrite to start the store over, or run again with the settings the interrupted run used`
            : `tokenlab annotate: ${e.message}`,
          { cause: e },
        );
      }
      throw e;
    } finally {
      stop.remove();
      model.dispose();
    }
  },
});
