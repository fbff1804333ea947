/**
 * The regimes of training: each regime's targets against numbers computed
 * here from the formulas (smoothed one-hot, pooled token labels under both
 * smoothing rules, the ground-truth refinement both ways, CutMix's blend,
 * TL-Align's box both ways, MixToken's box-aware loss); the three switches
 * of the ablations in the config and on the command line; and short
 * training runs with each switch on, finite and without tensor leaks.
 */

import {
  assert,
  assertEquals,
  assertStringIncludes,
  assertThrows,
} from "./_assert.ts";
import { ROOT } from "./_helpers.ts";
import { tf } from "../lib/tf.ts";
import { initBackend } from "../lib/backend.ts";
import { Rng } from "../lib/random.ts";
import { SyntheticScenes } from "../lib/data/synthetic_scenes.ts";
import { oracleAnnotate } from "../lib/annotators/oracle.ts";
import type { ScoreMap } from "../lib/labels/score_map.ts";
import {
  LossInputError,
  refineClassTarget,
} from "../lib/losses/cross_entropy.ts";
import { MixToken } from "../lib/mixing/mixtoken.ts";
import {
  DEFAULT_TRAIN_CONFIG,
  type ResolvedTrainConfig,
  type TrainConfig,
  TrainConfigError,
} from "../lib/train/config.ts";
import { configDifferences } from "../lib/train/config_differences.ts";
import { resolveTrainConfig } from "../lib/train/resolve_config.ts";
import { train, TrainingError } from "../lib/train/engine.ts";
import type { StepRecord } from "../lib/train/log.ts";
import {
  imageMixRegime,
  mixTokenRegime,
  plainRegime,
  prepareTargets,
  type RegimeBatch,
  regimeFor,
  regimeName,
  tlAlignRegime,
} from "../lib/train/regimes/mod.ts";
import { trainCommand, trainConfigFromArgs } from "../lib/cli/train.ts";
import { assertClose, assertNoLeaks, backendTest } from "tokenlab/testing";

const TMP = `${ROOT}tests/.tmp-train-regimes`;
const EPS = 0.1;

async function fresh(name: string): Promise<string> {
  const dir = `${TMP}/${name}`;
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  await Deno.mkdir(dir, { recursive: true });
  return dir;
}

/** A resolved config for the tiny 32 px model (8 x 8 patches of 4 px). */
function config(extra: Partial<TrainConfig> = {}): ResolvedTrainConfig {
  return resolveTrainConfig({
    model: "lvvit_xs32",
    modelOverrides: { embedDim: 32, depth: 1, numHeads: 1, stemChannels: 8 },
    data: "synthetic",
    smoothing: EPS,
    ...extra,
  });
}

/** timm's smoothed one-hot row, in float64. */
function oneHot(label: number, C: number, eps = EPS): number[] {
  return Array.from(
    { length: C },
    (_, c) => c === label ? 1 - eps + eps / C : eps / C,
  );
}

/**
 * A batch of B images, image b filled with the value b, labels as given;
 * with `mapClasses`, image b's score map holds class mapClasses[b] with
 * score `score` in every cell (k 1, 2 x 2), its crop the whole image.
 */
function makeBatch(
  labels: number[],
  options: { side?: number; mapClasses?: number[]; score?: number } = {},
): RegimeBatch {
  const side = options.side ?? 32, B = labels.length;
  const images = new Float32Array(B * side * side * 3);
  for (let b = 0; b < B; b++) {
    images.fill(b, b * side * side * 3, (b + 1) * side * side * 3);
  }
  const batch: {
    -readonly [K in keyof RegimeBatch]: RegimeBatch[K];
  } = {
    size: B,
    height: side,
    width: side,
    images,
    labels: new Int32Array(labels),
    keys: labels.map((_, b) => `img${b}`),
  };
  if (options.mapClasses !== undefined) {
    batch.maps = options.mapClasses.map((c): ScoreMap => ({
      k: 1,
      height: 2,
      width: 2,
      scores: new Float32Array(4).fill(options.score ?? 2),
      ids: new Int32Array(4).fill(c),
    }));
    batch.boxes = new Float32Array(B * 4);
    for (let b = 0; b < B; b++) batch.boxes.set([0, 0, 1, 1], b * 4);
  }
  return batch;
}

