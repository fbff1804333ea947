/**
 * Papermill-style parameters for TypeScript notebooks.
 *
 * A notebook has at most one code cell tagged `parameters`; it declares the
 * defaults as top-level `const` (or `let`) declarations with literal values:
 *
 * ```ts
 * // Parameters.
 * const seed = 3;
 * const lr = 2e-3; // peak learning rate
 * const scale: "smoke" | "full" = "smoke";
 * ```
 *
 * A run with other values gets a cell tagged `injected-parameters` right
 * after it that declares them again (the Deno kernel allows re-declaring a
 * top-level `const` in a later cell), so the notebook itself never changes.
 *
 * The cell is read with a small tokenizer of our own rather than by running
 * it: values must be literals so that they can be listed, type checked and
 * re-declared without executing anything.
 *
 * @module
 */

import {
  cellSource,
  cloneNotebook,
  type Notebook,
  type NotebookCell,
  sourceLines,
} from "./notebook.ts";
import { readRegularFile } from "../io/file_checks.ts";
import { FieldProblem } from "../io/json_fields.ts";

/** The kind of value a parameter holds. */
export type ParameterType =
  | "number"
  | "string"
  | "boolean"
  | "array"
  | "object"
  | "null";

/** One declaration of a parameters cell. */
export interface ParameterSpec {
  /** The variable name. */
  name: string;
  /** `const` or `let` (an injected value is declared the same way). */
  kind: "const" | "let";
  /**
   * The kind of value: from the default, or from the annotation when the
   * default is `null`/`undefined` (`"null"` when neither tells).
   */
  type: ParameterType;
  /** True for a number whose default is written as a whole number. */
  integer: boolean;
  /** True when `null`/`undefined` is allowed (by the default or annotation). */
  nullable: boolean;
  /** The TypeScript type after the colon, if written. */
  annotation: string | null;
  /** The allowed values when the annotation is a union of literals. */
  choices: readonly (string | number | boolean)[] | null;
  /** The default value (`undefined` when declared `= undefined`). */
  default: unknown;
  /** True when the value is followed by `as const`. */
  asConst: boolean;
  /** 1-based line of the declaration within the cell. */
  line: number;
  /** The trailing `//` comment (help text), if any. */
  comment: string | null;
}

/** A parameters cell, or a value given for one, that cannot be used. */
export class ParameterError extends Error {
  /** Creates the error with its message. */
  constructor(message: string) {
    super(message);
    this.name = "ParameterError";
  }
}

/** The tag of the cell that declares a notebook's parameters. */
export const PARAMETERS_TAG = "parameters";
/** The tag of the cell a run inserts with the given values. */
export const INJECTED_TAG = "injected-parameters";

// ---------------------------------------------------------------- tokenizer

interface Token {
  kind: "ident" | "number" | "string" | "punct" | "eof";
  /** The source text of the token. */
  text: string;
  /** A number's or string's value (null otherwise). */
  value: number | string | null;
  /** A number written without fraction or exponent. */
  integer: boolean;
  start: number;
  end: number;
  line: number;
  /** A line break comes before it (a statement may end without ";"). */
  nl: boolean;
}

interface Comment {
  start: number;
  text: string;
}

const LITERALS_HELP =
  "parameters must be literal values (numbers, strings, true/false, null, " +
  "and arrays or objects of them); compute derived values in a later cell";

function fail(line: number, message: string): never {
  throw new ParameterError(`line ${line}: ${message}`);
}

const IDENT_START = /[\p{ID_Start}_$]/u;
// Sticky (matched at lastIndex) so that no token copies the rest of the cell.
const IDENT = /[\p{ID_Start}_$][\p{ID_Continue}$\u200c\u200d]*/uy;
const RADIX_NUMBER = /0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+/y;
const DECIMAL_NUMBER = /(?:[0-9][0-9_]*)?(?:\.[0-9_]*)?(?:[eE][+-]?[0-9_]+)?/y;

/** The match of a sticky pattern at `at` (null when none). */
function matchAt(re: RegExp, src: string, at: number): string | null {
  re.lastIndex = at;
  const m = re.exec(src);
  return m ? m[0] : null;
}

/** The most characters a parameters cell may have: literals, not data. */
export const MAX_PARAMETERS_SOURCE = 1_000_000;
/** The deepest nesting of lists and objects a parameter's value may have. */
export const MAX_PARAMETER_DEPTH = 100;

