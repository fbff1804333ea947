/**
 * The image-level mixing regime: CutMix and MixUp on pixels (timm's `Mixup`
 * in batch mode, as TokenLabeling's `TokenLabelMixup`), class and token
 * targets blended by one global lambda.
 *
 * @module
 */

import type { tf } from "../../tf.ts";
import type { Rng } from "../../random.ts";
import { mixupCutmix } from "../../mixing/cutmix.ts";
import type { ResolvedTrainConfig } from "../config.ts";
import type { RegimeBatch, RegimeStep, TrainingRegime } from "./regime.ts";
import type { PrepareTargetsOptions, TargetConfig } from "./targets.ts";
import { mixedStep, tokenLabelingStep } from "./_step.ts";

/** The config fields of {@linkcode imageMixRegime}. */
export type ImageMixRegimeConfig =
  & TargetConfig
  & Pick<
    ResolvedTrainConfig,
    | "clsWeight"
    | "denseWeight"
    | "cutmix"
    | "mixup"
    | "mixupProb"
    | "mixupSwitchProb"
  >;

/** Options of {@linkcode imageMixRegime}. */
export type ImageMixRegimeOptions = PrepareTargetsOptions;

/**
 * The image-level mixing regime: the plain regime's targets, then
 * `mixupCutmix` with the config's alphas and probabilities (partner B-1-i).
 * Token labels [B, N, C] are blended with the class targets' lambda; image
 * labels at every token stay the class targets.
 *
 * @example
 * ```ts
 * import { imageMixRegime, initBackend, resolveTrainConfig, Rng } from "tokenlab";
 * await initBackend();
 * const c = resolveTrainConfig({ data: "synthetic", model: "lvvit_xs32", cutmix: 1 });
 * const regime = imageMixRegime(c, { numClasses: 3 });
 * const step = await regime.prepare({
 *   size: 2, height: 32, width: 32, images: new Float32Array(2 * 32 * 32 * 3),
 *   labels: new Int32Array([1, 2]), keys: ["a", "b"],
 * }, new Rng(0));
 * console.log(step.mixing); // { mode: "cutmix", lambda: ..., box: { ... } }
 * step.dispose();
 * regime.dispose();
 * ```
 */
export function imageMixRegime(
  config: ImageMixRegimeConfig,
  options: ImageMixRegimeOptions,
): TrainingRegime {
  return {
    name: "image_mix",
    prepare(batch: RegimeBatch, rng: Rng): Promise<RegimeStep> {
      return mixedStep(batch, config, options, (images, targets) => {
        const { cls, tokens } = targets;
        const mixed = mixupCutmix(
          {
            images,
            classTargets: cls,
            tokenTargets: tokens !== null && tokens.rank === 3
              ? tokens as tf.Tensor3D
              : undefined,
          },
          rng,
          {
            mixupAlpha: config.mixup,
            cutmixAlpha: config.cutmix,
            prob: config.mixupProb,
            switchProb: config.mixupSwitchProb,
          },
        );
        // Image labels at every token follow the mixed class targets.
        const mixedTokens = mixed.tokenTargets ??
          (tokens === cls ? mixed.classTargets : tokens);
        return tokenLabelingStep({
          images: mixed.images,
          cls: mixed.classTargets,
          tokens: mixedTokens,
          mixing: { mode: mixed.mode, lambda: mixed.lambda, box: mixed.box },
          forward: {},
          dispose: () => {
            mixed.dispose();
            images.dispose();
            targets.dispose();
          },
        }, config);
      });
    },
    dispose() {},
  };
}
