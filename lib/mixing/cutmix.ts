/**
 * Image-level mixing on pixels, with the official label handling:
 *
 * - {@linkcode mixupCutmix}: timm's `Mixup` in batch mode as TokenLabeling's
 *   `TokenLabelMixup` uses it. The partner of sample i is B-1-i. CutMix cuts
 *   one box on the pixels (it can split a patch), with lambda corrected by
 *   the clipped area; MixUp blends whole images. Class targets and token
 *   targets are both blended with ONE global lambda (`y lam + y.flip(0)
 *   (1 - lam)` over the whole target tensor): token targets are not mixed
 *   spatially, as in the official code.
 * - {@linkcode patchCutmix}: TL-Align's CutMix with the box snapped to the
 *   patch grid; it also returns, for every patch token, the index of the
 *   image its pixels came from (TL-Align's initial label embedding).
 *
 * @module
 */

import { tf } from "../tf.ts";
import type { Rng } from "../random.ts";
import type { TokenBox } from "../models/lvvit.ts";
import { boxSide, checkAlpha, checkProb, MixingError } from "./_common.ts";
import { blendWithPartner } from "./partner_blend.ts";
import { boxLambda, type BoxMode, sampleBox, swapBox } from "./mixtoken.ts";

/** A batch to mix: images NHWC [B, H, W, 3] and their targets. */
export interface MixInput {
  /** Images [B, H, W, channels]. */
  images: tf.Tensor4D;
  /** Class targets [B, C] (one-hot or soft). */
  classTargets: tf.Tensor2D;
  /** Token targets [B, N, C] (N = h w patch tokens, row-major), optional. */
  tokenTargets?: tf.Tensor3D;
}

/** How a batch was mixed. */
export type MixMode = "cutmix" | "mixup" | "mixtoken" | "none";

/** Fields of a {@linkcode MixedBatch}. */
export interface MixedBatchInit {
  /** The mixed images [B, H, W, channels]. */
  images: tf.Tensor4D;
  /** The mixed class targets [B, C]. */
  classTargets: tf.Tensor2D;
  /** The mixed token targets [B, N, C], or null. */
  tokenTargets: tf.Tensor3D | null;
  /** What was done. */
  mode: MixMode;
  /** The weight of each image's own labels (area-corrected for CutMix). */
  lambda: number;
  /** The CutMix box in pixels, or null. */
  box: TokenBox | null;
  /** The patch size of the token grid, where known. */
  patchSize: number | null;
  /** Per patch token, the batch index its pixels came from [B * h * w], or null. */
  sourceIndex: Int32Array | null;
}

/**
 * A mixed batch: the tensors (owned: call {@linkcode MixedBatch.dispose}),
 * the mode, lambda and box. Show it in a notebook with `showMixedBatch`.
 *
 * @example
 * ```ts
 * import { initBackend, mixupCutmix, Rng, tf } from "tokenlab";
 * await initBackend();
 * const images = tf.zeros([2, 8, 8, 3]) as tf.Tensor4D;
 * const classTargets = tf.eye(2) as tf.Tensor2D;
 * const mixed = mixupCutmix({ images, classTargets }, new Rng(0));
 * console.log(mixed.toString());
 * mixed.dispose();
 * tf.dispose([images, classTargets]);
 * ```
 */
export class MixedBatch implements MixedBatchInit {
  /** The mixed images [B, H, W, channels]. */
  readonly images: tf.Tensor4D;
  /** The mixed class targets [B, C]. */
  readonly classTargets: tf.Tensor2D;
  /** The mixed token targets [B, N, C], or null. */
  readonly tokenTargets: tf.Tensor3D | null;
  /** What was done. */
  readonly mode: MixMode;
  /** The weight of each image's own labels. */
  readonly lambda: number;
  /** The box in pixels, or null. */
  readonly box: TokenBox | null;
  /** The patch size of the token grid, where known. */
  readonly patchSize: number | null;
  /** Per patch token, the batch index its pixels came from, or null. */
  readonly sourceIndex: Int32Array | null;

  /** Wraps the fields. */
  constructor(init: MixedBatchInit) {
    this.images = init.images;
    this.classTargets = init.classTargets;
    this.tokenTargets = init.tokenTargets;
    this.mode = init.mode;
    this.lambda = init.lambda;
    this.box = init.box;
    this.patchSize = init.patchSize;
    this.sourceIndex = init.sourceIndex;
  }

  /** Releases the tensors. */
  dispose(): void {
    tf.dispose([this.images, this.classTargets]);
    if (this.tokenTargets) this.tokenTargets.dispose();
  }

  /** A one-line summary. */
  toString(): string {
    const [B, H, W] = this.images.shape;
    const b = this.box;
    return `${this.mode} of ${B} images ${H}x${W}, lambda ${
      this.lambda.toFixed(4)
    }${
      b
        ? `, box rows [${b.top}, ${b.bottom}) x columns [${b.left}, ${b.right})`
        : ""
    }`;
  }
}