function tokenize(src: string): { tokens: Token[]; comments: Comment[] } {
  const tokens: Token[] = [];
  const comments: Comment[] = [];
  let i = 0;
  let line = 1;
  let nl = true; // a newline since the last token (for statements without ";")
  const readEscape = (quoteLine: number): string => {
    // at the character after the backslash
    const c = src[i];
    const simple: Record<string, string> = {
      n: "\n",
      t: "\t",
      r: "\r",
      b: "\b",
      f: "\f",
      v: "\v",
      "0": "\0",
    };
    if (c === undefined) fail(quoteLine, "the string is not closed");
    if (c in simple && !(c === "0" && /[0-9]/.test(src[i + 1] ?? ""))) {
      i++;
      return simple[c];
    }
    if (c === "x") {
      const hex = src.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) {
        fail(line, `bad escape \\x${hex}: expected \\xHH`);
      }
      i += 3;
      return String.fromCharCode(parseInt(hex, 16));
    }
    if (c === "u") {
      const braced = /^\{([0-9a-fA-F]{1,6})\}/.exec(src.slice(i + 1));
      if (braced) {
        const cp = parseInt(braced[1], 16);
        if (cp > 0x10ffff) {
          fail(line, `bad escape \\u{${braced[1]}}: beyond U+10FFFF`);
        }
        i += 1 + braced[0].length;
        return String.fromCodePoint(cp);
      }
      const hex = src.slice(i + 1, i + 5);
      if (!/^[0-9a-fA-F]{4}$/.test(hex)) {
        fail(line, `bad escape \\u${hex}: expected \\uHHHH or \\u{H...}`);
      }
      i += 5;
      return String.fromCharCode(parseInt(hex, 16));
    }
    if (c === "\r" || c === "\n" || c === "\u2028" || c === "\u2029") {
      // a line continuation: the backslash and the line break vanish
      i += c === "\r" && src[i + 1] === "\n" ? 2 : 1;
      line++;
      return "";
    }
    i++;
    return c;
  };
  while (i < src.length) {
    const c = src[i];
    const start = i;
    if (c === "\n") {
      line++;
      nl = true;
      i++;
      continue;
    }
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === "/" && src[i + 1] === "/") {
      let end = src.indexOf("\n", i);
      if (end < 0) end = src.length;
      comments.push({ start: i, text: src.slice(i + 2, end).trim() });
      i = end;
      continue;
    }
    if (c === "/" && src[i + 1] === "*") {
      const end = src.indexOf("*/", i + 2);
      if (end < 0) fail(line, "the /* comment is not closed: expected */");
      const body = src.slice(i + 2, end);
      comments.push({ start: i, text: body.replace(/^\*+|\*+$/g, "").trim() });
      for (const ch of body) if (ch === "\n") line++;
      if (body.includes("\n")) nl = true;
      i = end + 2;
      continue;
    }
    const tokenLine = line;
    const push = (
      t:
        & Pick<Token, "kind" | "text">
        & Partial<Pick<Token, "value" | "integer">>,
    ) => {
      tokens.push({
        value: null,
        integer: false,
        ...t,
        start,
        end: i,
        line: tokenLine,
        nl,
      });
      nl = false;
    };
    if (c === '"' || c === "'") {
      i++;
      let value = "";
      while (true) {
        const ch = src[i];
        if (ch === undefined || ch === "\n" || ch === "\r") {
          fail(
            tokenLine,
            `the string ${
              src.slice(start, i).slice(0, 30)
            }... is not closed: expected ${c} on the same line`,
          );
        }
        i++;
        if (ch === c) break;
        value += ch === "\\" ? readEscape(tokenLine) : ch;
      }
      push({ kind: "string", value, text: src.slice(start, i) });
      continue;
    }
    if (c === "`") {
      i++;
      let value = "";
      while (true) {
        const ch = src[i];
        if (ch === undefined) {
          fail(tokenLine, "the template literal is not closed: expected `");
        }
        i++;
        if (ch === "`") break;
        if (ch === "$" && src[i] === "{") {
          fail(
            line,
            "a template literal with ${...} is computed, not a literal value; " +
              LITERALS_HELP,
          );
        }
        if (ch === "\\") value += readEscape(tokenLine);
        else {
          if (ch === "\n") line++;
          // a raw CRLF inside a template literal reads as LF
          if (ch === "\r") {
            if (src[i] === "\n") i++;
            line++;
            value += "\n";
          } else value += ch;
        }
      }
      push({ kind: "string", value, text: src.slice(start, i) });
      continue;
    }
    if (/[0-9]/.test(c) || (c === "." && /[0-9]/.test(src[i + 1] ?? ""))) {
      const text = matchAt(RADIX_NUMBER, src, i) ??
        matchAt(DECIMAL_NUMBER, src, i)!;
      i += text.length;
      const after = src[i] ?? "";
      if (after === "n") {
        fail(
          tokenLine,
          `${text}n is a BigInt: expected a plain number such as ${text}`,
        );
      }
      if (IDENT_START.test(after) || /[0-9]/.test(after)) {
        fail(
          tokenLine,
          `${text}${after} is not a number: expected digits only`,
        );
      }
      if (/(^|[^0-9a-fA-F])_|_($|[^0-9a-fA-F])|__/.test(text)) {
        fail(
          tokenLine,
          `${text} is not a number: "_" may only separate digits`,
        );
      }
      const value = Number(text.replaceAll("_", ""));
      if (Number.isNaN(value)) fail(tokenLine, `${text} is not a number`);
      const integer = /^0[xXoObB]/.test(text) || /^[0-9_]+$/.test(text);
      push({ kind: "number", value, integer, text });
      continue;
    }
    const ident = matchAt(IDENT, src, i);
    if (ident) {
      i += ident.length;
      push({ kind: "ident", text: ident });
      continue;
    }
    i += c.length;
    push({ kind: "punct", text: c });
  }
  tokens.push({
    kind: "eof",
    text: "",
    value: null,
    integer: false,
    start: i,
    end: i,
    line,
    nl: true,
  });
  return { tokens, comments };
}

