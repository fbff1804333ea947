/**
 * Score maps that show themselves in a notebook: the top class of every
 * cell as a heatmap (over the image when given), with the crop box and the
 * token grid drawn. Jupyter gets a plotly figure, with an SVG and a text
 * fallback for renderers without plotly (nbconvert's HTML keeps the SVG).
 *
 * @module
 */

import { figureBundle } from "../view/bundle.ts";
import { CLASS_PALETTE, classColor, classColorRgb } from "../view/palette.ts";
import {
  svgCell,
  svgDocument,
  svgLine,
  svgRect,
  svgText,
} from "../view/svg.ts";
import type { NormalizedBox } from "./pooling.ts";
import type { ScoreMap } from "./score_map.ts";

/** Options of {@linkcode showScoreMap}. */
export interface ShowScoreMapOptions {
  /** The image the map was made from: NHWC pixels in [0, 1] of one image. */
  image?: { data: Float32Array; height: number; width: number };
  /** A crop box (top, left, height, width), normalised, drawn as a rectangle. */
  box?: NormalizedBox;
  /** Draw an S x S token grid inside the box (or over the whole map). */
  tokens?: number;
  /** Class names by id (default: the ids). */
  classNames?: readonly string[];
  /** Title of the figure. */
  title?: string;
}

// Defined with the view layer; still exported here.
export { CLASS_PALETTE } from "../view/palette.ts";

/** A score map view: displays itself in Jupyter (plotly, SVG, text). */
export class ScoreMapView {
  /** The map shown. */
  readonly map: ScoreMap;
  /** What is drawn over it. */
  readonly options: ShowScoreMapOptions;

  /** Wraps a map and drawing options. */
  constructor(map: ScoreMap, options: ShowScoreMapOptions = {}) {
    this.map = map;
    this.options = options;
  }

