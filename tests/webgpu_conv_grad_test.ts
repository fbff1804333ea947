/**
 * The split-K WGSL filter gradient of conv2d (lib/kernels/webgpu_conv_grad.ts)
 * on WebGPU: `tf.grads` of a conv2d against a float64 loop for the LV-ViT
 * stem's kinds of convolution (7x7 stride 2, 3x3 'same', patch embeddings
 * 8x8 and 4x4, odd and uneven padding) in one chunk of M and in several,
 * tfjs's kernel still used for NCHW, and no leaked tensors.
 */

import { assertEquals } from "./_assert.ts";
import { tf } from "tokenlab";
import {
  installWebGpuConvGrad,
  splitK,
} from "tokenlab/kernels/webgpu_conv_grad.ts";
import { assertClose, assertNoLeaks, backendTest } from "tokenlab/testing";
import { refConv2dAll, testValues } from "tokenlab/testing/reference.ts";
import { convGeometry, type ConvPad } from "./_conv_geometry.ts";

interface Case {
  what: string;
  x: [number, number, number, number];
  kh: number;
  kw: number;
  co: number;
  stride: number;
  pad: ConvPad;
}

const CASES: Case[] = [
  {
    what: "7x7 s2 p3",
    x: [2, 32, 32, 3],
    kh: 7,
    kw: 7,
    co: 64,
    stride: 2,
    pad: 3,
  },
  {
    what: "3x3 s1 same",
    x: [2, 9, 11, 8],
    kh: 3,
    kw: 3,
    co: 5,
    stride: 1,
    pad: "same",
  },
  {
    what: "8x8 s8 valid",
    x: [3, 16, 24, 4],
    kh: 8,
    kw: 8,
    co: 6,
    stride: 8,
    pad: "valid",
  },
  {
    what: "4x4 s4 valid",
    x: [2, 12, 12, 3],
    kh: 4,
    kw: 4,
    co: 64,
    stride: 4,
    pad: "valid",
  },
  {
    what: "4x4 s4 same, uneven pad",
    x: [2, 13, 13, 3],
    kh: 4,
    kw: 4,
    co: 5,
    stride: 4,
    pad: "same",
  },
  {
    what: "2x3 s2 same, odd sizes",
    x: [1, 7, 5, 3],
    kh: 2,
    kw: 3,
    co: 5,
    stride: 2,
    pad: "same",
  },
  {
    what: "3x3 s1 p1, K and N past one tile",
    x: [4, 16, 16, 16],
    kh: 3,
    kw: 3,
    co: 80,
    stride: 1,
    pad: 1,
  },
  {
    what: "3x3 s1 p1, many chunks",
    x: [8, 32, 32, 3],
    kh: 3,
    kw: 3,
    co: 8,
    stride: 1,
    pad: 1,
  },
];

await backendTest(
  "webgpu split-K conv2d filter gradient equals a float64 loop",
  async () => {
    installWebGpuConvGrad();
    const kernel = tf.getKernel("Conv2DBackpropFilter", "webgpu")!;
    installWebGpuConvGrad(); // idempotent: the same function stays
    assertEquals(
      tf.getKernel("Conv2DBackpropFilter", "webgpu")!.kernelFunc,
      kernel.kernelFunc,
    );
    // The cases cover one chunk of M and several.
    const chunks = CASES.map((c) => {
      const rows = convGeometry(c.x[1], c.kh, c.stride, c.pad).out;
      const cols = convGeometry(c.x[2], c.kw, c.stride, c.pad).out;
      return splitK(c.x[0] * rows * cols, c.kh * c.kw * c.x[3], c.co).chunks;
    });
    assertEquals(chunks.some((n) => n === 1), true, `chunks ${chunks}`);
    assertEquals(chunks.some((n) => n > 4), true, `chunks ${chunks}`);
    for (const [i, c] of CASES.entries()) {
      const [n, h, w, ci] = c.x;
      const rows = convGeometry(h, c.kh, c.stride, c.pad);
      const cols = convGeometry(w, c.kw, c.stride, c.pad);
      const xv = testValues(n * h * w * ci, 10 + i);
      const fv = testValues(c.kh * c.kw * ci * c.co, 20 + i);
      const dyv = testValues(n * rows.out * cols.out * c.co, 30 + i);
      const ref = refConv2dAll(xv, c.x, fv, [c.kh, c.kw, c.co], dyv, {
        stride: c.stride,
        padTop: rows.lead,
        padLeft: cols.lead,
        oh: rows.out,
        ow: cols.out,
      });
      await assertNoLeaks(async () => {
        const x = tf.tensor4d(xv, c.x);
        const f = tf.tensor4d(fv, [c.kh, c.kw, ci, c.co]);
        const dy = tf.tensor4d(dyv, [n, rows.out, cols.out, c.co]);
        const [dx, df] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
          tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.stride, c.pad)
        )([x, f], dy);
        assertEquals(df.shape, [c.kh, c.kw, ci, c.co], c.what);
        await assertClose(df, ref.df, {
          rtol: 1e-4,
          atol: 1e-4,
          what: `filter gradient, ${c.what}`,
        });
        tf.dispose([x, f, dy, dx, df]);
      }, c.what);
    }
  },
  { backends: ["webgpu"] },
);

await backendTest(
  "webgpu conv2d filter gradient: NCHW still goes to tfjs's kernel",
  async () => {
    installWebGpuConvGrad();
    const [n, h, w, ci, co] = [2, 6, 5, 3, 4];
    const xv = testValues(n * h * w * ci, 41);
    const dyv = testValues(n * 3 * 3 * co, 42);
    const fv = new Float32Array(3 * 3 * ci * co);
    const ref = refConv2dAll(xv, [n, h, w, ci], fv, [3, 3, co], dyv, {
      stride: 2,
      padTop: convGeometry(h, 3, 2, "same").lead, // 0: the odd pad goes below
      padLeft: convGeometry(w, 3, 2, "same").lead,
      oh: 3,
      ow: 3,
    });
    await assertNoLeaks(async () => {
      const x = tf.tidy(() =>
        tf.transpose(tf.tensor4d(xv, [n, h, w, ci]), [0, 3, 1, 2])
      );
      const dy = tf.tidy(() =>
        tf.transpose(tf.tensor4d(dyv, [n, 3, 3, co]), [0, 3, 1, 2])
      );
      const df = tf.engine().runKernel("Conv2DBackpropFilter", { x, dy }, {
        strides: 2,
        pad: "same",
        dataFormat: "NCHW",
        filterShape: [3, 3, ci, co],
      }) as tf.Tensor;
      await assertClose(df, ref.df, { rtol: 1e-4, atol: 1e-4, what: "NCHW" });
      tf.dispose([x, dy, df]);
    });
  },
  { backends: ["webgpu"] },
);
