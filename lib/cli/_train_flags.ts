/**
 * The flags of `tokenlab train`, one per config field, in one typed table:
 * the parser reads it to build the config, and error reports read it to
 * name the flags a library error's fields stand for (the library speaks of
 * config fields, `tokenLabel`; the command line of flags, `--token-label`).
 *
 * @module
 */

import type { TrainConfig } from "../train/config.ts";
import {
  FRACTION,
  NON_NEGATIVE,
  NON_NEGATIVE_INT,
  type NumberRule,
  POSITIVE,
  POSITIVE_INT,
  PROBABILITY,
  UNIT_RATE,
} from "./_args.ts";

/** How a flag's text becomes a config value: numbers carry their rule. */
export type Kind =
  | "string"
  | "json"
  | NumberRule
  | { pair: NumberRule; ordered?: boolean }
  | { choices: readonly string[] };

/** A config field's flag: a value flag with its kind, or a switch that turns the field on. */
export type TrainFlag = { flag: string; kind: Kind } | {
  flag: string;
  on: true;
};

const PAIR_POSITIVE = { pair: POSITIVE, ordered: true };

/**
 * Config field -> its flag (the official `main.py` name where one exists).
 * The number rules are the ranges resolveTrainConfig enforces, checked by
 * the parser first so that the message names the flag the user typed.
 */
export const TRAIN_FLAGS: Record<keyof TrainConfig, TrainFlag> = {
  model: { flag: "model", kind: "string" },
  modelOverrides: { flag: "model-config", kind: "json" },
  imgSize: { flag: "img-size", kind: POSITIVE_INT },
  numClasses: { flag: "num-classes", kind: POSITIVE_INT },
  dropPath: { flag: "drop-path", kind: UNIT_RATE },
  drop: { flag: "drop", kind: UNIT_RATE },
  auxHead: { flag: "aux-head", on: true },
  initialCheckpoint: { flag: "initial-checkpoint", kind: "string" },
  seed: { flag: "seed", kind: NON_NEGATIVE_INT },
  data: { flag: "data", kind: "string" },
  valData: { flag: "val-data", kind: "string" },
  trainLimit: { flag: "train-limit", kind: POSITIVE_INT },
  valLimit: { flag: "val-limit", kind: POSITIVE_INT },
  workers: { flag: "workers", kind: NON_NEGATIVE_INT },
  onBadImage: { flag: "on-bad-image", kind: { choices: ["stop", "skip"] } },
  tokenLabel: { flag: "token-label", on: true },
  tokenLabelData: { flag: "token-label-data", kind: "string" },
  tokenLabelSize: { flag: "token-label-size", kind: POSITIVE_INT },
  denseWeight: { flag: "dense-weight", kind: NON_NEGATIVE },
  clsWeight: { flag: "cls-weight", kind: NON_NEGATIVE },
  tokenLabelBoxOrder: {
    flag: "token-label-box-order",
    kind: { choices: ["yx", "official-transposed"] },
  },
  tokenLabelSmoothing: {
    flag: "token-label-smoothing",
    kind: { choices: ["normalized", "official"] },
  },
  refine: {
    flag: "refine",
    kind: { choices: ["none", "official", "intended"] },
  },
  mixToken: { flag: "mix-token", on: true },
  mixTokenBox: {
    flag: "mix-token-box",
    kind: { choices: ["official", "described"] },
  },
  cutmix: { flag: "cutmix", kind: NON_NEGATIVE },
  mixup: { flag: "mixup", kind: NON_NEGATIVE },
  mixupProb: { flag: "mixup-prob", kind: PROBABILITY },
  mixupSwitchProb: { flag: "mixup-switch-prob", kind: PROBABILITY },
  tlAlign: { flag: "tl-align", on: true },
  tlAlignAlpha: { flag: "tl-align-alpha", kind: POSITIVE },
  tlAlignBox: {
    flag: "tl-align-box",
    kind: { choices: ["described", "official"] },
  },
  aa: { flag: "aa", kind: "string" },
  reprob: { flag: "reprob", kind: PROBABILITY },
  remode: { flag: "remode", kind: { choices: ["pixel", "rand", "const"] } },
  hflip: { flag: "hflip", kind: PROBABILITY },
  scale: { flag: "scale", kind: PAIR_POSITIVE },
  ratio: { flag: "ratio", kind: PAIR_POSITIVE },
  trainInterpolation: {
    flag: "train-interpolation",
    kind: { choices: ["random", "bilinear", "bicubic", "nearest"] },
  },
  cropPct: { flag: "crop-pct", kind: FRACTION },
  smoothing: { flag: "smoothing", kind: UNIT_RATE },
  batchSize: { flag: "batch-size", kind: POSITIVE_INT },
  lr: { flag: "lr", kind: POSITIVE },
  lrBase: { flag: "lr-base", kind: POSITIVE },
  lrBaseBatch: { flag: "lr-base-batch", kind: POSITIVE_INT },
  warmupLr: { flag: "warmup-lr", kind: NON_NEGATIVE },
  minLr: { flag: "min-lr", kind: NON_NEGATIVE },
  epochs: { flag: "epochs", kind: POSITIVE_INT },
  warmupEpochs: { flag: "warmup-epochs", kind: NON_NEGATIVE_INT },
  cooldownEpochs: { flag: "cooldown-epochs", kind: NON_NEGATIVE_INT },
  schedUpdate: { flag: "sched-update", kind: { choices: ["epoch", "step"] } },
  weightDecay: { flag: "weight-decay", kind: NON_NEGATIVE },
  optBetas: { flag: "opt-betas", kind: { pair: UNIT_RATE } },
  optEps: { flag: "opt-eps", kind: POSITIVE },
  clipGrad: { flag: "clip-grad", kind: POSITIVE },
  clipMode: { flag: "clip-mode", kind: { choices: ["norm", "value"] } },
  modelEma: { flag: "model-ema", on: true },
  modelEmaDecay: { flag: "model-ema-decay", kind: UNIT_RATE },
  output: { flag: "output", kind: "string" },
  resume: { flag: "resume", on: true },
  overwrite: { flag: "overwrite", on: true },
  extend: { flag: "extend", on: true },
  checkpointEvery: { flag: "recovery-interval", kind: NON_NEGATIVE_INT },
  logEvery: { flag: "log-interval", kind: POSITIVE_INT },
  evalEvery: { flag: "eval-every", kind: POSITIVE_INT },
  backend: { flag: "backend", kind: "string" },
};