// ------------------------------------------------------------------- parser

function show(t: Token): string {
  return t.kind === "eof" ? "the end of the cell" : `"${t.text}"`;
}

function defineKey(obj: Record<string, unknown>, key: string, value: unknown) {
  // defineProperty: a "__proto__" key stays an ordinary key
  Object.defineProperty(obj, key, {
    value,
    enumerable: true,
    writable: true,
    configurable: true,
  });
}

class Parser {
  pos = 0;
  constructor(readonly tokens: Token[], public name: string) {}
  get tok(): Token {
    return this.tokens[this.pos];
  }
  /** The current token is the punctuation `text`. */
  at(text: string): boolean {
    return this.tok.kind === "punct" && this.tok.text === text;
  }
  next(): Token {
    return this.tokens[this.pos++];
  }
  notLiteral(t: Token): never {
    fail(
      t.line,
      `the value of "${this.name}" is not a literal: found ${
        show(t)
      }; ${LITERALS_HELP}`,
    );
  }
  literal(depth = 0): { value: unknown; integer: boolean } {
    const t = this.next();
    if (
      depth >= MAX_PARAMETER_DEPTH && t.kind === "punct" &&
      (t.text === "[" || t.text === "{")
    ) {
      fail(
        t.line,
        `the value of "${this.name}" nests lists and objects more than ${MAX_PARAMETER_DEPTH} levels deep: expected a small literal; ${LITERALS_HELP}`,
      );
    }
    if (t.kind === "punct" && (t.text === "-" || t.text === "+")) {
      const n = this.next();
      if (n.kind !== "number") this.notLiteral(n);
      return {
        value: t.text === "-" ? -(n.value as number) : n.value,
        integer: n.integer,
      };
    }
    if (t.kind === "number") return { value: t.value, integer: t.integer };
    if (t.kind === "string") return { value: t.value, integer: false };
    if (t.kind === "ident") {
      if (t.text === "true") return { value: true, integer: false };
      if (t.text === "false") return { value: false, integer: false };
      if (t.text === "null") return { value: null, integer: false };
      if (t.text === "undefined") return { value: undefined, integer: false };
      this.notLiteral(t);
    }
    if (t.kind === "punct" && t.text === "[") {
      const items: unknown[] = [];
      while (true) {
        if (this.tok.kind === "punct" && this.tok.text === "]") {
          this.next();
          return { value: items, integer: false };
        }
        if (this.tok.kind === "punct" && this.tok.text === ",") {
          fail(
            this.tok.line,
            `the list of "${this.name}" has an empty slot: expected a value before ","`,
          );
        }
        items.push(this.literal(depth + 1).value);
        const sep = this.next();
        if (sep.kind === "punct" && sep.text === "]") {
          return { value: items, integer: false };
        }
        if (!(sep.kind === "punct" && sep.text === ",")) {
          fail(
            sep.line,
            `in the list of "${this.name}": expected "," or "]", found ${
              show(sep)
            }; ${LITERALS_HELP}`,
          );
        }
      }
    }
    if (t.kind === "punct" && t.text === "{") {
      const obj: Record<string, unknown> = {};
      while (true) {
        const k = this.next();
        if (k.kind === "punct" && k.text === "}") {
          return { value: obj, integer: false };
        }
        let key: string;
        if (k.kind === "ident" || k.kind === "string") {
          key = k.kind === "ident" ? k.text : k.value as string;
        } else if (k.kind === "number") key = String(k.value);
        else {
          fail(
            k.line,
            `in the object of "${this.name}": expected a key, found ${
              show(k)
            }; ${LITERALS_HELP}`,
          );
        }
        const colon = this.next();
        if (!(colon.kind === "punct" && colon.text === ":")) {
          fail(
            colon.line,
            `in the object of "${this.name}": expected ":" after the key ${
              JSON.stringify(key)
            }, found ${show(colon)} (write every entry as key: value)`,
          );
        }
        defineKey(obj, key, this.literal(depth + 1).value);
        const sep = this.next();
        if (sep.kind === "punct" && sep.text === "}") {
          return { value: obj, integer: false };
        }
        if (!(sep.kind === "punct" && sep.text === ",")) {
          fail(
            sep.line,
            `in the object of "${this.name}": expected "," or "}", found ${
              show(sep)
            }; ${LITERALS_HELP}`,
          );
        }
      }
    }
    this.notLiteral(t);
  }
}

const MEMBER_KEYWORDS: Record<string, ParameterType> = {
  string: "string",
  number: "number",
  boolean: "boolean",
};

