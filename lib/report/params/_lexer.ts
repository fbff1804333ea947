// The tokenizer of a parameters cell: a parameters cell is read, never run.

import { ParameterError } from "./parameter_error.ts";

export interface Token {
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

export interface Comment {
  start: number;
  text: string;
}

export const LITERALS_HELP =
  "parameters must be literal values (numbers, strings, true/false, null, " +
  "and arrays or objects of them); compute derived values in a later cell";

export function fail(line: number, message: string): never {
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

export function tokenize(
  src: string,
): { tokens: Token[]; comments: Comment[] } {
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
export function show(t: Token): string {
  return t.kind === "eof" ? "the end of the cell" : `"${t.text}"`;
}