/**
 * The pooled label of a map holding class `c` with score s everywhere:
 * softmax gives p = e^s / (e^s + C - 1) to c and 1 / (e^s + C - 1) to the
 * others, then the smoothing rule.
 */
function pooledRow(
  c: number,
  C: number,
  s: number,
  rule: "normalized" | "official",
): number[] {
  const z = Math.exp(s) + C - 1;
  const on = rule === "official" ? 1 - EPS + EPS / C : 1 - EPS;
  return Array.from(
    { length: C },
    (_, k) => (k === c ? Math.exp(s) / z : 1 / z) * on + EPS / C,
  );
}

/** ratio * annotator + (1 - ratio) * truth, ratio by agreement and rule. */
function refined(
  annotator: number[],
  truth: number[],
  rule: "official" | "intended",
): number[] {
  const argmax = (v: number[]) => v.indexOf(Math.max(...v));
  const agree = argmax(annotator) === argmax(truth);
  const ratio = agree ? 0.5 : rule === "official" ? 0.9 : 0.1;
  return annotator.map((a, k) => ratio * a + (1 - ratio) * truth[k]);
}

// --- the losses' refinement ------------------------------------------------

await backendTest(
  "refineClassTarget: official weights the annotator 0.5 / 0.9, intended 0.5 / 0.1 (agree / disagree)",
  async () => {
    // Row 0: annotator argmax 0 = truth 0 (agrees); row 1: 0 vs 1 (disagrees).
    const a = tf.tensor2d([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1]]);
    const t = tf.tensor2d([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05]]);
    const official = refineClassTarget(a, t);
    const explicit = refineClassTarget(a, t, { rule: "official" });
    const intended = refineClassTarget(a, t, { rule: "intended" });
    // By hand: 0.5 a + 0.5 t; 0.9 a + 0.1 t; 0.1 a + 0.9 t.
    const agree = [0.8, 0.125, 0.075];
    await assertClose(official, [...agree, 0.545, 0.36, 0.095], {
      what: "official",
    });
    await assertClose(explicit, official, { what: "explicit official" });
    await assertClose(intended, [...agree, 0.105, 0.84, 0.055], {
      what: "intended",
    });
    const e = assertThrows(
      () => refineClassTarget(a, t, { rule: "volo" as never }),
      LossInputError,
    );
    assertStringIncludes(e.message, '"intended"');
    assertStringIncludes(e.message, '"volo"');
    tf.dispose([a, t, official, explicit, intended]);
  },
);

// --- targets -----------------------------------------------------------------

