/**
 * What the fused attention's wasm (`wasm_attention.ts`) and WebGPU
 * (`webgpu_attention.ts`) kernels share: their kernel names (one op, one
 * name, whichever backend runs it) and the reading of their input, q, k and
 * v where the qkv projection left them ([B, N, 3, H, hd] as [B, N, 3D]).
 *
 * @module
 */

/** Kernel names of the forward and the backward pass. */
export const ATTENTION_KERNEL_NAMES = {
  forward: "TokenlabFusedAttention",
  backward: "TokenlabFusedAttentionGrad",
} as const;

/**
 * qkv [B, N, 3D] (float32) and the number of heads -> [B, N, H, hd].
 *
 * @throws {Error} naming `who`, when qkv is not float32 [B, N, 3D] with D a
 *   multiple of the heads
 */
export function qkvDims(
  qkv: { readonly shape: readonly number[]; readonly dtype: string },
  heads: number,
  who: string,
): [number, number, number, number] {
  const [B, N, D3] = qkv.shape;
  const hd = D3 / 3 / heads;
  if (
    qkv.shape.length !== 3 || qkv.dtype !== "float32" ||
    !Number.isInteger(hd) || hd < 1
  ) {
    throw new Error(
      `${who}: expected float32 qkv [B, N, 3 * D] with D divisible by ${heads} heads, found ${qkv.dtype} [${qkv.shape}]`,
    );
  }
  return [B, N, heads, hd];
}
