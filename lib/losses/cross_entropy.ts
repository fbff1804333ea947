/**
 * The token labeling losses: soft-target cross-entropy, the class-token plus
 * dense token loss of LV-ViT (and VOLO's weights and ground-truth
 * refinement), the ReLabel case without token loss, and targets built from
 * plain image labels. All computed with log-softmax on the active backend.
 *
 * Semantics follow the official `tlt/loss/cross_entropy.py`
 * (`TokenLabelCrossEntropy`) and VOLO's `TokenLabelGTCrossEntropy`, with two
 * difference: a target batch that differs from the logits' is an error, not
 * silently repeated. The class-token MixToken blend happens in the loss when
 * given the box (`{ box: out.box }`), as in the official code, after the
 * VOLO refinement.
 *
 * @module
 */

import { tf } from "../tf.ts";
import type { TokenBox } from "../models/lvvit.ts";
import { blendWithPartner, boxAreaLambda } from "../mixing/partner_blend.ts";
import {
  fusedSoftTargetCrossEntropyRows,
  hasFusedSoftTargetCrossEntropy,
} from "../kernels/webgpu_cross_entropy.ts";
import { TokenlabError } from "../errors.ts";

/**
 * Raised for bad loss inputs: which input, what was expected, what was found.
 *
 * @example
 * ```ts
 * import { initBackend, LossInputError, softTargetCrossEntropy, tf } from "tokenlab";
 * await initBackend();
 * const x = tf.zeros([2, 3]), t = tf.zeros([2, 4]);
 * try {
 *   softTargetCrossEntropy(x, t);
 * } catch (e) {
 *   console.log(e instanceof LossInputError, (e as Error).message); // names [2,4] and [2,3]
 * }
 * tf.dispose([x, t]);
 * ```
 */
export class LossInputError extends TokenlabError {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
  }
}

function checkFloat(t: tf.Tensor, what: string): void {
  if (t.dtype !== "float32") {
    throw new LossInputError(
      `${what} must be float32, found ${t.dtype}; convert with tf.cast(x, "float32")`,
    );
  }
}

function sameShape(
  logits: tf.Tensor,
  targets: tf.Tensor,
  what: string,
): void {
  checkFloat(logits, `${what} logits`);
  checkFloat(targets, `${what} targets`);
  const a = logits.shape, b = targets.shape;
  if (a.length !== b.length || a.some((d, i) => d !== b[i])) {
    const parts: string[] = [];
    if (a.length === b.length) {
      const names = a.length === 2
        ? ["batch size", "class count"]
        : ["batch size", "token count", "class count"];
      a.forEach((d, i) => {
        if (d !== b[i]) {
          parts.push(`${names[i] ?? `axis ${i}`} ${b[i]} vs ${d}`);
        }
      });
    }
    throw new LossInputError(
      `${what} targets [${b}] do not match the logits [${a}]${
        parts.length > 0 ? ` (${parts.join(", ")})` : ""
      }; targets need the logits' shape`,
    );
  }
}

/**
 * Soft-target cross-entropy: the mean over the batch (and over tokens, for
 * [B, N, C]) of -sum_c t_c log softmax(x)_c. Logits and targets share one
 * shape, classes on the last axis. Returns a scalar. On WebGPU the per-row
 * losses (and their gradient) come from one fused dispatch each
 * (`lib/kernels/webgpu_cross_entropy.ts`).
 *
 * @throws {LossInputError} when the shapes differ (both are named)
 *
 * @example
 * ```ts
 * import { initBackend, softTargetCrossEntropy, tf } from "tokenlab";
 * await initBackend();
 * const x = tf.tensor2d([[0, 0]]), t = tf.tensor2d([[1, 0]]);
 * const loss = softTargetCrossEntropy(x, t);
 * console.log(await loss.data()); // [0.6931...] = log 2
 * tf.dispose([x, t, loss]);
 * ```
 */