  #name(id: number): string {
    return id < 0 ? "(uniform)" : this.options.classNames?.[id] ?? String(id);
  }

  /**
   * Top-1 class id per cell, row-major [H, W]; -1 where every stored score
   * is 0, which after densifying and the softmax is the uniform
   * distribution (cells moved in from outside by an augmentation, or
   * background cells of an oracle map): such a cell names no class.
   */
  topClasses(): Int32Array {
    return scoreMapTopClasses(this.map);
  }

  /** The token grid lines and the box, in map cell units. */
  #overlay(): {
    box: [number, number, number, number] | null;
    lines: number[][];
  } {
    const { height: H, width: W } = this.map;
    const b = this.options.box;
    const box = b
      ? [b[0] * H, b[1] * W, b[2] * H, b[3] * W] as [
        number,
        number,
        number,
        number,
      ]
      : null;
    const [top, left, h, w] = box ?? [0, 0, H, W];
    const lines: number[][] = [];
    const S = this.options.tokens ?? 0;
    for (let i = 1; i < S; i++) {
      lines.push([left, top + (h * i) / S, left + w, top + (h * i) / S]);
      lines.push([left + (w * i) / S, top, left + (w * i) / S, top + h]);
    }
    return { box, lines };
  }

  /** The plotly figure (data and layout). */
  figure(): { data: unknown[]; layout: Record<string, unknown> } {
    const { height: H, width: W, k } = this.map;
    const top = this.topClasses();
    const z: number[][] = [], text: string[][] = [];
    for (let r = 0; r < H; r++) {
      z.push([]);
      text.push([]);
      for (let c = 0; c < W; c++) {
        const cell = r * W + c;
        z[r].push(top[cell] < 0 ? NaN : top[cell] % CLASS_PALETTE.length);
        const parts: string[] = [];
        for (let j = 0; j < k; j++) {
          const at = j * H * W + cell;
          parts.push(
            `${this.#name(this.map.ids[at])}: ${
              this.map.scores[at].toFixed(2)
            }`,
          );
        }
        text[r].push(`cell (${r}, ${c})<br>${parts.join("<br>")}`);
      }
    }
    const data: unknown[] = [];
    const img = this.options.image;
    if (img) {
      // The image resampled to a modest grid so the figure stays small.
      const rows = Math.min(img.height, 128), cols = Math.min(img.width, 128);
      const pix: number[][][] = [];
      for (let r = 0; r < rows; r++) {
        const row: number[][] = [];
        for (let c = 0; c < cols; c++) {
          const y = Math.floor(((r + 0.5) * img.height) / rows);
          const x = Math.floor(((c + 0.5) * img.width) / cols);
          const o = (y * img.width + x) * 3;
          row.push(
            [0, 1, 2].map((ch) =>
              Math.round(255 * Math.min(1, Math.max(0, img.data[o + ch])))
            ),
          );
        }
        pix.push(row);
      }
      data.push({
        type: "image",
        z: pix,
        x0: -0.5 + W / cols / 2,
        dx: W / cols,
        y0: -0.5 + H / rows / 2,
        dy: H / rows,
        hoverinfo: "skip",
      });
    }
    const colorscale = CLASS_PALETTE.map((c, i) => [
      [i / CLASS_PALETTE.length, c],
      [(i + 1) / CLASS_PALETTE.length, c],
    ]).flat();
    data.push({
      type: "heatmap",
      z,
      text,
      hoverinfo: "text",
      zmin: 0,
      zmax: CLASS_PALETTE.length,
      colorscale,
      showscale: false,
      opacity: img ? 0.55 : 1,
    });
    const { box, lines } = this.#overlay();
    const shapes: unknown[] = lines.map(([x0, y0, x1, y1]) => ({
      type: "line",
      x0: x0 - 0.5,
      y0: y0 - 0.5,
      x1: x1 - 0.5,
      y1: y1 - 0.5,
      line: { color: "white", width: 1 },
    }));
    if (box) {
      shapes.push({
        type: "rect",
        x0: box[1] - 0.5,
        y0: box[0] - 0.5,
        x1: box[1] + box[3] - 0.5,
        y1: box[0] + box[2] - 0.5,
        line: { color: "black", width: 3 },
      });
    }
    return {
      data,
      layout: {
        title: {
          text: this.options.title ??
            `score map: top class of ${H}x${W} cells (k ${k})`,
        },
        yaxis: { autorange: "reversed", scaleanchor: "x", showgrid: false },
        xaxis: { showgrid: false },
        shapes,
        width: 520,
        height: 520,
        margin: { l: 40, r: 20, t: 50, b: 40 },
      },
    };
  }

  /** A self-contained SVG of the same picture (without the image). */
  svg(): string {
    const { height: H, width: W } = this.map;
    const cell = Math.max(8, Math.floor(360 / Math.max(H, W)));
    const top = this.topClasses();
    const parts: string[] = [];
    for (let r = 0; r < H; r++) {
      for (let c = 0; c < W; c++) {
        const id = top[r * W + c];
        const name = this.#name(id);
        parts.push(
          svgCell(
            r,
            c,
            cell,
            classColor(id, "#ffffff"),
            `(${r}, ${c}): ${name}`,
          ),
        );
        if (cell >= 18) {
          parts.push(
            svgText(name.slice(0, 4), {
              x: (c + 0.5) * cell,
              y: (r + 0.5) * cell,
              "font-size": Math.floor(cell / 2.6),
              "text-anchor": "middle",
              "dominant-baseline": "central",
              fill: "white",
            }),
          );
        }
      }
    }
    const { box, lines } = this.#overlay();
    for (const [x0, y0, x1, y1] of lines) {
      parts.push(
        svgLine(x0 * cell, y0 * cell, x1 * cell, y1 * cell, {
          stroke: "white",
          "stroke-width": 1,
        }),
      );
    }
    if (box) {
      parts.push(
        svgRect(box[1] * cell, box[0] * cell, box[3] * cell, box[2] * cell, {
          fill: "none",
          stroke: "black",
          "stroke-width": 3,
        }),
      );
    }
    return svgDocument(W * cell, H * cell, parts.join(""));
  }

  /** The top class of every cell as text rows. */
  toString(): string {
    const { height: H, width: W, k } = this.map;
    const top = this.topClasses();
    const names = Array.from(top, (id) => this.#name(id));
    const width = Math.max(...names.map((n) => n.length));
    const rows: string[] = [];
    for (let r = 0; r < H; r++) {
      rows.push(
        names.slice(r * W, (r + 1) * W).map((n) => n.padStart(width)).join(" "),
      );
    }
    return `score map ${H}x${W}, top ${k} per cell; top class of each cell:\n${
      rows.join("\n")
    }`;
  }

  /**
   * The Jupyter bundle: plotly, an HTML fallback (the SVG as an image: the
   * HTML nbconvert writes strips inline SVG elements), the SVG, and text.
   */
  [Symbol.for("Jupyter.display")](): Record<string, unknown> {
    return figureBundle({
      plotly: this.figure(),
      svg: this.svg(),
      text: this.toString(),
      alt: this.options.title ?? "score map",
    });
  }
}

