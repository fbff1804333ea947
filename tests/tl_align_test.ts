/**
 * TL-Align: the initial label embedding, label propagation against a direct
 * float64 computation from independently captured attention maps (ViT
 * baseline and LV-ViT), labels staying distributions, no gradient through
 * the aligned labels, no effect on the forward, no leaks per training step,
 * and the refusals of bad input, on every backend.
 */

import { assert, assertEquals, assertThrows } from "./_assert.ts";
import {
  initBackend,
  LossInputError,
  LvVit,
  type ModelConfig,
  patchCutmix,
  Rng,
  smoothedOneHot,
  softTargetCrossEntropy,
  tf,
  TlAlign,
  tlAlignInitialLabels,
} from "tokenlab";
import { assertClose, assertNoLeaks, backendTest } from "tokenlab/testing";

/** A tiny DeiT-style ViT: 16 px, 4 px patches (16 tokens), 2 blocks. */
const VIT: Partial<ModelConfig> = {
  name: "vit_tiny_test",
  imgSize: 16,
  patchSize: 4,
  embedDim: 16,
  depth: 2,
  numHeads: 2,
  mlpRatio: 2,
  stem: "linear",
  skipLam: 1,
  auxHead: false,
  numClasses: 4,
};

/** A tiny LV-ViT (conv stem, aux head, skipLam 2). */
const LVVIT: Partial<ModelConfig> = {
  name: "lvvit_tiny_test",
  imgSize: 16,
  patchSize: 8,
  embedDim: 16,
  depth: 3,
  numHeads: 2,
  mlpRatio: 2,
  stemChannels: 4,
  skipLam: 2,
  numClasses: 3,
};

/** Sources of a CutMix box snapped to the grid: rows/cols [1, 3) of a 4x4 grid come from the partner. */
function boxSources(B: number, g: number): number[][] {
  return Array.from(
    { length: B },
    (_, b) =>
      Array.from({ length: g * g }, (_, n) => {
        const r = Math.floor(n / g), c = n % g;
        const inside = r >= 1 && r < 3 && c >= 1 && c < 3;
        return inside ? B - 1 - b : b;
      }),
  );
}

/** Y_L from Y_0 and per-block attention [B, H, T, T], in float64 loops. */
function propagate64(
  y0: Float32Array,
  attns: Float32Array[],
  B: number,
  H: number,
  T: number,
  C: number,
): Float64Array {
  let y = Float64Array.from(y0);
  for (const a of attns) {
    const next = new Float64Array(y.length);
    for (let b = 0; b < B; b++) {
      for (let i = 0; i < T; i++) {
        for (let c = 0; c < C; c++) {
          let s = 0;
          for (let j = 0; j < T; j++) {
            let m = 0;
            for (let h = 0; h < H; h++) m += a[((b * H + h) * T + i) * T + j];
            s += (m / H) * y[(b * T + j) * C + c];
          }
          next[(b * T + i) * C + c] = 0.5 * (s + y[(b * T + i) * C + c]);
        }
      }
    }
    y = next;
  }
  return y;
}

await backendTest(
  "initial label embedding: sources, class token mean or given",
  async () => {
    const labels = smoothedOneHot([0, 2], 3, { smoothing: 0 });
    const src = [[0, 1, 0, 0], [1, 1, 0, 1]];
    const y0 = tlAlignInitialLabels(labels, src);
    const oh = [[1, 0, 0], [0, 0, 1]];
    const want = src.flatMap((row) => {
      const toks = row.map((s) => oh[s]);
      const cls = [0, 1, 2].map((c) => toks.reduce((m, t) => m + t[c], 0) / 4);
      return [cls, ...toks].flat();
    });
    await assertClose(y0, want, { what: "Y_0 (class token: token mean)" });
    assertEquals(y0.shape, [2, 5, 3]);
    const given = tf.tensor2d([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]]);
    const y0b = tlAlignInitialLabels(labels, src, { classLabels: given });
    const head = tf.slice(y0b, [0, 0, 0], [2, 1, 3]);
    await assertClose(head, [0.6, 0.3, 0.1, 0.2, 0.2, 0.6], {
      what: "given class labels",
    });
    tf.dispose([labels, y0, given, y0b, head]);
  },
);

