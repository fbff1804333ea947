/**
 * The training's optimisation parts: the learning-rate schedule against its
 * formula written out here, AdamW and gradient clipping against PyTorch
 * (tests/fixtures/make_adamw.py), the weight-decay exclusions of a real
 * LV-ViT, a bit-exact state round trip, the weight EMA (BatchNorm buffers
 * included), model cloning, every bad input, and no leaks.
 */

import { assert, assertEquals, assertThrows } from "./_assert.ts";
import { ROOT } from "./_helpers.ts";
import { LvVit, type ModelConfig, Rng, tf } from "tokenlab";
import { assertClose, assertNoLeaks, backendTest } from "tokenlab/testing";
import {
  learningRate,
  type ScheduleConfig,
  scheduleCurve,
  ScheduleError,
  totalEpochs,
} from "../lib/train/schedule.ts";
import {
  AdamW,
  clipGradients,
  decayGroups,
  OptimizerError,
  type ParamEntry,
} from "../lib/train/optimizer.ts";
import { EmaError, ModelEma } from "../lib/train/ema.ts";
import { hasFusedAdamW } from "../lib/kernels/webgpu_adamw.ts";

// ---------------------------------------------------------------- schedule

const OFFICIAL: ScheduleConfig = {
  lr: 1.6e-3,
  warmupLr: 1e-6,
  minLr: 1e-5,
  epochs: 300,
  warmupEpochs: 5,
  cooldownEpochs: 10,
  update: "epoch",
};

/** The schedule's rate at epoch t, phase by phase. */
function expectedRate(s: ScheduleConfig, t: number): number {
  const inWarmup = s.warmupEpochs > 0 && t < s.warmupEpochs;
  if (inWarmup) {
    const frac = t / s.warmupEpochs;
    return (1 - frac) * s.warmupLr + frac * s.lr;
  }
  if (t >= s.epochs) return s.minLr;
  const half = (Math.cos((t / s.epochs) * Math.PI) + 1) / 2;
  return s.minLr + (s.lr - s.minLr) * half;
}

function near(a: number, b: number, what: string): void {
  assert(
    Math.abs(a - b) <= 1e-12 * Math.abs(b) + 1e-18,
    `${what}: ${a}, expected ${b}`,
  );
}

Deno.test("schedule: the curve follows warmup, cosine and cooldown in both modes", () => {
  const spe = 7;
  for (
    const s of [
      OFFICIAL,
      { ...OFFICIAL, update: "step" as const },
      { ...OFFICIAL, epochs: 20, warmupEpochs: 3, cooldownEpochs: 2 },
      {
        ...OFFICIAL,
        epochs: 20,
        warmupEpochs: 3,
        cooldownEpochs: 2,
        update: "step" as const,
      },
      { ...OFFICIAL, epochs: 12, warmupEpochs: 0, cooldownEpochs: 0 },
    ]
  ) {
    const total = totalEpochs(s);
    assertEquals(total, s.epochs + s.cooldownEpochs);
    const { step, lr } = scheduleCurve(s, spe);
    assertEquals(step.length, total * spe);
    assertEquals(lr.length, total * spe);
    for (let e = 0; e < total; e++) {
      for (let i = 0; i < spe; i++) {
        const k = e * spe + i;
        assertEquals(step[k], k);
        const t = s.update === "epoch" ? e : e + i / spe;
        near(lr[k], expectedRate(s, t), `curve at epoch ${e} step ${i}`);
        assertEquals(learningRate(s, e, i, spe), lr[k]);
      }
    }
    // The first step starts the warmup (or the cosine, without one).
    near(lr[0], s.warmupEpochs > 0 ? s.warmupLr : s.lr, "first lr");
    // The cosine ends at minLr, and the cooldown stays there.
    if (s.cooldownEpochs > 0) {
      assertEquals(learningRate(s, s.epochs, 0, spe), s.minLr);
      assertEquals(lr[lr.length - 1], s.minLr);
    } else {
      near(
        expectedRate(s, s.epochs - 1e-9),
        s.minLr,
        "end of the cosine",
      );
    }
    // Rising in the warmup, never rising after it.
    const w = Math.ceil(s.warmupEpochs * spe);
    for (let k = 1; k < lr.length; k++) {
      if (k < w) assert(lr[k] >= lr[k - 1], `warmup rises at step ${k}`);
      if (k > w) assert(lr[k] <= lr[k - 1], `no rise after warmup, step ${k}`);
    }
    // timm without warmup_prefix: the cosine is already under way when the
    // warmup ends, so the peak lr itself is never used.
    if (s.warmupEpochs > 0) {
      const end = learningRate(s, s.warmupEpochs, 0, spe);
      assert(end < s.lr, "cosine below the peak when the warmup ends");
      near(
        end,
        s.minLr + 0.5 * (s.lr - s.minLr) *
            (1 + Math.cos(Math.PI * s.warmupEpochs / s.epochs)),
        "first cosine rate",
      );
    }
    if (s.update === "epoch") {
      for (let e = 0; e < total; e++) {
        for (let i = 1; i < spe; i++) {
          assertEquals(lr[e * spe + i], lr[e * spe], "constant in an epoch");
        }
      }
    }
  }
  // Hand-checked values of the official schedule.
  near(learningRate(OFFICIAL, 1, 0, 100), 1e-6 + (1.6e-3 - 1e-6) / 5, "e1");
  near(
    learningRate(OFFICIAL, 150, 0, 100),
    1e-5 + 0.5 * (1.6e-3 - 1e-5),
    "half way",
  );
  near(
    learningRate({ ...OFFICIAL, update: "step" }, 2, 50, 100),
    1e-6 + 2.5 * (1.6e-3 - 1e-6) / 5,
    "fractional warmup",
  );
});

