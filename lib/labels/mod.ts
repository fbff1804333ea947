/**
 * Token labels: score maps (the type and its checks), stored per image in
 * the official format or in a compact store per dataset, moved with the
 * image by flips and RandAugment's spatial ops, and pooled into class-token
 * and patch-token soft labels for any crop. The annotators that make them
 * are in `lib/annotators/`.
 *
 * @module
 */

export * from "./agreement.ts";
export * from "./display.ts";
export * from "./map_transforms.ts";
export * from "./official_map.ts";
export * from "./pooling.ts";
export * from "./score_map.ts";
export * from "./store/mod.ts";
