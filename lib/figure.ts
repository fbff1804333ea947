/**
 * What every result that draws itself hands to Jupyter: a plotly figure,
 * an HTML fallback holding the SVG as an image (nbconvert's HTML strips
 * inline SVG elements), the SVG, and text.
 *
 * @module
 */

import { toBase64 } from "./data/png.ts";

/** Escapes text for XML and HTML attributes and content. */
export function escapeXml(s: string): string {
  return s.replace(
    /[<>&"]/g,
    (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;" })[c]!,
  );
}

/** A qualitative palette (hex colours); class c takes colour c mod 20. */
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
 * The class of the static image in a figure bundle's HTML: a report that
 * draws the plotly figure itself drops the element with this class.
 */
export const STATIC_FALLBACK_CLASS = "tokenlab-static";

/** The parts of a figure's display bundle. */
export interface FigureParts {
  /** The plotly figure (data and layout). */
  plotly: unknown;
  /** A self-contained SVG of the same picture. */
  svg: string;
  /** A text rendering. */
  text: string;
  /** The image's alt text in the HTML fallback. */
  alt: string;
  /** HTML appended after the image (already escaped). */
  htmlAfter?: string;
}

/**
 * A Jupyter display bundle for a figure: plotly, HTML (the SVG as a
 * base64 data-URI image), SVG and text.
 *
 * @example
 * ```ts
 * import { figureBundle } from "tokenlab";
 * const b = figureBundle({ plotly: { data: [] }, svg: "<svg/>", text: "empty", alt: "nothing" });
 * console.log(Object.keys(b));
 * ```
 */
export function figureBundle(parts: FigureParts): Record<string, unknown> {
  const base64 = toBase64(new TextEncoder().encode(parts.svg));
  return {
    "application/vnd.plotly.v1+json": parts.plotly,
    // The class marks the static fallback, which the HTML report replaces
    // with the interactive plotly figure.
    "text/html": `<img class="${STATIC_FALLBACK_CLASS}" alt="${
      escapeXml(parts.alt)
    }" src="data:image/svg+xml;base64,${base64}"/>${parts.htmlAfter ?? ""}`,
    "image/svg+xml": parts.svg,
    "text/plain": parts.text,
  };
}

/** A result that can draw itself: a plotly figure, an SVG, and text. */
export interface SelfDrawing {
  /** The plotly figure. */
  figure(): unknown;
  /** A self-contained SVG of the same picture. */
  svg(): string;
  /** A text rendering. */
  toString(): string;
}

/**
 * The Jupyter bundle of a {@linkcode SelfDrawing} view: plotly, HTML (the
 * SVG as an image, followed by the text, so the HTML report keeps it), SVG
 * and text.
 */
export function drawingBundle(
  view: SelfDrawing,
  alt: string,
): Record<string, unknown> {
  const text = view.toString();
  return figureBundle({
    plotly: view.figure(),
    svg: view.svg(),
    text,
    alt,
    htmlAfter: `<pre>${escapeXml(text)}</pre>`,
  });
}
