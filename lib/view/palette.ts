/**
 * The colours views give to classes: one qualitative palette, as hex
 * strings for SVG and plotly and as RGB triples for pixels.
 *
 * @module
 */

/**
 * A qualitative palette (hex colours); class c takes colour c mod 20.
 *
 * @example
 * ```ts
 * import { CLASS_PALETTE } from "tokenlab/view/palette.ts";
 * console.log(CLASS_PALETTE.length, CLASS_PALETTE[0]); // 20 #1f77b4
 * ```
 */
export const CLASS_PALETTE: readonly string[] = [
  "#1f77b4",
  "#ff7f0e",
  "#2ca02c",
  "#d62728",
  "#9467bd",
  "#8c564b",
  "#e377c2",
  "#7f7f7f",
  "#bcbd22",
  "#17becf",
  "#aec7e8",
  "#ffbb78",
  "#98df8a",
  "#ff9896",
  "#c5b0d5",
  "#c49c94",
  "#f7b6d2",
  "#c7c7c7",
  "#dbdb8d",
  "#9edae5",
];

/**
 * The colour of a class id (hex), or `none` for a negative id (a cell
 * that names no class).
 *
 * @example
 * ```ts
 * import { classColor } from "tokenlab/view/palette.ts";
 * console.log(classColor(21), classColor(-1, "#ffffff")); // #ff7f0e #ffffff
 * ```
 */
export function classColor(id: number, none = "none"): string {
  return id < 0 ? none : CLASS_PALETTE[id % CLASS_PALETTE.length];
}

const PALETTE_RGB: readonly (readonly [number, number, number])[] =
  CLASS_PALETTE.map((hex) => {
    const v = parseInt(hex.slice(1), 16);
    return [(v >> 16) & 255, (v >> 8) & 255, v & 255] as const;
  });

/**
 * The colour of a class id (taken mod 20) as an RGB triple, 0..255.
 *
 * @example
 * ```ts
 * import { classColorRgb } from "tokenlab/view/palette.ts";
 * console.log(classColorRgb(0)); // [ 31, 119, 180 ]
 * ```
 */
export function classColorRgb(id: number): readonly [number, number, number] {
  return PALETTE_RGB[id % PALETTE_RGB.length];
}
