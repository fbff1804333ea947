/**
 * Markdown that cannot be turned against its reader: text from data,
 * parameters and errors escaped so that it stays text, and Markdown from
 * notebooks (prose cells, `text/markdown` outputs) cleaned of raw HTML that
 * could run script and of `javascript:`, `vbscript:` and `data:` links,
 * with the rest of it left as written.
 *
 * @module
 */

import { marked, type Token, type Tokens } from "marked";
import { isSafeUrl, sanitizeHtml } from "./sanitize.ts";

/**
 * Escapes text for a Markdown line (a table cell, a heading, a quote): the
 * characters that could start markup, an HTML tag, an entity, a link or a
 * table cell are backslash-escaped, and line breaks become spaces.
 *
 * @example
 * ```ts
 * import { escapeMarkdown } from "tokenlab/report/markdown_escape.ts";
 * console.log(escapeMarkdown("a|b <script> [x](javascript:y)"));
 * // a\|b \<script\> \[x\](javascript:y)
 * ```
 */
export function escapeMarkdown(text: string): string {
  return text.replace(/\r\n?|\n/g, " ")
    .replace(/[\\`*_[\]<>|&~]/g, (c) => `\\${c}`);
}

/** A token's children, whatever the kind of token keeps them in. */
function children(token: Token): Token[] {
  const t = token as Token & {
    tokens?: Token[];
    items?: Token[];
    header?: Tokens.TableCell[];
    rows?: Tokens.TableCell[][];
  };
  if (t.type === "table") {
    return [
      ...(t.header ?? []).flatMap((c) => c.tokens),
      ...(t.rows ?? []).flat().flatMap((c) => c.tokens),
    ];
  }
  return [...(t.tokens ?? []), ...(t.items ?? [])];
}

const LONE_CLOSING = /^<\/([a-zA-Z][a-zA-Z0-9-]*)\s*>$/;
const OPENING = /^<([a-zA-Z][a-zA-Z0-9-]*)/;

/**
 * The safe form of one raw-HTML token: a lone closing tag stays if its
 * element may stay; anything else goes through the HTML policy (which
 * closes what it opens, so the closing tag it adds to a lone opening tag is
 * taken off again).
 */
function safeHtml(raw: string): string {
  const trailing = /\s*$/.exec(raw)![0];
  const body = raw.slice(0, raw.length - trailing.length);
  const closing = LONE_CLOSING.exec(body);
  if (closing) {
    const name = closing[1].toLowerCase();
    return sanitizeHtml(`<${name}></${name}>`) === `<${name}></${name}>`
      ? `</${name}>${trailing}`
      : trailing;
  }
  let clean = sanitizeHtml(body);
  const opening = OPENING.exec(body);
  if (opening) {
    const end = `</${opening[1].toLowerCase()}>`;
    if (
      clean.endsWith(end) && !body.toLowerCase().includes(end)
    ) {
      clean = clean.slice(0, clean.length - end.length);
    }
  }
  return clean + trailing;
}

/** What replaces `token` in the Markdown, or null when it is safe as it is. */
function replacement(token: Token): string | null {
  switch (token.type) {
    case "html": {
      const clean = safeHtml(token.raw);
      return clean === token.raw ? null : clean;
    }
    case "link": {
      const t = token as Tokens.Link;
      return isSafeUrl(t.href, "link")
        ? null
        : `${escapeMarkdown(t.text)} (link removed: unsafe address)`;
    }
    case "image": {
      const t = token as Tokens.Image;
      return isSafeUrl(t.href, "image")
        ? null
        : `*(image ${escapeMarkdown(t.text)} removed: unsafe address)*`;
    }
    case "def": {
      const t = token as Tokens.Def;
      return isSafeUrl(t.href, "link")
        ? null
        : `[${t.tag}]: #unsafe-link-removed`;
    }
    default:
      return null;
  }
}

/** Every token of a tree in document order, parents before children. */
function* walk(tokens: readonly Token[]): Generator<Token> {
  for (const t of tokens) {
    yield t;
    yield* walk(children(t));
  }
}