/**
 * A notebook view of a score map: the top class per cell (over the image
 * when given) with the crop box and the token grid.
 *
 * @example
 * ```ts
 * import { showScoreMap } from "tokenlab";
 * const map = { k: 1, height: 2, width: 2, scores: new Float32Array([1, 2, 3, 4]), ids: new Int32Array([3, 3, 7, 7]) };
 * const view = showScoreMap(map, { box: [0, 0, 1, 0.5], tokens: 2 });
 * console.log(view.toString());
 * ```
 */
export function showScoreMap(
  map: ScoreMap,
  options: ShowScoreMapOptions = {},
): ScoreMapView {
  return new ScoreMapView(map, options);
}

/**
 * A map's top class per cell, row-major [H, W]; -1 where every stored
 * score is 0, which after densifying and the softmax is the uniform
 * distribution: such a cell names no class.
 *
 * @example
 * ```ts
 * import { scoreMapTopClasses } from "tokenlab";
 * const map = { k: 1, height: 1, width: 2, scores: new Float32Array([0, 2]), ids: new Int32Array([3, 7]) };
 * console.log(scoreMapTopClasses(map)); // Int32Array(2) [ -1, 7 ]
 * ```
 */
export function scoreMapTopClasses(map: ScoreMap): Int32Array {
  const { k, height: H, width: W, scores } = map;
  const top = map.ids.slice(0, H * W);
  for (let cell = 0; cell < H * W; cell++) {
    let blank = true;
    for (let j = 0; j < k && blank; j++) {
      if (scores[j * H * W + cell] !== 0) blank = false;
    }
    if (blank) top[cell] = -1;
  }
  return top;
}

/** A grid of class ids over an image, row-major; -1 where a cell names no class. */
export interface ClassGrid {
  /** Class id per cell, row-major [rows, cols]. */
  ids: Int32Array;
  /** Rows of the grid. */
  rows: number;
  /** Columns of the grid. */
  cols: number;
}

/**
 * An RGB image (bytes, row-major, 3 per pixel) with each grid cell's class
 * colour blended over the pixels it covers, at `opacity`; cells of id -1
 * are left clear. The image itself is not changed.
 *
 * @example
 * ```ts
 * import { blendClassGrid } from "tokenlab";
 * const rgb = new Uint8Array(2 * 1 * 3).fill(255);
 * const grid = { ids: new Int32Array([0, -1]), rows: 1, cols: 2 };
 * console.log(blendClassGrid(rgb, 2, 1, grid, 0.5).slice(3)); // Uint8Array(3) [ 255, 255, 255 ]
 * ```
 */
export function blendClassGrid(
  rgb: Uint8Array,
  width: number,
  height: number,
  grid: ClassGrid,
  opacity: number,
): Uint8Array {
  const { ids, rows, cols } = grid;
  const out = rgb.slice();
  for (let y = 0; y < height; y++) {
    const r = Math.min(rows - 1, Math.floor((y * rows) / height));
    for (let x = 0; x < width; x++) {
      const id =
        ids[r * cols + Math.min(cols - 1, Math.floor((x * cols) / width))];
      if (id < 0) continue;
      const col = classColorRgb(id);
      const o = (y * width + x) * 3;
      for (let ch = 0; ch < 3; ch++) {
        out[o + ch] = Math.round(
          (1 - opacity) * out[o + ch] + opacity * col[ch],
        );
      }
    }
  }
  return out;
}
