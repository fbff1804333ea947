/**
 * The MixToken regime: LV-ViT's mixing inside the model, on the patch-token
 * grid after the patch embedding. The loss blends the class target by the
 * box the forward drew; the token predictions come back un-mixed.
 *
 * @module
 */

import type { Rng } from "../../random.ts";
import { MixToken } from "../../mixing/mixtoken.ts";
import type { ResolvedTrainConfig } from "../config.ts";
import type { RegimeBatch, RegimeStep, TrainingRegime } from "./regime.ts";
import type { PrepareTargetsOptions, TargetConfig } from "./targets.ts";
import { unmixedStep } from "./_step.ts";

/** The config fields of {@linkcode mixTokenRegime}. */
export type MixTokenRegimeConfig =
  & TargetConfig
  & Pick<ResolvedTrainConfig, "clsWeight" | "denseWeight" | "mixTokenBox">;

/** Options of {@linkcode mixTokenRegime}. */
export type MixTokenRegimeOptions = PrepareTargetsOptions;

/**
 * The MixToken regime: the targets as the plain regime's, the forward given
 * a {@linkcode MixToken} mixer (box arithmetic `mixTokenBox`), the loss
 * box-aware.
 *
 * @example
 * ```ts
 * import { initBackend, mixTokenRegime, resolveTrainConfig, Rng } from "tokenlab";
 * await initBackend();
 * const c = resolveTrainConfig({ data: "synthetic", model: "lvvit_xs32", mixToken: true });
 * const regime = mixTokenRegime(c, { numClasses: 3 });
 * const step = await regime.prepare({
 *   size: 2, height: 32, width: 32, images: new Float32Array(2 * 32 * 32 * 3),
 *   labels: new Int32Array([1, 2]), keys: ["a", "b"],
 * }, new Rng(0));
 * console.log(step.forward.mixer !== undefined); // true
 * step.dispose();
 * regime.dispose();
 * ```
 */
export function mixTokenRegime(
  config: MixTokenRegimeConfig,
  options: MixTokenRegimeOptions,
): TrainingRegime {
  const mixer = new MixToken({ boxMode: config.mixTokenBox });
  return {
    name: "mixtoken",
    prepare(batch: RegimeBatch, _rng: Rng): Promise<RegimeStep> {
      return unmixedStep(batch, config, options, { mixer });
    },
    dispose() {},
  };
}
