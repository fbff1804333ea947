/**
 * The wasm fast paths (lib/kernels/wasm_fast_paths.ts): the buffer-sharing
 * Identity keeps every tensor's value independent of its clones' lifetimes,
 * and the row gather copies the right rows. The transposed products and the
 * convolution input gradient's rewrite are checked in native_blas_test.ts,
 * on wasm with and without OpenBLAS (the rewrites run when it is off).
 */

import { assertEquals } from "./_assert.ts";
import { initBackend, tf } from "tokenlab";
import { registerWasmFastPaths } from "tokenlab/kernels/wasm_fast_paths.ts";
import { assertNoLeaks, backendTest } from "tokenlab/testing";
import { testValues } from "tokenlab/testing/reference.ts";

Deno.test("the fast paths are registered once, whatever the number of calls", () => {
  const all = ["Identity", "BatchMatMul", "Conv2DBackpropInput", "GatherV2"];
  assertEquals(registerWasmFastPaths(), all);
  assertEquals(registerWasmFastPaths(), all);
});

Deno.test("wasm Identity shares the buffer: clones outlive and survive their source", async () => {
  await initBackend({ backend: "wasm" });
  const before = tf.memory().numDataBuffers;
  const x = tf.tensor1d([1, 2, 3]);
  const y = tf.clone(x);
  x.dispose();
  assertEquals(Array.from(await y.data()), [1, 2, 3]);
  const z = tf.clone(y);
  y.dispose();
  assertEquals(Array.from(await z.data()), [1, 2, 3]);
  z.dispose();
  assertEquals(tf.memory().numDataBuffers, before);
  // A variable assigned from a clone keeps its value when the clone goes.
  const v = tf.variable(tf.zeros([2]));
  const c = tf.clone(tf.ones([2]));
  v.assign(c);
  c.dispose();
  assertEquals(Array.from(await v.data()), [1, 1]);
  v.dispose();
});

await backendTest(
  "row gather: runs, repeats, any row shape and dtype; out-of-range indices as tfjs",
  async () => {
    const rows = 7, row = [3, 2];
    const values = testValues(rows * 6, 21);
    const x = tf.tensor3d(values, [rows, ...row] as [number, number, number]);
    const xi = tf.tensor2d(
      Array.from({ length: rows * 6 }, (_, i) => i - 20),
      [rows, 6],
      "int32",
    );
    const order = [6, 0, 1, 2, 2, 5, 3, 4, 0];
    const want = (v: ArrayLike<number>) =>
      order.flatMap((k) => Array.from(v).slice(k * 6, k * 6 + 6));
    await assertNoLeaks(async () => {
      const idx = tf.tensor1d(order, "int32");
      const y = tf.gather(x, idx);
      assertEquals(y.shape, [order.length, ...row]);
      assertEquals(Array.from(await y.data()), want(values));
      const yi = tf.gather(xi, idx, -2);
      assertEquals(Array.from(await yi.data()), want(await xi.data()));
      // 2-D indices
      const idx2 = tf.tensor2d([1, 2, 3, 0], [2, 2], "int32");
      const y2 = tf.gather(x, idx2);
      assertEquals(y2.shape, [2, 2, ...row]);
      assertEquals(
        Array.from(await y2.data()),
        [1, 2, 3, 0].flatMap((k) => Array.from(values).slice(k * 6, k * 6 + 6)),
      );
      tf.dispose([idx, y, yi, idx2, y2]);
    });
    // Gradient (UnsortedSegmentSum) of a gather with repeats.
    const ones = tf.ones([4, 2]), picks = tf.tensor1d([1, 1, 3], "int32");
    const g = tf.grad((t: tf.Tensor) => tf.sum(tf.gather(t, picks)))(ones);
    assertEquals(Array.from(await g.data()), [0, 0, 2, 2, 0, 0, 1, 1]);
    tf.dispose([ones, picks]);
    tf.dispose([x, xi, g]);
  },
);
