/**
 * The ReLabel-style ResNet: shapes, the evaluation rule, agreement with a
 * float64 reference forward, BatchNorm statistics, a few SGD steps, no
 * leaks, safetensors round trip, the refusal of MixToken and TL-Align, its
 * config errors, and a short run of the real training engine.
 */

import {
  assert,
  assertEquals,
  assertStringIncludes,
  assertThrows,
} from "./_assert.ts";
import {
  createModel,
  initBackend,
  loadModel,
  MixToken,
  type ModelConfig,
  ModelInputError,
  NotATokenModelError,
  ResNet,
  resolveTrainConfig,
  Rng,
  saveWeights,
  softTargetCrossEntropy,
  tf,
  train,
  TrainConfigError,
} from "tokenlab";
import { assertClose, assertNoLeaks, backendTest } from "tokenlab/testing";
import { refConv2d, testValues } from "tokenlab/testing/reference.ts";

/** Two stages (stem stride 2): 8x8 images -> a 2x2 final map. */
const TINY: Partial<ModelConfig> = {
  family: "resnet",
  name: "tiny_resnet",
  imgSize: 8,
  patchSize: 4,
  stageWidths: [3, 4],
  stageBlocks: [1, 1],
  numClasses: 5,
};

/** Small enough for every backend: 16x16 -> 4x4. */
const SMALL: Partial<ModelConfig> = {
  family: "resnet",
  name: "small_resnet",
  imgSize: 16,
  patchSize: 4,
  stageWidths: [4, 8, 8],
  stageBlocks: [1, 1, 1],
  numClasses: 3,
};

function images(b: number, size: number, seed: number): tf.Tensor4D {
  return tf.tensor4d(testValues(b * size * size * 3, seed), [b, size, size, 3]);
}

/** Random values in every state entry (BN statistics included). */
function randomize(model: ResNet, seed: number): void {
  let k = seed;
  tf.tidy(() => {
    for (const [name, v] of model.state) {
      if (name.endsWith("num_batches_tracked")) continue;
      const vals = testValues(v.size, k++, 0.5);
      if (name.endsWith("running_var") || name.endsWith("bn1.weight")) {
        for (let i = 0; i < vals.length; i++) vals[i] = 0.5 + Math.abs(vals[i]);
      }
      v.assign(tf.tensor(vals, v.shape, "float32"));
    }
  });
}

await backendTest("resnet: output shapes of every head", () => {
  const m = ResNet.create(SMALL, { seed: 1 });
  const x = images(2, 16, 1);
  try {
    assertEquals(m.grid, 4);
    const out = m.forwardTrain(x, { rng: new Rng(0) });
    assertEquals(out.cls.shape, [2, 3]);
    assertEquals(out.aux?.shape, [2, 16, 3]);
    assertEquals(out.box, null);
    const y = m.predict(x);
    const f = m.features(x);
    const d = m.denseLogits(x, { head: "aux_head" });
    assertEquals(y.shape, [2, 3]);
    assertEquals(f.shape, [2, 17, 8]);
    assertEquals(d.shape, [2, 4, 4, 3]);
    tf.dispose([out.cls, out.aux!, y, f, d]);
    const noAux = ResNet.create({ ...SMALL, auxHead: false });
    const o2 = noAux.forwardTrain(x, { rng: new Rng(0) });
    assertEquals(o2.aux, null);
    assertEquals(noAux.spec.some((p) => p.name.startsWith("aux_head")), false);
    o2.cls.dispose();
    noAux.dispose();
  } finally {
    x.dispose();
    m.dispose();
  }
});

await backendTest(
  "resnet: predict = head(pooled) + 0.5 * max over cells of aux_head",
  async () => {
    const m = ResNet.create(SMALL, { seed: 2 });
    randomize(m, 10);
    const x = images(3, 16, 2);
    try {
      const y = m.predict(x);
      const head = m.denseLogits(x, { head: "head" }); // [B, h, w, C]
      const aux = m.denseLogits(x, { head: "aux_head" });
      // head is linear: head(mean of cells) = mean of head at each cell.
      const want = tf.tidy(() =>
        tf.add(
          tf.mean(tf.reshape(head, [3, 16, 3]), 1),
          tf.mul(tf.max(tf.reshape(aux, [3, 16, 3]), 1), 0.5),
        )
      );
      await assertClose(y, await want.data(), {
        rtol: 1e-4,
        atol: 1e-5,
        what: "predict",
      });
      tf.dispose([y, head, aux, want]);
    } finally {
      x.dispose();
      m.dispose();
    }
  },
);

