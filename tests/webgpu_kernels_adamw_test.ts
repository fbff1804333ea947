/**
 * The fused AdamW kernel of the WebGPU backend (lib/kernels/webgpu_adamw.ts,
 * used by `AdamW` in lib/train/optimizer.ts): several steps over decayed and
 * plain parameters of odd sizes against PyTorch's formula in float64, a
 * state()/load() round trip that continues identically, no leaked tensors,
 * and as many dispatches per step as the device's storage buffers ask for
 * (several parameters per dispatch where the adapter has more than WebGPU's
 * default 8, as lavapipe's 32).
 */

import { assert, assertEquals } from "./_assert.ts";
import { tf } from "tokenlab";
import { countWebGpu } from "tokenlab/kernels/webgpu_counters.ts";
import { assertClose, assertNoLeaks, backendTest } from "tokenlab/testing";
import { testValues } from "tokenlab/testing/reference.ts";
import { AdamW, type ParamEntry } from "../lib/train/optimizer.ts";
import {
  ADAMW_KERNEL,
  adamwParamsPerDispatch,
  adamwParamsPerDispatchHere,
  hasFusedAdamW,
} from "../lib/kernels/webgpu_adamw.ts";

/** Parameters of odd sizes (shape, decayed?), one of each kind per size. */
const SHAPES: readonly (readonly [number[], boolean])[] = [
  [[1], false],
  [[7], true],
  [[1000], false],
  [[10, 100], true],
  [[70000], true],
  [[70, 1000], false],
];

const HYPER = { weightDecay: 0.05, betas: [0.9, 0.999] as [number, number] };
const EPS = 1e-8;
const LRS = [1e-3, 5e-3, 2e-3, 1e-2];

/** PyTorch's AdamW step for one parameter, in float64, in place. */
function refStep(
  p: Float64Array,
  m: Float64Array,
  v: Float64Array,
  g: ArrayLike<number>,
  t: number,
  lr: number,
  decay: boolean,
): void {
  const [b1, b2] = HYPER.betas;
  const wd = decay ? HYPER.weightDecay : 0;
  const stepSize = lr / (1 - b1 ** t);
  const bc2Sqrt = Math.sqrt(1 - b2 ** t);
  for (let i = 0; i < p.length; i++) {
    p[i] *= 1 - lr * wd;
    m[i] = b1 * m[i] + (1 - b1) * g[i];
    v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
    p[i] -= stepSize * m[i] / (Math.sqrt(v[i]) / bc2Sqrt + EPS);
  }
}

function gradValues(k: number, step: number, size: number): Float32Array {
  // Scales that differ per parameter and step, some gradients tiny.
  return testValues(size, 1000 * step + k + 7, 10 ** ((k + step) % 4 - 3));
}

function makeParams(): ParamEntry[] {
  return SHAPES.map(([shape, decay], k) => {
    const size = shape.reduce((a, b) => a * b, 1);
    const init = tf.tensor(testValues(size, 100 + k), shape, "float32");
    const variable = tf.variable(init, true, `adamw_test_${k}`);
    init.dispose();
    return { name: `p${k}`, variable, decay };
  });
}

function gradsAt(step: number): Map<string, tf.Tensor> {
  return new Map(SHAPES.map(([shape], k) => {
    const size = shape.reduce((a, b) => a * b, 1);
    return [`p${k}`, tf.tensor(gradValues(k, step, size), shape, "float32")];
  }));
}

/** Compute dispatches while `body` runs (countWebGpu counts them). */
async function countDispatches(body: () => Promise<void>): Promise<number> {
  return (await countWebGpu(body)).counts.dispatches;
}

await backendTest(
  "fused AdamW: steps against PyTorch's formula in float64, several parameters per dispatch, state round trip, no leaks",
  async () => {
    assert(hasFusedAdamW(), `${ADAMW_KERNEL} is not registered for webgpu`);
    const adapter = await navigator.gpu.requestAdapter();
    const perDispatch = adamwParamsPerDispatchHere();
    // The device has the adapter's storage buffers (webgpu_device.ts).
    assertEquals(
      perDispatch,
      adamwParamsPerDispatch(adapter!.limits.maxStorageBuffersPerShaderStage),
      "parameters per dispatch",
    );
    const ps = makeParams();
    const ref = await Promise.all(ps.map(async (p) => ({
      p: Float64Array.from(await p.variable.data() as Float32Array),
      m: new Float64Array(p.variable.size),
      v: new Float64Array(p.variable.size),
    })));
    const opt = new AdamW(ps, { ...HYPER, eps: EPS });
    const steps = async (from: number, to: number, o: AdamW) => {
      for (let t = from; t <= to; t++) {
        o.lr = LRS[(t - 1) % LRS.length];
        const grads = gradsAt(t);
        await assertNoLeaks(async () => {
          const n = await countDispatches(async () => {
            o.apply(grads);
            // The dispatches are recorded at apply; wait for them to run.
            await ps[0].variable.data();
          });
          assertEquals(
            n,
            Math.ceil(ps.length / perDispatch),
            `dispatches of step ${t} (${perDispatch} parameters each)`,
          );
        }, `step ${t}`);
        for (const [k, r] of ref.entries()) {
          refStep(
            r.p,
            r.m,
            r.v,
            await grads.get(`p${k}`)!.data(),
            t,
            o.lr,
            ps[k].decay,
          );
        }
        tf.dispose([...grads.values()]);
      }
    };
    const compare = async (o: AdamW, t: number) => {
      const state = await o.state();
      assertEquals(state.step, t);
      for (const [k, r] of ref.entries()) {
        const at = `step ${t} p${k} [${ps[k].variable.shape}]`;
        // Moments sum terms of both signs: an element can cancel far below
        // its terms, so the absolute part scales with the largest element.
        const tol = (x: Float64Array) => ({
          rtol: 1e-5,
          atol: 1e-6 * x.reduce((a, b) => Math.max(a, Math.abs(b)), 0),
        });
        await assertClose(ps[k].variable, Array.from(r.p), {
          ...tol(r.p),
          what: `${at} param`,
        });
        await assertClose(state.moments.get(`exp_avg.p${k}`)!, r.m, {
          ...tol(r.m),
          what: `${at} exp_avg`,
        });
        await assertClose(state.moments.get(`exp_avg_sq.p${k}`)!, r.v, {
          ...tol(r.v),
          what: `${at} exp_avg_sq`,
        });
      }
      return state;
    };
    await steps(1, 3, opt);
    const saved = await compare(opt, 3);

    // A fresh optimizer loaded with the state continues as the first would.
    const resumed = new AdamW(ps, { lr: 1, eps: 1 });
    resumed.load(saved);
    opt.dispose();
    await steps(4, 6, resumed);
    await compare(resumed, 6);

    // The moments are one bucket per parameter: two tensors each.
    const before = tf.memory().numTensors;
    const third = new AdamW(ps);
    assertEquals(tf.memory().numTensors - before, 2 * ps.length);
    third.dispose();
    assertEquals(tf.memory().numTensors, before, "dispose frees the moments");
    resumed.dispose();
    tf.dispose(ps.map((p) => p.variable));
  },
  { backends: ["webgpu"] },
);

Deno.test("fused AdamW: parameters per dispatch follow the storage buffers", () => {
  // 7 buffers per parameter (g, p, m, v read; p, m, v written), 1 to 16.
  for (
    const [buffers, params] of [[4, 1], [8, 1], [13, 1], [14, 2], [32, 4], [
      112,
      16,
    ], [1 << 20, 16]]
  ) {
    assertEquals(adamwParamsPerDispatch(buffers), params, `${buffers} buffers`);
  }
});
