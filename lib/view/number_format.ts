/**
 * Number formats shared by views: axis ticks, table cells and progress
 * lines print a number the same way.
 *
 * @module
 */

/**
 * `4.0e-04`: one decimal, a two-digit exponent (as the command line prints
 * it); a non-finite value as `String(v)`.
 *
 * @example
 * ```ts
 * import { formatScientific } from "tokenlab/view/number_format.ts";
 * console.log(formatScientific(0.0004), formatScientific(12345)); // 4.0e-04 1.2e+04
 * ```
 */
export function formatScientific(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const [m, e] = v.toExponential(1).split("e");
  const n = Number(e);
  return `${m}e${n < 0 ? "-" : "+"}${String(Math.abs(n)).padStart(2, "0")}`;
}
