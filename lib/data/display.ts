/**
 * Batches that show themselves in a notebook: an image grid with each
 * image's label and, when the batch carries score maps, the token labels the
 * crop receives (the top class of the map at every token centre) blended
 * over the image. Jupyter gets plotly image traces, the SVG (images embedded
 * as PNG) as an HTML image, the SVG, and text.
 *
 * @module
 */

import { blendClassGrid } from "../labels/display.ts";
import { drawingBundle } from "../view/bundle.ts";
import { dataUri } from "../view/data_uri.ts";
import { plotlyAxisSuffix } from "../view/plotly.ts";
import { svgDocument, svgImage, svgText } from "../view/svg.ts";
import type { Batch } from "./loader.ts";
import { encodePng } from "../view/png.ts";

/** Options of {@linkcode showBatch}. */
export interface ShowBatchOptions {
  /** Images shown (default 16). */
  maxImages?: number;
  /** Images per row (default 8). */
  columns?: number;
  /** Token grid side for the label overlay (default: image side / 16, at least 2). */
  tokens?: number;
  /** Overlay opacity (default 0.45; 0 hides the overlay row). */
  opacity?: number;
  /** Drawn size of each image in pixels (default 96). */
  tileSize?: number;
}

/** One shown image. */
export interface BatchTile {
  /** Dataset key. */
  key: string;
  /** Label id (-1 for none). */
  label: number;
  /** PNG of the image (denormalised). */
  png: Uint8Array;
  /** PNG of the image with the token-label overlay, when the batch has maps. */
  overlayPng?: Uint8Array;
  /** Token labels (top class per token, row-major; -1 where the map gives no class). */
  tokenLabels?: Int32Array;
}

/**
 * One tile of an SVG image grid: the PNG images stacked down from (x, y),
 * each `size` square (an absent one leaves its place empty), and the
 * caption under `rows` of them.
 *
 * @example
 * ```ts
 * import { svgImageTile } from "tokenlab";
 * const png = new Uint8Array([137, 80, 78, 71]);
 * console.log(svgImageTile(0, 0, 32, [png, undefined], "cat", 2).includes(">cat<")); // true
 * ```
 */
export function svgImageTile(
  x: number,
  y: number,
  size: number,
  images: readonly (Uint8Array | undefined)[],
  caption: string,
  rows: number,
): string {
  const parts: string[] = [];
  images.forEach((png, k) => {
    if (png) {
      parts.push(
        svgImage(x, y + k * size, size, size, dataUri("image/png", png)),
      );
    }
  });
  parts.push(
    svgText(caption, { x: x + 1, y: y + rows * size + 11, "font-size": 10 }),
  );
  return parts.join("");
}

/**
 * A plotly image trace of a PNG on the axes of suffix `ax` (`""`, `"2"`,
 * ... as `plotlyAxisSuffix` gives them), without hover text: one image of
 * a plotly image grid.
 *
 * @example
 * ```ts
 * import { plotlyImageTrace } from "tokenlab";
 * const trace = plotlyImageTrace(new Uint8Array([137, 80, 78, 71]), "2");
 * console.log(trace.xaxis, trace.yaxis); // x2 y2
 * ```
 */
export function plotlyImageTrace(
  png: Uint8Array,
  ax: string,
): Record<string, unknown> {
  return {
    type: "image",
    source: dataUri("image/png", png),
    xaxis: `x${ax}`,
    yaxis: `y${ax}`,
    hoverinfo: "skip",
  };
}

/** A notebook view of a batch; made by {@linkcode showBatch}. */
export class BatchView {
  /** The shown images. */
  readonly tiles: readonly BatchTile[];
  /** Class names. */
  readonly classes: readonly string[];
  /** Image size [height, width]. */
  readonly size: readonly [number, number];
  /** Images per row. */
  readonly columns: number;
  /** Drawn tile size. */
  readonly tileSize: number;
  /** Token grid side of the overlay (0 without maps). */
  readonly tokens: number;
  /** Batch summary line. */
  readonly summary: string;