export function softTargetCrossEntropy(
  logits: tf.Tensor,
  targets: tf.Tensor,
): tf.Scalar {
  if (logits.rank < 2) {
    throw new LossInputError(
      `logits must be [batch, classes] (or [batch, tokens, classes]), found shape [${logits.shape}]`,
    );
  }
  sameShape(logits, targets, "soft-target cross-entropy");
  if (
    logits.rank <= 3 && logits.size > 0 && hasFusedSoftTargetCrossEntropy()
  ) {
    const C = logits.shape[logits.rank - 1];
    return tf.tidy(() =>
      tf.mean(
        fusedSoftTargetCrossEntropyRows(
          tf.reshape(logits, [-1, C]),
          tf.reshape(targets, [-1, C]),
        ),
      )
    ) as tf.Scalar;
  }
  return tf.tidy(() =>
    tf.mean(tf.neg(tf.sum(tf.mul(targets, tf.logSoftmax(logits)), -1)))
  ) as tf.Scalar;
}

/**
 * Named weightings of {@linkcode tokenLabelingLoss}: `lvvit` (the official
 * LV-ViT defaults, 1.0 / 1.0) and `volo` (dense term 0.5).
 *
 * @example
 * ```ts
 * import { TOKEN_LABELING_PRESETS } from "tokenlab";
 * console.log(TOKEN_LABELING_PRESETS.volo); // { clsWeight: 1, denseWeight: 0.5 }
 * ```
 */
export const TOKEN_LABELING_PRESETS: Readonly<
  Record<"lvvit" | "volo", { clsWeight: number; denseWeight: number }>
> = {
  /** The official LV-ViT defaults. */
  lvvit: { clsWeight: 1.0, denseWeight: 1.0 },
  /** VOLO's training: the dense term at half weight. */
  volo: { clsWeight: 1.0, denseWeight: 0.5 },
};

/** The model outputs the token labeling loss reads (as `forwardTrain` returns them). */
export interface TokenLabelingOutputs {
  /** Class-token logits [B, C]. */
  cls: tf.Tensor;
  /** Patch-token logits [B, N, C], un-mixed; null or absent: no dense term. */
  aux?: tf.Tensor | null;
}

/** Targets of the token labeling loss (the shape `poolLabels` returns). */
export interface TokenLabelingTargets {
  /** Class-token soft labels [B, C] (MixToken-blended already, if mixing). */
  cls: tf.Tensor;
  /**
   * Patch-token soft labels [B, N, C]; [B, C] gives every token its image's
   * label (the official 2-D target case); null or absent: no dense term
   * (S = 1, ReLabel).
   */
  tokens?: tf.Tensor | null;
  /** Smoothed ground-truth one-hot [B, C]; needed by `refine: "volo"`. */
  truth?: tf.Tensor;
}

/** Options of {@linkcode tokenLabelingLoss}. */
export interface TokenLabelingLossOptions {
  /** Starting weights: "lvvit" (1.0 / 1.0, default) or "volo" (1.0 / 0.5). */
  preset?: keyof typeof TOKEN_LABELING_PRESETS;
  /** Weight of the class-token term (overrides the preset). */
  clsWeight?: number;
  /** Weight of the dense token term (overrides the preset). */
  denseWeight?: number;
  /**
   * "volo": refine the class target with the ground truth first
   * ({@linkcode refineClassTarget}); "none" (default): use it as given.
   */
  refine?: "none" | "volo";
  /**
   * The MixToken box of this step (`forwardTrain`'s `box`): the class target
   * becomes lambda' y + (1 - lambda') y.reverse(0), lambda' = 1 - box area /
   * N, after refinement, as the official loss does. Leave it out (or null)
   * when the targets are mixed already (`mixClassTargets`).
   */
  box?: TokenBox | null;
}

/** The loss and its parts (scalars; the caller disposes them). */
export interface TokenLabelingLossParts {
  /** clsWeight * cls + denseWeight * dense. */
  loss: tf.Scalar;
  /** Cross-entropy of the class token (unweighted). */
  cls: tf.Scalar;
  /** Mean cross-entropy over all B * N patch tokens (unweighted); 0 without tokens. */
  dense: tf.Scalar;
}

