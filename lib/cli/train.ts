/**
 * `tokenlab train`: the training engine on the command line, with the
 * official `main.py` flag names where they overlap (`tokenlab eval`:
 * `eval.ts`).
 *
 * @module
 */

import type { Command } from "./_args.ts";
import {
  checkBackendOption,
  checkPath,
  describeNumber,
  followsRule,
  NON_NEGATIVE_INT,
  parseCommandArgs,
  parseNumber,
  shown,
  UsageError,
} from "./_args.ts";
import { formatDuration } from "../_duration.ts";
import { evalLine } from "./_eval_line.ts";
import { stoppedMessage } from "./_stopped_message.ts";
import { augmentationWarnings } from "./_data_warnings.ts";
import { isRecipeName, RECIPE_NAMES } from "./_recipes.ts";
import {
  applyRecipe,
  applyWarmup,
  extensionText,
  planText,
  type TrainCliOptions,
} from "./_train_plan.ts";
import type { TrainConfig } from "../train/config.ts";
import {
  type Kind,
  TRAIN_FLAGS,
  TRAIN_OFF_SWITCHES,
  type TrainFlag,
} from "./_train_flags.ts";

/** Value flag -> [config field, kind], from the one table of train flags. */
const VALUE_FLAGS: Record<string, [keyof TrainConfig, Kind]> = Object
  .fromEntries(
    (Object.entries(TRAIN_FLAGS) as [keyof TrainConfig, TrainFlag][])
      .flatMap(([field, f]) => "kind" in f ? [[f.flag, [field, f.kind]]] : []),
  );

/** Boolean flag -> [config field, value]: the switches on, then the ones off. */
const BOOL_FLAGS: Record<string, [keyof TrainConfig, unknown]> = Object
  .fromEntries([
    ...(Object.entries(TRAIN_FLAGS) as [keyof TrainConfig, TrainFlag][])
      .flatMap(([field, f]) => "on" in f ? [[f.flag, [field, true]]] : []),
    ...TRAIN_OFF_SWITCHES.map((s) => [s.flag, [s.field, s.value]]),
  ]);