  /** Wraps prepared tiles (use {@linkcode showBatch}). */
  constructor(init: {
    tiles: BatchTile[];
    classes: readonly string[];
    size: [number, number];
    columns: number;
    tileSize: number;
    tokens: number;
    summary: string;
  }) {
    this.tiles = init.tiles;
    this.classes = init.classes;
    this.size = init.size;
    this.columns = init.columns;
    this.tileSize = init.tileSize;
    this.tokens = init.tokens;
    this.summary = init.summary;
  }

  #name(id: number): string {
    return id < 0 ? "(none)" : this.classes[id] ?? String(id);
  }

  #tokenSummary(t: BatchTile): string {
    if (!t.tokenLabels) return "";
    const counts = new Map<number, number>();
    for (const id of t.tokenLabels) counts.set(id, (counts.get(id) ?? 0) + 1);
    const n = t.tokenLabels.length;
    const own = counts.get(t.label) ?? 0;
    const top = [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0])
      .slice(0, 3).map(([id, c]) => `${this.#name(id)} ${c}/${n}`);
    return `; tokens: ${top.join(", ")} (label's class on ${
      Math.round((100 * own) / n)
    } %)`;
  }

  /** One line per image: key, label, and the token labels' top classes. */
  toString(): string {
    return [
      this.summary,
      ...this.tiles.map((t, i) =>
        `${i}: ${t.key}: ${this.#name(t.label)}${this.#tokenSummary(t)}`
      ),
    ].join("\n");
  }

  /** A self-contained SVG: the image grid (and overlay rows), labelled. */
  svg(): string {
    const s = this.tileSize, gap = 6, text = 14;
    const cols = Math.min(this.columns, this.tiles.length);
    const rowsPer = this.tiles.some((t) => t.overlayPng) ? 2 : 1;
    const rows = Math.ceil(this.tiles.length / cols);
    const rowH = rowsPer * s + text + gap;
    const width = cols * (s + gap);
    const height = rows * rowH;
    const parts: string[] = [];
    this.tiles.forEach((t, i) => {
      const x = (i % cols) * (s + gap), y = Math.floor(i / cols) * rowH;
      parts.push(
        svgImageTile(
          x,
          y,
          s,
          [t.png, t.overlayPng],
          this.#name(t.label).slice(0, Math.floor(s / 6)),
          rowsPer,
        ),
      );
    });
    return svgDocument(width, height, parts.join(""));
  }

  /** The plotly figure: one image trace per tile (overlay tiles below). */
  figure(): { data: unknown[]; layout: Record<string, unknown> } {
    const cols = Math.min(this.columns, this.tiles.length);
    const withOverlay = this.tiles.some((t) => t.overlayPng);
    const rowsPer = withOverlay ? 2 : 1;
    const rows = Math.ceil(this.tiles.length / cols) * rowsPer;
    const [H, W] = this.size;
    const data: unknown[] = [];
    const layout: Record<string, unknown> = {
      width: Math.min(1100, cols * 120 + 40),
      height: rows * 130 + 40,
      margin: { l: 10, r: 10, t: 30, b: 10 },
      showlegend: false,
      title: { text: this.summary, font: { size: 12 } },
    };
    let axis = 0;
    const add = (png: Uint8Array, row: number, col: number, title: string) => {
      const ax = plotlyAxisSuffix(axis++);
      data.push(plotlyImageTrace(png, ax));
      const x0 = col / cols, y1 = 1 - row / rows;
      layout[`xaxis${ax}`] = {
        domain: [x0, x0 + 0.95 / cols],
        range: [0, W],
        visible: false,
        title: { text: title },
      };
      layout[`yaxis${ax}`] = {
        domain: [y1 - 0.9 / rows, y1],
        range: [H, 0],
        visible: false,
        scaleanchor: `x${ax}`,
      };
    };
    this.tiles.forEach((t, i) => {
      const r = Math.floor(i / cols) * rowsPer, c = i % cols;
      add(t.png, r, c, this.#name(t.label));
      if (t.overlayPng) add(t.overlayPng, r + 1, c, "token labels");
    });
    return { data, layout };
  }

  /** The Jupyter bundle: plotly, HTML (SVG as an image), SVG, text. */
  [Symbol.for("Jupyter.display")](): Record<string, unknown> {
    return drawingBundle(this, "batch");
  }
}

