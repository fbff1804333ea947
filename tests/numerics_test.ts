/**
 * The operations the models are built from, on every available backend,
 * against independent float64 loops (lib/testing/reference.ts). Tolerances
 * are stated per test: |got - want| <= atol + rtol * |want| per element.
 */

import { assertEquals } from "./_assert.ts";
import { tf } from "tokenlab";
import { gelu, layerNorm, scaledResidual } from "tokenlab/ops.ts";
import {
  assertClose,
  assertNoLeaks,
  backendTest,
  checkGradients,
} from "tokenlab/testing";
import {
  refConv2d,
  refGelu,
  refLayerNorm,
  refMatMul,
  refSoftmax,
  testValues,
} from "tokenlab/testing/reference.ts";

const F32 = { rtol: 1e-4, atol: 1e-5 };

await backendTest("matmul [33x70]x[70x21]", async () => {
  const a = testValues(33 * 70, 11), b = testValues(70 * 21, 12);
  const y = tf.matMul(tf.tensor2d(a, [33, 70]), tf.tensor2d(b, [70, 21]));
  await assertClose(y, refMatMul(a, b, [33, 70, 21]), F32);
  tf.dispose(y);
});

await backendTest(
  "batched matmul as in attention: q k^T over heads",
  async () => {
    // [B*H, N, d] x [B*H, N, d]^T -> [B*H, N, N]
    const bh = 6, n = 17, d = 8;
    const q = testValues(bh * n * d, 13), k = testValues(bh * n * d, 14);
    const y = tf.tidy(() =>
      tf.matMul(
        tf.tensor3d(q, [bh, n, d]),
        tf.tensor3d(k, [bh, n, d]),
        false,
        true,
      )
    );
    const want = new Float64Array(bh * n * n);
    for (let h = 0; h < bh; h++) {
      const qh = q.subarray(h * n * d, (h + 1) * n * d);
      const kh = k.subarray(h * n * d, (h + 1) * n * d);
      const kt = new Float64Array(d * n);
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < d; j++) {
          kt[j * n + i] = kh[i * d + j];
        }
      }
      want.set(refMatMul(qh, kt, [n, d, n]), h * n * n);
    }
    await assertClose(y, want, F32);
    y.dispose();
  },
);

await backendTest("softmax over 1000 classes with large logits", async () => {
  const x = testValues(4 * 1000, 15, 30);
  const y = tf.tidy(() => tf.softmax(tf.tensor2d(x, [4, 1000])));
  await assertClose(y, refSoftmax(x, 1000), { rtol: 1e-4, atol: 1e-7 });
  y.dispose();
});

await backendTest("layerNorm over the channel axis", async () => {
  const x = testValues(10 * 64, 16, 4);
  const t = tf.tensor2d(x, [10, 64]);
  const before = tf.memory().numTensors;
  const y = layerNorm(t);
  assertEquals(
    tf.memory().numTensors,
    before + 1,
    "layerNorm keeps only its result",
  );
  await assertClose(y, refLayerNorm(x, 64), F32);
  tf.dispose([t, y]);
});

await backendTest(
  "gelu is exact (erf), not the tanh approximation",
  async () => {
    const x = testValues(512, 17, 8);
    const t = tf.tensor1d(x);
    const before = tf.memory().numTensors;
    const y = gelu(t);
    assertEquals(
      tf.memory().numTensors,
      before + 1,
      "gelu keeps only its result",
    );
    await assertClose(y, Array.from(x, refGelu), { rtol: 1e-4, atol: 2e-6 });
    tf.dispose([t, y]);
  },
);

await backendTest(
  "conv stem: 7x7 stride 2 pad 3, then 3x3 stride 1 pad 1",
  async () => {
    const x = testValues(2 * 12 * 12 * 3, 18);
    const f1 = testValues(7 * 7 * 3 * 4, 19, 0.3),
      f2 = testValues(3 * 3 * 4 * 5, 20, 0.3);
    const y = tf.tidy(() => {
      const h = tf.conv2d(
        tf.tensor4d(x, [2, 12, 12, 3]),
        tf.tensor4d(f1, [7, 7, 3, 4]),
        2,
        [[0, 0], [3, 3], [3, 3], [0, 0]],
      );
      return tf.conv2d(h, tf.tensor4d(f2, [3, 3, 4, 5]), 1, "same");
    });
    const h = refConv2d(x, [2, 12, 12, 3], f1, [7, 7, 4], 2, 3);
    const want = refConv2d(h.data, h.shape, f2, [3, 3, 5], 1, 1);
    assertEquals(y.shape, want.shape);
    await assertClose(y, want.data, F32);
    y.dispose();
  },
);