// ------------------------------------------------ float64 reference forward

interface RefState {
  get(name: string): Float32Array;
}

function refBatchNorm(
  x: ArrayLike<number>,
  ch: number,
  s: RefState,
  prefix: string,
  eps: number,
): Float64Array {
  const g = s.get(`${prefix}.weight`), b = s.get(`${prefix}.bias`);
  const m = s.get(`${prefix}.running_mean`);
  const v = s.get(`${prefix}.running_var`);
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const c = i % ch;
    y[i] = (x[i] - m[c]) / Math.sqrt(v[c] + eps) * g[c] + b[c];
  }
  return y;
}

const relu = (x: ArrayLike<number>): Float64Array =>
  Float64Array.from(x, (v) => Math.max(0, v));

/** The tiny config's evaluation forward in float64: [B, 1 + N, D] features. */
function refFeatures(
  x: Float32Array,
  B: number,
  s: RefState,
  eps: number,
): { feats: Float64Array; n: number; d: number } {
  const conv = (
    inp: ArrayLike<number>,
    shape: [number, number, number, number],
    name: string,
    [k, co]: [number, number],
    stride: number,
  ) => refConv2d(inp, shape, s.get(name), [k, k, co], stride, k === 3 ? 1 : 0);
  // stem: 3 -> 3, stride 2: 8x8 -> 4x4
  let a = conv(
    Float64Array.from(x),
    [B, 8, 8, 3],
    "stem.conv.weight",
    [3, 3],
    2,
  );
  let y: Float64Array = relu(refBatchNorm(a.data, 3, s, "stem.bn", eps));
  // layers.0.0: identity block, 3 channels, 4x4
  a = conv(y, [B, 4, 4, 3], "layers.0.0.conv1.weight", [3, 3], 1);
  let o: Float64Array = relu(refBatchNorm(a.data, 3, s, "layers.0.0.bn1", eps));
  a = conv(o, [B, 4, 4, 3], "layers.0.0.conv2.weight", [3, 3], 1);
  o = refBatchNorm(a.data, 3, s, "layers.0.0.bn2", eps);
  y = relu(o.map((v, i) => v + y[i]));
  // layers.1.0: 3 -> 4, stride 2, projection: 4x4 -> 2x2
  a = conv(y, [B, 4, 4, 3], "layers.1.0.conv1.weight", [3, 4], 2);
  o = relu(refBatchNorm(a.data, 4, s, "layers.1.0.bn1", eps));
  a = conv(o, [B, 2, 2, 4], "layers.1.0.conv2.weight", [3, 4], 1);
  o = refBatchNorm(a.data, 4, s, "layers.1.0.bn2", eps);
  a = conv(y, [B, 4, 4, 3], "layers.1.0.downsample.0.weight", [1, 4], 2);
  const sc = refBatchNorm(a.data, 4, s, "layers.1.0.downsample.1", eps);
  y = relu(o.map((v, i) => v + sc[i]));
  const n = 4, d = 4;
  const feats = new Float64Array(B * (1 + n) * d);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < n; t++) {
      for (let c = 0; c < d; c++) {
        const v = y[(b * n + t) * d + c];
        feats[(b * (1 + n) + 1 + t) * d + c] = v;
        feats[b * (1 + n) * d + c] += v / n;
      }
    }
  }
  return { feats, n, d };
}

await backendTest(
  "resnet: evaluation features and logits match a float64 reference",
  async () => {
    const m = ResNet.create(TINY, { seed: 3 });
    randomize(m, 20);
    const B = 2;
    const xv = testValues(B * 8 * 8 * 3, 7);
    const x = tf.tensor4d(xv, [B, 8, 8, 3]);
    try {
      const values = new Map<string, Float32Array>();
      for (const [name, v] of m.state) {
        values.set(name, Float32Array.from(await v.data()));
      }
      const s: RefState = { get: (name) => values.get(name)! };
      const { feats, n, d } = refFeatures(xv, B, s, m.config.bnEps);
      const f = m.features(x);
      await assertClose(f, feats, { rtol: 1e-4, atol: 1e-5, what: "features" });
      // head on the pooled vector + 0.5 max over cells of aux_head.
      const C = 5;
      const lin = (prefix: string, row: number) => {
        const w = s.get(`${prefix}.weight`), bias = s.get(`${prefix}.bias`);
        return Array.from({ length: C }, (_, k) => {
          let acc = bias[k];
          for (let c = 0; c < d; c++) acc += feats[row * d + c] * w[c * C + k];
          return acc;
        });
      };
      const want = new Float64Array(B * C);
      for (let b = 0; b < B; b++) {
        const h = lin("head", b * (1 + n));
        const mx = new Array(C).fill(-Infinity);
        for (let t = 0; t < n; t++) {
          lin("aux_head", b * (1 + n) + 1 + t).forEach((v, k) =>
            mx[k] = Math.max(mx[k], v)
          );
        }
        for (let k = 0; k < C; k++) want[b * C + k] = h[k] + 0.5 * mx[k];
      }
      const y = m.predict(x);
      await assertClose(y, want, { rtol: 1e-4, atol: 1e-5, what: "logits" });
      tf.dispose([f, y]);
    } finally {
      x.dispose();
      m.dispose();
    }
  },
);