/** Splits an annotation's tokens on top-level "|". */
function unionMembers(tokens: Token[]): Token[][] {
  const members: Token[][] = [[]];
  let depth = 0;
  for (const t of tokens) {
    if (t.kind === "punct" && "([{<".includes(t.text)) depth++;
    if (t.kind === "punct" && ")]}>".includes(t.text)) depth--;
    if (depth === 0 && t.kind === "punct" && t.text === "|") members.push([]);
    else members[members.length - 1].push(t);
  }
  return members.filter((m) => m.length > 0);
}

function typeOf(value: unknown): ParameterType {
  if (value === null || value === undefined) return "null";
  if (Array.isArray(value)) return "array";
  const t = typeof value;
  if (t === "number" || t === "string" || t === "boolean") return t;
  return "object";
}

/** What the annotation says, apart from the default. */
function readAnnotation(tokens: Token[], src: string): {
  text: string;
  choices: (string | number | boolean)[] | null;
  nullable: boolean;
  type: ParameterType | null;
} {
  const text = src.slice(tokens[0].start, tokens[tokens.length - 1].end)
    .replace(/\s+/g, " ");
  let nullable = false;
  const rest: Token[][] = [];
  for (const m of unionMembers(tokens)) {
    if (
      m.length === 1 && m[0].kind === "ident" &&
      (m[0].text === "null" || m[0].text === "undefined")
    ) {
      nullable = true;
    } else rest.push(m);
  }
  const choices: (string | number | boolean)[] = [];
  for (const m of rest) {
    const [a, b] = m;
    if (m.length === 1 && (a.kind === "string" || a.kind === "number")) {
      choices.push(a.value as string | number);
    } else if (
      m.length === 1 && a.kind === "ident" &&
      (a.text === "true" || a.text === "false")
    ) {
      choices.push(a.text === "true");
    } else if (
      m.length === 2 && a.kind === "punct" && a.text === "-" &&
      b.kind === "number"
    ) {
      choices.push(-(b.value as number));
    } else break;
  }
  if (rest.length > 0 && choices.length === rest.length) {
    const types = new Set(choices.map(typeOf));
    return {
      text,
      choices,
      nullable,
      type: types.size === 1 ? [...types][0] : null,
    };
  }
  let type: ParameterType | null = null;
  if (rest.length === 1) {
    const member = src.slice(rest[0][0].start, rest[0][rest[0].length - 1].end)
      .trim();
    if (Object.hasOwn(MEMBER_KEYWORDS, member)) type = MEMBER_KEYWORDS[member];
    else if (/^(\[|readonly\s|(Readonly)?Array\s*<)|\[\s*\]$/.test(member)) {
      type = "array";
    } else if (/^(\{|Record\s*<|Partial\s*<|Readonly\s*<)/.test(member)) {
      type = "object";
    }
  }
  return { text, choices: null, nullable, type };
}

/**
 * Parses the source of a parameters cell into its declarations. Each
 * statement is `const NAME[: TYPE] = LITERAL [as const];` (or `let`), one per
 * statement; comments may go anywhere, and a `//` comment after a declaration
 * on its line becomes its help text. Throws {@linkcode ParameterError} naming
 * the line of anything else.
 */
export function parseParameters(source: string): ParameterSpec[] {
  if (source.length > MAX_PARAMETERS_SOURCE) {
    fail(
      1,
      `the parameters cell has ${source.length} characters: expected at most ${MAX_PARAMETERS_SOURCE} (parameters are a few literal values); load large data in a later cell and pass its path as a parameter`,
    );
  }
  const { tokens, comments } = tokenize(source);
  const specs: ParameterSpec[] = [];
  const p = new Parser(tokens, "");
  while (p.tok.kind !== "eof") {
    const kw = p.next();
    if (kw.kind === "punct" && kw.text === ";") continue;
    if (!(kw.kind === "ident" && (kw.text === "const" || kw.text === "let"))) {
      fail(
        kw.line,
        `expected a declaration such as \`const seed = 3;\`, found ${
          show(kw)
        }: the parameters cell may only declare parameters; move other code to a later cell`,
      );
    }
    const nameTok = p.next();
    if (nameTok.kind !== "ident") {
      fail(
        nameTok.line,
        `expected a name after ${kw.text}, found ${
          show(nameTok)
        } (destructuring is not supported: declare one name per statement)`,
      );
    }
    const name = nameTok.text;
    p.name = name;
    if (specs.some((s) => s.name === name)) {
      fail(
        kw.line,
        `"${name}" is declared twice: expected each parameter once`,
      );
    }
    let annotation: ReturnType<typeof readAnnotation> | null = null;
    if (p.tok.kind === "punct" && p.tok.text === ":") {
      p.next();
      const typeTokens: Token[] = [];
      let depth = 0;
      while (!(depth === 0 && p.at("="))) {
        const t = p.tok;
        if (
          t.kind === "eof" ||
          (depth === 0 && t.kind === "punct" && t.text === ";")
        ) {
          fail(
            kw.line,
            `"${name}" has no value: expected \`${kw.text} ${name}: TYPE = value;\``,
          );
        }
        if (t.kind === "punct" && "([{<".includes(t.text)) depth++;
        if (t.kind === "punct" && ")]}>".includes(t.text)) depth--;
        typeTokens.push(p.next());
      }
      if (typeTokens.length === 0) {
        fail(kw.line, `"${name}" has an empty type after ":"`);
      }
      annotation = readAnnotation(typeTokens, source);
    }
    const eq = p.next();
    if (!(eq.kind === "punct" && eq.text === "=")) {
      fail(
        eq.line,
        `"${name}" has no value: expected "=" and a literal, found ${
          show(eq)
        } (write \`${kw.text} ${name} = value;\`)`,
      );
    }
    const { value, integer } = p.literal();
    let asConst = false;
    if (p.tok.kind === "ident" && p.tok.text === "as" && !p.tok.nl) {
      p.next();
      const c = p.next();
      if (!(c.kind === "ident" && c.text === "const")) {
        fail(
          c.line,
          `"${name}" is cast with \`as ${c.text}\`: only \`as const\` may follow a parameter's value; annotate the type instead (\`${kw.text} ${name}: TYPE = value;\`)`,
        );
      }
      asConst = true;
    }
    const after = p.tok;
    if (after.kind === "punct" && after.text === ";") p.next();
    else if (after.kind === "punct" && after.text === ",") {
      fail(
        after.line,
        `${kw.text} declares more than one name here: expected one declaration per statement (\`${kw.text} ${name} = ...;\` then a new \`${kw.text}\`)`,
      );
    } else if (!after.nl) {
      fail(
        after.line,
        `the value of "${name}" is not a literal: found ${
          show(after)
        } after it; ${LITERALS_HELP}`,
      );
    }
    // help text: a comment on the line where the declaration ends
    const end = tokens[p.pos - 1].end;
    const comment = comments.find((c) =>
      c.start >= end && !source.slice(end, c.start).includes("\n") &&
      (p.tok.kind === "eof" || p.tok.start > c.start)
    );
    let type = typeOf(value);
    let nullable = value === null || value === undefined;
    if (annotation) {
      nullable = nullable || annotation.nullable;
      if (type === "null" && annotation.type) type = annotation.type;
      if (
        annotation.choices && value !== null && value !== undefined &&
        !annotation.choices.includes(value as string)
      ) {
        fail(
          kw.line,
          `the default ${
            JSON.stringify(value)
          } of "${name}" is not one of its choices ${
            annotation.choices.map((c) => JSON.stringify(c)).join(" | ")
          }`,
        );
      }
    }
    specs.push({
      name,
      kind: kw.text as "const" | "let",
      type,
      integer: type === "number" && typeof value === "number" && integer,
      nullable,
      annotation: annotation?.text ?? null,
      choices: annotation?.choices ?? null,
      default: value,
      asConst,
      line: kw.line,
      comment: comment && comment.text !== "" ? comment.text : null,
    });
  }
  return specs;
}

function isParametersCell(cell: NotebookCell, tag: string): boolean {
  return Array.isArray(cell.metadata?.tags) && cell.metadata.tags.includes(tag);
}

/**
 * The notebook's parameters cell (0-based `index`) and its declarations, or
 * `null` when no cell is tagged `parameters`. Throws
 * {@linkcode ParameterError} when two cells are tagged, when the tagged cell
 * is not a code cell, or when its declarations cannot be read.
 */
export function findParameterCell(
  nb: Notebook,
): { index: number; specs: ParameterSpec[] } | null {
  const tagged = nb.cells.flatMap((c, i) =>
    isParametersCell(c, PARAMETERS_TAG) ? [i] : []
  );
  if (tagged.length === 0) return null;
  if (tagged.length > 1) {
    throw new ParameterError(
      `cells ${
        tagged.map((i) => i + 1).join(", ")
      } are all tagged "${PARAMETERS_TAG}": expected at most one; remove the tag from all but one (in Jupyter: the cell's property inspector, Common Tools > Cell Tags)`,
    );
  }
  const index = tagged[0];
  const cell = nb.cells[index];
  if (cell.cell_type !== "code") {
    throw new ParameterError(
      `cell ${
        index + 1
      } is tagged "${PARAMETERS_TAG}" but is a ${cell.cell_type} cell: expected a code cell; move the tag to the code cell that declares the parameters`,
    );
  }
  try {
    return { index, specs: parseParameters(cellSource(cell)) };
  } catch (e) {
    if (!(e instanceof ParameterError)) throw e;
    throw new ParameterError(
      `the parameters cell (cell ${index + 1}), ${e.message}`,
    );
  }
}

// ---------------------------------------------------------------- resolving

function render(value: unknown): string {
  return value === undefined ? "undefined" : JSON.stringify(value);
}

function expectation(spec: ParameterSpec): string {
  if (spec.choices) {
    return `one of ${spec.choices.map(render).join(", ")}${
      spec.nullable ? " or null" : ""
    }`;
  }
  const base = {
    number: spec.integer ? "a whole number" : "a number",
    string: "a string",
    boolean: "true or false",
    array: "a JSON list",
    object: "a JSON object",
    null: "a JSON value",
  }[spec.type];
  return spec.nullable && spec.type !== "null" ? `${base} or null` : base;
}

function foundText(value: unknown): string {
  // a message quotes the start of a huge value, not all of it
  const cut = (t: string) => t.length > 200 ? `${t.slice(0, 200)}...` : t;
  if (value === null) return "null";
  if (Array.isArray(value)) return `the list ${cut(JSON.stringify(value))}`;
  if (typeof value === "string") {
    return `the string ${cut(JSON.stringify(value))}`;
  }
  if (typeof value === "object") {
    return `the object ${cut(JSON.stringify(value))}`;
  }
  return `${typeof value} ${render(value)}`;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j];
      row[j] = Math.min(
        row[j] + 1,
        row[j - 1] + 1,
        prev + (a[i - 1].toLowerCase() === b[j - 1].toLowerCase() ? 0 : 1),
      );
      prev = tmp;
    }
  }
  return row[b.length];
}

