/**
 * Mixed batches that show themselves in a notebook: the images side by side
 * (downsampled, drawn as SVG cells), the box and the token grid over each,
 * and the mixed class targets (top classes with weights) and a summary of the
 * token targets. Jupyter gets plotly image traces, the SVG as an HTML image,
 * the SVG, and text.
 *
 * @module
 */

import { drawingBundle } from "../view/bundle.ts";
import { plotlyAxisSuffix, plotlyRgbRows } from "../view/plotly.ts";
import {
  svgCell,
  svgDocument,
  svgElement,
  svgLine,
  svgRect,
  svgText,
} from "../view/svg.ts";
import type { MixedBatch } from "./cutmix.ts";

/** Options of {@linkcode showMixedBatch}. */
export interface ShowMixedBatchOptions {
  /** Class names by id (default: the ids). */
  classNames?: readonly string[];
  /** How many images to show (default 8). */
  maxImages?: number;
  /** Top classes listed per image (default 3). */
  topK?: number;
  /** Pixel value range mapped to black..white (default: the batch's min and max). */
  range?: readonly [number, number];
  /** Cells per image side in the drawing (default 24). */
  cells?: number;
}

/** What a view keeps of one image. */
export interface ImageView {
  /** RGB per cell, row-major, 0..255. */
  rgb: Uint8Array;
  /** Top classes of the class target. */
  top: { id: number; weight: number }[];
  /** Token targets: distinct argmax classes and the mean top weight. */
  tokens: { classes: number[]; meanTop: number } | null;
}

/** What a {@linkcode MixedBatchView} is made of (read from a batch). */
export interface MixedBatchViewInit {
  /** One entry per shown image. */
  views: ImageView[];
  /** Cells per side of each drawing. */
  cells: number;
  /** Image size in pixels [H, W]. */
  size: [number, number];
  /** The batch's summary fields. */
  info: Pick<MixedBatch, "mode" | "lambda" | "box" | "patchSize">;
  /** Class names by id. */
  classNames?: readonly string[];
}

/**
 * A notebook view of a mixed batch (plotly, HTML, SVG and text); made by
 * {@linkcode showMixedBatch}.
 *
 * @example
 * ```ts
 * import { MixedBatchView } from "tokenlab";
 * const view = new MixedBatchView({
 *   views: [{ rgb: new Uint8Array(12).fill(128), top: [{ id: 0, weight: 1 }], tokens: null }],
 *   cells: 2,
 *   size: [8, 8],
 *   info: { mode: "none", lambda: 1, box: null, patchSize: 4 },
 * });
 * console.log(view.toString());
 * ```
 */
export class MixedBatchView {
  /** One entry per shown image. */
  readonly views: readonly ImageView[];
  /** Cells per side of each drawing. */
  readonly cells: number;
  /** Image size in pixels [H, W]. */
  readonly size: readonly [number, number];
  /** The batch's summary fields. */
  readonly info: Pick<MixedBatch, "mode" | "lambda" | "box" | "patchSize">;
  /** Class names by id. */
  readonly classNames: readonly string[] | undefined;

  /** Wraps data read from a batch (use {@linkcode showMixedBatch}). */
  constructor(init: MixedBatchViewInit) {
    this.views = init.views;
    this.cells = init.cells;
    this.size = init.size;
    this.info = init.info;
    this.classNames = init.classNames;
  }

