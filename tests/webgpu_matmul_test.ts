/**
 * The tiled WGSL matmul (lib/kernels/webgpu_matmul.ts) on WebGPU against the
 * cpu backend's: 1x1, a transformer's shapes (65x192x576), every pair of
 * transpose flags, odd sizes, batches with broadcast, every block shape the
 * kernel picks and every block forced on every case; a linear layer's fused product with its bias (and the cases
 * left to tfjs: an activation, a bias per row); no leaked tensors.
 */

import { assertEquals } from "./_assert.ts";
import { tf } from "tokenlab";
import {
  installWebGpuMatMul,
  matMulBlock,
} from "tokenlab/kernels/webgpu_matmul.ts";
import { forceGemmBlock, GEMM_BLOCKS } from "tokenlab/kernels/_tiled_gemm.ts";
import { assertClose, assertNoLeaks, backendTest } from "tokenlab/testing";
import { testValues } from "tokenlab/testing/reference.ts";

interface Case {
  a: number[];
  b: number[];
  ta?: boolean;
  tb?: boolean;
}

const CASES: Case[] = [
  { a: [1, 1], b: [1, 1] },
  { a: [65, 192], b: [192, 576] },
  { a: [65, 192], b: [576, 192], tb: true },
  { a: [192, 65], b: [192, 576], ta: true },
  { a: [37, 19], b: [23, 37], ta: true, tb: true },
  { a: [3, 65, 32], b: [3, 65, 32], tb: true }, // attention scores
  { a: [3, 65, 65], b: [3, 65, 32] }, // attention values
  { a: [2, 3, 17, 9], b: [9, 11] }, // b broadcast over a 2-D batch
  { a: [17, 9], b: [4, 9, 11] }, // a broadcast
  { a: [5, 17, 9], b: [1, 11, 9], tb: true },
  { a: [2, 3, 7, 5], b: [3, 5, 4] }, // b repeats along the leading dim
  { a: [40, 1000], b: [1000, 40], ta: true, tb: true }, // 4x4 blocks, edges
  { a: [64, 128, 8], b: [64, 8, 96] }, // 4x2 blocks
  { a: [64, 8, 96], b: [64, 8, 128], ta: true }, // 2x4 blocks
  { a: [16, 256, 40], b: [16, 40, 1024] }, // 8x8 blocks, K past one step
];

function dims(c: Case) {
  const ra = c.a.length, rb = c.b.length;
  const M = c.ta ? c.a[ra - 1] : c.a[ra - 2];
  const N = c.tb ? c.b[rb - 2] : c.b[rb - 1];
  const outer = c.a.length > c.b.length ? c.a : c.b;
  const batch = outer.slice(0, -2).reduce((p, v) => p * v, 1);
  return { M, N, batch };
}

await backendTest(
  "webgpu tiled matmul equals the cpu backend's",
  async () => {
    const blocks = new Set(CASES.map((c) => {
      const { M, N, batch } = dims(c);
      return matMulBlock(batch, M, N).join("x");
    }));
    assertEquals([...blocks].sort(), ["2x2", "2x4", "4x2", "4x4", "8x8"]);
    const values = CASES.map((c, i) => ({
      a: testValues(c.a.reduce((p, v) => p * v, 1), 50 + i),
      b: testValues(c.b.reduce((p, v) => p * v, 1), 70 + i),
    }));
    const product = (c: Case, i: number) =>
      tf.tidy(() =>
        tf.matMul(
          tf.tensor(values[i].a, c.a),
          tf.tensor(values[i].b, c.b),
          c.ta,
          c.tb,
        )
      );
    await tf.setBackend("cpu");
    const expected: { data: Float32Array; shape: number[] }[] = [];
    for (const [i, c] of CASES.entries()) {
      const y = product(c, i);
      expected.push({ data: (await y.data()) as Float32Array, shape: y.shape });
      y.dispose();
    }
    await tf.setBackend("webgpu");
    installWebGpuMatMul();
    const kernel = tf.getKernel("BatchMatMul", "webgpu")!;
    installWebGpuMatMul(); // idempotent: the same function stays
    assertEquals(
      tf.getKernel("BatchMatMul", "webgpu")!.kernelFunc,
      kernel.kernelFunc,
    );
    // The block the kernel picks, then every block forced on every case.
    for (const block of [null, ...GEMM_BLOCKS]) {
      forceGemmBlock(block);
      for (const [i, c] of CASES.entries()) {
        const what = `[${c.a}]${c.ta ? "ᵀ" : ""} x [${c.b}]${
          c.tb ? "ᵀ" : ""
        }, block ${block?.join("x") ?? "chosen"}`;
        await assertNoLeaks(async () => {
          const y = product(c, i);
          assertEquals(y.shape, expected[i].shape, what);
          await assertClose(y, expected[i].data, {
            rtol: 1e-4,
            atol: 1e-5,
            what,
          });
          y.dispose();
        }, what);
      }
    }
    forceGemmBlock(null);
  },
  { backends: ["webgpu"] },
);

interface FusedCase extends Case {
  bias: number[];
  activation?: "relu";
}

const FUSED: FusedCase[] = [
  { a: [65, 192], b: [192, 576], bias: [576] }, // a linear layer
  { a: [1, 130, 64], b: [1, 64, 40], bias: [40] },
  { a: [37, 19], b: [23, 37], ta: true, tb: true, bias: [1, 23] },
  { a: [33, 9], b: [9, 7], bias: [7], activation: "relu" }, // tfjs's kernel
  { a: [33, 9], b: [9, 7], bias: [33, 1] }, // a bias per row: tfjs's kernel
];

await backendTest(
  "webgpu tiled matmul: a linear layer's _FusedMatMul with its bias equals the cpu backend's",
  async () => {
    const values = FUSED.map((c, i) => ({
      a: testValues(c.a.reduce((p, v) => p * v, 1), 90 + i),
      b: testValues(c.b.reduce((p, v) => p * v, 1), 110 + i),
      bias: testValues(c.bias.reduce((p, v) => p * v, 1), 130 + i, 3),
    }));
    const product = (c: FusedCase, i: number) =>
      tf.tidy(() =>
        tf.fused.matMul({
          a: tf.tensor(values[i].a, c.a) as unknown as tf.Tensor2D,
          b: tf.tensor(values[i].b, c.b) as unknown as tf.Tensor2D,
          transposeA: c.ta,
          transposeB: c.tb,
          bias: tf.tensor(values[i].bias, c.bias),
          activation: c.activation ?? "linear",
        })
      );
    await tf.setBackend("cpu");
    const expected: Float32Array[] = [];
    for (const [i, c] of FUSED.entries()) {
      const y = product(c, i);
      expected.push((await y.data()) as Float32Array);
      y.dispose();
    }
    await tf.setBackend("webgpu");
    installWebGpuMatMul();
    for (const [i, c] of FUSED.entries()) {
      const what = `[${c.a}]${c.ta ? "ᵀ" : ""} x [${c.b}]${
        c.tb ? "ᵀ" : ""
      } + [${c.bias}]${c.activation ? `, ${c.activation}` : ""}`;
      await assertNoLeaks(async () => {
        const y = product(c, i);
        await assertClose(y, expected[i], { rtol: 1e-4, atol: 1e-5, what });
        y.dispose();
      }, what);
    }
  },
  { backends: ["webgpu"] },
);
