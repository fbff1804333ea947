/**
 * The verdict of an ablation arm: does the published effect reproduce at our
 * scale? Decided from the paired 95% interval of our effect against the
 * published sign, never written by hand.
 *
 * @module
 */

import type { PairedDifference } from "./paired.ts";

/**
 * - `reproduced`: the published direction, and our interval excludes 0;
 * - `not reproduced`: our interval lies wholly on the other side of 0;
 * - `inconclusive`: the interval holds 0 (or fewer than 2 seeds);
 * - `measured only`: nobody published this effect; ours is shown alone.
 */
export type VerdictKind =
  | "reproduced"
  | "not reproduced"
  | "inconclusive"
  | "measured only";

/** A verdict with the numbers it rests on. */
export interface Verdict {
  /** The decision. */
  kind: VerdictKind;
  /** The published effect (arm − baseline, in points), or null. */
  published: number | null;
  /** Our paired effect over seeds. */
  measured: PairedDifference;
  /** One sentence saying the decision and why. */
  text: string;
}

/** Options of {@linkcode verdictOf}. */
export interface VerdictOptions {
  /** The unit of the effect in the text (default "points"). */
  unit?: string;
}

/** `+1.23` / `-0.40`: a signed number with two decimals. */
export function signed(x: number, digits = 2): string {
  const s = x.toFixed(digits);
  return x >= 0 && !s.startsWith("-") ? `+${s}` : s.replace("-", "−");
}

/** `+0.42 [−0.31, +1.15]`: a paired effect and its 95% interval. */
export function formatEffect(d: PairedDifference, digits = 2): string {
  if (d.lo === null || d.hi === null) {
    return `${signed(d.mean, digits)} (n = ${d.n}, no interval)`;
  }
  return `${signed(d.mean, digits)} [${signed(d.lo, digits)}, ${
    signed(d.hi, digits)
  }]`;
}

/**
 * Decides whether a published effect reproduces from our paired difference.
 *
 * @example
 * ```ts
 * import { pairedDifference, verdictOf } from "tokenlab";
 * const d = pairedDifference(new Map([[1, 62], [2, 63], [3, 62.5]]), new Map([[1, 60], [2, 61], [3, 61]]));
 * console.log(verdictOf(d, 0.9).kind); // reproduced
 * console.log(verdictOf(d, null).kind); // measured only
 * ```
 */
export function verdictOf(
  measured: PairedDifference,
  published: number | null,
  options: VerdictOptions = {},
): Verdict {
  const unit = options.unit ?? "points";
  const ours = `ours ${
    formatEffect(measured)
  } ${unit} (95% interval over ${measured.n} paired seed${
    measured.n === 1 ? "" : "s"
  })`;
  const { lo, hi } = measured;
  const excludesZero = lo !== null && hi !== null && (lo > 0 || hi < 0);
  if (published === null) {
    const what = lo === null
      ? "too few seeds for an interval"
      : excludesZero
      ? `the interval excludes 0: a ${lo > 0 ? "gain" : "loss"} at this scale`
      : "the interval holds 0: no effect shown at this scale";
    return {
      kind: "measured only",
      published,
      measured,
      text: `No published number; ${ours}; ${what}.`,
    };
  }
  const pub = `published ${signed(published)} ${unit}`;
  if (lo === null || hi === null) {
    return {
      kind: "inconclusive",
      published,
      measured,
      text:
        `Inconclusive: ${pub}, ${ours}; fewer than 2 seeds give no interval.`,
    };
  }
  const dir = Math.sign(published);
  if (dir !== 0 && (dir > 0 ? lo > 0 : hi < 0)) {
    return {
      kind: "reproduced",
      published,
      measured,
      text:
        `Reproduced: ${pub}, ${ours}; same direction, and the interval excludes 0.`,
    };
  }
  if (dir !== 0 && (dir > 0 ? hi < 0 : lo > 0)) {
    return {
      kind: "not reproduced",
      published,
      measured,
      text:
        `Not reproduced: ${pub}, ${ours}; the interval lies on the other side of 0.`,
    };
  }
  return {
    kind: "inconclusive",
    published,
    measured,
    text: dir === 0
      ? `Inconclusive: ${pub} (no effect), ${ours}.`
      : `Inconclusive at this scale: ${pub}, ${ours}; the interval holds 0, so more seeds or a longer protocol are needed to decide.`,
  };
}
