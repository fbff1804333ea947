/**
 * Reports cannot be turned against their readers: hostile values printed by
 * a notebook (through Deno.jupyter.md, text/html and text/markdown bundles,
 * a parameter, a figure title, a headline and an error) reach the HTML and
 * Markdown reports and the index as text, never as live markup; every HTML
 * page carries a policy whose hashes are exactly its own scripts; and the
 * browser check fails (without hanging) on a page where foreign script runs.
 */

import { marked } from "marked";
import {
  assert,
  assertEquals,
  assertMatch,
  assertStringIncludes,
} from "./_assert.ts";
import {
  browserTest as sharedBrowserTest,
  checkHtml,
  chromiumSkip,
  ROOT,
} from "./_helpers.ts";
import type { Browser } from "../lib/report/browser.ts";
import { reportCsp } from "../lib/report/csp.ts";
import {
  escapeMarkdown,
  findUnsafeMarkdown,
  sanitizeMarkdown,
} from "../lib/report/markdown_escape.ts";
import { pageCheckProblems, runReports } from "../lib/report/run.ts";
import {
  isSafeUrl,
  sanitizeHtml,
  sanitizeSvg,
  strictBase64,
} from "../lib/report/sanitize.ts";
import { renderHtml, renderMarkdown } from "../lib/report/render.ts";
import { trainingFigure } from "../lib/train/training_figure.ts";
import { MixedBatchView, showScoreMap } from "tokenlab";

// A missing Chromium is reported as skipped, never as a pass.
const noBrowser = await chromiumSkip();
if (noBrowser) {
  console.warn(`report_security_test: browser parts skipped: ${noBrowser}`);
}

/** Every payload of the review, in one string. */
const HOSTILE = [
  "<script>alert(1)</script>",
  "<img src=x onerror=alert(2)>",
  "[x](javascript:alert(3))",
  "<svg onload=alert(4)>",
  `<iframe srcdoc="<script>alert(5)</script>"></iframe>`,
  `<a href="javascript:alert(6)">a</a>`,
  `<meta http-equiv="refresh" content="0;url=javascript:alert(7)">`,
].join(" ");

// ---------------------------------------------------------------------------
// A small HTML tag reader for the checks: tags with their attributes, and
// the raw text of script and style elements (which hold no tags).

interface Tag {
  name: string;
  attrs: Record<string, string>;
  /** The raw text of a script or style element. */
  text?: string;
}

