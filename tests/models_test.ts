/**
 * LV-ViT and the ViT baseline: the registry's published counts, shapes of
 * every variant, gradients by finite differences, and agreement with a
 * PyTorch reference (tests/fixtures/make_lvvit_fixture.py) on every backend:
 * evaluation logits, the training forward, BatchNorm statistics, the loss
 * gradients and one optimizer step. Weights: safetensors round trip, official
 * checkpoint import, and the refusals of bad weights.
 */

import {
  assert,
  assertEquals,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "./_assert.ts";
import { ROOT, runCli } from "./_helpers.ts";
import {
  countParameters,
  createModel,
  initBackend,
  loadModel,
  loadStateDict,
  loadWeights,
  LvVit,
  MODEL_NAMES,
  type ModelConfig,
  modelConfig,
  modelEntry,
  officialFlops,
  readWeights,
  resizePosEmbed,
  Rng,
  saveWeights,
  stateDict,
  tf,
  tfToTorchLayout,
} from "tokenlab";
import {
  assertClose,
  assertNoLeaks,
  backendTest,
  checkGradients,
} from "tokenlab/testing";
import { readTorchFile } from "tokenlab/io/torch/mod.ts";
import { type RawTensor, toFloat32 } from "tokenlab/io/raw_tensor.ts";

const FIXTURES = `${ROOT}tests/fixtures/`;

/** The config of tests/fixtures/make_lvvit_fixture.py. */
const TINY: Partial<ModelConfig> = {
  name: "tiny",
  imgSize: 32,
  patchSize: 8,
  embedDim: 32,
  depth: 2,
  numHeads: 2,
  mlpRatio: 3,
  stemChannels: 8,
  numClasses: 5,
  skipLam: 2,
};

// ---------------------------------------------------------------- registry

Deno.test("published parameter counts and FLOPs, counted from the models' parameter lists", () => {
  const cases: [string, number, number, number | null][] = [
    ["lvvit_t", 224, 8.53, 2.87],
    ["lvvit_s", 224, 26.15, 6.57],
    ["lvvit_s", 384, 26.30, 22.17],
    ["lvvit_m", 224, 55.83, 12.74],
    ["lvvit_m", 384, 56.03, 42.16],
    ["lvvit_m", 448, 56.13, null],
    ["lvvit_l", 448, 150.47, 157.00],
    ["lvvit_l", 512, 150.66, 214.78],
    // timm's DeiT counts (ViT baselines, 1000 classes).
    ["vit_ti", 224, 5.72, null],
    ["vit_s", 224, 22.05, null],
    ["vit_b", 224, 86.57, null],
  ];
  for (const [name, imgSize, params, flops] of cases) {
    const c = modelConfig(name, { imgSize });
    assertEquals(
      (countParameters(c) / 1e6).toFixed(2),
      params.toFixed(2),
      `${name}@${imgSize} params`,
    );
    if (flops !== null) {
      assertEquals(
        (officialFlops(c) / 1e9).toFixed(2),
        flops.toFixed(2),
        `${name}@${imgSize} FLOPs`,
      );
    }
  }
  assertEquals(modelEntry("lvvit_l").config.stemChannels, 128);
  assertEquals(modelEntry("lvvit_l").config.skipLam, 3);
});

// Against the paper's figure, not the parameter list the model is built
// from (the small variants have no published count to compare with).
Deno.test("the built lvvit_t holds the published parameter count (8.53M)", async () => {
  await initBackend({ backend: "cpu" });
  const m = createModel("lvvit_t");
  try {
    assertEquals(
      (m.numParameters() / 1e6).toFixed(2),
      modelEntry("lvvit_t").published[224].paramsM!.toFixed(2),
    );
    assertEquals((m.numParameters() / 1e6).toFixed(2), "8.53");
  } finally {
    m.dispose();
  }
});

Deno.test("config errors say what is wrong and what would work", () => {
  assertThrows(
    () => modelConfig("lvvit_s", { imgSize: 200 }),
    Error,
    "200 is not divisible by the patch size 16; use 192 or 208",
  );
  assertThrows(() => modelConfig("lvvit_x"), Error, 'unknown model "lvvit_x"');
  assertThrows(
    () => modelConfig("lvvit_s", { numHeads: 5 }),
    Error,
    "embedDim 384 is not divisible by numHeads 5",
  );
  assertThrows(
    () =>
      LvVit.create(
        { imgSize: 32, patchSize: 8, bogus: 1 } as Partial<ModelConfig>,
      ),
    Error,
    'unknown model config field "bogus"',
  );
});

await backendTest(
  "every registered variant: training and evaluation shapes (small sizes)",
  () => {
    for (const name of MODEL_NAMES) {
      const base = modelEntry(name).config;
      // Published variants at a small image, one block, 7 classes; the small
      // ones as registered.
      const small = base.imgSize <= 64
        ? {}
        : { imgSize: 2 * base.patchSize, depth: 1, numClasses: 7 };
      const m = createModel(name, small);
      try {
        const c = m.config, n = m.grid * m.grid;
        const x = tf.randomNormal(
          [2, c.imgSize, c.imgSize, 3],
          0,
          1,
          "float32",
          5,
        ) as tf.Tensor4D;
        const out = m.forwardTrain(x, { rng: new Rng(1) });
        assertEquals(out.cls.shape, [2, c.numClasses], `${name} cls`);
        if (c.auxHead) {
          assertEquals(out.aux?.shape, [2, n, c.numClasses], `${name} aux`);
        } else assertEquals(out.aux, null);
        assertEquals(out.box, null);
        const logits = m.predict(x);
        assertEquals(logits.shape, [2, c.numClasses]);
        const feats = m.features(x);
        assertEquals(feats.shape, [2, n + 1, c.embedDim]);
        tf.dispose([x, out.cls, out.aux!, logits, feats].filter((t) => t));
      } finally {
        m.dispose();
      }
    }
  },
  // Shapes do not depend on the backend; the numbers are compared on every
  // backend below. wasm is the fast one.
  { backends: ["wasm"] },
);

Deno.test("input errors: layout, size, divisibility", async () => {
  await initBackend({ backend: "cpu" });
  const m = LvVit.create(TINY);
  const nchw = tf.zeros([1, 3, 32, 32]) as tf.Tensor4D;
  const odd = tf.zeros([1, 36, 36, 3]) as tf.Tensor4D;
  const big = tf.zeros([1, 64, 64, 3]) as tf.Tensor4D;
  try {
    assertThrows(() => m.predict(nchw), Error, "looks like NCHW");
    assertThrows(
      () => m.predict(odd),
      Error,
      "36x36 is not divisible by the patch size 8",
    );
    assertThrows(() => m.predict(big), Error, "built for 32x32 images");
    const drop = LvVit.create({ ...TINY, dropPathRate: 0.2 });
    assertThrows(
      () => drop.forwardTrain(nchw.reshape([1, 32, 32, 3])),
      Error,
      "pass { rng: new Rng(seed) }",
    );
    drop.dispose();
  } finally {
    tf.dispose([nchw, odd, big]);
    m.dispose();
  }
});

// ------------------------------------------------------------ PyTorch fixture

async function fixtureIo(): Promise<Map<string, RawTensor>> {
  const io = await readTorchFile(`${FIXTURES}lvvit_tiny_io.pt`);
  assert(io instanceof Map, "the io fixture is a dict");
  return io as Map<string, RawTensor>;
}

function tensorOf(raw: RawTensor): tf.Tensor {
  return tf.tensor(toFloat32(raw), raw.shape, "float32");
}

const IO = await fixtureIo();
const get = (k: string) => {
  const v = IO.get(k);
  if (v === undefined) throw new Error(`fixture lacks ${k}`);
  return v;
};

await backendTest(
  "official checkpoint import matches PyTorch: eval logits (head + 0.5 max aux)",
  async () => {
    const { model, report } = await loadModel(`${FIXTURES}lvvit_tiny.pth`, {
      model: TINY,
    });
    try {
      assertEquals(report.missing, []);
      assertEquals(report.unexpected, []);
      const x = tensorOf(get("x")) as tf.Tensor4D;
      const logits = model.predict(x);
      await assertClose(logits, toFloat32(get("eval_logits")), {
        rtol: 1e-4,
        atol: 1e-4,
        what: "eval logits",
      });
      // The eval formula, recomputed from the features with the head weights.
      const manual = tf.tidy(() => {
        const f = model.features(x); // [B, N+1, D]
        const lin = (t: tf.Tensor, name: string) =>
          tf.add(
            tf.matMul(t, model.state.get(`${name}.weight`)!),
            model.state.get(`${name}.bias`)!,
          );
        const cls = lin(
          tf.squeeze(tf.slice(f, [0, 0, 0], [2, 1, 32]), [1]),
          "head",
        );
        const aux = tf.stack(
          [0, 1].map((b) =>
            lin(
              tf.squeeze(tf.slice(f, [b, 1, 0], [1, 16, 32]), [0]),
              "aux_head",
            )
          ),
        );
        return tf.add(cls, tf.mul(0.5, tf.max(aux, 1)));
      });
      await assertClose(logits, manual, {
        rtol: 1e-5,
        atol: 1e-5,
        what: "eval formula",
      });
      tf.dispose([x, logits, manual]);
    } finally {
      model.dispose();
    }
  },
);

await backendTest(
  "training forward, BatchNorm statistics, gradients and an SGD step match PyTorch",
  async () => {
    const { model } = await loadModel(`${FIXTURES}lvvit_tiny.pth`, {
      model: TINY,
    });
    try {
      const x = tensorOf(get("x")) as tf.Tensor4D;
      const yCls = tensorOf(get("y_cls")), yTok = tensorOf(get("y_tok"));
      const names = [...IO.keys()].filter((k) => k.startsWith("grad.")).map((
        k,
      ) => k.slice(5));
      const vars = model.trainableVariables();
      const byVar = new Map(
        model.spec.filter((p) => p.kind === "param").map((
          p,
          i,
        ) => [vars[i], p]),
      );
      let cls!: tf.Tensor, aux!: tf.Tensor;
      const { value, grads } = tf.variableGrads(() => {
        const out = model.forwardTrain(x, { rng: new Rng(0) });
        cls = tf.keep(out.cls);
        aux = tf.keep(out.aux!);
        const ce = (logits: tf.Tensor, t: tf.Tensor) =>
          tf.mean(tf.neg(tf.sum(tf.mul(t, tf.logSoftmax(logits)), -1)));
        return tf.add(ce(out.cls, yCls), ce(out.aux!, yTok)) as tf.Scalar;
      }, vars);
      await assertClose(cls, toFloat32(get("train_cls")), {
        rtol: 1e-4,
        atol: 1e-4,
        what: "train cls",
      });
      await assertClose(aux, toFloat32(get("train_aux")), {
        rtol: 1e-4,
        atol: 1e-4,
        what: "train aux",
      });
      await assertClose(value, toFloat32(get("loss")), {
        rtol: 1e-5,
        atol: 1e-5,
        what: "loss",
      });
      for (
        const k of [
          "patch_embed.bn1.running_mean",
          "patch_embed.bn1.running_var",
          "patch_embed.bn3.running_var",
        ]
      ) {
        await assertClose(model.state.get(k)!, toFloat32(get(`after.${k}`)), {
          rtol: 1e-4,
          atol: 1e-5,
          what: k,
        });
      }
      const gradByName = new Map<string, tf.Tensor>();
      for (const [id, g] of Object.entries(grads)) {
        const v = vars.find((v) => v.name === id)!;
        gradByName.set(byVar.get(v)!.name, g);
      }
      // Against PyTorch in float64 (the exact gradient). Gradients that pass
      // through BatchNorm lose precision in float32: PyTorch's own float32
      // gradients are off by up to 1.5e-3 of the largest entry, so the bound
      // is 3e-3 of it (checked to hold for PyTorch float32 too).
      for (const name of names) {
        const spec = model.spec.find((p) => p.name === name)!;
        const g = tfToTorchLayout(
          spec.layout,
          spec.shape,
          Float32Array.from(await gradByName.get(name)!.data() as Float32Array),
        );
        const exact = toFloat32(get(`grad64.${name}`));
        const scale = exact.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        const bound = { rtol: 1e-3, atol: 3e-3 * scale };
        await assertClose(toFloat32(get(`grad.${name}`)), exact, {
          ...bound,
          what: `PyTorch float32 gradient of ${name}`,
        });
        await assertClose(g, exact, { ...bound, what: `gradient of ${name}` });
      }
      // One SGD step moves each weight by -lr * grad, as PyTorch's would.
      const lr = 0.1;
      const before = Float32Array.from(
        await model.state.get("blocks.0.attn.qkv.weight")!
          .data() as Float32Array,
      );
      tf.train.sgd(lr).applyGradients(grads);
      const spec = model.spec.find((p) =>
        p.name === "blocks.0.attn.qkv.weight"
      )!;
      const want = tfToTorchLayout(
        spec.layout,
        spec.shape,
        Float32Array.from(
          await gradByName.get(spec.name)!.data() as Float32Array,
        ),
      );
      const beforeTorch = tfToTorchLayout(spec.layout, spec.shape, before);
      const after = tfToTorchLayout(
        spec.layout,
        spec.shape,
        Float32Array.from(
          await model.state.get(spec.name)!.data() as Float32Array,
        ),
      );
      await assertClose(after, beforeTorch.map((v, i) => v - lr * want[i]), {
        rtol: 1e-4,
        atol: 1e-5,
        what: "weights after one SGD step",
      });
      tf.dispose([x, yCls, yTok, cls, aux, value, grads]);
    } finally {
      model.dispose();
    }
  },
);

await backendTest(
  "a training step (forward, loss, gradients, Adam) leaks no tensors",
  async () => {
    const model = LvVit.create({ ...TINY, dropPathRate: 0.1 });
    const x = tf.randomNormal(
      [2, 32, 32, 3],
      0,
      1,
      "float32",
      2,
    ) as tf.Tensor4D;
    const opt = tf.train.adam(1e-3);
    const rng = new Rng(4);
    const step = () => {
      const loss = opt.minimize(
        () => {
          const out = model.forwardTrain(x, { rng });
          return tf.add(
            tf.mean(tf.square(out.cls)),
            tf.mean(tf.square(out.aux!)),
          ) as tf.Scalar;
        },
        true,
        model.trainableVariables(),
      );
      loss?.dispose();
    };
    try {
      step(); // Adam creates its moment variables on the first step.
      await assertNoLeaks(step, "training step");
      await assertNoLeaks(async () => {
        const y = model.predict(x);
        await y.data();
        y.dispose();
      }, "evaluation");
    } finally {
      opt.dispose();
      x.dispose();
      model.dispose();
    }
  },
);

await backendTest(
  "position embedding resized bicubically when the grid differs (as timm, PyTorch bicubic)",
  async () => {
    const { model, report } = await loadModel(`${FIXTURES}lvvit_tiny.pth`, {
      model: TINY,
      overrides: { imgSize: 64 },
    });
    try {
      assertEquals(report.resized.length, 1);
      assertStringIncludes(report.resized[0], "4x4 grid in");
      await assertClose(
        model.state.get("pos_embed")!,
        toFloat32(get("pos_embed_64")),
        { rtol: 1e-5, atol: 1e-6, what: "resized pos_embed" },
      );
      const x = tensorOf(get("x64")) as tf.Tensor4D;
      const logits = model.predict(x);
      await assertClose(logits, toFloat32(get("eval_logits_64")), {
        rtol: 1e-4,
        atol: 1e-4,
        what: "logits at 64 px",
      });
      tf.dispose([x, logits]);
    } finally {
      model.dispose();
    }
  },
  { backends: ["cpu"] },
);

Deno.test("resizePosEmbed to the same grid is the identity", () => {
  const v = Float32Array.from({ length: (1 + 9) * 2 }, (_, i) => Math.sin(i));
  const same = resizePosEmbed(v, 3, { to: 3, dim: 2 });
  for (let i = 0; i < v.length; i++) {
    assert(Math.abs(same[i] - v[i]) < 1e-6, `element ${i}`);
  }
});

await backendTest(
  "gradient check of the model (conv stem, blocks, heads) by finite differences",
  async () => {
    const m = LvVit.create({
      name: "fd",
      imgSize: 8,
      patchSize: 4,
      embedDim: 8,
      depth: 2,
      numHeads: 2,
      stemChannels: 4,
      numClasses: 3,
      skipLam: 2,
    }, { seed: 3 });
    const x = tf.tensor(
      Array.from({ length: 2 * 8 * 8 * 3 }, (_, i) => Math.sin(i * 1.7)),
      [2, 8, 8, 3],
    );
    const w = tf.tensor(Array.from({ length: 2 * 3 }, (_, i) => Math.cos(i)), [
      2,
      3,
    ]);
    const wa = tf.tensor(
      Array.from({ length: 2 * 4 * 3 }, (_, i) => Math.cos(i * 0.3)),
      [2, 4, 3],
    );
    try {
      await checkGradients(
        (xs) => {
          const out = m.forwardTrain(xs as tf.Tensor4D, { updateStats: false });
          return tf.add(
            tf.sum(tf.mul(out.cls, w)),
            tf.sum(tf.mul(out.aux!, wa)),
          );
        },
        [x],
        { eps: 1e-2, rtol: 5e-2, atol: 2e-3, what: "d loss / d image" },
      );
    } finally {
      tf.dispose([x, w, wa]);
      m.dispose();
    }
  },
  { backends: ["cpu", "wasm"] },
);

// ---------------------------------------------------------------- weights

Deno.test("safetensors round trip: PyTorch names and layouts, config in the metadata", async () => {
  await initBackend({ backend: "cpu" });
  const dir = await Deno.makeTempDir({
    dir: `${ROOT}tests`,
    prefix: ".tmp-weights-",
  });
  const a = LvVit.create(TINY, { seed: 1 });
  try {
    // Move the BatchNorm state so that buffers are checked too.
    const x = tf.randomNormal(
      [2, 32, 32, 3],
      0,
      1,
      "float32",
      3,
    ) as tf.Tensor4D;
    const o = a.forwardTrain(x);
    tf.dispose([o.cls, o.aux!]);
    await saveWeights(a, `${dir}/a.safetensors`);
    const file = await readWeights(`${dir}/a.safetensors`);
    assertEquals(file.format, "safetensors");
    assertEquals(file.config?.embedDim, 32);
    assertEquals(file.tensors.get("blocks.0.attn.qkv.weight")?.shape, [96, 32]);
    assertEquals(file.tensors.get("patch_embed.conv1.weight")?.shape, [
      8,
      3,
      7,
      7,
    ]);
    assertEquals(
      file.tensors.get("patch_embed.bn1.num_batches_tracked")?.dtype,
      "int64",
    );
    assertEquals(
      Number(
        (file.tensors.get("patch_embed.bn1.num_batches_tracked")!
          .data as BigInt64Array)[0],
      ),
      1,
    );
    const { model: b } = await loadModel(`${dir}/a.safetensors`);
    const sa = await stateDict(a), sb = await stateDict(b);
    assertEquals([...sb.keys()], [...sa.keys()]);
    for (const [k, v] of sa) {
      await assertClose(toFloat32(sb.get(k)!), toFloat32(v), {
        rtol: 0,
        atol: 0,
        what: k,
      });
    }
    const ya = a.predict(x), yb = b.predict(x);
    await assertClose(yb, ya, {
      rtol: 0,
      atol: 0,
      what: "logits after the round trip",
    });
    tf.dispose([x, ya, yb]);
    b.dispose();
  } finally {
    a.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a timm training checkpoint (.pth.tar: module. prefixes, args Namespace) loads like the state dict", async () => {
  await initBackend({ backend: "cpu" });
  const plain = await readWeights(`${FIXTURES}lvvit_tiny.pth`);
  const ckpt = await readWeights(`${FIXTURES}lvvit_tiny_ckpt.pth.tar`);
  assertEquals(ckpt.format, "torch");
  assertEquals([...ckpt.tensors.keys()], [...plain.tensors.keys()]);
  const m = LvVit.create(TINY);
  try {
    const report = await loadWeights(m, `${FIXTURES}lvvit_tiny_ckpt.pth.tar`);
    assertEquals(report.missing, []);
    const x = tensorOf(get("x")) as tf.Tensor4D;
    const y = m.predict(x);
    await assertClose(y, toFloat32(get("eval_logits")), {
      rtol: 1e-4,
      atol: 1e-4,
    });
    tf.dispose([x, y]);
  } finally {
    m.dispose();
  }
});

Deno.test("another class count: head and aux_head re-initialised, the rest loaded", async () => {
  await initBackend({ backend: "cpu" });
  const { model, report } = await loadModel(`${FIXTURES}lvvit_tiny.pth`, {
    model: TINY,
    overrides: { numClasses: 7 },
  });
  try {
    assertEquals(report.reinitialized.length, 4);
    assertStringIncludes(report.reinitialized[0], "5 classes in");
    assertEquals(report.missing, []);
    const feats = tf.tidy(() =>
      tf.sum(model.features(tf.ones([1, 32, 32, 3]) as tf.Tensor4D))
    );
    assert(Number.isFinite((await feats.data())[0]));
    feats.dispose();
  } finally {
    model.dispose();
  }
});

Deno.test("bad weights: missing, unexpected and mis-shaped entries are listed, and nothing is loaded", async () => {
  await initBackend({ backend: "cpu" });
  const { tensors } = await readWeights(`${FIXTURES}lvvit_tiny.pth`);
  const m = LvVit.create(TINY, { seed: 5 });
  try {
    const before = await stateDict(m);
    const broken = new Map(tensors);
    broken.delete("blocks.1.mlp.fc2.bias");
    broken.set("blocks.2.norm1.weight", tensors.get("norm.weight")!);
    const e = assertThrows(
      () => loadStateDict(m, broken),
      Error,
      "missing (1): blocks.1.mlp.fc2.bias",
    );
    assertStringIncludes(e.message, "unexpected (1): blocks.2.norm1.weight");
    assertStringIncludes(e.message, "strict: false");
    assertStringIncludes(e.message, "nothing was loaded");
    const after = await stateDict(m);
    await assertClose(
      toFloat32(after.get("norm.weight")!),
      toFloat32(before.get("norm.weight")!),
      { rtol: 0, atol: 0, what: "untouched after a refused load" },
    );
    const report = loadStateDict(m, broken, { strict: false });
    assertEquals(report.missing, ["blocks.1.mlp.fc2.bias"]);
    assertEquals(report.unexpected, ["blocks.2.norm1.weight"]);
    const wrong = new Map(tensors);
    wrong.set("blocks.0.mlp.fc1.weight", {
      dtype: "float32",
      shape: [64, 32],
      data: new Float32Array(64 * 32),
    });
    assertThrows(
      () => loadStateDict(m, wrong),
      Error,
      "blocks.0.mlp.fc1.weight: the state dict has [64, 32], the model needs [96, 32]",
    );
    await assertRejects(
      () => loadModel(`${FIXTURES}lvvit_tiny.pth`),
      Error,
      'say which variant it is, e.g. loadModel(path, { model: "lvvit_s" })',
    );
    const evil = await assertRejects(
      () => loadWeights(m, `${FIXTURES}torch/malicious.pt`),
      Error,
      '"os.system"',
    );
    assertStringIncludes(evil.message, "never runs code");
    await assertRejects(
      () => readWeights(`${FIXTURES}nothing_here.pth`),
      Error,
      "weights file not found",
    );
  } finally {
    m.dispose();
  }
});

// ---------------------------------------------------------------- CLI

Deno.test("tokenlab models: table, one model at another size, JSON, bad size", async () => {
  const all = await runCli(["models"]);
  assertEquals(all.code, 0, all.stderr);
  assertMatchLine(
    all.stdout,
    /\| lvvit_s +\| +224 \| +14x14=196\+1 \| +26\.15 \| +6\.57 \|/,
  );
  assertMatchLine(
    all.stdout,
    /\| lvvit_l +\| +448 \| .* 150\.47 \| +157\.00 \|/,
  );
  const one = await runCli(["models", "lvvit_s", "--img-size", "384"]);
  assertEquals(one.code, 0, one.stderr);
  assertMatchLine(
    one.stdout,
    /\| lvvit_s +\| +384 \| +24x24=576\+1 \| +26\.30 \| +22\.17 \|/,
  );
  const json = await runCli(["models", "lvvit_t", "--json"]);
  const rows = JSON.parse(json.stdout);
  assertEquals(rows[0].name, "lvvit_t");
  assertEquals((rows[0].params / 1e6).toFixed(2), "8.53");
  assertEquals((rows[0].flops / 1e9).toFixed(2), "2.87");
  const bad = await runCli(["models", "lvvit_s", "--img-size", "100"]);
  assertEquals(bad.code, 2);
  assertStringIncludes(bad.stderr, "100 is not divisible by the patch size 16");
});

function assertMatchLine(text: string, re: RegExp): void {
  assert(
    text.split("\n").some((l) => re.test(l)),
    `no line matches ${re}:\n${text}`,
  );
}

await backendTest(
  "dense logits (the annotator head at every token) agree with the eval formula",
  async () => {
    const { model } = await loadModel(`${FIXTURES}lvvit_tiny.pth`, {
      model: TINY,
    });
    try {
      const x = tensorOf(get("x")) as tf.Tensor4D;
      const aux = model.denseLogits(x, { head: "aux_head" }); // [B, 4, 4, C]
      assertEquals(aux.shape, [2, 4, 4, 5]);
      const head = model.denseLogits(x);
      assertEquals(head.shape, [2, 4, 4, 5]);
      // eval = head(cls) + 0.5 max over tokens of aux_head: recover head(cls).
      const headCls = tf.tidy(() =>
        tf.sub(
          model.predict(x),
          tf.mul(0.5, tf.max(tf.reshape(aux, [2, 16, 5]), 1)),
        )
      );
      const fromFeatures = tf.tidy(() => {
        const f = tf.squeeze(
          tf.slice(model.features(x), [0, 0, 0], [2, 1, 32]),
          [1],
        );
        return tf.add(
          tf.matMul(f, model.state.get("head.weight")!),
          model.state.get("head.bias")!,
        );
      });
      await assertClose(headCls, fromFeatures, {
        rtol: 1e-4,
        atol: 1e-5,
        what: "head(cls)",
      });
      tf.dispose([x, aux, head, headCls, fromFeatures]);
      const vit = LvVit.create({ ...TINY, auxHead: false });
      const ones = tf.ones([1, 32, 32, 3]);
      assertThrows(
        () => vit.denseLogits(ones, { head: "aux_head" }),
        Error,
        "has no aux_head",
      );
      ones.dispose();
      vit.dispose();
    } finally {
      model.dispose();
    }
  },
);
