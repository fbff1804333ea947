/**
 * Plotly building blocks shared by views: the names of a subplot's axes
 * and an RGB image as the nested `z` rows of an image trace.
 *
 * @module
 */

/**
 * The suffix of subplot `index`'s axes (counted from 0): "" for the first
 * (`x`, `xaxis`), "2" for the second (`x2`, `xaxis2`), and so on.
 *
 * @example
 * ```ts
 * import { plotlyAxisSuffix } from "tokenlab/view/plotly.ts";
 * console.log(`x${plotlyAxisSuffix(0)}`, `xaxis${plotlyAxisSuffix(2)}`); // x xaxis3
 * ```
 */
export function plotlyAxisSuffix(index: number): string {
  return index === 0 ? "" : String(index + 1);
}

/**
 * RGB pixels (`rows * cols * 3` bytes, row-major) as the `z` of a plotly
 * image trace: rows of `[r, g, b]`.
 *
 * @example
 * ```ts
 * import { plotlyRgbRows } from "tokenlab/view/plotly.ts";
 * console.log(plotlyRgbRows(new Uint8Array([255, 0, 0, 0, 0, 255]), 1, 2)); // [ [ [ 255, 0, 0 ], [ 0, 0, 255 ] ] ]
 * ```
 */
export function plotlyRgbRows(
  rgb: Uint8Array,
  rows: number,
  cols: number,
): number[][][] {
  const z: number[][][] = [];
  for (let r = 0; r < rows; r++) {
    const row: number[][] = [];
    for (let c = 0; c < cols; c++) {
      const o = (r * cols + c) * 3;
      row.push([rgb[o], rgb[o + 1], rgb[o + 2]]);
    }
    z.push(row);
  }
  return z;
}
