/**
 * Token labels: score maps from a machine annotator, stored per image in the
 * official format or in a compact store per dataset.
 *
 * @module
 */

export * from "./annotate.ts";
export * from "./score_map.ts";