/** The error for a name the notebook does not declare. */
function unknownName(
  specs: readonly ParameterSpec[],
  name: string,
  notebook: string,
): ParameterError {
  if (specs.length === 0) {
    return new ParameterError(
      `notebook ${notebook} has no parameter "${name}": it declares no parameters; to make it take some, tag a code cell "${PARAMETERS_TAG}" that declares them (e.g. \`const ${name} = ...;\`)`,
    );
  }
  const near = specs.map((s) => s.name)
    .filter((s) => editDistance(s, name) <= (name.length <= 3 ? 1 : 2));
  return new ParameterError(
    `notebook ${notebook} has no parameter "${name}"${
      near.length
        ? ` (did you mean ${near.map((n) => `"${n}"`).join(" or ")}?)`
        : ""
    }; its parameters are: ${
      specs.map((s) => `${s.name} (${render(s.default)})`).join(", ")
    }`,
  );
}

/** Checks a value of the right JavaScript type against the spec; a message or null. */
function mismatch(spec: ParameterSpec, value: unknown): string | null {
  if (value === null || value === undefined) return spec.nullable ? null : "";
  if (spec.choices) return spec.choices.includes(value as string) ? null : "";
  switch (spec.type) {
    case "null":
      return null;
    case "number":
      if (typeof value !== "number" || !Number.isFinite(value)) return "";
      return spec.integer && !Number.isInteger(value) ? "" : null;
    case "string":
    case "boolean":
      return typeOf(value) === spec.type ? null : "";
    case "object":
      return typeof value === "object" && !Array.isArray(value) ? null : "";
    case "array": {
      if (!Array.isArray(value)) return "";
      const def = spec.default;
      if (!Array.isArray(def)) return null;
      if (
        spec.annotation?.trim().startsWith("[") && value.length !== def.length
      ) {
        return ` (the type ${spec.annotation} has ${def.length} elements, found ${value.length})`;
      }
      const kinds = new Set(def.map(typeOf));
      const [kind] = kinds;
      if (
        def.length > 0 && kinds.size === 1 &&
        (kind === "number" || kind === "string" || kind === "boolean")
      ) {
        const bad = value.findIndex((v) => typeOf(v) !== kind);
        if (bad >= 0) {
          return ` (every element must be a ${kind} like the default's; element ${
            bad + 1
          } is ${foundText(value[bad])})`;
        }
      }
      return null;
    }
  }
}

