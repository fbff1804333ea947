/**
 * Result tables for the paper-reproduction reports: numbers per seed shown
 * as mean ± std, the paper's value and our difference from it beside ours,
 * and one table rendered as Markdown, HTML, JSON and text from the same
 * cells, so the notebook, the HTML report and the Markdown report agree.
 *
 * @module
 */

import { escapeMarkdownCell, escapeXml } from "../view/escape.ts";
import {
  tableHtml,
  tableMarkdown,
  type TableModel,
  tableText,
} from "../view/table.ts";
import { TokenlabError } from "../errors.ts";

/** One column of a {@linkcode ResultTable}. */
export interface TableColumn {
  /** The row field this column shows. */
  key: string;
  /** Header text. */
  label: string;
  /** Unit shown in the header: label "top-1", unit "%" gives "top-1 (%)". */
  unit?: string;
  /**
   * Decimals of numbers (default 2, or 0 when every number the column shows
   * is an integer).
   */
  digits?: number;
  /** Group thousands with commas (1,774,080), for counts such as parameters. */
  thousands?: boolean;
  /**
   * Rows may give the paper's value of this column in `row.paper[key]`; the
   * table then shows three columns: ours, "paper" and "Δ" (ours − paper,
   * signed, from the mean when seeds are given).
   */
  paper?: boolean;
  /** Cell alignment (default: right when the column holds numbers, else left). */
  align?: "left" | "right";
  /**
   * What the values of a cell are over, for the note under the table
   * (default "seeds"; "repeats" for timings, "box draws"...).
   */
  over?: string;
}

/**
 * A cell: a number; one number per seed (shown as mean ± sample std); text;
 * or null / undefined for a missing value (shown as "–").
 */
export type CellValue = number | readonly number[] | string | null | undefined;

/** One row: cells by column key, and the paper's values by column key. */
export interface TableRow {
  /** A cell by column key (or the paper's values under `paper`). */
  [key: string]: CellValue | Readonly<Record<string, number | undefined>>;
  /** The paper's values by column key, for columns with `paper: true`. */
  paper?: Readonly<Record<string, number | undefined>>;
}

/** What a {@linkcode ResultTable} is made of. */
export interface TableOptions {
  /** The table's caption (required: reports number and cite tables by it). */
  caption: string;
  /** Columns, in display order. */
  columns: readonly TableColumn[];
  /** Rows, in display order. */
  rows: readonly TableRow[];
  /** Notes shown under the table. */
  notes?: readonly string[];
  /** HTML id of the table, for links from the report's text. */
  id?: string;
}

/** The numbers behind one numeric cell. */
export interface CellStats {
  /** Our values, one per seed (empty when only the paper's value is given). */
  values: number[];
  /** Mean of the values (null when there are none). */
  mean: number | null;
  /** Sample standard deviation (n − 1); null when n < 2. */
  std: number | null;
  /** Number of values (seeds). */
  n: number;
  /** The paper's value, when given. */
  paper: number | null;
  /** mean − paper, when both are known. */
  diff: number | null;
}

/** Raised for a table whose definition or data cannot be shown. */
export class TableError extends TokenlabError {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
  }
}

/**
 * Mean and sample standard deviation (n − 1 in the denominator; 0 for a
 * single value).
 *
 * @example
 * ```ts
 * import { meanStd } from "tokenlab/report/table.ts";
 * console.log(meanStd([1, 2, 3])); // { mean: 2, std: 1, n: 3 }
 * ```
 */
export function meanStd(
  values: readonly number[],
): { mean: number; std: number; n: number } {
  if (!Array.isArray(values) || values.length === 0) {
    throw new TableError(
      `meanStd needs at least one number, found ${
        Array.isArray(values) ? "an empty array" : _show(values)
      }; pass one value per seed`,
    );
  }
  values.forEach((v, i) => {
    if (typeof v !== "number" || !Number.isFinite(v)) {
      throw new TableError(
        `meanStd needs finite numbers, found ${
          _show(v)
        } at index ${i}; drop the diverged run or report it separately`,
      );
    }
  });
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  if (n === 1) return { mean, std: 0, n };
  const ss = values.reduce((a, v) => a + (v - mean) ** 2, 0);
  return { mean, std: Math.sqrt(ss / (n - 1)), n };
}