const ATTR = /([^\s"'>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g;

function readTags(html: string): Tag[] {
  const tags: Tag[] = [];
  let i = 0;
  while (i < html.length) {
    const lt = html.indexOf("<", i);
    if (lt < 0) break;
    if (html.startsWith("<!--", lt)) {
      i = html.indexOf("-->", lt) + 3;
      continue;
    }
    const m =
      /^<([a-zA-Z][a-zA-Z0-9:-]*)((?:\s+[^\s"'>/=]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'=<>`]+))?)*)\s*\/?>/
        .exec(html.slice(lt));
    if (!m) {
      i = lt + 1;
      continue;
    }
    const name = m[1].toLowerCase();
    const attrs: Record<string, string> = {};
    for (const a of m[2].matchAll(ATTR)) {
      attrs[a[1].toLowerCase()] = a[2] ?? a[3] ?? a[4] ?? "";
    }
    i = lt + m[0].length;
    const tag: Tag = { name, attrs };
    if (name === "script" || name === "style") {
      const end = html.toLowerCase().indexOf(`</${name}`, i);
      tag.text = html.slice(i, end);
      i = end;
    }
    tags.push(tag);
  }
  return tags;
}

/** The problems that would let a page run script other than its own. */
function liveMarkup(tags: readonly Tag[]): string[] {
  const found: string[] = [];
  for (const t of tags) {
    if (["iframe", "svg", "object", "embed", "base", "form"].includes(t.name)) {
      found.push(`<${t.name}>`);
    }
    if (
      t.name === "meta" && t.attrs["http-equiv"] !== undefined &&
      t.attrs["http-equiv"].toLowerCase() !== "content-security-policy"
    ) found.push(`<meta http-equiv=${t.attrs["http-equiv"]}>`);
    for (const [k, v] of Object.entries(t.attrs)) {
      if (k.startsWith("on")) found.push(`<${t.name} ${k}=...>`);
      // deno-lint-ignore no-control-regex
      const bare = v.replace(/[\u0000-\u0020]/g, "").toLowerCase();
      if (/^(javascript|vbscript):/.test(bare) || /^data:text/.test(bare)) {
        found.push(`<${t.name} ${k}="${v}">`);
      }
      if (k === "srcdoc") found.push(`<${t.name} srcdoc>`);
    }
  }
  return found;
}

async function sha256(text: string): Promise<string> {
  const d = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(text),
  );
  return `'sha256-${btoa(String.fromCharCode(...new Uint8Array(d)))}'`;
}

/** The directives of a policy, by name. */
function directives(csp: string): Map<string, string[]> {
  return new Map(
    csp.split(";").map((d) => d.trim()).filter(Boolean).map((d) => {
      const [name, ...values] = d.split(/\s+/);
      return [name, values];
    }),
  );
}

/** Markdown with its fenced blocks (cell sources, streams) left out. */
function outsideFences(md: string): string {
  return md.replace(/^(`{3,})[^\n]*\n[\s\S]*?\n\1$/gm, "");
}

// ---------------------------------------------------------------------------
// The sanitiser and the escaping, against hand-written expectations.

Deno.test("sanitizeHtml keeps the kit's markup and drops what could run", () => {
  const kit =
    `<table class="tokenlab-table" id="t1"><caption>c</caption><thead><tr><th class="num" style="text-align:right">a</th></tr></thead><tbody><tr><td class="num diff diff-pos" style="text-align:right">1</td></tr></tbody></table>` +
    `<p class="tokenlab-table-notes">n<br /></p><img class="tokenlab-static" alt="f" src="data:image/svg+xml;base64,PHN2Zy8+" /><pre>t</pre>` +
    `<div style="display:flex;align-items:center;gap:8px;margin:4px 0"><div style="width:50.0%;height:100%;background:#1f77b4"></div></div>`;
  assertEquals(sanitizeHtml(kit), kit);
  assertEquals(
    sanitizeHtml(
      `<p onclick="x()">a</p><script>alert(1)</script><img src=x onerror=alert(2)>` +
        `<svg onload=alert(4)></svg><iframe srcdoc="<script>alert(5)</script>"></iframe>` +
        `<a href="javascript:alert(6)">b</a><a href=" java&#x09;script:alert(6)">c</a>` +
        `<meta http-equiv="refresh" content="0"><base href="https://e.com/">` +
        `<img src="https://e.com/t.png"><img src="data:text/html,x">` +
        `<span style="position:fixed;color:red;background:url(https://e.com/x)">d</span>` +
        `<div class="tokenlab-plotly" id="tokenlab-fig-1">e</div>`,
    ),
    `<p>a</p><img /><a>b</a><a>c</a><img /><img /><span style="color:red">d</span><div>e</div>`,
  );
});

Deno.test("escapeMarkdown leaves no markup, link, tag or cell break", () => {
  assertEquals(
    escapeMarkdown("a|b <img src=x> [x](javascript:y) `c` *d* _e_ &amp;\nf"),
    "a\\|b \\<img src=x\\> \\[x\\](javascript:y) \\`c\\` \\*d\\* \\_e\\_ \\&amp; f",
  );
  assertEquals(escapeMarkdown("plain words 1.5"), "plain words 1.5");
});

Deno.test("sanitizeMarkdown keeps prose and code, drops script and unsafe links", () => {
  const md = [
    "# Title *ok*",
    "",
    "Text with `<script>in code</script>` and [a link](https://arxiv.org/abs/2104.10858) and <sub>2</sub>.",
    "",
    "Bad: [x](javascript:alert(3)) <img src=x onerror=alert(2)> <JAVASCRIPT:alert(5)>",
    "",
    "[r]: vbscript:alert(6)",
    "",
    "<script>alert(1)</script>",
    "",
    "```html",
    "<script>shown as code</script>",
    "```",
    "",
    "![pic](data:text/html;base64,eA==) ![fig](x_files/cell1-1.png)",
  ].join("\n");
  assertEquals(
    sanitizeMarkdown(md),
    [
      "# Title *ok*",
      "",
      "Text with `<script>in code</script>` and [a link](https://arxiv.org/abs/2104.10858) and <sub>2</sub>.",
      "",
      "Bad: x (link removed: unsafe address) <img /> JAVASCRIPT:alert(5) (link removed: unsafe address)",
      "",
      "[r]: #unsafe-link-removed",
      "",
      "",
      "",
      "```html",
      "<script>shown as code</script>",
      "```",
      "",
      "*(image pic removed: unsafe address)* ![fig](x_files/cell1-1.png)",
    ].join("\n"),
  );
  assertEquals(findUnsafeMarkdown(sanitizeMarkdown(HOSTILE)), []);
  assertEquals(findUnsafeMarkdown(HOSTILE).length > 0, true);
});

Deno.test("isSafeUrl: the web, mail and relative places; no script schemes", () => {
  const links: [string, boolean][] = [
    ["https://a.b/c", true],
    ["mailto:x@y.z", true],
    ["#part", true],
    ["other.md", true],
    ["javascript:alert(1)", false],
    [" JavaScript:alert(1)", false],
    ["java\tscript:alert(1)", false],
    ["javascript&#58;alert(1)", false],
    ["javascript&colon;alert(1)", false],
    ["vbscript:x", false],
    ["data:text/html,x", false],
    ["//evil.example/x", false],
  ];
  assertEquals(
    links.map(([u]) => isSafeUrl(u, "link")),
    links.map((l) => l[1]),
  );
  assertEquals(isSafeUrl("data:image/png;base64,AA", "image"), true);
  assertEquals(isSafeUrl("data:image/svg+xml;base64,AA", "image"), true);
  assertEquals(isSafeUrl("data:text/html;base64,AA", "image"), false);
  assertEquals(isSafeUrl("x_files/a.png", "image"), true);
});

Deno.test("reportCsp: scripts and styles by their SHA-256, nothing fetched", async () => {
  const csp = reportCsp({ scripts: ["draw()", "draw()"], styles: ["b{}"] });
  const d = directives(csp);
  assertEquals(d.get("default-src"), ["'none'"]);
  assertEquals(d.get("script-src"), [
    await sha256("draw()"),
    "'report-sample'",
  ]);
  assertEquals(d.get("style-src-elem"), [
    await sha256("b{}"),
    "'report-sample'",
  ]);
  assertEquals(d.get("img-src"), ["data:"]);
  assertEquals(d.get("base-uri"), ["'none'"]);
  assertEquals(directives(reportCsp()).get("script-src"), ["'none'"]);
});

// ---------------------------------------------------------------------------
// Images: strict base64 only; SVG through its allow-list.

/** An image value that closes the data URI and writes a meta refresh and a fake figure. */
const IMAGE_PAYLOAD =
  `AAAA"><meta/http-equiv="refresh"/content="0;url=https://evil.example"><style>body{display:none}</style><script type="application/json" id="tokenlab-fig-1-data">{}</script>`;

/** An SVG that runs script, fetches and links out in every way the review named. */
const SVG_PAYLOAD =
  `<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY e "x">]><svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)" width="10">` +
  `<script>alert(2)</script><foreignObject><iframe src="javascript:alert(3)"></iframe></foreignObject>` +
  `<a href="javascript:alert(4)"><text>t</text></a><image href="https://evil.example/x.png"/>` +
  `<use xlink:href="data:image/svg+xml;base64,AA#x"/><animate attributeName="href" to="javascript:alert(5)"/>` +
  `<rect fill="url(https://evil.example/p#a)" style="fill:url(https://evil.example/q);stroke:red" clip-path="url(#ok)" mask="u\\72l(x)" onclick="alert(6)"/>` +
  `<style>@import url(https://evil.example/s.css)</style><use href="#ok"/></svg>`;

Deno.test("strictBase64: only base64 that decodes", () => {
  assertEquals(strictBase64("iVBO Rw0K\nGgo="), "iVBORw0KGgo=");
  assertEquals(strictBase64(IMAGE_PAYLOAD), null);
  assertEquals(strictBase64("AAAAA"), null);
  assertEquals(strictBase64("AA=A"), null);
  assertEquals(strictBase64("AA="), null);
  assertEquals(strictBase64(""), "");
});

Deno.test("sanitizeSvg drops script, foreign content, outside addresses and events", () => {
  assertEquals(
    sanitizeSvg(SVG_PAYLOAD),
    `<svg xmlns="http://www.w3.org/2000/svg" width="10"><text>t</text><image></image><use></use>` +
      `<rect style="stroke:red" clip-path="url(#ok)"></rect><use href="#ok"></use></svg>`,
  );
  assertEquals(
    sanitizeSvg("<svg/>"),
    `<svg xmlns="http://www.w3.org/2000/svg"></svg>`,
  );
  assertEquals(sanitizeSvg("<p>no drawing</p>"), "");
});

/**
 * An SVG as a list of open tags (attributes sorted, entities decoded), close
 * tags and text: what a reader of the drawing sees, whatever the serialisation.
 */
function svgTree(svg: string): string[] {
  const decode = (t: string) =>
    t.replace(/&quot;/g, '"').replace(/&lt;/g, "<").replace(/&gt;/g, ">")
      .replace(/&#39;/g, "'").replace(/&amp;/g, "&");
  const out: string[] = [];
  for (const m of svg.matchAll(/<(\/?)([a-zA-Z]+)([^>]*?)(\/?)>|([^<]+)/g)) {
    if (m[5] !== undefined) {
      out.push(`text ${decode(m[5])}`);
      continue;
    }
    if (m[1]) {
      out.push(`/${m[2]}`);
      continue;
    }
    const attrs = [...m[3].matchAll(/([^\s=]+)="([^"]*)"/g)]
      .map((a) => `${a[1]}=${decode(a[2])}`).sort();
    out.push(`${m[2]} ${attrs.join(" ")}`);
    if (m[4]) out.push(`/${m[2]}`);
  }
  return out;
}

Deno.test("sanitizeSvg leaves the kit's own figures as they are drawn", () => {
  const training = trainingFigure([
    {
      kind: "step",
      epoch: 0,
      step: 1,
      stepInEpoch: 0,
      stepsPerEpoch: 2,
      loss: 2.3,
      lr: 1e-4,
      imagesPerSecond: 300,
      elapsed: 0.5,
    },
    {
      kind: "step",
      epoch: 0,
      step: 2,
      stepInEpoch: 1,
      stepsPerEpoch: 2,
      loss: 2.1,
      lr: 2e-4,
      imagesPerSecond: 320,
      elapsed: 1,
    },
    {
      kind: "eval",
      epoch: 0,
      step: 2,
      which: "model",
      top1: 12.5,
      top5: 50,
      loss: 2.2,
      images: 64,
    },
  ], {
    title: 'a "run" <&>',
    schedule: { step: [1, 2, 3], lr: [1e-4, 2e-4, 1e-4] },
  }).svg;
  const scoreMap = showScoreMap({
    k: 1,
    height: 2,
    width: 2,
    scores: new Float32Array([1, 1, 1, 0]),
    ids: new Int32Array([0, 1, 1, 0]),
  }, { box: [0, 0, 1, 0.5], tokens: 2, classNames: ["c<at>", "d&g"] }).svg();
  const mixed = new MixedBatchView({
    views: [{
      rgb: new Uint8Array(12).fill(128),
      top: [{ id: 0, weight: 1 }],
      tokens: null,
    }],
    cells: 2,
    size: [8, 8],
    info: {
      mode: "cutmix",
      lambda: 0.5,
      box: { top: 0, left: 0, bottom: 4, right: 4 },
      patchSize: 4,
    },
  }).svg();
  // The batch view's tiles: PNG data URIs on <image> with a style.
  const tiles =
    `<svg xmlns="http://www.w3.org/2000/svg" width="6" height="6" viewBox="0 0 6 6"><image x="0" y="0" width="6" height="6" style="image-rendering:pixelated" href="data:image/png;base64,iVBORw0KGgo="/><text x="1" y="5" font-size="10">cat</text></svg>`;
  for (const svg of [training, scoreMap, mixed, tiles]) {
    assert(svg.length > 100, "a real drawing");
    assertEquals(svgTree(sanitizeSvg(svg)), svgTree(svg));
  }
});

Deno.test("image outputs: a value that is not base64 is a note in HTML and Markdown, SVG is sanitised", () => {
  const nb = {
    cells: [{
      cell_type: "code",
      source: "x",
      metadata: {},
      outputs: [
        { output_type: "display_data", data: { "image/png": IMAGE_PAYLOAD } },
        {
          output_type: "display_data",
          data: { "image/jpeg": [IMAGE_PAYLOAD] },
        },
        { output_type: "display_data", data: { "image/gif": IMAGE_PAYLOAD } },
        { output_type: "display_data", data: { "image/svg+xml": SVG_PAYLOAD } },
        {
          output_type: "display_data",
          data: { "image/png": "iVBORw0K\nGgo=" },
        },
      ],
    }],
    metadata: {},
    nbformat: 4,
    nbformat_minor: 5,
  } as unknown as Parameters<typeof renderHtml>[0];
  const meta = {
    name: "javascript:a b#c?d",
    status: "ok" as const,
    error: null,
    failedCell: null,
    injectedCell: null,
    parameters: {},
    scale: null,
    seconds: 1,
    date: "2026-01-01T00:00:00.000Z",
    staticNote: null,
  };
  const html = renderHtml(nb, meta, null);
  const tags = readTags(html);
  assertEquals(liveMarkup(tags), []);
  assertEquals(
    tags.filter((t) => ["style", "script"].includes(t.name)).length,
    1,
  );
  assert(!html.includes("tokenlab-fig-1"), "no injected figure ids");
  for (const mime of ["image/png", "image/jpeg", "image/gif"]) {
    assertStringIncludes(
      html,
      `${mime} output not shown: its data is not base64`,
    );
  }
  const images = tags.filter((t) => t.name === "img").map((t) => t.attrs.src);
  assertEquals(images.length, 2);
  assertEquals(
    new TextDecoder().decode(
      Uint8Array.from(atob(images[0].split(",")[1]), (c) => c.charCodeAt(0)),
    ),
    sanitizeSvg(SVG_PAYLOAD),
  );
  assertEquals(images[1], "data:image/png;base64,iVBORw0KGgo=");

  const { markdown, files } = renderMarkdown(nb, meta, new Map());
  assertEquals(liveMarkup(readTags(marked.parse(markdown) as string)), []);
  assertStringIncludes(
    markdown,
    "*(image/png output not shown: its data is not base64)*",
  );
  assertStringIncludes(
    markdown,
    "*(image/jpeg output not shown: its data is not base64)*",
  );
  assertEquals(files.map((f) => f.path), [
    "javascript:a b#c?d_files/cell1-1.svg",
    "javascript:a b#c?d_files/cell1-2.png",
  ]);
  // The links are URLs: the name percent-encoded, read as no scheme.
  assertStringIncludes(
    markdown,
    "![figure](javascript%3Aa%20b%23c%3Fd_files/cell1-1.svg)",
  );
  assertStringIncludes(
    markdown,
    "![figure](javascript%3Aa%20b%23c%3Fd_files/cell1-2.png)",
  );
  assertEquals(
    new TextDecoder().decode(files[0].bytes),
    sanitizeSvg(SVG_PAYLOAD),
  );
  assertEquals([...files[1].bytes.slice(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
});

// ---------------------------------------------------------------------------
// A real notebook that prints the payloads every way a notebook can.

function notebookJson(cells: string[]): string {
  return JSON.stringify({
    cells: cells.map((source, i) =>
      source.startsWith("#md\n")
        ? {
          cell_type: "markdown",
          id: `c${i}`,
          metadata: {},
          source: source.slice(4),
        }
        : {
          cell_type: "code",
          id: `c${i}`,
          execution_count: null,
          metadata: source.startsWith("#parameters\n")
            ? { tags: ["parameters"] }
            : {},
          outputs: [],
          source: source.replace(/^#parameters\n/, ""),
        }
    ),
    metadata: {
      kernelspec: {
        name: "deno",
        display_name: "Deno",
        language: "typescript",
      },
    },
    nbformat: 4,
    nbformat_minor: 5,
  });
}

const HOSTILE_CELLS = [
  `#md\n# Hostile prose\n\n${HOSTILE}\n\n<script>alert(11)</script>\n\n[y][r]\n\n[r]: javascript:alert(12)`,
  `#parameters\nconst label = "plain";`,
  'import { headline, plot } from "tokenlab";',
  "Deno.jupyter.md`value: ${label}`;",
  `Deno.jupyter.display({ "text/html": ${
    JSON.stringify(HOSTILE)
  }, "text/plain": "x" }, { raw: true });`,
  `Deno.jupyter.display({ "text/markdown": ${
    JSON.stringify(HOSTILE)
  } }, { raw: true });`,
  "plot({ data: [{ x: [1, 2], y: [2, 1] }], layout: { title: { text: label } } });",
  "headline(label);",
  `Deno.jupyter.display({ "image/png": ${
    JSON.stringify(IMAGE_PAYLOAD)
  } }, { raw: true });`,
  `Deno.jupyter.display({ "image/jpeg": ${
    JSON.stringify(IMAGE_PAYLOAD)
  } }, { raw: true });`,
  `Deno.jupyter.display({ "image/svg+xml": ${
    JSON.stringify(SVG_PAYLOAD)
  } }, { raw: true });`,
  "throw new Error(label);",
];

// Without Chromium the browser's part of the next test is left out: its name says so.
const hostileReports =
  "reports: hostile values reach the HTML, the Markdown and the index only as text" +
  (noBrowser ? ` (browser check skipped: ${noBrowser})` : "");

Deno.test(hostileReports, async () => {
  const dir = await Deno.makeTempDir({
    dir: `${ROOT}tests`,
    prefix: ".tmp-security-",
  });
  try {
    const nbDir = `${dir}/notebooks`, outDir = `${dir}/reports`;
    await Deno.mkdir(nbDir);
    await Deno.writeTextFile(
      `${nbDir}/hostile.ipynb`,
      notebookJson(HOSTILE_CELLS),
    );
    // A notebook whose file name would break an unencoded link (a name with
    // ":" or "?" cannot run yet: runOne's staging folder refuses it).
    await Deno.writeTextFile(
      `${nbDir}/x#y z(1).ipynb`,
      notebookJson([`#parameters\nconst label = "plain";`, "1 + 1;"]),
    );
    const [r] = await runReports([], {
      notebookDir: nbDir,
      outDir,
      params: [`label=${HOSTILE}`],
      progress: () => {},
    });
    // The last cell throws the payload: the run fails there, and only there.
    assertEquals([r.status, r.cell], ["failed", 12]);
    assertStringIncludes(r.error, "<script>alert(1)</script>");

    // HTML: the page's own scripts only, each allowed by its hash.
    const html = await Deno.readTextFile(`${outDir}/hostile.html`);
    const tags = readTags(html);
    assertEquals(liveMarkup(tags), []);
    const scripts = tags.filter((t) => t.name === "script");
    const running = scripts.filter((t) => Object.keys(t.attrs).length === 0);
    const data = scripts.filter((t) => Object.keys(t.attrs).length > 0);
    assertEquals(running.length, 2, "plotly.js and the drawing loop");
    assertEquals(
      data.map((t) => [t.attrs.type, t.attrs.id]),
      [["application/json", "tokenlab-fig-1-data"]],
    );
    const metas = tags.filter((t) =>
      t.name === "meta" &&
      t.attrs["http-equiv"]?.toLowerCase() === "content-security-policy"
    );
    assertEquals(metas.length, 1);
    // First thing in the head after the charset, so it covers everything.
    assertEquals(tags.slice(0, 4).map((t) => t.name), [
      "html",
      "head",
      "meta",
      "meta",
    ]);
    assertEquals(tags[3], metas[0]);
    const csp = directives(
      metas[0].attrs.content.replace(/&#39;|&apos;/g, "'"),
    );
    assertEquals(
      new Set(csp.get("script-src")),
      new Set([
        ...await Promise.all(running.map((t) => sha256(t.text!))),
        "'report-sample'",
      ]),
    );
    assertEquals(csp.get("default-src"), ["'none'"]);
    assertEquals(csp.get("img-src"), ["data:"]);
    assert(!html.includes("unsafe-eval"), "no eval allowed");
    // The payloads are there, as text.
    assertStringIncludes(html, "&lt;script&gt;alert(1)&lt;/script&gt;");
    assert(!/<script>alert/i.test(html), "no payload script element");

    // Markdown: rendered by a Markdown renderer, it holds no live markup;
    // the data (parameters, error, figure title) is escaped.
    const md = await Deno.readTextFile(`${outDir}/hostile.md`);
    assertEquals(liveMarkup(readTags(marked.parse(md) as string)), []);
    assertEquals(
      readTags(marked.parse(md) as string).filter((t) => t.name === "script"),
      [],
    );
    const prose = outsideFences(md);
    assert(!/(?<!\\)<(script|svg|iframe|meta)\b/i.test(prose), prose);
    assert(!/(?<!\\)\]\(\s*javascript:/i.test(prose), prose);
    assertStringIncludes(
      md,
      "Error: \\<script\\>alert(1)\\</script\\> \\<img src=x onerror=alert(2)\\>",
    );
    assertMatch(md, /^> .*parameters: label="\\<script\\>alert\(1\)/m);
    assertStringIncludes(md, "# Hostile prose");
    assertEquals(findUnsafeMarkdown(md), []);

    // The index: the headline and the error as escaped text.
    const index = await Deno.readTextFile(`${outDir}/README.md`);
    assertEquals(liveMarkup(readTags(marked.parse(index) as string)), []);
    assert(!/(?<!\\)<script/i.test(index), index);
    assertStringIncludes(index, "[hostile](hostile.md) ([html](hostile.html))");
    assertStringIncludes(
      index,
      "| **failed**: hostile: failed at cell 12: Error: \\<script\\>alert(1)\\</script\\>",
    );
    const indexHtml = await Deno.readTextFile(`${outDir}/index.html`);
    assertEquals(liveMarkup(readTags(indexHtml)), []);
    assertEquals(readTags(indexHtml).filter((t) => t.name === "script"), []);
    assertStringIncludes(indexHtml, 'http-equiv="Content-Security-Policy"');
    const hrefs = readTags(indexHtml).filter((t) => t.name === "a").map((t) =>
      t.attrs.href
    );
    assertEquals(hrefs, [
      "./hostile.html",
      "./hostile.md",
      "./hostile.ipynb",
      "./x%23y%20z%281%29.html",
      "./x%23y%20z%281%29.md",
      "./x%23y%20z%281%29.ipynb",
    ]);
    // The HTML page: images as notes, the one figure the page's own.
    assertStringIncludes(
      html,
      "image/png output not shown: its data is not base64",
    );
    assertStringIncludes(
      html,
      "image/jpeg output not shown: its data is not base64",
    );
    // Every image a data URI of strict base64; the page's one style element.
    // (An <img> whose address was dropped has none.)
    for (const t of tags.filter((t) => t.name === "img" && t.attrs.src)) {
      assertMatch(
        t.attrs.src,
        /^data:image\/[a-z+]+;base64,[A-Za-z0-9+/]*={0,2}$/,
      );
    }
    assertEquals(tags.filter((t) => t.name === "style").length, 1);
    assertEquals(
      tags.filter((t) => t.attrs.id?.startsWith("tokenlab-fig-")).map((t) =>
        t.attrs.id
      ),
      ["tokenlab-fig-1", "tokenlab-fig-1-data"],
    );
    // The SVG written beside the Markdown report is the sanitised one.
    const svgFiles = [];
    for await (const f of Deno.readDir(`${outDir}/hostile_files`)) {
      if (f.name.endsWith(".svg")) svgFiles.push(f.name);
    }
    assertEquals(svgFiles.length, 1);
    assertEquals(
      await Deno.readTextFile(`${outDir}/hostile_files/${svgFiles[0]}`),
      sanitizeSvg(SVG_PAYLOAD),
    );

    // In a real browser the page draws its figure and nothing else runs.
    if (noBrowser) {
      console.warn(`browser check of the hostile report skipped: ${noBrowser}`);
    } else {
      assert(r.check !== null);
      assertEquals(
        [r.check.figures, r.check.rendered, r.check.dialogs],
        [1, 1, []],
      );
      assertEquals(r.check.cspViolations, []);
      assertEquals(r.check.consoleMessages, []);
      assertEquals(r.check.consoleErrors, []);
      assertEquals(r.check.network, []);
      assert(r.check.csp !== null && r.check.csp.startsWith("default-src"));
      assertEquals(r.check.ok, true, JSON.stringify(r.check));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------
// The browser check against pages where foreign script runs.

const browserTest = (
  name: string,
  fn: (browser: Browser, dir: string) => Promise<void>,
) => sharedBrowserTest(name, fn, { skip: noBrowser, prefix: ".tmp-security-" });

browserTest(
  "an unsanitised page that calls alert() fails the check with a clear message, promptly",
  async (browser, dir) => {
    const { file, check, ms } = await checkHtml(browser, {
      dir,
      name: "alert.html",
      html: `<!DOCTYPE html><html><body><p>report</p>
<script>alert(1); confirm("sure?"); alert(2);</script><p>after</p></body></html>`,
      timeoutMs: 30000,
    });
    // Dialogs are answered as they open: the check ends by itself, well
    // before the page's time limit (a loaded machine may take seconds, so
    // the bound is the limit, not a wall-clock figure).
    assert(ms < 30000, `checkPage waited out its limit (${ms.toFixed(0)} ms)`);
    assertEquals(check.dialogs, [
      'alert: "1"',
      'confirm: "sure?"',
      'alert: "2"',
    ]);
    assertEquals(check.ok, false);
    assertEquals(check.csp, null);
    const message = pageCheckProblems("alert", check);
    assertStringIncludes(
      message,
      `alert: the HTML report does not work in a browser: script that is not the report's own ran (a dialog opened (alert: "1"); a dialog opened (confirm: "sure?"); a dialog opened (alert: "2"))`,
    );
    assertStringIncludes(message, "the page has no Content-Security-Policy");
    // The browser is still usable after it.
    const again = await browser.checkPage(file, { timeoutMs: 5000 });
    assertEquals(again.dialogs.length, 3);
  },
);

browserTest(
  "a foreign script that only logs fails the check",
  async (browser, dir) => {
    const { check } = await checkHtml(browser, {
      dir,
      name: "log.html",
      html: `<!DOCTYPE html><html><body><p>report</p>
<script>console.log("exfiltrating", 42); console.info("quietly");</script></body></html>`,
      timeoutMs: 5000,
    });
    assertEquals(check.consoleMessages, [
      "console.log: exfiltrating 42",
      "console.info: quietly",
    ]);
    assertEquals([check.consoleErrors, check.dialogs], [[], []]);
    assertEquals(check.ok, false);
    assertStringIncludes(
      pageCheckProblems("log", check),
      "console output console.log: exfiltrating 42",
    );
  },
);

browserTest(
  "under the report's policy an injected script is blocked and reported",
  async (browser, dir) => {
    // What a sanitiser mistake would look like: payloads in a page that has
    // the report's policy. None of them runs; each is a violation.
    const csp = reportCsp({ scripts: ["document.title = 'own';"] });
    const { check } = await checkHtml(browser, {
      dir,
      name: "csp.html",
      html: `<!DOCTYPE html><html><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${csp}"></head><body>
<script>document.title = 'own';</script>
<script>alert(1)</script><img src=x onerror="alert(2)">
<iframe srcdoc="<script>alert(5)</script>"></iframe></body></html>`,
      timeoutMs: 5000,
    });
    assertEquals(check.dialogs, []);
    assertEquals(check.csp, csp);
    const blocked = check.cspViolations.join("\n");
    assertStringIncludes(
      blocked,
      'script-src-elem blocked inline ("alert(1)")',
    );
    assertStringIncludes(
      blocked,
      'script-src-attr blocked inline ("alert(2)")',
    );
    assertStringIncludes(blocked, "img-src blocked");
    // The frame inherits the policy: its script is blocked inside it.
    assertStringIncludes(
      blocked,
      'script-src-elem blocked inline ("alert(5)")',
    );
    assertEquals(check.ok, false);
    assertStringIncludes(
      pageCheckProblems("csp", check),
      "the page's policy blocked script-src-elem blocked inline",
    );
  },
);

browserTest(
  "a page stuck in a loop is stopped and reported, not waited on",
  async (browser, dir) => {
    const { check, ms } = await checkHtml(browser, {
      dir,
      name: "loop.html",
      html:
        `<!DOCTYPE html><html><body><p>x</p><script>setTimeout(() => { for (;;) {} }, 50);</script></body></html>`,
      timeoutMs: 2000,
    });
    assert(ms < 20_000, `checkPage took ${ms.toFixed(0)} ms`);
    assertEquals(check.ok, false);
    assertStringIncludes(
      check.pageErrors.join("\n"),
      "the page stopped answering",
    );
    // And the browser goes on working.
    const fine = await checkHtml(browser, {
      dir,
      name: "fine.html",
      html: "<!DOCTYPE html><p>fine</p>",
      timeoutMs: 2000,
    });
    assertEquals(fine.check.pageErrors, []);
  },
);