for (const [what, config] of [["ViT", VIT], ["LV-ViT", LVVIT]] as const) {
  await backendTest(
    `label propagation through a tiny ${what} equals the direct float64 computation; labels stay distributions`,
    async () => {
      const model = LvVit.create(config, { seed: 7 });
      const B = 2, g = model.grid, N = g * g, C = model.config.numClasses;
      const H = model.config.numHeads, T = N + 1;
      const x = tf.randomNormal([B, 16, 16, 3], 0, 1, "float32", 3);
      const labels = smoothedOneHot([0, C - 1], C);
      const src = g === 4 ? boxSources(B, g) : [[0, 1, 0, 0], [1, 1, 0, 1]];
      const y0 = tlAlignInitialLabels(labels, src);
      const align = new TlAlign(y0);
      const captured: tf.Tensor[] = [];
      const out = model.forwardTrain(x, {
        rng: new Rng(1),
        onAttention: (block, attn) => {
          captured.push(tf.keep(tf.clone(attn)));
          align.hook(block, attn);
        },
      });
      try {
        assertEquals(align.blocks, model.config.depth);
        const attns = await Promise.all(
          captured.map(async (a) => (await a.data()) as Float32Array),
        );
        const want = propagate64(
          (await y0.data()) as Float32Array,
          attns,
          B,
          H,
          T,
          C,
        );
        const yl = align.labels();
        assertEquals(yl.shape, [B, T, C]);
        await assertClose(yl, want, {
          rtol: 1e-5,
          atol: 1e-6,
          what: "Y_L",
        });
        const got = await yl.data();
        for (let t = 0; t < B * T; t++) {
          let s = 0;
          for (let c = 0; c < C; c++) {
            assert(got[t * C + c] >= 0, `label ${t} has a negative entry`);
            s += got[t * C + c];
          }
          assert(Math.abs(s - 1) < 1e-5, `token ${t} sums to ${s}`);
        }
        const cls = align.classLabel();
        await assertClose(
          cls,
          Array.from(
            { length: B * C },
            (_, i) => want[Math.floor(i / C) * T * C + (i % C)],
          ),
          { rtol: 1e-5, atol: 1e-6, what: "Y_L[:, 0]" },
        );
        // The labels moved: the class token is no longer its Y_0.
        const y00 = await tf.tidy(() => tf.slice(y0, [0, 0, 0], [B, 1, C]))
          .data();
        let moved = 0;
        for (let i = 0; i < B * C; i++) {
          moved = Math.max(
            moved,
            Math.abs(want[Math.floor(i / C) * T * C + (i % C)] - y00[i]),
          );
        }
        assert(moved > 1e-4, `aligned class label equals Y_0 (moved ${moved})`);
      } finally {
        align.dispose();
        tf.dispose([
          x,
          labels,
          y0,
          out.cls,
          ...(out.aux ? [out.aux] : []),
          ...captured,
        ]);
        model.dispose();
      }
    },
  );
}

