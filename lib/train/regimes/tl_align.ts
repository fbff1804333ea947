/**
 * The TL-Align regime: patch-aligned CutMix on pixels, and the class token
 * trained against labels propagated through the attention (`TlAlign`'s
 * hook on the training forward).
 *
 * @module
 */

import { tf } from "../../tf.ts";
import type { Rng } from "../../random.ts";
import { patchCutmix } from "../../mixing/cutmix.ts";
import { softTargetCrossEntropy } from "../../losses/cross_entropy.ts";
import { TlAlign, tlAlignInitialLabels } from "../../losses/tl_align.ts";
import type { TrainOutput } from "../../models/lvvit.ts";
import type { ResolvedTrainConfig } from "../config.ts";
import type {
  RegimeBatch,
  RegimeLoss,
  RegimeStep,
  TrainingRegime,
} from "./regime.ts";
import type { PrepareTargetsOptions, TargetConfig } from "./targets.ts";
import { mixedStep } from "./_step.ts";

/** The config fields of {@linkcode tlAlignRegime}. */
export type TlAlignRegimeConfig =
  & TargetConfig
  & Pick<ResolvedTrainConfig, "patchSize" | "tlAlignAlpha" | "tlAlignBox">;

/** Options of {@linkcode tlAlignRegime}. */
export type TlAlignRegimeOptions = PrepareTargetsOptions;

/** Per image, the source index of each of its N patch tokens. */
function splitSources(index: Int32Array, B: number): Int32Array[] {
  const n = index.length / B;
  return Array.from(
    { length: B },
    (_, b) => index.subarray(b * n, (b + 1) * n),
  );
}

/**
 * The TL-Align regime: smoothed one-hot targets, `patchCutmix` (Beta
 * `tlAlignAlpha`, box arithmetic `tlAlignBox`), the initial label embedding
 * (class token: the lambda-mixed label; each patch token: the label of the
 * image its pixels came from), and the loss against the aligned class label.
 *
 * @example
 * ```ts
 * import { initBackend, resolveTrainConfig, Rng, tlAlignRegime } from "tokenlab";
 * await initBackend();
 * const c = resolveTrainConfig({ data: "synthetic", model: "lvvit_xs32", tlAlign: true });
 * const regime = tlAlignRegime(c, { numClasses: 3 });
 * const step = await regime.prepare({
 *   size: 2, height: 32, width: 32, images: new Float32Array(2 * 32 * 32 * 3),
 *   labels: new Int32Array([1, 2]), keys: ["a", "b"],
 * }, new Rng(0));
 * console.log(step.mixing?.box, step.forward.onAttention !== undefined); // the box, true
 * step.dispose();
 * regime.dispose();
 * ```
 */
export function tlAlignRegime(
  config: TlAlignRegimeConfig,
  options: TlAlignRegimeOptions,
): TrainingRegime {
  return {
    name: "tl_align",
    prepare(batch: RegimeBatch, rng: Rng): Promise<RegimeStep> {
      return mixedStep(batch, config, options, (images, targets) => {
        // what this regime makes (the inputs are mixedStep's until returned)
        const owned: tf.Tensor[] = [];
        let align: TlAlign | null = null;
        const release = () => {
          align?.dispose();
          tf.dispose(owned);
        };
        try {
          const mixed = patchCutmix(
            { images, classTargets: targets.cls },
            rng,
            {
              patchSize: config.patchSize,
              alpha: config.tlAlignAlpha,
              boxMode: config.tlAlignBox,
            },
          );
          owned.push(mixed.images, mixed.classTargets);
          const y0 = tlAlignInitialLabels(
            targets.cls,
            splitSources(mixed.sourceIndex!, batch.size),
            { classLabels: mixed.classTargets },
          );
          owned.push(y0);
          const aligned = new TlAlign(y0);
          align = aligned;
          return {
            images: mixed.images,
            classTargets: mixed.classTargets,
            tokenTargets: null,
            mixing: { mode: mixed.mode, lambda: mixed.lambda, box: mixed.box },
            forward: { onAttention: aligned.hook },
            loss(out: TrainOutput): RegimeLoss {
              return {
                loss: softTargetCrossEntropy(out.cls, aligned.classLabel()),
              };
            },
            dispose: () => {
              release();
              images.dispose();
              targets.dispose();
            },
          };
        } catch (e) {
          release();
          throw e;
        }
      });
    },
    dispose() {},
  };
}