const TRAIN_USAGE = `usage: tokenlab train --data DATA [options]

Trains a model with the official LV-ViT recipe (AdamW, weight decay 0.05
without decay on biases, norms, pos_embed and cls_token; cosine schedule with
warmup and cooldown; label smoothing; drop path; optional EMA and gradient
clipping), evaluating top-1 and top-5 after every epoch. Flags are named as
in the official main.py where they overlap. Before training it prints the
plan (recipe, epochs, steps, warmup, cooldown, the lr of each phase, the
augmentation) and warns when the augmentation looks wrong for the data.

recipes (--recipe; any flag given overrides the recipe's value)
  --recipe imagenet        the default: the official main.py recipe for
                           ImageNet, unchanged: batch 1024, lr 1.6e-3 x
                           batch/1024, 310 epochs (5 warmup, 295 cosine, 10
                           cooldown), lr updated per epoch, RandAugment m9,
                           erasing 0.25, flips 0.5, crops of 8-100 % area
  --recipe short           a short run on a small dataset: batch 64, lr 2e-3 x
                           batch/64, 10 epochs, warmup 10 % of the steps (at
                           most one epoch), no cooldown, lr updated every
                           step, no RandAugment, no erasing, flips 0.5, crops
                           of 70-100 % area, aspect 0.9-1.1 (the kit's own
                           short runs: lib/report/protocol.ts, notebook 05)
  --epochs N               epochs that run, in all (warmup and cooldown
                           included). main.py's --epochs counts the cosine
                           and runs the cooldown on top: tokenlab train
                           --epochs 310 is main.py --epochs 300 (cooldown 10)
  --warmup-steps N         warmup in optimizer steps (per-step updates)

data and model
  --data DATA              synthetic[:key=value,...], an image folder
                           (<root>/train/<class>/*), or a CIFAR binary folder
  --val-data DATA          validation data (default: the val split of --data)
  --no-eval                train without evaluation
  --train-limit N          use only N training images: a sample drawn with
                           --seed, spread over the classes in proportion
                           (stratified, from the labels, nothing decoded);
                           synthetic data keeps its first N (random draws)
  --val-limit N            use only N validation images, chosen the same way
  --model NAME             registry name (default lvvit_s; tokenlab models)
  --model-config JSON      change the variant's architecture (e.g. '{"depth":2}')
  --img-size N             input size (default the model's)
  --num-classes N          classes (default the data's)
  --initial-checkpoint F   start from these weights (.safetensors or official .pth.tar)
  --aux-head / --no-aux-head  force the token head on or off (default: when trained)
  --drop-path F            stochastic depth (default 0.1 S, 0.2 M, 0.3 L)
  --drop F                 dropout (default 0)

token labeling and mixing
  --token-label            train with dense token labels (needs --token-label-data)
  --token-label-data STORE score-map store (tokenlab annotate)
  --token-label-size N     pooled label grid (default the token grid, 14 at 224;
                           1: ReLabel, one pooled label per crop, no token loss)
  --dense-weight F         weight of the dense token loss (default 1.0)
  --cls-weight F           weight of the class-token loss (default 1.0)
  --token-label-box-order  yx (default) or official-transposed
  --token-label-smoothing RULE  smoothing of pooled labels: normalized (default,
                           sums to 1) or official (as the official code, 1 + eps/C)
  --refine RULE            ground-truth refinement of the class-token target
                           with token labels (VOLO's option): target = w x
                           annotator + (1 - w) x smoothed ground truth, per
                           image before mixing. none (default: the annotator's
                           pooled label as is), official (what VOLO's code
                           runs: w 0.5 where the annotator's argmax is the
                           label, 0.9 where not) or intended (0.5 and 0.1, as
                           VOLO's comment states: trust the label where the
                           annotator is wrong); needs --token-label
  --mix-token              MixToken (default: on with --token-label, as the official lvvit models)
  --no-mix-token           MixToken off
  --mix-token-box MODE     official (rand_bbox, default) or described
  --cutmix A / --mixup A   image-level CutMix / MixUp alpha (default 0: off)
  --mixup-prob P           probability of mixing a batch (default 1)
  --mixup-switch-prob P    probability of CutMix when both are on (default 0.5)
  --tl-align               TL-Align (patch CutMix + attention-aligned labels)
  --tl-align-alpha A       its Beta parameter (default 1)
  --tl-align-box MODE      its token box: described (default) or official
                           (TL-Align's code, rand_token_bbox)

augmentation
  --aa POLICY / --no-aa    RandAugment (imagenet rand-m9-mstd0.5-inc1, n3 for L;
                           short none)
  --reprob P  --remode M   random erasing (imagenet 0.25, short 0; pixel)
  --hflip P                horizontal flip (default 0.5; 0 for digits or text)
  --scale LO,HI  --ratio LO,HI   RandomResizedCrop ranges (imagenet 0.08,1 and
                           0.75,1.333; short 0.7,1 and 0.9,1.1)
  --train-interpolation I  random (default), bilinear, bicubic or nearest
  --crop-pct F             evaluation centre crop (default per model)
  --smoothing F            label smoothing (default 0.1)

optimisation
  --batch-size N           images per step (imagenet 1024, the official total;
                           short 64)
  --lr F                   peak lr (imagenet 1.6e-3 x batch / 1024, 1e-3 x ..
                           for L; short 2e-3 x batch / 64)
  --warmup-lr F --min-lr F warmup start and cosine floor (1e-6, 1e-5)
  --warmup-epochs N        warmup epochs, part of --epochs (imagenet 5)
  --cooldown-epochs N      epochs at --min-lr at the end, part of --epochs
                           (imagenet 10, short 0)
  --sched-update WHEN      epoch (official) or step (short)
  --weight-decay F         (default 0.05)
  --opt-betas B1,B2  --opt-eps F   AdamW (0.9,0.999 and 1e-8)
  --clip-grad F            clip gradients (default off)  --clip-mode norm|value
  --model-ema              keep an EMA of the weights  --model-ema-decay F (0.99992)
  --seed N                 (default 42)

the run
  --output DIR             checkpoints, log.jsonl, final weights (default: nothing written)
  --resume                 continue the run in --output from its last checkpoint
                           (the same arguments: a different setting is refused)
  --extend                 with --resume and a new --epochs: continue the run
                           under the longer (or shorter) schedule; the plan
                           shows the lr from the current step under the old
                           and the new schedule, and run.json records it, so
                           a later --resume with the new --epochs agrees
  --overwrite              start over in an --output that holds a run
  --recovery-interval N    also checkpoint every N steps (default: every epoch)
  --log-interval N         log a step record every N steps (default 50)
  --eval-every N           evaluate every N epochs (default 1)
  --workers N              data-loading threads (default 0)
  --skip-unreadable        leave an image that cannot be read (a corrupt file)
                           out of its batch with a warning, and count them at
                           the end (default: stop, naming the file);
                           --on-bad-image stop|skip says the same
  --backend NAME           auto, webgpu, wasm or cpu (cpu: bit-exact resume)
  --json                   print the result as JSON on stdout

Ctrl-C stops after the current step and writes a checkpoint (with --output),
then prints how many steps ran, where the checkpoint is, and the command
that continues the run (the same arguments plus --resume); no final weights
are written for a stopped run. A second Ctrl-C quits at once (exit 130).

exit codes: 0 done; 2 refused before any work (wrong usage or bad input: the
message says what was expected, what was found and what to do); 1 failed
while running; 130 interrupted (continue with --resume).`;