await backendTest(
  "no gradient flows through the aligned labels into the attention",
  async () => {
    const model = LvVit.create(VIT, { seed: 11 });
    const vars = model.trainableVariables();
    const x = tf.randomNormal([2, 16, 16, 3], 0, 1, "float32", 5);
    const labels = smoothedOneHot([1, 3], 4);
    const y0 = tlAlignInitialLabels(labels, boxSources(2, 4));
    const step = (
      hook: ((b: number, a: tf.Tensor4D) => void) | undefined,
      target: () => tf.Tensor,
    ) =>
      tf.variableGrads(() => {
        const out = model.forwardTrain(x, {
          rng: new Rng(0),
          onAttention: hook,
        });
        return softTargetCrossEntropy(out.cls, target());
      }, vars);
    const align = new TlAlign(y0);
    const a = step(align.hook, () => align.classLabel());
    const constant = tf.clone(align.classLabel());
    align.dispose();
    // The same loss against a constant copy of the final label.
    const b = step(undefined, () => constant);
    // The hook's own detach, without the one on classLabel(): the label read
    // from labels() is on the tape, only the attention is cut.
    const align2 = new TlAlign(y0);
    const d = step(
      align2.hook,
      () => tf.reshape(tf.slice(align2.labels(), [0, 0, 0], [2, 1, 4]), [2, 4]),
    );
    align2.dispose();
    // And a deliberately leaky alignment (no detach): gradients must differ,
    // which shows the comparison above can see a leak.
    let y = y0;
    const leaky: tf.Tensor[] = [];
    const c = step((_, attn) => {
      y = tf.keep(tf.mul(tf.add(tf.matMul(tf.mean(attn, 1), y), y), 0.5));
      leaky.push(y);
    }, () => tf.reshape(tf.slice(y, [0, 0, 0], [2, 1, 4]), [2, 4]));
    try {
      await assertClose(a.value, b.value, { rtol: 1e-6, what: "loss" });
      let maxLeak = 0;
      for (const [id, ga] of Object.entries(a.grads)) {
        await assertClose(ga, b.grads[id], {
          rtol: 1e-4,
          atol: 1e-7,
          what: `gradient of ${id}`,
        });
        await assertClose(d.grads[id], b.grads[id], {
          rtol: 1e-4,
          atol: 1e-7,
          what: `gradient of ${id} (labels() read directly)`,
        });
        const diff = await tf.tidy(() =>
          tf.max(tf.abs(tf.sub(ga, c.grads[id])))
        )
          .data();
        maxLeak = Math.max(maxLeak, diff[0]);
      }
      assert(
        maxLeak > 1e-6,
        `the undetached alignment gave the same gradients (${maxLeak})`,
      );
    } finally {
      tf.dispose([
        a.value,
        b.value,
        c.value,
        d.value,
        a.grads,
        b.grads,
        c.grads,
        d.grads,
      ]);
      tf.dispose([x, labels, y0, constant, ...leaky]);
      model.dispose();
    }
  },
);

await backendTest(
  "the hook leaves the forward unchanged; a TL-Align training step leaks no tensors",
  async () => {
    const model = LvVit.create(LVVIT, { seed: 2 });
    const x = tf.randomNormal([2, 16, 16, 3], 0, 1, "float32", 9);
    const labels = smoothedOneHot([0, 2], 3);
    const src = [[0, 1, 0, 0], [1, 1, 0, 1]];
    const opt = tf.train.sgd(1e-2);
    try {
      // A read-only hook as the baseline: any hook routes the attention
      // through the composite ops (the fused kernels hand out no
      // differentiable probabilities), so this isolates what TL-Align's
      // hook does from the fused/composite rounding difference (checked to
      // 1e-5 in fused_attention_test.ts).
      const plain = model.forwardTrain(x, {
        rng: new Rng(3),
        updateStats: false,
        onAttention: () => {},
      });
      const align0 = new TlAlign(
        tf.tidy(() => tlAlignInitialLabels(labels, src)),
      );
      const hooked = model.forwardTrain(x, {
        rng: new Rng(3),
        updateStats: false,
        onAttention: align0.hook,
      });
      await assertClose(hooked.cls, plain.cls, {
        rtol: 0,
        atol: 0,
        what: "cls",
      });
      await assertClose(hooked.aux!, plain.aux!, {
        rtol: 0,
        atol: 0,
        what: "aux",
      });
      align0.dispose();
      tf.dispose([plain.cls, plain.aux!, hooked.cls, hooked.aux!]);
      const rng = new Rng(4);
      const step = async () => {
        const y0 = tlAlignInitialLabels(labels, src);
        const align = new TlAlign(y0);
        const loss = opt.minimize(
          () => {
            const out = model.forwardTrain(x, { rng, onAttention: align.hook });
            return softTargetCrossEntropy(out.cls, align.classLabel());
          },
          true,
          model.trainableVariables(),
        );
        await loss!.data();
        loss!.dispose();
        align.dispose();
        y0.dispose();
      };
      await step();
      await assertNoLeaks(step, "TL-Align training step");
    } finally {
      opt.dispose();
      tf.dispose([x, labels]);
      model.dispose();
    }
  },
);