await backendTest(
  "targets: smoothed one-hot without token labels; pooled labels under both smoothing rules; refinement both ways",
  async () => {
    const C = 4, s = 2;
    // Without token labels: smoothed one-hot; a token head takes it at every token.
    const plain = await prepareTargets(makeBatch([1, 3]), config(), {
      numClasses: C,
    });
    await assertClose(plain.cls, [...oneHot(1, C), ...oneHot(3, C)], {
      what: "one-hot",
    });
    assertEquals(plain.tokens, null);
    plain.dispose();
    const head = await prepareTargets(
      makeBatch([1, 3]),
      config({ auxHead: true }),
      { numClasses: C },
    );
    assert(head.tokens === head.cls, "a token head takes the class target");
    head.dispose();

    // Token labels: map classes [1, 2], ground truth [1, 0] (image 0 agrees,
    // image 1 does not).
    const labels = [1, 0], maps = [1, 2];
    const tl = (extra: Partial<TrainConfig>) =>
      config({ tokenLabel: true, tokenLabelData: "unused", ...extra });
    for (const rule of ["normalized", "official"] as const) {
      const t = await prepareTargets(
        makeBatch(labels, { mapClasses: maps, score: s }),
        tl({ tokenLabelSmoothing: rule }),
        { numClasses: C },
      );
      const want = maps.map((c) => pooledRow(c, C, s, rule));
      await assertClose(t.cls, want.flat(), { what: `${rule} class` });
      // Every token of a uniform map pools to the same label.
      assertEquals(t.tokens!.shape, [2, 64, C]);
      await assertClose(
        t.tokens!,
        want.flatMap((row) => Array(64).fill(row).flat()),
        { what: `${rule} tokens` },
      );
      const sum = tf.sum(t.cls, 1);
      const total = rule === "official" ? 1 + EPS / C : 1;
      await assertClose(sum, [total, total], { what: `${rule} sums` });
      tf.dispose([sum]);
      t.dispose();
    }
    for (const rule of ["official", "intended"] as const) {
      const t = await prepareTargets(
        makeBatch(labels, { mapClasses: maps, score: s }),
        tl({ refine: rule }),
        { numClasses: C },
      );
      const want = maps.map((c, b) =>
        refined(pooledRow(c, C, s, "normalized"), oneHot(labels[b], C), rule)
      );
      await assertClose(t.cls, want.flat(), { what: `refine ${rule}` });
      // The token targets stay the annotator's.
      const token = tf.slice(t.tokens!, [1, 0, 0], [1, 1, C]);
      await assertClose(token, pooledRow(2, C, s, "normalized"), {
        what: "unrefined tokens",
      });
      tf.dispose([token]);
      t.dispose();
    }
    // ReLabel (S = 1) with refinement: the refined label is the class target.
    const relabel = await prepareTargets(
      makeBatch(labels, { mapClasses: maps, score: s }),
      tl({ tokenLabelSize: 1, refine: "intended" }),
      { numClasses: C },
    );
    await assertClose(
      relabel.cls,
      maps.map((c, b) =>
        refined(
          pooledRow(c, C, s, "normalized"),
          oneHot(labels[b], C),
          "intended",
        )
      ).flat(),
      { what: "ReLabel refined" },
    );
    assertEquals(relabel.tokens, null);
    relabel.dispose();
    // Bad batches are refused, and nothing is left behind.
    await assertNoLeaks(async () => {
      const e = await prepareTargets(makeBatch([1, -1]), config(), {
        numClasses: C,
      }).catch((e) => e);
      assert(e instanceof TrainingError);
      assertStringIncludes(e.message, "img1");
      const f = await prepareTargets(makeBatch([1, 0]), tl({}), {
        numClasses: C,
      }).catch((e) => e);
      assert(f instanceof TrainingError);
      assertStringIncludes(f.message, "score maps");
    }, "refused batches");
  },
);

// --- regimes -----------------------------------------------------------------

