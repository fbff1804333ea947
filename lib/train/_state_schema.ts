/**
 * The schema of the training state a run folder holds: a checkpoint's
 * `state.json` and the run's `run.json`. Every field is checked for its
 * type, its range and its agreement with the config and with the other
 * fields, before anything the file names is opened. Unknown fields are
 * refused: tokenlab writes a fixed set, so an unknown field means the file
 * was edited or written by something else.
 *
 * A failure is a {@linkcode FieldProblem} naming the field; the reader in
 * `checkpoint.ts` turns it into its own error with the file and what to do.
 *
 * @module
 */

import {
  configDifferences,
  type ResolvedTrainConfig,
  resolveTrainConfig,
  type TrainConfig,
  TrainConfigError,
} from "./config.ts";
import type { TrainState } from "./checkpoint.ts";
import { learningRate, ScheduleError } from "./schedule.ts";

/** One field of a stored file that is not what tokenlab writes. */
export class FieldProblem extends Error {
  /** Creates the problem: the field (`records[3].loss`), what was expected, what was found. */
  constructor(
    readonly field: string,
    readonly expected: string,
    readonly found: string,
  ) {
    super(`field ${field}: expected ${expected}, found ${found}`);
    this.name = "FieldProblem";
  }
}

/** The tensor files a checkpoint may hold: the only names `files` may list. */
export const CHECKPOINT_TENSOR_FILES: readonly string[] = [
  "model.safetensors",
  "ema.safetensors",
  "optimizer.safetensors",
];

/** A short description of a found value, for messages. */
export function describe(v: unknown): string {
  if (v === undefined) return "nothing (the field is missing)";
  if (v === null) return "null";
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (typeof v === "object") return "an object";
  if (typeof v === "string") {
    const s = JSON.stringify(v);
    return `the string ${s.length > 80 ? s.slice(0, 77) + '..."' : s}`;
  }
  return `${typeof v} ${String(v)}`;
}

function problem(field: string, expected: string, found: unknown): never {
  throw new FieldProblem(field, expected, describe(found));
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** `parent.key`, or `parent["../x"]` for a key that is not a plain identifier. */
function fieldName(parent: string, key: string): string {
  if (!/^[A-Za-z_$][\w$]*$/.test(key)) {
    return `${parent}[${JSON.stringify(key)}]`;
  }
  return parent === "" ? key : `${parent}.${key}`;
}

/** An object with exactly these fields (`optional` may be absent). */
function object(
  v: unknown,
  field: string,
  required: readonly string[],
  optional: readonly string[] = [],
): Record<string, unknown> {
  const what = field === "" ? "the file" : field;
  if (!isPlainObject(v)) {
    problem(field || "(top level)", `an object (${what})`, v);
  }
  const at = (k: string) => fieldName(field, k);
  for (const k of required) {
    if (!Object.hasOwn(v, k)) problem(at(k), "a value", undefined);
  }
  for (const k of Object.keys(v)) {
    if (!required.includes(k) && !optional.includes(k)) {
      problem(
        at(k),
        `no such field (${what} has ${[...required, ...optional].join(", ")})`,
        v[k],
      );
    }
  }
  return v;
}

function integer(v: unknown, field: string, min: number, max: number): number {
  if (
    typeof v !== "number" || !Number.isSafeInteger(v) || v < min || v > max
  ) {
    problem(field, `an integer in [${min}, ${max}]`, v);
  }
  return v;
}

function finite(
  v: unknown,
  field: string,
  min = -Infinity,
  max = Infinity,
): number {
  if (typeof v !== "number" || !Number.isFinite(v) || v < min || v > max) {
    const range = min === -Infinity
      ? ""
      : max === Infinity
      ? ` >= ${min}`
      : ` in [${min}, ${max}]`;
    problem(field, `a finite number${range}`, v);
  }
  return v;
}

function string(v: unknown, field: string, maxLength: number): string {
  if (typeof v !== "string" || v.length > maxLength) {
    problem(field, `a string of at most ${maxLength} characters`, v);
  }
  return v;
}

function exactly<T>(v: unknown, field: string, want: T, why: string): T {
  if (JSON.stringify(v) !== JSON.stringify(want)) {
    problem(field, `${JSON.stringify(want)} (${why})`, v);
  }
  return want;
}

/** Fields a resolved config has that a config given to `resolveTrainConfig` may not. */
const RESOLVED_ONLY = ["patchSize", "grid"];

/**
 * Checks a stored resolved config (`config` of run.json or state.json): it
 * must resolve without error and resolve to itself, so every field has a
 * valid value and the derived ones agree with the rest. A field it lacks
 * (a file written before the field existed) counts as its default.
 */
export function validateStoredConfig(
  v: unknown,
  field: string,
): ResolvedTrainConfig {
  if (!isPlainObject(v)) problem(field, "an object (the run's config)", v);
  const given: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    if (!RESOLVED_ONLY.includes(k)) given[k] = x;
  }
  let resolved: ResolvedTrainConfig;
  try {
    resolved = resolveTrainConfig(
      given as Partial<TrainConfig> & Pick<TrainConfig, "data">,
    );
  } catch (e) {
    if (!(e instanceof TrainConfigError)) throw e;
    throw new FieldProblem(
      field,
      "a valid training config",
      `one that fails its checks: ${e.message}`,
    );
  }
  const r = resolved as unknown as Record<string, unknown>;
  for (const k of Object.keys(v)) {
    if (JSON.stringify(r[k]) !== JSON.stringify(v[k])) {
      problem(
        fieldName(field, k),
        `${JSON.stringify(r[k])} (what the rest of the config resolves to)`,
        v[k],
      );
    }
  }
  return resolved;
}

