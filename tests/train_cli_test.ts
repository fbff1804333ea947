/**
 * `tokenlab train` as a process: unreadable images (stop once, or skip and
 * count), Ctrl-C (what ran, where the checkpoint is, the command that
 * resumes), the recipes and the plan printed before training, refinement
 * of the class target, and extending a run with --resume --extend.
 */

import { assert, assertEquals, assertStringIncludes } from "./_assert.ts";
import { ROOT, runCli } from "./_helpers.ts";

const TMP = `${ROOT}tests/.tmp-train-cli`;

/** A model small enough for the cpu backend: 16 px, 4 x 4 tokens, D 32, 2 blocks. */
const TINY_FLAGS = [
  "--model",
  "lvvit_xs32",
  "--model-config",
  '{"embedDim":32,"depth":2,"numHeads":2,"stemChannels":8}',
  "--img-size",
  "16",
  "--backend",
  "cpu",
];

async function fresh(name: string): Promise<string> {
  const dir = `${TMP}/${name}`;
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  await Deno.mkdir(dir, { recursive: true });
  return dir;
}

function count(text: string, part: string): number {
  return text.split(part).length - 1;
}

/** An image folder of two classes, 4 training images each, one of them not an image. */
async function folderWithCorruptPng(root: string): Promise<string> {
  const fx = `${ROOT}tests/fixtures/image_folder`;
  for (const c of ["cat", "dog"]) {
    await Deno.mkdir(`${root}/train/${c}`, { recursive: true });
    await Deno.mkdir(`${root}/val/${c}`, { recursive: true });
  }
  for (let i = 0; i < 4; i++) {
    await Deno.copyFile(`${fx}/train/cat/a.png`, `${root}/train/cat/a${i}.png`);
    await Deno.copyFile(`${fx}/train/dog/c.PNG`, `${root}/train/dog/c${i}.png`);
  }
  await Deno.copyFile(`${fx}/val/cat/d.png`, `${root}/val/cat/d.png`);
  await Deno.copyFile(`${fx}/val/dog/e.JPEG`, `${root}/val/dog/e.jpg`);
  await Deno.writeTextFile(`${root}/train/cat/a2.png`, "this is not a png");
  return root;
}

Deno.test("train: a corrupt PNG stops the run with one message naming --skip-unreadable; with it the run skips and counts", async () => {
  const data = await folderWithCorruptPng(await fresh("corrupt"));
  const flags = [
    "train",
    ...TINY_FLAGS,
    "--data",
    data,
    "--batch-size",
    "4",
    "--epochs",
    "2",
    "--warmup-epochs",
    "0",
    "--cooldown-epochs",
    "0",
  ];
  const stop = await runCli(flags);
  assertEquals(stop.code, 1, stop.stderr);
  assertEquals(count(stop.stderr, "a2.png: expected a JPEG or PNG image"), 1);
  assertStringIncludes(stop.stderr, "run again with --skip-unreadable");
  const skip = await runCli([...flags, "--skip-unreadable", "--json"]);
  assertEquals(skip.code, 0, skip.stderr);
  assertStringIncludes(
    skip.stderr,
    "skipped 1 unreadable training image (left out of training 2 times, once per epoch; of evaluation 0 times)",
  );
  const result = JSON.parse(skip.stdout);
  assertEquals(result.skipped.train, 2);
  assert(result.skipped.files[0].endsWith("a2.png"), result.skipped.files[0]);
});