Deno.test("schedule: bad settings and positions are refused", () => {
  const bad: [Partial<ScheduleConfig>, string][] = [
    [{ lr: -1 }, "lr must be"],
    [{ minLr: NaN }, "minLr must be"],
    [{ warmupLr: Infinity }, "warmupLr must be"],
    [{ epochs: 0 }, "epochs must be a positive integer"],
    [{ epochs: 10.5 }, "epochs must be a positive integer"],
    [{ cooldownEpochs: -1 }, "cooldownEpochs"],
    [
      { warmupEpochs: 301 },
      "warmupEpochs must be a number in [0, epochs = 300]",
    ],
    [{ warmupEpochs: -1 }, "warmupEpochs"],
    [{ update: "batch" as "step" }, 'update must be "epoch"'],
  ];
  for (const [change, message] of bad) {
    const s = { ...OFFICIAL, ...change };
    assertThrows(() => learningRate(s, 0, 0, 10), ScheduleError, message);
    assertThrows(() => scheduleCurve(s, 10), ScheduleError, message);
    assertThrows(() => totalEpochs(s), ScheduleError, message);
  }
  assertThrows(
    () => learningRate(OFFICIAL, 310, 0, 10),
    ScheduleError,
    "epoch must be an integer in [0, 310)",
  );
  assertThrows(() => learningRate(OFFICIAL, -1, 0, 10), ScheduleError);
  assertThrows(() => learningRate(OFFICIAL, 1.5, 0, 10), ScheduleError);
  assertThrows(
    () => learningRate(OFFICIAL, 0, 10, 10),
    ScheduleError,
    "stepInEpoch must be an integer in [0, stepsPerEpoch = 10)",
  );
  assertThrows(
    () => learningRate(OFFICIAL, 0, 0, 0),
    ScheduleError,
    "stepsPerEpoch must be a positive integer",
  );
  assertThrows(() => scheduleCurve(OFFICIAL, 2.5), ScheduleError);
  const e = assertThrows(() => learningRate(OFFICIAL, 400, 0, 1));
  assertEquals(e.name, "ScheduleError");
});

// ---------------------------------------------------------------- AdamW

interface Run {
  weightDecay: number;
  betas: [number, number];
  eps: number;
  init: Record<string, number[]>;
  steps: {
    lr: number;
    grads: Record<string, number[]>;
    params: Record<string, number[]>;
    exp_avg: Record<string, number[]>;
    exp_avg_sq: Record<string, number[]>;
  }[];
}

