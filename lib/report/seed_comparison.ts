/**
 * Two arms over a few seeds, shown the way a researcher reads them: every
 * seed's number, each arm's mean ± std, the paired difference to the
 * baseline with its 95% interval ({@linkcode seedTable}), and one sentence
 * whose claim (is the gap larger than the seed spread? does the paired
 * interval exclude 0?) is computed from those numbers
 * ({@linkcode gapClaim}), never written by hand.
 *
 * @module
 */

import type { Ablation } from "./ablation.ts";
import type { PairedDifference } from "./paired.ts";
import { type CellValue, meanStd, type ResultTable, table } from "./table.ts";
import { formatEffect, signed } from "./verdict.ts";

/** Options of {@linkcode seedTable}. */
export interface SeedTableOptions {
  /** The caption (default: the metric, the setting and the seed count). */
  caption?: string;
  /** Decimals of the numbers (default 2). */
  digits?: number;
  /** Notes added under the table, after the one that says how to read it. */
  notes?: readonly string[];
}

/**
 * The per-seed table of an ablation: one row per arm, one column per seed,
 * the mean ± sample std over the seeds, and each compared arm's paired
 * difference to its reference with a Student-t 95% interval.
 *
 * @example
 * ```ts
 * import { runAblation } from "tokenlab";
 * import { seedTable } from "tokenlab/report/seed_comparison.ts";
 * const dir = await Deno.makeTempDir();
 * const ab = await runAblation({
 *   name: "seed-table-example",
 *   arms: [
 *     { key: "plain", label: "plain", config: { gain: 0 } },
 *     { key: "tl", label: "token labels", config: { gain: 2 } },
 *   ],
 *   baseline: "plain",
 *   seeds: [1, 2, 3],
 *   run: (c, seed) => Promise.resolve({ value: 80 + c.gain + seed }),
 *   setting: { dataset: "none", real: false, model: "none", epochs: 0, scale: "tiny" },
 *   experimentOptions: { cacheDir: dir, frozenDir: dir },
 * });
 * console.log(seedTable(ab).toMarkdown().split("\n")[4]); // | plain | 81.00 | 82.00 | 83.00 | 82.00 ± 1.00 | reference |
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function seedTable<C>(
  ablation: Ablation<C>,
  options: SeedTableOptions = {},
): ResultTable {
  const o = ablation.options;
  const metric = o.metric ?? { label: "top-1", unit: "%" };
  const digits = options.digits ?? 2;
  const seeds = ablation.seeds;
  const rows = ablation.outcomes.map((out) => {
    const key = out.arm.key;
    const values = ablation.values(key);
    const row: Record<string, CellValue> = { arm: out.arm.label };
    seeds.forEach((s, i) => row[`seed${s}`] = values[i]);
    row.mean = values;
    row.delta = ablation.isCompared(key)
      ? `${formatEffect(ablation.difference(key), digits)} vs ${
        ablation.outcomes.find((x) => x.arm.key === ablation.reference(key))!
          .arm.label
      }`
      : "reference";
    return row;
  });
  return table({
    caption: options.caption ??
      `${metric.label} per seed on ${o.setting.dataset}, ${o.setting.scale} scale, ${seeds.length} seed${
        seeds.length === 1 ? "" : "s"
      }`,
    columns: [
      { key: "arm", label: "arm" },
      ...seeds.map((s) => ({
        key: `seed${s}`,
        label: `seed ${s}`,
        unit: metric.unit,
        digits,
      })),
      { key: "mean", label: "mean ± std", unit: metric.unit, digits },
      { key: "delta", label: "Δ [95% CI]", align: "right" as const },
    ],
    rows,
    notes: [
      `Ours: ${ablation.settingLine()}. Mean ± sample std (n − 1) over the seeds; Δ is the mean of the per-seed differences (same seed, same data order), with a Student-t 95% interval (none with one seed).`,
      ...(options.notes ?? []),
    ],
  });
}

/** What {@linkcode gapClaim} computed. */
export interface GapClaim {
  /** Mean of the arm minus mean of its reference, in points. */
  gap: number;
  /** The seed spread: the larger sample std of the two arms (0 with one seed). */
  spread: number;
  /** Whether |gap| exceeds the spread (false with one seed: no spread known). */
  exceedsSpread: boolean;
  /** The paired difference over the seeds. */
  paired: PairedDifference;
  /**
   * Where the paired 95% interval lies: `above` or `below` 0, `holds 0`,
   * or `none` (fewer than 2 seeds).
   */
  interval: "above" | "below" | "holds 0" | "none";
  /** The sentence (Markdown), every claim in it computed from the numbers above. */
  text: string;
}

