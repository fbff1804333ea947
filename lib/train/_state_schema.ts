/**
 * The schema of the training state a run folder holds: a checkpoint's
 * `state.json` and the run's `run.json`. Every field is checked for its
 * type, its range and its agreement with the config and with the other
 * fields, before anything the file names is opened. Unknown fields are
 * refused: tokenlab writes a fixed set, so an unknown field means the file
 * was edited or written by something else.
 *
 * A failure is a `FieldProblem` (`lib/io/json_fields.ts`) naming the
 * field; the readers (`checkpoint.ts`, `_run_files.ts`) turn it into
 * their own error with the file and what to do.
 *
 * @module
 */

import {
  type ResolvedTrainConfig,
  type TrainConfig,
  TrainConfigError,
} from "./config.ts";
import { configDifferences } from "./config_differences.ts";
import { resolveTrainConfig } from "./resolve_config.ts";
import type { ScheduleExtension, TrainState } from "./train_state.ts";
import {
  fieldName,
  FieldProblem,
  fieldProblem,
  finiteField,
  integerField,
  isPlainObject,
  objectFields,
  sha256Field,
  stringField,
} from "../io/json_fields.ts";
import { learningRate, ScheduleError } from "./schedule.ts";

/** The tensor files a checkpoint may hold: the only names `files` may list. */
export const CHECKPOINT_TENSOR_FILES: readonly string[] = [
  "model.safetensors",
  "ema.safetensors",
  "optimizer.safetensors",
];

