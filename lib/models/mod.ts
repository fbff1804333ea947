/**
 * The models: LV-ViT, the DeiT-style ViT baseline and a ReLabel-style
 * ResNet behind one interface (TokenModel), their registry,
 * parameter and FLOP counts, and weights in and out (official PyTorch
 * checkpoints, safetensors).
 *
 * @module
 */

export { StateModel } from "./_base_model.ts";
export * from "./config.ts";
export * from "./lvvit.ts";
export * from "./model.ts";
export * from "./registry.ts";
export * from "./resnet.ts";
export * from "./resnet_config.ts";
export * from "./weights.ts";
