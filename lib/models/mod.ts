/**
 * The models: LV-ViT and the DeiT-style ViT baseline, their registry,
 * parameter and FLOP counts, and weights in and out (official PyTorch
 * checkpoints, safetensors).
 *
 * @module
 */

export * from "./config.ts";
export * from "./lvvit.ts";
export * from "./registry.ts";
export * from "./weights.ts";
