/**
 * The fused attention (lib/kernels/wasm_attention.ts, used by attentionCore
 * on wasm): forward against a float64 loop and gradient against finite
 * differences on every backend (wasm runs the fused kernels, the others the
 * composite), the fused gradient against the composite one on wasm on the
 * bench-64 shapes, the probabilities handed to `onProbs`, NaN propagation
 * and no leaked tensors. On wasm with OpenBLAS loaded, everything runs twice:
 * with the products on OpenBLAS and with the all-C kernels.
 */

import { assert, assertEquals } from "./_assert.ts";
import { attentionComposite, attentionCore, tf } from "tokenlab";
import { fusedAttentionAvailable } from "tokenlab/kernels/wasm_attention.ts";
import {
  assertClose,
  assertNoLeaks,
  backendTest,
  checkGradients,
  withEachWasmPath,
} from "tokenlab/testing";
import { testValues } from "tokenlab/testing/reference.ts";

/** softmax(q k^T / sqrt(hd)) v per head in float64; returns [out, probs]. */
function refAttention(
  qkv: ArrayLike<number>,
  [B, N, H, hd]: [number, number, number, number],
): [Float64Array, Float64Array] {
  const D = H * hd;
  const out = new Float64Array(B * N * D);
  const probs = new Float64Array(B * H * N * N);
  const at = (b: number, n: number, which: number, h: number, c: number) =>
    qkv[(b * N + n) * 3 * D + which * D + h * hd + c];
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < N; i++) {
        const s = new Float64Array(N);
        for (let j = 0; j < N; j++) {
          for (let c = 0; c < hd; c++) {
            s[j] += at(b, i, 0, h, c) * at(b, j, 1, h, c);
          }
          s[j] /= Math.sqrt(hd);
        }
        const m = Math.max(...s);
        let sum = 0;
        for (let j = 0; j < N; j++) sum += s[j] = Math.exp(s[j] - m);
        for (let j = 0; j < N; j++) {
          const p = s[j] / sum;
          probs[((b * H + h) * N + i) * N + j] = p;
          for (let c = 0; c < hd; c++) {
            out[(b * N + i) * D + h * hd + c] += p * at(b, j, 2, h, c);
          }
        }
      }
    }
  }
  return [out, probs];
}

await backendTest(
  "attentionCore: forward and probabilities against float64",
  (backend) =>
    withEachWasmPath(backend, async (path) => {
      for (
        const dims of [[2, 5, 3, 4], [1, 9, 2, 8], [2, 17, 1, 6]] as [
          number,
          number,
          number,
          number,
        ][]
      ) {
        const [B, N, H, hd] = dims;
        const values = testValues(B * N * 3 * H * hd, 7).map((v) => 3 * v);
        const [want, wantProbs] = refAttention(values, dims);
        await assertNoLeaks(async () => {
          const qkv = tf.tensor3d(values, [B, N, 3 * H * hd]);
          let probs: tf.Tensor | null = null;
          const y = attentionCore(qkv, H, (p) => {
            probs = tf.keep(tf.clone(p));
          });
          assertEquals(y.shape, [B, N, H * hd]);
          await assertClose(y, want, {
            rtol: 1e-5,
            atol: 1e-5,
            what: `out ${dims}`,
          });
          assert(probs !== null, "onProbs was not called");
          await assertClose(probs!, wantProbs, {
            rtol: 1e-5,
            atol: 1e-6,
            what: "probs",
          });
          tf.dispose([qkv, y, probs!]);
        });
        assertEquals(
          fusedAttentionAvailable(),
          backend === "wasm" || backend === "webgpu",
        );
        // And without the hook (the fused kernel on wasm):
        await assertNoLeaks(async () => {
          const qkv = tf.tensor3d(values, [B, N, 3 * H * hd]);
          const y = attentionCore(qkv, H);
          await assertClose(y, want, {
            rtol: 1e-5,
            atol: 1e-5,
            what: `out ${dims} (${path})`,
          });
          tf.dispose([qkv, y]);
        });
      }
    }),
  { wasmPaths: true },
);

await backendTest(
  "attentionCore: gradient against finite differences",
  (backend) =>
    withEachWasmPath(backend, async (path) => {
      const [B, N, H, hd] = [2, 4, 2, 3];
      const qkv = tf.tensor3d(
        testValues(B * N * 3 * H * hd, 3).map((v) => 2 * v),
        [B, N, 3 * H * hd],
      );
      const w = tf.tensor3d(testValues(B * N * H * hd, 4), [B, N, H * hd]);
      await checkGradients(
        (x) => tf.sum(tf.mul(attentionCore(x as tf.Tensor3D, H), w)),
        [qkv],
        {
          rtol: 2e-2,
          atol: 2e-3,
          what: `gradient (${path})`,
        },
      );
      tf.dispose([qkv, w]);
    }),
  { wasmPaths: true },
);

await backendTest(
  "fused attention: gradient equals the composite's on the bench-64 shapes; NaN propagates",
  (backend) =>
    withEachWasmPath(backend, async (path) => {
      for (const [B, N, H, hd] of [[4, 65, 3, 64], [3, 10, 4, 7]]) {
        await assertNoLeaks(async () => {
          const qkv = tf.randomNormal(
            [B, N, 3 * H * hd],
            0,
            1,
            "float32",
            5,
          ) as tf.Tensor3D;
          const dy = tf.randomNormal([B, N, H * hd], 0, 1, "float32", 6);
          const grad = (f: typeof attentionCore) =>
            tf.grad((x: tf.Tensor) =>
              tf.sum(tf.mul(f(x as tf.Tensor3D, H), dy))
            )(
              qkv,
            );
          const fused = grad(attentionCore),
            composite = grad(attentionComposite);
          await assertClose(fused, await composite.data(), {
            rtol: 1e-4,
            atol: 1e-5,
            what: `gradient [${B}, ${N}, ${H}, ${hd}] (${path})`,
          });
          tf.dispose([qkv, dy, fused, composite]);
        });
      }
      const bad = tf.tensor3d([NaN, ...testValues(2 * 3 * 2 - 1, 1)], [
        1,
        2,
        6,
      ]);
      const y = attentionCore(bad, 1);
      const v = await y.data();
      assert(
        Number.isNaN(v[0]),
        `a NaN in q should give NaN, found ${v[0]} (${path})`,
      );
      tf.dispose([bad, y]);
    }),
  { backends: ["wasm"], wasmPaths: true },
);