function checkInput(batch: MixInput): [number, number, number] {
  const { images, classTargets, tokenTargets } = batch;
  if (images?.rank !== 4) {
    throw new MixingError(
      `images must be NHWC [batch, height, width, channels], found shape [${images?.shape}]`,
    );
  }
  const [B, H, W] = images.shape;
  if (B < 1 || H < 1 || W < 1) {
    throw new MixingError(
      `images must be non-empty, found shape [${images.shape}]`,
    );
  }
  if (classTargets?.rank !== 2 || classTargets.shape[0] !== B) {
    throw new MixingError(
      `class targets must be [${B}, classes] for a batch of ${B} images, found shape [${classTargets?.shape}]; give one target row per image, in the same order`,
    );
  }
  if (tokenTargets !== undefined) {
    if (
      tokenTargets.rank !== 3 || tokenTargets.shape[0] !== B ||
      tokenTargets.shape[2] !== classTargets.shape[1]
    ) {
      throw new MixingError(
        `token targets must be [${B}, tokens, ${
          classTargets.shape[1]
        }] (batch and classes as the class targets), found shape [${tokenTargets.shape}]`,
      );
    }
  }
  return [B, H, W];
}

/** Options of {@linkcode mixupCutmix} (defaults: the DeiT/TokenLabeling recipe). */
export interface MixupCutmixOptions {
  /** MixUp Beta parameter; 0 disables MixUp (default 0.8). */
  mixupAlpha?: number;
  /** CutMix Beta parameter; 0 disables CutMix (default 1.0). */
  cutmixAlpha?: number;
  /** Probability of mixing a batch (default 1). */
  prob?: number;
  /** Probability of CutMix rather than MixUp when both are on (default 0.5). */
  switchProb?: number;
  /** Correct lambda by the clipped box area (default true, as timm). */
  correctLam?: boolean;
  /** Box side arithmetic (default `"official"`, timm's `rand_bbox`). */
  boxMode?: BoxMode;
  /** Patch size, to draw the token grid in displays (optional). */
  patchSize?: number;
}

function checkOptionalAlpha(a: number, what: string): void {
  if (!(Number.isFinite(a) && a >= 0)) {
    throw new MixingError(
      `${what} must be >= 0 (0 turns it off), found ${a}`,
    );
  }
}

/**
 * MixUp or CutMix on pixels for a whole batch (partner B-1-i), with class
 * and token targets blended by one global lambda, as timm's `Mixup` in batch
 * mode and the TokenLabeling `TokenLabelMixup`.
 *
 * @example
 * ```ts
 * import { initBackend, mixupCutmix, Rng, tf } from "tokenlab";
 * await initBackend();
 * const images = tf.randomUniform([4, 16, 16, 3], 0, 1, "float32", 1) as tf.Tensor4D;
 * const classTargets = tf.oneHot([0, 1, 2, 3], 4).toFloat() as tf.Tensor2D;
 * const mixed = mixupCutmix({ images, classTargets }, new Rng(1), { cutmixAlpha: 1, mixupAlpha: 0 });
 * console.log(mixed.mode, mixed.lambda, mixed.box);
 * mixed.dispose();
 * tf.dispose([images, classTargets]);
 * ```
 */
export function mixupCutmix(
  batch: MixInput,
  rng: Rng,
  options: MixupCutmixOptions = {},
): MixedBatch {
  const [, H, W] = checkInput(batch);
  const {
    mixupAlpha = 0.8,
    cutmixAlpha = 1.0,
    prob = 1,
    switchProb = 0.5,
    correctLam = true,
    boxMode = "official",
    patchSize,
  } = options;
  checkOptionalAlpha(mixupAlpha, "mixupAlpha");
  checkOptionalAlpha(cutmixAlpha, "cutmixAlpha");
  if (mixupAlpha === 0 && cutmixAlpha === 0) {
    throw new MixingError(
      "mixupAlpha and cutmixAlpha are both 0, so nothing can mix; set one of them > 0 (the DeiT recipe uses 0.8 and 1.0) or skip mixing",
    );
  }
  checkProb(prob);
  checkProb(switchProb, "switchProb");

  let lam = 1;
  let useCutmix = false;
  if (prob >= 1 || rng.float() < prob) {
    if (mixupAlpha > 0 && cutmixAlpha > 0) {
      useCutmix = rng.float() < switchProb;
      lam = useCutmix
        ? rng.beta(cutmixAlpha, cutmixAlpha)
        : rng.beta(mixupAlpha, mixupAlpha);
    } else if (mixupAlpha > 0) {
      lam = rng.beta(mixupAlpha, mixupAlpha);
    } else {
      useCutmix = true;
      lam = rng.beta(cutmixAlpha, cutmixAlpha);
    }
  }
  const { images, classTargets, tokenTargets } = batch;
  const common = { patchSize: patchSize ?? null, sourceIndex: null };
  if (lam === 1) {
    return new MixedBatch({
      images: tf.clone(images),
      classTargets: tf.clone(classTargets),
      tokenTargets: tokenTargets ? tf.clone(tokenTargets) : null,
      mode: "none",
      lambda: 1,
      box: null,
      ...common,
    });
  }
  let box: TokenBox | null = null;
  let mixedImages: tf.Tensor4D;
  if (useCutmix) {
    box = sampleBox([H, W], rng, { lambda: lam, boxMode }).box;
    if (correctLam) lam = boxLambda(box, [H, W]);
    mixedImages = swapBox(images, box); // [B, H, W, 3]
  } else {
    mixedImages = blendWithPartner(images, lam); // [B, H, W, 3]
  }
  return new MixedBatch({
    images: mixedImages,
    classTargets: blendWithPartner(classTargets, lam),
    tokenTargets: tokenTargets ? blendWithPartner(tokenTargets, lam) : null,
    mode: useCutmix ? "cutmix" : "mixup",
    lambda: lam,
    box,
    ...common,
  });
}

