/**
 * The training engine: the recipe as a config (defaults, scaling,
 * contradictions named before any work), one epoch that learns, token
 * labeling / MixToken / TL-Align / CutMix paths, the NaN guard, no tensor
 * leak, output-folder refusal, and a real SIGKILL mid-run whose resume ends
 * bit-identical to the uninterrupted run on the cpu backend.
 */

import {
  assert,
  assertEquals,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "./_assert.ts";
import { ROOT, runCli } from "./_helpers.ts";
import { tf } from "../lib/tf.ts";
import { initBackend } from "../lib/backend.ts";
import { SyntheticScenes } from "../lib/data/synthetic_scenes.ts";
import { oracleAnnotate } from "../lib/annotators/oracle.ts";
import {
  DEFAULT_TRAIN_CONFIG,
  type TrainConfig,
  TrainConfigError,
} from "../lib/train/config.ts";
import { resolveTrainConfig } from "../lib/train/resolve_config.ts";
import { readLog } from "../lib/train/run_log.ts";
import { RunFolderError } from "../lib/train/run_folder_error.ts";
import {
  NonFiniteLossError,
  train,
  TrainingError,
} from "../lib/train/engine.ts";
import { inFlagTerms } from "../lib/cli/_train_flags.ts";
import type { EvalRecord, StepRecord } from "../lib/train/log.ts";

const TMP = `${ROOT}tests/.tmp-train`;

/** A model small enough for the cpu backend: 16 px, 4 x 4 tokens, D 32, 2 blocks. */
const TINY: Partial<TrainConfig> = {
  model: "lvvit_xs32",
  modelOverrides: { embedDim: 32, depth: 2, numHeads: 2, stemChannels: 8 },
  imgSize: 16,
};

const TINY_FLAGS = [
  "--model",
  "lvvit_xs32",
  "--model-config",
  '{"embedDim":32,"depth":2,"numHeads":2,"stemChannels":8}',
  "--img-size",
  "16",
];

async function fresh(name: string): Promise<string> {
  const dir = `${TMP}/${name}`;
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  await Deno.mkdir(dir, { recursive: true });
  return dir;
}

const steps = (records: readonly unknown[]) =>
  (records as StepRecord[]).filter((r) => r.kind === "step");
const evals = (records: readonly unknown[]) =>
  (records as EvalRecord[]).filter((r) => r.kind === "eval");

Deno.test("config: the official recipe is the default, lr scales with the batch", () => {
  const c = resolveTrainConfig({ data: "synthetic" });
  assertEquals(c.model, "lvvit_s");
  assertEquals(c.weightDecay, 0.05);
  assertEquals(c.warmupLr, 1e-6);
  assertEquals(c.minLr, 1e-5);
  assertEquals([c.epochs, c.warmupEpochs, c.cooldownEpochs], [300, 5, 10]);
  assertEquals(c.smoothing, 0.1);
  assertEquals(c.aa, "rand-m9-mstd0.5-inc1");
  assertEquals(c.reprob, 0.25);
  assertEquals(c.modelEmaDecay, 0.99992);
  assertEquals(c.dropPath, 0.1);
  assertEquals(c.cropPct, 0.9);
  assertEquals(c.batchSize, 1024);
  assertEquals(c.lr, 1.6e-3);
  assertEquals(c.tokenLabelSize, 14);
  assertEquals(c.schedUpdate, "epoch");
  assertEquals(c.clipGrad, null);
  assertEquals(
    resolveTrainConfig({ data: "synthetic", batchSize: 256 }).lr,
    4e-4,
  );
  assertEquals(
    resolveTrainConfig({ data: "synthetic", batchSize: 256, lr: 1e-3 }).lr,
    1e-3,
  );
  const l = resolveTrainConfig({
    data: "synthetic",
    model: "lvvit_l",
    batchSize: 512,
  });
  assertEquals([l.lr, l.dropPath, l.aa, l.cropPct], [
    5e-4,
    0.3,
    "rand-n3-m9-mstd0.5-inc1",
    1.0,
  ]);
  assertEquals(
    resolveTrainConfig({ data: "synthetic", model: "lvvit_m" }).dropPath,
    0.2,
  );
  // MixToken follows token labeling, as the official lvvit_* models.
  const tl = resolveTrainConfig({
    data: "synthetic",
    tokenLabel: true,
    tokenLabelData: "x",
  });
  assertEquals([tl.mixToken, tl.auxHead], [true, true]);
  const plain = resolveTrainConfig({ data: "synthetic" });
  assertEquals([plain.mixToken, plain.auxHead], [false, false]);
  assertEquals(Object.keys(DEFAULT_TRAIN_CONFIG).includes("data"), false);
});

Deno.test("config: contradicting settings are named, with the reason", () => {
  const bad = (c: Partial<TrainConfig>, ...words: string[]) => {
    const e = assertThrows(
      () => resolveTrainConfig({ data: "synthetic", ...c }),
      TrainConfigError,
    );
    for (const w of words) assertStringIncludes(e.message, w);
  };
  bad(
    { model: "vit_xs32", mixToken: true },
    "`mixToken`",
    "aux head",
    "vit_xs32",
  );
  // A ViT baseline takes token labels once given a token head.
  const vitTl = resolveTrainConfig({
    model: "vit_xs32",
    data: "synthetic:size=32,count=64",
    tokenLabel: true,
    tokenLabelData: "maps",
    auxHead: true,
  });
  assertEquals([vitTl.auxHead, vitTl.mixToken], [true, true]);
  bad(
    { model: "vit_xs32", tokenLabel: true, tokenLabelData: "maps" },
    "`tokenLabel`",
    "`auxHead: true`",
  );
  bad({ auxHead: false, mixToken: true }, "`mixToken`", "aux head");
  bad(
    {
      model: "lvvit_xs32",
      tokenLabel: true,
      tokenLabelData: "m",
      tokenLabelSize: 14,
    },
    "`tokenLabelSize: 14`",
    "token grid",
    "`tokenLabelSize: 8`",
  );
  bad({ tokenLabel: true }, "`tokenLabel`", "`tokenLabelData`");
  // ReLabel (S = 1) needs no token head.
  const relabel = resolveTrainConfig({
    data: "synthetic",
    model: "vit_xs32",
    tokenLabel: true,
    tokenLabelData: "m",
    tokenLabelSize: 1,
  });
  assertEquals([relabel.auxHead, relabel.mixToken], [false, false]);
  bad({ tokenLabelData: "m" }, "`tokenLabelData`", "without `tokenLabel`");
  bad(
    { tlAlign: true, tokenLabel: true, tokenLabelData: "m" },
    "`tlAlign`",
    "`tokenLabel`",
  );
  bad({ mixToken: true, cutmix: 1 }, "`mixToken`", "`cutmix`");
  bad({ tlAlign: true, mixup: 0.8 }, "`tlAlign`", "`mixup`");
  bad(
    { resume: true, overwrite: true, output: "x" },
    "`resume`",
    "`overwrite`",
  );
  bad({ resume: true }, "`resume` needs `output`");
  bad({ warmupEpochs: 10, epochs: 5 }, "`warmupEpochs: 10`", "`epochs: 5`");
  bad({ model: "lvvit_q" }, 'unknown model "lvvit_q"', "lvvit_s");
  bad({ modelOverrides: { imgSize: 64 } }, "imgSize");
  bad({ imgSize: 100 }, "imgSize 100", "patch size 16");
  bad({ lr: -1 }, "lr must be > 0");
  assertThrows(
    () => resolveTrainConfig({ data: "synthetic", batchsize: 3 } as never),
    TrainConfigError,
    'unknown config field "batchsize"',
  );
});

Deno.test("CLI: contradicting flags fail with exit 2 before any work", async () => {
  const t0 = performance.now();
  const r = await runCli([
    "train",
    "--data",
    "synthetic",
    "--model",
    "vit_xs32",
    "--mix-token",
  ]);
  assertEquals(r.code, 2, r.stderr);
  assertStringIncludes(r.stderr, "--mix-token needs a model with an aux head");
  assertStringIncludes(
    r.stderr,
    "token head with --aux-head, or drop --mix-token",
  );
  const r2 = await runCli([
    "train",
    "--data",
    "synthetic",
    "--mix-token",
    "--no-mix-token",
  ]);
  assertEquals(r2.code, 2);
  assertStringIncludes(
    r2.stderr,
    "--mix-token and --no-mix-token contradict each other",
  );
  const r3 = await runCli(["train", "--data", "synthetic", "--lr", "fast"]);
  assertEquals(r3.code, 2);
  assertStringIncludes(r3.stderr, '--lr needs a positive number, found "fast"');
  const r4 = await runCli(["train", "--data", "synthetic", "--token-label"]);
  assertEquals(r4.code, 2);
  assertStringIncludes(r4.stderr, "--token-label needs score maps");
  assertStringIncludes(r4.stderr, "give --token-label-data (a store");
  // Nothing was trained: three Deno starts take seconds, a training minutes.
  assert(performance.now() - t0 < 60_000);
});

Deno.test("CLI: a library error's quoted fields become the flags that set them", () => {
  const e = assertThrows(
    () =>
      resolveTrainConfig({
        data: "synthetic",
        model: "lvvit_xs32",
        tokenLabel: true,
        tokenLabelData: "m",
        tokenLabelSize: 14,
      }),
    TrainConfigError,
  );
  assertEquals(e.fields, ["tokenLabelSize", "imgSize"]);
  const cli = inFlagTerms(e.message, e.fields);
  assertStringIncludes(cli, "--token-label-size 14 does not match");
  assertStringIncludes(cli, "at --img-size 32:");
  assertStringIncludes(cli, "use --token-label-size 8 (");
  assertEquals(cli.includes("`"), false, cli);
  // Switches, negations, JSON strings; fields not listed stay as written.
  assertEquals(
    inFlagTerms(
      '`data: "a b"`, `valData: false`, `auxHead: false`, `tokenLabel: true`, `mixToken: false`, `tokenlab annotate`, `lr`',
      ["data", "valData", "auxHead", "tokenLabel", "mixToken"],
    ),
    "--data a b, --no-eval, --no-aux-head, --token-label, --no-mix-token, `tokenlab annotate`, `lr`",
  );
  // A command whose flag differs (annotate's --arch for the variant).
  assertEquals(
    inFlagTerms('with `model: "lvvit_s"`', ["model"], { model: "arch" }),
    "with --arch lvvit_s",
  );
});

Deno.test("one epoch of plain training on tiny synthetic data lowers the loss and beats chance", async () => {
  await initBackend({ backend: "wasm" });
  const run = await train({
    model: "lvvit_xs32",
    modelOverrides: { embedDim: 64, depth: 2, numHeads: 2, stemChannels: 16 },
    data: "synthetic:size=32,count=512,classes=4",
    backend: "wasm",
    batchSize: 32,
    epochs: 1,
    warmupEpochs: 0,
    cooldownEpochs: 0,
    logEvery: 4,
    valLimit: 256,
    aa: null,
    reprob: 0,
    lr: 2e-3,
    seed: 1,
  }, { live: false });
  try {
    // Plain training: no token head to leave untrained, class-token loss only.
    assertEquals(run.model.config.auxHead, false);
    const s = steps(run.records);
    assertEquals(s.length, 4);
    assert(s.every((r) => r.lossDense === undefined));
    const first = s[0].loss, last = s.at(-1)!.loss;
    assert(last < first - 0.1, `loss ${first} -> ${last} did not fall`);
    const [ev] = evals(run.records);
    // 4 classes: chance is 25 %; 256 images put 35 % 3.6 standard errors above it.
    assert(ev.top1 > 35, `top-1 ${ev.top1}% does not beat chance (25%)`);
    assertEquals(ev.images, 256);
    assertEquals(run.result.model, ev);
    assertEquals(run.status, "done");
  } finally {
    run.dispose();
  }
});

Deno.test("token labels with MixToken, EMA and clipping: dense loss logged, no tensor leak across steps", async () => {
  await initBackend({ backend: "wasm" });
  const dir = await fresh("tl");
  const data = new SyntheticScenes({ size: 16, count: 64, numClasses: 4 });
  await oracleAnnotate(data, `${dir}/maps`, { mapSize: 4, k: 3 });
  const counts: number[] = [];
  const run = await train({
    ...TINY,
    data: "synthetic:size=16,count=64,classes=4",
    valLimit: 32,
    tokenLabel: true,
    tokenLabelData: `${dir}/maps`,
    batchSize: 16,
    epochs: 2,
    warmupEpochs: 1,
    cooldownEpochs: 0,
    logEvery: 1,
    modelEma: true,
    modelEmaDecay: 0.9,
    clipGrad: 1.0,
    backend: "wasm",
  }, {
    live: false,
    onProgress: (s) => {
      if (s.status === "running") counts.push(tf.memory().numTensors);
    },
  });
  try {
    assertEquals(run.config.mixToken, true);
    const s = steps(run.records);
    assertEquals(s.length, 8);
    assert(
      s.every((r) => r.lossDense !== undefined && r.lossCls !== undefined),
    );
    assert(s.every((r) => r.gradNorm !== undefined && r.gradNorm > 0));
    for (const r of s) {
      // loss = 1.0 cls + 1.0 dense
      assert(Math.abs(r.loss - (r.lossCls! + r.lossDense!)) < 1e-4);
    }
    assertEquals(evals(run.records).map((e) => e.which), [
      "model",
      "ema",
      "model",
      "ema",
    ]);
    // The same tensors live after every step: nothing leaks.
    assert(counts.length >= 8);
    assertEquals(new Set(counts.slice(1)).size, 1, `tensor counts ${counts}`);
  } finally {
    run.dispose();
  }
  // ReLabel (S = 1) with the same maps trains a ViT without a token head.
  const relabel = await train({
    model: "vit_xs32",
    modelOverrides: { embedDim: 32, depth: 2, numHeads: 2 },
    imgSize: 16,
    data: "synthetic:size=16,count=64,classes=4",
    valData: false,
    tokenLabel: true,
    tokenLabelData: `${dir}/maps`,
    tokenLabelSize: 1,
    batchSize: 16,
    epochs: 1,
    warmupEpochs: 0,
    cooldownEpochs: 0,
    logEvery: 1,
    backend: "wasm",
  }, { live: false });
  try {
    const s = steps(relabel.records);
    assertEquals(s.length, 4);
    assert(
      s.every((r) => r.lossDense === undefined && Number.isFinite(r.loss)),
    );
  } finally {
    relabel.dispose();
  }
});

Deno.test("TL-Align and image-level CutMix runs train the class token", async () => {
  await initBackend({ backend: "wasm" });
  for (const extra of [{ tlAlign: true }, { cutmix: 1.0, mixup: 0.8 }]) {
    const run = await train({
      ...TINY,
      data: "synthetic:size=16,count=32,classes=4",
      valData: false,
      batchSize: 16,
      epochs: 1,
      warmupEpochs: 0,
      cooldownEpochs: 0,
      logEvery: 1,
      backend: "wasm",
      ...extra,
    }, { live: false });
    try {
      const s = steps(run.records);
      assertEquals(s.length, 2);
      assert(s.every((r) => Number.isFinite(r.loss)));
      assertEquals(evals(run.records).length, 0);
      assertEquals(run.model.config.auxHead, false);
    } finally {
      run.dispose();
    }
  }
});

Deno.test("NaN guard: a diverging run stops with a clear message and keeps the last good checkpoint", async () => {
  await initBackend({ backend: "wasm" });
  const dir = await fresh("nan");
  const err = await assertRejects(
    () =>
      train({
        ...TINY,
        data: "synthetic:size=16,count=64,classes=4",
        valData: false,
        batchSize: 16,
        epochs: 1,
        warmupEpochs: 0,
        cooldownEpochs: 0,
        lr: 1e30,
        checkpointEvery: 1,
        logEvery: 1,
        output: dir,
        backend: "wasm",
      }, { live: false }),
    TrainingError,
  );
  assertStringIncludes(err.message, "the training loss is");
  assertStringIncludes(err.message, "the step was not applied");
  assertStringIncludes(err.message, "`lr`");
  assert(err instanceof NonFiniteLossError, String(err));
  const m = err.message.match(/checkpoints\/(step-\d+)/);
  assert(m !== null, err.message);
  const names = [];
  for await (const e of Deno.readDir(`${dir}/checkpoints`)) names.push(e.name);
  assert(names.includes(m[1]), `${names} lacks ${m[1]}`);
  // No final weights were written for a failed run.
  await assertRejects(() => Deno.stat(`${dir}/model.safetensors`));
});

Deno.test("an output folder holding another run is refused unless --resume or --overwrite", async () => {
  await initBackend({ backend: "wasm" });
  const dir = await fresh("refuse");
  const base: Partial<TrainConfig> & { data: string } = {
    ...TINY,
    data: "synthetic:size=16,count=16,classes=4",
    valData: false,
    batchSize: 16,
    epochs: 1,
    warmupEpochs: 0,
    cooldownEpochs: 0,
    output: dir,
    backend: "wasm",
  };
  (await train(base, { live: false })).dispose();
  const e1 = await assertRejects(
    () => train(base, { live: false }),
    RunFolderError,
  );
  assertStringIncludes(e1.message, "already holds a run");
  // The library speaks of config fields; the CLI names their flags.
  assertStringIncludes(e1.message, "`resume`");
  assertEquals([...e1.fields].sort(), ["output", "overwrite", "resume"]);
  const e2 = await assertRejects(
    () => train({ ...base, lr: 1e-3, resume: true }, { live: false }),
    RunFolderError,
  );
  assertStringIncludes(e2.message, "lr:");
  // A folder with files of its own that are not ours is fine; one with our names is not.
  const other = await fresh("refuse-other");
  await Deno.writeTextFile(`${other}/log.jsonl`, "mine\n");
  const e3 = await assertRejects(
    () => train({ ...base, output: other }, { live: false }),
    RunFolderError,
  );
  assertStringIncludes(e3.message, "log.jsonl");
  assertEquals(await Deno.readTextFile(`${other}/log.jsonl`), "mine\n");
  // The finished run's weights start another run (official --initial-checkpoint).
  const tuned = await train(
    { ...base, output: null, initialCheckpoint: `${dir}/model.safetensors` },
    { live: false },
  );
  assertEquals(tuned.status, "done");
  tuned.dispose();
  const again = await train({ ...base, overwrite: true }, { live: false });
  assertEquals(again.status, "done");
  again.dispose();
});

async function readBytes(path: string): Promise<Uint8Array> {
  return await Deno.readFile(path);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

Deno.test({
  name:
    "SIGKILL mid-run, then --resume: the same weights, EMA and optimizer state as an uninterrupted run (cpu)",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const a = await fresh("whole"), b = await fresh("killed");
    const flags = (out: string) => [
      "train",
      ...TINY_FLAGS,
      "--data",
      "synthetic:size=16,count=64,classes=4",
      "--val-limit",
      "16",
      "--batch-size",
      "16",
      // Every epoch that runs: 2 of warmup and cosine, then 1 of cooldown.
      "--epochs",
      "3",
      "--warmup-epochs",
      "1",
      "--cooldown-epochs",
      "1",
      "--mix-token",
      "--model-ema",
      "--model-ema-decay",
      "0.9",
      "--log-interval",
      "1",
      "--recovery-interval",
      "3",
      "--backend",
      "cpu",
      "--output",
      out,
    ];
    const whole = await runCli(flags(a));
    assertEquals(whole.code, 0, whole.stderr);

    // Start the same run and kill it (SIGKILL: no chance to clean up) once
    // it has written its step-6 checkpoint, in the second epoch.
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "lib/cli/main.ts", ...flags(b)],
      cwd: ROOT,
      env: { NO_COLOR: "1" },
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const deadline = Date.now() + 120_000;
    let killedAt = "";
    while (Date.now() < deadline) {
      const names: string[] = [];
      try {
        for await (const e of Deno.readDir(`${b}/checkpoints`)) {
          names.push(e.name);
        }
      } catch { /* not yet */ }
      const done = names.filter((n) => /^step-\d+$/.test(n)).sort();
      if (done.some((n) => Number(n.slice(5)) >= 6)) {
        child.kill("SIGKILL");
        killedAt = done.at(-1)!;
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    const status = await child.status;
    assert(killedAt !== "", "the child never wrote its step-6 checkpoint");
    assertEquals(
      status.signal,
      "SIGKILL",
      "the child finished before it was killed",
    );
    await assertRejects(() => Deno.stat(`${b}/model.safetensors`));

    const resumed = await runCli([...flags(b), "--resume"]);
    assertEquals(resumed.code, 0, resumed.stderr);
    for (const f of ["model.safetensors", "ema.safetensors"]) {
      assert(
        sameBytes(await readBytes(`${a}/${f}`), await readBytes(`${b}/${f}`)),
        `${f} differs between the uninterrupted and the resumed run`,
      );
    }
    const last = "checkpoints/step-00000012";
    assert(
      sameBytes(
        await readBytes(`${a}/${last}/optimizer.safetensors`),
        await readBytes(`${b}/${last}/optimizer.safetensors`),
      ),
      "optimizer moments differ",
    );
    // The logs agree on everything but timing.
    const strip = async (out: string) =>
      (await readLog(out)).map((r) => {
        const copy: Record<string, unknown> = { ...r };
        delete copy.elapsed;
        delete copy.imagesPerSecond;
        return JSON.stringify(copy);
      });
    assertEquals(await strip(b), await strip(a));

    // tokenlab eval on the run folder reproduces the run's own final evaluation.
    const ev = await runCli([
      "eval",
      "--checkpoint",
      b,
      "--data",
      "synthetic:size=16,count=64,classes=4",
      "--limit",
      "16",
      "--backend",
      "cpu",
      "--json",
    ]);
    assertEquals(ev.code, 0, ev.stderr);
    const got = JSON.parse(ev.stdout) as { weights: string; top1: number }[];
    const result = JSON.parse(await Deno.readTextFile(`${b}/result.json`));
    assertEquals(got.map((g) => g.weights), ["model", "ema"]);
    assertEquals(got[0].top1, result.model.top1);
    assertEquals(got[1].top1, result.ema.top1);
  },
});
