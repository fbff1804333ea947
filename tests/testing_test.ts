/** The test helpers must be able to fail: each is shown a wrong answer. */

import { assert, assertRejects, assertStringIncludes } from "./_assert.ts";
import { initBackend, tf } from "tokenlab";
import { assertClose, assertNoLeaks, checkGradients } from "tokenlab/testing";
import { refErf } from "tokenlab/testing/reference.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };

Deno.test({
  ...opts,
  name: "assertClose names the worst element and the tolerance",
  async fn() {
    await initBackend({ backend: "cpu" });
    await assertClose(tf.tensor1d([1, 2, 3]), [1, 2, 3.00001], { rtol: 1e-5 });
    const e = await assertRejects(() =>
      assertClose([1, 2, 3], [1, 2.5, 3.1], {
        rtol: 0,
        atol: 0.05,
        what: "logits",
      })
    );
    assertStringIncludes(e.message, "logits: element 1 is 2, expected 2.5");
    const nan = await assertRejects(() => assertClose([NaN], [0], { atol: 1 }));
    assertStringIncludes(nan.message, "element 0 is NaN");
    const shape = await assertRejects(() => assertClose([1, 2], [1, 2, 3]));
    assertStringIncludes(shape.message, "expected shape [3]");
  },
});

Deno.test({
  ...opts,
  name: "assertNoLeaks catches a leaked tensor",
  async fn() {
    await initBackend({ backend: "cpu" });
    let kept: tf.Tensor | null = null;
    const e = await assertRejects(() =>
      assertNoLeaks(() => {
        kept = tf.ones([2]);
      }, "leaky step")
    );
    assertStringIncludes(e.message, "leaky step leaked tensors");
    assertStringIncludes(e.message, "(+1)");
    kept!.dispose();
  },
});

Deno.test({
  ...opts,
  name: "checkGradients catches a wrong gradient",
  async fn() {
    await initBackend({ backend: "cpu" });
    // y = x^2 with a deliberately wrong gradient 3x instead of 2x.
    const wrong = tf.customGrad(
      (...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
        const x = args[0] as tf.Tensor;
        (args[1] as tf.GradSaveFunc)([x]);
        return {
          value: tf.sum(tf.square(x)),
          gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
            tf.mul(dy, tf.mul(saved[0], 3)),
        };
      },
    );
    const x = tf.tensor1d([0.5, -1, 2]);
    const e = await assertRejects(() =>
      checkGradients((a: tf.Tensor) => wrong(a) as tf.Scalar, [x], {
        what: "x^2",
      })
    );
    assertStringIncludes(e.message, "x^2 of input 0");
    await checkGradients((a: tf.Tensor) => tf.sum(tf.square(a)), [x]);
    x.dispose();
  },
});

Deno.test("the erf reference matches tabulated values", () => {
  // Abramowitz & Stegun table 7.1 and well-known values.
  const table: [number, number][] = [
    [0, 0],
    [0.5, 0.5204998778130465],
    [1, 0.8427007929497149],
    [2, 0.9953222650189527],
    [3, 0.9999779095030014],
    [4, 0.9999999845827421],
    [-1.5, -0.9661051464753108],
  ];
  for (const [x, want] of table) {
    assert(
      Math.abs(refErf(x) - want) < 1e-12,
      `erf(${x}) = ${refErf(x)}, want ${want}`,
    );
  }
});