await backendTest(
  "resnet: training moves the BatchNorm running statistics, evaluation does not",
  async () => {
    const m = ResNet.create(SMALL, { seed: 4 });
    const x = images(4, 16, 3);
    const read = async (name: string) =>
      Float32Array.from(await m.state.get(name)!.data());
    try {
      const mean0 = await read("layers.2.0.bn2.running_mean");
      const y = m.predict(x);
      y.dispose();
      assertEquals(await read("layers.2.0.bn2.running_mean"), mean0);
      const frozen = m.forwardTrain(x, { rng: new Rng(1), updateStats: false });
      tf.dispose([frozen.cls, frozen.aux!]);
      assertEquals(await read("layers.2.0.bn2.running_mean"), mean0);
      assertEquals((await read("stem.bn.num_batches_tracked"))[0], 0);
      const out = m.forwardTrain(x, { rng: new Rng(1) });
      tf.dispose([out.cls, out.aux!]);
      const mean1 = await read("layers.2.0.bn2.running_mean");
      assert(mean1.some((v, i) => v !== mean0[i]), "running mean moved");
      assertEquals((await read("stem.bn.num_batches_tracked"))[0], 1);
      assertEquals(
        (await read("layers.1.0.downsample.1.num_batches_tracked"))[0],
        1,
      );
    } finally {
      x.dispose();
      m.dispose();
    }
  },
);

await backendTest(
  "resnet: a few SGD steps lower the loss on a fixed batch, without leaks",
  async () => {
    const m = ResNet.create({ ...SMALL, dropPathRate: 0.1 }, { seed: 5 });
    const x = images(6, 16, 4);
    const target = tf.oneHot(tf.tensor1d([0, 1, 2, 0, 1, 2], "int32"), 3)
      .cast("float32") as tf.Tensor2D;
    const opt = tf.train.sgd(0.1);
    const rng = new Rng(6);
    const losses: number[] = [];
    const step = async () => {
      const loss = opt.minimize(
        () => {
          const out = m.forwardTrain(x, { rng });
          const tokens = tf.tile(tf.expandDims(target, 1), [1, 16, 1]);
          return tf.add(
            softTargetCrossEntropy(out.cls, target),
            softTargetCrossEntropy(
              tf.reshape(out.aux!, [-1, 3]),
              tf.reshape(tokens, [-1, 3]),
            ),
          ) as tf.Scalar;
        },
        true,
        m.trainableVariables(),
      )!;
      losses.push((await loss.data())[0]);
      loss.dispose();
    };
    try {
      await step();
      for (let i = 0; i < 6; i++) await assertNoLeaks(step, "training step");
      assert(
        losses.at(-1)! < losses[0],
        `loss went from ${losses[0]} to ${losses.at(-1)}`,
      );
    } finally {
      opt.dispose();
      tf.dispose([x, target]);
      m.dispose();
    }
  },
);

