/**
 * A few score maps of a store beside their images, for checking an
 * annotator's maps before training on them: each image, its map's top
 * class per cell blended over it, and whether the map's pooled label (the
 * class token's soft label of the whole image, RoIAlign 1 x 1 as training
 * pools it) has the image's label on top. Jupyter gets plotly image traces,
 * the SVG (images embedded as PNG) as an HTML image, the SVG, and text.
 *
 * @module
 */

import { Rng } from "../random.ts";
import { plotlyImageTrace, svgImageTile } from "../data/display.ts";
import type { ImageDataset, RgbImage } from "../data/image.ts";
import { seededPermutation } from "../data/limit_sample.ts";
import { pooledTopClasses } from "../labels/agreement.ts";
import { blendClassGrid, scoreMapTopClasses } from "../labels/display.ts";
import { stackScoreMaps } from "../labels/pooling.ts";
import type { ScoreMapStore } from "../labels/store/reader.ts";
import { drawingBundle } from "../view/bundle.ts";
import { escapeXml } from "../view/escape.ts";
import { classColor } from "../view/palette.ts";
import { plotlyAxisSuffix } from "../view/plotly.ts";
import { encodePng } from "../view/png.ts";
import { svgDocument, svgRect, svgText } from "../view/svg.ts";

/** Options of {@linkcode showScoreMapGallery}. */
export interface ScoreMapGalleryOptions {
  /** Images shown (default 8, at most the store's size). */
  count?: number;
  /** Seed of the choice of images (default 0). */
  seed?: number;
  /** Images per row (default 8). */
  columns?: number;
  /** Opacity of the map's colours over the image (default 0.55). */
  opacity?: number;
  /** Drawn size of each image in the SVG, in pixels (default 96). */
  tileSize?: number;
}

/** One shown image and its map. */
export interface GalleryTile {
  /** The image's key (the same in the dataset and the store). */
  key: string;
  /** The image's label. */
  label: number;
  /** The top class of the map's pooled label (whole image, 1 x 1). */
  pooled: number;
  /** Cells of the map whose top class is the image's label. */
  cellsOfLabel: number;
  /** Cells of the map. */
  cells: number;
  /** The classes on top somewhere in the map (ids, ascending). */
  classesShown: number[];
  /** PNG of the image (the part the map covers). */
  png: Uint8Array;
  /** PNG of the same, the map's top class per cell blended over it. */
  mapPng: Uint8Array;
}

/** A notebook view of a few maps; made by {@linkcode showScoreMapGallery}. */
export class ScoreMapGallery {
  /** The shown images. */
  readonly tiles: readonly GalleryTile[];
  /** Class names by id. */
  readonly classes: readonly string[];
  /** Images per row. */
  readonly columns: number;
  /** Drawn tile size in the SVG. */
  readonly tileSize: number;
  /** One line saying what is shown. */
  readonly summary: string;

  /** Wraps prepared tiles (use {@linkcode showScoreMapGallery}). */
  constructor(init: {
    tiles: GalleryTile[];
    classes: readonly string[];
    columns: number;
    tileSize: number;
    summary: string;
  }) {
    this.tiles = init.tiles;
    this.classes = init.classes;
    this.columns = init.columns;
    this.tileSize = init.tileSize;
    this.summary = init.summary;
  }

  /** Shown images whose pooled label has their label on top. */
  get agreeing(): number {
    return this.tiles.filter((t) => t.pooled === t.label).length;
  }

