/**
 * The sanitiser policy of the reports: which HTML a notebook's outputs (and
 * its Markdown, once rendered) may put into a report page, enforced with the
 * kept `sanitize-html` library, never with regular expressions.
 *
 * What survives is what the kit's own display bundles and Markdown produce:
 * text formatting, lists, tables with alignment, code, links to http(s),
 * mailto and the same folder, images from `data:image/...` URIs, and inline
 * styles limited to layout and colour. Everything that can run script or
 * reach the network is dropped: `<script>`, `<iframe>`, `<object>`,
 * `<svg>`, `<meta>`, `<base>`, `<form>`, every `on*` attribute,
 * `javascript:`, `vbscript:` and non-image `data:` URLs, and CSS beyond the
 * allowed properties (no `url()`, no positioning).
 *
 * @module
 */

import sanitizeHtmlLibrary from "sanitize-html";

/** What a tag transform of sanitize-html takes and gives. */
type Transform = (
  tagName: string,
  attribs: Record<string, string>,
) => { tagName: string; attribs: Record<string, string> };

/** The options of sanitize-html this policy sets (the package has no types of its own). */
interface LibraryOptions {
  allowedTags: string[];
  allowedAttributes: Record<string, string[]>;
  allowedStyles: Record<string, Record<string, RegExp[]>>;
  allowedSchemes: string[];
  allowedSchemesByTag: Record<string, string[]>;
  allowedSchemesAppliedToAttributes: string[];
  allowProtocolRelative: boolean;
  nonTextTags: string[];
  transformTags: Record<string, Transform>;
}

const sanitize = sanitizeHtmlLibrary as unknown as (
  html: string,
  options: LibraryOptions,
) => string;

/**
 * Class names and id prefixes the report page itself uses to find its
 * figures; an output that carried them could make the page's drawing loop
 * or the browser check look at the wrong element.
 */
const RESERVED_CLASSES = new Set(["tokenlab-plotly"]);
const RESERVED_ID = /^tokenlab-fig-/i;

const ALLOWED_TAGS = [
  "h1",
  "h2",
  "h3",
  "h4",
  "h5",
  "h6",
  "p",
  "br",
  "hr",
  "blockquote",
  "pre",
  "code",
  "kbd",
  "samp",
  "var",
  "em",
  "strong",
  "b",
  "i",
  "u",
  "s",
  "del",
  "ins",
  "sub",
  "sup",
  "small",
  "mark",
  "abbr",
  "span",
  "div",
  "section",
  "footer",
  "figure",
  "figcaption",
  "details",
  "summary",
  "ul",
  "ol",
  "li",
  "dl",
  "dt",
  "dd",
  "a",
  "img",
  "table",
  "caption",
  "colgroup",
  "col",
  "thead",
  "tbody",
  "tfoot",
  "tr",
  "th",
  "td",
  // GitHub-style task lists (marked writes disabled checkboxes).
  "input",
];

