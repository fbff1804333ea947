/**
 * Escaping text for the markup views write: XML and HTML (SVG documents,
 * attributes, HTML fallbacks) and Markdown (table cells that show as
 * written).
 *
 * @module
 */

/**
 * Escapes text for XML and HTML attributes and content.
 *
 * @example
 * ```ts
 * import { escapeXml } from "tokenlab/view/escape.ts";
 * console.log(escapeXml('a < b & "c"')); // a &lt; b &amp; &quot;c&quot;
 * ```
 */
export function escapeXml(s: string): string {
  return s.replace(
    /[<>&"]/g,
    (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;" })[c]!,
  );
}

/**
 * Escapes text for a Markdown table cell so it shows as written: Markdown's
 * inline syntax, HTML, `$` (notebook front ends read it as math) and `|`
 * (a cell border); line breaks become spaces. Brackets are escaped only
 * where they would open a link (`[text](`), and an underscore inside a word
 * is left alone (it cannot start emphasis): shapes and `lvvit_s` read as
 * written.
 *
 * @example
 * ```ts
 * import { escapeMarkdownCell } from "tokenlab/view/escape.ts";
 * console.log(escapeMarkdownCell("lvvit_s | $5 *")); // lvvit_s \| \$5 \*
 * ```
 */
export function escapeMarkdownCell(s: string): string {
  return s.replace(/\r?\n/g, " ")
    .replace(/[\\`*<>&|$~]|\[(?=[^\]]*\]\()/g, (c) => `\\${c}`)
    .replace(/(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])/g, "\\_");
}
