/**
 * One table model (a header, rows of cell text, an alignment per column)
 * and its renderings: aligned plain text, a Markdown pipe table and an HTML
 * table. Domain tables decide what the cells say; these decide how a table
 * looks, so every table the kit shows is laid out and escaped the same way.
 *
 * @module
 */

import { escapeMarkdownCell, escapeXml } from "./escape.ts";

/** The alignment of a table column. */
export type ColumnAlign = "left" | "right";

/** A table as text cells: what every rendering draws. */
export interface TableModel {
  /** Header text per column. */
  header: readonly string[];
  /** Rows of cell text, one entry per column. */
  rows: readonly (readonly string[])[];
  /** Alignment per column. */
  align: readonly ColumnAlign[];
}

/** Options of {@linkcode tableText}. */
export interface TableTextOptions {
  /** A rule of dashes under the header (default false). */
  rule?: boolean;
}

/**
 * Aligned plain text: columns padded to their widest cell, two spaces
 * apart, trailing spaces trimmed; a rule of dashes under the header when
 * asked.
 *
 * @example
 * ```ts
 * import { tableText } from "tokenlab/view/table.ts";
 * console.log(tableText({ header: ["model", "top-1"], rows: [["tiny", "81.20"]], align: ["left", "right"] }, { rule: true }));
 * ```
 */
export function tableText(
  table: TableModel,
  options: TableTextOptions = {},
): string {
  const { header, rows, align } = table;
  const widths = header.map((h, c) =>
    Math.max(h.length, ...rows.map((r) => (r[c] ?? "").length))
  );
  const line = (cells: readonly string[]) =>
    cells.map((s, c) =>
      align[c] === "right" ? s.padStart(widths[c]) : s.padEnd(widths[c])
    ).join("  ").trimEnd();
  return [
    line(header),
    ...(options.rule ? [widths.map((w) => "-".repeat(w)).join("  ")] : []),
    ...rows.map(line),
  ].join("\n");
}

/**
 * A GitHub-flavoured Markdown pipe table, cells escaped so that they show
 * as written, columns padded (at least three wide) and aligned by the rule.
 *
 * @example
 * ```ts
 * import { tableMarkdown } from "tokenlab/view/table.ts";
 * console.log(tableMarkdown({ header: ["a|b", "n"], rows: [["x", "1"]], align: ["left", "right"] }));
 * ```
 */
export function tableMarkdown(table: TableModel): string {
  const { align } = table;
  const head = table.header.map(escapeMarkdownCell);
  const rows = table.rows.map((r) => r.map(escapeMarkdownCell));
  const widths = head.map((h, c) =>
    Math.max(3, h.length, ...rows.map((r) => r[c].length))
  );
  const line = (cells: string[]) =>
    `| ${
      cells.map((s, c) =>
        align[c] === "right" ? s.padStart(widths[c]) : s.padEnd(widths[c])
      ).join(" | ")
    } |`;
  const rule = `|${
    widths.map((w, c) =>
      align[c] === "right"
        ? ` ${"-".repeat(w - 1)}: `
        : ` :${"-".repeat(w - 1)} `
    ).join("|")
  }|`;
  return [line(head), rule, ...rows.map(line)].join("\n");
}

/** Options of {@linkcode tableHtml}. */
export interface TableHtmlOptions {
  /** The table element's class. */
  className?: string;
  /** The table element's id (escaped). */
  id?: string;
  /** A `<caption>` (escaped). */
  caption?: string;
  /** Classes of a cell: `row` is null for the header. */
  cellClasses?: (row: number | null, column: number) => readonly string[];
  /** Each row and section on its own line (default false: one line). */
  lineBreaks?: boolean;
}

/**
 * An HTML table: a header row and the body, every cell's text escaped and
 * aligned by a `text-align` style, with a class, id, caption and cell
 * classes when given.
 *
 * @example
 * ```ts
 * import { tableHtml } from "tokenlab/view/table.ts";
 * console.log(tableHtml({ header: ["a", "n"], rows: [["<b>", "1"]], align: ["left", "right"] }));
 * ```
 */
export function tableHtml(
  table: TableModel,
  options: TableHtmlOptions = {},
): string {
  const { align } = table;
  const { className, id, caption, cellClasses } = options;
  const cell = (tag: string, text: string, c: number, r: number | null) => {
    const names = cellClasses?.(r, c) ?? [];
    return `<${tag}${
      names.length ? ` class="${names.join(" ")}"` : ""
    } style="text-align:${align[c]}">${escapeXml(text)}</${tag}>`;
  };
  return [
    `<table${className === undefined ? "" : ` class="${className}"`}${
      id === undefined ? "" : ` id="${escapeXml(id)}"`
    }>`,
    ...(caption === undefined
      ? []
      : [`<caption>${escapeXml(caption)}</caption>`]),
    `<thead><tr>${
      table.header.map((h, c) => cell("th", h, c, null)).join("")
    }</tr></thead>`,
    "<tbody>",
    ...table.rows.map((row, r) =>
      `<tr>${row.map((s, c) => cell("td", s, c, r)).join("")}</tr>`
    ),
    "</tbody>",
    "</table>",
  ].join(options.lineBreaks ? "\n" : "");
}