  #name(id: number): string {
    return this.classNames?.[id] ?? String(id);
  }

  /** One line per image: its top classes and token summary. */
  toString(): string {
    const b = this.info.box;
    const head = `${this.info.mode}, lambda ${this.info.lambda.toFixed(4)}${
      b
        ? `, box rows [${b.top}, ${b.bottom}) x columns [${b.left}, ${b.right}) px`
        : ""
    }`;
    const lines = this.views.map((v, i) => {
      const cls = v.top.map((t) => `${this.#name(t.id)} ${t.weight.toFixed(3)}`)
        .join(", ");
      const tok = v.tokens
        ? `; tokens: top classes {${
          v.tokens.classes.map((c) => this.#name(c)).join(", ")
        }}, mean top weight ${v.tokens.meanTop.toFixed(3)}`
        : "";
      return `image ${i}: ${cls}${tok}`;
    });
    return [head, ...lines].join("\n");
  }

  /** The token grid and the box, in pixel units (strokes kept unscaled). */
  #overlay(): string {
    const parts: string[] = [];
    const [H, W] = this.size;
    const p = this.info.patchSize;
    const grid = {
      stroke: "white",
      "stroke-opacity": "0.5",
      "vector-effect": "non-scaling-stroke",
      "stroke-width": 1,
    };
    if (p) {
      for (let y = p; y < H; y += p) parts.push(svgLine(0, y, W, y, grid));
      for (let x = p; x < W; x += p) parts.push(svgLine(x, 0, x, H, grid));
    }
    const b = this.info.box;
    if (b) {
      parts.push(
        svgRect(b.left, b.top, b.right - b.left, b.bottom - b.top, {
          fill: "none",
          stroke: "red",
          "vector-effect": "non-scaling-stroke",
          "stroke-width": 2,
        }),
      );
    }
    return parts.join("");
  }

  /** A self-contained SVG: the images in a row with box and token grid. */
  svg(): string {
    const n = this.cells, px = Math.max(4, Math.floor(144 / n));
    const side = n * px, gap = 8;
    const [H, W] = this.size;
    const parts: string[] = [];
    this.views.forEach((v, i) => {
      const cells: string[] = [];
      for (let r = 0; r < n; r++) {
        for (let c = 0; c < n; c++) {
          const o = (r * n + c) * 3;
          cells.push(
            svgCell(
              r,
              c,
              px,
              `rgb(${v.rgb[o]},${v.rgb[o + 1]},${v.rgb[o + 2]})`,
            ),
          );
        }
      }
      const label = `${i}: ${
        v.top.slice(0, 2).map((t) =>
          `${this.#name(t.id)} ${t.weight.toFixed(2)}`
        ).join(", ")
      }`;
      // The overlay is drawn in pixel units scaled to the drawing.
      parts.push(
        svgElement(
          "g",
          { transform: `translate(${i * (side + gap)},0)` },
          cells.join("") +
            svgElement(
              "g",
              { transform: `scale(${side / W},${side / H})` },
              this.#overlay(),
            ) +
            svgText(label, { x: 2, y: side + 14, "font-size": 11 }),
        ),
      );
    });
    const width = this.views.length * (side + gap);
    return svgDocument(width, side + 20, parts.join(""));
  }

  /** The plotly figure: one image trace per image, box and grid as shapes. */
  figure(): { data: unknown[]; layout: Record<string, unknown> } {
    const n = this.cells, k = this.views.length;
    const [H, W] = this.size;
    const data: unknown[] = [];
    const layout: Record<string, unknown> = {
      title: {
        text: `${this.info.mode}, lambda ${this.info.lambda.toFixed(3)}`,
      },
      width: Math.min(1000, 160 * k + 40),
      height: 240,
      margin: { l: 20, r: 20, t: 40, b: 20 },
      showlegend: false,
    };
    const shapes: unknown[] = [];
    this.views.forEach((v, i) => {
      const ax = plotlyAxisSuffix(i);
      data.push({
        type: "image",
        z: plotlyRgbRows(v.rgb, n, n),
        x0: W / n / 2,
        dx: W / n,
        y0: H / n / 2,
        dy: H / n,
        xaxis: `x${ax}`,
        yaxis: `y${ax}`,
        hovertemplate: `image ${i}<extra></extra>`,
      });
      const lo = i / k, hi = (i + 1) / k - 0.02;
      layout[`xaxis${ax}`] = {
        domain: [lo, hi],
        range: [0, W],
        showticklabels: false,
        showgrid: false,
        title: { text: v.top[0] ? this.#name(v.top[0].id) : "" },
      };
      layout[`yaxis${ax}`] = {
        range: [H, 0],
        showticklabels: false,
        showgrid: false,
        scaleanchor: `x${ax}`,
      };
      const b = this.info.box;
      if (b) {
        shapes.push({
          type: "rect",
          xref: `x${ax}`,
          yref: `y${ax}`,
          x0: b.left,
          x1: b.right,
          y0: b.top,
          y1: b.bottom,
          line: { color: "red", width: 2 },
        });
      }
    });
    layout.shapes = shapes;
    return { data, layout };
  }

  /** The Jupyter bundle: plotly, HTML (SVG as an image), SVG, text. */
  [Symbol.for("Jupyter.display")](): Record<string, unknown> {
    return drawingBundle(this, "mixed batch");
  }
}

function topK(
  row: ArrayLike<number>,
  k: number,
): { id: number; weight: number }[] {
  const ids = Array.from({ length: row.length }, (_, i) => i);
  ids.sort((a, b) => row[b] - row[a] || a - b);
  return ids.slice(0, k).map((id) => ({ id, weight: row[id] }));
}

/**
 * Reads a mixed batch into a notebook view: images with the box and the
 * token grid, top mixed class targets, and a token target summary.
 *
 * @example
 * ```ts
 * import { initBackend, mixupCutmix, Rng, showMixedBatch, tf } from "tokenlab";
 * await initBackend();
 * const images = tf.randomUniform([2, 16, 16, 3], 0, 1, "float32", 1) as tf.Tensor4D;
 * const classTargets = tf.eye(2) as tf.Tensor2D;
 * const mixed = mixupCutmix({ images, classTargets }, new Rng(3), { mixupAlpha: 0, patchSize: 4 });
 * const view = await showMixedBatch(mixed, { classNames: ["cat", "dog"] });
 * console.log(view.toString());
 * mixed.dispose();
 * tf.dispose([images, classTargets]);
 * ```
 */
export async function showMixedBatch(
  batch: MixedBatch,
  options: ShowMixedBatchOptions = {},
): Promise<MixedBatchView> {
  const { maxImages = 8, topK: k = 3, cells = 24 } = options;
  const [B, H, W, Ch] = batch.images.shape;
  const shown = Math.min(B, maxImages);
  const pix = await batch.images.data();
  const cls = await batch.classTargets.data();
  const C = batch.classTargets.shape[1];
  const tok = batch.tokenTargets ? await batch.tokenTargets.data() : null;
  const N = batch.tokenTargets?.shape[1] ?? 0;
  let [lo, hi] = options.range ?? [Infinity, -Infinity];
  if (options.range === undefined) {
    for (let i = 0; i < shown * H * W * Ch; i++) {
      lo = Math.min(lo, pix[i]);
      hi = Math.max(hi, pix[i]);
    }
  }
  const span = hi > lo ? hi - lo : 1;
  const n = Math.min(cells, H, W);
  const views: ImageView[] = [];
  for (let b = 0; b < shown; b++) {
    const rgb = new Uint8Array(n * n * 3);
    for (let r = 0; r < n; r++) {
      for (let c = 0; c < n; c++) {
        const y = Math.floor(((r + 0.5) * H) / n);
        const x = Math.floor(((c + 0.5) * W) / n);
        const o = ((b * H + y) * W + x) * Ch;
        for (let ch = 0; ch < 3; ch++) {
          const v = pix[o + Math.min(ch, Ch - 1)];
          rgb[(r * n + c) * 3 + ch] = Math.round(
            255 * Math.min(1, Math.max(0, (v - lo) / span)),
          );
        }
      }
    }
    let tokens: ImageView["tokens"] = null;
    if (tok) {
      const classes = new Set<number>();
      let sumTop = 0;
      for (let t = 0; t < N; t++) {
        const [best] = topK(
          tok.subarray((b * N + t) * C, (b * N + t + 1) * C),
          1,
        );
        classes.add(best.id);
        sumTop += best.weight;
      }
      tokens = {
        classes: [...classes].sort((a, b) => a - b),
        meanTop: sumTop / N,
      };
    }
    views.push({ rgb, top: topK(cls.subarray(b * C, (b + 1) * C), k), tokens });
  }
  return new MixedBatchView({
    views,
    cells: n,
    size: [H, W],
    info: {
      mode: batch.mode,
      lambda: batch.lambda,
      box: batch.box,
      patchSize: batch.patchSize,
    },
    classNames: options.classNames,
  });
}