/** The tokens that must be replaced, outermost only (a replaced link's text goes with it). */
function unsafeTokens(tokens: readonly Token[]): [Token, string][] {
  const found: [Token, string][] = [];
  const visit = (list: readonly Token[]) => {
    for (const t of list) {
      const r = replacement(t);
      if (r !== null) found.push([t, r]);
      else visit(children(t));
    }
  };
  visit(tokens);
  return found;
}

function isClean(markdown: string): boolean {
  return findUnsafeMarkdown(markdown).length === 0;
}

/**
 * One top-level block made safe: each unsafe token's raw text is replaced
 * where it stands (found in document order). When that cannot be done (a
 * token's raw text is not found as written, as inside a quote spanning
 * lines) or the result still reads unsafe, the block is kept as escaped
 * text instead: safe, if plain.
 */
function cleanBlock(block: Token): string {
  const raw = block.raw;
  const unsafe = unsafeTokens([block]);
  if (unsafe.length === 0) return raw;
  let out = "";
  let cursor = 0;
  let placed = true;
  // Leaf tokens in order move the cursor, so a replacement is made where
  // the token stands rather than at an earlier look-alike (in code, say).
  const targets = new Map(unsafe);
  const visit = (list: readonly Token[]): void => {
    for (const t of list) {
      if (!placed) return;
      const r = targets.get(t);
      const kids = r === undefined ? children(t) : [];
      if (r === undefined && kids.length) {
        visit(kids);
        continue;
      }
      const at = raw.indexOf(t.raw, cursor);
      if (r === undefined) {
        if (at >= 0 && t.raw.length) {
          out += raw.slice(cursor, at + t.raw.length);
          cursor = at + t.raw.length;
        }
        continue;
      }
      if (at < 0) {
        placed = false;
        return;
      }
      out += raw.slice(cursor, at) + r;
      cursor = at + t.raw.length;
    }
  };
  visit(children(block).length ? children(block) : [block]);
  out += raw.slice(cursor);
  if (placed && isClean(out)) return out;
  const end = /\n*$/.exec(raw)![0];
  return raw.slice(0, raw.length - end.length).split("\n")
    .map(escapeMarkdown).join("  \n") + end;
}

/**
 * Cleans Markdown written by a notebook (its prose cells, a `text/markdown`
 * output) for a Markdown report: raw HTML goes through the report's HTML
 * policy (so `<script>`, event attributes, `<iframe>`, `<svg>`, `<meta>` do
 * not survive; `<sub>` or `<br>` do), links and images whose address is
 * `javascript:`, `vbscript:` or `data:` (images: other than
 * `data:image/...`) are replaced by their text, reference definitions too;
 * code spans and blocks stay as written (they show their text, they do not
 * run it).
 *
 * @example
 * ```ts
 * import { sanitizeMarkdown } from "tokenlab/report/markdown_escape.ts";
 * console.log(sanitizeMarkdown("**ok** <img src=x onerror=alert(1)> [x](javascript:alert(2)) `<b>`"));
 * // **ok** <img /> x (link removed: unsafe address) `<b>`
 * ```
 */
export function sanitizeMarkdown(markdown: string): string {
  // The blocks' raw texts are what the lexer read (line ends normalised):
  // joined, they are the document.
  return marked.lexer(markdown).map(cleanBlock).join("");
}

/**
 * The raw texts of the parts of `markdown` that {@linkcode sanitizeMarkdown}
 * would replace (unsafe HTML, links, images, definitions): empty for
 * Markdown that is safe as it is.
 *
 * @example
 * ```ts
 * import { findUnsafeMarkdown } from "tokenlab/report/markdown_escape.ts";
 * console.log(findUnsafeMarkdown("[x](javascript:alert(1)) and `<script>`"));
 * // [ "[x](javascript:alert(1))" ]
 * ```
 */
export function findUnsafeMarkdown(markdown: string): string[] {
  return [...walk(marked.lexer(markdown))]
    .filter((t) => replacement(t) !== null)
    .map((t) => t.raw);
}
