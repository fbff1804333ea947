/**
 * The shape of a batched matrix product as tfjs's `BatchMatMul` kernel
 * receives it (operands a and b, transpose flags), read the one way that
 * the kit's replacements of that kernel (OpenBLAS on wasm, the tiled WGSL
 * product) share.
 *
 * Imports tfjs directly and only defines functions (a kernel module is a
 * leaf).
 *
 * @module
 */

import * as tfjs from "@tensorflow/tfjs";

/** The sizes of op(a) op(b): [..., M, K] x [..., K, N] -> [...outer, M, N]. */
export interface ProductShape {
  /** Rows of op(a) and of the output. */
  M: number;
  /** Columns of op(b) and of the output. */
  N: number;
  /** The inner size: columns of op(a), rows of op(b). */
  K: number;
  /** The output's batch dimensions (a's and b's broadcast together). */
  outer: number[];
  /** a's batch dimensions. */
  outerA: number[];
  /** b's batch dimensions. */
  outerB: number[];
}

/**
 * The sizes of the product of a and b (transposed as the flags say), or
 * null when a rank is under 2, the inner sizes differ or the batch
 * dimensions do not broadcast (tfjs's kernel then says what is wrong).
 */
export function productShape(
  a: readonly number[],
  b: readonly number[],
  transA: boolean,
  transB: boolean,
): ProductShape | null {
  const ra = a.length, rb = b.length;
  if (ra < 2 || rb < 2) return null;
  const M = transA ? a[ra - 1] : a[ra - 2];
  const K = transA ? a[ra - 2] : a[ra - 1];
  const kb = transB ? b[rb - 1] : b[rb - 2];
  const N = transB ? b[rb - 2] : b[rb - 1];
  if (K !== kb) return null;
  const outerA = a.slice(0, -2), outerB = b.slice(0, -2);
  try {
    const outer = tfjs.broadcast_util.assertAndGetBroadcastShape(
      outerA,
      outerB,
    );
    return { M, N, K, outer, outerA, outerB };
  } catch {
    return null;
  }
}
