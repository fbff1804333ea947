/**
 * What every result that draws itself hands to Jupyter: a plotly figure,
 * an HTML fallback holding the SVG as an image (nbconvert's HTML strips
 * inline SVG elements), the SVG, and text.
 *
 * @module
 */

import { dataUri } from "./data_uri.ts";
import { escapeXml } from "./escape.ts";

/**
 * The MIME type of a plotly figure in a Jupyter display bundle.
 *
 * @example
 * ```ts
 * import { PLOTLY_MIME } from "tokenlab/view/bundle.ts";
 * console.log(PLOTLY_MIME); // application/vnd.plotly.v1+json
 * ```
 */
export const PLOTLY_MIME = "application/vnd.plotly.v1+json";

/**
 * The class of the static image in a figure bundle's HTML: a report that
 * draws the plotly figure itself drops the element with this class.
 *
 * @example
 * ```ts
 * import { STATIC_FALLBACK_CLASS } from "tokenlab";
 * console.log(STATIC_FALLBACK_CLASS); // tokenlab-static
 * ```
 */
export const STATIC_FALLBACK_CLASS = "tokenlab-static";

/** The parts of a plotly display bundle (see {@linkcode plotlyBundle}). */
export interface PlotlyBundleParts {
  /** The plotly figure (data and layout). */
  plotly: unknown;
  /** The HTML fallback. */
  html: string;
  /** A self-contained SVG of the same picture, when there is one. */
  svg?: string;
  /** A text rendering. */
  text: string;
}

/**
 * A Jupyter display bundle of a plotly figure with its fallbacks: plotly,
 * HTML, the SVG when given, and text (in that order).
 *
 * @example
 * ```ts
 * import { plotlyBundle } from "tokenlab/view/bundle.ts";
 * const b = plotlyBundle({ plotly: { data: [] }, html: "<p>a figure</p>", text: "a figure" });
 * console.log(Object.keys(b)); // [ "application/vnd.plotly.v1+json", "text/html", "text/plain" ]
 * ```
 */
export function plotlyBundle(
  parts: PlotlyBundleParts,
): Record<string, unknown> {
  return {
    [PLOTLY_MIME]: parts.plotly,
    "text/html": parts.html,
    ...(parts.svg === undefined ? {} : { "image/svg+xml": parts.svg }),
    "text/plain": parts.text,
  };
}

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
  return plotlyBundle({
    plotly: parts.plotly,
    // The class marks the static fallback, which the HTML report replaces
    // with the interactive plotly figure.
    html: `<img class="${STATIC_FALLBACK_CLASS}" alt="${
      escapeXml(parts.alt)
    }" src="${dataUri("image/svg+xml", parts.svg)}"/>${parts.htmlAfter ?? ""}`,
    svg: parts.svg,
    text: parts.text,
  });
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
 *
 * @example
 * ```ts
 * import { drawingBundle } from "tokenlab";
 * const view = { figure: () => ({ data: [] }), svg: () => "<svg/>", toString: () => "nothing" };
 * console.log(drawingBundle(view, "an empty view")["text/plain"]); // nothing
 * ```
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