await backendTest(
  "regimes: regimeFor picks by the config; plain and MixToken keep the batch; MixToken's loss blends the class target by the box",
  async () => {
    const C = 3;
    assertEquals(regimeName(config()), "plain");
    assertEquals(regimeName(config({ mixToken: true })), "mixtoken");
    assertEquals(regimeName(config({ cutmix: 1 })), "image_mix");
    assertEquals(regimeName(config({ mixup: 0.8 })), "image_mix");
    assertEquals(regimeName(config({ tlAlign: true })), "tl_align");
    assertEquals(
      regimeName(config({ tokenLabel: true, tokenLabelData: "m" })),
      "mixtoken",
    );
    const r = regimeFor(config({ tlAlign: true }), { numClasses: C });
    assertEquals(r.name, "tl_align");
    r.dispose();

    await assertNoLeaks(async () => {
      const plain = plainRegime(config(), { numClasses: C });
      const step = await plain.prepare(makeBatch([0, 2]), new Rng(0));
      assertEquals(step.images.shape, [2, 32, 32, 3]);
      const max = step.images.max();
      assertEquals(await max.data(), new Float32Array([1]));
      max.dispose();
      await assertClose(step.classTargets, [
        ...oneHot(0, C),
        ...oneHot(2, C),
      ]);
      assertEquals(step.mixing, null);
      assertEquals(step.forward, {});
      step.dispose();
      plain.dispose();
    }, "plain regime");

    await assertNoLeaks(async () => {
      const c = config({ mixToken: true, mixTokenBox: "described" });
      const regime = mixTokenRegime(c, { numClasses: C });
      const step = await regime.prepare(makeBatch([0, 2]), new Rng(0));
      const mixer = step.forward.mixer as MixToken;
      assert(mixer instanceof MixToken);
      assertEquals(mixer.boxMode, "described");
      assert(step.tokenTargets === step.classTargets);
      // A forward's output with a box of 2 of the 8 x 8 tokens: lambda' =
      // 1 - 2 / 64, the class target y lambda' + y.reverse (1 - lambda').
      const logits = [[0.5, -1, 2], [1, 0, -0.5]];
      const out = {
        cls: tf.tensor2d(logits),
        aux: tf.zeros([2, 64, C]) as tf.Tensor3D,
        box: { top: 0, left: 0, bottom: 1, right: 2 },
      };
      const parts = step.loss(out);
      const lam = 1 - 2 / 64;
      const ys = [oneHot(0, C), oneHot(2, C)];
      const ce = (x: number[], t: number[]) => {
        const lse = Math.log(x.reduce((a, v) => a + Math.exp(v), 0));
        return -t.reduce((a, tc, k) => a + tc * (x[k] - lse), 0);
      };
      const want = (ce(
        logits[0],
        ys[0].map((v, k) => lam * v + (1 - lam) * ys[1][k]),
      ) + ce(logits[1], ys[1].map((v, k) => lam * v + (1 - lam) * ys[0][k]))) /
        2;
      await assertClose(parts.cls!, want, { what: "box-aware class loss" });
      // Zero token logits: every token's cross-entropy is log C.
      await assertClose(parts.dense!, Math.log(C), { what: "dense" });
      await assertClose(parts.loss, want + Math.log(C), { what: "loss" });
      tf.dispose([out.cls, out.aux, parts.loss, parts.cls!, parts.dense!]);
      step.dispose();
      regime.dispose();
    }, "MixToken regime");
  },
);

await backendTest(
  "regimes: image-level CutMix swaps the box and blends the targets by the area-corrected lambda",
  async () => {
    const C = 4;
    await assertNoLeaks(async () => {
      const c = config({ cutmix: 1, auxHead: true });
      const regime = imageMixRegime(c, { numClasses: C });
      const step = await regime.prepare(makeBatch([1, 3]), new Rng(5));
      const m = step.mixing!;
      assertEquals(m.mode, "cutmix");
      const box = m.box!;
      const area = (box.bottom - box.top) * (box.right - box.left);
      assert(area > 0 && area < 32 * 32, `box ${JSON.stringify(box)}`);
      await assertClose(m.lambda, 1 - area / (32 * 32), { what: "lambda" });
      const lam = m.lambda, y = [oneHot(1, C), oneHot(3, C)];
      await assertClose(step.classTargets, [
        ...y[0].map((v, k) => lam * v + (1 - lam) * y[1][k]),
        ...y[1].map((v, k) => lam * v + (1 - lam) * y[0][k]),
      ], { what: "mixed class targets" });
      // Image-level token targets follow the mixed class targets.
      assert(step.tokenTargets === step.classTargets);
      // Image 0 (all 0) holds image 1's pixels (all 1) inside the box alone.
      const sum = tf.tidy(() =>
        tf.sum(tf.slice(step.images, [0, 0, 0, 0], [1, 32, 32, 1]))
      );
      assertEquals((await sum.data())[0], area);
      sum.dispose();
      step.dispose();
      regime.dispose();
    }, "image-mix regime");
  },
);

/** TL-Align's box on an h x h grid, drawn as the formula says. */
function tlAlignBox(
  seed: number,
  h: number,
  mode: "described" | "official",
): { top: number; left: number; bottom: number; right: number } {
  const rng = new Rng(seed);
  let lam = 1;
  while (lam === 1) lam = rng.beta(1, 1);
  const cut = Math.floor(h * Math.sqrt(1 - lam));
  const cy = rng.int(h), cx = rng.int(h);
  const half = Math.floor(cut / 2);
  const clip = (v: number) => Math.min(h, Math.max(0, v));
  // described: [c - half, c - half + cut); official rand_token_bbox: [c - half, c + half).
  const end = (c: number) => mode === "official" ? c + half : c - half + cut;
  return {
    top: clip(cy - half),
    left: clip(cx - half),
    bottom: clip(end(cy)),
    right: clip(end(cx)),
  };
}