function parseValue(flag: string, kind: Kind, text: string): unknown {
  if (kind === "string") return text;
  if (kind === "json") {
    try {
      return JSON.parse(text);
    } catch {
      throw new UsageError(
        `tokenlab train: --${flag} needs a JSON object of model config fields (e.g. '{"depth":2,"embedDim":64}'), found ${
          shown(text)
        }`,
      );
    }
  }
  if ("choices" in kind) {
    if (!kind.choices.includes(text)) {
      throw new UsageError(
        `tokenlab train: --${flag} needs one of ${
          kind.choices.join(", ")
        }, found ${shown(text)}`,
      );
    }
    return text;
  }
  if ("pair" in kind) {
    const parts = text.split(",").map((s) => s.trim() === "" ? NaN : Number(s));
    if (
      parts.length !== 2 || !parts.every((n) => followsRule(n, kind.pair)) ||
      (kind.ordered && parts[0] > parts[1])
    ) {
      throw new UsageError(
        `tokenlab train: --${flag} needs two numbers separated by a comma, each ${
          describeNumber(kind.pair)
        }${kind.ordered ? ", low first" : ""} (e.g. ${
          kind.ordered ? "0.08,1" : "0.9,0.999"
        }), found ${shown(text)}`,
      );
    }
    return parts;
  }
  return parseNumber("train", `--${flag}`, text, kind);
}

/**
 * Reads `tokenlab train` arguments into the config fields the flags set
 * (no recipe applied; `epochs` still the command line's total) and the
 * command line's own options (exported for tests).
 */
