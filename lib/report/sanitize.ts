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
 * SVG (an output's `image/svg+xml`, written beside the Markdown report and
 * put into the HTML page as an image) has its own allow-list,
 * {@linkcode sanitizeSvg}: the shapes, text, groups, clip paths and
 * gradients that the kit's figures and plotly draw, links only to
 * `#fragments` of the same drawing, embedded raster images only as base64
 * `data:` URIs; no script, `foreignObject`, `style` element, animation,
 * filter, `on*` attribute or `url()` that leaves the drawing.
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

// ---------------------------------------------------------------------------
// Base64 and SVG

/**
 * `text` as base64 with its whitespace removed, or null when it is not
 * strict base64 (only `A-Z a-z 0-9 + /`, at most two `=` at the end, and a
 * length that decodes): what an image output must be before it is put into
 * a `data:` URI or decoded.
 *
 * @example
 * ```ts
 * import { strictBase64 } from "tokenlab/report/sanitize.ts";
 * console.log(strictBase64("iVBO\nRw0K")); // "iVBORw0K"
 * console.log(strictBase64('AAAA"><meta>')); // null
 * ```
 */
export function strictBase64(text: string): string | null {
  const compact = text.replace(/\s/g, "");
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(compact)) return null;
  // A length of 4k+1 cannot be decoded; padding only completes a quartet.
  if (compact.length % 4 === 1) return null;
  if (compact.includes("=") && compact.length % 4 !== 0) return null;
  return compact;
}

const SVG_NS = "http://www.w3.org/2000/svg";
const XLINK_NS = "http://www.w3.org/1999/xlink";

/** Presentation attributes any drawn SVG element may carry. */
const SVG_PRESENTATION = [
  "id",
  "class",
  "style",
  "transform",
  "fill",
  "fill-opacity",
  "fill-rule",
  "stroke",
  "stroke-width",
  "stroke-opacity",
  "stroke-dasharray",
  "stroke-dashoffset",
  "stroke-linejoin",
  "stroke-linecap",
  "stroke-miterlimit",
  "opacity",
  "clip-path",
  "clip-rule",
  "mask",
  "marker-start",
  "marker-mid",
  "marker-end",
  "font-family",
  "font-size",
  "font-weight",
  "font-style",
  "text-anchor",
  "dominant-baseline",
  "alignment-baseline",
  "letter-spacing",
  "text-decoration",
  "vector-effect",
  "visibility",
  "display",
  "shape-rendering",
  "text-rendering",
  "image-rendering",
  "color",
  "paint-order",
  "pointer-events",
  "xml:space",
];

const BOX = ["x", "y", "width", "height"];

/** SVG elements and their own attributes (beyond the presentation ones). */
const SVG_ELEMENTS: Record<string, string[]> = {
  svg: [
    ...BOX,
    "xmlns",
    "xmlns:xlink",
    "version",
    "viewBox",
    "preserveAspectRatio",
  ],
  g: [],
  defs: [],
  title: [],
  desc: [],
  clipPath: ["clipPathUnits"],
  mask: [...BOX, "maskUnits", "maskContentUnits"],
  symbol: [...BOX, "viewBox", "preserveAspectRatio"],
  use: [...BOX, "href", "xlink:href"],
  rect: [...BOX, "rx", "ry"],
  circle: ["cx", "cy", "r"],
  ellipse: ["cx", "cy", "rx", "ry"],
  line: ["x1", "y1", "x2", "y2"],
  polyline: ["points"],
  polygon: ["points"],
  path: ["d", "pathLength"],
  text: ["x", "y", "dx", "dy", "rotate", "textLength", "lengthAdjust"],
  tspan: ["x", "y", "dx", "dy", "rotate", "textLength", "lengthAdjust"],
  image: [...BOX, "href", "xlink:href", "preserveAspectRatio"],
  linearGradient: [
    "x1",
    "y1",
    "x2",
    "y2",
    "gradientUnits",
    "gradientTransform",
    "spreadMethod",
    "href",
    "xlink:href",
  ],
  radialGradient: [
    "cx",
    "cy",
    "r",
    "fx",
    "fy",
    "fr",
    "gradientUnits",
    "gradientTransform",
    "spreadMethod",
    "href",
    "xlink:href",
  ],
  stop: ["offset", "stop-color", "stop-opacity"],
  pattern: [
    ...BOX,
    "viewBox",
    "patternUnits",
    "patternContentUnits",
    "patternTransform",
    "href",
    "xlink:href",
  ],
  marker: [
    "viewBox",
    "markerWidth",
    "markerHeight",
    "refX",
    "refY",
    "orient",
    "markerUnits",
    "preserveAspectRatio",
  ],
};