/** A `--param` text as a value of the parameter's type, or why it is not one. */
function coercePair(
  spec: ParameterSpec,
  text: string,
): { value: unknown } | { why: string } {
  const first = spec.choices?.[0];
  if (
    spec.nullable && spec.type !== "string" &&
    (text === "null" || text === "undefined")
  ) {
    return { value: null };
  }
  if (spec.type === "number" || typeof first === "number") {
    const n = text.trim() === "" ? NaN : Number(text);
    return Number.isFinite(n) ? { value: n } : { why: "" };
  }
  if (spec.type === "boolean" || typeof first === "boolean") {
    const word = text.trim().toLowerCase();
    if (["true", "1", "yes"].includes(word)) return { value: true };
    if (["false", "0", "no"].includes(word)) return { value: false };
    return { why: " (write true/false, 1/0 or yes/no)" };
  }
  if (spec.type === "string") return { value: text };
  try {
    return { value: JSON.parse(text) };
  } catch {
    // a parameter declared `= null` without a type takes text as is
    return spec.type === "null"
      ? { value: text }
      : { why: " (not valid JSON)" };
  }
}

/** Whether a value nests lists and objects more than `limit` levels deep (checked without recursion). */
function nestedDeeper(value: unknown, limit: number): boolean {
  const todo: [unknown, number][] = [[value, 0]];
  while (todo.length > 0) {
    const [v, depth] = todo.pop()!;
    if (v === null || typeof v !== "object") continue;
    if (depth >= limit) return true;
    for (const x of Object.values(v)) {
      if (x !== null && typeof x === "object") todo.push([x, depth + 1]);
    }
  }
  return false;
}

