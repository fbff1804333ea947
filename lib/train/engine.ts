/**
 * The training loop: data, targets, mixing, forward and backward, AdamW on
 * the cosine schedule, EMA, evaluation, the log and resumable checkpoints,
 * with progress on the command line or live in a notebook.
 *
 * Every random draw comes from a generator derived from the seed and the
 * position in the run: the data order from (seed, epoch), each sample's
 * augmentation from (seed, epoch, index), and each step's mixing box and
 * drop-path masks from (seed, stream, epoch, step). Resuming from a
 * checkpoint therefore replays exactly what the uninterrupted run would
 * have drawn.
 *
 * @module
 */

import { ensureBackend, initBackend } from "../backend.ts";
import { Rng } from "../random.ts";
import { DataLoader } from "../data/loader.ts";
import type { LvVit } from "../models/lvvit.ts";
import { createModel } from "../models/registry.ts";
import { loadWeights, saveWeights } from "../models/weights.ts";
import {
  type Checkpoint,
  checkpointName,
  restoreCheckpoint,
  RunFolderError,
  type ScheduleExtension,
  writeCheckpoint,
} from "./checkpoint.ts";
import { prepareOutput, readRunDescription, writeJson } from "./run_folder.ts";
import { appendLog, rewriteLog } from "./run_log.ts";
import { type TrainConfig, TrainConfigError } from "./config.ts";
import { resolveTrainConfig } from "./resolve_config.ts";
import { LiveDisplay } from "./live_display.ts";
import type { LiveState } from "./live_view.ts";
import { evaluate } from "./evaluate.ts";
import type { EvalRecord, LogRecord, StepRecord } from "./log.ts";
import { ModelEma } from "./ema.ts";
import { AdamW } from "./optimizer.ts";
import { learningRate, scheduleOfConfig, totalEpochs } from "./schedule.ts";
import type { TrainingRegime } from "./regimes/regime.ts";
import { regimeFor } from "./regimes/select.ts";
import { NonFiniteLossError, TrainingError } from "./regimes/training_error.ts";
import { type TrainResult, TrainRun } from "./train_run.ts";
import {
  evalPipeline,
  resolveData,
  runTitle,
  stepCurve,
  trainPipeline,
} from "./_run_setup.ts";
import {
  type StepContext,
  type StepOutcome,
  trainStep,
} from "./_train_step.ts";

export { NonFiniteLossError, TrainingError };
// Defined in their own files; still exported here, where they were first.
export { resolveData };
export { type TrainResult, TrainRun };

/** The stream of per-step draws (mixing box, drop path, dropout). */
const STEP_STREAM = 0x57e9;

/** Options of {@linkcode train} that do not change what is computed. */
export interface TrainOptions {
  /** Called after every step and evaluation with the progress (the CLI draws its bar from it). */
  onProgress?: (state: LiveState) => void | Promise<void>;
  /** Called with every record as it is logged. */
  onRecord?: (record: LogRecord) => void;
  /**
   * A live view in the notebook, updated in place (`"auto"`, the default:
   * when running inside Jupyter).
   */
  live?: boolean | "auto";
  /** Stops the run after the current step; a checkpoint is written (with `output`) and the run returned as "stopped". */
  signal?: AbortSignal;
}

/**
 * Trains a model as the config says and returns the run. With `output`,
 * the run writes `run.json`, `log.jsonl`, checkpoints (atomically; every
 * `checkpointEvery` steps and at the end of every epoch) and the final
 * weights, and `resume: true` continues it from its newest checkpoint to the
 * same weights an uninterrupted run reaches (bit for bit on the cpu backend).
 *
 * A non-finite loss stops the run before the step is applied, with a
 * {@linkcode NonFiniteLossError} (a `TrainingError`) naming the step; the
 * checkpoints written before stay as they were.
 *
 * @throws {TrainConfigError} for contradicting settings, before any work
 * @throws {RunFolderError} for an output folder that holds another run
 * @throws {TrainingError} for a non-finite loss or unlabelled data
 *
 * @example
 * ```ts ignore
 * import { train } from "tokenlab";
 * const run = await train({
 *   model: "lvvit_xs32", data: "synthetic:size=32,count=512", batchSize: 64,
 *   epochs: 3, warmupEpochs: 1, cooldownEpochs: 0, logEvery: 2, valLimit: 256,
 * });
 * run; // in a notebook: the loss, lr and accuracy curves and the result table
 * ```
 */