await backendTest("resnet: safetensors round trip", async () => {
  const dir = await Deno.makeTempDir();
  const m = ResNet.create(SMALL, { seed: 7 });
  randomize(m, 30);
  const x = images(2, 16, 5);
  try {
    await saveWeights(m, `${dir}/r.safetensors`);
    const { model, report } = await loadModel(`${dir}/r.safetensors`);
    try {
      assert(model instanceof ResNet, "loadModel builds a ResNet");
      assertEquals(model.config, m.config);
      assertEquals(report.missing, []);
      assertEquals(report.unexpected, []);
      assertEquals(report.loaded.length, m.spec.length);
      const a = m.predict(x), b = model.predict(x);
      await assertClose(b, await a.data(), {
        rtol: 0,
        atol: 0,
        what: "logits",
      });
      tf.dispose([a, b]);
    } finally {
      model.dispose();
    }
  } finally {
    x.dispose();
    m.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("resnet: MixToken and TL-Align are refused, with what to do", async () => {
  await initBackend({ backend: "cpu" });
  const m = createModel("resnet_xs32", { stageWidths: [4, 8, 8] });
  const x = tf.zeros([2, 32, 32, 3]);
  const before = tf.memory().numTensors;
  try {
    const e = assertThrows(
      () => m.forwardTrain(x, { rng: new Rng(0), mixer: new MixToken() }),
      NotATokenModelError,
      "MixToken needs a token model",
    );
    assertStringIncludes(e.message, "CutMix");
    assertStringIncludes(e.message, "resnet_xs32");
    assert(e instanceof ModelInputError);
    assertThrows(
      () => m.forwardTrain(x, { rng: new Rng(0), onAttention: () => {} }),
      NotATokenModelError,
      "TL-Align needs attention",
    );
    assertEquals(tf.memory().numTensors, before);
  } finally {
    x.dispose();
    m.dispose();
  }
});

Deno.test("resnet: registry entries, parameter counts and config errors", async () => {
  await initBackend({ backend: "cpu" });
  for (const name of ["resnet_xs32", "resnet_xs64"]) {
    const m = createModel(name);
    try {
      assert(m instanceof ResNet, name);
      assertEquals(m.grid, 8, name);
      assertEquals(m.config.embedDim, m.config.stageWidths.at(-1));
      const n = m.numParameters();
      assert(n > 2e5 && n < 3e6, `${name}: ${n} parameters`);
      // Weight decay: conv and linear weights only.
      for (const p of m.spec.filter((p) => p.kind === "param")) {
        assertEquals(p.decay, p.name.endsWith("weight") && p.shape.length > 1);
      }
    } finally {
      m.dispose();
    }
  }
  assertThrows(
    () => createModel("resnet_xs32", { patchSize: 2 }),
    Error,
    "patchSize must be 4 (stem stride 1) or 8 (stem stride 2), found 2",
  );
  assertThrows(
    () => createModel("resnet_xs32", { patchSize: 16 }),
    Error,
    "with 3 stages, patchSize must be 4",
  );
  assertThrows(
    () => createModel("resnet_xs32", { stageBlocks: [1, 1] }),
    Error,
    "stageBlocks has 2 entries but stageWidths 3",
  );
  assertThrows(
    () => createModel("resnet_xs32", { stageWidths: [] }),
    Error,
    "stageWidths must be a non-empty array of positive integers",
  );
  assertThrows(
    () =>
      createModel("resnet_xs32", {
        family: "cnn" as ModelConfig["family"],
      }),
    Error,
    'family must be "vit" (LV-ViT, ViT) or "resnet"',
  );
});

Deno.test("resnet: one epoch of the real training engine (cpu)", async () => {
  const run = await train({
    model: "resnet_xs32",
    modelOverrides: { stageWidths: [4, 8, 8], stageBlocks: [1, 1, 1] },
    data: "synthetic:size=32,count=64,classes=4,seed=1",
    batchSize: 16,
    epochs: 1,
    warmupEpochs: 0,
    cooldownEpochs: 0,
    valLimit: 32,
    backend: "cpu",
  }, { live: false });
  try {
    assert(run.model instanceof ResNet, "the run trained a ResNet");
    assertEquals(run.result.steps, 4);
    assert(Number.isFinite(run.result.trainLoss!), "finite training loss");
    assert(run.result.model !== null, "evaluated");
  } finally {
    run.dispose();
  }
});

Deno.test("resnet: training config: token labels without MixToken; MixToken and TL-Align refused up front", () => {
  const base = {
    model: "resnet_xs32",
    data: "synthetic:size=32,count=64",
    tokenLabel: true,
    tokenLabelData: "maps",
  };
  const c = resolveTrainConfig(base);
  assertEquals([c.mixToken, c.auxHead], [false, true]);
  for (
    const [extra, fact] of [
      [{ mixToken: true }, "`cutmix`"],
      [
        { tokenLabel: false, tokenLabelData: null, tlAlign: true },
        "without attention",
      ],
    ] as const
  ) {
    let err: unknown;
    try {
      resolveTrainConfig({ ...base, ...extra });
    } catch (e) {
      err = e;
    }
    assert(err instanceof TrainConfigError, String(err));
    assert((err as Error).message.includes(fact), (err as Error).message);
  }
});
