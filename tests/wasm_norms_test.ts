/**
 * The fused GELU, LayerNorm and BatchNorm kernels (lib/kernels/wasm_norms.ts,
 * used by `gelu`, `layerNormAffine` and the LV-ViT stem on wasm): forward
 * against float64 loops and gradients against finite differences on every
 * backend (wasm and webgpu run the fused kernels, cpu the composite ops),
 * and on wasm and webgpu the fused gradients against the composite ones at a model's
 * shapes; no leaked tensors or heap buffers.
 */

import { assertEquals } from "./_assert.ts";
import { gelu, layerNorm, layerNormAffine, tf } from "tokenlab";
import {
  fusedBatchNormTrain,
  fusedNormFor,
} from "tokenlab/kernels/wasm_norms.ts";
import {
  assertClose,
  assertNoLeaks,
  backendTest,
  checkGradients,
} from "tokenlab/testing";
import {
  refGelu,
  refLayerNorm,
  testValues,
} from "tokenlab/testing/reference.ts";

function dataIds(): number {
  return (tf.backend() as unknown as { numDataIds(): number }).numDataIds();
}

await backendTest(
  "fused GELU and LayerNorm: forward against float64, gradients against finite differences",
  async (backend) => {
    const x = testValues(3 * 5 * 8, 31, 3);
    const w = testValues(8, 32), b = testValues(8, 33);
    const fused = backend === "wasm" || backend === "webgpu";
    const xt = tf.tensor3d(x, [3, 5, 8]);
    assertEquals(fusedNormFor(xt), fused);
    const before = dataIds();
    await assertNoLeaks(async () => {
      const y = gelu(xt);
      await assertClose(y, Array.from(x, refGelu), {
        rtol: 1e-5,
        atol: 1e-6,
        what: `gelu (${backend})`,
      });
      const wt = tf.tensor1d(w), bt = tf.tensor1d(b);
      const ln = layerNormAffine(xt, wt, bt);
      const want = refLayerNorm(x, 8).map((v, i) => v * w[i % 8] + b[i % 8]);
      await assertClose(ln, want, {
        rtol: 1e-4,
        atol: 1e-5,
        what: `layer norm (${backend})`,
      });
      tf.dispose([y, ln, wt, bt]);
    });
    assertEquals(dataIds(), before, "heap buffers left behind");
    const dy = tf.tensor3d(testValues(3 * 5 * 8, 34), [3, 5, 8]);
    await checkGradients((t) => tf.sum(tf.mul(gelu(t), dy)), [xt], {
      what: `gelu gradient (${backend})`,
    });
    const wt = tf.tensor1d(w), bt = tf.tensor1d(b);
    await checkGradients(
      (t, ww, bb) => tf.sum(tf.mul(layerNormAffine(t, ww, bb), dy)),
      [xt, wt, bt],
      { what: `layer norm gradient (${backend})` },
    );
    tf.dispose([xt, dy, wt, bt]);
  },
);

await backendTest(
  "fused GELU, LayerNorm and BatchNorm: gradients equal the composite's at a model's shapes",
  async () => {
    const x = tf.randomNormal([4, 65, 192], 0, 2, "float32", 1);
    const dy = tf.randomNormal([4, 65, 192], 0, 1, "float32", 2);
    const w = tf.randomNormal([192], 1, 0.2, "float32", 3);
    const b = tf.randomNormal([192], 0, 0.2, "float32", 4);
    const composite = {
      gelu: (t: tf.Tensor) =>
        tf.mul(tf.mul(t, 0.5), tf.add(1, tf.erf(tf.mul(t, Math.SQRT1_2)))),
      ln: (t: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor) =>
        tf.add(tf.mul(layerNorm(t), ww), bb),
    };
    await assertNoLeaks(async () => {
      const [gf] = tf.grads((t: tf.Tensor) => tf.sum(tf.mul(gelu(t), dy)))([x]);
      const [gc] = tf.grads((t: tf.Tensor) =>
        tf.sum(tf.mul(composite.gelu(t), dy))
      )([x]);
      await assertClose(gf, await gc.data(), {
        rtol: 1e-4,
        atol: 1e-5,
        what: "gelu gradient",
      });
      const lf = tf.grads((t: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor) =>
        tf.sum(tf.mul(layerNormAffine(t, ww, bb), dy))
      )([x, w, b]);
      const lc = tf.grads((t: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor) =>
        tf.sum(tf.mul(composite.ln(t, ww, bb), dy))
      )([x, w, b]);
      for (const [i, what] of ["dx", "dw", "db"].entries()) {
        await assertClose(lf[i], await lc[i].data(), {
          rtol: 1e-3,
          atol: 1e-3,
          what: `layer norm ${what}`,
        });
      }
      tf.dispose([gf, gc, ...lf, ...lc]);
    });
    // BatchNorm over [B, H, W] of an NHWC map, with the batch statistics.
    const m = tf.randomNormal([8, 6, 6, 16], 0.5, 2, "float32", 5);
    const dm = tf.randomNormal([8, 6, 6, 16], 0, 1, "float32", 6);
    const g = tf.randomNormal([16], 1, 0.2, "float32", 7);
    const be = tf.randomNormal([16], 0, 0.2, "float32", 8);
    const eps = 1e-5;
    const bnComposite = (t: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) => {
      const { mean, variance } = tf.moments(t, [0, 1, 2]);
      return tf.add(
        tf.mul(tf.div(tf.sub(t, mean), tf.sqrt(tf.add(variance, eps))), gg),
        bb,
      );
    };
    await assertNoLeaks(async () => {
      let stats: tf.Tensor[] = [];
      const yf = fusedBatchNormTrain(m, g, be, eps, (mean, variance) => {
        stats = [tf.keep(tf.clone(mean)), tf.keep(tf.clone(variance))];
      });
      const want = tf.moments(m, [0, 1, 2]);
      await assertClose(stats[0], await want.mean.data(), {
        rtol: 1e-5,
        atol: 1e-6,
        what: "batch mean handed to onStats",
      });
      await assertClose(stats[1], await want.variance.data(), {
        rtol: 1e-4,
        atol: 1e-6,
        what: "batch variance handed to onStats",
      });
      tf.dispose([...stats, want.mean, want.variance]);
      const yc = tf.tidy(() => bnComposite(m, g, be));
      await assertClose(yf, await yc.data(), {
        rtol: 1e-4,
        atol: 1e-4,
        what: "batch norm forward",
      });
      const f = tf.grads((t: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) =>
        tf.sum(tf.mul(fusedBatchNormTrain(t, gg, bb, eps), dm))
      )([m, g, be]);
      const c = tf.grads((t: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) =>
        tf.sum(tf.mul(bnComposite(t, gg, bb), dm))
      )([m, g, be]);
      for (const [i, what] of ["dx", "dgamma", "dbeta"].entries()) {
        await assertClose(f[i], await c[i].data(), {
          rtol: 1e-3,
          atol: 1e-4,
          what: `batch norm ${what}`,
        });
      }
      tf.dispose([yf, yc, ...f, ...c]);
    });
    tf.dispose([x, dy, w, b, m, dm, g, be]);
  },
  { backends: ["wasm", "webgpu"] },
);