// Values of the allowed CSS properties: words, numbers with units, colours
// and simple functions (rgb(), hsl()); nothing that can fetch (url(),
// image-set()) or escape the declaration (quotes, backslashes, comments).
const CSS_VALUE = /^[-a-zA-Z0-9#%., ()]*$/;
const CSS_COLOR =
  /^(#[0-9a-fA-F]{3,8}|[a-zA-Z]+|(rgb|rgba|hsl|hsla)\([0-9.,% ]+\))$/;
const CSS_LENGTH =
  /^-?[0-9.]+(px|em|rem|%|ex|ch|pt|vw|vh)?( -?[0-9.]+(px|em|rem|%|ex|ch|pt|vw|vh)?){0,3}$/;
const CSS_KEYWORD = /^[a-zA-Z-]+( [a-zA-Z-]+)*$/;

const ALLOWED_STYLES: Record<string, RegExp[]> = {
  "text-align": [/^(left|right|center|justify|start|end)$/],
  "vertical-align": [CSS_KEYWORD, CSS_LENGTH],
  "color": [CSS_COLOR],
  "background": [CSS_COLOR],
  "background-color": [CSS_COLOR],
  "font-family": [/^[-a-zA-Z0-9 ,]+$/],
  "font-size": [CSS_LENGTH, CSS_KEYWORD],
  "font-weight": [/^(normal|bold|bolder|lighter|[1-9]00)$/],
  "font-style": [/^(normal|italic|oblique)$/],
  "font-variant-numeric": [CSS_KEYWORD],
  "white-space": [CSS_KEYWORD],
  "display": [
    /^(block|inline|inline-block|flex|inline-flex|grid|table|table-cell|table-row|none)$/,
  ],
  "flex": [CSS_VALUE],
  "align-items": [CSS_KEYWORD],
  "justify-content": [CSS_KEYWORD],
  "gap": [CSS_LENGTH],
  "width": [CSS_LENGTH, /^auto$/],
  "height": [CSS_LENGTH, /^auto$/],
  "max-width": [CSS_LENGTH, /^none$/],
  "min-width": [CSS_LENGTH],
  "max-height": [CSS_LENGTH, /^none$/],
  "margin": [CSS_LENGTH, /^auto$/],
  "padding": [CSS_LENGTH],
  "border": [CSS_VALUE],
  "border-radius": [CSS_LENGTH],
  "overflow": [/^(hidden|auto|scroll|visible)$/],
  "image-rendering": [CSS_KEYWORD],
  "opacity": [/^[0-9.]+$/],
};

/** Only data: URIs of raster or SVG images (an SVG in <img> runs no script). */
const IMAGE_DATA = /^data:image\/(png|jpeg|gif|webp|svg\+xml)[;,]/i;

/** The character of a numeric reference (U+FFFD past the last code point). */
function codePoint(n: number): string {
  return n <= 0x10ffff ? String.fromCodePoint(n) : "\ufffd";
}

/**
 * The scheme of `url` as a browser would read it (lower case, with the
 * characters it skips removed), or null for a relative URL.
 */
function urlScheme(url: string): string | null {
  // Browsers drop ASCII whitespace and control characters from URLs, and a
  // Markdown or HTML entity may hide the colon; decode the ones that can.
  const bare = url
    .replace(
      /&#x0*([0-9a-f]+);?/gi,
      (_, h) => codePoint(parseInt(h, 16)),
    )
    .replace(/&#0*([0-9]+);?/g, (_, d) => codePoint(Number(d)))
    .replace(/&colon;/gi, ":")
    // deno-lint-ignore no-control-regex
    .replace(/[\u0000-\u0020\u007f]/g, "");
  const m = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(bare);
  if (m) return m[1].toLowerCase();
  // A named entity before the first path character might still be a colon
  // in some reader: not a plain relative URL.
  const head = bare.split(/[/?#]/, 1)[0];
  return head.includes("&") ? "unknown" : null;
}

/** What a link or image URL may be, in a report. */
export type UrlUse = "link" | "image";

/**
 * Whether `url` is allowed in a report: links to http(s), mailto or a
 * relative place (`#anchor`, `other.md`); images as `data:image/...` or a
 * relative file (the Markdown report's figures). The HTML policy takes
 * `data:image/...` images only.
 *
 * @example
 * ```ts
 * import { isSafeUrl } from "tokenlab/report/sanitize.ts";
 * console.log(isSafeUrl("https://arxiv.org/abs/2104.10858", "link")); // true
 * console.log(isSafeUrl("java\nscript:alert(1)", "link")); // false
 * console.log(isSafeUrl("data:image/png;base64,AAAA", "image")); // true
 * ```
 */
export function isSafeUrl(url: string, use: UrlUse): boolean {
  const scheme = urlScheme(url);
  if (scheme === null) {
    // "//host/path" is another site, not a relative path.
    // deno-lint-ignore no-control-regex
    return !/^[\s\u0000-\u001f]*[/\\]{2}/.test(url);
  }
  if (use === "image") return scheme === "data" && IMAGE_DATA.test(url.trim());
  return scheme === "http" || scheme === "https" || scheme === "mailto";
}

/** Drops the classes and ids that the report page reserves for itself. */
function withoutReserved(
  attribs: Record<string, string>,
): Record<string, string> {
  const out = { ...attribs };
  if (out.class !== undefined) {
    const kept = out.class.split(/\s+/).filter((c) =>
      c && !RESERVED_CLASSES.has(c.toLowerCase())
    );
    if (kept.length) out.class = kept.join(" ");
    else delete out.class;
  }
  if (out.id !== undefined && RESERVED_ID.test(out.id.trim())) delete out.id;
  return out;
}

const OPTIONS: LibraryOptions = {
  allowedTags: ALLOWED_TAGS,
  allowedAttributes: {
    "*": ["class", "title", "style", "lang", "dir"],
    a: ["href"],
    img: ["src", "alt", "width", "height"],
    table: ["id"],
    th: ["colspan", "rowspan", "align", "scope"],
    td: ["colspan", "rowspan", "align"],
    col: ["span"],
    colgroup: ["span"],
    ol: ["start", "reversed"],
    details: ["open"],
    input: ["type", "checked", "disabled"],
    abbr: ["title"],
  },
  allowedStyles: { "*": ALLOWED_STYLES },
  // Links: the web and mail; images: checked below (data:image only).
  allowedSchemes: ["http", "https", "mailto"],
  allowedSchemesByTag: { img: ["data"] },
  allowedSchemesAppliedToAttributes: ["href", "src", "cite"],
  allowProtocolRelative: false,
  // The content of these is never text a reader should see.
  nonTextTags: [
    "script",
    "style",
    "textarea",
    "option",
    "noscript",
    "template",
    "title",
    "xmp",
    "noembed",
    "noframes",
    "iframe",
    "object",
  ],
  transformTags: {
    "*": (tagName, attribs) => ({
      tagName,
      attribs: withoutReserved(attribs),
    }),
    img: (tagName, attribs) => {
      const out = withoutReserved(attribs);
      // The page fetches nothing, not even a file beside it.
      if (out.src !== undefined && !IMAGE_DATA.test(out.src.trim())) {
        delete out.src;
      }
      return { tagName, attribs: out };
    },
    a: (tagName, attribs) => {
      const out = withoutReserved(attribs);
      if (out.href !== undefined && !isSafeUrl(out.href, "link")) {
        delete out.href;
      }
      return { tagName, attribs: out };
    },
    // Only the read-only checkbox of a task list.
    input: (tagName, attribs) => ({
      tagName,
      attribs: {
        type: "checkbox",
        disabled: "",
        ...(attribs.checked !== undefined ? { checked: "" } : {}),
      },
    }),
  },
};

/**
 * Sanitises HTML for a report page with the report policy (see the module
 * documentation): the safe structure and text stay, anything that could run
 * script or fetch from the network is dropped.
 *
 * @example
 * ```ts
 * import { sanitizeHtml } from "tokenlab/report/sanitize.ts";
 * console.log(sanitizeHtml('<b>ok</b><img src=x onerror="alert(1)"><script>alert(2)</script>'));
 * // <b>ok</b><img />
 * ```
 */
export function sanitizeHtml(html: string): string {
  return sanitize(html, OPTIONS);
}