Deno.test("train --refine: the variants of --help run end to end and change the class target; others are refused", async () => {
  const { SyntheticScenes } = await import("../lib/data/synthetic_scenes.ts");
  const { oracleAnnotate } = await import("../lib/annotators/oracle.ts");
  const dir = await fresh("refine");
  await oracleAnnotate(
    new SyntheticScenes({ size: 16, count: 32, numClasses: 4 }),
    `${dir}/maps`,
    { mapSize: 4, k: 3 },
  );
  const flags = (out: string, ...more: string[]) => [
    "train",
    ...TINY_FLAGS,
    "--data",
    "synthetic:size=16,count=32,classes=4",
    "--no-eval",
    "--token-label",
    "--token-label-data",
    `${dir}/maps`,
    "--batch-size",
    "16",
    "--epochs",
    "1",
    "--warmup-epochs",
    "0",
    "--cooldown-epochs",
    "0",
    "--log-interval",
    "1",
    "--output",
    `${dir}/${out}`,
    ...more,
  ];
  const firstLossCls = async (out: string) => {
    const text = await Deno.readTextFile(`${dir}/${out}/log.jsonl`);
    const step = text.trim().split("\n").map((l) => JSON.parse(l)).find((r) =>
      r.kind === "step"
    );
    return step.lossCls as number;
  };
  const losses: Record<string, number> = {};
  for (const rule of ["none", "official", "intended"]) {
    const r = await runCli(flags(rule, "--refine", rule));
    assertEquals(r.code, 0, r.stderr);
    const run = JSON.parse(await Deno.readTextFile(`${dir}/${rule}/run.json`));
    assertEquals(run.config.refine, rule);
    losses[rule] = await firstLossCls(rule);
  }
  // The same first batch: a refined target gives another class loss.
  assert(losses.official !== losses.none, JSON.stringify(losses));
  assert(losses.intended !== losses.none, JSON.stringify(losses));
  const bad = await runCli(flags("bad", "--refine", "volo"));
  assertEquals(bad.code, 2, bad.stderr);
  assertStringIncludes(
    bad.stderr,
    '--refine needs one of none, official, intended, found "volo"',
  );
  const plain = await runCli([
    "train",
    "--data",
    "synthetic",
    "--refine",
    "official",
  ]);
  assertEquals(plain.code, 2, plain.stderr);
  assertStringIncludes(plain.stderr, "--refine official refines");
  assertStringIncludes(plain.stderr, "add --token-label");
});

