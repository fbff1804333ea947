/**
 * The token labeling losses: values against hand-computed float64 numbers
 * and a PyTorch fixture (tests/fixtures/make_losses_fixture.py), gradients
 * by finite differences, stopGradient, every bad input, no leaks, on every
 * backend.
 */

import { assertEquals, assertThrows } from "./_assert.ts";
import { ROOT } from "./_helpers.ts";
import {
  fromOfficialTarget,
  imageTokenTargets,
  initBackend,
  LossInputError,
  refineClassTarget,
  smoothedOneHot,
  softTargetCrossEntropy,
  stopGradient,
  tf,
  TOKEN_LABELING_PRESETS,
  tokenLabelingLoss,
  tokenLabelingLossParts,
} from "tokenlab";
import {
  assertClose,
  assertNoLeaks,
  backendTest,
  checkGradients,
} from "tokenlab/testing";

/** -sum_c t_c log softmax(x)_c for one row, in float64. */
function ce64(x: number[], t: number[]): number {
  const m = Math.max(...x);
  const lse = m + Math.log(x.reduce((s, v) => s + Math.exp(v - m), 0));
  return -t.reduce((s, tc, c) => s + tc * (x[c] - lse), 0);
}

function rows(v: number[], width: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < v.length; i += width) out.push(v.slice(i, i + width));
  return out;
}

const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;

const X = [[2, -1, 0.5], [-3, 0, 4]];
const T = [[0.7, 0.2, 0.1], [0, 0, 1]];

await backendTest("softTargetCrossEntropy: hand-computed values", async () => {
  const x = tf.tensor2d(X), t = tf.tensor2d(T);
  // log 2 for uniform logits and a one-hot target.
  const u = tf.zeros([1, 2]), oh = tf.tensor2d([[0, 1]]);
  const l = softTargetCrossEntropy(x, t);
  const l2 = softTargetCrossEntropy(u, oh);
  await assertClose(l, mean(X.map((r, i) => ce64(r, T[i]))), {
    rtol: 1e-5,
    what: "loss",
  });
  await assertClose(l2, Math.LN2, { rtol: 1e-6, what: "log 2" });
  // Stable where a naive log(softmax) gives -inf * 0 = NaN.
  const big = tf.tensor2d([[1000, -1000, 0]]), bt = tf.tensor2d([[0, 1, 0]]);
  const lb = softTargetCrossEntropy(big, bt);
  await assertClose(lb, 2000, { rtol: 1e-6, what: "large logits" });
  tf.dispose([x, t, u, oh, l, l2, big, bt, lb]);
});

await backendTest(
  "token labeling loss: hand-computed, presets, parts, ReLabel and image labels",
  async () => {
    const cls = [[1, 0, -1], [0.5, 2, 0]];
    const aux = [[[0, 1, 2], [2, 1, 0]], [[1, 1, 1], [-1, 0, 3]]];
    const yc = [[0.8, 0.1, 0.1], [0.2, 0.6, 0.2]];
    const yt = [[[0.1, 0.2, 0.7], [0.5, 0.25, 0.25]], [[1, 0, 0], [0, 0, 1]]];
    const cePart = mean(cls.map((r, i) => ce64(r, yc[i])));
    const densePart = mean(
      aux.flatMap((img, b) => img.map((r, n) => ce64(r, yt[b][n]))),
    );
    const o = { cls: tf.tensor2d(cls), aux: tf.tensor3d(aux) };
    const y = { cls: tf.tensor2d(yc), tokens: tf.tensor3d(yt) };
    const made: tf.Tensor[] = [o.cls, o.aux, y.cls, y.tokens];
    const keep = <T extends tf.Tensor>(t: T) => (made.push(t), t);
    await assertClose(keep(tokenLabelingLoss(o, y)), cePart + densePart, {
      rtol: 1e-5,
      what: "lvvit 1.0/1.0",
    });
    await assertClose(
      keep(tokenLabelingLoss(o, y, { preset: "volo" })),
      cePart + 0.5 * densePart,
      { rtol: 1e-5, what: "volo 1.0/0.5" },
    );
    assertEquals(TOKEN_LABELING_PRESETS.volo.denseWeight, 0.5);
    const p = tokenLabelingLossParts(o, y, { clsWeight: 2, denseWeight: 0.25 });
    made.push(p.loss, p.cls, p.dense);
    await assertClose(p.cls, cePart, { rtol: 1e-5, what: "cls part" });
    await assertClose(p.dense, densePart, { rtol: 1e-5, what: "dense part" });
    await assertClose(p.loss, 2 * cePart + 0.25 * densePart, {
      rtol: 1e-5,
      what: "weighted",
    });
    // S = 1 (ReLabel): no token targets, or no aux head: class term alone.
    await assertClose(keep(tokenLabelingLoss(o, { cls: y.cls })), cePart, {
      rtol: 1e-5,
      what: "ReLabel (no tokens)",
    });
    await assertClose(
      keep(tokenLabelingLoss({ cls: o.cls, aux: null }, { cls: y.cls })),
      cePart,
      { rtol: 1e-5, what: "ReLabel (no aux head)" },
    );
    // Image labels: every token takes its image's smoothed label; a [B, C]
    // token target means the same (the official 2-D case).
    const it = imageTokenTargets([2, 0], { numClasses: 3, numTokens: 2 });
    made.push(it.cls, it.tokens);
    const sm = [[0.1 / 3, 0.1 / 3, 0.9 + 0.1 / 3], [
      0.9 + 0.1 / 3,
      0.1 / 3,
      0.1 / 3,
    ]];
    await assertClose(it.tokens, sm.flatMap((r) => [...r, ...r]), {
      rtol: 1e-6,
      what: "image token targets",
    });
    const want = mean(cls.map((r, i) => ce64(r, sm[i]))) +
      mean(aux.flatMap((img, b) => img.map((r) => ce64(r, sm[b]))));
    await assertClose(keep(tokenLabelingLoss(o, it)), want, {
      rtol: 1e-5,
      what: "image labels",
    });
    await assertClose(
      keep(tokenLabelingLoss(o, { cls: it.cls, tokens: it.cls })),
      want,
      { rtol: 1e-5, what: "image labels as [B, C] token targets" },
    );
    tf.dispose(made);
  },
);