/** Options of {@linkcode gapClaim}. */
export interface GapClaimOptions {
  /** Decimals of the numbers in the sentence (default 1). */
  digits?: number;
  /** What the arm changes, for the sentence (default: the arm's label). */
  what?: string;
}

/**
 * The claim one can make about an arm against its reference from the seeds
 * alone: the gap of the means, whether it is larger than the seed spread
 * (the larger of the two arms' sample std), and on which side of 0 the
 * paired 95% interval lies, in one sentence.
 *
 * @example
 * ```ts
 * import { runAblation } from "tokenlab";
 * import { gapClaim } from "tokenlab/report/seed_comparison.ts";
 * const dir = await Deno.makeTempDir();
 * const ab = await runAblation({
 *   name: "gap-claim-example",
 *   arms: [
 *     { key: "plain", label: "plain", config: { gain: 0 } },
 *     { key: "tl", label: "token labels", config: { gain: 5 } },
 *   ],
 *   baseline: "plain",
 *   seeds: [1, 2, 3],
 *   run: (c, seed) => Promise.resolve({ value: 80 + c.gain + seed }),
 *   setting: { dataset: "none", real: false, model: "none", epochs: 0, scale: "tiny" },
 *   experimentOptions: { cacheDir: dir, frozenDir: dir },
 * });
 * const c = gapClaim(ab, "tl");
 * console.log(c.gap, c.spread, c.exceedsSpread, c.interval); // 5 1 true above
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function gapClaim<C>(
  ablation: Ablation<C>,
  key: string,
  options: GapClaimOptions = {},
): GapClaim {
  const digits = options.digits ?? 1;
  const ref = ablation.reference(key);
  const label = (k: string) =>
    ablation.outcomes.find((o) => o.arm.key === k)!.arm.label;
  const a = meanStd(ablation.values(key)), b = meanStd(ablation.values(ref));
  const gap = a.mean - b.mean;
  const n = a.n;
  const spread = Math.max(a.std, b.std);
  const exceedsSpread = n >= 2 && Math.abs(gap) > spread;
  const paired = ablation.difference(key, ref);
  const interval = paired.lo === null || paired.hi === null
    ? "none"
    : paired.lo > 0
    ? "above"
    : paired.hi < 0
    ? "below"
    : "holds 0";
  const unit = ablation.options.metric?.unit ?? "%";
  const metric = ablation.options.metric?.label ?? "top-1";
  const f = (x: number) => x.toFixed(digits);
  const what = options.what ?? label(key);
  const means = `mean ${metric} ${f(a.mean)} ${unit} with ${what} against ${
    f(b.mean)
  } ${unit} with ${label(ref)} over ${n} seed${n === 1 ? "" : "s"}`;
  let text: string;
  if (n < 2) {
    text = `${means}: a gap of ${
      signed(gap, digits)
    } points. With one seed there is no seed spread to compare it with, so this run cannot tell an effect from seed noise; run more seeds.`;
  } else {
    const spreadPart =
      `The seed spread (the larger sample std of the two arms) is ${
        f(spread)
      } points, so the gap is **${
        exceedsSpread ? "larger" : "not larger"
      } than the seed spread**`;
    const pairedPart = `paired seed by seed, the difference is ${
      formatEffect(paired, digits)
    } (95% interval), ${
      interval === "above"
        ? `above 0: ${what} **helped** in this setting`
        : interval === "below"
        ? `below 0: ${what} **hurt** in this setting`
        : `which holds 0: **no difference shown** at this scale`
    }.`;
    text = `${means}: a gap of ${
      signed(gap, digits)
    } points. ${spreadPart}; ${pairedPart}`;
  }
  text = text[0].toUpperCase() + text.slice(1);
  return { gap, spread, exceedsSpread, paired, interval, text };
}