function resolveWeights(options: TokenLabelingLossOptions): {
  clsWeight: number;
  denseWeight: number;
} {
  const preset = options.preset ?? "lvvit";
  const base = TOKEN_LABELING_PRESETS[preset];
  if (base === undefined) {
    throw new LossInputError(
      `unknown preset "${preset}"; use ${
        Object.keys(TOKEN_LABELING_PRESETS).map((k) => `"${k}"`).join(" or ")
      }`,
    );
  }
  const clsWeight = options.clsWeight ?? base.clsWeight;
  const denseWeight = options.denseWeight ?? base.denseWeight;
  for (
    const [name, w] of [["clsWeight", clsWeight], [
      "denseWeight",
      denseWeight,
    ]] as const
  ) {
    if (!Number.isFinite(w) || w < 0) {
      throw new LossInputError(
        `${name} must be a finite number >= 0, found ${w}; the official defaults are 1.0 (LV-ViT) and denseWeight 0.5 (VOLO)`,
      );
    }
  }
  if (clsWeight + denseWeight <= 0) {
    throw new LossInputError(
      "clsWeight and denseWeight are both 0: the loss would be constant; give one of them a positive weight",
    );
  }
  return { clsWeight, denseWeight };
}

function boxLambdaOf(
  box: TokenBox | null,
  outputs: TokenLabelingOutputs,
  targets: TokenLabelingTargets,
): number {
  if (box === null) return 1;
  const n = outputs.aux?.rank === 3
    ? outputs.aux.shape[1]
    : targets.tokens?.rank === 3
    ? targets.tokens.shape[1]
    : undefined;
  if (n === undefined) {
    throw new LossInputError(
      "a MixToken box needs the token count: pass token logits (aux), or mix the class targets beforehand with mixClassTargets and leave out `box`",
    );
  }
  const h = box.bottom - box.top, w = box.right - box.left;
  if (
    ![box.top, box.left, box.bottom, box.right].every(Number.isInteger) ||
    h < 0 || w < 0 || h * w > n
  ) {
    throw new LossInputError(
      `box ${
        JSON.stringify(box)
      } is not a box of at most ${n} tokens (integer top <= bottom, left <= right)`,
    );
  }
  return boxAreaLambda(box, n);
}

/**
 * The token labeling loss and its parts: clsWeight * CE(cls, y_cls) +
 * denseWeight * mean over all B * N tokens of CE(aux, y_token). Same
 * numbers as the official `TokenLabelCrossEntropy` (and VOLO's
 * `TokenLabelGTCrossEntropy` with `preset: "volo", refine: "volo"`),
 * including the class-target blend from the MixToken `box`. Token targets
 * are compared with the un-mixed token logits as they are.
 *
 * @throws {LossInputError} on mismatched shapes (both named), negative
 *   weights, a dense weight without token logits, or `refine` without truth
 *
 * @example
 * ```ts
 * import { initBackend, tf, tokenLabelingLossParts } from "tokenlab";
 * await initBackend();
 * const cls = tf.zeros([1, 2]), aux = tf.zeros([1, 3, 2]);
 * const y = tf.tensor2d([[1, 0]]), yTok = tf.fill([1, 3, 2], 0.5);
 * const parts = tokenLabelingLossParts({ cls, aux }, { cls: y, tokens: yTok });
 * console.log(await parts.loss.data()); // [1.386...] = 2 log 2
 * tf.dispose([cls, aux, y, yTok, parts.loss, parts.cls, parts.dense]);
 * ```
 */