await backendTest("gradient check: layer norm then linear", async () => {
  const x = tf.tensor2d(testValues(3 * 5, 21, 2), [3, 5]);
  const w = tf.tensor2d(testValues(5 * 4, 22), [5, 4]);
  const f = (a: tf.Tensor, b: tf.Tensor) =>
    tf.sum(tf.square(tf.matMul(layerNorm(a as tf.Tensor2D), b as tf.Tensor2D)));
  await checkGradients(f, [x, w], {
    eps: 1e-2,
    rtol: 3e-2,
    atol: 3e-2,
  });
  tf.dispose([x, w]);
});

await backendTest(
  "gradient check: stride-2 convolution, input and filter",
  async () => {
    const x = tf.tensor4d(testValues(1 * 6 * 6 * 2, 23), [1, 6, 6, 2]);
    const f = tf.tensor4d(testValues(3 * 3 * 2 * 3, 24, 0.5), [3, 3, 2, 3]);
    const loss = (a: tf.Tensor, b: tf.Tensor) =>
      tf.sum(
        tf.square(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, "same")),
      );
    await checkGradients(loss, [x, f], { eps: 1e-2, rtol: 3e-2, atol: 3e-2 });
    tf.dispose([x, f]);
  },
  { kernels: ["Conv2DBackpropInput", "Conv2DBackpropFilter"] },
);

await backendTest(
  "scaledResidual: x + y * scale[b] equals drop path then / skipLam, bit for bit (skipLam 2); gradients dy and dy * scale[b]",
  async () => {
    const shape = [3, 5, 7];
    const x = tf.tensor3d(testValues(105, 31), [3, 5, 7]);
    const y = tf.tensor3d(testValues(105, 32, 3), [3, 5, 7]);
    const mask = Float32Array.of(1 / 0.9, 0, 1 / 0.9); // drop path, keep 0.9
    const scale = mask.map((m) => m / 2); // then / skipLam 2
    await assertNoLeaks(async () => {
      const got = scaledResidual(x, y, scale);
      const want = tf.tidy(() =>
        tf.add(x, tf.div(tf.mul(y, tf.tensor3d(mask, [3, 1, 1])), 2))
      );
      assertEquals(got.shape, shape);
      assertEquals(await got.data(), await want.data());
      tf.dispose([got, want]);
      // Gradients of sum(w * out): w for x, w * scale[b] for y.
      const w = tf.tensor3d(testValues(105, 33), [3, 5, 7]);
      const [gx, gy] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
        tf.sum(tf.mul(w, scaledResidual(a, b, scale)))
      )([x, y]);
      const wv = await w.data();
      assertEquals(await gx.data(), wv);
      await assertClose(
        gy,
        Array.from(wv, (v, i) => Math.fround(v * scale[Math.floor(i / 35)])),
        { rtol: 0, atol: 0 },
      );
      tf.dispose([w, gx, gy]);
    }, "scaledResidual");
    const msg = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return (e as Error).message;
      }
      return "no error";
    };
    assertEquals(
      msg(() => scaledResidual(x, y, Float32Array.of(1, 1))).includes(
        "expected one scale per sample (3), found 2",
      ),
      true,
    );
    const narrow = tf.zeros([3, 5, 6]);
    assertEquals(
      msg(() => scaledResidual(x, narrow, scale)).includes(
        "found [3,5,7] and [3,5,6]",
      ),
      true,
    );
    tf.dispose([x, y, narrow]);
  },
);

await backendTest("an SGD training step leaks no tensors", async () => {
  const w = tf.variable(tf.tensor2d(testValues(8 * 3, 25), [8, 3]));
  const x = tf.tensor2d(testValues(16 * 8, 26), [16, 8]);
  const y = tf.oneHot(
    tf.tensor1d([0, 1, 2, 1, 0, 2, 2, 1, 0, 0, 1, 2, 0, 1, 2, 0], "int32"),
    3,
  );
  const opt = tf.train.sgd(0.1);
  const step = async () => {
    const loss = opt.minimize(
      () => tf.losses.softmaxCrossEntropy(y, tf.matMul(x, w)),
      true,
    )!;
    const value = (await loss.data())[0];
    loss.dispose();
    return value;
  };
  await step(); // the first step creates the optimizer's state
  const first = await assertNoLeaks(step, "SGD step");
  let last = first;
  for (let i = 0; i < 20; i++) last = await assertNoLeaks(step, "SGD step");
  if (!(last < first)) {
    throw new Error(`loss did not go down: ${first} -> ${last}`);
  }
  opt.dispose();
  tf.dispose([w, x, y]);
});