const FIX = JSON.parse(
  await Deno.readTextFile(`${ROOT}tests/fixtures/adamw.json`),
) as {
  torch: string;
  shapes: Record<string, number[]>;
  decay: Record<string, boolean>;
  runs: Run[];
  clip: {
    grads: Record<string, number[]>;
    normMax: number;
    norm: number;
    normClipped: Record<string, number[]>;
    freeMax: number;
    freeNorm: number;
    free: Record<string, number[]>;
    valueMax: number;
    valueClipped: Record<string, number[]>;
  };
};
const NAMES = Object.keys(FIX.shapes);
const TIGHT = { rtol: 1e-6, atol: 1e-7 };

function tensors(values: Record<string, number[]>): Map<string, tf.Tensor> {
  return new Map(
    NAMES.map((
      n,
    ) => [n, tf.tensor(Float32Array.from(values[n]), FIX.shapes[n])]),
  );
}

/** A variable holding `values` (its initial tensor released). */
function variableOf(values: Float32Array, shape: number[]): tf.Variable {
  const t = tf.tensor(values, shape);
  const v = tf.variable(t);
  t.dispose();
  return v;
}

function entries(values: Record<string, number[]>): ParamEntry[] {
  return NAMES.map((name) => ({
    name,
    variable: variableOf(Float32Array.from(values[name]), FIX.shapes[name]),
    decay: FIX.decay[name],
  }));
}

function disposeEntries(ps: ParamEntry[]): void {
  for (const p of ps) p.variable.dispose();
}

/** Largest |a - e| over the compared values (for the report in the name). */
let maxTorchDeviation = 0;

async function compare(
  actual: tf.Tensor | Float32Array,
  expected: number[],
  what: string,
): Promise<void> {
  await assertClose(actual, expected, { ...TIGHT, what });
  const a = actual instanceof tf.Tensor ? await actual.data() : actual;
  for (let i = 0; i < expected.length; i++) {
    maxTorchDeviation = Math.max(
      maxTorchDeviation,
      Math.abs(a[i] - expected[i]),
    );
  }
}

await backendTest("AdamW: every step as torch.optim.AdamW", async (backend) => {
  maxTorchDeviation = 0;
  for (const [r, run] of FIX.runs.entries()) {
    const ps = entries(run.init);
    const opt = new AdamW(ps, {
      weightDecay: run.weightDecay,
      betas: run.betas,
      eps: run.eps,
    });
    assertEquals(opt.weightDecay, run.weightDecay);
    for (const [k, step] of run.steps.entries()) {
      opt.lr = step.lr;
      const grads = tensors(step.grads);
      opt.apply(grads);
      // The caller's gradients are left alone.
      assert([...grads.values()].every((g) => !g.isDisposed));
      tf.dispose([...grads.values()]);
      assertEquals(opt.step, k + 1);
      const state = await opt.state();
      assertEquals(state.step, k + 1);
      assertEquals(state.lr, step.lr);
      assertEquals(state.moments.size, 2 * NAMES.length);
      for (const p of ps) {
        const at = `run ${r} step ${k + 1} ${p.name}`;
        await compare(p.variable, step.params[p.name], `${at} param`);
        await compare(
          state.moments.get(`exp_avg.${p.name}`)!,
          step.exp_avg[p.name],
          `${at} exp_avg`,
        );
        await compare(
          state.moments.get(`exp_avg_sq.${p.name}`)!,
          step.exp_avg_sq[p.name],
          `${at} exp_avg_sq`,
        );
      }
    }
    opt.dispose();
    disposeEntries(ps);
  }
  assert(maxTorchDeviation < 1e-6, `max deviation ${maxTorchDeviation}`);
  if (Deno.env.get("TOKENLAB_REPORT_DEVIATION")) {
    console.log(`AdamW [${backend}] max |tfjs - torch|: ${maxTorchDeviation}`);
  }
});