/**
 * A notebook view of a batch: the images (denormalised with the batch's
 * mean and std), their labels, and with score maps the token labels of the
 * crop: at each token centre of an S x S grid over the crop, the top class
 * of the (flipped and augmented) map, blended over the image; tokens whose
 * map cell holds no score (moved in from outside) are left clear.
 *
 * @example
 * ```ts
 * import { DataLoader } from "tokenlab/data/loader.ts";
 * import { showBatch } from "tokenlab/data/display.ts";
 * const loader = await DataLoader.open(
 *   { data: { kind: "synthetic", options: { size: 32, count: 4 } }, transform: { kind: "eval", size: 32, cropPct: 1 } },
 *   { batchSize: 4 },
 * );
 * for await (const batch of loader.epoch(0)) console.log((await showBatch(batch)).toString());
 * loader.close();
 * ```
 */
export async function showBatch(
  batch: Batch,
  options: ShowBatchOptions = {},
): Promise<BatchView> {
  const {
    maxImages = 16,
    columns = 8,
    opacity = 0.45,
    tileSize = 96,
  } = options;
  const { height: H, width: W } = batch;
  const S = options.tokens ?? Math.max(2, Math.round(Math.min(H, W) / 16));
  const shown = Math.min(batch.size, maxImages);
  const { mean, std } = batch.normalization;
  const tiles: BatchTile[] = [];
  const plane = H * W * 3;
  for (let b = 0; b < shown; b++) {
    const rgb = new Uint8Array(plane);
    for (let i = 0; i < plane; i++) {
      const c = i % 3;
      const v = (batch.images[b * plane + i] * std[c] + mean[c]) * 255;
      rgb[i] = v < 0 ? 0 : v > 255 ? 255 : Math.round(v);
    }
    const tile: BatchTile = {
      key: batch.keys[b],
      label: batch.labels[b],
      png: await encodePng(rgb, W, H),
    };
    const map = batch.maps?.[b];
    if (map && opacity > 0) {
      const box = batch.boxes ? batch.boxes.subarray(b * 4, b * 4 + 4) : [
        0,
        0,
        1,
        1,
      ];
      const ids = new Int32Array(S * S);
      for (let i = 0; i < S; i++) {
        for (let j = 0; j < S; j++) {
          const y = box[0] + ((i + 0.5) / S) * box[2];
          const x = box[1] + ((j + 0.5) / S) * box[3];
          const r = Math.min(
            map.height - 1,
            Math.max(0, Math.floor(y * map.height)),
          );
          const c = Math.min(
            map.width - 1,
            Math.max(0, Math.floor(x * map.width)),
          );
          const cell = r * map.width + c; // rank 0 plane
          ids[i * S + j] = map.scores[cell] === 0 ? -1 : map.ids[cell];
        }
      }
      const over = blendClassGrid(
        rgb,
        W,
        H,
        { ids, rows: S, cols: S },
        opacity,
      );
      tile.overlayPng = await encodePng(over, W, H);
      tile.tokenLabels = ids;
    }
    tiles.push(tile);
  }
  const summary =
    `epoch ${batch.epoch}, batch ${batch.step}: ${batch.size} images ${H} x ${W}${
      batch.maps ? `, score maps (token labels on a ${S} x ${S} grid)` : ""
    }${batch.skipped.length ? `, ${batch.skipped.length} skipped` : ""}`;
  return new BatchView({
    tiles,
    classes: batch.classes,
    size: [H, W],
    columns,
    tileSize,
    tokens: batch.maps ? S : 0,
    summary,
  });
}
