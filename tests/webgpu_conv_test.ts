/**
 * The implicit-product WGSL convolution and input gradient
 * (lib/kernels/webgpu_conv.ts) on WebGPU against a float64 loop: the LV-ViT
 * stem's kinds of convolution (7x7 stride 2, 3x3 'same' and padded, the 4x4
 * patch projection), odd and uneven padding, K and N past one tile; the
 * strided input gradients, left to tfjs's kernel, still right; no leaked
 * tensors.
 */

import { assertEquals } from "./_assert.ts";
import { tf } from "tokenlab";
import { installWebGpuConv } from "tokenlab/kernels/webgpu_conv.ts";
import { forceGemmBlock } from "tokenlab/kernels/_tiled_gemm.ts";
import { assertClose, assertNoLeaks, backendTest } from "tokenlab/testing";
import { refConv2dAll, testValues } from "tokenlab/testing/reference.ts";
import { convGeometry, type ConvPad } from "./_conv_geometry.ts";

interface Case {
  what: string;
  x: [number, number, number, number];
  k: [number, number];
  co: number;
  stride: number;
  pad: ConvPad;
}

const CASES: Case[] = [
  {
    what: "7x7 s2 p3",
    x: [2, 20, 18, 3],
    k: [7, 7],
    co: 16,
    stride: 2,
    pad: 3,
  },
  {
    what: "3x3 s1 same",
    x: [2, 9, 11, 8],
    k: [3, 3],
    co: 5,
    stride: 1,
    pad: "same",
  },
  {
    what: "3x3 s1 p1, K and N past a tile",
    x: [2, 14, 12, 24],
    k: [3, 3],
    co: 80,
    stride: 1,
    pad: 1,
  },
  {
    what: "4x4 s4 valid (patches)",
    x: [2, 12, 12, 6],
    k: [4, 4],
    co: 10,
    stride: 4,
    pad: "valid",
  },
  {
    what: "2x3 s1 same, uneven pad",
    x: [1, 7, 5, 3],
    k: [2, 3],
    co: 5,
    stride: 1,
    pad: "same",
  },
  {
    what: "1x1 s1",
    x: [3, 5, 4, 7],
    k: [1, 1],
    co: 9,
    stride: 1,
    pad: "valid",
  },
  {
    what: "3x3 s2 same, odd sizes",
    x: [2, 9, 7, 4],
    k: [3, 3],
    co: 6,
    stride: 2,
    pad: "same",
  },
];

await backendTest(
  "webgpu implicit-product conv2d and its input gradient equal a float64 loop",
  async () => {
    installWebGpuConv();
    const kernel = tf.getKernel("Conv2D", "webgpu")!;
    installWebGpuConv(); // idempotent: the same function stays
    assertEquals(
      tf.getKernel("Conv2D", "webgpu")!.kernelFunc,
      kernel.kernelFunc,
    );
    // The block the product picks, then the largest and smallest forced.
    const blocks: (readonly [number, number] | null)[] = [null, [8, 8], [2, 2]];
    for (const block of blocks) {
      forceGemmBlock(block);
      for (const [i, c] of CASES.entries()) {
        const [n, h, w, ci] = c.x;
        const [kh, kw] = c.k;
        const rows = convGeometry(h, kh, c.stride, c.pad);
        const cols = convGeometry(w, kw, c.stride, c.pad);
        const xv = testValues(n * h * w * ci, 60 + i);
        const fv = testValues(kh * kw * ci * c.co, 70 + i);
        const dyv = testValues(n * rows.out * cols.out * c.co, 80 + i);
        const ref = refConv2dAll(xv, c.x, fv, [kh, kw, c.co], dyv, {
          stride: c.stride,
          padTop: rows.lead,
          padLeft: cols.lead,
          oh: rows.out,
          ow: cols.out,
        });
        const tol = { rtol: 1e-4, atol: 1e-4 };
        await assertNoLeaks(async () => {
          const x = tf.tensor4d(xv, c.x);
          const f = tf.tensor4d(fv, [kh, kw, ci, c.co]);
          const dy = tf.tensor4d(dyv, [n, rows.out, cols.out, c.co]);
          const conv = (a: tf.Tensor, b: tf.Tensor) =>
            tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.stride, c.pad);
          const y = conv(x, f);
          assertEquals(y.shape, [n, rows.out, cols.out, c.co], c.what);
          await assertClose(y, ref.y, {
            ...tol,
            what: `forward, ${c.what}, block ${block?.join("x") ?? "chosen"}`,
          });
          const [dx, df] = tf.grads(conv)([x, f], dy);
          assertEquals(dx.shape, c.x, c.what);
          await assertClose(dx, ref.dx, {
            ...tol,
            what: `input gradient, ${c.what}, block ${
              block?.join("x") ?? "chosen"
            }`,
          });
          tf.dispose([x, f, dy, y, dx, df]);
        }, c.what);
      }
    }
    forceGemmBlock(null);
  },
  { backends: ["webgpu"] },
);
