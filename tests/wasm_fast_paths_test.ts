/**
 * The wasm fast paths (lib/kernels/wasm_fast_paths.ts): transposed matrix
 * products give the same numbers as float64 loops, and the buffer-sharing
 * Identity keeps every tensor's value independent of its clones' lifetimes,
 * and the convolution input gradient (rewritten as a forward convolution or
 * one matrix product on wasm) matches a float64 adjoint loop on every
 * backend.
 */

import { assertEquals } from "./_assert.ts";
import { initBackend, tf } from "tokenlab";
import { registerWasmFastPaths } from "tokenlab/kernels/wasm_fast_paths.ts";
import { assertClose, assertNoLeaks, backendTest } from "tokenlab/testing";
import { refMatMul, testValues } from "tokenlab/testing/reference.ts";

function transpose2d(
  v: Float32Array,
  rows: number,
  cols: number,
): Float32Array {
  const out = new Float32Array(v.length);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[c * rows + r] = v[r * cols + c];
  }
  return out;
}

Deno.test("the fast paths are registered once, whatever the number of calls", () => {
  const all = ["Identity", "BatchMatMul", "Conv2DBackpropInput"];
  assertEquals(registerWasmFastPaths(), all);
  assertEquals(registerWasmFastPaths(), all);
});

await backendTest(
  "matmul with transposed operands (2-D, rank 3 batch 1, batched)",
  async () => {
    const m = 37, k = 53, n = 29;
    const a = testValues(m * k, 1), b = testValues(k * n, 2);
    const want = refMatMul(a, b, [m, k, n]);
    const at = transpose2d(a, m, k), bt = transpose2d(b, k, n);
    const cases: [string, () => tf.Tensor][] = [
      ["a^T", () =>
        tf.matMul(
          tf.tensor2d(at, [k, m]),
          tf.tensor2d(b, [k, n]),
          true,
          false,
        )],
      [
        "b^T",
        () =>
          tf.matMul(
            tf.tensor2d(a, [m, k]),
            tf.tensor2d(bt, [n, k]),
            false,
            true,
          ),
      ],
      [
        "a^T b^T",
        () =>
          tf.matMul(
            tf.tensor2d(at, [k, m]),
            tf.tensor2d(bt, [n, k]),
            true,
            true,
          ),
      ],
      [
        "rank 3, batch 1",
        () =>
          tf.matMul(
            tf.tensor3d(at, [1, k, m]),
            tf.tensor3d(bt, [1, n, k]),
            true,
            true,
          ),
      ],
    ];
    for (const [what, f] of cases) {
      const y = tf.tidy(f);
      await assertClose(tf.reshape(y, [m, n]), want, {
        rtol: 1e-4,
        atol: 1e-5,
        what,
      });
      y.dispose();
    }
    // Batched (passed through unchanged): two products at once.
    const y = tf.tidy(() =>
      tf.matMul(
        tf.tensor3d([...at, ...at], [2, k, m]),
        tf.tensor3d([...b, ...b], [2, k, n]),
        true,
        false,
      )
    );
    await assertClose(y, [...want, ...want], {
      rtol: 1e-4,
      atol: 1e-5,
      what: "batched a^T",
    });
    y.dispose();
    await assertNoLeaks(async () => {
      const z = tf.tidy(() =>
        tf.matMul(tf.ones([5, 3]), tf.ones([4, 5]), true, true)
      );
      await z.data();
      z.dispose();
    }, "transposed matmul");
  },
);

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

/**
 * The input gradient of a convolution in float64: the adjoint of refConv2d
 * (symmetric padding `pad`), dx[b, iy, ix, c] = sum of dy[b, oy, ox, o]
 * f[ky, kx, c, o] over the taps that read (iy, ix).
 */
function refConvInputGrad(
  dy: ArrayLike<number>,
  [n, h, w, ci]: readonly [number, number, number, number],
  f: ArrayLike<number>,
  [kh, kw, co]: readonly [number, number, number],
  stride: number,
  pad: number,
): Float64Array {
  const oh = Math.floor((h + 2 * pad - kh) / stride) + 1;
  const ow = Math.floor((w + 2 * pad - kw) / stride) + 1;
  const dx = new Float64Array(n * h * w * ci);
  for (let b = 0; b < n; b++) {
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++) {
        const yo = ((b * oh + oy) * ow + ox) * co;
        for (let ky = 0; ky < kh; ky++) {
          const iy = oy * stride - pad + ky;
          if (iy < 0 || iy >= h) continue;
          for (let kx = 0; kx < kw; kx++) {
            const ix = ox * stride - pad + kx;
            if (ix < 0 || ix >= w) continue;
            for (let c = 0; c < ci; c++) {
              const fo = ((ky * kw + kx) * ci + c) * co;
              let acc = 0;
              for (let o = 0; o < co; o++) acc += dy[yo + o] * f[fo + o];
              dx[((b * h + iy) * w + ix) * ci + c] += acc;
            }
          }
        }
      }
    }
  }
  return dx;
}

await backendTest(
  "convolution input gradient: stride 1, patchify and the general case",
  async () => {
    const cases: {
      x: [number, number, number, number];
      k: number;
      co: number;
      stride: number;
      pad: number;
      what: string;
    }[] = [
      { x: [2, 9, 7, 5], k: 3, co: 6, stride: 1, pad: 1, what: "3x3 pad 1" },
      { x: [1, 8, 8, 3], k: 5, co: 4, stride: 1, pad: 0, what: "5x5 valid" },
      { x: [2, 6, 6, 4], k: 3, co: 3, stride: 1, pad: 2, what: "3x3 pad 2" },
      { x: [2, 8, 12, 3], k: 4, co: 7, stride: 4, pad: 0, what: "patchify 4" },
      { x: [1, 11, 11, 3], k: 7, co: 5, stride: 2, pad: 3, what: "7x7/2" },
    ];
    for (const c of cases) {
      const [n, h, w, ci] = c.x;
      const fv = testValues(c.k * c.k * ci * c.co, 11);
      const xv = testValues(n * h * w * ci, 12);
      const oh = Math.floor((h + 2 * c.pad - c.k) / c.stride) + 1;
      const ow = Math.floor((w + 2 * c.pad - c.k) / c.stride) + 1;
      const dyv = testValues(n * oh * ow * c.co, 13);
      const want = refConvInputGrad(
        dyv,
        c.x,
        fv,
        [c.k, c.k, c.co],
        c.stride,
        c.pad,
      );
      await assertNoLeaks(async () => {
        const x = tf.tensor4d(xv, c.x);
        const f = tf.tensor4d(fv, [c.k, c.k, ci, c.co]);
        const dy = tf.tensor4d(dyv, [n, oh, ow, c.co]);
        const dx = tf.grad((x: tf.Tensor) =>
          tf.sum(tf.mul(tf.conv2d(x as tf.Tensor4D, f, c.stride, c.pad), dy))
        )(x);
        await assertClose(dx, want, { rtol: 1e-4, atol: 1e-4, what: c.what });
        tf.dispose([x, f, dy, dx]);
      });
    }
  },
);