export async function train(
  config: Partial<TrainConfig> & Pick<TrainConfig, "data">,
  options: TrainOptions = {},
): Promise<TrainRun> {
  const c = resolveTrainConfig(config);
  const { train: trainData, val: valData } = await resolveData(c);
  if (c.backend === "auto") await ensureBackend();
  else await initBackend({ backend: c.backend });

  const loader = await DataLoader.open(trainPipeline(c, trainData), {
    batchSize: c.batchSize,
    shuffle: true,
    seed: c.seed,
    dropLast: true,
    workers: c.workers,
    limit: c.trainLimit ?? undefined,
    limitSample: "stratified",
  });
  let valLoader: DataLoader | null = null;
  let model: LvVit | null = null;
  let ema: ModelEma | null = null;
  let optimizer: AdamW | null = null;
  let regime: TrainingRegime | null = null;
  let keepModels = false;
  try {
    const classes = loader.pipeline.dataset.classes.length;
    const numClasses = c.numClasses ?? classes;
    if (classes > numClasses) {
      throw new TrainConfigError(
        `\`numClasses: ${numClasses}\` is smaller than the ${classes} classes of the training data; leave it out to use the data's count`,
        { fields: ["numClasses"] },
      );
    }
    if (loader.stepsPerEpoch === 0) {
      throw new TrainConfigError(
        `\`batchSize: ${c.batchSize}\` is larger than the ${loader.size} training images; lower \`batchSize\` (every step takes a full batch, as the official loader drops the last partial one)`,
        { fields: ["batchSize"] },
      );
    }
    if (valData !== null) {
      valLoader = await DataLoader.open(evalPipeline(c, valData), {
        batchSize: c.batchSize,
        shuffle: false,
        seed: c.seed,
        workers: c.workers,
        limit: c.valLimit ?? undefined,
        limitSample: "stratified",
      });
      const valClasses = valLoader.pipeline.dataset.classes.length;
      if (valClasses > numClasses) {
        throw new TrainConfigError(
          `the validation data has ${valClasses} classes but the model ${numClasses}; use validation data with the training data's classes (\`valData\`)`,
          { fields: ["valData"] },
        );
      }
    }
    // Checked before the model is built: a wrong folder costs nothing.
    const checkpoint = await prepareOutput(c);
    const extensions = c.output === null
      ? []
      : (await readRunDescription(c.output))?.extensions ?? [];

    model = createModel(c.model, {
      ...c.modelOverrides,
      imgSize: c.imgSize,
      numClasses,
      dropPathRate: c.dropPath,
      dropRate: c.drop,
      auxHead: c.auxHead,
    }, { seed: c.seed });
    if (c.initialCheckpoint !== null) {
      const r = await loadWeights(model, c.initialCheckpoint, {
        strict: false,
      });
      if (r.loaded.length === 0) {
        throw new TrainConfigError(
          `\`initialCheckpoint: ${
            JSON.stringify(c.initialCheckpoint)
          }\`: none of its ${r.unexpected.length} entries fits ${c.model}; give weights of this variant`,
          { fields: ["initialCheckpoint"] },
        );
      }
      const notes = [
        r.missing.length
          ? `${r.missing.length} missing (kept as initialised)`
          : "",
        r.unexpected.length
          ? `${r.unexpected.length} unexpected (ignored)`
          : "",
        r.reinitialized.length
          ? `heads re-initialised (${r.reinitialized.join(", ")})`
          : "",
        r.resized.length ? `resized: ${r.resized.join(", ")}` : "",
      ].filter((x) => x !== "");
      console.error(
        `initial weights ${c.initialCheckpoint}: ${r.loaded.length} entries loaded${
          notes.length ? `; ${notes.join("; ")}` : ""
        }`,
      );
    }
    const params = model.spec.filter((p) => p.kind === "param").map((p) => ({
      name: p.name,
      variable: model!.state.get(p.name)!,
      decay: p.decay,
    }));
    optimizer = new AdamW(params, {
      lr: c.lr,
      weightDecay: c.weightDecay,
      betas: [c.optBetas[0], c.optBetas[1]],
      eps: c.optEps,
    });
    ema = c.modelEma ? new ModelEma(model, c.modelEmaDecay) : null;
    regime = regimeFor(c, { numClasses });
    const ctx: StepContext = {
      c,
      model,
      optimizer,
      ema,
      regime,
      trainables: params.map((p) => p.variable),
      paramOf: new Map(params.map((p) => [p.variable.name, p.name])),
    };
    const run = await loop(
      ctx,
      loader,
      valLoader,
      checkpoint,
      extensions,
      options,
    );
    keepModels = true;
    return run;
  } finally {
    loader.close();
    valLoader?.close();
    optimizer?.dispose();
    regime?.dispose();
    if (!keepModels) {
      model?.dispose();
      ema?.dispose();
    }
  }
}