export function tokenLabelingLossParts(
  outputs: TokenLabelingOutputs,
  targets: TokenLabelingTargets,
  options: TokenLabelingLossOptions = {},
): TokenLabelingLossParts {
  const { clsWeight, denseWeight } = resolveWeights(options);
  const { cls, aux } = outputs;
  if (cls.rank !== 2) {
    throw new LossInputError(
      `class-token logits must be [batch, classes], found shape [${cls.shape}]`,
    );
  }
  sameShape(cls, targets.cls, "class-token");
  const refine = options.refine ?? "none";
  if (refine !== "none" && refine !== "volo") {
    throw new LossInputError(
      `unknown refine "${refine}"; use "none" or "volo"`,
    );
  }
  if (refine === "volo" && targets.truth === undefined) {
    throw new LossInputError(
      'refine: "volo" needs the smoothed ground truth: pass targets.truth [batch, classes] (poolLabels gives it with `labels`)',
    );
  }
  const tokens = targets.tokens ?? null;
  const hasAux = aux !== undefined && aux !== null;
  if (tokens !== null && !hasAux) {
    throw new LossInputError(
      "token targets were given but the model has no token logits (aux is null): use a model with an aux head, or drop targets.tokens",
    );
  }
  if (hasAux && tokens !== null) {
    if (aux.rank !== 3) {
      throw new LossInputError(
        `token logits must be [batch, tokens, classes], found shape [${aux.shape}]`,
      );
    }
    if (tokens.rank === 2) sameShape(cls, tokens, "image-level token");
    else sameShape(aux, tokens, "token");
    if (aux.shape[0] !== cls.shape[0] || aux.shape[2] !== cls.shape[1]) {
      throw new LossInputError(
        `token logits [${aux.shape}] do not match the class-token logits [${cls.shape}] (batch size and class count must agree)`,
      );
    }
  }
  const lam = boxLambdaOf(options.box ?? null, outputs, targets);
  return tf.tidy(() => {
    let yCls = targets.cls;
    if (refine === "volo") {
      yCls = refineClassTarget(targets.cls, targets.truth!);
    }
    if (lam < 1) yCls = blendWithPartner(yCls, lam); // [B, C], partner i <-> B-1-i
    const lossCls = softTargetCrossEntropy(cls, yCls);
    let dense: tf.Scalar;
    if (hasAux && tokens !== null) {
      const yTok = tokens.rank === 2
        ? tf.broadcastTo(tf.expandDims(tokens, 1), aux.shape) // [B, N, C]
        : tokens;
      dense = softTargetCrossEntropy(aux, yTok);
    } else {
      dense = tf.scalar(0);
    }
    const loss = tf.add(
      tf.mul(lossCls, clsWeight),
      tf.mul(dense, denseWeight),
    ) as tf.Scalar;
    return { loss, cls: lossCls, dense };
  });
}

/**
 * The token labeling loss as one scalar (see
 * {@linkcode tokenLabelingLossParts} for the parts and the semantics). With
 * no token targets (or a model without aux head) it is the ReLabel loss: the
 * class-token cross-entropy alone, times `clsWeight`.
 *
 * @example
 * ```ts
 * import { initBackend, tf, tokenLabelingLoss } from "tokenlab";
 * await initBackend();
 * const cls = tf.zeros([1, 2]), aux = tf.zeros([1, 3, 2]);
 * const y = tf.tensor2d([[1, 0]]), yTok = tf.fill([1, 3, 2], 0.5);
 * const loss = tokenLabelingLoss({ cls, aux }, { cls: y, tokens: yTok }, {
 *   preset: "volo",
 * });
 * console.log(await loss.data()); // [1.0397...] = 1.5 log 2
 * // In a training step with MixToken, hand it the forward's box:
 * //   tokenLabelingLoss(out, targets, { box: out.box })
 * tf.dispose([cls, aux, y, yTok, loss]);
 * ```
 */
export function tokenLabelingLoss(
  outputs: TokenLabelingOutputs,
  targets: TokenLabelingTargets,
  options: TokenLabelingLossOptions = {},
): tf.Scalar {
  const parts = tokenLabelingLossParts(outputs, targets, options);
  parts.cls.dispose();
  parts.dense.dispose();
  return parts.loss;
}

/**
 * Which weights {@linkcode refineClassTarget} gives the annotator.
 *
 * - `"official"`: what VOLO's code runs, `ratio = 0.9 - 0.4 * (argmax
 *   annotator == truth)`: annotator weight 0.5 where it agrees with the
 *   ground truth, 0.9 where it disagrees.
 * - `"intended"`: what the code's comment states, trusting the ground truth
 *   where the annotator is wrong: annotator weight 0.5 where it agrees, 0.1
 *   where it disagrees.
 */
export type RefineRule = "official" | "intended";