await backendTest(
  "VOLO ground-truth refinement: 0.5/0.5 when the annotator agrees, else 0.9/0.1",
  async () => {
    const ann = [[0.6, 0.3, 0.1], [0.6, 0.3, 0.1]];
    const truth = [[0.9, 0.05, 0.05], [0.05, 0.9, 0.05]];
    const a = tf.tensor2d(ann), t = tf.tensor2d(truth);
    const r = refineClassTarget(a, t);
    const want = [
      ...ann[0].map((v, c) => 0.5 * v + 0.5 * truth[0][c]),
      ...ann[1].map((v, c) => 0.9 * v + 0.1 * truth[1][c]),
    ];
    await assertClose(r, want, { rtol: 1e-6, what: "refined" });
    // Through the loss: refine "volo" trains against the refined target.
    const x = tf.tensor2d(X.map((row) => row.slice()));
    const l = tokenLabelingLoss({ cls: x }, { cls: a, truth: t }, {
      refine: "volo",
    });
    const rows2 = rows(want, 3);
    await assertClose(l, mean(X.map((row, i) => ce64(row, rows2[i]))), {
      rtol: 1e-5,
      what: "refined loss",
    });
    tf.dispose([a, t, r, x, l]);
  },
);

const FIX = JSON.parse(
  await Deno.readTextFile(`${ROOT}tests/fixtures/losses.json`),
) as {
  B: number;
  N: number;
  C: number;
  cls: number[];
  aux: number[];
  target: number[];
  lvvit: number;
  volo_gt: number;
  lvvit_box: number;
  volo_gt_box: number;
  image_level: number;
};

await backendTest(
  "token labeling loss matches the official arithmetic (PyTorch fixture, official target layout)",
  async () => {
    const { B, N, C } = FIX;
    const cls = tf.tensor2d(FIX.cls, [B, C]);
    const aux = tf.tensor3d(FIX.aux, [B, N, C]);
    const target = tf.tensor3d(FIX.target, [B, C, 2 + N]);
    const t = fromOfficialTarget(target);
    const lv = tokenLabelingLoss({ cls, aux }, t);
    const volo = tokenLabelingLoss({ cls, aux }, t, {
      preset: "volo",
      refine: "volo",
    });
    const img = tokenLabelingLoss({ cls, aux }, {
      cls: t.truth,
      tokens: t.truth,
    });
    await assertClose(lv, FIX.lvvit, {
      rtol: 1e-5,
      what: "TokenLabelCrossEntropy",
    });
    await assertClose(volo, FIX.volo_gt, {
      rtol: 1e-5,
      what: "VOLO TokenLabelGTCrossEntropy (dense 0.5)",
    });
    // MixToken: a box of one token on the 2x2 grid (lambda' = 0.75).
    const box = { top: 0, left: 1, bottom: 1, right: 2 };
    const lvBox = tokenLabelingLoss({ cls, aux }, t, { box });
    const voloBox = tokenLabelingLoss({ cls, aux }, t, {
      preset: "volo",
      refine: "volo",
      box,
    });
    await assertClose(lvBox, FIX.lvvit_box, {
      rtol: 1e-5,
      what: "TokenLabelCrossEntropy with a box",
    });
    await assertClose(voloBox, FIX.volo_gt_box, {
      rtol: 1e-5,
      what: "VOLO TokenLabelGTCrossEntropy with a box",
    });
    tf.dispose([lvBox, voloBox]);
    await assertClose(img, FIX.image_level, {
      rtol: 1e-5,
      what: "2-D (image-level) target",
    });
    tf.dispose([cls, aux, target, t.truth, t.cls, t.tokens, lv, volo, img]);
  },
);

