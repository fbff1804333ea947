/**
 * The fused soft-target cross-entropy of the WebGPU backend
 * (lib/kernels/webgpu_cross_entropy.ts, used by `softTargetCrossEntropy`):
 * per-row losses and both gradients (logits and targets) against the
 * composite logSoftmax formula and a float64 loop, on [R, C] and [B, N, C]
 * shapes, targets that do not sum to 1, extreme logits, one dispatch for the
 * forward pass and one for the backward, and no leaked tensors.
 */

import { assert, assertEquals } from "./_assert.ts";
import { softTargetCrossEntropy, tf } from "tokenlab";
import { countWebGpu } from "tokenlab/kernels/webgpu_counters.ts";
import { assertClose, assertNoLeaks, backendTest } from "tokenlab/testing";
import { testValues } from "tokenlab/testing/reference.ts";
import {
  fusedSoftTargetCrossEntropyRows,
  hasFusedSoftTargetCrossEntropy,
} from "../lib/kernels/webgpu_cross_entropy.ts";

/** Per-row loss, d loss / dx and d loss / dt (for dy per row), in float64. */
function reference(
  x: Float32Array,
  t: Float32Array,
  dy: Float32Array,
  C: number,
): { loss: Float64Array; dx: Float64Array; dt: Float64Array } {
  const R = x.length / C;
  const loss = new Float64Array(R);
  const dx = new Float64Array(x.length), dt = new Float64Array(x.length);
  for (let r = 0; r < R; r++) {
    let m = -Infinity, se = 0, st = 0;
    for (let c = 0; c < C; c++) m = Math.max(m, x[r * C + c]);
    for (let c = 0; c < C; c++) se += Math.exp(x[r * C + c] - m);
    const lse = m + Math.log(se);
    for (let c = 0; c < C; c++) st += t[r * C + c];
    for (let c = 0; c < C; c++) {
      const i = r * C + c, ls = x[i] - lse;
      loss[r] -= t[i] * ls;
      dx[i] = (Math.exp(ls) * st - t[i]) * dy[r];
      dt[i] = -ls * dy[r];
    }
  }
  return { loss, dx, dt };
}

/** The composite per-row loss, as softTargetCrossEntropy computes it elsewhere. */
const composite = (x: tf.Tensor, t: tf.Tensor) =>
  tf.tidy(() => tf.neg(tf.sum(tf.mul(t, tf.logSoftmax(x)), -1)));

/** Compute dispatches while `body` runs (countWebGpu counts them). */
async function countDispatches(body: () => Promise<void>): Promise<number> {
  return (await countWebGpu(body)).counts.dispatches;
}

/** Logits, targets (non-negative, not summing to 1) and row weights. */
function inputs(shape: number[], seed: number, scale = 3) {
  const size = shape.reduce((a, b) => a * b, 1);
  const C = shape[shape.length - 1];
  const x = testValues(size, seed, scale);
  // Targets in [0, 1.2): rows sum to about 0.6 C, far from 1.
  const t = testValues(size, seed + 1).map((v) => 0.6 * (v + 1));
  const dy = testValues(size / C, seed + 2, 2);
  return { x, t, dy, C };
}