Deno.test("bad inputs: sources, shapes, order, lifetime", async () => {
  await initBackend({ backend: "cpu" });
  const labels = smoothedOneHot([0, 1], 2);
  const made: tf.Tensor[] = [labels];
  const t = <T extends tf.Tensor>(x: T) => (made.push(x), x);
  try {
    assertThrows(
      () => tlAlignInitialLabels(labels, [[0, 1]]),
      LossInputError,
      "token sources have 1 rows but the image labels [2,2] have batch size 2",
    );
    assertThrows(
      () => tlAlignInitialLabels(labels, [[0, 1], [0]]),
      LossInputError,
      "ragged: row 1 has 1 tokens, row 0 has 2",
    );
    assertThrows(
      () => tlAlignInitialLabels(labels, [[0, 2], [0, 1]]),
      LossInputError,
      "token 1 of image 0 comes from image 2",
    );
    assertThrows(
      () =>
        tlAlignInitialLabels(labels, [[0, 1], [0, 1]], {
          classLabels: t(tf.zeros([2, 3])),
        }),
      LossInputError,
      "class labels [2,3] do not match the image labels [2,2]",
    );
    assertThrows(
      () => tlAlignInitialLabels(t(tf.zeros([2, 2, 2])), [[0], [1]]),
      LossInputError,
      "[batch, classes]",
    );
    assertThrows(
      () => new TlAlign(t(tf.zeros([2, 3]))),
      LossInputError,
      "[batch, 1 + tokens, classes]",
    );
    const y0 = t(tlAlignInitialLabels(labels, [[0, 1], [1, 1]])); // [2, 3, 2]
    const align = new TlAlign(y0);
    assertThrows(
      () => align.classLabel(),
      LossInputError,
      "no attention reached TlAlign",
    );
    assertThrows(
      () => align.hook(1, t(tf.zeros([2, 1, 3, 3])) as tf.Tensor4D),
      LossInputError,
      "expected block 0, got block 1",
    );
    assertThrows(
      () => align.hook(0, t(tf.zeros([2, 1, 4, 4])) as tf.Tensor4D),
      LossInputError,
      "attention [2,1,4,4] does not fit the label embedding [2,3,2]",
    );
    align.hook(0, t(tf.fill([2, 1, 3, 3], 1 / 3)) as tf.Tensor4D);
    assertEquals(align.blocks, 1);
    align.dispose();
    align.dispose(); // twice is fine
    assertThrows(() => align.classLabel(), LossInputError, "disposed");
    assertThrows(
      () => align.hook(1, t(tf.zeros([2, 1, 3, 3])) as tf.Tensor4D),
      LossInputError,
      "disposed",
    );
  } finally {
    tf.dispose(made);
  }
});

Deno.test("TL-Align end to end: patch-aligned CutMix sources feed the label embedding of a training step", async () => {
  await initBackend({ backend: "wasm" });
  const model = LvVit.create({
    name: "vit_tl",
    imgSize: 16,
    patchSize: 4,
    embedDim: 16,
    depth: 2,
    numHeads: 2,
    numClasses: 3,
    stem: "linear",
    auxHead: false,
    skipLam: 1,
  });
  const images = tf.randomUniform(
    [4, 16, 16, 3],
    0,
    1,
    "float32",
    7,
  ) as tf.Tensor4D;
  const onehot = smoothedOneHot([0, 1, 2, 1], 3, { smoothing: 0.1 });
  const mixed = patchCutmix({ images, classTargets: onehot }, new Rng(11), {
    patchSize: 4,
  });
  try {
    const n = 16, src = mixed.sourceIndex!;
    const sources = Array.from(
      { length: 4 },
      (_, b) => Array.from(src.subarray(b * n, (b + 1) * n)),
    );
    const y0 = tlAlignInitialLabels(onehot, sources);
    assertEquals(y0.shape, [4, 1 + n, 3]);
    const align = new TlAlign(y0);
    const { value, grads } = tf.variableGrads(() => {
      const out = model.forwardTrain(mixed.images, { onAttention: align.hook });
      return softTargetCrossEntropy(out.cls, align.classLabel()) as tf.Scalar;
    }, model.trainableVariables());
    assert(Number.isFinite((await value.data())[0]), "a finite loss");
    const rows = tf.sum(align.classLabel(), 1);
    await assertClose(rows, [1, 1, 1, 1], {
      rtol: 1e-5,
      atol: 1e-5,
      what: "aligned class labels are distributions",
    });
    tf.dispose([value, grads, rows, y0]);
    align.dispose();
  } finally {
    mixed.dispose();
    tf.dispose([images, onehot]);
    model.dispose();
  }
});