await backendTest(
  "regimes: TL-Align's box is the formula's under tlAlignBox described and official, and its class label the area's blend",
  async () => {
    const C = 4, h = 8, p = 4;
    let differ = 0;
    for (let seed = 0; seed < 12; seed++) {
      for (const mode of ["described", "official"] as const) {
        await assertNoLeaks(async () => {
          const regime = tlAlignRegime(
            config({ tlAlign: true, tlAlignBox: mode }),
            { numClasses: C },
          );
          const step = await regime.prepare(makeBatch([0, 3]), new Rng(seed));
          const t = tlAlignBox(seed, h, mode);
          assertEquals(step.mixing!.box, {
            top: t.top * p,
            left: t.left * p,
            bottom: t.bottom * p,
            right: t.right * p,
          }, `seed ${seed} ${mode}`);
          const lam = 1 -
            (t.bottom - t.top) * (t.right - t.left) / (h * h);
          await assertClose(step.mixing!.lambda, lam, { what: "lambda" });
          const y = [oneHot(0, C), oneHot(3, C)];
          await assertClose(step.classTargets, [
            ...y[0].map((v, k) => lam * v + (1 - lam) * y[1][k]),
            ...y[1].map((v, k) => lam * v + (1 - lam) * y[0][k]),
          ], { what: "initial class label" });
          assert(step.forward.onAttention !== undefined);
          step.dispose();
          regime.dispose();
        }, `TL-Align seed ${seed} ${mode}`);
      }
      const a = tlAlignBox(seed, h, "described");
      const b = tlAlignBox(seed, h, "official");
      if (JSON.stringify(a) !== JSON.stringify(b)) differ++;
    }
    // An odd side makes the two differ (official is one token shorter).
    assert(differ > 0, "no seed drew a box on which the modes differ");
  },
);

// --- config and command line -------------------------------------------------

Deno.test("config: the three ablation switches default to the current behaviour and are checked", () => {
  const c = resolveTrainConfig({ data: "synthetic" });
  assertEquals(
    [c.tokenLabelSmoothing, c.tlAlignBox, c.refine],
    ["normalized", "described", "none"],
  );
  assertEquals(DEFAULT_TRAIN_CONFIG.tokenLabelSmoothing, "normalized");
  assertEquals(DEFAULT_TRAIN_CONFIG.tlAlignBox, "described");
  assertEquals(DEFAULT_TRAIN_CONFIG.refine, "none");
  const ok = resolveTrainConfig({
    data: "synthetic",
    tokenLabel: true,
    tokenLabelData: "m",
    tokenLabelSmoothing: "official",
    refine: "intended",
  });
  assertEquals([ok.tokenLabelSmoothing, ok.refine], ["official", "intended"]);
  assertEquals(
    resolveTrainConfig({
      data: "synthetic",
      tlAlign: true,
      tlAlignBox: "official",
    }).tlAlignBox,
    "official",
  );
  const bad = (extra: Record<string, unknown>, ...words: string[]) => {
    const e = assertThrows(
      () => resolveTrainConfig({ data: "synthetic", ...extra }),
      TrainConfigError,
    );
    for (const w of words) assertStringIncludes(e.message, w);
  };
  bad({ tokenLabelSmoothing: "timm" }, "tokenLabelSmoothing", '"official"');
  bad({ tlAlignBox: "square", tlAlign: true }, "tlAlignBox", '"square"');
  bad({ refine: "volo", tokenLabel: true, tokenLabelData: "m" }, "refine");
  // Switches of a mode that is off are refused, saying what to add or drop.
  bad({ refine: "official" }, "refine", "`tokenLabel: true`", "drop `refine`");
  bad(
    { tlAlignBox: "official" },
    "tlAlignBox",
    "`tlAlign: true`",
    "drop `tlAlignBox`",
  );
  bad(
    { tokenLabelSmoothing: "official" },
    "tokenLabelSmoothing",
    "`tokenLabel: true`",
  );
});