/** A reference to an element of the same drawing. */
const FRAGMENT = /^#[-\w.:]+$/;
/** `url(#id)`, the only `url()` a drawing may use: nothing is fetched. */
const URL_FRAGMENT = /^url\(\s*(['"]?)#[-\w.:]+\1\s*\)$/i;
/** The functions an SVG attribute or style value may call. */
const SVG_FUNCTIONS = new Set([
  "rgb",
  "rgba",
  "hsl",
  "hsla",
  "matrix",
  "translate",
  "scale",
  "rotate",
  "skewx",
  "skewy",
  "url",
]);

/**
 * Whether an SVG attribute or style value stays inside the drawing: no CSS
 * escape (which could spell a function), every function one of
 * {@linkcode SVG_FUNCTIONS} and every `url()` a `#fragment`.
 */
function isSafeSvgValue(value: string): boolean {
  if (/[\\<>@]/.test(value)) return false;
  for (const m of value.matchAll(/([-\w]*)\s*\(/g)) {
    if (!SVG_FUNCTIONS.has(m[1].toLowerCase())) return false;
  }
  for (const m of value.matchAll(/url\s*\([^)]*\)?/gi)) {
    if (!URL_FRAGMENT.test(m[0])) return false;
  }
  return true;
}

/** An embedded raster image: a base64 `data:` URI of PNG, JPEG, GIF or WebP. */
function isImageDataUri(href: string): boolean {
  const m = /^data:image\/(png|jpeg|gif|webp);base64,(.*)$/s.exec(href);
  return m !== null && strictBase64(m[2]) === m[2];
}

// Style values of the SVG policy: colours, lengths, keywords, fragments.
const SVG_STYLE_PAINT = [CSS_COLOR, URL_FRAGMENT];
const SVG_STYLE_NUMBER = [/^-?[0-9.]+(px|em|rem|%|pt)?$/];
const SVG_STYLES: Record<string, RegExp[]> = {
  "fill": SVG_STYLE_PAINT,
  "stroke": SVG_STYLE_PAINT,
  "stop-color": [CSS_COLOR],
  "color": [CSS_COLOR],
  "fill-opacity": SVG_STYLE_NUMBER,
  "stroke-opacity": SVG_STYLE_NUMBER,
  "stop-opacity": SVG_STYLE_NUMBER,
  "opacity": SVG_STYLE_NUMBER,
  "stroke-width": SVG_STYLE_NUMBER,
  "stroke-dasharray": [/^[0-9., px%]+$/, /^none$/],
  "stroke-linejoin": [CSS_KEYWORD],
  "stroke-linecap": [CSS_KEYWORD],
  "fill-rule": [CSS_KEYWORD],
  "font-family": [/^[-a-zA-Z0-9 ,'"]+$/],
  "font-size": [CSS_LENGTH, CSS_KEYWORD],
  "font-weight": [/^(normal|bold|bolder|lighter|[1-9]00)$/],
  "font-style": [/^(normal|italic|oblique)$/],
  "text-anchor": [CSS_KEYWORD],
  "dominant-baseline": [CSS_KEYWORD],
  "white-space": [CSS_KEYWORD],
  "image-rendering": [CSS_KEYWORD],
  "shape-rendering": [CSS_KEYWORD],
  "vector-effect": [CSS_KEYWORD],
  "visibility": [CSS_KEYWORD],
  "display": [CSS_KEYWORD],
  "clip-path": [URL_FRAGMENT, /^none$/],
  "pointer-events": [CSS_KEYWORD],
};

/** The attributes of one SVG element that stay inside the drawing. */
function svgAttributes(
  tagName: string,
  attribs: Record<string, string>,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(attribs)) {
    if (name === "href" || name === "xlink:href") {
      const ok = tagName === "image"
        ? isImageDataUri(value.trim())
        : FRAGMENT.test(value.trim());
      if (ok) out[name] = value.trim();
    } else if (name === "xmlns") {
      if (value === SVG_NS) out[name] = value;
    } else if (name === "xmlns:xlink") {
      if (value === XLINK_NS) out[name] = value;
    } else if (name === "style" || isSafeSvgValue(value)) {
      // Styles are checked property by property by the library.
      out[name] = value;
    }
  }
  // A drawing written to a file of its own needs its namespace.
  if (tagName === "svg" && out.xmlns === undefined) out.xmlns = SVG_NS;
  return out;
}

const SVG_OPTIONS = {
  allowedTags: Object.keys(SVG_ELEMENTS),
  allowedAttributes: Object.fromEntries(
    Object.entries(SVG_ELEMENTS).map((
      [tag, own],
    ) => [tag, [...own, ...SVG_PRESENTATION]]),
  ),
  allowedStyles: { "*": SVG_STYLES },
  // Addresses are checked by svgAttributes; the library lets data: through
  // for images only, as a second fence.
  allowedSchemes: [],
  allowedSchemesByTag: { image: ["data"] },
  allowedSchemesAppliedToAttributes: ["href", "xlink:href"],
  allowProtocolRelative: false,
  nonTextTags: [
    "script",
    "style",
    "foreignObject",
    "textarea",
    "noscript",
    "template",
    "iframe",
    "object",
  ],
  transformTags: {
    "*": (tagName: string, attribs: Record<string, string>) => ({
      tagName,
      attribs: svgAttributes(tagName, attribs),
    }),
  },
  // SVG names are case-sensitive (clipPath, viewBox); `<rect/>` closes.
  parser: {
    lowerCaseTags: false,
    lowerCaseAttributeNames: false,
    recognizeSelfClosing: true,
  },
};

const sanitizeSvgWith = sanitizeHtmlLibrary as unknown as (
  svg: string,
  options: typeof SVG_OPTIONS,
) => string;

/**
 * Sanitises an SVG drawing with the SVG policy (see the module
 * documentation): what the kit's figures and plotly draw stays as it was,
 * anything that could run script or fetch is dropped. The result is a
 * stand-alone drawing (it has the SVG namespace), safe to write to a file a
 * browser opens; it is empty when nothing drawable was left (no `<svg>`).
 *
 * @example
 * ```ts
 * import { sanitizeSvg } from "tokenlab/report/sanitize.ts";
 * console.log(sanitizeSvg('<svg onload="alert(1)"><script>alert(2)</script><rect width="2" height="2" fill="red"/></svg>'));
 * // <svg xmlns="http://www.w3.org/2000/svg"><rect width="2" height="2" fill="red"></rect></svg>
 * ```
 */
export function sanitizeSvg(svg: string): string {
  const out = sanitizeSvgWith(svg, SVG_OPTIONS);
  // Text outside the drawing (left of a DOCTYPE's internal subset, say) is
  // not part of it, and would make the file an XML error.
  const start = out.search(/<svg[\s>]/);
  const end = out.lastIndexOf("</svg>");
  return start < 0 || end < start
    ? ""
    : out.slice(start, end + "</svg>".length);
}
