/**
 * The names of the fused normalisation kernels, shared by their wasm
 * (`wasm_norms.ts`) and WebGPU (`webgpu_norms.ts`) implementations: one op,
 * one kernel name, whichever backend runs it.
 *
 * @module
 */

/** Kernel names, by op. */
export const NORM_KERNEL_NAMES = {
  gelu: "TokenlabGelu",
  geluGrad: "TokenlabGeluGrad",
  layerNorm: "TokenlabLayerNorm",
  layerNormGrad: "TokenlabLayerNormGrad",
  moments: "TokenlabBatchNormMoments",
  batchNorm: "TokenlabBatchNorm",
  batchNormGrad: "TokenlabBatchNormGrad",
} as const;