/** The error for a value nested deeper than a parameters cell may nest one. */
function tooDeepValue(source: string, name: string): ParameterError {
  return new ParameterError(
    `${source}: the value of "${name}" nests lists and objects more than ${MAX_PARAMETER_DEPTH} levels deep: expected a small literal, as the parameters cell allows; pass large data as a file path instead`,
  );
}

/**
 * Validates given values against a notebook's parameters and returns the
 * overridden ones (in declaration order). `pairs` are `--param NAME=VALUE`
 * texts, coerced by the parameter's type: numbers (finite; whole numbers when
 * the default is written as one), booleans (`true/false/1/0/yes/no`), strings
 * as is, lists/objects/null as JSON. `values` come from a `--params` JSON file
 * (`valuesSource` names it in errors) and must have the right JSON types.
 * Pairs win over values. Throws {@linkcode ParameterError} saying what was
 * expected and found, and listing the notebook's parameters for an unknown
 * name.
 */
export function resolveParameters(
  specs: readonly ParameterSpec[],
  given: {
    pairs?: readonly string[];
    values?: Record<string, unknown>;
    valuesSource?: string;
  },
  notebook: string,
): Record<string, unknown> {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const chosen = new Map<string, unknown>();
  const source = given.valuesSource ?? "--params";
  if (given.values !== undefined) {
    if (
      typeof given.values !== "object" || given.values === null ||
      Array.isArray(given.values)
    ) {
      throw new ParameterError(
        `${source} must hold a JSON object of parameter names and values, found ${
          foundText(given.values)
        }`,
      );
    }
    for (const [name, value] of Object.entries(given.values)) {
      const spec = byName.get(name);
      if (!spec) throw unknownName(specs, name, notebook);
      const why = mismatch(spec, value);
      if (why !== null) {
        throw new ParameterError(
          `${source}: "${name}" expects ${expectation(spec)} (default ${
            render(spec.default)
          }), found ${foundText(value)}${why}`,
        );
      }
      if (nestedDeeper(value, MAX_PARAMETER_DEPTH)) {
        throw tooDeepValue(source, name);
      }
      chosen.set(name, value);
    }
  }
  for (const pair of given.pairs ?? []) {
    const eq = pair.indexOf("=");
    const name = eq < 0 ? "" : pair.slice(0, eq).trim();
    if (eq < 0 || name === "") {
      const example = specs[0]
        ? `${specs[0].name}=${render(specs[0].default)}`
        : "seed=3";
      throw new ParameterError(
        `--param ${
          JSON.stringify(pair)
        } is not NAME=VALUE: expected for example --param ${example}`,
      );
    }
    const spec = byName.get(name);
    if (!spec) throw unknownName(specs, name, notebook);
    const text = pair.slice(eq + 1);
    const coerced = coercePair(spec, text);
    const why = "why" in coerced ? coerced.why : mismatch(spec, coerced.value);
    if (why !== null) {
      throw new ParameterError(
        `--param ${name} expects ${expectation(spec)} (default ${
          render(spec.default)
        }), found ${JSON.stringify(text)}${why}`,
      );
    }
    const value = (coerced as { value: unknown }).value;
    if (nestedDeeper(value, MAX_PARAMETER_DEPTH)) {
      throw tooDeepValue(`--param ${name}`, name);
    }
    chosen.set(name, value);
  }
  const out: Record<string, unknown> = {};
  for (const spec of specs) {
    if (chosen.has(spec.name)) defineKey(out, spec.name, chosen.get(spec.name));
  }
  return out;
}

// ---------------------------------------------------------------- injecting

/**
 * The source of the injected cell: a comment line, then one declaration per
 * value, typed with the parameter's own annotation if it had one, else the
 * value's type (number, string or boolean; none for lists and objects), e.g.
 * `const lr: number = 0.001;`. Throws {@linkcode ParameterError} for a name
 * the specs do not declare.
 */
export function renderInjectedCell(
  specs: readonly ParameterSpec[],
  values: Record<string, unknown>,
): string {
  const lines = ["// Injected by tokenlab report"];
  const byName = new Map(specs.map((s) => [s.name, s]));
  for (const name of Object.keys(values)) {
    if (!byName.has(name)) {
      throw new ParameterError(
        `cannot inject "${name}": the parameters cell declares ${
          specs.length ? specs.map((s) => s.name).join(", ") : "nothing"
        }; expected one of those names`,
      );
    }
  }
  for (const spec of specs) {
    if (!Object.hasOwn(values, spec.name)) continue;
    const value = values[spec.name];
    const t = typeof value;
    const annotation = spec.annotation ??
      (spec.asConst
        ? null
        : t === "number" || t === "string" || t === "boolean"
        ? t
        : null);
    lines.push(
      `${spec.kind} ${spec.name}${annotation ? `: ${annotation}` : ""} = ${
        render(value)
      }${spec.asConst && !spec.annotation ? " as const" : ""};`,
    );
  }
  return lines.join("\n");
}

