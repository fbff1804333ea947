/**
 * Reading, validating and writing Jupyter notebooks (nbformat 4), and
 * clearing their outputs.
 *
 * Serializing writes the layout nbformat writes (one-space indent, Python's
 * float notation) while keeping each object's key order and the file's final
 * newline (or its absence), so that reading then writing an unchanged notebook
 * gives back the same bytes and a rewrite only shows the lines that changed.
 *
 * @module
 */

import { writeTextAtomic } from "../io/atomic_write.ts";
import { TokenlabError } from "../errors.ts";

/** One cell of a notebook. */
export interface NotebookCell {
  /** The kind of cell. */
  cell_type: "code" | "markdown" | "raw";
  /** The cell id (nbformat 4.5 and later). */
  id?: string;
  /** Cell metadata; `tags` marks cells such as `parameters`. */
  metadata: Record<string, unknown> & { tags?: string[] };
  /** The source, whole or as Jupyter's list of lines. */
  source: string | string[];
  /** Outputs of a code cell. */
  outputs?: unknown[];
  /** Execution count of a code cell (`null` when not run). */
  execution_count?: number | null;
  /** Attachments of a markdown or raw cell. */
  attachments?: unknown;
}

/** A notebook in nbformat 4. */
export interface Notebook {
  /** The cells, in order. */
  cells: NotebookCell[];
  /** Notebook metadata (kernelspec, language_info, ...). */
  metadata: Record<string, unknown>;
  /** Major format version: always 4. */
  nbformat: number;
  /** Minor format version. */
  nbformat_minor: number;
}

/** A notebook file that cannot be read, parsed or is not nbformat 4. */
export class NotebookError extends TokenlabError {
  /** Creates the error with its message. */
  constructor(message: string) {
    super(message);
  }
}

const FIX = "Fix the file (or restore it with git checkout), then run again.";

/**
 * The deepest nesting of lists and objects a notebook may have. Real
 * notebooks nest a few levels (widget state a few dozen); copying and
 * writing recurse, so a file nested thousands deep is refused when read
 * rather than overflowing the stack later.
 */
export const MAX_NOTEBOOK_DEPTH = 1000;

/** Where a JSON value nests deeper than `limit` (a path such as `cells[2].metadata`), or null. */
function tooDeep(root: unknown, limit: number): string | null {
  // Only containers are visited (a notebook's many strings are not), and a
  // path is spelled only for the one that is too deep, from parent links.
  type Visit = { v: object; depth: number; up: Visit | null; key: string };
  const todo: Visit[] = [];
  const visit = (v: unknown, depth: number, up: Visit | null, key: string) => {
    if (v !== null && typeof v === "object") todo.push({ v, depth, up, key });
  };
  visit(root, 0, null, "");
  while (todo.length > 0) {
    const at = todo.pop()!;
    if (at.depth >= limit) {
      const keys: string[] = [];
      for (let n: Visit | null = at; n !== null && n.up !== null; n = n.up) {
        keys.push(n.key);
      }
      const path = keys.reverse().join("").replace(/^\./, "");
      return path === "" ? "the top level" : path;
    }
    if (Array.isArray(at.v)) {
      at.v.forEach((x, i) => visit(x, at.depth + 1, at, `[${i}]`));
    } else {
      for (const [k, x] of Object.entries(at.v)) {
        if (x === null || typeof x !== "object") continue;
        const key = /^[A-Za-z_$][\w$]*$/.test(k)
          ? `.${k}`
          : `[${JSON.stringify(k)}]`;
        visit(x, at.depth + 1, at, key);
      }
    }
  }
  return null;
}

// Whether the file a notebook was read from ended with a newline; kept aside
// (not in the object) so that the notebook serializes as it was read.
const FINAL_NEWLINE = new WeakMap<Notebook, boolean>();

/**
 * A deep copy of a notebook that serializes like the original (same final
 * newline).
 */
export function cloneNotebook(nb: Notebook): Notebook {
  const copy = structuredClone(nb);
  const newline = FINAL_NEWLINE.get(nb);
  if (newline !== undefined) FINAL_NEWLINE.set(copy, newline);
  return copy;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "string") return `the string ${JSON.stringify(v)}`;
  if (typeof v === "object") return "an object";
  return `${typeof v} ${String(v)}`;
}

/** 1-based line and column of an offset into text. */
function lineColumn(text: string, offset: number): [number, number] {
  let line = 1;
  let start = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text[i] === "\n") {
      line++;
      start = i + 1;
    }
  }
  return [line, offset - start + 1];
}