await backendTest(
  "clipGradients: as clip_grad_norm_ and clip_grad_value_",
  async (backend) => {
    maxTorchDeviation = 0;
    const raw = tensors(FIX.clip.grads);
    const cases = [
      {
        max: FIX.clip.normMax,
        mode: "norm" as const,
        want: FIX.clip.normClipped,
      },
      { max: FIX.clip.freeMax, mode: "norm" as const, want: FIX.clip.free },
      {
        max: FIX.clip.valueMax,
        mode: "value" as const,
        want: FIX.clip.valueClipped,
      },
    ];
    for (const c of cases) {
      const { grads, norm } = clipGradients(raw, c.max, c.mode);
      assertEquals(norm.shape, []);
      await compare(norm, [FIX.clip.norm], `${c.mode} ${c.max} norm`);
      assertEquals([...grads.keys()], NAMES);
      for (const n of NAMES) {
        await compare(grads.get(n)!, c.want[n], `${c.mode} ${c.max} ${n}`);
        assert(grads.get(n) !== raw.get(n), "new tensors");
      }
      tf.dispose([norm, ...grads.values()]);
    }
    assertEquals(FIX.clip.freeNorm, FIX.clip.norm);
    // Under the limit nothing changes (the coefficient is exactly 1).
    const { grads, norm } = clipGradients(raw, 1e6, "norm");
    for (const n of NAMES) {
      assertEquals(await grads.get(n)!.data(), await raw.get(n)!.data());
    }
    tf.dispose([norm, ...grads.values()]);
    // Nothing to clip: norm 0.
    const empty = clipGradients(new Map(), 1, "norm");
    assertEquals(empty.grads.size, 0);
    assertEquals((await empty.norm.data())[0], 0);
    empty.norm.dispose();
    // The caller's gradients are left alone.
    for (const n of NAMES) {
      await assertClose(raw.get(n)!, FIX.clip.grads[n], { rtol: 0, atol: 0 });
    }
    tf.dispose([...raw.values()]);
    if (Deno.env.get("TOKENLAB_REPORT_DEVIATION")) {
      console.log(`clip [${backend}] max |tfjs - torch|: ${maxTorchDeviation}`);
    }
  },
);

/**
 * torch's AdamW arithmetic in float32, one rounding per operation, for a
 * parameter large enough to be updated outside a bucket on wasm and cpu.
 */
await backendTest(
  "AdamW: a large parameter, against float32 arithmetic",
  async () => {
    const rng = new Rng(21);
    const shapes = { "big.weight": [128, 160], "big.bias": [160] };
    const init = new Map<string, Float32Array>();
    const ps: ParamEntry[] = Object.entries(shapes).map(([name, shape]) => {
      const v = Float32Array.from(
        { length: shape.reduce((a, b) => a * b) },
        () => rng.normal(),
      );
      init.set(name, v);
      return {
        name,
        variable: variableOf(v, shape),
        decay: shape.length > 1,
      };
    });
    const [b1, b2, eps, wd] = [0.9, 0.999, 1e-8, 0.05];
    const opt = new AdamW(ps, { weightDecay: wd });
    const f = Math.fround;
    const ref = new Map(
      ps.map((p) => {
        const n = p.variable.size;
        const st = {
          p: Float32Array.from(init.get(p.name)!),
          m: new Float32Array(n),
          v: new Float32Array(n),
        };
        return [p.name, st];
      }),
    );
    for (const [k, lr] of [3e-3, 1e-3, 2e-3].entries()) {
      const t = k + 1;
      const grads = gradsAt(ps, 100 + k);
      opt.lr = lr;
      opt.apply(grads);
      const stepSize = f(-(lr / (1 - b1 ** t)));
      const bc2 = f(Math.sqrt(1 - b2 ** t));
      for (const p of ps) {
        const g = await grads.get(p.name)!.data();
        const r = ref.get(p.name)!;
        for (let i = 0; i < g.length; i++) {
          const x = p.decay ? f(r.p[i] * f(1 - lr * wd)) : r.p[i];
          r.m[i] = f(f(r.m[i] * f(b1)) + f(g[i] * f(1 - b1)));
          r.v[i] = f(f(r.v[i] * f(b2)) + f(f(g[i] * f(1 - b2)) * g[i]));
          const denom = f(f(f(Math.sqrt(r.v[i])) / bc2) + f(eps));
          r.p[i] = f(x + f(f(r.m[i] * stepSize) / denom));
        }
      }
      tf.dispose([...grads.values()]);
    }
    const state = await opt.state();
    for (const p of ps) {
      const r = ref.get(p.name)!;
      await assertClose(p.variable, r.p, { ...TIGHT, what: `${p.name} param` });
      await assertClose(state.moments.get(`exp_avg.${p.name}`)!, r.m, {
        ...TIGHT,
        what: `${p.name} exp_avg`,
      });
      await assertClose(state.moments.get(`exp_avg_sq.${p.name}`)!, r.v, {
        ...TIGHT,
        what: `${p.name} exp_avg_sq`,
      });
    }
    opt.dispose();
    disposeEntries(ps);
  },
);