/** The description of a run stored as `run.json`. */
export interface RunInfo {
  /** File format tag. */
  format: "tokenlab-run";
  /** Format version. */
  version: 1;
  /** The run's resolved config. */
  config: ResolvedTrainConfig;
  /** When the run started (ISO 8601). */
  created: string;
  /** tokenlab version that started it. */
  tokenlab: string;
}

/** Checks parsed `run.json`; the config comes back as stored. */
export function validateRunInfo(v: unknown): RunInfo {
  const o = object(v, "", [
    "format",
    "version",
    "config",
    "created",
    "tokenlab",
  ]);
  exactly(o.format, "format", "tokenlab-run", "a tokenlab run description");
  exactly(o.version, "version", 1, "the only version of run.json");
  validateStoredConfig(o.config, "config");
  const created = string(o.created, "created", 40);
  if (Number.isNaN(Date.parse(created))) {
    problem("created", "an ISO 8601 date", created);
  }
  string(o.tokenlab, "tokenlab", 100);
  return o as unknown as RunInfo;
}

/** What a state is checked against besides itself. */
export interface StateContext {
  /** The checkpoint's folder name (`step-00000120`); a `step-N` name must match the state's step. */
  name: string;
  /** The run's config (run.json's, or the config a resumed run gives): `config` must agree with it. */
  runConfig: ResolvedTrainConfig | null;
}

/** The fields of state.json, in the order the writer writes them. */
const STATE_FIELDS = [
  "format",
  "version",
  "step",
  "epoch",
  "stepInEpoch",
  "stepsPerEpoch",
  "elapsed",
  "rng",
  "config",
  "records",
  "optimizer",
  "files",
  "tokenlab",
];

/** The most steps an epoch may have: far above any dataset, far below where `epoch * stepsPerEpoch` loses integers. */
const MAX_STEPS_PER_EPOCH = 2 ** 31;

/**
 * Checks parsed `state.json` (format version 1 or 2: the same fields) and
 * returns it typed. Checks, in this order: the fields present and no
 * others; the config (valid, and the run's); the position (`step` is
 * `epoch * stepsPerEpoch + stepInEpoch`, `stepInEpoch <= stepsPerEpoch`,
 * the epoch within the schedule, the folder name); the optimizer's scalars
 * (its step, the schedule's lr, the config's hyperparameters); the RNG (the
 * config's seed); every record; the file names and digests.
 *
 * @throws {FieldProblem} for the first field that is not what tokenlab writes
 */