/**
 * Finds the first JSON syntax error: V8's messages carry no position for some
 * errors ("Unexpected token"), so the position comes from a scan of our own.
 */
function locateJsonError(text: string): { at: number; reason: string } | null {
  let i = 0;
  const ws = () => {
    while (i < text.length && " \t\n\r".includes(text[i])) i++;
  };
  const found = () =>
    i >= text.length ? "the end of the file" : JSON.stringify(text[i]);
  class Stop {
    constructor(readonly at: number, readonly reason: string) {}
  }
  const fail = (expected: string): never => {
    throw new Stop(i, `expected ${expected}, found ${found()}`);
  };
  const str = () => {
    i++; // opening quote
    while (true) {
      if (i >= text.length) fail('a closing "');
      const c = text[i];
      if (c === '"') {
        i++;
        return;
      }
      if (c < " ") fail("no raw control character inside a string (use \\n)");
      if (c === "\\") {
        i++;
        if (i < text.length && '"\\/bfnrt'.includes(text[i])) i++;
        else if (
          text[i] === "u" && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))
        ) i += 5;
        else fail('an escape (\\" \\\\ \\/ \\b \\f \\n \\r \\t or \\uXXXX)');
      } else i++;
    }
  };
  let depth = 0;
  const nest = () => {
    // bounded recursion: a file nested deeper is refused, not a stack overflow
    if (++depth > MAX_NOTEBOOK_DEPTH) {
      fail(`at most ${MAX_NOTEBOOK_DEPTH} nested lists and objects`);
    }
  };
  // A list or object from its opening bracket: its items, each read by
  // `item`, separated by "," up to `close`.
  const items = (close: "]" | "}", item: () => void): void => {
    nest();
    i++;
    ws();
    if (text[i] === close) {
      i++;
      depth--;
      return;
    }
    while (true) {
      item();
      ws();
      if (text[i] === ",") i++;
      else if (text[i] === close) {
        i++;
        depth--;
        return;
      } else fail(`"," or "${close}"`);
    }
  };
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === "{") {
      items("}", () => {
        ws();
        if (text[i] !== '"') fail("a double-quoted property name");
        str();
        ws();
        if (text[i] !== ":") fail('":" after the property name');
        i++;
        value();
      });
    } else if (c === "[") {
      items("]", value);
    } else if (c === '"') str();
    else if (c === "-" || (c >= "0" && c <= "9")) {
      const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i));
      if (!m) fail("a number");
      i += m![0].length;
    } else {
      for (const word of ["true", "false", "null"]) {
        if (text.startsWith(word, i)) {
          i += word.length;
          return;
        }
      }
      fail("a value (object, list, string, number, true, false or null)");
    }
  };
  try {
    value();
    ws();
    if (i < text.length) fail("the end of the file after the notebook");
    return null;
  } catch (e) {
    if (e instanceof Stop) return { at: e.at, reason: e.reason };
    throw e;
  }
}

/**
 * Parses and validates a notebook's text. `path` names the file in errors.
 * Lenient where Jupyter is: a missing notebook or cell `metadata` becomes
 * `{}`, a code cell's missing `outputs` `[]` and `execution_count` `null`.
 * Throws {@linkcode NotebookError} saying what is wrong and where.
 */