function _show(v: unknown): string {
  if (typeof v === "number") return String(v);
  if (typeof v === "string") return JSON.stringify(v);
  if (v === null || v === undefined) return String(v);
  if (Array.isArray(v)) return `an array of ${v.length}`;
  return typeof v === "object"
    ? `an object (${v.constructor?.name ?? "no prototype"})`
    : typeof v;
}

// ---------------------------------------------------------------------------
// Resolved cells

type _Cell =
  | { kind: "missing" }
  | { kind: "text"; text: string }
  | { kind: "num"; stats: CellStats };

interface _Column extends TableColumn {
  /** Decimals used (column digits, or 0/2 by the default rule). */
  shown: number;
  /** Alignment used. */
  side: "left" | "right";
  /** Seed counts (n >= 2) of the column's cells, for the note. */
  seeds: number[];
}

/** One displayed column: our value, the paper's, or the difference. */
interface _Display {
  col: _Column;
  part: "ours" | "paper" | "diff";
  header: string;
}

const DASH = "–";
const ID_RE = /^[A-Za-z][A-Za-z0-9_:.-]*$/;

function _header(c: TableColumn): string {
  return c.unit ? `${c.label} (${c.unit})` : c.label;
}

function _rowName(rows: readonly TableRow[], i: number, first: string) {
  const v = rows[i][first];
  return typeof v === "string" ? `row ${i} ("${v}")` : `row ${i}`;
}

/**
 * A result table: numbers per seed shown as mean ± std, the paper's values
 * and our differences from them, notes; rendered as Markdown, HTML, JSON
 * and aligned text, and shown by Jupyter as all four.
 *
 * @example
 * ```ts
 * import { ResultTable } from "tokenlab/report/table.ts";
 * const t = new ResultTable({
 *   caption: "CIFAR-10 top-1 after 30 epochs",
 *   columns: [
 *     { key: "model", label: "model" },
 *     { key: "top1", label: "top-1", unit: "%", paper: true },
 *   ],
 *   rows: [
 *     { model: "plain", top1: [80.1, 80.5, 79.9] },
 *     { model: "token labeling", top1: [81.2, 81.0, 81.6], paper: { top1: 81.5 } },
 *   ],
 * });
 * console.log(t.toString());
 * console.log(t.cell(1, "top1")?.diff?.toFixed(2)); // -0.23
 * ```
 */
export class ResultTable {
  /** The caption. */
  readonly caption: string;
  /** The columns as given. */
  readonly columns: readonly TableColumn[];
  /** The rows as given. */
  readonly rows: readonly TableRow[];
  /** The notes as given (the seed notes the table adds come first when shown). */
  readonly notes: readonly string[];
  /** The HTML id, when given. */
  readonly id: string | undefined;
  #cols: _Column[];
  #cells: _Cell[][];

