/**
 * Mixing: MixToken on the patch-token grid (the `TokenMixer` of
 * `LvVit.forwardTrain`), CutMix and MixUp on pixels with the official label
 * handling, TL-Align's patch-aligned CutMix, and notebook views of a mixed
 * batch.
 *
 * @module
 */

export * from "./mixtoken.ts";
export * from "./cutmix.ts";
export * from "./display.ts";