export function parseNotebook(text: string, path: string): Notebook {
  if (text.trim() === "") {
    throw new NotebookError(
      `${path} is empty: expected an nbformat 4 notebook (JSON). ${FIX}`,
    );
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    const loc = locateJsonError(text);
    const where = loc
      ? (() => {
        const [line, column] = lineColumn(text, loc.at);
        return `${loc.reason} at line ${line}, column ${column}`;
      })()
      : (e as Error).message;
    throw new NotebookError(`${path} is not valid JSON: ${where}. ${FIX}`);
  }
  const bad = (what: string) =>
    new NotebookError(`${path} is not a valid notebook: ${what}. ${FIX}`);
  if (!isObject(data)) {
    throw bad(`expected a JSON object with "cells", found ${describe(data)}`);
  }
  const deep = tooDeep(data, MAX_NOTEBOOK_DEPTH);
  if (deep !== null) {
    throw bad(
      `${deep} nests lists and objects more than ${MAX_NOTEBOOK_DEPTH} levels deep; expected a notebook's few levels (a generated or damaged file?)`,
    );
  }
  if (data.nbformat !== 4) {
    throw new NotebookError(
      `${path} is not an nbformat 4 notebook: expected "nbformat": 4, found ${
        data.nbformat === undefined
          ? "no nbformat"
          : JSON.stringify(data.nbformat)
      }. ${
        typeof data.nbformat === "number" && data.nbformat < 4
          ? "Upgrade it with `jupyter nbconvert --to notebook --inplace FILE`, then run again."
          : FIX
      }`,
    );
  }
  if (!Number.isInteger(data.nbformat_minor)) {
    throw bad(
      `expected "nbformat_minor" to be a whole number, found ${
        data.nbformat_minor === undefined
          ? "none"
          : describe(data.nbformat_minor)
      }`,
    );
  }
  if (data.metadata === undefined) data.metadata = {};
  if (!isObject(data.metadata)) {
    throw bad(
      `expected "metadata" to be an object, found ${describe(data.metadata)}`,
    );
  }
  if (!Array.isArray(data.cells)) {
    throw bad(
      `expected "cells" to be a list, found ${
        data.cells === undefined ? "no cells" : describe(data.cells)
      }`,
    );
  }
  data.cells.forEach((cell: unknown, i: number) => {
    const n = i + 1;
    if (!isObject(cell)) {
      throw bad(`cell ${n} is ${describe(cell)}, expected an object`);
    }
    if (!["code", "markdown", "raw"].includes(cell.cell_type as string)) {
      throw bad(
        `cell ${n} has ${
          cell.cell_type === undefined
            ? "no cell_type"
            : `cell_type ${JSON.stringify(cell.cell_type)}`
        }; expected "code", "markdown" or "raw"`,
      );
    }
    const src = cell.source;
    if (src === undefined) {
      throw bad(
        `cell ${n} has no "source"; expected a string or a list of strings`,
      );
    }
    if (
      typeof src !== "string" &&
      !(Array.isArray(src) && src.every((s) => typeof s === "string"))
    ) {
      throw bad(
        `cell ${n} has a "source" that is ${
          describe(src)
        }; expected a string or a list of strings`,
      );
    }
    if (cell.metadata === undefined) cell.metadata = {};
    if (!isObject(cell.metadata)) {
      throw bad(
        `cell ${n} has "metadata" that is ${
          describe(cell.metadata)
        }; expected an object`,
      );
    }
    const tags = cell.metadata.tags;
    if (
      tags !== undefined &&
      !(Array.isArray(tags) && tags.every((t) => typeof t === "string"))
    ) {
      throw bad(
        `cell ${n} has tags that are ${
          describe(tags)
        }; expected a list of strings`,
      );
    }
    if (cell.cell_type === "code") {
      if (cell.outputs === undefined) cell.outputs = [];
      if (!Array.isArray(cell.outputs)) {
        throw bad(
          `cell ${n} has "outputs" that are ${
            describe(cell.outputs)
          }; expected a list`,
        );
      }
      if (cell.execution_count === undefined) cell.execution_count = null;
      if (
        cell.execution_count !== null && !Number.isInteger(cell.execution_count)
      ) {
        throw bad(
          `cell ${n} has "execution_count" ${
            describe(cell.execution_count)
          }; expected a whole number or null`,
        );
      }
    }
  });
  const nb = data as unknown as Notebook;
  FINAL_NEWLINE.set(nb, text.endsWith("\n"));
  return nb;
}

/** Reads and validates a notebook file; see {@linkcode parseNotebook}. */
export async function readNotebook(path: string): Promise<Notebook> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new NotebookError(
        `${path} does not exist: expected a notebook file (.ipynb) there. Check the path (the project's notebooks are in notebooks/).`,
      );
    }
    if (e instanceof Deno.errors.IsADirectory) {
      throw new NotebookError(
        `${path} is a folder: expected a notebook file (.ipynb). Name the notebook files in it instead.`,
      );
    }
    throw e;
  }
  return parseNotebook(text, path);
}

/** The source of a cell as one string. */
export function cellSource(cell: NotebookCell): string {
  return typeof cell.source === "string" ? cell.source : cell.source.join("");
}

/**
 * Splits text into Jupyter's list-of-lines form: every line but the last
 * keeps its `"\n"`; empty text gives `[]`.
 */
export function sourceLines(text: string): string[] {
  if (text === "") return [];
  const lines = text.split("\n").map((l) => l + "\n");
  const last = lines.length - 1;
  lines[last] = lines[last].slice(0, -1);
  if (lines[last] === "") lines.pop();
  return lines;
}