const TINY: Partial<ModelConfig> = {
  imgSize: 16,
  patchSize: 4,
  embedDim: 16,
  depth: 2,
  numHeads: 2,
  stemChannels: 4,
  numClasses: 5,
};

function modelEntries(model: LvVit): ParamEntry[] {
  return model.spec.filter((p) => p.kind === "param").map((p) => ({
    name: p.name,
    variable: model.state.get(p.name)!,
    decay: p.decay,
  }));
}

await backendTest(
  "AdamW: weight decay only where the recipe puts it",
  async () => {
    const model = LvVit.create(TINY, { seed: 3 });
    const ps = modelEntries(model);
    const { decay, noDecay } = decayGroups(ps);
    assertEquals(decay.length + noDecay.length, ps.length);
    for (const n of ["pos_embed", "cls_token", "norm.weight", "norm.bias"]) {
      assert(noDecay.includes(n), `${n} is not decayed`);
    }
    for (const n of ps.map((p) => p.name)) {
      const shape = model.spec.find((p) => p.name === n)!.shape;
      const isNorm = /(^|\.)(norm\d?|bn\d)\.weight$/.test(n);
      if (n.endsWith(".bias") || isNorm) {
        assert(noDecay.includes(n), `${n} is not decayed`);
      }
      if (
        (shape.length === 2 || shape.length === 4) && n !== "pos_embed" &&
        n !== "cls_token"
      ) {
        assert(decay.includes(n), `${n} [${shape}] is decayed`);
      }
    }
    for (
      const n of [
        "patch_embed.conv1.weight",
        "blocks.0.attn.qkv.weight",
        "head.weight",
      ]
    ) {
      assert(decay.includes(n), `${n} is decayed`);
    }
    assert(noDecay.includes("patch_embed.bn1.weight"));
    assert(noDecay.includes("blocks.1.norm2.weight"));
    // Buffers are no parameters: they never reach the optimizer.
    assert(!decay.concat(noDecay).some((n) => n.includes("running_")));

    // Zero gradients: decayed parameters shrink by exactly (1 - lr wd), the
    // others stay put.
    const before = new Map<string, Float32Array>();
    for (const p of ps) {
      before.set(p.name, Float32Array.from(await p.variable.data()));
    }
    const opt = new AdamW(ps, { lr: 0.01, weightDecay: 0.05 });
    const zeros = new Map(ps.map((p) => [p.name, tf.zerosLike(p.variable)]));
    opt.apply(zeros);
    const factor = Math.fround(1 - 0.01 * 0.05);
    for (const p of ps) {
      const now = await p.variable.data();
      const was = before.get(p.name)!;
      const want = p.decay ? was.map((x) => Math.fround(x * factor)) : was;
      assertEquals(Float32Array.from(now), want, p.name);
    }
    tf.dispose([...zeros.values()]);
    opt.dispose();
    model.dispose();
  },
);

/** Deterministic gradients of step `k` for the parameters. */
function gradsAt(ps: ParamEntry[], k: number): Map<string, tf.Tensor> {
  const rng = Rng.derive(11, k);
  return new Map(ps.map((p) => {
    const v = new Float32Array(p.variable.size);
    for (let i = 0; i < v.length; i++) v[i] = rng.normal() * 0.1;
    return [p.name, tf.tensor(v, p.variable.shape)];
  }));
}

async function bytes(ps: ParamEntry[]): Promise<Float32Array[]> {
  return await Promise.all(
    ps.map(async (p) => Float32Array.from(await p.variable.data())),
  );
}

