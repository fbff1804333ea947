/**
 * What tells two runs' configs apart: the fields a resumed run may change
 * ({@linkcode RUN_ONLY_FIELDS}) and the ones it may not
 * ({@linkcode configDifferences}).
 *
 * @module
 */

import { DEFAULT_TRAIN_CONFIG, type TrainConfig } from "./config.ts";

/**
 * The fields a resumed run may change: where and how it runs, not what it
 * computes.
 */
export const RUN_ONLY_FIELDS: readonly (keyof TrainConfig)[] = [
  "output",
  "resume",
  "overwrite",
  "extend",
  "workers",
  "backend",
  "checkpointEvery",
  "logEvery",
  // Up to the first unreadable image a skipping run and a stopping one are
  // the same, so a run stopped by one may resume skipping it.
  "onBadImage",
];

/**
 * The fields two configs disagree on, run-only fields (output, backend,
 * workers, logging and checkpoint frequency) left out: empty when a run may
 * resume under `b` what `a` started. A field one of them lacks (a run.json
 * written before the field existed) counts as its default, which is what
 * that run computed with.
 *
 * @example
 * ```ts
 * import { configDifferences } from "tokenlab";
 * const a = { lr: 1e-3, output: "runs/a" }, b = { lr: 2e-3, output: "runs/b" };
 * console.log(configDifferences(a, b)); // ["lr: 0.001 -> 0.002"]
 * console.log(configDifferences({}, { refine: "none" })); // [] (the default)
 * ```
 */
export function configDifferences(
  a: Record<string, unknown>,
  b: Record<string, unknown>,
): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  const defaults = DEFAULT_TRAIN_CONFIG as unknown as Record<string, unknown>;
  const value = (o: Record<string, unknown>, k: string) =>
    JSON.stringify((k in o ? o[k] : defaults[k]) ?? null);
  const out: string[] = [];
  for (const k of [...keys].sort()) {
    if ((RUN_ONLY_FIELDS as readonly string[]).includes(k)) continue;
    const x = value(a, k), y = value(b, k);
    if (x !== y) out.push(`${k}: ${x} -> ${y}`);
  }
  return out;
}