// Python's repr of a float, which nbformat writes: scientific notation below
// 1e-4 ("1e-05", where JavaScript writes "0.00001") with a two-digit exponent.
function pythonNumber(x: number): string {
  if (!Number.isFinite(x)) {
    throw new NotebookError(
      `cannot write the number ${x} into a notebook: JSON has no ${x}; expected finite numbers only`,
    );
  }
  if (Number.isInteger(x) || Math.abs(x) >= 1e-4) return String(x);
  const [mantissa, exponent] = x.toExponential().split("e");
  const sign = exponent[0];
  const digits = exponent.slice(1).padStart(2, "0");
  return `${mantissa}e${sign}${digits}`;
}

function writeJson(v: unknown, indent: string, out: string[]): void {
  if (v === null || v === undefined) out.push("null");
  else if (typeof v === "number") out.push(pythonNumber(v));
  else if (typeof v === "string" || typeof v === "boolean") {
    out.push(JSON.stringify(v));
  } else if (Array.isArray(v)) {
    if (v.length === 0) {
      out.push("[]");
      return;
    }
    const inner = indent + " ";
    out.push("[");
    v.forEach((item, i) => {
      out.push(i === 0 ? "\n" : ",\n", inner);
      writeJson(item, inner, out);
    });
    out.push("\n", indent, "]");
  } else if (typeof v === "object") {
    const entries = Object.entries(v).filter(([, x]) => x !== undefined);
    if (entries.length === 0) {
      out.push("{}");
      return;
    }
    const inner = indent + " ";
    out.push("{");
    entries.forEach(([k, x], i) => {
      out.push(i === 0 ? "\n" : ",\n", inner, JSON.stringify(k), ": ");
      writeJson(x, inner, out);
    });
    out.push("\n", indent, "}");
  } else {
    throw new NotebookError(
      `cannot write a ${typeof v} into a notebook: expected JSON values only`,
    );
  }
}

/**
 * The notebook as nbformat writes it: one-space indent, keys in the
 * notebook's own order, non-ASCII text as is, and a final newline unless the
 * file it was read from had none.
 */
export function serializeNotebook(nb: Notebook): string {
  const out: string[] = [];
  writeJson(nb, "", out);
  return out.join("") + (FINAL_NEWLINE.get(nb) ?? true ? "\n" : "");
}

/**
 * Writes a notebook atomically: to a temporary file in the same folder, then
 * renamed over `path`, so a crash never leaves half a notebook.
 */
export async function writeNotebook(path: string, nb: Notebook): Promise<void> {
  await writeTextAtomic(path, serializeNotebook(nb));
}

// Cell metadata that records a run rather than the notebook: nbclient's
// timings and the output pane's scroll/collapse state.
const RUN_CELL_METADATA = ["execution", "scrolled", "collapsed"];
// Notebook metadata that records a run: tokenlab's report status and widget
// state.
const RUN_NOTEBOOK_METADATA = ["tokenlab", "widgets"];

/** What {@linkcode stripOutputs} returns. */
export interface StripResult {
  /** The stripped copy. */
  notebook: Notebook;
  /** 1-based numbers of the cells that changed. */
  cells: number[];
  /** Notebook metadata keys that were removed (`tokenlab`, `widgets`). */
  metadata: string[];
}

/**
 * A copy of the notebook without what a run leaves behind: outputs cleared,
 * execution counts `null`, cell metadata `execution`/`scrolled`/`collapsed`
 * and notebook metadata `tokenlab`/`widgets` removed. Does not change `nb`.
 */
export function stripOutputs(nb: Notebook): StripResult {
  const notebook = cloneNotebook(nb);
  const cells: number[] = [];
  notebook.cells.forEach((cell, i) => {
    let changed = false;
    if (cell.cell_type === "code") {
      if (!Array.isArray(cell.outputs) || cell.outputs.length > 0) {
        cell.outputs = [];
        changed = true;
      }
      if (cell.execution_count !== null) {
        cell.execution_count = null;
        changed = true;
      }
    }
    for (const key of RUN_CELL_METADATA) {
      if (key in cell.metadata) {
        delete cell.metadata[key];
        changed = true;
      }
    }
    if (changed) cells.push(i + 1);
  });
  const metadata = RUN_NOTEBOOK_METADATA.filter((k) => k in notebook.metadata);
  for (const key of metadata) delete notebook.metadata[key];
  return { notebook, cells, metadata };
}

/**
 * 1-based numbers of the cells with something a run left: outputs, an
 * execution count, or run metadata (`execution`, `scrolled`, `collapsed`).
 */
export function cellsWithOutputs(nb: Notebook): number[] {
  return stripOutputs(nb).cells;
}