await backendTest(
  "AdamW: state() and load() continue bit-exactly",
  async () => {
    const model = LvVit.create({ ...TINY, depth: 1 }, { seed: 5 });
    const lrs = [1e-3, 5e-3, 2e-3, 1e-4];
    const opts = { weightDecay: 0.05, betas: [0.9, 0.98] as [number, number] };
    const step = (opt: AdamW, ps: ParamEntry[], k: number) => {
      opt.lr = lrs[k];
      const g = gradsAt(ps, k);
      opt.apply(g);
      tf.dispose([...g.values()]);
    };
    // A: four steps straight.
    const a = model.clone();
    const pa = modelEntries(a);
    const optA = new AdamW(pa, opts);
    for (let k = 0; k < 4; k++) step(optA, pa, k);
    // B: two steps, save; C: a fresh optimizer over copies, load, two more.
    const b = model.clone();
    const pb = modelEntries(b);
    const optB = new AdamW(pb, opts);
    for (let k = 0; k < 2; k++) step(optB, pb, k);
    const saved = await optB.state();
    const savedCopy = new Map(
      [...saved.moments].map(([k, v]) => [k, Float32Array.from(v)]),
    );
    const c = b.clone();
    optB.dispose();
    b.dispose();
    const pc = modelEntries(c);
    const optC = new AdamW(pc, {
      lr: 0.5,
      weightDecay: 0.3,
      betas: [0.5, 0.5],
      eps: 1,
    });
    optC.load(saved);
    assertEquals(optC.step, 2);
    assertEquals(optC.lr, lrs[1]);
    assertEquals(optC.weightDecay, 0.05);
    assertEquals(optC.betas, [0.9, 0.98]);
    assertEquals(optC.eps, 1e-8);
    for (let k = 2; k < 4; k++) step(optC, pc, k);
    assertEquals(optC.step, 4);
    assertEquals(await bytes(pc), await bytes(pa));
    const sa = await optA.state(), sc = await optC.state();
    assertEquals([...sc.moments.keys()], [...sa.moments.keys()]);
    assertEquals(sc.moments, sa.moments);
    // State-dict order: every exp_avg in parameter order, then every exp_avg_sq.
    assertEquals([...sa.moments.keys()], [
      ...pa.map((p) => `exp_avg.${p.name}`),
      ...pa.map((p) => `exp_avg_sq.${p.name}`),
    ]);
    // The loaded state was copied in: C's later steps did not write into it.
    assertEquals(saved.moments, savedCopy);
    optA.dispose();
    optC.dispose();
    a.dispose();
    c.dispose();
    model.dispose();
  },
);

