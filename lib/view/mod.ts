/**
 * The view layer: how results draw themselves, below every domain that
 * has something to show. Figure bundles for Jupyter (plotly with HTML,
 * SVG and text fallbacks), SVG primitives, panel line charts, one table
 * model rendered as text, Markdown and HTML, the class palette, escaping,
 * data URIs and PNG encoding. Domains say what to draw; this says how.
 * Nothing here imports from the domains (data, labels, mixing, train,
 * models, report).
 *
 * ```ts
 * import { figureBundle, svgDocument, svgText } from "tokenlab/view/mod.ts";
 * const svg = svgDocument(120, 20, svgText("hello", { x: 4, y: 14 }));
 * const bundle = figureBundle({ plotly: { data: [] }, svg, text: "hello", alt: "hello" });
 * console.log(Object.keys(bundle));
 * ```
 *
 * @module
 */

export * from "./bundle.ts";
export * from "./chart.ts";
export * from "./data_uri.ts";
export * from "./escape.ts";
export * from "./number_format.ts";
export * from "./palette.ts";
export * from "./plotly.ts";
export * from "./png.ts";
export * from "./svg.ts";
export * from "./table.ts";
