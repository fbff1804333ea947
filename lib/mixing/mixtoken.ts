/**
 * MixToken: one box on the patch-token grid per batch, filled with the
 * reversed batch's tokens after the patch embedding, and swapped back on the
 * aux-head predictions after the transformer.
 *
 * The box as published (`rand_bbox` of the official `tlt/models/lvvit.py`):
 * lambda ~ Beta(alpha, alpha), r = sqrt(1 - lambda), cut sides int(h r) and
 * int(w r), a uniform integer centre (row drawn first, then column), and the
 * rows `clip(cy - cut_h // 2, 0, h) .. clip(cy + cut_h // 2, 0, h)` (columns
 * alike). The official variable names call the row axis `W` and the column
 * axis `H` (it reads `size[2]`, `size[3]` of an NCHW tensor), but it indexes
 * the tensor with the same swap, so rows do get int(h r) and columns int(w r).
 * What the names hide is the half-side arithmetic: the box spans
 * `2 * (cut // 2)` cells before clipping, so an odd side loses one cell (side
 * 1 gives an empty box). `boxMode: "described"` keeps the described side
 * (`cy - cut // 2` to that plus `cut`); `"official"` is the default.
 *
 * Token targets need no mixing under MixToken: the predictions inside the box
 * are swapped back to their own images, so every token prediction meets its
 * own image's token label. Only the class-token target is mixed, with the
 * area-corrected lambda' = 1 - box area / (h w) ({@linkcode mixClassTargets}).
 *
 * @module
 */

import { tf } from "../tf.ts";
import type { Rng } from "../random.ts";
import type { TokenBox, TokenMixer } from "../models/lvvit.ts";
import {
  boxSide,
  checkAlpha,
  checkGrid,
  checkProb,
  MixingError,
} from "./_common.ts";
import { blendWithPartner, boxAreaLambda } from "./partner_blend.ts";

export { MixingError };

/**
 * How the box side is cut: `"official"` as the published `rand_bbox`
 * (`cy +- cut // 2`, an odd side loses a cell), `"described"` with the full
 * side `cut` (`cy - cut // 2` to `cy - cut // 2 + cut`).
 */
export type BoxMode = "official" | "described";

/** Options of {@linkcode sampleBox}. */
export interface SampleBoxOptions {
  /** Beta(alpha, alpha) parameter of lambda (default 1: uniform). */
  alpha?: number;
  /** Use this lambda instead of drawing one (the centre is still drawn). */
  lambda?: number;
  /** Side arithmetic (default `"official"`). */
  boxMode?: BoxMode;
}

/** A sampled box with the lambda it was cut from and the area-corrected one. */
export interface SampledBox {
  /** The box, clipped to the grid (may be empty). */
  box: TokenBox;
  /** The drawn lambda (before the area correction). */
  lambda: number;
  /** 1 - box area / grid area, after clipping. */
  lambdaCorrected: number;
}

/**
 * Draws a CutMix/MixToken box on an h x w grid as the official `rand_bbox`:
 * lambda ~ Beta(alpha, alpha), sides int(h sqrt(1 - lambda)) and
 * int(w sqrt(1 - lambda)), uniform integer centre (row, then column), clipped.
 *
 * @example
 * ```ts
 * import { Rng, sampleBox } from "tokenlab";
 * const { box, lambda, lambdaCorrected } = sampleBox([14, 14], new Rng(0));
 * console.log(box, lambda, lambdaCorrected);
 * ```
 */
export function sampleBox(
  grid: readonly [number, number],
  rng: Rng,
  options: SampleBoxOptions = {},
): SampledBox {
  checkGrid(grid);
  const { alpha = 1, boxMode = "official" } = options;
  let lambda: number;
  if (options.lambda !== undefined) {
    if (!(options.lambda >= 0 && options.lambda <= 1)) {
      throw new MixingError(
        `lambda must be in [0, 1], found ${options.lambda}; leave it out to draw it from Beta(alpha, alpha)`,
      );
    }
    lambda = options.lambda;
  } else {
    checkAlpha(alpha);
    lambda = rng.beta(alpha, alpha);
  }
  const [h, w] = grid;
  const r = Math.sqrt(1 - lambda);
  const cutH = Math.floor(h * r), cutW = Math.floor(w * r);
  const cy = rng.int(h), cx = rng.int(w);
  const [top, bottom] = boxSide(h, cutH, cy, boxMode);
  const [left, right] = boxSide(w, cutW, cx, boxMode);
  const box = { top, left, bottom, right };
  return { box, lambda, lambdaCorrected: boxLambda(box, grid) };
}