Deno.test({
  name:
    "train: Ctrl-C (SIGINT) says how many steps ran, where the checkpoint is, that no weights were written, and the command that resumes",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await fresh("sigint");
    const out = `${dir}/run`;
    const args = [
      ...TINY_FLAGS,
      "--data",
      "synthetic:size=16,count=512,classes=4",
      "--no-eval",
      "--batch-size",
      "4",
      "--epochs",
      "1",
      "--warmup-epochs",
      "0",
      "--cooldown-epochs",
      "0",
      // Records every 50 steps: the steps that ran are more than the logged.
      "--log-interval",
      "50",
      "--recovery-interval",
      "3",
      "--output",
      out,
    ];
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "lib/cli/main.ts", "train", ...args],
      cwd: ROOT,
      env: { NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const output = child.output();
    const deadline = Date.now() + 120_000;
    let sent = false;
    while (Date.now() < deadline) {
      let names: string[] = [];
      try {
        names = [...Deno.readDirSync(`${out}/checkpoints`)].map((e) => e.name)
          .filter((n) => /^step-\d+$/.test(n));
      } catch { /* not yet */ }
      if (names.length > 0) {
        child.kill("SIGINT");
        sent = true;
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    assert(sent, "the child never wrote its first checkpoint");
    const r = await output;
    const stderr = new TextDecoder().decode(r.stderr);
    assertEquals(r.code, 130, stderr);
    const m = /interrupted after (\d+) of 128 steps; last checkpoint: (\S+)/
      .exec(stderr);
    assert(m !== null, stderr);
    const steps = Number(m[1]);
    assert(steps >= 3, stderr);
    // The checkpoint named is the one written at the step the run stopped.
    assertEquals(
      m[2],
      `${out}/checkpoints/step-${String(steps).padStart(8, "0")}`,
    );
    assert((await Deno.stat(`${m[2]}/state.json`)).isFile);
    assertStringIncludes(stderr, "no final weights were written");
    assert(!stderr.includes("weights: "), stderr);
    assert(!stderr.includes("after 0 steps"), stderr);
    const resume = /to continue: (.*)$/m.exec(stderr);
    assert(resume !== null, stderr);
    const line = resume[1];
    assert(
      line.endsWith(
        `main.ts train ${
          args.map((a) => a.includes("{") ? `'${a}'` : a).join(" ")
        } --resume`,
      ),
      line,
    );
    await assertNoFile(`${out}/model.safetensors`);
    // The printed command continues the run to its end.
    const again = await runCli(["train", ...args, "--resume"]);
    assertEquals(again.code, 0, again.stderr);
    assert((await Deno.stat(`${out}/model.safetensors`)).isFile);
  },
});

async function assertNoFile(path: string) {
  try {
    await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return;
    throw e;
  }
  throw new Error(`${path} exists`);
}

Deno.test("train --recipe short on MNIST: the plan (a stratified limit, epochs in all, warmup in steps) is printed before training, and a flip on digits warns", async () => {
  const flags = [
    "train",
    ...TINY_FLAGS,
    "--data",
    "mnist:size=16",
    "--recipe",
    "short",
    "--epochs",
    "2",
    "--train-limit",
    "128",
    "--val-limit",
    "64",
  ];
  const r = await runCli(flags);
  assertEquals(r.code, 0, r.stderr);
  for (
    const part of [
      "plan: recipe short",
      "data: 128 of 8000 (a seeded sample over 10 classes) training images, 10 classes; 64 validation images",
      "epochs: 2 in all (2 warmup and cosine + 0 cooldown), 2 steps per epoch at batch 64, 4 steps in all",
      "warmup: 1 steps",
      "warning: the training images look grayscale",
      "use --hflip 0",
      "epoch 2/2 model top-1",
    ]
  ) assertStringIncludes(r.stderr, part);
  assert(!r.stderr.includes("epoch 3/"), r.stderr);
  // The plan comes before the first step.
  assert(r.stderr.indexOf("plan:") < r.stderr.indexOf("step 1/"), r.stderr);
  const alone = await runCli(["train", "--data", "mnist", "--epochs", "1"]);
  assertEquals(alone.code, 2, alone.stderr);
  assertStringIncludes(alone.stderr, "--epochs 1 counts every epoch that runs");
  assertStringIncludes(alone.stderr, "--recipe short");
});

Deno.test("train --resume --extend: a finished run continues under a longer schedule, run.json records it, a later --resume agrees; a shorter total than has run is refused", async () => {
  const { learningRate } = await import("../lib/train/schedule.ts");
  const dir = await fresh("extend");
  const out = `${dir}/run`;
  const flags = (epochs: number, ...more: string[]) => [
    "train",
    ...TINY_FLAGS,
    "--data",
    "synthetic:size=16,count=32,classes=4",
    "--val-limit",
    "16",
    "--batch-size",
    "16",
    "--epochs",
    String(epochs),
    "--warmup-epochs",
    "0",
    "--cooldown-epochs",
    "0",
    "--log-interval",
    "1",
    "--output",
    out,
    ...more,
  ];
  const first = await runCli(flags(2));
  assertEquals(first.code, 0, first.stderr);
  const longer = await runCli(flags(4, "--resume"));
  assertEquals(longer.code, 2, longer.stderr);
  assertStringIncludes(
    longer.stderr,
    `--epochs 4 differs from the 2 epochs in all the run in ${out} was started with; to continue it under the new length add --extend`,
  );
  const shorter = await runCli(flags(1, "--resume", "--extend"));
  assertEquals(shorter.code, 2, shorter.stderr);
  assertStringIncludes(shorter.stderr, "has already run 2 epochs");
  assertStringIncludes(shorter.stderr, "give --epochs 2 or more");
  const extended = await runCli(flags(4, "--resume", "--extend"));
  assertEquals(extended.code, 0, extended.stderr);
  assertStringIncludes(
    extended.stderr,
    "extend: the run goes from 2 to 4 epochs in all (2 -> 4 warmup and cosine, 0 cooldown), 4 -> 8 steps; it continues from step 4",
  );
  assertStringIncludes(
    extended.stderr,
    "lr of the next step: none (past its end) under the old schedule",
  );
  const run = JSON.parse(await Deno.readTextFile(`${out}/run.json`));
  assertEquals(run.config.epochs, 4);
  assertEquals(
    run.extensions.map((x: Record<string, number>) => [x.step, x.from, x.to]),
    [[4, 2, 4]],
  );
  const log = (await Deno.readTextFile(`${out}/log.jsonl`)).trim().split("\n")
    .map((l) => JSON.parse(l));
  const steps = log.filter((r) => r.kind === "step");
  assertEquals(steps.map((r) => r.step), [1, 2, 3, 4, 5, 6, 7, 8]);
  const lr = 1.6e-3 * 16 / 1024;
  const sched = (epochs: number) => ({
    lr,
    warmupLr: 1e-6,
    minLr: 1e-5,
    epochs,
    warmupEpochs: 0,
    cooldownEpochs: 0,
    update: "epoch" as const,
  });
  // The steps that ran keep the old schedule's lr; the new ones follow the new.
  assertEquals(steps[2].lr, learningRate(sched(2), 1, 0, 2));
  assertEquals(steps[4].lr, learningRate(sched(4), 2, 0, 2));
  assertEquals(steps[7].lr, learningRate(sched(4), 3, 1, 2));
  // A later --resume with the new --epochs agrees with run.json (the
  // checkpoints hold steps of both schedules); the old --epochs does not.
  const again = await runCli(flags(4, "--resume"));
  assertEquals(again.code, 0, again.stderr);
  const old = await runCli(flags(2, "--resume"));
  assertEquals(old.code, 2, old.stderr);
  assertStringIncludes(old.stderr, "add --extend");
});
