/**
 * Losses: soft-target cross-entropy, the token labeling loss (LV-ViT, VOLO,
 * ReLabel), targets from image labels, and TL-Align's attention-aligned
 * labels.
 *
 * @module
 */

export * from "./cross_entropy.ts";
export * from "./tl_align.ts";
