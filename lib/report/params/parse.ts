/**
 * Reading a parameters cell: its declarations, their types, defaults and
 * help texts, and finding the cell in a notebook.
 *
 * @module
 */

import { cellSource, type Notebook } from "../notebook.ts";
import {
  MAX_PARAMETER_DEPTH,
  MAX_PARAMETERS_SOURCE,
  PARAMETERS_TAG,
  type ParameterSpec,
  type ParameterType,
} from "./spec.ts";
import { ParameterError } from "./parameter_error.ts";
import { fail, LITERALS_HELP, show, type Token, tokenize } from "./_lexer.ts";
import { defineKey, isParametersCell, typeOf } from "./_common.ts";

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
  /**
   * Reads what follows an item of a list or object: true for its closing
   * `close`, false for ",", and a failure naming both for anything else.
   */
  closes(container: "list" | "object", close: "]" | "}"): boolean {
    const sep = this.next();
    if (sep.kind === "punct" && sep.text === close) return true;
    if (!(sep.kind === "punct" && sep.text === ",")) {
      fail(
        sep.line,
        `in the ${container} of "${this.name}": expected "," or "${close}", found ${
          show(sep)
        }; ${LITERALS_HELP}`,
      );
    }
    return false;
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
        if (this.closes("list", "]")) return { value: items, integer: false };
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
        if (this.closes("object", "}")) return { value: obj, integer: false };
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
 *
 * @example
 * ```ts
 * import { parseParameters } from "tokenlab/report/params/mod.ts";
 * const [seed, scale] = parseParameters(
 *   'const seed = 3; // the run\'s seed\nconst scale: "smoke" | "full" = "smoke";',
 * );
 * console.log(seed.name, seed.type, seed.integer, seed.comment); // seed number true the run's seed
 * console.log(scale.choices); // ["smoke", "full"]
 * ```
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
/**
 * The notebook's parameters cell (0-based `index`) and its declarations, or
 * `null` when no cell is tagged `parameters`. Throws
 * {@linkcode ParameterError} when two cells are tagged, when the tagged cell
 * is not a code cell, or when its declarations cannot be read.
 *
 * @example
 * ```ts
 * import { findParameterCell } from "tokenlab/report/params/mod.ts";
 * import type { Notebook } from "tokenlab/report/notebook.ts";
 * const nb: Notebook = {
 *   nbformat: 4, nbformat_minor: 5, metadata: {},
 *   cells: [{
 *     cell_type: "code", execution_count: null, outputs: [],
 *     metadata: { tags: ["parameters"] }, source: "const seed = 3;",
 *   }],
 * };
 * console.log(findParameterCell(nb)?.specs[0].default); // 3
 * ```
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