function exactly<T>(v: unknown, field: string, want: T, why: string): T {
  if (JSON.stringify(v) !== JSON.stringify(want)) {
    fieldProblem(field, `${JSON.stringify(want)} (${why})`, v);
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
  if (!isPlainObject(v)) fieldProblem(field, "an object (the run's config)", v);
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
      fieldProblem(
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
  /** The changes of its length (`extend`), oldest first (absent: none). */
  extensions?: ScheduleExtension[];
}

/**
 * Checks a list of schedule extensions (run.json's or state.json's): each
 * at a step no earlier than the one before, from the `epochs` the one
 * before went to; the last going to `epochs` (the config's).
 */
function validateExtensions(
  v: unknown,
  field: string,
  epochs: number,
): ScheduleExtension[] {
  if (!Array.isArray(v) || v.length === 0) {
    fieldProblem(field, "a non-empty array of schedule extensions", v);
  }
  let step = 0, prevTo: number | null = null;
  v.forEach((x, i) => {
    const at = `${field}[${i}]`;
    const o = objectFields(x, at, { required: ["step", "from", "to", "at"] });
    step = integerField(o.step, `${at}.step`, {
      min: step,
      max: Number.MAX_SAFE_INTEGER,
    });
    const from = integerField(o.from, `${at}.from`, { min: 1, max: 1e9 });
    if (prevTo !== null && from !== prevTo) {
      fieldProblem(
        `${at}.from`,
        `${prevTo} (the extension before went to it)`,
        from,
      );
    }
    prevTo = integerField(o.to, `${at}.to`, { min: 1, max: 1e9 });
    const date = stringField(o.at, `${at}.at`, { maxLength: 40 });
    if (Number.isNaN(Date.parse(date))) {
      fieldProblem(`${at}.at`, "an ISO 8601 date", date);
    }
  });
  if (prevTo !== epochs) {
    fieldProblem(
      `${field}[${v.length - 1}].to`,
      `${epochs} (the config's epochs)`,
      prevTo,
    );
  }
  return v as ScheduleExtension[];
}

/**
 * The schedule's `epochs` a step ran under: the `from` of the first
 * extension made at or after it, else the config's.
 */
export function epochsAtStep(
  step: number,
  epochs: number,
  extensions: readonly ScheduleExtension[] | undefined,
): number {
  for (const x of extensions ?? []) if (step <= x.step) return x.from;
  return epochs;
}

/** Checks parsed `run.json`; the config comes back as stored. */
export function validateRunInfo(v: unknown): RunInfo {
  const o = objectFields(v, "", {
    required: [
      "format",
      "version",
      "config",
      "created",
      "tokenlab",
    ],
    optional: ["extensions"],
  });
  exactly(o.format, "format", "tokenlab-run", "a tokenlab run description");
  exactly(o.version, "version", 1, "the only version of run.json");
  const runConfig = validateStoredConfig(o.config, "config");
  if ("extensions" in o) {
    validateExtensions(o.extensions, "extensions", runConfig.epochs);
  }
  const created = stringField(o.created, "created", {
    maxLength: 40,
    allowControl: true,
  });
  if (Number.isNaN(Date.parse(created))) {
    fieldProblem("created", "an ISO 8601 date", created);
  }
  stringField(o.tokenlab, "tokenlab", { maxLength: 100, allowControl: true });
  return o as unknown as RunInfo;
}

/** What a state is checked against besides itself. */
export interface StateContext {
  /** The checkpoint's folder name (`step-00000120`); a `step-N` name must match the state's step. */
  name: string;
  /** The run's config (run.json's, or the config a resumed run gives): `config` must agree with it. */
  runConfig: ResolvedTrainConfig | null;
  /**
   * The run was extended, or is being: `config.epochs` may differ from the
   * run's (default false).
   */
  epochsMayDiffer?: boolean;
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
  const o = objectFields(v, "", {
    required: STATE_FIELDS,
    optional: ["extensions"],
  });
  exactly(o.format, "format", "tokenlab-train-state", "a training state");
  if (o.version !== 1 && o.version !== 2) {
    fieldProblem("version", "1 or 2", o.version);
  }
  const config = validateStoredConfig(o.config, "config");
  const extensions = "extensions" in o
    ? validateExtensions(o.extensions, "extensions", config.epochs)
    : undefined;
  if (context.runConfig !== null) {
    const diff = configDifferences(
      o.config as Record<string, unknown>,
      context.runConfig as unknown as Record<string, unknown>,
    ).filter((d) => !(context.epochsMayDiffer && d.startsWith("epochs:")));
    if (diff.length > 0) {
      const k = diff[0].slice(0, diff[0].indexOf(":"));
      fieldProblem(
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
  const spe = integerField(o.stepsPerEpoch, "stepsPerEpoch", {
    min: 1,
    max: maxSpe,
  });
  const epoch = integerField(o.epoch, "epoch", { min: 0, max: totalEpochs });
  const stepInEpoch = integerField(o.stepInEpoch, "stepInEpoch", {
    min: 0,
    max: epoch === totalEpochs ? 0 : spe,
  });
  const step = exactly(
    o.step,
    "step",
    epoch * spe + stepInEpoch,
    "epoch * stepsPerEpoch + stepInEpoch",
  );
  if (step < 1) {
    fieldProblem("step", "at least 1 (a checkpoint follows a step)", step);
  }
  if (/^step-\d+$/.test(context.name)) {
    const want = `step-${String(step).padStart(8, "0")}`;
    if (context.name !== want) {
      fieldProblem("step", `the step its folder ${context.name} names`, step);
    }
  }
  finiteField(o.elapsed, "elapsed", { min: 0 });

  const opt = objectFields(o.optimizer, "optimizer", {
    required: [
      "step",
      "lr",
      "weightDecay",
      "betas",
      "eps",
    ],
  });
  exactly(opt.step, "optimizer.step", step, "one optimizer step per step");
  const last = step - 1;
  const lr = scheduleLr(
    { ...config, epochs: epochsAtStep(step, config.epochs, extensions) },
    Math.floor(last / spe),
    last % spe,
    spe,
  );
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

  const rng = objectFields(o.rng, "rng", { required: ["seed", "scheme"] });
  exactly(rng.seed, "rng.seed", config.seed, "the config's seed");
  stringField(rng.scheme, "rng.scheme", {
    maxLength: 1000,
    allowControl: true,
  });

  validateRecords(o.records, {
    config,
    spe,
    totalEpochs,
    step,
    epoch,
    extensions,
  });

  // The names are checked before anything else of `files`, and before any
  // file is opened: only the fixed names the writer uses can pass.
  if (isPlainObject(o.files)) {
    for (const name of Object.keys(o.files)) {
      if (!CHECKPOINT_TENSOR_FILES.includes(name)) {
        fieldProblem(
          fieldName("files", name),
          `one of the file names tokenlab writes (${
            CHECKPOINT_TENSOR_FILES.join(", ")
          }); a checkpoint lists only plain names in its own folder, never a path ("/", "\\", ".."), an absolute path or NUL`,
          name,
        );
      }
    }
  }
  const files = objectFields(o.files, "files", {
    required: config.modelEma
      ? CHECKPOINT_TENSOR_FILES
      : CHECKPOINT_TENSOR_FILES.filter((f) => f !== "ema.safetensors"),
  });
  for (const [name, entry] of Object.entries(files)) {
    const at = fieldName("files", name);
    const e = objectFields(entry, at, { required: ["bytes", "sha256"] });
    integerField(e.bytes, `${at}.bytes`, {
      min: 0,
      max: Number.MAX_SAFE_INTEGER,
    });
    sha256Field(e.sha256, `${at}.sha256`);
  }
  stringField(o.tokenlab, "tokenlab", { maxLength: 100, allowControl: true });
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
  extensions: readonly ScheduleExtension[] | undefined;
  spe: number;
  totalEpochs: number;
  step: number;
  epoch: number;
}

function validateRecords(v: unknown, c: RecordContext): void {
  if (!Array.isArray(v)) fieldProblem("records", "an array of log records", v);
  if (v.length === 0) {
    fieldProblem("records", "at least the checkpoint's own record", v);
  }
  let prevStep = 0;
  v.forEach((r, i) => {
    const at = `records[${i}]`;
    if (!isPlainObject(r)) fieldProblem(at, "a log record (an object)", r);
    let step: number;
    if (r.kind === "step") {
      objectFields(r, at, {
        required: [
          "kind",
          "epoch",
          "step",
          "stepInEpoch",
          "stepsPerEpoch",
          "loss",
          "lr",
          "imagesPerSecond",
          "elapsed",
        ],
        optional: ["lossCls", "lossDense", "gradNorm"],
      });
      const epoch = integerField(r.epoch, `${at}.epoch`, {
        min: 0,
        max: c.totalEpochs - 1,
      });
      const sie = integerField(r.stepInEpoch, `${at}.stepInEpoch`, {
        min: 0,
        max: c.spe - 1,
      });
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
      finiteField(r.loss, `${at}.loss`);
      if ("lossCls" in r) finiteField(r.lossCls, `${at}.lossCls`);
      if ("lossDense" in r) finiteField(r.lossDense, `${at}.lossDense`);
      if ("gradNorm" in r) {
        finiteField(r.gradNorm, `${at}.gradNorm`, { min: 0 });
      }
      exactly(
        r.lr,
        `${at}.lr`,
        scheduleLr(
          {
            ...c.config,
            epochs: epochsAtStep(
              epoch * c.spe + sie + 1,
              c.config.epochs,
              c.extensions,
            ),
          },
          epoch,
          sie,
          c.spe,
        ),
        "the schedule's lr of that step",
      );
      finiteField(r.imagesPerSecond, `${at}.imagesPerSecond`, { min: 0 });
      finiteField(r.elapsed, `${at}.elapsed`, { min: 0 });
    } else if (r.kind === "eval") {
      objectFields(r, at, {
        required: [
          "kind",
          "epoch",
          "step",
          "which",
          "top1",
          "top5",
          "loss",
          "images",
        ],
      });
      const epoch = integerField(r.epoch, `${at}.epoch`, {
        min: 0,
        max: c.totalEpochs - 1,
      });
      step = exactly(
        r.step,
        `${at}.step`,
        (epoch + 1) * c.spe,
        "(epoch + 1) * stepsPerEpoch: evaluations follow an epoch",
      );
      if (r.which !== "model" && !(r.which === "ema" && c.config.modelEma)) {
        fieldProblem(
          `${at}.which`,
          c.config.modelEma
            ? '"model" or "ema"'
            : '"model" (the run keeps no EMA)',
          r.which,
        );
      }
      finiteField(r.top1, `${at}.top1`, { min: 0, max: 100 });
      finiteField(r.top5, `${at}.top5`, { min: 0, max: 100 });
      finiteField(r.loss, `${at}.loss`);
      integerField(r.images, `${at}.images`, {
        min: 0,
        max: Number.MAX_SAFE_INTEGER,
      });
    } else if (r.kind === "checkpoint") {
      objectFields(r, at, { required: ["kind", "epoch", "step", "name"] });
      const epoch = integerField(r.epoch, `${at}.epoch`, {
        min: 0,
        max: c.totalEpochs,
      });
      step = integerField(r.step, `${at}.step`, {
        min: Math.max(1, epoch * c.spe),
        max: Math.max(
          1,
          epoch === c.totalEpochs ? epoch * c.spe : (epoch + 1) * c.spe,
        ),
      });
      exactly(
        r.name,
        `${at}.name`,
        `step-${String(step).padStart(8, "0")}`,
        "the folder name of its step",
      );
    } else {
      fieldProblem(`${at}.kind`, '"step", "eval" or "checkpoint"', r.kind);
    }
    if (step < prevStep || step > c.step) {
      fieldProblem(
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