await backendTest("loss gradients by finite differences", async () => {
  const cls = tf.tensor2d([[0.3, -0.2, 1], [0.1, 0.4, -0.6]]);
  const aux = tf.tensor3d([[[0.2, 0.1, -0.3], [1, 0, 0.5]], [[-0.4, 0.3, 0], [
    0.2,
    0.2,
    -1,
  ]]]);
  const yc = tf.tensor2d([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]);
  const yt = tf.tensor3d([[[0.1, 0.2, 0.7], [0.5, 0.25, 0.25]], [[1, 0, 0], [
    0.3,
    0.3,
    0.4,
  ]]]);
  const truth = smoothedOneHot([0, 1], 3);
  try {
    await checkGradients(
      (c, a) =>
        tokenLabelingLoss({ cls: c, aux: a }, { cls: yc, tokens: yt, truth }, {
          preset: "volo",
          refine: "volo",
        }),
      [cls, aux],
      { eps: 1e-2, rtol: 2e-2, atol: 1e-3, what: "d loss / d logits" },
    );
    // d CE / d x = softmax(x) - t (rows of t sum to one), / B.
    const g = tf.grad((c: tf.Tensor) => softTargetCrossEntropy(c, yc))(cls);
    const sm = await tf.softmax(cls).data();
    const t = await yc.data();
    await assertClose(g, Array.from(sm, (v, i) => (v - t[i]) / 2), {
      rtol: 1e-4,
      atol: 1e-6,
      what: "analytic softmax - t",
    });
    g.dispose();
  } finally {
    tf.dispose([cls, aux, yc, yt, truth]);
  }
});

await backendTest(
  "stopGradient: the value passes, the gradient is zero",
  async () => {
    const x = tf.tensor1d([1, -2, 3]);
    const y = stopGradient(x);
    await assertClose(y, [1, -2, 3], { what: "value" });
    // d/dx sum(x * sg(x)) = sg(x): only the first factor is differentiated.
    const g = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(x, stopGradient(x))))(x);
    await assertClose(g, [1, -2, 3], { what: "gradient" });
    const g0 = tf.grad((x: tf.Tensor) => tf.sum(tf.square(stopGradient(x))))(x);
    await assertClose(g0, [0, 0, 0], { what: "zero gradient" });
    await assertNoLeaks(() => {
      const gg = tf.grad((x: tf.Tensor) => tf.sum(stopGradient(x)))(x);
      gg.dispose();
    }, "stopGradient backward");
    tf.dispose([x, y, g, g0]);
  },
);

await backendTest("the losses leak no tensors", async () => {
  const o = {
    cls: tf.randomNormal([2, 4], 0, 1, "float32", 1),
    aux: tf.randomNormal([2, 3, 4], 0, 1, "float32", 2),
  };
  const it = imageTokenTargets([1, 3], { numClasses: 4, numTokens: 3 });
  const t = { ...it, truth: it.cls };
  await assertNoLeaks(async () => {
    const l = tokenLabelingLoss(o, t, { refine: "volo" });
    await l.data();
    l.dispose();
    const p = tokenLabelingLossParts(o, { cls: it.cls });
    tf.dispose([p.loss, p.cls, p.dense]);
  }, "loss");
  await assertNoLeaks(async () => {
    const l = tokenLabelingLoss(o, t, { refine: "volo", preset: "volo" });
    await l.data();
    l.dispose();
    const g = tf.grad((c: tf.Tensor) =>
      tokenLabelingLoss({ cls: c, aux: o.aux }, t)
    )(o.cls);
    g.dispose();
  }, "loss and gradient");
  tf.dispose([o.cls, o.aux, it.cls, it.tokens]);
});

