/**
 * Regimes of training: one small strategy per way of training (plain,
 * MixToken, image-level CutMix/MixUp, TL-Align), each preparing a step's
 * inputs and targets, the forward's options and the loss, picked from the
 * resolved config by {@linkcode regimeFor}.
 *
 * @module
 */

export * from "./regime.ts";
export * from "./targets.ts";
export * from "./plain.ts";
export * from "./mixtoken.ts";
export * from "./image_mix.ts";
export * from "./tl_align.ts";
export * from "./select.ts";
