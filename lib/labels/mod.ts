/**
 * Token labels: score maps from a machine annotator (made by `annotate`),
 * stored per image in the official format or in a compact store per
 * dataset, moved with the image by flips and RandAugment's spatial ops, and
 * pooled into class-token and patch-token soft labels for any crop.
 *
 * @module
 */

export * from "./annotate.ts";
export * from "./display.ts";
export * from "./map_transforms.ts";
export * from "./pooling.ts";
export * from "./score_map.ts";
export * from "./oracle.ts";
