/**
 * Annotators: what makes score maps. {@linkcode annotate} runs a classifier
 * of the kit densely over a dataset (the machine annotator of token
 * labeling); {@linkcode oracleAnnotate} computes exact maps from the class
 * maps of synthetic scenes (a perfect annotator). Both write a
 * `ScoreMapStore`. They sit above `labels/`, `data/` and `models/`, which
 * they use.
 *
 * @module
 */

export * from "./annotate.ts";
export * from "./head.ts";
export * from "./oracle.ts";
export * from "./weights_file.ts";
