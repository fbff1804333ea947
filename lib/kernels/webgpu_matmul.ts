/**
 * A register-blocked tiled matrix product in WGSL for tfjs-webgpu's
 * `BatchMatMul` and the linear layers' `_FusedMatMul` (float32), meant for
 * a transformer's shapes: the token projections ([B·T, C] × [C, 3C],
 * [B·T, C] × [C, 4C]) and the attention products (batch B·heads, [T, d] ×
 * [d, T] and [T, T] × [T, d]).
 *
 * NOT installed by default: tfjs's own kernel runs unless a caller invokes
 * {@linkcode installWebGpuMatMul}, which the lead decides after measuring on
 * a GPU (tfjs's packed matmul reached 1.6–3.8 TFLOP/s on an H200).
 *
 * One dispatch of the tiled product of `_tiled_gemm.ts` (64×64 tiles, 4×4
 * per thread where the shape allows), the operands read along whichever
 * axis is contiguous for the transpose flags (baked into the shader).
 *
 * Handled: float32, rank ≥ 2, batch dimensions broadcast the way tfjs's
 * kernel indexes them (an operand's flat batch index is the output's modulo
 * its batch size, valid when its batch dimensions are ones then a suffix of
 * the output's). `_FusedMatMul` with a bias of one value per column and
 * no activation (a linear layer) adds the bias as it stores. Everything
 * else (other dtypes, empty shapes, other broadcasts, activations, PReLU)
 * goes to tfjs's kernel.
 *
 * This module imports tfjs directly (a kernel module is a leaf).
 *
 * @module
 */

import { productShape } from "./_matmul_shape.ts";
import {
  type KernelArgs,
  replaceWebGpuKernel,
  runWgsl,
  sizeOf,
  type TensorInfo,
} from "./webgpu_program.ts";
import * as wgsl from "./_wgsl.ts";
import { gemmBlock, gemmShader, gemmWorkgroups } from "./_tiled_gemm.ts";

const NAME = "BatchMatMul";
const FUSED_NAME = "_FusedMatMul";

/**
 * The per-thread block (rows, columns) the kernel uses for a product: the
 * largest whose tiles both fill the GPU and waste little, else the smallest.
 */
export const matMulBlock = gemmBlock;

/**
 * The shader for one block shape and pair of transpose flags, adding a bias
 * of N values to every row when `bias`.
 */
function shader(
  block: readonly [number, number],
  ta: boolean,
  tb: boolean,
  bias: boolean,
): string {
  return gemmShader({
    block,
    aAlong: ta ? "m" : "k",
    bAlong: tb ? "k" : "n",
    readA: `v = a[(batch % u.batchA) * u.M * u.K + ${
      ta ? "k * u.M + m" : "m * u.K + k"
    }];`,
    readB: `v = b[(batch % u.batchB) * u.K * u.N + ${
      tb ? "n * u.K + k" : "k * u.N + n"
    }];`,
    uniforms: "M: u32, N: u32, K: u32, batchA: u32, batchB: u32",
    inputs: bias ? ["a", "b", "bias"] : ["a", "b"],
    bias,
  });
}

/**
 * Whether `outer` (an operand's batch dimensions) indexed as the output's
 * flat batch index modulo its size reads the broadcast element: its
 * dimensions are ones, then the output's trailing ones.
 */
function modBroadcasts(outer: readonly number[], out: readonly number[]) {
  const padded = [...Array(out.length - outer.length).fill(1), ...outer];
  const first = padded.findIndex((d) => d !== 1);
  return first < 0 ||
    padded.slice(first).every((d, i) => d === out[first + i]);
}

/** The tiled product, or null for a case left to tfjs. */
function tiledMatMul(args: KernelArgs): TensorInfo | null {
  return tiledProduct(args, null);
}

/**
 * `_FusedMatMul` with a bias and no activation (a linear layer) as the
 * tiled product adding the bias as it stores; null (tfjs's kernel) for an
 * activation, PReLU weights, no bias, or a bias that is not one float32 per
 * output column.
 */
function tiledFusedMatMul(args: KernelArgs): TensorInfo | null {
  const { bias, preluActivationWeights } = args.inputs;
  const { activation = "linear" } = (args.attrs ?? {}) as {
    activation?: string;
  };
  if (activation !== "linear" || preluActivationWeights != null) return null;
  if (bias == null || bias.dtype !== "float32") return null;
  return tiledProduct(args, bias);
}

function tiledProduct(
  args: KernelArgs,
  bias: TensorInfo | null,
): TensorInfo | null {
  const { a, b } = args.inputs;
  const { transposeA = false, transposeB = false } = (args.attrs ?? {}) as {
    transposeA?: boolean;
    transposeB?: boolean;
  };
  if (a.dtype !== "float32" || b.dtype !== "float32") return null;
  const s = productShape(a.shape, b.shape, transposeA, transposeB);
  if (s === null) return null; // tfjs's kernel says what is wrong
  const { M, N, K, outer, outerA, outerB } = s;
  if (M === 0 || N === 0 || K === 0) return null;
  if (!modBroadcasts(outerA, outer) || !modBroadcasts(outerB, outer)) {
    return null;
  }
  // A bias is one value per column: [N], or [1, ..., 1, N].
  if (
    bias !== null &&
    (sizeOf(bias) !== N || bias.shape[bias.shape.length - 1] !== N)
  ) return null;
  const batch = sizeOf(outer);
  const block = gemmBlock(batch, M, N);
  const groups = gemmWorkgroups(block, batch, M, N);
  if (groups.some((g) => g > wgsl.MAX_WORKGROUPS)) return null;
  const flags = `${transposeA ? "t" : "n"}${transposeB ? "t" : "n"}${
    bias === null ? "" : "_bias"
  }`;
  return runWgsl(args.backend, {
    key: `tokenlab.matmul_${block.join("x")}_${flags}`,
    code: () => shader(block, transposeA, transposeB, bias !== null),
    inputs: bias === null ? [a, b] : [a, b, bias],
    outputs: [{ shape: [...outer, M, N] }],
    uniforms: wgsl.uniformWords([
      ["u", M],
      ["u", N],
      ["u", K],
      ["u", sizeOf(outerA)],
      ["u", sizeOf(outerB)],
    ]),
    workgroups: groups,
  })[0];
}

/**
 * Replaces tfjs-webgpu's `BatchMatMul`, and `_FusedMatMul` with a bias and
 * no activation (the linear layers), by the tiled kernel, keeping tfjs's for
 * the cases it does not handle (idempotent; not called by the library).
 * False when the WebGPU backend's kernels are not loaded.
 */
export function installWebGpuMatMul(): boolean {
  return replaceWebGpuKernel(NAME, tiledMatMul) &&
    replaceWebGpuKernel(FUSED_NAME, tiledFusedMatMul);
}
