/**
 * Paired differences over seeds: the effect of an ablation arm against its
 * baseline, seed by seed, with a Student-t 95% confidence interval. Pairing
 * by seed removes what the two arms share (the data order, the
 * initialisation), so small effects show with few seeds when they are real.
 *
 * @module
 */

import { TableError } from "./table.ts";

/** A paired difference (arm − baseline) over the seeds both arms ran. */
export interface PairedDifference {
  /** Mean of the per-seed differences. */
  mean: number;
  /** Sample standard deviation of the differences (n − 1); null when n < 2. */
  std: number | null;
  /** Seeds paired. */
  n: number;
  /** Lower end of the 95% interval of the mean (null when n < 2). */
  lo: number | null;
  /** Upper end of the 95% interval of the mean (null when n < 2). */
  hi: number | null;
  /** The per-seed differences, in the order of the seeds. */
  differences: number[];
}

// Two-sided 97.5% quantiles of Student's t for 1..30 degrees of freedom.
const T975 = [
  12.7062,
  4.3027,
  3.1824,
  2.7764,
  2.5706,
  2.4469,
  2.3646,
  2.306,
  2.2622,
  2.2281,
  2.201,
  2.1788,
  2.1604,
  2.1448,
  2.1314,
  2.1199,
  2.1098,
  2.1009,
  2.093,
  2.086,
  2.0796,
  2.0739,
  2.0687,
  2.0639,
  2.0595,
  2.0555,
  2.0518,
  2.0484,
  2.0452,
  2.0423,
];

/**
 * The 0.975 quantile of Student's t with `df` degrees of freedom (the
 * multiplier of a two-sided 95% interval): tabulated to 30, then the
 * Cornish-Fisher expansion around the normal quantile (error below 1e-4).
 *
 * @example
 * ```ts
 * import { tQuantile975 } from "tokenlab";
 * console.log(tQuantile975(2).toFixed(3)); // 4.303
 * ```
 */
export function tQuantile975(df: number): number {
  if (!(Number.isInteger(df) && df >= 1)) {
    throw new TableError(
      `degrees of freedom must be a whole number >= 1, found ${df}; a paired interval needs at least 2 seeds`,
    );
  }
  if (df <= T975.length) return T975[df - 1];
  const z = 1.959964;
  const g1 = (z ** 3 + z) / 4;
  const g2 = (5 * z ** 5 + 16 * z ** 3 + 3 * z) / 96;
  const g3 = (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / 384;
  return z + g1 / df + g2 / df ** 2 + g3 / df ** 3;
}

/**
 * The paired difference `arm − baseline` over seeds: both maps go from a
 * seed to a value; seeds only one of them ran are left out. Throws when no
 * seed is shared.
 *
 * @example
 * ```ts
 * import { pairedDifference } from "tokenlab";
 * const d = pairedDifference(
 *   new Map([[1, 61], [2, 63], [3, 62]]),
 *   new Map([[1, 60], [2, 61], [3, 61]]),
 * );
 * console.log(d.mean.toFixed(3), d.lo!.toFixed(3), d.hi!.toFixed(3)); // 1.333 -0.101 2.768
 * ```
 */
export function pairedDifference(
  arm: ReadonlyMap<number, number>,
  baseline: ReadonlyMap<number, number>,
): PairedDifference {
  const differences: number[] = [];
  for (const [seed, v] of arm) {
    const b = baseline.get(seed);
    if (b === undefined) continue;
    if (!Number.isFinite(v) || !Number.isFinite(b)) {
      throw new TableError(
        `seed ${seed} has a non-finite value (arm ${v}, baseline ${b}); drop the diverged run or report it separately`,
      );
    }
    differences.push(v - b);
  }
  const n = differences.length;
  if (n === 0) {
    throw new TableError(
      `the arm (seeds ${
        [...arm.keys()].join(", ") || "none"
      }) and its baseline (seeds ${
        [...baseline.keys()].join(", ") || "none"
      }) share no seed; run both with the same seeds`,
    );
  }
  const mean = differences.reduce((a, b) => a + b, 0) / n;
  if (n < 2) {
    return { mean, std: null, n, lo: null, hi: null, differences };
  }
  const std = Math.sqrt(
    differences.reduce((a, d) => a + (d - mean) ** 2, 0) / (n - 1),
  );
  const half = tQuantile975(n - 1) * std / Math.sqrt(n);
  return { mean, std, n, lo: mean - half, hi: mean + half, differences };
}
