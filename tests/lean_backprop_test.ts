/**
 * The lean backward pass (lib/kernels/lean_backprop.ts): the same gradients
 * as before, a lower peak of live tensor bytes during the backward pass, a
 * caller's `dy` left alive, customGrad intermediates freed, and higher-order
 * gradients unchanged.
 */

import { assert, assertEquals } from "./_assert.ts";
import { installLeanBackprop } from "tokenlab/kernels/lean_backprop.ts";
import { initBackend, tf } from "tokenlab";
import { assertClose, assertNoLeaks, backendTest } from "tokenlab/testing";
import { testValues } from "tokenlab/testing/reference.ts";

Deno.test("the lean backward pass is installed once", async () => {
  await initBackend({ backend: "cpu" }); // installs the kit's kernels
  assertEquals(installLeanBackprop(), false);
});

/** A deep chain of ops whose every intermediate is as large as the input. */
function chain(x: tf.Tensor, depth: number): tf.Scalar {
  let y = x;
  for (let i = 0; i < depth; i++) y = tf.tanh(tf.mul(y, 1.01));
  return tf.sum(tf.square(y));
}

await backendTest(
  "gradients of a deep chain: exact values, peak below the whole tape",
  async () => {
    const n = 1 << 16, depth = 24;
    const values = testValues(n, 5);
    await assertNoLeaks(async () => {
      const x = tf.tensor1d(values);
      // float64 reference of d/dx sum(tanh(1.01 ... )^2)
      const want = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const ys = [values[i]];
        for (let d = 0; d < depth; d++) ys.push(Math.tanh(1.01 * ys[d]));
        let g = 2 * ys[depth];
        for (let d = depth; d > 0; d--) g *= 1.01 * (1 - ys[d] ** 2);
        want[i] = g;
      }
      const info = await tf.profile(() => {
        const g = tf.grad((x: tf.Tensor) => chain(x, depth))(x);
        return g;
      });
      const g = info.result as tf.Tensor;
      await assertClose(g, want, { rtol: 1e-4, atol: 1e-5 });
      // The forward pass ends at the Sum; tfjs alone then grew by one
      // gradient per level, the lean pass frees as it goes and stays at or
      // below the forward's level (a few tensors in flight aside).
      const bytes = 4 * n;
      const end = info.kernels.findIndex((k) => k.name === "Sum");
      const forwardPeak = Math.max(
        ...info.kernels.slice(0, end + 1).map((k) => k.totalBytesSnapshot),
      );
      assert(
        info.peakBytes <= forwardPeak + 4 * bytes,
        `backward peak ${
          (info.peakBytes - forwardPeak) / bytes
        } input-sized tensors above the forward's; expected at most 4`,
      );
      tf.dispose([x, g]);
    });
  },
);

await backendTest(
  "a caller's dy survives; second-order gradients still work",
  async () => {
    await assertNoLeaks(async () => {
      const x = tf.tensor1d([0.5, -1, 2]);
      const dy = tf.tensor1d([1, 2, 3]);
      const [g] = tf.grads((x: tf.Tensor) => tf.mul(tf.exp(x), 2))([x], dy);
      assert(!dy.isDisposed, "the caller's dy was disposed");
      await assertClose(
        g,
        [0.5, -1, 2].map((v, i) => 2 * Math.exp(v) * [1, 2, 3][i]),
      );
      // d2/dx2 of x^3 = 6x
      const second = tf.grad((x: tf.Tensor) =>
        tf.sum(tf.grad((y: tf.Tensor) => tf.sum(tf.pow(y, 3)))(x))
      )(x);
      await assertClose(second, [3, -6, 12], { rtol: 1e-5 });
      tf.dispose([x, dy, g, second]);
    });
  },
);