  /** Checks the definition and the data, and resolves every cell. */
  constructor(options: TableOptions) {
    if (options === null || typeof options !== "object") {
      throw new TableError(
        `a table needs options { caption, columns, rows }, found ${
          _show(options)
        }`,
      );
    }
    const { caption, columns, rows, notes = [], id } = options;
    if (typeof caption !== "string" || caption.trim() === "") {
      throw new TableError(
        `a table needs a caption (what it shows, e.g. "CIFAR-10 top-1 after 30 epochs"), found ${
          _show(caption)
        }`,
      );
    }
    if (!Array.isArray(columns) || columns.length === 0) {
      throw new TableError(
        `a table needs at least one column { key, label }, found ${
          _show(columns)
        }`,
      );
    }
    if (!Array.isArray(rows)) {
      throw new TableError(
        `rows must be an array of objects, found ${_show(rows)}`,
      );
    }
    if (
      !Array.isArray(notes) || notes.some((n) => typeof n !== "string")
    ) {
      throw new TableError(
        `notes must be an array of strings, found ${_show(notes)}`,
      );
    }
    if (id !== undefined && (typeof id !== "string" || !ID_RE.test(id))) {
      throw new TableError(
        `the table id must start with a letter and hold only letters, digits, "_", ":", "." or "-" (it becomes an HTML id), found ${
          _show(id)
        }`,
      );
    }
    const keys = new Set<string>();
    for (const [i, c] of columns.entries()) {
      if (c === null || typeof c !== "object") {
        throw new TableError(
          `column ${i} must be an object { key, label }, found ${_show(c)}`,
        );
      }
      if (typeof c.key !== "string" || c.key === "") {
        throw new TableError(
          `column ${i} needs a non-empty string key (the row field it shows), found ${
            _show(c.key)
          }`,
        );
      }
      if (c.key === "paper") {
        throw new TableError(
          `column ${i} has the key "paper", which rows use for the paper's values; rename the column's key (the label can still say "paper")`,
        );
      }
      if (keys.has(c.key)) {
        throw new TableError(
          `duplicate column key "${c.key}" (column ${i}); each column needs its own key`,
        );
      }
      keys.add(c.key);
      if (typeof c.label !== "string") {
        throw new TableError(
          `column "${c.key}" needs a string label (its header), found ${
            _show(c.label)
          }`,
        );
      }
      if (
        c.digits !== undefined &&
        !(Number.isInteger(c.digits) && c.digits >= 0 && c.digits <= 20)
      ) {
        throw new TableError(
          `column "${c.key}": digits must be a whole number from 0 to 20, found ${
            _show(c.digits)
          }`,
        );
      }
      if (c.align !== undefined && c.align !== "left" && c.align !== "right") {
        throw new TableError(
          `column "${c.key}": align must be "left" or "right", found ${
            _show(c.align)
          }`,
        );
      }
    }
    const first = columns[0].key;
    const cells: _Cell[][] = rows.map((row, r) => {
      if (row === null || typeof row !== "object" || Array.isArray(row)) {
        throw new TableError(
          `row ${r} must be an object of cells by column key, found ${
            _show(row)
          }`,
        );
      }
      const name = _rowName(rows, r, first);
      for (const k of Object.keys(row)) {
        if (k !== "paper" && !keys.has(k)) {
          throw new TableError(
            `${name} has the field "${k}", which is not a column; the columns are ${
              [...keys].join(", ")
            } (add a column with key "${k}" or drop the field)`,
          );
        }
      }
      const paper = row.paper;
      if (paper !== undefined) {
        if (
          paper === null || typeof paper !== "object" || Array.isArray(paper)
        ) {
          throw new TableError(
            `${name}: paper must be an object of the paper's numbers by column key, found ${
              _show(paper)
            }`,
          );
        }
        for (const [k, v] of Object.entries(paper)) {
          const col = columns.find((c) => c.key === k);
          if (col === undefined) {
            throw new TableError(
              `${name} gives a paper value for "${k}", which is not a column; the columns are ${
                [...keys].join(", ")
              }`,
            );
          }
          if (!col.paper) {
            throw new TableError(
              `${name} gives a paper value for "${k}", but that column has no paper column; set paper: true on column "${k}"`,
            );
          }
          if (v !== undefined && (typeof v !== "number" || !isFinite(v))) {
            throw new TableError(
              `${name}: the paper value of "${k}" must be a finite number (or left out), found ${
                _show(v)
              }`,
            );
          }
        }
      }
      return columns.map((c) => this.#resolve(row, c, name));
    });
    this.#cols = columns.map((c, j) => {
      const nums = cells.flatMap((row) => {
        const cell = row[j];
        if (cell.kind !== "num") return [];
        const s = cell.stats;
        return [s.mean, s.std, s.paper, s.diff].filter((v) => v !== null);
      });
      const hasNum = cells.some((row) => row[j].kind === "num");
      const seeds = [
        ...new Set(cells.flatMap((row) => {
          const cell = row[j];
          return cell.kind === "num" && cell.stats.n >= 2 ? [cell.stats.n] : [];
        })),
      ].sort((a, b) => a - b);
      return {
        ...c,
        shown: c.digits ?? (nums.every(Number.isInteger) ? 0 : 2),
        side: c.align ?? (hasNum ? "right" : "left"),
        seeds,
      };
    });
    this.caption = caption;
    this.columns = columns;
    this.rows = rows;
    this.notes = notes;
    this.id = id;
    this.#cells = cells;
  }

  #resolve(row: TableRow, c: TableColumn, name: string): _Cell {
    const v = row[c.key];
    const paper = row.paper?.[c.key] ?? null;
    const stats = (values: number[]): CellStats => {
      if (values.length === 0) {
        return { values, mean: null, std: null, n: 0, paper, diff: null };
      }
      const { mean, std, n } = meanStd(values);
      return {
        values,
        mean,
        std: n >= 2 ? std : null,
        n,
        paper,
        diff: paper === null ? null : mean - paper,
      };
    };
    if (v === null || v === undefined) {
      return paper === null
        ? { kind: "missing" }
        : { kind: "num", stats: stats([]) };
    }
    if (typeof v === "string") return { kind: "text", text: v };
    if (typeof v === "number") {
      if (!Number.isFinite(v)) {
        throw new TableError(
          `${name}, column "${c.key}": found ${v}; cells must be finite numbers (use null for a missing value, "–" shown)`,
        );
      }
      return { kind: "num", stats: stats([v]) };
    }
    if (Array.isArray(v)) {
      if (v.length === 0) {
        throw new TableError(
          `${name}, column "${c.key}": an empty array of seeds; give at least one value, or null for a missing value`,
        );
      }
      v.forEach((x: unknown, i: number) => {
        if (typeof x !== "number" || !Number.isFinite(x)) {
          throw new TableError(
            `${name}, column "${c.key}": seed ${i} is ${
              _show(x)
            }; every seed's value must be a finite number (leave a diverged seed out and say so in a note)`,
          );
        }
      });
      return { kind: "num", stats: stats([...v]) };
    }
    throw new TableError(
      `${name}, column "${c.key}": expected a number, an array of numbers (one per seed), text or null, found ${
        _show(v)
      }`,
    );
  }

  /**
   * The numbers of a numeric cell (null for text and missing cells).
   * `rowIndex` counts from 0; `key` is a column key.
   */
  cell(rowIndex: number, key: string): CellStats | null {
    if (
      !Number.isInteger(rowIndex) || rowIndex < 0 ||
      rowIndex >= this.rows.length
    ) {
      throw new TableError(
        `row index ${rowIndex} is out of range; the table has ${this.rows.length} rows (0 to ${
          this.rows.length - 1
        })`,
      );
    }
    const j = this.columns.findIndex((c) => c.key === key);
    if (j < 0) {
      throw new TableError(
        `no column "${key}"; the columns are ${
          this.columns.map((c) => c.key).join(", ")
        }`,
      );
    }
    const cell = this.#cells[rowIndex][j];
    if (cell.kind !== "num") return null;
    const s = cell.stats;
    return { ...s, values: [...s.values] };
  }

  /** The notes shown: the seed counts of columns with mean ± std, then the given notes. */
  #allNotes(): string[] {
    const seedNotes = this.#cols.filter((c) => c.seeds.length).map((c) =>
      `${_header(c)}: mean ± std over n = ${c.seeds.join(", ")} ${
        c.over ?? "seeds"
      } (sample std).`
    );
    return [...seedNotes, ...this.notes];
  }

  #displays(): _Display[] {
    return this.#cols.flatMap((col): _Display[] =>
      col.paper
        ? [
          { col, part: "ours", header: _header(col) },
          { col, part: "paper", header: "paper" },
          { col, part: "diff", header: "Δ" },
        ]
        : [{ col, part: "ours", header: _header(col) }]
    );
  }

  #num(col: _Column, v: number): string {
    const s = col.thousands
      ? v.toLocaleString("en-US", {
        minimumFractionDigits: col.shown,
        maximumFractionDigits: col.shown,
      })
      : v.toFixed(col.shown);
    // A value that rounds to zero is shown without a sign ("-0.00" reads as a loss).
    return /^-[0.,]+$/.test(s) ? s.slice(1) : s;
  }

  /** The text of each displayed cell, and the sign of each Δ. */
  #text(): { header: string[]; body: string[][]; signs: (number | null)[][] } {
    const displays = this.#displays();
    const signs: (number | null)[][] = [];
    const body = this.#cells.map((row) => {
      const rowSigns: (number | null)[] = [];
      const texts = displays.map((d) => {
        const j = this.#cols.indexOf(d.col);
        const cell = row[j];
        rowSigns.push(null);
        if (cell.kind === "missing") return DASH;
        if (cell.kind === "text") return d.part === "ours" ? cell.text : DASH;
        const s = cell.stats;
        if (d.part === "paper") {
          return s.paper === null ? DASH : this.#num(d.col, s.paper);
        }
        if (d.part === "diff") {
          if (s.diff === null) return DASH;
          const t = this.#num(d.col, Math.abs(s.diff));
          const zero = /^[0.,]+$/.test(t);
          rowSigns[rowSigns.length - 1] = zero ? 0 : Math.sign(s.diff);
          return zero ? t : `${s.diff > 0 ? "+" : "-"}${t}`;
        }
        if (s.mean === null) return DASH;
        const m = this.#num(d.col, s.mean);
        return s.std === null ? m : `${m} ± ${this.#num(d.col, s.std)}`;
      });
      signs.push(rowSigns);
      return texts;
    });
    return { header: displays.map((d) => d.header), body, signs };
  }

  #sides(): ("left" | "right")[] {
    return this.#displays().map((d) => d.col.side);
  }

  /** The displayed cells as the view layer's table model. */
  #model(): TableModel {
    const { header, body } = this.#text();
    return { header, rows: body, align: this.#sides() };
  }

  /**
   * GitHub-flavoured Markdown: the caption in bold, a pipe table (text
   * escaped, so it shows as written), then the notes, one paragraph each.
   */
  toMarkdown(): string {
    return [
      `**${escapeMarkdownCell(this.caption)}**`,
      "",
      tableMarkdown(this.#model()),
      ...this.#allNotes().flatMap((n) => ["", escapeMarkdownCell(n)]),
    ].join("\n");
  }

  /**
   * HTML: `<table class="tokenlab-table">` with a caption, numbers aligned
   * right (and classed `num`), Δ cells classed `diff` and `diff-pos` /
   * `diff-neg` / `diff-zero`, paper cells classed `paper`, and the notes in
   * a following
   * `<p class="tokenlab-table-notes">`. All text is escaped.
   */
  toHtml(): string {
    const { signs } = this.#text();
    const sides = this.#sides();
    const displays = this.#displays();
    // "num" is what the HTML report's stylesheet sets tabular figures on.
    const cellClasses = (r: number | null, c: number): string[] => {
      const part = displays[c].part;
      const names = sides[c] === "right" ? ["num"] : [];
      if (part !== "ours") names.push(part);
      const s = r === null || part !== "diff" ? null : signs[r][c];
      if (s !== null) {
        names.push(s > 0 ? "diff-pos" : s < 0 ? "diff-neg" : "diff-zero");
      }
      return names;
    };
    const notes = this.#allNotes();
    return [
      tableHtml(this.#model(), {
        className: "tokenlab-table",
        id: this.id,
        caption: this.caption,
        cellClasses,
        lineBreaks: true,
      }),
      ...(notes.length
        ? [
          `<p class="tokenlab-table-notes">${
            notes.map(escapeXml).join("<br/>")
          }</p>`,
        ]
        : []),
    ].join("\n");
  }

  /**
   * Machine-readable: the caption, the columns, each row's cells by key
   * (a numeric cell as {@linkcode CellStats}, text as a string, a missing
   * cell as null), and every note shown.
   */
  toJSON(): {
    caption: string;
    id?: string;
    columns: TableColumn[];
    rows: Record<string, CellStats | string | null>[];
    notes: string[];
  } {
    return {
      caption: this.caption,
      ...(this.id === undefined ? {} : { id: this.id }),
      columns: this.columns.map((c) => ({ ...c })),
      rows: this.#cells.map((row) =>
        Object.fromEntries(
          row.map((cell, j) => [
            this.columns[j].key,
            cell.kind === "missing"
              ? null
              : cell.kind === "text"
              ? cell.text
              : { ...cell.stats, values: [...cell.stats.values] },
          ]),
        )
      ),
      notes: this.#allNotes(),
    };
  }

  /** Aligned plain text: the caption, the table under a rule, the notes. */
  toString(): string {
    return [
      this.caption,
      tableText(this.#model(), { rule: true }),
      ...this.#allNotes(),
    ].join("\n");
  }

  /** The Jupyter bundle: Markdown, HTML, the table as JSON, and text. */
  [Symbol.for("Jupyter.display")](): Record<string, unknown> {
    return {
      "text/markdown": this.toMarkdown(),
      "text/html": this.toHtml(),
      "application/vnd.tokenlab.table+json": this.toJSON(),
      "text/plain": this.toString(),
    };
  }
}

/**
 * A {@linkcode ResultTable} from its options.
 *
 * @example
 * ```ts
 * import { table } from "tokenlab/report/table.ts";
 * const t = table({
 *   caption: "throughput",
 *   columns: [{ key: "model", label: "model" }, { key: "ips", label: "speed", unit: "img/s", digits: 0 }],
 *   rows: [{ model: "lvvit_xs32", ips: 812.4 }],
 * });
 * console.log(t.toMarkdown());
 * ```
 */
export function table(options: TableOptions): ResultTable {
  return new ResultTable(options);
}