export function validateTrainState(
  v: unknown,
  context: StateContext,
): TrainState {
  const o = object(v, "", STATE_FIELDS);
  exactly(o.format, "format", "tokenlab-train-state", "a training state");
  if (o.version !== 1 && o.version !== 2) {
    problem("version", "1 or 2", o.version);
  }
  const config = validateStoredConfig(o.config, "config");
  if (context.runConfig !== null) {
    const diff = configDifferences(
      o.config as Record<string, unknown>,
      context.runConfig as unknown as Record<string, unknown>,
    );
    if (diff.length > 0) {
      const k = diff[0].slice(0, diff[0].indexOf(":"));
      problem(
        `config.${k}`,
        `the run's own config (differences, this file's value first: ${
          diff.join("; ")
        })`,
        (o.config as Record<string, unknown>)[k],
      );
    }
  }
  const totalEpochs = config.epochs + config.cooldownEpochs;
  let maxSpe = MAX_STEPS_PER_EPOCH;
  if (config.trainLimit !== null) {
    maxSpe = Math.max(1, Math.floor(config.trainLimit / config.batchSize));
  }
  const spe = integer(o.stepsPerEpoch, "stepsPerEpoch", 1, maxSpe);
  const epoch = integer(o.epoch, "epoch", 0, totalEpochs);
  const stepInEpoch = integer(
    o.stepInEpoch,
    "stepInEpoch",
    0,
    epoch === totalEpochs ? 0 : spe,
  );
  const step = exactly(
    o.step,
    "step",
    epoch * spe + stepInEpoch,
    "epoch * stepsPerEpoch + stepInEpoch",
  );
  if (step < 1) {
    problem("step", "at least 1 (a checkpoint follows a step)", step);
  }
  if (/^step-\d+$/.test(context.name)) {
    const want = `step-${String(step).padStart(8, "0")}`;
    if (context.name !== want) {
      problem("step", `the step its folder ${context.name} names`, step);
    }
  }
  finite(o.elapsed, "elapsed", 0);

  const opt = object(o.optimizer, "optimizer", [
    "step",
    "lr",
    "weightDecay",
    "betas",
    "eps",
  ]);
  exactly(opt.step, "optimizer.step", step, "one optimizer step per step");
  const last = step - 1;
  const lr = scheduleLr(config, Math.floor(last / spe), last % spe, spe);
  exactly(opt.lr, "optimizer.lr", lr, "the schedule's lr of the last step");
  exactly(
    opt.weightDecay,
    "optimizer.weightDecay",
    config.weightDecay,
    "the config's weightDecay",
  );
  exactly(
    opt.betas,
    "optimizer.betas",
    config.optBetas,
    "the config's optBetas",
  );
  exactly(opt.eps, "optimizer.eps", config.optEps, "the config's optEps");

  const rng = object(o.rng, "rng", ["seed", "scheme"]);
  exactly(rng.seed, "rng.seed", config.seed, "the config's seed");
  string(rng.scheme, "rng.scheme", 1000);

  validateRecords(o.records, { config, spe, totalEpochs, step, epoch });

  // The names are checked before anything else of `files`, and before any
  // file is opened: only the fixed names the writer uses can pass.
  if (isPlainObject(o.files)) {
    for (const name of Object.keys(o.files)) {
      if (!CHECKPOINT_TENSOR_FILES.includes(name)) {
        problem(
          fieldName("files", name),
          `one of the file names tokenlab writes (${
            CHECKPOINT_TENSOR_FILES.join(", ")
          }); a checkpoint lists only plain names in its own folder, never a path ("/", "\\", ".."), an absolute path or NUL`,
          name,
        );
      }
    }
  }
  const files = object(
    o.files,
    "files",
    config.modelEma
      ? CHECKPOINT_TENSOR_FILES
      : CHECKPOINT_TENSOR_FILES.filter((f) => f !== "ema.safetensors"),
  );
  for (const [name, entry] of Object.entries(files)) {
    const at = fieldName("files", name);
    const e = object(entry, at, ["bytes", "sha256"]);
    integer(e.bytes, `${at}.bytes`, 0, Number.MAX_SAFE_INTEGER);
    if (typeof e.sha256 !== "string" || !/^[0-9a-f]{64}$/.test(e.sha256)) {
      problem(`${at}.sha256`, "64 lowercase hex digits", e.sha256);
    }
  }
  string(o.tokenlab, "tokenlab", 100);
  return o as unknown as TrainState;
}

/** The lr the schedule gives a step (the engine's own computation). */
function scheduleLr(
  config: ResolvedTrainConfig,
  epoch: number,
  stepInEpoch: number,
  stepsPerEpoch: number,
): number {
  try {
    return learningRate(
      {
        lr: config.lr,
        warmupLr: config.warmupLr,
        minLr: config.minLr,
        epochs: config.epochs,
        warmupEpochs: config.warmupEpochs,
        cooldownEpochs: config.cooldownEpochs,
        update: config.schedUpdate,
      },
      epoch,
      stepInEpoch,
      stepsPerEpoch,
    );
  } catch (e) {
    if (!(e instanceof ScheduleError)) throw e;
    throw new FieldProblem(
      "config",
      "a config with a valid schedule",
      `one that fails: ${e.message}`,
    );
  }
}

