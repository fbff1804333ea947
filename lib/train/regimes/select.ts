/**
 * Which regime a resolved config trains with.
 *
 * @module
 */

import type { ResolvedTrainConfig } from "../config.ts";
import type { RegimeName, TrainingRegime } from "./regime.ts";
import type { PrepareTargetsOptions } from "./targets.ts";
import { plainRegime } from "./plain.ts";
import { mixTokenRegime } from "./mixtoken.ts";
import { imageMixRegime } from "./image_mix.ts";
import { tlAlignRegime } from "./tl_align.ts";

/** Options of {@linkcode regimeFor}. */
export type RegimeForOptions = PrepareTargetsOptions;

/**
 * The name of the regime a resolved config trains with: `"image_mix"` with
 * CutMix or MixUp, `"tl_align"` with TL-Align, `"mixtoken"` with MixToken,
 * `"plain"` otherwise (the config's checks make them exclusive).
 *
 * @example
 * ```ts
 * import { regimeName, resolveTrainConfig } from "tokenlab";
 * const c = resolveTrainConfig({ data: "synthetic", model: "lvvit_xs32", tlAlign: true });
 * console.log(regimeName(c)); // "tl_align"
 * ```
 */
export function regimeName(
  config: Pick<
    ResolvedTrainConfig,
    "cutmix" | "mixup" | "tlAlign" | "mixToken"
  >,
): RegimeName {
  if (config.cutmix > 0 || config.mixup > 0) return "image_mix";
  if (config.tlAlign) return "tl_align";
  if (config.mixToken) return "mixtoken";
  return "plain";
}

/**
 * The regime a resolved config trains with ({@linkcode regimeName}), built
 * for the model's class count. The caller disposes it after the run.
 *
 * @example
 * ```ts
 * import { regimeFor, resolveTrainConfig } from "tokenlab";
 * const c = resolveTrainConfig({ data: "synthetic", model: "lvvit_xs32", cutmix: 1 });
 * const regime = regimeFor(c, { numClasses: 4 });
 * console.log(regime.name); // "image_mix"
 * regime.dispose();
 * ```
 */
export function regimeFor(
  config: ResolvedTrainConfig,
  options: RegimeForOptions,
): TrainingRegime {
  switch (regimeName(config)) {
    case "image_mix":
      return imageMixRegime(config, options);
    case "tl_align":
      return tlAlignRegime(config, options);
    case "mixtoken":
      return mixTokenRegime(config, options);
    case "plain":
      return plainRegime(config, options);
  }
}