/** The switches that set a field to something other than on (off, or a word). */
export const TRAIN_OFF_SWITCHES: readonly {
  flag: string;
  field: keyof TrainConfig;
  value: unknown;
}[] = [
  { flag: "no-mix-token", field: "mixToken", value: false },
  { flag: "no-aux-head", field: "auxHead", value: false },
  { flag: "no-aa", field: "aa", value: null },
  { flag: "no-eval", field: "valData", value: false },
  { flag: "skip-unreadable", field: "onBadImage", value: "skip" },
];

function isField(name: string): name is keyof TrainConfig {
  return Object.hasOwn(TRAIN_FLAGS, name);
}

/**
 * A library error's message in the command line's terms: each config field
 * it quotes among `fields`, as `` `field` `` or `` `field: value` ``,
 * becomes the flag that sets it (`--token-label`, `--img-size 128`,
 * `--no-eval` for `` `valData: false` ``). Anything else is left as it is.
 * `renamed` gives a command's own flag for a field where it differs from
 * train's (`annotate` names the variant `--arch`, not `--model`).
 */
export function inFlagTerms(
  message: string,
  fields: readonly string[],
  renamed: Partial<Record<keyof TrainConfig, string>> = {},
): string {
  return message.replace(
    /`([A-Za-z]+)(?:: ([^`]*))?`/g,
    (whole, field: string, value: string | undefined) => {
      if (!fields.includes(field) || !isField(field)) return whole;
      const own = renamed[field];
      const entry = own === undefined
        ? TRAIN_FLAGS[field]
        : { flag: own, kind: "string" as const };
      if (value === undefined) return `--${entry.flag}`;
      let parsed: unknown = value;
      try {
        parsed = JSON.parse(value);
      } catch {
        // a bare word or number: shown as it is
      }
      if ("on" in entry && parsed === true) return `--${entry.flag}`;
      const off = TRAIN_OFF_SWITCHES.find((s) =>
        s.field === field && s.value === parsed
      );
      if (off !== undefined) return `--${off.flag}`;
      return `--${entry.flag} ${typeof parsed === "string" ? parsed : value}`;
    },
  );
}

/** Whether `error` names config fields (`fields`, as the library's errors do). */
export function quotesFields(
  error: Error,
): error is Error & { fields: readonly string[] } {
  const fields = (error as { fields?: unknown }).fields;
  return Array.isArray(fields) && fields.every((f) => typeof f === "string");
}