function freshId(nb: Notebook): string {
  // a stable id rather than a random one, so that two runs with the same
  // values give the same executed notebook
  const taken = new Set(nb.cells.map((c) => c.id));
  let id = INJECTED_TAG;
  for (let n = 2; taken.has(id); n++) id = `${INJECTED_TAG}-${n}`;
  return id;
}

/**
 * A copy of the notebook with a code cell tagged `injected-parameters`,
 * declaring `values`, right after the parameters cell. Any earlier injected
 * cell is removed first; with no values nothing new is inserted. Throws
 * {@linkcode ParameterError} when values are given but the notebook has no
 * parameters cell, or names a parameter it does not declare.
 */
export function injectParameters(
  nb: Notebook,
  values: Record<string, unknown>,
): Notebook {
  const copy = cloneNotebook(nb);
  copy.cells = copy.cells.filter((c) => !isParametersCell(c, INJECTED_TAG));
  if (Object.keys(values).length === 0) return copy;
  const found = findParameterCell(copy);
  if (found === null) {
    throw new ParameterError(
      `the notebook declares no parameters, so ${
        Object.keys(values).map((n) => `"${n}"`).join(", ")
      } cannot be set: expected a code cell tagged "${PARAMETERS_TAG}"; add one near the top that declares the defaults (e.g. \`const seed = 3;\`) and tag it (in Jupyter: the property inspector, Common Tools > Cell Tags)`,
    );
  }
  const paramsCell = copy.cells[found.index];
  const text = renderInjectedCell(found.specs, values);
  const cell: NotebookCell = {
    cell_type: "code",
    execution_count: null,
    // nbformat 4.5 added cell ids; older notebooks must not have them
    ...(copy.nbformat_minor >= 5 ? { id: freshId(copy) } : {}),
    metadata: { tags: [INJECTED_TAG] },
    outputs: [],
    source: typeof paramsCell.source === "string" ? text : sourceLines(text),
  };
  copy.cells.splice(found.index + 1, 0, cell);
  return copy;
}

// ------------------------------------------------------------ parameter files

/**
 * The values of a `--params` file's text: a JSON object of parameter names
 * and values (checked against a notebook's parameters later, by
 * {@linkcode resolveParameters}). `source` names the file in errors. Throws
 * {@linkcode ParameterError} for text that is not JSON or not an object.
 *
 * @example
 * ```ts
 * import { parseParameterFile } from "tokenlab/report/params.ts";
 * console.log(parseParameterFile('{"epochs": 8}', "p.json")); // { epochs: 8 }
 * ```
 */
export function parseParameterFile(
  text: string,
  source: string,
): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new ParameterError(
      `--params ${source} is not valid JSON (${
        (e as Error).message
      }); expected an object such as {"epochs": 8, "scale": "full"}`,
    );
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new ParameterError(
      `--params ${source} must hold a JSON object of parameter names and values, found ${
        foundText(value)
      }; write it as {"name": value, ...}`,
    );
  }
  return value as Record<string, unknown>;
}

/**
 * The largest `--params` file read: 16 MiB. A parameters file holds a few
 * values; this only stops a wrong path (a device, a huge file) from being
 * read without end.
 */
export const MAX_PARAMETER_FILE_BYTES = 16 * 2 ** 20;

/**
 * Reads a `--params` file; see {@linkcode parseParameterFile}. A link is
 * followed (the path is the user's own); what it leads to must be a
 * regular file of at most {@linkcode MAX_PARAMETER_FILE_BYTES} bytes of
 * UTF-8 text. Throws {@linkcode ParameterError} when the file cannot be
 * read, or is not such a file.
 *
 * @example
 * ```ts
 * import { readParameterFile } from "tokenlab/report/params.ts";
 * const path = await Deno.makeTempFile({ suffix: ".json" });
 * await Deno.writeTextFile(path, '{"seed": 3}');
 * console.log(await readParameterFile(path)); // { seed: 3 }
 * await Deno.remove(path);
 * ```
 */
export async function readParameterFile(
  path: string,
): Promise<Record<string, unknown>> {
  const expected = "expected a JSON file of parameter names and values";
  let bytes: Uint8Array | null;
  try {
    bytes = await readRegularFile(await Deno.realPath(path), {
      maxBytes: MAX_PARAMETER_FILE_BYTES,
    });
  } catch (e) {
    const why = e instanceof FieldProblem
      ? `expected ${e.expected}, found ${e.found}`
      : (e as Error).message;
    throw new ParameterError(
      `--params ${path}: cannot read it (${why}); ${expected}`,
    );
  }
  if (bytes === null) {
    throw new ParameterError(
      `--params ${path}: cannot read it (it was removed while being opened); ${expected}`,
    );
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new ParameterError(
      `--params ${path}: expected UTF-8 text, found bytes that are not UTF-8; save the file as UTF-8 JSON`,
    );
  }
  return parseParameterFile(text, path);
}
