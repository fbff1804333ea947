/**
 * The WebGPU fused attention (lib/kernels/webgpu_attention.ts): its kernel
 * names agree with the wasm ones; on webgpu its output, probabilities and
 * qkv gradient equal attentionComposite's (heads of 4, 6, 7, 32, 64 and 128
 * channels, rows shorter and longer than a workgroup), attentionCore takes
 * it, a NaN propagates, shapes past its limits are refused with a message,
 * and nothing leaks.
 */

import { assert, assertEquals, assertThrows } from "./_assert.ts";
import { attentionComposite, attentionCore, tf } from "tokenlab";
import {
  FUSED_ATTENTION,
  FUSED_ATTENTION_GRAD,
  fusedAttention,
  fusedAttentionAvailable,
} from "tokenlab/kernels/wasm_attention.ts";
import {
  registerWebGpuAttention,
  WEBGPU_ATTENTION_MAX_HEAD,
  WEBGPU_ATTENTION_MAX_TOKENS,
} from "tokenlab/kernels/webgpu_attention.ts";
import { assertClose, assertNoLeaks, backendTest } from "tokenlab/testing";
import { testValues } from "tokenlab/testing/reference.ts";

const names = registerWebGpuAttention();

function dataIds(): number {
  return (tf.backend() as unknown as { numDataIds(): number }).numDataIds();
}

/** [B, N, heads, hd]: small ones, odd head widths, rows past 128 tokens. */
const SHAPES: [number, number, number, number][] = [
  [2, 5, 3, 4],
  [2, 17, 2, 6],
  [3, 10, 4, 7],
  [1, 9, 1, 128],
  [2, 65, 3, 64],
  [1, 197, 2, 32],
  [1, 300, 1, 8],
  [1, 785, 1, 64], // LV-ViT at 448 px: 28 x 28 patches and the class token
];

await backendTest(
  "WebGPU fused attention: forward and probabilities equal the composite's",
  async () => {
    assertEquals(names, [FUSED_ATTENTION, FUSED_ATTENTION_GRAD]);
    assert(
      fusedAttentionAvailable(),
      "fused attention not available on webgpu",
    );
    const before = dataIds();
    for (const [B, N, H, hd] of SHAPES) {
      const what = `[${B}, ${N}, ${H}, ${hd}]`;
      await assertNoLeaks(async () => {
        const qkv = tf.tensor3d(
          testValues(B * N * 3 * H * hd, 11).map((v) => 3 * v),
          [B, N, 3 * H * hd],
        );
        // [fused, composite] probabilities, kept past the calls.
        const probs: tf.Tensor[] = [];
        const keep = (p: tf.Tensor) => probs.push(tf.keep(tf.clone(p)));
        const y = fusedAttention(qkv, H, keep);
        const want = attentionComposite(qkv, H, keep);
        assertEquals(y.shape, [B, N, H * hd]);
        await assertClose(y, await want.data(), {
          rtol: 1e-4,
          atol: 1e-5,
          what: `out ${what}`,
        });
        assertEquals(probs.length, 2, "onProbs not called once per call");
        assertEquals(probs[0].shape, [B, H, N, N]);
        await assertClose(probs[0], await probs[1].data(), {
          rtol: 1e-4,
          atol: 1e-6,
          what: `probs ${what}`,
        });
        tf.dispose([qkv, y, want, ...probs]);
      }, `forward ${what}`);
    }
    assertEquals(dataIds(), before, "GPU buffers left behind");
  },
  { backends: ["webgpu"] },
);

await backendTest(
  "WebGPU fused attention: the qkv gradient equals the composite's",
  async () => {
    const before = dataIds();
    for (const [i, [B, N, H, hd]] of SHAPES.entries()) {
      const what = `[${B}, ${N}, ${H}, ${hd}]`;
      await assertNoLeaks(async () => {
        const qkv = tf.randomNormal(
          [B, N, 3 * H * hd],
          0,
          1,
          "float32",
          20 + i,
        ) as tf.Tensor3D;
        const dy = tf.randomNormal([B, N, H * hd], 0, 1, "float32", 40 + i);
        const grad = (f: typeof attentionComposite) =>
          tf.grad((x: tf.Tensor) => tf.sum(tf.mul(f(x as tf.Tensor3D, H), dy)))(
            qkv,
          );
        const fused = grad((x, h) => fusedAttention(x, h));
        const composite = grad(attentionComposite);
        await assertClose(fused, await composite.data(), {
          rtol: 1e-3,
          atol: 1e-5,
          what: `gradient ${what}`,
        });
        tf.dispose([qkv, dy, fused, composite]);
      }, `gradient ${what}`);
    }
    assertEquals(dataIds(), before, "GPU buffers left behind");
  },
  { backends: ["webgpu"] },
);

await backendTest(
  "WebGPU fused attention: attentionCore takes it; NaN propagates; limits refused",
  async () => {
    const [B, N, H, hd] = [2, 6, 2, 5];
    const qkv = tf.tensor3d(testValues(B * N * 3 * H * hd, 5), [
      B,
      N,
      3 * H * hd,
    ]);
    await assertNoLeaks(async () => {
      const info = await tf.profile(() => {
        const y = attentionCore(qkv, H);
        const g = tf.grad((x: tf.Tensor) =>
          tf.sum(attentionCore(x as tf.Tensor3D, H))
        )(qkv);
        return [y, g];
      });
      const kernels = info.kernelNames;
      assert(
        kernels.includes(FUSED_ATTENTION) &&
          kernels.includes(FUSED_ATTENTION_GRAD) &&
          !kernels.includes("Softmax"),
        `expected attentionCore to run the fused kernels on webgpu, found ${kernels}`,
      );
      const [y, g] = info.result as tf.Tensor[];
      const want = attentionComposite(qkv, H);
      await assertClose(y, await want.data(), {
        rtol: 1e-4,
        atol: 1e-5,
        what: "attentionCore",
      });
      tf.dispose([y, g, want]);
    });
    tf.dispose(qkv);

    const bad = tf.tensor3d([NaN, ...testValues(2 * 3 * 2 - 1, 1)], [1, 2, 6]);
    const y = attentionCore(bad, 1);
    const v = await y.data();
    assert(Number.isNaN(v[0]), `a NaN in q should give NaN, found ${v[0]}`);
    tf.dispose([bad, y]);

    const wide = WEBGPU_ATTENTION_MAX_HEAD + 1;
    const tooWide = tf.zeros([1, 2, 3 * wide]) as tf.Tensor3D;
    assertThrows(
      () => fusedAttention(tooWide, 1),
      Error,
      `at most ${WEBGPU_ATTENTION_MAX_HEAD} channels`,
    );
    const tooLong = tf.zeros([
      1,
      WEBGPU_ATTENTION_MAX_TOKENS + 1,
      3,
    ]) as tf.Tensor3D;
    assertThrows(
      () => fusedAttention(tooLong, 1),
      Error,
      `${WEBGPU_ATTENTION_MAX_TOKENS + 1} tokens`,
    );
    tf.dispose([tooWide, tooLong]);
  },
  { backends: ["webgpu"] },
);