export function trainConfigFromArgs(
  args: string[],
): {
  config: Record<string, unknown>;
  cli: TrainCliOptions;
  json: boolean;
  help: boolean;
} {
  const options: Record<
    string,
    { type: "string" | "boolean"; short?: string }
  > = {};
  for (const f of Object.keys(VALUE_FLAGS)) options[f] = { type: "string" };
  for (const f of Object.keys(BOOL_FLAGS)) options[f] = { type: "boolean" };
  options["batch-size"].short = "b";
  options.workers.short = "j";
  options.json = { type: "boolean" };
  options.help = { type: "boolean", short: "h" };
  options.recipe = { type: "string" };
  options["warmup-steps"] = { type: "string" };
  const { values, positionals } = parseCommandArgs(
    "train",
    TRAIN_USAGE,
    args,
    options,
  );
  const cli: TrainCliOptions = { recipe: "imagenet", extend: false };
  if (values.help) return { config: {}, cli, json: false, help: true };
  if (positionals.length > 0) {
    throw new UsageError(
      `tokenlab train: unexpected argument ${
        positionals[0]
      } (the data goes in --data)\n\n${TRAIN_USAGE}`,
    );
  }
  const v = values as Record<string, string | boolean | undefined>;
  const config: Record<string, unknown> = {};
  const setBy: Record<string, string> = {};
  const set = (flag: string, key: string, value: unknown) => {
    if (
      key in config && JSON.stringify(config[key]) !== JSON.stringify(value)
    ) {
      throw new UsageError(
        `tokenlab train: --${
          setBy[key]
        } and --${flag} contradict each other; keep one`,
      );
    }
    config[key] = value;
    setBy[key] = flag;
  };
  for (const [flag, [key, kind]] of Object.entries(VALUE_FLAGS)) {
    const text = v[flag];
    if (typeof text === "string") set(flag, key, parseValue(flag, kind, text));
  }
  for (const [flag, [key, value]] of Object.entries(BOOL_FLAGS)) {
    if (v[flag] === true) set(flag, key, value);
  }
  if (config.data === undefined) {
    throw new UsageError(
      `tokenlab train: --data is required\n\n${TRAIN_USAGE}`,
    );
  }
  if (typeof v.recipe === "string") {
    if (!isRecipeName(v.recipe)) {
      throw new UsageError(
        `tokenlab train: --recipe needs one of ${
          RECIPE_NAMES.join(", ")
        }, found ${shown(v.recipe)}`,
      );
    }
    cli.recipe = v.recipe;
  }
  if (typeof v["warmup-steps"] === "string") {
    cli.warmupSteps = parseNumber(
      "train",
      "--warmup-steps",
      v["warmup-steps"],
      NON_NEGATIVE_INT,
    );
  }
  cli.extend = config.extend === true;
  if (cli.extend && config.resume !== true) {
    throw new UsageError(
      "tokenlab train: --extend changes the schedule of a run being continued: add --resume (and --output with the run's folder)",
    );
  }
  return { config, cli, json: v.json === true, help: false };
}

/**
 * Checks the kind of every path the train flags name, before any work: a
 * folder given for a file (or the reverse) is named with its flag here
 * instead of failing deep in a reader. Missing data and output folders are
 * the library's to name (its DataSpecError and RunFolderError say more).
 */
async function checkInputPaths(config: Record<string, unknown>) {
  if (typeof config.initialCheckpoint === "string") {
    await checkPath("train", "--initial-checkpoint", config.initialCheckpoint, {
      kind: "file",
      what: "a weights file (.safetensors, or an official .pth/.pth.tar)",
    });
  }
  if (typeof config.tokenLabelData === "string") {
    await checkPath("train", "--token-label-data", config.tokenLabelData, {
      kind: "folder",
      what: "a score-map store folder (made by tokenlab annotate)",
    });
  }
}