Deno.test("config: resuming compares the switches; a run.json without them counts as the defaults", () => {
  const a = config() as unknown as Record<string, unknown>;
  const old = { ...a };
  delete old.tokenLabelSmoothing;
  delete old.tlAlignBox;
  delete old.refine;
  assertEquals(configDifferences(old, a), []);
  const b = config({
    tokenLabel: true,
    tokenLabelData: "m",
    refine: "official",
  }) as unknown as Record<string, unknown>;
  const diff = configDifferences({ ...b, refine: "none" }, b);
  assertEquals(diff, ['refine: "none" -> "official"']);
});

Deno.test("CLI: --token-label-smoothing, --refine and --tl-align-box set the fields and are in --help", () => {
  const { config: c } = trainConfigFromArgs([
    "--data",
    "synthetic",
    "--token-label-smoothing",
    "official",
    "--refine",
    "intended",
    "--tl-align-box",
    "official",
  ]);
  assertEquals(c.tokenLabelSmoothing, "official");
  assertEquals(c.refine, "intended");
  assertEquals(c.tlAlignBox, "official");
  for (
    const flag of ["--token-label-smoothing", "--refine", "--tl-align-box"]
  ) {
    assertStringIncludes(trainCommand.usage, flag);
  }
  // Left out, they are left to the config's defaults.
  const { config: d } = trainConfigFromArgs(["--data", "synthetic"]);
  assertEquals(
    ["tokenLabelSmoothing", "refine", "tlAlignBox"].filter((k) => k in d),
    [],
  );
});

// --- short runs with each switch on ----------------------------------------

const RUN: Partial<TrainConfig> & { data: string } = {
  model: "lvvit_xs32",
  modelOverrides: { embedDim: 32, depth: 1, numHeads: 1, stemChannels: 8 },
  data: "synthetic:size=32,count=64,classes=4,seed=1",
  batchSize: 16,
  epochs: 1,
  warmupEpochs: 0,
  cooldownEpochs: 0,
  valLimit: 16,
  logEvery: 1,
  backend: "wasm",
};

Deno.test({
  name:
    "short runs with each switch on: official smoothing + official refinement, intended refinement, TL-Align's official box",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await initBackend({ backend: "wasm" });
    const dir = await fresh("runs");
    const data = new SyntheticScenes({
      size: 32,
      count: 64,
      numClasses: 4,
      seed: 1,
    });
    await oracleAnnotate(data, `${dir}/maps`, { mapSize: 8, k: 3 });
    const tl = { tokenLabel: true, tokenLabelData: `${dir}/maps` };
    const cases: [string, Partial<TrainConfig>, boolean][] = [
      ["official", {
        ...tl,
        tokenLabelSmoothing: "official",
        refine: "official",
        output: `${dir}/official`,
      }, true],
      ["intended", { ...tl, refine: "intended" }, true],
      ["tl-align", { tlAlign: true, tlAlignBox: "official" }, false],
    ];
    for (const [what, extra, dense] of cases) {
      const counts: number[] = [];
      const run = await train({ ...RUN, ...extra }, {
        live: false,
        onProgress: (s) => {
          if (s.status === "running") counts.push(tf.memory().numTensors);
        },
      });
      try {
        assertEquals(run.status, "done", what);
        const s = run.records.filter((r): r is StepRecord => r.kind === "step");
        assertEquals(s.length, 4, what);
        assert(s.every((r) => Number.isFinite(r.loss)), `${what}: loss`);
        assert(
          s.every((r) => (r.lossDense !== undefined) === dense),
          `${what}: dense loss logged ${dense}`,
        );
        assert(counts.length >= 4, `${what}: ${counts}`);
        assertEquals(
          new Set(counts.slice(1)).size,
          1,
          `${what}: tensor counts ${counts}`,
        );
      } finally {
        run.dispose();
      }
    }
    // The switches are recorded in run.json with the rest of the config.
    const saved = JSON.parse(
      await Deno.readTextFile(`${dir}/official/run.json`),
    );
    assertEquals(saved.config.tokenLabelSmoothing, "official");
    assertEquals(saved.config.refine, "official");
    assertEquals(saved.config.tlAlignBox, "described");
  },
});
