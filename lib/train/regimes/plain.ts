/**
 * The plain regime: no mixing. The class token learns the class target
 * (pooled token label or smoothed one-hot), the token head, if any, the
 * token targets (token labels, or the image label at every token).
 *
 * @module
 */

import type { Rng } from "../../random.ts";
import type { ResolvedTrainConfig } from "../config.ts";
import type { RegimeBatch, RegimeStep, TrainingRegime } from "./regime.ts";
import type { PrepareTargetsOptions, TargetConfig } from "./targets.ts";
import { unmixedStep } from "./_step.ts";

/** The config fields of {@linkcode plainRegime}. */
export type PlainRegimeConfig =
  & TargetConfig
  & Pick<ResolvedTrainConfig, "clsWeight" | "denseWeight">;

/** Options of {@linkcode plainRegime}. */
export type PlainRegimeOptions = PrepareTargetsOptions;

/**
 * The plain regime: the batch as loaded, the token labeling loss (the
 * class-token term alone without token targets).
 *
 * @example
 * ```ts
 * import { initBackend, plainRegime, resolveTrainConfig, Rng } from "tokenlab";
 * await initBackend();
 * const c = resolveTrainConfig({ data: "synthetic", model: "lvvit_xs32" });
 * const regime = plainRegime(c, { numClasses: 3 });
 * const step = await regime.prepare({
 *   size: 1, height: 32, width: 32, images: new Float32Array(32 * 32 * 3),
 *   labels: new Int32Array([1]), keys: ["a"],
 * }, new Rng(0));
 * console.log(step.images.shape, step.classTargets.shape); // [1, 32, 32, 3] [1, 3]
 * step.dispose();
 * regime.dispose();
 * ```
 */
export function plainRegime(
  config: PlainRegimeConfig,
  options: PlainRegimeOptions,
): TrainingRegime {
  return {
    name: "plain",
    prepare(batch: RegimeBatch, _rng: Rng): Promise<RegimeStep> {
      return unmixedStep(batch, config, options, {});
    },
    dispose() {},
  };
}
