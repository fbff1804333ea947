/**
 * SVG primitives: an element with its attributes in the order given (values
 * escaped), text, lines, rectangles, images, heatmap cells, polylines and
 * the document around them. Views build their drawings from these, so
 * every SVG the kit writes is escaped the same way.
 *
 * @module
 */

import { escapeXml } from "./escape.ts";

/** Attributes of an SVG element, written in insertion order; undefined ones are left out. */
export type SvgAttributes = Readonly<
  Record<string, string | number | undefined>
>;

/**
 * An SVG element: attributes in the order given (values escaped), and
 * `content` (markup, not escaped) inside; without content the element
 * closes itself.
 *
 * @example
 * ```ts
 * import { svgElement } from "tokenlab/view/svg.ts";
 * console.log(svgElement("circle", { cx: 5, cy: 5, r: 2, fill: "red" }));
 * // <circle cx="5" cy="5" r="2" fill="red"/>
 * ```
 */
export function svgElement(
  tag: string,
  attributes: SvgAttributes = {},
  content?: string,
): string {
  let open = `<${tag}`;
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== undefined) open += ` ${name}="${escapeXml(String(value))}"`;
  }
  return content === undefined ? `${open}/>` : `${open}>${content}</${tag}>`;
}

/**
 * A `<text>` element holding `text` (escaped).
 *
 * @example
 * ```ts
 * import { svgText } from "tokenlab/view/svg.ts";
 * console.log(svgText("a < b", { x: 1, y: 10 })); // <text x="1" y="10">a &lt; b</text>
 * ```
 */
export function svgText(text: string, attributes: SvgAttributes = {}): string {
  return svgElement("text", attributes, escapeXml(text));
}

/**
 * A `<line>` from (x1, y1) to (x2, y2) with its stroke attributes.
 *
 * @example
 * ```ts
 * import { svgLine } from "tokenlab/view/svg.ts";
 * console.log(svgLine(0, 1, 10, 1, { stroke: "white" }));
 * // <line x1="0" y1="1" x2="10" y2="1" stroke="white"/>
 * ```
 */
export function svgLine(
  x1: number | string,
  y1: number | string,
  x2: number | string,
  y2: number | string,
  attributes: SvgAttributes = {},
): string {
  return svgElement("line", { x1, y1, x2, y2, ...attributes });
}

/**
 * A `<rect>` at (x, y) of a width and height, with its paint attributes.
 *
 * @example
 * ```ts
 * import { svgRect } from "tokenlab/view/svg.ts";
 * console.log(svgRect(0, 0, 4, 2, { fill: "none", stroke: "black" }));
 * // <rect x="0" y="0" width="4" height="2" fill="none" stroke="black"/>
 * ```
 */
export function svgRect(
  x: number,
  y: number,
  width: number,
  height: number,
  attributes: SvgAttributes = {},
): string {
  return svgElement("rect", { x, y, width, height, ...attributes });
}

/**
 * One heatmap cell: the square of side `size` at (row, column), filled,
 * with a tooltip (`<title>`, escaped) when given.
 *
 * @example
 * ```ts
 * import { svgCell } from "tokenlab/view/svg.ts";
 * console.log(svgCell(1, 2, 10, "#ff0000", "cat"));
 * // <rect x="20" y="10" width="10" height="10" fill="#ff0000"><title>cat</title></rect>
 * ```
 */
export function svgCell(
  row: number,
  column: number,
  size: number,
  fill: string,
  title?: string,
): string {
  return svgElement(
    "rect",
    { x: column * size, y: row * size, width: size, height: size, fill },
    title === undefined ? undefined : `<title>${escapeXml(title)}</title>`,
  );
}

/**
 * An `<image>` drawn pixelated (each source pixel a sharp square) from a
 * URI, usually a PNG data URI.
 *
 * @example
 * ```ts
 * import { svgImage } from "tokenlab/view/svg.ts";
 * console.log(svgImage(0, 0, 32, 32, "data:image/png;base64,AA=="));
 * ```
 */
export function svgImage(
  x: number,
  y: number,
  width: number,
  height: number,
  href: string,
): string {
  return svgElement("image", {
    x,
    y,
    width,
    height,
    style: "image-rendering:pixelated",
    href,
  });
}

/**
 * The `points` of a polyline: pixel coordinates with one decimal.
 *
 * @example
 * ```ts
 * import { svgPoints } from "tokenlab/view/svg.ts";
 * console.log(svgPoints([[0, 1.25], [2, 3]])); // 0.0,1.3 2.0,3.0
 * ```
 */
export function svgPoints(
  points: readonly (readonly [number, number])[],
): string {
  return points.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" ");
}

/**
 * A self-contained SVG document of a width and height (the view box the
 * same), with more attributes on the root when given.
 *
 * @example
 * ```ts
 * import { svgDocument, svgRect } from "tokenlab/view/svg.ts";
 * console.log(svgDocument(4, 2, svgRect(0, 0, 4, 2, { fill: "red" })));
 * ```
 */
export function svgDocument(
  width: number,
  height: number,
  content: string,
  attributes: SvgAttributes = {},
): string {
  return svgElement("svg", {
    xmlns: "http://www.w3.org/2000/svg",
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    ...attributes,
  }, content);
}
