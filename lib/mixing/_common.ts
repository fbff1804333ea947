/** Validation and small helpers shared by the mixing module (internal). */

import { TokenlabError } from "../errors.ts";

/** Raised when a mixing input or option is out of range. */
export class MixingError extends TokenlabError {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
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

const clip = (v: number, lo: number, hi: number) =>
  Math.min(hi, Math.max(lo, v));

/**
 * One side of a box: [start, end) on an axis of n cells around centre c,
 * clipped. `"official"` (the published `rand_bbox`) spans `c +- cut // 2`,
 * so an odd side loses a cell; `"described"` the full side `cut` from
 * `c - cut // 2`. MixToken's box and TL-Align's patch CutMix cut the same.
 */
export function boxSide(
  n: number,
  cut: number,
  c: number,
  mode: "official" | "described",
): [number, number] {
  const half = Math.floor(cut / 2);
  const start = c - half;
  const end = mode === "official" ? c + half : start + cut;
  return [clip(start, 0, n), clip(end, 0, n)];
}
