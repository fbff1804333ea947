/**
 * The parts of a training run its config names: the data (training and
 * validation), the pipelines that prepare it, the lr of every step, and the
 * run's title.
 *
 * @module
 */

import { type DataSpec, parseDataSpec } from "../data/datasets.ts";
import type { PipelineSpec } from "../data/pipeline.ts";
import {
  type ResolvedTrainConfig,
  type TrainConfig,
  TrainConfigError,
} from "./config.ts";
import { type ScheduleConfig, scheduleCurve } from "./schedule.ts";

/** The title of a run: the model, the data and how it mixes and labels. */
export function runTitle(c: ResolvedTrainConfig): string {
  const data = typeof c.data === "string" ? c.data : dataLabel(c.data);
  const how = [
    c.tokenLabel ? "token labels" : null,
    c.mixToken ? "MixToken" : null,
    c.tlAlign ? "TL-Align" : null,
    c.cutmix > 0 ? "CutMix" : null,
    c.mixup > 0 ? "MixUp" : null,
  ].filter((x) => x !== null);
  return `${c.model} on ${data}${how.length ? ` (${how.join(" + ")})` : ""}`;
}

function dataLabel(spec: DataSpec): string {
  switch (spec.kind) {
    case "synthetic":
      return "synthetic";
    case "folder":
      return spec.root;
    case "cifar":
      return spec.dir;
    case "tensors":
      return spec.path;
    default:
      // A kind without a location of its own is named by its kind.
      return (spec as { kind: string }).kind;
  }
}

/** The training and validation data a config names. */
export async function resolveData(
  c: Pick<TrainConfig, "data" | "valData">,
): Promise<{ train: DataSpec; val: DataSpec | null }> {
  const train = typeof c.data === "string"
    ? await parseDataSpec(c.data, { split: "train" })
    : c.data;
  if (c.valData === false) return { train, val: null };
  if (c.valData !== null && c.valData !== undefined) {
    return {
      train,
      val: typeof c.valData === "string"
        ? await parseDataSpec(c.valData, { split: "val" })
        : c.valData,
    };
  }
  let val: DataSpec;
  if (typeof c.data === "string") {
    val = await parseDataSpec(c.data, { split: "val" });
  } else if (train.kind === "synthetic" || train.kind === "mnist") {
    val = { ...train, options: { ...train.options, split: "val" } };
  } else if (train.kind === "cifar") {
    val = { ...train, split: "test" };
  } else {
    val = train;
  }
  if (JSON.stringify(val) === JSON.stringify(train)) {
    throw new TrainConfigError(
      `\`data: ${
        JSON.stringify(typeof c.data === "string" ? c.data : dataLabel(train))
      }\` has no validation split (an image folder needs val/ or validation/ beside train/); pass \`valData\`, or \`valData: false\` to train without evaluation`,
      { fields: ["data", "valData"] },
    );
  }
  return { train, val };
}

/** The pipeline of the training data, as the config says. */
export function trainPipeline(
  c: ResolvedTrainConfig,
  data: DataSpec,
): PipelineSpec {
  return {
    data,
    maps: c.tokenLabel ? c.tokenLabelData! : undefined,
    onBadImage: c.onBadImage,
    transform: {
      kind: "train",
      config: {
        size: c.imgSize,
        hflip: c.hflip,
        autoAugment: c.aa,
        interpolation: c.trainInterpolation,
        scale: c.scale,
        ratio: c.ratio,
        reprob: c.reprob,
        remode: c.remode,
      },
    },
  };
}

/** The pipeline of the validation data, as the config says. */
export function evalPipeline(
  c: ResolvedTrainConfig,
  data: DataSpec,
): PipelineSpec {
  return {
    data,
    onBadImage: c.onBadImage,
    transform: { kind: "eval", size: c.imgSize, cropPct: c.cropPct },
  };
}

/** The lr of every step, indexed like the step records (1-based step counts). */
export function stepCurve(
  sched: ScheduleConfig,
  spe: number,
): { step: number[]; lr: number[] } {
  const curve = scheduleCurve(sched, spe);
  return { step: curve.step.map((s) => s + 1), lr: curve.lr };
}
