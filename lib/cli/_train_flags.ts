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
 * Config field -> the kind of its flag, or `"switch"` for a flag that turns
 * the field on. The number rules are the ranges resolveTrainConfig
 * enforces, checked by the parser first so that the message names the flag
 * the user typed.
 */
const FLAG_KINDS: Record<keyof TrainConfig, Kind | "switch"> = {
  model: "string",
  modelOverrides: "json",
  imgSize: POSITIVE_INT,
  numClasses: POSITIVE_INT,
  dropPath: UNIT_RATE,
  drop: UNIT_RATE,
  auxHead: "switch",
  initialCheckpoint: "string",
  seed: NON_NEGATIVE_INT,
  data: "string",
  valData: "string",
  trainLimit: POSITIVE_INT,
  valLimit: POSITIVE_INT,
  workers: NON_NEGATIVE_INT,
  onBadImage: { choices: ["stop", "skip"] },
  tokenLabel: "switch",
  tokenLabelData: "string",
  tokenLabelSize: POSITIVE_INT,
  denseWeight: NON_NEGATIVE,
  clsWeight: NON_NEGATIVE,
  tokenLabelBoxOrder: { choices: ["yx", "official-transposed"] },
  tokenLabelSmoothing: { choices: ["normalized", "official"] },
  refine: { choices: ["none", "official", "intended"] },
  mixToken: "switch",
  mixTokenBox: { choices: ["official", "described"] },
  cutmix: NON_NEGATIVE,
  mixup: NON_NEGATIVE,
  mixupProb: PROBABILITY,
  mixupSwitchProb: PROBABILITY,
  tlAlign: "switch",
  tlAlignAlpha: POSITIVE,
  tlAlignBox: { choices: ["described", "official"] },
  aa: "string",
  reprob: PROBABILITY,
  remode: { choices: ["pixel", "rand", "const"] },
  hflip: PROBABILITY,
  scale: PAIR_POSITIVE,
  ratio: PAIR_POSITIVE,
  trainInterpolation: { choices: ["random", "bilinear", "bicubic", "nearest"] },
  cropPct: FRACTION,
  smoothing: UNIT_RATE,
  batchSize: POSITIVE_INT,
  lr: POSITIVE,
  lrBase: POSITIVE,
  lrBaseBatch: POSITIVE_INT,
  warmupLr: NON_NEGATIVE,
  minLr: NON_NEGATIVE,
  epochs: POSITIVE_INT,
  warmupEpochs: NON_NEGATIVE_INT,
  cooldownEpochs: NON_NEGATIVE_INT,
  schedUpdate: { choices: ["epoch", "step"] },
  weightDecay: NON_NEGATIVE,
  optBetas: { pair: UNIT_RATE },
  optEps: POSITIVE,
  clipGrad: POSITIVE,
  clipMode: { choices: ["norm", "value"] },
  modelEma: "switch",
  modelEmaDecay: UNIT_RATE,
  output: "string",
  resume: "switch",
  overwrite: "switch",
  extend: "switch",
  checkpointEvery: NON_NEGATIVE_INT,
  logEvery: POSITIVE_INT,
  evalEvery: POSITIVE_INT,
  backend: "string",
};

/** Fields whose flag is not their name in kebab case (the official `main.py` names). */
const FLAG_NAMES: Partial<Record<keyof TrainConfig, string>> = {
  modelOverrides: "model-config",
  checkpointEvery: "recovery-interval",
  logEvery: "log-interval",
};

/**
 * Config field -> its flag: the field's name in kebab case
 * (`tokenLabelSize`, `--token-label-size`: the official `main.py` name
 * where one exists) unless `FLAG_NAMES` gives another.
 */
export const TRAIN_FLAGS: Record<keyof TrainConfig, TrainFlag> = Object
  .fromEntries(
    (Object.entries(FLAG_KINDS) as [keyof TrainConfig, Kind | "switch"][]).map(
      ([field, kind]) => {
        const flag = FLAG_NAMES[field] ??
          field.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
        return [field, kind === "switch" ? { flag, on: true } : { flag, kind }];
      },
    ),
  ) as Record<keyof TrainConfig, TrainFlag>;

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