/**
 * The area-corrected lambda of a box: 1 - box area / (h w).
 *
 * @example
 * ```ts
 * import { boxLambda } from "tokenlab";
 * console.log(boxLambda({ top: 0, left: 0, bottom: 7, right: 7 }, [14, 14])); // 0.75
 * ```
 */
export function boxLambda(
  box: TokenBox | null,
  grid: readonly [number, number],
): number {
  checkGrid(grid);
  if (box === null) return 1;
  checkBox(box, grid);
  return boxAreaLambda(box, grid[0] * grid[1]);
}

function checkBox(box: TokenBox, grid: readonly [number, number]): void {
  const [h, w] = grid;
  const ok = [box.top, box.left, box.bottom, box.right].every(
    Number.isInteger,
  ) && box.top >= 0 && box.left >= 0 && box.bottom <= h &&
    box.right <= w && box.top <= box.bottom && box.left <= box.right;
  if (!ok) {
    throw new MixingError(
      `box rows [${box.top}, ${box.bottom}) x columns [${box.left}, ${box.right}) does not fit a ${h}x${w} grid; a box must hold integers with 0 <= top <= bottom <= ${h} and 0 <= left <= right <= ${w}`,
    );
  }
}

/**
 * Swaps the box region of every sample with its partner's (sample B-1-i) on
 * an NHWC tensor: mixing and un-mixing are the same operation.
 *
 * @example
 * ```ts
 * import { initBackend, swapBox, tf } from "tokenlab";
 * await initBackend();
 * const x = tf.tensor4d([0, 0, 0, 0, 1, 1, 1, 1], [2, 2, 2, 1]);
 * const y = swapBox(x, { top: 0, left: 0, bottom: 1, right: 1 });
 * console.log(await y.data()); // 1, 0, 0, 0, 0, 1, 1, 1
 * tf.dispose([x, y]);
 * ```
 */
export function swapBox(x: tf.Tensor4D, box: TokenBox): tf.Tensor4D {
  if (x.rank !== 4) {
    throw new MixingError(
      `expected a [batch, rows, columns, channels] tensor, found shape [${x.shape}]; reshape tokens [B, N, D] to [B, h, w, D] first`,
    );
  }
  const [B, h, w, C] = x.shape;
  checkBox(box, [h, w]);
  // The swap is a permutation of the token rows [B h w, C]: token (b, r, c)
  // inside the box comes from image B - 1 - b. One gather copies the rows
  // (values exactly, no arithmetic), and as the permutation undoes itself,
  // its gradient is the same gather of dy.
  const source = new Int32Array(B * h * w);
  for (let b = 0; b < B; b++) {
    for (let r = 0; r < h; r++) {
      for (let c = 0; c < w; c++) {
        const inside = r >= box.top && r < box.bottom && c >= box.left &&
          c < box.right;
        source[(b * h + r) * w + c] = ((inside ? B - 1 - b : b) * h + r) * w +
          c;
      }
    }
  }
  // The index is made afresh for the backward pass, which runs after this
  // call's tensors are gone.
  const permute = (t: tf.Tensor) =>
    tf.tidy(() =>
      tf.reshape(
        tf.gather(
          tf.reshape(t, [B * h * w, C]),
          tf.tensor1d(source, "int32"),
        ),
        [B, h, w, C],
      )
    );
  const op = tf.customGrad(
    ((t: tf.Tensor) => ({
      value: permute(t),
      gradFunc: (dy: tf.Tensor) => permute(dy),
    })) as unknown as Parameters<typeof tf.customGrad>[0],
  ) as unknown as (t: tf.Tensor) => tf.Tensor;
  return op(x) as tf.Tensor4D;
}

/** Options of {@linkcode MixToken}. */
export interface MixTokenOptions {
  /** Beta(alpha, alpha) parameter (default 1, the official value). */
  alpha?: number;
  /** Probability of mixing a batch (default 1: every training step, as published). */
  prob?: number;
  /** Box side arithmetic (default `"official"`). */
  boxMode?: BoxMode;
}