Deno.test("bad inputs: shapes named, weights, refinement, labels", async () => {
  await initBackend({ backend: "cpu" });
  const x = tf.zeros([2, 3]), aux = tf.zeros([2, 4, 3]);
  const t = tf.zeros([2, 3]), tok = tf.zeros([2, 4, 3]);
  const wrongC = tf.zeros([2, 5]), wrongB = tf.zeros([3, 3]);
  const wrongN = tf.zeros([2, 6, 3]);
  const int = tf.zeros([2, 3], "int32");
  try {
    assertThrows(
      () => softTargetCrossEntropy(x, wrongC),
      LossInputError,
      "targets [2,5] do not match the logits [2,3] (class count 5 vs 3)",
    );
    assertThrows(
      () => softTargetCrossEntropy(x, wrongB),
      LossInputError,
      "batch size 3 vs 2",
    );
    assertThrows(
      () => tokenLabelingLoss({ cls: x, aux }, { cls: t, tokens: wrongN }),
      LossInputError,
      "token targets [2,6,3] do not match the logits [2,4,3] (token count 6 vs 4)",
    );
    assertThrows(
      () => softTargetCrossEntropy(x, int),
      LossInputError,
      "must be float32, found int32",
    );
    assertThrows(
      () => softTargetCrossEntropy(tf.zeros([3]), tf.zeros([3])),
      LossInputError,
      "[batch, classes]",
    );
    assertThrows(
      () =>
        tokenLabelingLoss({ cls: x, aux }, { cls: t, tokens: tok }, {
          denseWeight: -0.5,
        }),
      LossInputError,
      "denseWeight must be a finite number >= 0, found -0.5",
    );
    assertThrows(
      () => tokenLabelingLoss({ cls: x, aux }, { cls: t }, { clsWeight: -1 }),
      LossInputError,
      "clsWeight must be a finite number >= 0, found -1",
    );
    assertThrows(
      () =>
        tokenLabelingLoss({ cls: x, aux }, { cls: t }, {
          clsWeight: 0,
          denseWeight: 0,
        }),
      LossInputError,
      "both 0",
    );
    assertThrows(
      () =>
        tokenLabelingLoss({ cls: x, aux }, { cls: t }, {
          preset: "deit" as "volo",
        }),
      LossInputError,
      'unknown preset "deit"',
    );
    assertThrows(
      () => tokenLabelingLoss({ cls: x, aux }, { cls: t }, { refine: "volo" }),
      LossInputError,
      "needs the smoothed ground truth",
    );
    assertThrows(
      () => tokenLabelingLoss({ cls: x, aux: null }, { cls: t, tokens: tok }),
      LossInputError,
      "no token logits",
    );
    assertThrows(
      () =>
        tokenLabelingLoss({ cls: x, aux: tf.zeros([2, 4, 5]) }, {
          cls: t,
          tokens: tf.zeros([2, 4, 5]),
        }),
      LossInputError,
      "do not match the class-token logits",
    );
    assertThrows(
      () => refineClassTarget(t, wrongC),
      LossInputError,
      "[2,5] do not match the logits [2,3]",
    );
    assertThrows(
      () => smoothedOneHot([0, 3], 3),
      LossInputError,
      "label 3 of image 1",
    );
    assertThrows(() => smoothedOneHot([0.5], 3), LossInputError, "label 0.5");
    assertThrows(
      () => smoothedOneHot([0], 3, { smoothing: 1 }),
      LossInputError,
      "smoothing",
    );
    assertThrows(
      () => imageTokenTargets([0], { numClasses: 3, numTokens: 0 }),
      LossInputError,
      "numTokens",
    );
    assertThrows(
      () =>
        tokenLabelingLoss({ cls: x }, { cls: t }, {
          box: { top: 0, left: 0, bottom: 1, right: 1 },
        }),
      LossInputError,
      "a MixToken box needs the token count",
    );
    assertThrows(
      () =>
        tokenLabelingLoss({ cls: x, aux }, { cls: t, tokens: tok }, {
          box: { top: 0, left: 0, bottom: 3, right: 2 },
        }),
      LossInputError,
      "is not a box of at most 4 tokens",
    );
    assertThrows(
      () => fromOfficialTarget(tf.zeros([2, 3, 2])),
      LossInputError,
      "[batch, classes, 2 + tokens]",
    );
  } finally {
    tf.dispose([x, aux, t, tok, wrongC, wrongB, wrongN, int]);
  }
});
