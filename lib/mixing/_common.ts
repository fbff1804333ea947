/** Validation and small helpers shared by the mixing module (internal). */

import { tf } from "../tf.ts";

/** Raised when a mixing input or option is out of range. */
export class MixingError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "MixingError";
  }
}

/** Checks a Beta parameter. */
export function checkAlpha(alpha: number, what = "alpha"): void {
  if (!(Number.isFinite(alpha) && alpha > 0)) {
    throw new MixingError(
      `${what} must be a finite number > 0 (lambda ~ Beta(${what}, ${what})), found ${alpha}; use 1 for a uniform lambda`,
    );
  }
}

/** Checks a probability. */
export function checkProb(p: number, what = "prob"): void {
  if (!(Number.isFinite(p) && p >= 0 && p <= 1)) {
    throw new MixingError(
      `${what} must be a probability in [0, 1], found ${p}; use 1 to mix every step (the official setting) or 0 never to mix`,
    );
  }
}

export function checkGrid(
  grid: readonly [number, number],
  what = "grid",
): void {
  const [h, w] = grid;
  if (!(Number.isInteger(h) && Number.isInteger(w) && h > 0 && w > 0)) {
    throw new MixingError(
      `${what} must be two positive integers [rows, columns], found [${grid}]; the token grid of a 224 image with 16-pixel patches is [14, 14]`,
    );
  }
}

/** lam x + (1 - lam) x reversed over the batch (a copy when lam is 1). */
export function blendWithPartner<T extends tf.Tensor>(x: T, lam: number): T {
  if (lam >= 1) return tf.clone(x);
  return tf.tidy(() =>
    tf.add(tf.mul(x, lam), tf.mul(tf.reverse(x, 0), 1 - lam))
  ) as T;
}