/** The `train` command. */
export const trainCommand: Command = {
  summary: "train a model with the official recipe (resumable checkpoints)",
  usage: TRAIN_USAGE,
  async run(args) {
    const { config: flags, cli, json, help } = trainConfigFromArgs(args);
    if (help) {
      console.log(TRAIN_USAGE);
      return 0;
    }
    await checkInputPaths(flags);
    await checkBackendOption("train", flags.backend as string | undefined);
    const {
      train,
      resolveTrainConfig,
      liveBundle,
      CheckpointError,
      DatasetError,
      DEFAULT_TRAIN_CONFIG,
      ImageError,
      LoaderError,
      latestCheckpoint,
      readRunDescription,
      ScoreMapError,
    } = await import("../mod.ts");
    const { trainingData } = await import("./_train_data.ts");
    // The recipe fills what no flag set; --epochs becomes the library's
    // warmup-and-cosine epochs; the warmup needs the steps of an epoch.
    const config = applyRecipe(flags, cli);
    // Contradicting settings are named before the data is opened (the
    // warmup is checked once the steps are known).
    resolveTrainConfig({ ...config, warmupEpochs: 0 } as unknown as {
      data: string;
    });
    const data = await trainingData(config, {
      batchSize: DEFAULT_TRAIN_CONFIG.batchSize,
      seed: DEFAULT_TRAIN_CONFIG.seed,
      batchFromFlag: flags.batchSize !== undefined,
    });
    applyWarmup(config, flags, cli, data.facts.stepsPerEpoch);
    // A resumed run keeps the warmup it started with (a recipe's share of
    // the steps would change with an extension).
    const previous = flags.resume === true && typeof flags.output === "string"
      ? await readRunDescription(flags.output)
      : null;
    if (
      previous !== null && flags.warmupEpochs === undefined &&
      cli.warmupSteps === undefined
    ) {
      config.warmupEpochs = previous.config.warmupEpochs;
    }
    // A TrainConfigError is bad input (main.ts's table): exit 2.
    const resolved = resolveTrainConfig(config as { data: string });
    const enc = new TextEncoder();
    const err = (t: string) => Deno.stderr.writeSync(enc.encode(t));
    const tty = Deno.stderr.isTerminal();
    err(`${planText(resolved, cli.recipe, data.facts)}\n`);
    if (previous !== null) {
      const was = previous.config;
      const oldTotal = was.epochs + was.cooldownEpochs;
      const newTotal = resolved.epochs + resolved.cooldownEpochs;
      if (
        oldTotal !== newTotal || was.cooldownEpochs !== resolved.cooldownEpochs
      ) {
        if (!cli.extend) {
          throw new UsageError(
            `tokenlab train: --epochs ${newTotal} differs from the ${oldTotal} epochs in all the run in ${resolved.output} was started with; to continue it under the new length add --extend (the lr follows the new schedule from the current step on), or resume with --epochs ${oldTotal}`,
          );
        }
        if (was.cooldownEpochs !== resolved.cooldownEpochs) {
          throw new UsageError(
            `tokenlab train: --extend changes the epochs of warmup and cosine; the run's ${was.cooldownEpochs} cooldown epochs stay: give --cooldown-epochs ${was.cooldownEpochs} (or leave it to the recipe the run started with)`,
          );
        }
        const latest = await latestCheckpoint(resolved.output!);
        const at = latest?.state ?? null;
        const ran = at === null ? 0 : at.epoch + (at.stepInEpoch > 0 ? 1 : 0);
        if (newTotal < ran) {
          throw new UsageError(
            `tokenlab train: --extend with --epochs ${newTotal}: the run in ${resolved.output} has already run ${ran} epochs (checkpoint ${
              latest!.name
            }); a run cannot be shortened below what it has done: give --epochs ${ran} or more`,
          );
        }
        err(
          `${extensionText(was, resolved, at, data.facts.stepsPerEpoch)}\n`,
        );
      } else if (cli.extend) {
        err(
          `extend: --epochs ${newTotal} is the run's own length: nothing to extend, the run continues as planned\n`,
        );
      }
    }
    for (
      const w of augmentationWarnings(
        resolved,
        cli.recipe,
        data.images,
        data.facts.used,
      )
    ) err(`${w}\n`);
    const stop = new AbortController();
    let interrupts = 0;
    const onSigint = () => {
      interrupts++;
      if (interrupts > 1) Deno.exit(130);
      err(
        `\nstopping after this step${
          resolved.output
            ? " (a checkpoint is written)"
            : " (nothing is saved: no --output)"
        }; Ctrl-C again to quit at once\n`,
      );
      stop.abort();
    };
    Deno.addSignalListener("SIGINT", onSigint);
    let lastPrint = -Infinity;
    // Until the first step, the engine only opens what the command line
    // names: a reader's error then means that input is wrong (exit 2).
    // After it, an error is a failure while running (exit 1).
    let started = false;
    const inputs = [
      {
        flag: resolved.initialCheckpoint !== null
          ? "--initial-checkpoint"
          : "--output (--resume)",
        readers: [CheckpointError],
      },
      { flag: "--token-label-data", readers: [ScoreMapError] },
      { flag: "--data", readers: [DatasetError] },
    ];
    try {
      const run = await train(config as { data: string }, {
        live: false,
        signal: stop.signal,
        onProgress: (s) => {
          if (s.status === "running") started = true;
          // A failure's message is the error's, printed once when the
          // command ends: the bar says "failed" without repeating it.
          const line = String(
            liveBundle(
              s.status === "failed" ? { ...s, message: undefined } : s,
            )["text/plain"],
          );
          const now = performance.now();
          if (tty) err(`\r${line}\x1b[K`);
          else if (now - lastPrint > 5000 || s.status !== "running") {
            lastPrint = now;
            err(`${line}\n`);
          }
        },
        onRecord: (r) => {
          if (r.kind === "eval") {
            err(
              `${tty ? "\r\x1b[K" : ""}${
                evalLine(r, resolved.epochs + resolved.cooldownEpochs)
              }\n`,
            );
          }
        },
      });
      if (tty) err("\n");
      const skipped = run.result.skipped;
      if (skipped.train + skipped.val > 0) {
        const n = skipped.files.length;
        err(
          `skipped ${n} unreadable training image${
            n === 1 ? "" : "s"
          } (left out of training ${skipped.train} time${
            skipped.train === 1 ? "" : "s"
          }, once per epoch; of evaluation ${skipped.val} time${
            skipped.val === 1 ? "" : "s"
          })${
            n > 0
              ? `: ${skipped.files.slice(0, 5).join(", ")}${
                n > 5 ? ", ..." : ""
              }`
              : ""
          }\n`,
        );
      }
      if (run.status === "stopped") {
        err(
          `${
            stoppedMessage({
              ...run.result,
              totalSteps: run.schedule.step.length,
              output: run.output,
            }, args)
          }\n`,
        );
      } else {
        err(
          `${run.toString()}${
            run.output
              ? `\nweights: ${run.output}/model.safetensors, log: ${run.output}/log.jsonl`
              : ""
          }\n`,
        );
      }
      if (json) {
        console.log(
          JSON.stringify({ status: run.status, ...run.result }, null, 1),
        );
      }
      err(`time: ${formatDuration(run.result.elapsed)}\n`);
      run.dispose();
      return run.status === "done" ? 0 : 130;
    } catch (e) {
      if (
        e instanceof LoaderError && e.cause instanceof ImageError &&
        resolved.onBadImage === "stop"
      ) {
        // A file that cannot be read stopped the run: say how to go on.
        throw new LoaderError(
          `${e.message}\nto leave unreadable images out (counted and reported at the end), run again with --skip-unreadable${
            resolved.output !== null
              ? " (and --resume to continue this run)"
              : ""
          }`,
          { cause: e.cause },
        );
      }
      if (!started) {
        const input = inputs.find((i) => i.readers.some((c) => e instanceof c));
        if (input !== undefined) {
          throw new UsageError(
            `tokenlab train: ${input.flag}: ${(e as Error).message}`,
            { cause: e },
          );
        }
      }
      throw e;
    } finally {
      Deno.removeSignalListener("SIGINT", onSigint);
    }
  },
};