/** Options of {@linkcode refineClassTarget}. */
export interface RefineClassTargetOptions {
  /** The annotator's weights (default `"official"`, what VOLO's code runs). */
  rule?: RefineRule;
}

/**
 * VOLO's ground-truth refinement of the class-token target: ratio *
 * annotator + (1 - ratio) * truth per image. With the default rule
 * `"official"` (the numbers VOLO's code runs) ratio is 0.5 where the
 * annotator's argmax equals the true class and 0.9 otherwise; with
 * `"intended"` (what its comment claims) 0.5 and 0.1. `truth` is the
 * smoothed one-hot [B, C] ({@linkcode smoothedOneHot}).
 *
 * @throws {LossInputError} when the shapes differ or the rule is unknown
 *
 * @example
 * ```ts
 * import { initBackend, refineClassTarget, tf } from "tokenlab";
 * await initBackend();
 * const a = tf.tensor2d([[0.8, 0.2], [0.8, 0.2]]);
 * const t = tf.tensor2d([[1, 0], [0, 1]]);
 * const y = refineClassTarget(a, t);
 * console.log(await y.data()); // [0.9, 0.1, 0.72, 0.28]
 * const z = refineClassTarget(a, t, { rule: "intended" });
 * console.log(await z.data()); // [0.9, 0.1, 0.08, 0.92]
 * tf.dispose([a, t, y, z]);
 * ```
 */
export function refineClassTarget(
  annotator: tf.Tensor,
  truth: tf.Tensor,
  options: RefineClassTargetOptions = {},
): tf.Tensor2D {
  const rule = options.rule ?? "official";
  if (rule !== "official" && rule !== "intended") {
    throw new LossInputError(
      `refinement rule must be "official" or "intended", found ${
        JSON.stringify(rule)
      }; leave it out for the official one`,
    );
  }
  if (annotator.rank !== 2) {
    throw new LossInputError(
      `the annotator's class target must be [batch, classes], found shape [${annotator.shape}]`,
    );
  }
  sameShape(annotator, truth, "ground-truth");
  // Annotator weight where it disagrees, and the change where it agrees.
  const [disagree, change] = rule === "official" ? [0.9, -0.4] : [0.1, 0.4];
  return tf.tidy(() => {
    const agree = tf.cast(
      tf.equal(tf.argMax(annotator, -1), tf.argMax(truth, -1)),
      "float32",
    ); // [B]
    const ratio = tf.expandDims(tf.add(disagree, tf.mul(agree, change)), -1); // [B, 1]
    return tf.add(
      tf.mul(annotator, ratio),
      tf.mul(truth, tf.sub(1, ratio)),
    ) as tf.Tensor2D;
  });
}

/** Options of {@linkcode smoothedOneHot} and {@linkcode imageTokenTargets}. */
export interface SmoothedOneHotOptions {
  /** Label smoothing eps (default 0.1): on 1 - eps + eps / C, off eps / C (timm). */
  smoothing?: number;
}

function checkLabels(labels: ArrayLike<number>, numClasses: number): void {
  if (!Number.isInteger(numClasses) || numClasses < 1) {
    throw new LossInputError(
      `numClasses must be a positive integer, found ${numClasses}`,
    );
  }
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i];
    if (!Number.isInteger(l) || l < 0 || l >= numClasses) {
      throw new LossInputError(
        `label ${l} of image ${i} is not a class id in [0, ${numClasses})`,
      );
    }
  }
}

function checkSmoothing(eps: number): void {
  if (!(eps >= 0 && eps < 1)) {
    throw new LossInputError(
      `smoothing must be in [0, 1), found ${eps}; the official value is 0.1`,
    );
  }
}

/**
 * Smoothed one-hot image labels [B, C] (timm's `one_hot` with on
 * 1 - eps + eps / C and off eps / C), built in JavaScript (tfjs 4.22's wasm
 * OneHot ignores float on/off values).
 *
 * @throws {LossInputError} for a label outside [0, numClasses) or a bad eps
 *
 * @example
 * ```ts
 * import { initBackend, smoothedOneHot, tf } from "tokenlab";
 * await initBackend();
 * const y = smoothedOneHot([1], 4, { smoothing: 0.1 });
 * console.log(await y.data()); // [0.025, 0.925, 0.025, 0.025]
 * y.dispose();
 * ```
 */