await backendTest(
  "AdamW: bad parameters, gradients and states are refused",
  async () => {
    const w = variableOf(new Float32Array(6), [2, 3]);
    const b = variableOf(new Float32Array(3), [3]);
    const ps: ParamEntry[] = [
      { name: "fc.weight", variable: w, decay: true },
      { name: "fc.bias", variable: b, decay: false },
    ];
    assertThrows(() => new AdamW([]), OptimizerError, "at least one parameter");
    assertThrows(
      () => new AdamW([ps[0], ps[0]]),
      OptimizerError,
      '"fc.weight" is listed twice',
    );
    assertThrows(() => new AdamW(ps, { lr: -1 }), OptimizerError, "lr must be");
    assertThrows(
      () => new AdamW(ps, { betas: [0.9, 1] }),
      OptimizerError,
      "betas must be two numbers in [0, 1)",
    );
    assertThrows(
      () => new AdamW(ps, { eps: 0 }),
      OptimizerError,
      "eps must be",
    );
    assertThrows(
      () => new AdamW(ps, { weightDecay: NaN }),
      OptimizerError,
      "weightDecay must be",
    );
    const opt = new AdamW(ps);
    const gw = tf.zeros([2, 3]), gb = tf.zeros([3]), gbad = tf.zeros([3, 1]);
    const e = assertThrows(
      () => opt.apply(new Map([["fc.weight", gw]])),
      OptimizerError,
      'no gradient for parameter "fc.bias"',
    );
    assertEquals(e.name, "OptimizerError");
    assertThrows(
      () => opt.apply(new Map([["fc.weight", gw], ["fc.bias", gbad]])),
      OptimizerError,
      'gradient of "fc.bias" has shape [3,1], but the parameter has shape [3]',
    );
    assertThrows(
      () =>
        opt.apply(
          new Map([["fc.weight", gw], ["fc.bias", gb], ["head.bias", gb]]),
        ),
      OptimizerError,
      '"head.bias"',
    );
    opt.lr = NaN;
    assertThrows(
      () => opt.apply(new Map([["fc.weight", gw], ["fc.bias", gb]])),
      OptimizerError,
      "lr must be",
    );
    opt.lr = 1e-3;
    assertEquals(opt.step, 0); // refused steps change nothing
    const good = await opt.state();
    const without = new Map(good.moments);
    without.delete("exp_avg_sq.fc.bias");
    assertThrows(
      () => opt.load({ ...good, moments: without }),
      OptimizerError,
      'no "exp_avg_sq.fc.bias"',
    );
    const short = new Map(good.moments);
    short.set("exp_avg.fc.weight", new Float32Array(5));
    assertThrows(
      () => opt.load({ ...good, moments: short }),
      OptimizerError,
      'saved moment "exp_avg.fc.weight" has 5 values, but parameter "fc.weight" of shape [2,3] has 6',
    );
    const extra = new Map(good.moments);
    extra.set("exp_avg.head.weight", new Float32Array(1));
    assertThrows(
      () => opt.load({ ...good, moments: extra }),
      OptimizerError,
      '"exp_avg.head.weight", which belongs to no parameter',
    );
    assertThrows(
      () => opt.load({ ...good, step: -1 }),
      OptimizerError,
      "step must be an integer",
    );
    assertThrows(
      () => clipGradients(new Map([["w", gw]]), 0, "norm"),
      OptimizerError,
      "maxValue > 0",
    );
    assertThrows(
      () => clipGradients(new Map([["w", gw]]), 1, "l1" as "norm"),
      OptimizerError,
      'mode must be "norm"',
    );
    opt.dispose();
    assertThrows(
      () => opt.apply(new Map([["fc.weight", gw], ["fc.bias", gb]])),
      OptimizerError,
      "disposed",
    );
    tf.dispose([gw, gb, gbad, w, b]);
  },
  { backends: ["cpu"] },
);

// ---------------------------------------------------------------- EMA, clone

async function snapshot(model: LvVit): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const [n, v] of model.state) {
    out.set(n, Float32Array.from(await v.data()));
  }
  return out;
}

await backendTest(
  "LvVit.clone: an independent copy, buffers and flags included",
  async () => {
    const model = LvVit.create(TINY, { seed: 1 });
    const copy = model.clone();
    assertEquals(copy.config, model.config);
    assertEquals([...copy.state.keys()], [...model.state.keys()]);
    for (const [n, v] of model.state) {
      const c = copy.state.get(n)!;
      assert(c !== v, `${n} is a new variable`);
      assertEquals(c.trainable, v.trainable, `${n} trainable flag`);
      assertEquals(c.shape, v.shape);
    }
    assertEquals(await snapshot(copy), await snapshot(model));
    const original = await snapshot(model);
    // Writes to one model do not reach the other, either way.
    model.state.get("pos_embed")!.assign(
      tf.tidy(() => tf.onesLike(model.state.get("pos_embed")!)),
    );
    copy.state.get("head.bias")!.assign(
      tf.tidy(() => tf.onesLike(copy.state.get("head.bias")!)),
    );
    assertEquals(
      Float32Array.from(await copy.state.get("pos_embed")!.data()),
      original.get("pos_embed"),
    );
    assertEquals(
      Float32Array.from(await model.state.get("head.bias")!.data()),
      original.get("head.bias"),
    );
    // Disposing the original leaves the copy usable.
    model.dispose();
    const y = copy.predict(tf.zeros([1, 16, 16, 3]));
    assertEquals(y.shape, [1, 5]);
    tf.dispose(y);
    copy.dispose();
    assertThrows(() => model.clone(), Error, "disposed");
  },
);

