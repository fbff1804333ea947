/**
 * `tokenlab annotate`: run a classifier densely over a dataset and store the
 * top-k score map of every image, resumably.
 *
 * @module
 */

import type { Command } from "./_args.ts";
import { parseCommandArgs, positiveIntOption, UsageError } from "./_args.ts";

const USAGE =
  `usage: tokenlab annotate --model NAME|WEIGHTS --data DATASET --out STORE [options]

Runs the model densely (its classifier applied to every patch token, the
class token dropped) over every image and writes the top-k classes and
scores of every location to a score-map store. Interrupted (Ctrl-C, a
crash), it resumes where it stopped when run again with the same options.

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
  --head NAME         head (default) or aux_head (LV-ViT's token head)
  --batch-size N      images per forward pass (default 32)
  --backend NAME      auto, webgpu, wasm or cpu
  --overwrite         replace an existing store / restart an interrupted one`;

/** The `annotate` command. */
export const annotateCommand: Command = {
  summary: "make score maps: run a classifier densely over a dataset",
  usage: USAGE,
  async run(args) {
    const { values, positionals } = parseCommandArgs("annotate", USAGE, args, {
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
      help: { type: "boolean", short: "h", default: false },
    });
    if (values.help) {
      console.log(USAGE);
      return 0;
    }
    if (positionals.length > 0) {
      throw new UsageError(
        `tokenlab annotate: unexpected argument ${positionals[0]}\n\n${USAGE}`,
      );
    }
    for (const need of ["model", "data", "out"] as const) {
      if (values[need] === undefined) {
        throw new UsageError(
          `tokenlab annotate: --${need} is required\n\n${USAGE}`,
        );
      }
    }
    const mode = values.mode ?? "resize-center-crop";
    if (mode !== "resize-center-crop" && mode !== "squash") {
      throw new UsageError(
        `tokenlab annotate: --mode must be resize-center-crop or squash, found "${mode}"`,
      );
    }
    const head = values.head ?? "head";
    if (head !== "head" && head !== "aux_head") {
      throw new UsageError(
        `tokenlab annotate: --head must be head or aux_head, found "${head}"`,
      );
    }
    const cropPct = values["crop-pct"] === undefined
      ? 1
      : Number(values["crop-pct"]);
    if (!(cropPct > 0 && cropPct <= 1)) {
      throw new UsageError(
        `tokenlab annotate: --crop-pct must be in (0, 1], found "${
          values["crop-pct"]
        }"`,
      );
    }
    const k = positiveIntOption("annotate", "--k", values.k) ?? 5;
    const imgSize = positiveIntOption(
      "annotate",
      "--img-size",
      values["img-size"],
    );
    const batchSize =
      positiveIntOption("annotate", "--batch-size", values["batch-size"]) ?? 32;

    const { initBackend, describeBackend } = await import("../backend.ts");
    const { MODEL_NAMES, createModel } = await import("../models/registry.ts");
    const { loadModel } = await import("../models/weights.ts");
    const { openTensorDataset } = await import("../data/tensor_dataset.ts");
    const { openDataset, parseDataSpec } = await import("../data/datasets.ts");
    const { toImageSource } = await import("../data/paired.ts");
    const { annotate } = await import("../labels/annotate.ts");
    const { Progress } = await import("./_progress.ts");

    const choice = await initBackend({ backend: values.backend });
    console.error(describeBackend(choice));
    const overrides = imgSize === undefined ? {} : { imgSize };
    const spec = values.model!;
    let model;
    if (MODEL_NAMES.includes(spec)) {
      console.error(
        `tokenlab annotate: ${spec} from the registry has random weights; pass a weights file for real score maps`,
      );
      model = createModel(spec, overrides);
    } else {
      const loaded = await loadModel(spec, { model: values.arch, overrides });
      model = loaded.model;
      for (
        const line of [...loaded.report.resized, ...loaded.report.reinitialized]
      ) {
        console.error(`  ${line}`);
      }
    }
    const dataSpec = await parseDataSpec(values.data!);
    const preprocessing = {
      mode: mode as "resize-center-crop" | "squash",
      size: model.config.imgSize,
      cropPct,
    };
    const source = dataSpec.kind === "tensors"
      ? await openTensorDataset(dataSpec.path)
      : toImageSource(await openDataset(dataSpec), preprocessing);
    const controller = new AbortController();
    const onSignal = () => {
      console.error("\ninterrupted: finishing the current batch...");
      controller.abort();
    };
    Deno.addSignalListener("SIGINT", onSignal);
    let progress: InstanceType<typeof Progress> | null = null;
    let last = 0;
    try {
      const result = await annotate(model, source, {
        out: values.out!,
        k,
        batchSize,
        head,
        overwrite: values.overwrite,
        preprocessing,
        signal: controller.signal,
        onProgress: (done, total) => {
          if (progress === null) {
            // The first report comes before the first batch.
            progress = new Progress("annotate", total, done, { unit: "img" });
            last = done;
          }
          progress.advance(done - last);
          last = done;
        },
      });
      (progress as InstanceType<typeof Progress> | null)?.finish();
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
        }`,
      );
      return 0;
    } finally {
      Deno.removeSignalListener("SIGINT", onSignal);
      model.dispose();
    }
  },
};