/**
 * MixToken as a {@linkcode TokenMixer} for `LvVit.forwardTrain`: one box per
 * batch on the patch-token grid, partner of sample i is B-1-i.
 *
 * @example
 * ```ts
 * import { initBackend, MixToken, mixClassTargets, Rng, tf } from "tokenlab";
 * await initBackend();
 * const mixer = new MixToken();
 * const tokens = tf.randomNormal([4, 6, 6, 8], 0, 1, "float32", 1) as tf.Tensor4D;
 * const { tokens: mixed, box } = mixer.mix(tokens, new Rng(0));
 * const back = mixer.unmix(mixed, box!); // equals tokens again
 * const y = tf.oneHot([0, 1, 2, 3], 5).toFloat() as tf.Tensor2D;
 * const yMixed = mixClassTargets(y, box, { grid: [6, 6] });
 * console.log(box, await yMixed.array());
 * tf.dispose([tokens, mixed, back, y, yMixed]);
 * ```
 */
export class MixToken implements TokenMixer {
  /** Beta parameter. */
  readonly alpha: number;
  /** Probability of mixing a batch. */
  readonly prob: number;
  /** Box side arithmetic. */
  readonly boxMode: BoxMode;

  /** Checks and keeps the options. */
  constructor(options: MixTokenOptions = {}) {
    const { alpha = 1, prob = 1, boxMode = "official" } = options;
    checkAlpha(alpha);
    checkProb(prob);
    if (boxMode !== "official" && boxMode !== "described") {
      throw new MixingError(
        `boxMode must be "official" or "described", found ${
          JSON.stringify(boxMode)
        }`,
      );
    }
    this.alpha = alpha;
    this.prob = prob;
    this.boxMode = boxMode;
  }

  /**
   * Draws this step's box on an h x w grid, or null when the step does not
   * mix (probability 1 - prob; with prob 1 no switch is drawn). The box may
   * be empty (lambda near 1): it is still returned, as the official code
   * does, and its lambda' is 1.
   */
  sample(grid: readonly [number, number], rng: Rng): TokenBox | null {
    checkGrid(grid);
    if (this.prob < 1 && !(rng.float() < this.prob)) return null;
    return sampleBox(grid, rng, { alpha: this.alpha, boxMode: this.boxMode })
      .box;
  }

  /** Mixes patch tokens [B, h, w, D] with the reversed batch inside one box. */
  mix(
    tokens: tf.Tensor4D,
    rng: Rng,
  ): { tokens: tf.Tensor4D; box: TokenBox | null } {
    if (tokens.rank !== 4 || tokens.shape[0] < 1) {
      throw new MixingError(
        `MixToken expects patch tokens [batch, rows, columns, dim], found shape [${tokens.shape}]`,
      );
    }
    const [, h, w] = tokens.shape;
    const box = this.sample([h, w], rng);
    if (box === null) return { tokens, box };
    return { tokens: swapBox(tokens, box), box }; // [B, h, w, D]
  }

  /** Swaps predictions [B, h, w, C] inside the box back to their own images. */
  unmix(predictions: tf.Tensor4D, box: TokenBox): tf.Tensor4D {
    return swapBox(predictions, box); // [B, h, w, C]
  }

  /** A one-line summary. */
  toString(): string {
    return `MixToken(alpha ${this.alpha}, prob ${this.prob}, ${this.boxMode} box)`;
  }
}

/** Options of {@linkcode mixClassTargets}. */
export interface MixClassTargetsOptions {
  /** The token grid [h, w] the box lives on. */
  grid: readonly [number, number];
}

/**
 * Class-token targets under MixToken: lambda' y_i + (1 - lambda') y_(B-1-i),
 * lambda' = 1 - box area / (h w) (the targets are returned as a copy when
 * the box is null or empty).
 *
 * @example
 * ```ts
 * import { initBackend, mixClassTargets, tf } from "tokenlab";
 * await initBackend();
 * const y = tf.tensor2d([[1, 0], [0, 1]]);
 * const m = mixClassTargets(y, { top: 0, left: 0, bottom: 2, right: 1 }, { grid: [2, 2] });
 * console.log(await m.array()); // [[0.5, 0.5], [0.5, 0.5]]
 * tf.dispose([y, m]);
 * ```
 */
export function mixClassTargets(
  targets: tf.Tensor2D,
  box: TokenBox | null,
  options: MixClassTargetsOptions,
): tf.Tensor2D {
  if (targets.rank !== 2) {
    throw new MixingError(
      `class targets must be [batch, classes], found shape [${targets.shape}]; token targets need no mixing under MixToken (predictions are swapped back)`,
    );
  }
  const lam = boxLambda(box, options?.grid);
  return blendWithPartner(targets, lam) as tf.Tensor2D;
}