async function checkCase(shape: number[], seed: number, scale = 3) {
  const { x, t, dy, C } = inputs(shape, seed, scale);
  const rows = x.length / C;
  const what = `[${shape}]${scale > 10 ? " extreme" : ""}`;
  const ref = reference(x, t, dy, C);
  const xt = tf.tensor(x, shape), tt = tf.tensor(t, shape);
  const x2 = tf.reshape(xt, [rows, C]), t2 = tf.reshape(tt, [rows, C]);
  const dyt = tf.tensor1d(dy);
  await assertNoLeaks(async () => {
    // One dispatch for the forward pass.
    let loss: tf.Tensor | undefined;
    const n = await countDispatches(async () => {
      loss = fusedSoftTargetCrossEntropyRows(x2, t2);
      await loss.data();
    });
    assertEquals(n, 1, `forward dispatches ${what}`);
    const want = composite(x2, t2);
    const tol = { rtol: 1e-5, atol: 1e-5 * (scale > 10 ? 100 : 1) };
    await assertClose(loss!, want, {
      ...tol,
      what: `loss vs composite ${what}`,
    });
    await assertClose(loss!, ref.loss, {
      ...tol,
      what: `loss vs float64 ${what}`,
    });
    tf.dispose([loss!, want]);

    // Gradients for a weighted sum of the rows (dy differs per row).
    const weighted = (f: typeof composite) => (a: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.mul(f(a, b), dyt));
    const fused = tf.grads(weighted(fusedSoftTargetCrossEntropyRows))([
      x2,
      t2,
    ]);
    const comp = tf.grads(weighted(composite))([x2, t2]);
    for (const v of [...fused, ...comp]) {
      const d = await v.data();
      assert(d.every(Number.isFinite), `a non-finite gradient ${what}`);
    }
    const gtol = { rtol: 1e-4, atol: 1e-6 * (scale > 10 ? 100 : 1) };
    await assertClose(fused[0], comp[0], {
      ...gtol,
      what: `dx vs composite ${what}`,
    });
    await assertClose(fused[0], ref.dx, {
      ...gtol,
      what: `dx vs float64 ${what}`,
    });
    await assertClose(fused[1], comp[1], {
      ...gtol,
      atol: 1e-5 * (scale > 10 ? 100 : 1),
      what: `dt vs composite ${what}`,
    });
    await assertClose(fused[1], ref.dt, {
      ...gtol,
      atol: 1e-5 * (scale > 10 ? 100 : 1),
      what: `dt vs float64 ${what}`,
    });
    tf.dispose([...fused, ...comp]);

    // softTargetCrossEntropy (the fused path here) keeps the composite's mean.
    const mean = softTargetCrossEntropy(xt, tt);
    const meanRef = ref.loss.reduce((a, b) => a + b, 0) / rows;
    await assertClose(mean, [meanRef], { ...tol, what: `mean ${what}` });
    const [gMean] = tf.grads((a: tf.Tensor) => softTargetCrossEntropy(a, tt))(
      [xt],
    );
    const refMean = reference(x, t, new Float32Array(rows).fill(1 / rows), C);
    assertEquals(gMean.shape, shape);
    await assertClose(gMean, refMean.dx, { ...gtol, what: `mean dx ${what}` });
    tf.dispose([mean, gMean]);
  }, `cross-entropy ${what}`);
  tf.dispose([xt, tt, x2, t2, dyt]);
}

await backendTest(
  "fused soft-target cross-entropy: loss and gradients against the composite and float64",
  async () => {
    assert(hasFusedSoftTargetCrossEntropy(), "the fused kernels are missing");
    await checkCase([3, 5], 11);
    await checkCase([2, 17, 10], 21);
    await checkCase([3, 1000], 31);
    await checkCase([2, 1003], 41);
    await checkCase([4, 7], 51, 80); // logits in (-80, 80)
  },
  { backends: ["webgpu"] },
);

await backendTest(
  "fused soft-target cross-entropy: extreme logits stay finite, one dispatch backward",
  async () => {
    // Exactly +-80 in one row, all equal in another.
    const x = tf.tensor2d([[80, -80, 80, -80, 0], [-80, -80, -80, -80, -80]]);
    const t = tf.tensor2d([[0.5, 0.5, 0, 0.2, 0.1], [1, 0, 0, 0, 0.5]]);
    await assertNoLeaks(async () => {
      const loss = fusedSoftTargetCrossEntropyRows(x, t);
      const want = composite(x, t);
      await assertClose(loss, want, { rtol: 1e-5, atol: 1e-4, what: "loss" });
      assert((await loss.data()).every(Number.isFinite), "a non-finite loss");
      tf.dispose([loss, want]);
      const f = (a: tf.Tensor) => tf.sum(fusedSoftTargetCrossEntropyRows(a, t));
      const warm = tf.grads(f)([x]);
      tf.dispose(warm);
      // The backward pass: one dispatch for dx and dt (the forward is one
      // more, the sum's gradient a fill of ones).
      let grads: tf.Tensor[] = [];
      const n = await countDispatches(async () => {
        grads = tf.grads(f)([x]);
        await grads[0].data();
      });
      assert(n <= 3, `${n} dispatches for a forward and backward pass`);
      const [gComp] = tf.grads((a: tf.Tensor) => tf.sum(composite(a, t)))([x]);
      assert((await grads[0].data()).every(Number.isFinite));
      await assertClose(grads[0], gComp, {
        rtol: 1e-5,
        atol: 1e-6,
        what: "dx",
      });
      tf.dispose([...grads, gComp]);
    }, "extreme logits");
    tf.dispose([x, t]);
  },
  { backends: ["webgpu"] },
);