await backendTest(
  "ModelEma: every entry (BatchNorm buffers too) as timm's ModelEmaV2",
  async () => {
    const model = LvVit.create(TINY, { seed: 2 });
    const d = 0.75;
    const ema = new ModelEma(model, d);
    assertEquals(ema.decay, d);
    assertEquals(await snapshot(ema.model), await snapshot(model));
    // Move the source: a training forward updates the BatchNorm statistics,
    // and every parameter is nudged.
    const x = tf.randomNormal([2, 16, 16, 3], 0, 1, "float32", 4);
    const out = model.forwardTrain(x, { rng: new Rng(0) });
    tf.dispose([x, out.cls, out.aux!]);
    tf.tidy(() => {
      for (const p of model.spec.filter((p) => p.kind === "param")) {
        const v = model.state.get(p.name)!;
        v.assign(tf.add(v, tf.randomNormal(v.shape, 0, 0.1, "float32", 9)));
      }
    });
    const e0 = await snapshot(ema.model), m0 = await snapshot(model);
    const bnMean = "patch_embed.bn1.running_mean";
    assert(
      !m0.get(bnMean)!.every((v, i) => v === e0.get(bnMean)![i]),
      "the running mean moved",
    );
    ema.update(model);
    const e1 = await snapshot(ema.model);
    for (const [n, e] of e0) {
      const m = m0.get(n)!;
      // Integer counters (num_batches_tracked) are copied, not averaged.
      const want = n.endsWith("num_batches_tracked")
        ? m
        : e.map((v, i) =>
          Math.fround(Math.fround(d * v) + Math.fround((1 - d) * m[i]))
        );
      await assertClose(e1.get(n)!, want, { rtol: 1e-6, atol: 1e-7, what: n });
    }
    // Twice, in float64 by hand, on the running mean.
    ema.update(model);
    const e2 = await snapshot(ema.model);
    const want2 = e0.get(bnMean)!.map((v, i) => {
      const m = m0.get(bnMean)![i];
      return d * (d * v + (1 - d) * m) + (1 - d) * m;
    });
    await assertClose(e2.get(bnMean)!, want2, {
      rtol: 1e-6,
      atol: 1e-7,
      what: "two updates",
    });
    // The source is untouched.
    assertEquals(await snapshot(model), m0);
    // Mismatches are refused.
    const other = LvVit.create({ ...TINY, depth: 1 });
    assertThrows(() => ema.update(other), EmaError, "has no state entry");
    other.dispose();
    assertThrows(
      () => new ModelEma(model, 1),
      EmaError,
      "decay must be a number in [0, 1)",
    );
    assertThrows(() => new ModelEma(model, -0.1), EmaError);
    ema.dispose();
    assert(ema.model.isDisposed);
    assertThrows(() => ema.update(model), EmaError, "disposed");
    model.dispose();
  },
);

// ---------------------------------------------------------------- memory

await backendTest("optimizer, clipping and EMA leak no tensors", async () => {
  const model = LvVit.create(TINY, { seed: 4 });
  const ps = modelEntries(model);
  const opt = new AdamW(ps, { lr: 1e-3 });
  const ema = new ModelEma(model, 0.99);
  const grads = gradsAt(ps, 0);
  for (let k = 0; k < 3; k++) {
    await assertNoLeaks(async () => {
      const clipped = clipGradients(grads, 0.5, k % 2 === 0 ? "norm" : "value");
      await clipped.norm.data();
      opt.apply(clipped.grads);
      tf.dispose([clipped.norm, ...clipped.grads.values()]);
      ema.update(model);
      await opt.state();
    }, `training step ${k}`);
  }
  // The optimizer holds two moment vectors per bucket and nothing else
  // (tf.variable shares its initial value's data: a kept zero tensor would
  // pin it for good).
  const count = tf.memory().numTensors;
  const second = new AdamW(ps);
  const held = tf.memory().numTensors - count;
  // With the fused WebGPU kernel every parameter is its own bucket.
  if (hasFusedAdamW()) {
    assertEquals(held, 2 * ps.length, "moments of one bucket per parameter");
  } else {
    assertEquals(held, 4, "moments of two buckets (decayed, plain)");
  }
  second.dispose();
  assertEquals(tf.memory().numTensors, count, "dispose releases the moments");
  const before = tf.memory().numTensors;
  opt.load(await opt.state());
  assertEquals(tf.memory().numTensors, before, "load");
  tf.dispose([...grads.values()]);
  opt.dispose();
  ema.dispose();
  model.dispose();
});