export function smoothedOneHot(
  labels: ArrayLike<number>,
  numClasses: number,
  options: SmoothedOneHotOptions = {},
): tf.Tensor2D {
  const eps = options.smoothing ?? 0.1;
  checkLabels(labels, numClasses);
  checkSmoothing(eps);
  const B = labels.length, C = numClasses;
  const v = new Float32Array(B * C).fill(eps / C);
  for (let b = 0; b < B; b++) v[b * C + labels[b]] = 1 - eps + eps / C;
  return tf.tensor2d(v, [B, C]);
}

/** Options of {@linkcode imageTokenTargets}. */
export interface ImageTokenTargetsOptions extends SmoothedOneHotOptions {
  /** Number of classes C. */
  numClasses: number;
  /** Number of patch tokens N. */
  numTokens: number;
}

/**
 * Token targets from plain image labels: every one of the N tokens takes its
 * image's smoothed one-hot label. Returns `{ cls: [B, C], tokens: [B, N, C] }`
 * for {@linkcode tokenLabelingLoss}; the caller disposes both.
 *
 * @example
 * ```ts
 * import { imageTokenTargets, initBackend, tf } from "tokenlab";
 * await initBackend();
 * const t = imageTokenTargets([0, 2], { numClasses: 3, numTokens: 4 });
 * console.log(t.cls.shape, t.tokens.shape); // [2, 3] [2, 4, 3]
 * tf.dispose([t.cls, t.tokens]);
 * ```
 */
export function imageTokenTargets(
  labels: ArrayLike<number>,
  options: ImageTokenTargetsOptions,
): { cls: tf.Tensor2D; tokens: tf.Tensor3D } {
  const { numClasses, numTokens } = options;
  if (!Number.isInteger(numTokens) || numTokens < 1) {
    throw new LossInputError(
      `numTokens must be a positive integer, found ${numTokens}`,
    );
  }
  const cls = smoothedOneHot(labels, numClasses, options);
  const tokens = tf.tidy(() =>
    tf.broadcastTo(tf.expandDims(cls, 1), [
      labels.length,
      numTokens,
      numClasses,
    ])
  ) as tf.Tensor3D;
  return { cls, tokens };
}

/**
 * Splits the official target layout [B, C, 2 + N] (smoothed ground truth,
 * class-token label, N token labels) into `{ truth, cls, tokens }` for
 * {@linkcode tokenLabelingLoss}; the caller disposes the three tensors.
 *
 * @throws {LossInputError} when the target is not [B, C, 2 + N], N >= 1
 *
 * @example
 * ```ts
 * import { fromOfficialTarget, initBackend, tf } from "tokenlab";
 * await initBackend();
 * const target = tf.zeros([2, 5, 6]);
 * const { truth, cls, tokens } = fromOfficialTarget(target);
 * console.log(truth.shape, cls.shape, tokens.shape); // [2, 5] [2, 5] [2, 4, 5]
 * tf.dispose([target, truth, cls, tokens]);
 * ```
 */
export function fromOfficialTarget(
  target: tf.Tensor,
): { truth: tf.Tensor2D; cls: tf.Tensor2D; tokens: tf.Tensor3D } {
  if (target.rank !== 3 || (target.shape[2] ?? 0) < 3) {
    throw new LossInputError(
      `the official target layout is [batch, classes, 2 + tokens], found shape [${target.shape}]`,
    );
  }
  const [B, C, K] = target.shape;
  return tf.tidy(() => {
    const truth = tf.reshape(
      tf.slice(target, [0, 0, 0], [B, C, 1]),
      [B, C],
    ) as tf.Tensor2D;
    const cls = tf.reshape(
      tf.slice(target, [0, 0, 1], [B, C, 1]),
      [B, C],
    ) as tf.Tensor2D;
    const tokens = tf.transpose(
      tf.slice(target, [0, 0, 2], [B, C, K - 2]),
      [0, 2, 1],
    ) as tf.Tensor3D; // [B, N, C]
    return { truth, cls, tokens };
  });
}