interface RecordContext {
  config: ResolvedTrainConfig;
  spe: number;
  totalEpochs: number;
  step: number;
  epoch: number;
}

function validateRecords(v: unknown, c: RecordContext): void {
  if (!Array.isArray(v)) problem("records", "an array of log records", v);
  if (v.length === 0) {
    problem("records", "at least the checkpoint's own record", v);
  }
  let prevStep = 0;
  v.forEach((r, i) => {
    const at = `records[${i}]`;
    if (!isPlainObject(r)) problem(at, "a log record (an object)", r);
    let step: number;
    if (r.kind === "step") {
      object(r, at, [
        "kind",
        "epoch",
        "step",
        "stepInEpoch",
        "stepsPerEpoch",
        "loss",
        "lr",
        "imagesPerSecond",
        "elapsed",
      ], ["lossCls", "lossDense", "gradNorm"]);
      const epoch = integer(r.epoch, `${at}.epoch`, 0, c.totalEpochs - 1);
      const sie = integer(r.stepInEpoch, `${at}.stepInEpoch`, 0, c.spe - 1);
      exactly(
        r.stepsPerEpoch,
        `${at}.stepsPerEpoch`,
        c.spe,
        "the state's stepsPerEpoch",
      );
      step = exactly(
        r.step,
        `${at}.step`,
        epoch * c.spe + sie + 1,
        "epoch * stepsPerEpoch + stepInEpoch + 1",
      );
      finite(r.loss, `${at}.loss`);
      if ("lossCls" in r) finite(r.lossCls, `${at}.lossCls`);
      if ("lossDense" in r) finite(r.lossDense, `${at}.lossDense`);
      if ("gradNorm" in r) finite(r.gradNorm, `${at}.gradNorm`, 0);
      exactly(
        r.lr,
        `${at}.lr`,
        scheduleLr(c.config, epoch, sie, c.spe),
        "the schedule's lr of that step",
      );
      finite(r.imagesPerSecond, `${at}.imagesPerSecond`, 0);
      finite(r.elapsed, `${at}.elapsed`, 0);
    } else if (r.kind === "eval") {
      object(r, at, [
        "kind",
        "epoch",
        "step",
        "which",
        "top1",
        "top5",
        "loss",
        "images",
      ]);
      const epoch = integer(r.epoch, `${at}.epoch`, 0, c.totalEpochs - 1);
      step = exactly(
        r.step,
        `${at}.step`,
        (epoch + 1) * c.spe,
        "(epoch + 1) * stepsPerEpoch: evaluations follow an epoch",
      );
      if (r.which !== "model" && !(r.which === "ema" && c.config.modelEma)) {
        problem(
          `${at}.which`,
          c.config.modelEma
            ? '"model" or "ema"'
            : '"model" (the run keeps no EMA)',
          r.which,
        );
      }
      finite(r.top1, `${at}.top1`, 0, 100);
      finite(r.top5, `${at}.top5`, 0, 100);
      finite(r.loss, `${at}.loss`);
      integer(r.images, `${at}.images`, 0, Number.MAX_SAFE_INTEGER);
    } else if (r.kind === "checkpoint") {
      object(r, at, ["kind", "epoch", "step", "name"]);
      const epoch = integer(r.epoch, `${at}.epoch`, 0, c.totalEpochs);
      step = integer(
        r.step,
        `${at}.step`,
        Math.max(1, epoch * c.spe),
        Math.max(
          1,
          epoch === c.totalEpochs ? epoch * c.spe : (epoch + 1) * c.spe,
        ),
      );
      exactly(
        r.name,
        `${at}.name`,
        `step-${String(step).padStart(8, "0")}`,
        "the folder name of its step",
      );
    } else {
      problem(`${at}.kind`, '"step", "eval" or "checkpoint"', r.kind);
    }
    if (step < prevStep || step > c.step) {
      problem(
        `${at}.step`,
        `a step from ${prevStep} (the record before) to ${c.step} (the state's step)`,
        step,
      );
    }
    prevStep = step;
  });
  const last = v.at(-1) as Record<string, unknown>;
  if (
    last.kind !== "checkpoint" || last.step !== c.step || last.epoch !== c.epoch
  ) {
    const text = JSON.stringify(last);
    throw new FieldProblem(
      `records[${v.length - 1}]`,
      `the checkpoint's own record (kind "checkpoint", step ${c.step}, epoch ${c.epoch}) last`,
      text.length > 120 ? text.slice(0, 117) + "..." : text,
    );
  }
}