async function loop(
  ctx: StepContext,
  loader: DataLoader,
  valLoader: DataLoader | null,
  checkpoint: Checkpoint | null,
  extensions: readonly ScheduleExtension[],
  options: TrainOptions,
): Promise<TrainRun> {
  const { c, model, optimizer } = ctx;
  const out = c.output;
  const spe = loader.stepsPerEpoch;
  const sched = scheduleOfConfig(c);
  const epochs = totalEpochs(sched);
  const totalSteps = epochs * spe;
  const records: LogRecord[] = [];
  let epoch = 0, from = 0, elapsed = 0;
  if (checkpoint !== null) {
    const s = checkpoint.state;
    if (s.stepsPerEpoch !== spe) {
      throw new RunFolderError(
        `checkpoint ${checkpoint.path} was written with ${s.stepsPerEpoch} steps per epoch, but the data now gives ${spe}; the training data changed since the run started: resume with the same \`data\`, or start over with \`overwrite\``,
        { fields: ["data", "overwrite"] },
      );
    }
    await restoreCheckpoint(checkpoint, {
      model,
      ema: ctx.ema?.model ?? null,
      optimizer,
    });
    epoch = s.epoch;
    from = s.stepInEpoch;
    elapsed = s.elapsed;
    records.push(...s.records);
  }
  if (out !== null) await rewriteLog(out, records);

  const live = (options.live ?? "auto") === "auto"
    ? LiveDisplay.available()
    : options.live === true;
  const display = live ? new LiveDisplay() : null;
  const title = runTitle(c);
  let lastCheckpoint = checkpoint?.name ?? null;
  let lastLoss: number | null = null;
  let lastLr: number | null = null;
  let rate: number | null = null;
  const sessionStart = performance.now();
  let stepsThisSession = 0;
  // Every step, logged or not (records hold every `logEvery`-th).
  let stepsDone = checkpoint?.state.step ?? 0;
  let sinceRecord = { images: 0, t: performance.now() };

  const log = async (r: LogRecord) => {
    records.push(r);
    options.onRecord?.(r);
    if (out !== null) await appendLog(out, [r]);
  };
  const progress = async (
    step: number,
    ep: number,
    status: LiveState["status"] = "running",
    message?: string,
    force = false,
  ) => {
    const done = stepsThisSession;
    const secs = (performance.now() - sessionStart) / 1000;
    const state: LiveState = {
      title,
      epoch: ep,
      epochs,
      step,
      steps: totalSteps,
      loss: lastLoss,
      lr: lastLr,
      imagesPerSecond: rate,
      etaSeconds: done > 0 ? (totalSteps - step) * secs / done : null,
      last: records.slice(-200),
      status,
      message,
    };
    await options.onProgress?.(state);
    await display?.update(state, force);
  };
  const save = async (ep: number, stepInEpoch: number, step: number) => {
    if (out === null) return;
    // The checkpoint's own record is part of the log it holds, so that a
    // run resumed from it logs exactly what the uninterrupted run did.
    const rec: LogRecord = {
      kind: "checkpoint",
      epoch: ep,
      step,
      name: checkpointName(step),
    };
    await writeCheckpoint(out, {
      step,
      epoch: ep,
      stepInEpoch,
      stepsPerEpoch: spe,
      elapsed: elapsed + (performance.now() - sessionStart) / 1000,
      rng: {
        seed: c.seed,
        scheme:
          `every draw is derived from the seed and the position: data order Rng.derive(seed, epoch, -1), sample i Rng.derive(seed, epoch, i), step draws Rng.derive(seed, ${STEP_STREAM}, epoch, stepInEpoch)`,
      },
      config: c,
      records: [...records, rec],
      // Only a run that was extended says so: the others' states stay as they were.
      ...(extensions.length > 0 ? { extensions: [...extensions] } : {}),
    }, { model, ema: ctx.ema?.model ?? null, optimizer });
    lastCheckpoint = rec.name;
    await log(rec);
  };

  let status: "done" | "stopped" = "done";
  const skippedFiles = new Set<string>();
  try {
    outer: for (; epoch < epochs; epoch++, from = 0) {
      if (from < spe) {
        sinceRecord = { images: 0, t: performance.now() };
        for await (const batch of loader.epoch(epoch, from)) {
          const i = batch.step;
          for (const f of batch.skipped) skippedFiles.add(f);
          const step = epoch * spe + i + 1;
          const lr = learningRate(sched, epoch, i, spe);
          if (batch.size > 0) {
            let o: StepOutcome;
            try {
              o = await trainStep(
                ctx,
                batch,
                lr,
                Rng.derive(c.seed, STEP_STREAM, epoch, i),
              );
            } catch (e) {
              if (e instanceof NonFiniteLossError) {
                const msg =
                  `${e.message} at epoch ${epoch} step ${i} (step ${step} of the run, lr ${
                    lr.toExponential(2)
                  }); the step was not applied. ${
                    lastCheckpoint === null
                      ? "No checkpoint was written before it."
                      : `The last good checkpoint is ${out}/checkpoints/${lastCheckpoint}.`
                  } Lower the learning rate (\`lr\`), add gradient clipping (\`clipGrad: 1.0\`), or check the data, then start again`;
                await progress(step - 1, epoch, "failed", msg, true);
                throw new NonFiniteLossError(e.loss, e.gradNorm, msg, {
                  fields: ["lr", "clipGrad"],
                });
              }
              throw e;
            }
            lastLoss = o.loss;
            lastLr = lr;
            sinceRecord.images += batch.size;
            stepsThisSession++;
            stepsDone = step;
            const lastOfEpoch = i === spe - 1;
            if (step % c.logEvery === 0 || lastOfEpoch) {
              const now = performance.now();
              rate = sinceRecord.images /
                Math.max(1e-9, (now - sinceRecord.t) / 1000);
              sinceRecord = { images: 0, t: now };
              const rec: StepRecord = {
                kind: "step",
                epoch,
                step,
                stepInEpoch: i,
                stepsPerEpoch: spe,
                loss: o.loss,
                ...(o.lossCls !== undefined ? { lossCls: o.lossCls } : {}),
                ...(o.lossDense !== undefined
                  ? { lossDense: o.lossDense }
                  : {}),
                lr,
                ...(o.gradNorm !== undefined ? { gradNorm: o.gradNorm } : {}),
                imagesPerSecond: rate,
                elapsed: elapsed + (now - sessionStart) / 1000,
              };
              await log(rec);
            }
            await progress(step, epoch);
            if (
              c.checkpointEvery > 0 && step % c.checkpointEvery === 0 &&
              !lastOfEpoch
            ) {
              await save(epoch, i + 1, step);
            }
          }
          if (options.signal?.aborted) {
            await save(epoch, i + 1, step);
            status = "stopped";
            break outer;
          }
        }
      }
      const step = (epoch + 1) * spe;
      const lastEpoch = epoch === epochs - 1;
      if (
        valLoader !== null && ((epoch + 1) % c.evalEvery === 0 || lastEpoch)
      ) {
        const models = ctx.ema ? [model, ctx.ema.model] : [model];
        const results = await evaluate(models, valLoader);
        for (let m = 0; m < models.length; m++) {
          await log({
            kind: "eval",
            epoch,
            step,
            which: m === 0 ? "model" : "ema",
            ...results[m],
          });
        }
        await progress(step, epoch, "running", undefined, true);
      }
      await save(epoch + 1, 0, step);
    }
  } catch (e) {
    await progress(
      records.filter((r) => r.kind === "step").at(-1)?.step ?? 0,
      epoch,
      "failed",
      (e as Error).message,
      true,
    );
    throw e;
  }
  elapsed += (performance.now() - sessionStart) / 1000;
  const lastEval = (which: "model" | "ema") =>
    records.filter((r): r is EvalRecord =>
      r.kind === "eval" && r.which === which
    ).at(-1) ?? null;
  const steps = records.filter((r): r is StepRecord => r.kind === "step");
  const lastEpochSteps = steps.filter((r) => r.epoch === steps.at(-1)?.epoch);
  const result: TrainResult = {
    model: lastEval("model"),
    ema: lastEval("ema"),
    trainLoss: lastEpochSteps.length
      ? lastEpochSteps.reduce((s, r) => s + r.loss, 0) / lastEpochSteps.length
      : null,
    steps: stepsDone,
    stepsThisSession,
    lastCheckpoint: out !== null && lastCheckpoint !== null
      ? `${out}/checkpoints/${lastCheckpoint}`
      : null,
    elapsed,
    skipped: {
      files: [...skippedFiles].sort(),
      train: loader.skippedCount,
      val: valLoader?.skippedCount ?? 0,
    },
  };
  if (out !== null && status === "done") {
    await saveWeights(model, `${out}/model.safetensors`);
    if (ctx.ema) await saveWeights(ctx.ema.model, `${out}/ema.safetensors`);
    await writeJson(`${out}/result.json`, { ...result, config: c });
  }
  const run = new TrainRun({
    config: c,
    records,
    model,
    ema: ctx.ema?.model ?? null,
    status,
    result,
    schedule: stepCurve(sched, spe),
  });
  await progress(
    result.steps,
    epochs - 1,
    status === "done" ? "done" : "stopped",
    undefined,
    true,
  );
  await display?.finish(run.bundle());
  return run;
}