  #name(id: number): string {
    return this.classes[id] ?? String(id);
  }

  /** The classes the shown maps name, in id order. */
  #shownClasses(): number[] {
    const ids = new Set<number>();
    for (const t of this.tiles) for (const id of t.classesShown) ids.add(id);
    return [...ids].sort((a, b) => a - b);
  }

  #caption(t: GalleryTile): string {
    return `${this.#name(t.label)} → ${this.#name(t.pooled)} ${
      t.pooled === t.label ? "✓" : "✗"
    }`;
  }

  /** One line per image: key, label, pooled label, cells of the label. */
  toString(): string {
    return [
      this.summary,
      ...this.tiles.map((t) =>
        `${t.key}: label ${this.#name(t.label)}, pooled label ${
          this.#name(t.pooled)
        } (${
          t.pooled === t.label ? "agrees" : "disagrees"
        }), ${t.cellsOfLabel}/${t.cells} cells of the label`
      ),
    ].join("\n");
  }

  /** A self-contained SVG: the images, the maps under them, captions. */
  svg(): string {
    const s = this.tileSize, gap = 6, text = 14;
    const cols = Math.max(1, Math.min(this.columns, this.tiles.length));
    const rowH = 2 * s + text + gap;
    const parts: string[] = [];
    const rows = Math.ceil(this.tiles.length / cols);
    this.tiles.forEach((t, i) => {
      const x = (i % cols) * (s + gap), y = Math.floor(i / cols) * rowH;
      parts.push(svgImageTile(x, y, s, [t.png, t.mapPng], this.#caption(t), 2));
    });
    // The colour legend: one swatch and name per class shown in a map.
    const legendY = rows * rowH;
    let x = 0, y = legendY;
    const width = cols * (s + gap);
    for (const id of this.#shownClasses()) {
      const name = this.#name(id).slice(0, 12);
      const w = 16 + 6 * name.length + 10;
      if (x + w > width && x > 0) {
        x = 0;
        y += 16;
      }
      parts.push(svgRect(x, y + 2, 10, 10, { fill: classColor(id) }));
      parts.push(svgText(name, { x: x + 13, y: y + 11, "font-size": 10 }));
      x += w;
    }
    return svgDocument(width, y + 18, parts.join(""));
  }

  /** The plotly figure: the images in one row, their maps in the row below. */
  figure(): { data: unknown[]; layout: Record<string, unknown> } {
    const cols = Math.max(1, Math.min(this.columns, this.tiles.length));
    const rows = Math.ceil(this.tiles.length / cols) * 2;
    const data: unknown[] = [];
    const annotations: unknown[] = [];
    const layout: Record<string, unknown> = {
      width: Math.min(1100, cols * 120 + 40),
      height: rows * 125 + 80,
      margin: { l: 10, r: 10, t: 40, b: 30 },
      showlegend: false,
      title: { text: this.summary, font: { size: 12 } },
      annotations,
    };
    let axis = 0;
    const add = (png: Uint8Array, row: number, col: number, label?: string) => {
      const ax = plotlyAxisSuffix(axis++);
      data.push(plotlyImageTrace(png, ax));
      const x0 = col / cols, y1 = 1 - row / rows;
      // Square pixels, the image centred in its cell (under its caption).
      layout[`xaxis${ax}`] = {
        domain: [x0, x0 + 0.95 / cols],
        visible: false,
        constrain: "domain",
      };
      layout[`yaxis${ax}`] = {
        domain: [y1 - 0.8 / rows, y1],
        visible: false,
        scaleanchor: `x${ax}`,
        constrain: "domain",
      };
      if (label !== undefined) {
        annotations.push({
          text: label,
          showarrow: false,
          xref: "paper",
          yref: "paper",
          x: x0 + 0.475 / cols,
          y: y1 - 0.8 / rows,
          yanchor: "top",
          font: { size: 11 },
        });
      }
    };
    this.tiles.forEach((t, i) => {
      const r = Math.floor(i / cols) * 2, c = i % cols;
      add(t.png, r, c);
      add(t.mapPng, r + 1, c, this.#caption(t));
    });
    annotations.push({
      text: this.#shownClasses().map((id) =>
        `<span style="color:${classColor(id)}">■</span> ${
          escapeXml(this.#name(id))
        }`
      ).join("  "),
      showarrow: false,
      xref: "paper",
      yref: "paper",
      x: 0,
      xanchor: "left",
      y: 0,
      yanchor: "top",
      yshift: -4,
      font: { size: 11 },
    });
    return { data, layout };
  }

  /** The Jupyter bundle: plotly, HTML (SVG as an image), SVG, text. */
  [Symbol.for("Jupyter.display")](): Record<string, unknown> {
    return drawingBundle(this, "score maps");
  }
}

/** The part of an image a map covers: all of it (squash), else the central square. */
function covered(
  image: RgbImage,
  mode: "resize-center-crop" | "squash",
  cropPct: number,
): RgbImage {
  if (mode === "squash") return image;
  const { width: w, height: h } = image;
  const side = Math.max(1, Math.round(Math.min(w, h) * cropPct));
  if (side === w && side === h) return image;
  const top = Math.floor((h - side) / 2), left = Math.floor((w - side) / 2);
  const data = new Uint8Array(side * side * 3);
  for (let y = 0; y < side; y++) {
    const from = ((top + y) * w + left) * 3;
    data.set(image.data.subarray(from, from + side * 3), y * side * 3);
  }
  return { width: side, height: side, data };
}

/**
 * Shows a seeded choice of a store's maps beside their images (read from
 * the dataset the store was made from, by key), with each map's pooled
 * label (whole image, 1 x 1, no smoothing; on the active backend) against
 * the image's label. The maps are drawn over the part of the image they
 * cover (all of it for `squash` stores, the central square otherwise).
 *
 * @example
 * ```ts
 * import { initBackend, openMnist, ScoreMapStore } from "tokenlab";
 * import { showScoreMapGallery } from "tokenlab/report/score_map_gallery.ts";
 * await initBackend();
 * const ds = await openMnist({ limit: 4 });
 * const dir = await Deno.makeTempDir();
 * const w = await ScoreMapStore.create(`${dir}/maps`, { k: 1, height: 2, width: 2, numClasses: 10, annotator: "toy", preprocessing: { mode: "squash", size: 28 }, scores: "logits" });
 * for (let i = 0; i < ds.size; i++) {
 *   await w.append(ds.key(i), { k: 1, height: 2, width: 2, scores: new Float32Array([3, 3, 3, 3]), ids: new Int32Array(4).fill(ds.label(i)) }, ds.label(i));
 * }
 * await w.commit();
 * using store = await ScoreMapStore.open(`${dir}/maps`);
 * const g = await showScoreMapGallery(store, ds, { count: 2 });
 * console.log(g.tiles.length, g.agreeing); // 2 2
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function showScoreMapGallery(
  store: ScoreMapStore,
  dataset: ImageDataset,
  options: ScoreMapGalleryOptions = {},
): Promise<ScoreMapGallery> {
  const { seed = 0, columns = 8, opacity = 0.55, tileSize = 96 } = options;
  const h = store.header;
  const count = Math.min(options.count ?? 8, store.size);
  // A seeded choice of distinct store entries, shown in store order.
  const order = seededPermutation(store.size, new Rng(seed));
  const chosen = Array.from(order.subarray(0, count)).sort((a, b) => a - b);
  const keys = await Promise.all(chosen.map((i) => store.keyAt(i)));
  const maps = await Promise.all(chosen.map((i) => store.read(i)));
  const byKey = new Map<string, number>();
  for (let i = 0; i < dataset.size; i++) byKey.set(dataset.key(i), i);
  const top = await pooledTopClasses(
    stackScoreMaps(maps),
    count,
    h.numClasses,
  );
  const mode = h.preprocessing.mode, cropPct = h.preprocessing.cropPct ?? 1;
  const tiles: GalleryTile[] = [];
  for (let j = 0; j < count; j++) {
    const i = byKey.get(keys[j]);
    if (i === undefined) {
      throw new RangeError(
        `score-map store ${store.path} holds key ${
          JSON.stringify(keys[j])
        }, which ${dataset.description} does not have; show the maps with the dataset they were made from`,
      );
    }
    const label = dataset.label(i) ?? -1;
    const image = covered(await dataset.image(i), mode, cropPct);
    const map = maps[j];
    const cells = map.height * map.width;
    let cellsOfLabel = 0;
    const shown = new Set<number>();
    // Rank 0's class per cell; -1 (a blank cell, all scores 0) is left clear.
    const ids = scoreMapTopClasses(map);
    for (const id of ids) {
      if (id < 0) continue;
      if (id === label) cellsOfLabel++;
      shown.add(id);
    }
    tiles.push({
      key: keys[j],
      label,
      pooled: top[j],
      cellsOfLabel,
      cells,
      classesShown: [...shown].sort((a, b) => a - b),
      png: await encodePng(image.data, image.width, image.height),
      mapPng: await encodePng(
        blendClassGrid(
          image.data,
          image.width,
          image.height,
          { ids, rows: map.height, cols: map.width },
          opacity,
        ),
        image.width,
        image.height,
      ),
    });
  }
  const classes = h.classNames ?? dataset.classes;
  const agree = tiles.filter((t) => t.pooled === t.label).length;
  return new ScoreMapGallery({
    tiles,
    classes,
    columns,
    tileSize,
    summary:
      `${count} of ${store.size} maps (${h.height} x ${h.width}, top ${h.k}): image above, top class per cell below; label → pooled label, ${agree} of ${count} agree`,
  });
}