/** Options of {@linkcode patchCutmix}. */
export interface PatchCutmixOptions {
  /** Side of a patch in pixels (the box snaps to this grid). */
  patchSize: number;
  /** Beta(alpha, alpha) parameter of lambda (default 1). */
  alpha?: number;
  /**
   * Box side arithmetic on the token grid (default `"described"`: the full
   * square side int(h sqrt(1 - lambda)), as TL-Align describes it).
   */
  boxMode?: BoxMode;
}

/**
 * TL-Align's patch-aligned CutMix: lambda ~ Beta(alpha, alpha) (drawn again
 * while it is 1), a square box of side int(h sqrt(1 - lambda)) tokens with a
 * uniform integer centre, clipped to the token grid, lambda recomputed from
 * the clipped area. Pixels inside the box come from sample B-1-i; class
 * targets are blended with lambda; token targets (if given) are taken from
 * the image each patch came from; `sourceIndex` says which image that is.
 *
 * @example
 * ```ts
 * import { initBackend, patchCutmix, Rng, tf } from "tokenlab";
 * await initBackend();
 * const images = tf.randomUniform([2, 16, 16, 3], 0, 1, "float32", 1) as tf.Tensor4D;
 * const classTargets = tf.eye(2) as tf.Tensor2D;
 * const mixed = patchCutmix({ images, classTargets }, new Rng(0), { patchSize: 4 });
 * console.log(mixed.lambda, mixed.box, mixed.sourceIndex);
 * mixed.dispose();
 * tf.dispose([images, classTargets]);
 * ```
 */
export function patchCutmix(
  batch: MixInput,
  rng: Rng,
  options: PatchCutmixOptions,
): MixedBatch {
  const [B, H, W] = checkInput(batch);
  const { patchSize: p, alpha = 1, boxMode = "described" } = options ?? {};
  if (!(Number.isInteger(p) && p > 0 && H % p === 0 && W % p === 0)) {
    throw new MixingError(
      `patchSize must be a positive integer dividing the image size ${H}x${W}, found ${p}; pass the model's patch size (16 for a 224 image and a 14x14 grid)`,
    );
  }
  checkAlpha(alpha);
  const h = H / p, w = W / p;
  const { tokenTargets } = batch;
  if (tokenTargets !== undefined && tokenTargets.shape[1] !== h * w) {
    throw new MixingError(
      `token targets have ${
        tokenTargets.shape[1]
      } tokens, but ${H}x${W} images with ${p}-pixel patches have ${h}x${w} = ${
        h * w
      }; pool the score maps to a ${h}x${w} grid`,
    );
  }
  let lam = 1;
  while (lam === 1) lam = rng.beta(alpha, alpha);
  const cut = Math.floor(h * Math.sqrt(1 - lam));
  const cy = rng.int(h), cx = rng.int(w);
  const [top, bottom] = boxSide(h, cut, cy, boxMode);
  const [left, right] = boxSide(w, cut, cx, boxMode);
  const tokenBox: TokenBox = { top, left, bottom, right };
  lam = boxLambda(tokenBox, [h, w]);
  const box: TokenBox = {
    top: tokenBox.top * p,
    left: tokenBox.left * p,
    bottom: tokenBox.bottom * p,
    right: tokenBox.right * p,
  };
  const sourceIndex = new Int32Array(B * h * w);
  for (let i = 0; i < B; i++) {
    for (let r = 0; r < h; r++) {
      for (let c = 0; c < w; c++) {
        const inside = r >= tokenBox.top && r < tokenBox.bottom &&
          c >= tokenBox.left && c < tokenBox.right;
        sourceIndex[(i * h + r) * w + c] = inside ? B - 1 - i : i;
      }
    }
  }
  let mixedTokens: tf.Tensor3D | null = null;
  if (tokenTargets !== undefined) {
    const C = tokenTargets.shape[2];
    mixedTokens = tf.tidy(() =>
      tf.reshape(
        swapBox(tf.reshape(tokenTargets, [B, h, w, C]), tokenBox), // [B, h, w, C]
        [B, h * w, C],
      )
    ) as tf.Tensor3D; // [B, N, C]
  }
  return new MixedBatch({
    images: swapBox(batch.images, box), // [B, H, W, 3]
    classTargets: blendWithPartner(batch.classTargets, lam),
    tokenTargets: mixedTokens,
    mode: "cutmix",
    lambda: lam,
    box,
    patchSize: p,
    sourceIndex,
  });
}
