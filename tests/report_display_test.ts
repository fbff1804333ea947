/**
 * Report displays: the result table's Markdown, HTML, text and JSON for a
 * table with units, a paper column, seeds, a missing cell and notes (text
 * escaped); meanStd against hand-computed values; every refusal of a bad
 * table; the model summary's counts against the built model's variables;
 * the plot's bundle, its JSON copy and its refusals.
 */

import {
  assert,
  assertEquals,
  assertStringIncludes,
  assertThrows,
} from "./_assert.ts";
import {
  countParameters,
  createModel,
  initBackend,
  LvVit,
  modelConfig,
  officialFlops,
} from "tokenlab";
import { assertNoLeaks } from "tokenlab/testing";
import {
  meanStd,
  ResultTable,
  table,
  TableError,
  type TableOptions,
} from "tokenlab/report/table.ts";
import { modelSummary } from "tokenlab/report/summary.ts";
import { plot, PlotError } from "tokenlab/report/plot.ts";

const DISPLAY = Symbol.for("Jupyter.display");

function bundleOf(x: unknown): Record<string, unknown> {
  return (x as Record<symbol, () => Record<string, unknown>>)[DISPLAY]();
}

// ------------------------------------------------------------------ tables

const SMALL: TableOptions = {
  caption: "Top-1 <b>& friends",
  id: "tab-1",
  columns: [
    { key: "model", label: "model" },
    { key: "top1", label: "top-1", unit: "%", digits: 1, paper: true },
    { key: "params", label: "params", unit: "M" },
  ],
  rows: [
    { model: "DeiT <b>&", top1: [79.0, 80.0, 81.0], params: 22 },
    { model: "LV-ViT", top1: 83.2, paper: { top1: 83.3 }, params: null },
    { model: "TL", top1: [80.5, 81.5], paper: { top1: 80.1 }, params: 26 },
  ],
  notes: ["Paper: Jiang et al. 2021."],
};

const SEED_NOTE = "top-1 (%): mean ± std over n = 2, 3 seeds (sample std).";

Deno.test("a result table as Markdown: bold caption, pipe table, mean ± std, paper and signed Δ, notes", () => {
  assertEquals(
    table(SMALL).toMarkdown(),
    [
      "**Top-1 \\<b\\>\\& friends**",
      "",
      "| model        |  top-1 (%) | paper |    Δ | params (M) |",
      "| :----------- | ---------: | ----: | ---: | ---------: |",
      "| DeiT \\<b\\>\\& | 80.0 ± 1.0 |     – |    – |         22 |",
      "| LV-ViT       |       83.2 |  83.3 | -0.1 |          – |",
      "| TL           | 81.0 ± 0.7 |  80.1 | +0.9 |         26 |",
      "",
      SEED_NOTE,
      "",
      "Paper: Jiang et al. 2021.",
    ].join("\n"),
  );
});

Deno.test("a result table as HTML: escaped text, aligned cells, classed Δ, notes after the table", () => {
  const r = `class="num" style="text-align:right"`;
  const l = `style="text-align:left"`;
  const paper = `class="num paper" style="text-align:right"`;
  const diff = (c: string) => `class="num diff${c}" style="text-align:right"`;
  assertEquals(
    table(SMALL).toHtml(),
    [
      `<table class="tokenlab-table" id="tab-1">`,
      `<caption>Top-1 &lt;b&gt;&amp; friends</caption>`,
      `<thead><tr><th ${l}>model</th><th ${r}>top-1 (%)</th><th ${paper}>paper</th><th ${
        diff("")
      }>Δ</th><th ${r}>params (M)</th></tr></thead>`,
      `<tbody>`,
      `<tr><td ${l}>DeiT &lt;b&gt;&amp;</td><td ${r}>80.0 ± 1.0</td><td ${paper}>–</td><td ${
        diff("")
      }>–</td><td ${r}>22</td></tr>`,
      `<tr><td ${l}>LV-ViT</td><td ${r}>83.2</td><td ${paper}>83.3</td><td ${
        diff(" diff-neg")
      }>-0.1</td><td ${r}>–</td></tr>`,
      `<tr><td ${l}>TL</td><td ${r}>81.0 ± 0.7</td><td ${paper}>80.1</td><td ${
        diff(" diff-pos")
      }>+0.9</td><td ${r}>26</td></tr>`,
      `</tbody>`,
      `</table>`,
      `<p class="tokenlab-table-notes">${SEED_NOTE}<br/>Paper: Jiang et al. 2021.</p>`,
    ].join("\n"),
  );
});

Deno.test("a result table as text, and its Jupyter bundle", () => {
  const t = table(SMALL);
  assertEquals(
    t.toString(),
    [
      "Top-1 <b>& friends",
      "model       top-1 (%)  paper     Δ  params (M)",
      "---------  ----------  -----  ----  ----------",
      "DeiT <b>&  80.0 ± 1.0      –     –          22",
      "LV-ViT           83.2   83.3  -0.1           –",
      "TL         81.0 ± 0.7   80.1  +0.9          26",
      SEED_NOTE,
      "Paper: Jiang et al. 2021.",
    ].join("\n"),
  );
  const b = bundleOf(t);
  assertEquals(Object.keys(b).sort(), [
    "application/vnd.tokenlab.table+json",
    "text/html",
    "text/markdown",
    "text/plain",
  ]);
  assertEquals(b["text/markdown"], t.toMarkdown());
  assertEquals(b["text/html"], t.toHtml());
  assertEquals(b["text/plain"], t.toString());
  assertEquals(b["application/vnd.tokenlab.table+json"], t.toJSON());
});

Deno.test("a result table's JSON and cells carry the raw numbers", () => {
  const t = table(SMALL);
  const j = JSON.parse(JSON.stringify(t.toJSON()));
  assertEquals(j.caption, "Top-1 <b>& friends");
  assertEquals(j.id, "tab-1");
  assertEquals(j.columns.map((c: { key: string }) => c.key), [
    "model",
    "top1",
    "params",
  ]);
  assertEquals(j.notes, [SEED_NOTE, "Paper: Jiang et al. 2021."]);
  assertEquals(j.rows[0].model, "DeiT <b>&");
  assertEquals(j.rows[0].top1, {
    values: [79, 80, 81],
    mean: 80,
    std: 1,
    n: 3,
    paper: null,
    diff: null,
  });
  assertEquals(j.rows[1].params, null);
  const lv = j.rows[1].top1;
  assertEquals([lv.values, lv.mean, lv.std, lv.n, lv.paper], [
    [83.2],
    83.2,
    null,
    1,
    83.3,
  ]);
  assert(Math.abs(lv.diff - -0.1) < 1e-9);
  const tl = t.cell(2, "top1")!;
  assertEquals(tl.mean, 81);
  assert(Math.abs(tl.std! - Math.SQRT1_2) < 1e-12);
  assert(Math.abs(tl.diff! - 0.9) < 1e-9, "Δ is taken from the mean");
  assertEquals(t.cell(0, "model"), null, "text cells have no numbers");
  assertEquals(t.cell(1, "params"), null, "missing cells have no numbers");
  assertThrows(() => t.cell(3, "top1"), TableError, "out of range");
  assertThrows(() => t.cell(0, "top5"), TableError, 'no column "top5"');
});

Deno.test("number formats: integers without decimals, thousands, Δ rounding to zero unsigned, paper without ours", () => {
  const t = table({
    caption: "formats",
    columns: [
      { key: "name", label: "name" },
      { key: "count", label: "count", thousands: true },
      { key: "acc", label: "acc", paper: true, digits: 2 },
      { key: "x", label: "x" },
    ],
    rows: [
      { name: "a", count: 1234567, acc: 80.001, paper: { acc: 80 }, x: 1.5 },
      { name: "b", count: [2, 3, 4], acc: null, paper: { acc: 70 }, x: -0.001 },
    ],
  });
  assertEquals(
    t.toString(),
    [
      "formats",
      "name      count    acc  paper     Δ     x",
      "----  ---------  -----  -----  ----  ----",
      "a     1,234,567  80.00  80.00  0.00  1.50",
      "b         3 ± 1      –  70.00     –  0.00",
      "count: mean ± std over n = 3 seeds (sample std).",
    ].join("\n"),
  );
  assertEquals(t.cell(1, "acc"), {
    values: [],
    mean: null,
    std: null,
    n: 0,
    paper: 70,
    diff: null,
  });
  assertStringIncludes(t.toHtml(), `<td class="num diff diff-zero"`);
});

Deno.test("Markdown escaping keeps text as written; a text-only column is left-aligned", () => {
  const t = table({
    caption: "a | b $x$ *c* lvvit_s _e_ [l](u)",
    columns: [{ key: "t", label: "t" }],
    rows: [{ t: "x|y\nz" }],
  });
  assertEquals(
    t.toMarkdown(),
    [
      "**a \\| b \\$x\\$ \\*c\\* lvvit_s \\_e\\_ \\[l](u)**",
      "",
      "| t      |",
      "| :----- |",
      "| x\\|y z |",
    ].join("\n"),
  );
});

Deno.test("meanStd: sample std by hand", () => {
  assertEquals(meanStd([1, 2, 3]), { mean: 2, std: 1, n: 3 });
  assertEquals(meanStd([5]), { mean: 5, std: 0, n: 1 });
  // mean 5; squared deviations 9+1+1+1+0+0+4+16 = 32; 32/7.
  const r = meanStd([2, 4, 4, 4, 5, 5, 7, 9]);
  assertEquals(r.mean, 5);
  assert(Math.abs(r.std - Math.sqrt(32 / 7)) < 1e-12);
  const two = meanStd([80.5, 81.5]);
  assertEquals(two.mean, 81);
  assert(Math.abs(two.std - Math.SQRT1_2) < 1e-12);
  assertThrows(() => meanStd([]), TableError, "at least one number");
  assertThrows(() => meanStd([1, NaN]), TableError, "NaN at index 1");
  assertThrows(() => meanStd([Infinity]), TableError, "finite");
});

Deno.test("table validation: every refusal says what was expected and found", () => {
  const cols = [
    { key: "m", label: "model" },
    { key: "a", label: "acc", paper: true },
    { key: "b", label: "b" },
  ];
  const bad = (opts: Partial<TableOptions>, includes: string) =>
    assertThrows(
      () => new ResultTable({ caption: "c", columns: cols, rows: [], ...opts }),
      TableError,
      includes,
    );
  bad({ caption: "" }, "needs a caption");
  bad({ caption: "   " }, "needs a caption");
  bad({ columns: [] }, "at least one column");
  bad(
    { columns: [{ key: "a", label: "x" }, { key: "a", label: "y" }] },
    'duplicate column key "a"',
  );
  bad({ columns: [{ key: "paper", label: "p" }] }, 'the key "paper"');
  bad({ columns: [{ key: "a", label: "x", digits: -1 }] }, "digits");
  bad({ rows: [{ m: "x", c: 1 }] }, 'row 0 ("x") has the field "c"');
  bad(
    { rows: [{ m: "x", b: 1, paper: { b: 2 } }] },
    'set paper: true on column "b"',
  );
  bad({ rows: [{ m: "x", paper: { z: 2 } }] }, 'paper value for "z"');
  bad({ rows: [{ m: "x", paper: { a: NaN } }] }, "finite number");
  bad({ rows: [{ m: "x", a: NaN }] }, 'column "a": found NaN');
  bad({ rows: [{ m: "x", a: Infinity }] }, "use null for a missing value");
  bad({ rows: [{ m: "x", a: [1, Infinity] }] }, "seed 1 is Infinity");
  bad({ rows: [{ m: "x", a: [] }] }, "an empty array of seeds");
  bad(
    { rows: [{ m: "x", a: { v: 1 } as unknown as number }] },
    "expected a number",
  );
  bad({ notes: [1 as unknown as string] }, "notes must be");
  bad({ id: "has space" }, "the table id");
});

// --------------------------------------------------------------- summaries

Deno.test("modelSummary: the rows add up to the built model's variables (conv stem, aux head)", async () => {
  await initBackend({ backend: "cpu" });
  await assertNoLeaks(() => {
    const model = createModel("lvvit_xs32");
    try {
      const s = modelSummary(model);
      const sum = s.rows.reduce((a, r) => a + r.params, 0);
      assertEquals(sum, s.totalParams);
      assertEquals(sum, model.numParameters());
      const all = [...model.state.values()].reduce((a, v) => a + v.size, 0);
      assertEquals(sum + s.bufferValues, all, "params + buffers = every value");
      assert(s.bufferValues > 0, "the conv stem has BatchNorm buffers");
      assertEquals(s.flops, officialFlops(model.config));
      assert(s.fromModel);
      assertEquals(s.rows.map((r) => r.name), [
        "patch embedding",
        "class token + position embedding",
        "blocks 1–4: attention",
        "blocks 1–4: MLP",
        "final norm",
        "head",
        "aux head",
      ]);
      assertEquals(s.rows.map((r) => r.outputShape), [
        [8, 8, 128],
        [65, 128],
        [65, 128],
        [65, 128],
        [65, 128],
        [10],
        [64, 10],
      ]);
      assertEquals(s.rows[2].repeat, 4);
      // The same numbers from the config alone.
      const fromConfig = modelSummary(model.config);
      assertEquals(
        fromConfig.rows.map((r) => r.params),
        s.rows.map((r) => r.params),
      );
      assertEquals(fromConfig.bufferValues, s.bufferValues);
    } finally {
      model.dispose();
    }
  }, "modelSummary of a built model");
});

Deno.test("modelSummary: a linear-stem model without aux head, a registry name, a batch", async () => {
  await initBackend({ backend: "cpu" });
  await assertNoLeaks(() => {
    const model = LvVit.create({
      name: "tiny",
      imgSize: 16,
      patchSize: 4,
      embedDim: 16,
      depth: 1,
      numHeads: 2,
      numClasses: 3,
      stem: "linear",
      auxHead: false,
      qkvBias: true,
    });
    try {
      const s = modelSummary(model, { batch: 2 });
      assertEquals(s.totalParams, model.numParameters());
      assertEquals(s.bufferValues, 0);
      assertEquals(s.rows.length, 6);
      assertEquals(s.rows[2].name, "block 1: attention");
      assertEquals(s.rows[0].outputShape, [2, 4, 4, 16]);
      assertEquals(s.rows[5].outputShape, [2, 3]);
    } finally {
      model.dispose();
    }
  });
  const s = modelSummary("lvvit_s");
  assertEquals(s.totalParams, countParameters(modelConfig("lvvit_s")));
  assertEquals((s.totalParams / 1e6).toFixed(2), "26.15");
  assertEquals((s.flops / 1e9).toFixed(2), "6.57");
  assertStringIncludes(
    s.configLine(),
    "224×224 px, conv stem, patch 16 → 14×14 = 196 tokens + class token; embed dim 384, depth 16, 6 heads, MLP ratio 3",
  );
  const b = bundleOf(s);
  assertEquals(Object.keys(b).sort(), [
    "application/vnd.tokenlab.table+json",
    "text/html",
    "text/markdown",
    "text/plain",
  ]);
  assertStringIncludes(b["text/html"] as string, "26,151,824");
  assertStringIncludes(b["text/markdown"] as string, "| blocks 1–16: MLP ");
  assertStringIncludes(s.toString(), "6.57 GFLOPs per image");
  assertThrows(() => modelSummary("nope"), Error, "unknown model");
  assertThrows(() => modelSummary("lvvit_s", { batch: 0 }), RangeError);
});

// ------------------------------------------------------------------- plots

Deno.test("plot: the plotly bundle with size, the HTML fallback, text summary", () => {
  const p = plot({
    data: [
      {
        type: "scatter",
        name: "loss",
        x: [1, 2, 3],
        y: new Float32Array([3, 2, 1]),
      },
      { type: "heatmap", z: [[1, 2], [3, 4], [5, 6]] },
      { y: [1, undefined, 3] },
    ],
    layout: { title: { text: "curves" }, skip: undefined },
    config: { responsive: true },
  }, { caption: "loss <and> map", width: 600, height: 300 });
  const b = bundleOf(p);
  assertEquals(Object.keys(b).sort(), [
    "application/vnd.plotly.v1+json",
    "text/html",
    "text/plain",
  ]);
  assertEquals(b["application/vnd.plotly.v1+json"], {
    data: [
      { type: "scatter", name: "loss", x: [1, 2, 3], y: [3, 2, 1] },
      { type: "heatmap", z: [[1, 2], [3, 4], [5, 6]] },
      { y: [1, null, 3] },
    ],
    layout: { title: { text: "curves" }, width: 600, height: 300 },
    config: { responsive: true },
  });
  const html = b["text/html"] as string;
  assertStringIncludes(html, `<p class="tokenlab-plot-fallback">`);
  assertStringIncludes(html, "loss &lt;and&gt; map");
  assertEquals(
    b["text/plain"],
    [
      "loss <and> map (3 traces)",
      "  loss (scatter): 3 points",
      "  trace 1 (heatmap): 3×2 grid",
      "  trace 2 (scatter): 3 points",
    ].join("\n"),
  );
  assertEquals(p.alt, "loss <and> map");
  assertEquals(plot({ data: [] }).alt, "plotly figure");
  assertEquals(plot({ data: [], layout: { title: "t" } }).alt, "t");
});

Deno.test("plot with an SVG: the image data URI, the SVG, the caption", () => {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="2" height="2"/>`;
  const b = bundleOf(
    plot({ data: [{ x: [1], y: [2] }] }, { svg, alt: "a dot", caption: "c&" }),
  );
  assertEquals(Object.keys(b).sort(), [
    "application/vnd.plotly.v1+json",
    "image/svg+xml",
    "text/html",
    "text/plain",
  ]);
  assertEquals(b["image/svg+xml"], svg);
  const html = b["text/html"] as string;
  assertStringIncludes(
    html,
    `alt="a dot" src="data:image/svg+xml;base64,`,
  );
  assertStringIncludes(html, `<p class="tokenlab-plot-caption">c&amp;</p>`);
  assertEquals(b["application/vnd.plotly.v1+json"], {
    data: [{ x: [1], y: [2] }],
    layout: {},
  });
});

Deno.test("plot refuses what JSON cannot carry, naming the path", () => {
  const bad = (fig: unknown, includes: string, options = {}) =>
    assertThrows(
      () => plot(fig as { data: unknown[] }, options),
      PlotError,
      includes,
    );
  bad({ data: "x" }, "data must be an array of traces");
  bad({}, "data must be an array of traces");
  bad({ data: [1] }, "data[0] must be a trace object");
  bad({ data: [[1]] }, "data[0] must be a trace object");
  bad({ data: [{ y: [1, NaN] }] }, "NaN at data[0].y[1]");
  bad({ data: [{ y: new Float64Array([1, Infinity]) }] }, "at data[0].y[1]");
  bad({ data: [{ y: [1] }], layout: { f: () => 1 } }, "function at layout.f");
  bad({ data: [{ y: new Map() }] }, "a Map at data[0].y");
  bad({ data: [{ "a b": 1n }] }, 'bigint at data[0]["a b"]');
  const cyc: Record<string, unknown> = {};
  cyc.self = cyc;
  bad({ data: [cyc] }, "refers to itself at data[0].self");
  bad({ data: [], layout: [] }, "layout must be an object");
  bad({ data: [] }, "width must be a positive number", { width: 0 });
  bad({ data: [] }, "svg option must be SVG markup", { svg: "<p/>" });
  // The same object twice (not a cycle) is fine.
  const shared = [1, 2];
  assertEquals(plot({ data: [{ x: shared, y: shared }] }).figure.data, [{
    x: [1, 2],
    y: [1, 2],
  }]);
});

// ------------------------------------------------------------------ report pages

const { renderHtml, renderMarkdown, withModebarRoom, MODEBAR_BAND } =
  await import("tokenlab/report/render.ts");
const { parseNotebook } = await import("tokenlab/report/notebook.ts");
const { writeIndex } = await import("tokenlab/report/index_page.ts");

const PAGE_META = {
  name: "page",
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

/** An executed notebook of one code cell with these outputs. */
function executed(outputs: unknown[], source = "x"): ReturnType<
  typeof parseNotebook
> {
  return parseNotebook(
    JSON.stringify({
      cells: [{
        cell_type: "code",
        id: "a",
        metadata: {},
        execution_count: 1,
        source,
        outputs,
      }],
      metadata: {},
      nbformat: 4,
      nbformat_minor: 5,
    }),
    "page.ipynb",
  );
}

Deno.test("report pages drop the kernel's `Promise { undefined }` (an un-awaited display), and keep other promises", () => {
  const result = (text: string) => ({
    output_type: "execute_result",
    execution_count: 1,
    metadata: {},
    data: { "text/plain": [text] },
  });
  const nb = executed([
    {
      output_type: "display_data",
      metadata: {},
      data: { "text/plain": "the figure" },
    },
    // What Deno's kernel sends for `Deno.jupyter.display(...)` as a cell's
    // last expression: the promise it returns, in colour.
    result("Promise { \u001b[90mundefined\u001b[39m }"),
    result("Promise { 5 }"),
  ]);
  const html = renderHtml(nb, PAGE_META, null);
  const { markdown } = renderMarkdown(nb, PAGE_META, new Map());
  for (const page of [html, markdown]) {
    assertStringIncludes(page, "the figure");
    assert(!page.includes("Promise { undefined }"), page);
    assertStringIncludes(page, "Promise { 5 }");
  }
});

Deno.test("report pages wrap long lines of code and output instead of cutting them off", () => {
  const html = renderHtml(executed([], "x".repeat(400)), PAGE_META, null);
  const pre = /(?:^|\})pre\{([^}]*)\}/m.exec(html);
  assert(pre !== null, "a pre rule");
  assertStringIncludes(pre[1], "white-space:pre-wrap");
  assertStringIncludes(pre[1], "overflow-wrap:anywhere");
});

Deno.test("report figures keep plotly's toolbar band free: the title sits under it, the plot keeps its size", () => {
  const fig = withModebarRoom({
    data: [{ y: [1] }],
    layout: {
      title: { text: "a long title<br>on two lines", font: { size: 20 } },
      margin: { l: 40, t: 50 },
      height: 520,
      width: 520,
    },
    config: { displaylogo: false },
  }) as Record<string, unknown>;
  const layout = fig.layout as Record<string, unknown>;
  const title = layout.title as Record<string, unknown>;
  assertEquals(
    [title.text, title.yref, title.y, title.yanchor, title.pad],
    ["a long title<br>on two lines", "container", 1, "top", {
      t: MODEBAR_BAND + 13, // half of the second line's 26 px
    }],
  );
  assertEquals(title.font, { size: 20 });
  const margin = layout.margin as { t: number; l: number };
  // The title's two lines fit between the band and the plot.
  assert(margin.t >= MODEBAR_BAND + 2 * 20 * 1.2, `top margin ${margin.t}`);
  assertEquals(margin.l, 40);
  assertEquals(layout.height, 520 + (margin.t - 50));
  assertEquals(layout.width, 520);
  assertEquals(fig.config, { displaylogo: false });

  // A string title, no margin (plotly's 100 px), no height (autosized).
  const plain = withModebarRoom({ data: [], layout: { title: "t" } }) as {
    layout: unknown;
  };
  assertEquals(plain.layout, {
    title: {
      text: "t",
      yref: "container",
      y: 1,
      yanchor: "top",
      pad: { t: MODEBAR_BAND },
    },
    margin: { t: 100 + MODEBAR_BAND },
  });
  // No title: only the band; odd values are left alone.
  assertEquals(
    (withModebarRoom({ layout: { margin: { t: "x" }, height: -1 } }) as {
      layout: unknown;
    }).layout,
    { margin: { t: 100 + MODEBAR_BAND }, height: -1 },
  );
  assertEquals(withModebarRoom(null), null);
  assertEquals(withModebarRoom([1]), [1]);

  // The HTML page draws the adjusted figure; the notebook's stays as it was.
  const original = {
    data: [{ y: [1, 2] }],
    layout: { title: { text: "t" }, margin: { t: 50 } },
  };
  const nb = executed([{
    output_type: "display_data",
    metadata: {},
    data: { "application/vnd.plotly.v1+json": original },
  }]);
  const html = renderHtml(nb, PAGE_META, "/* plotly */");
  const json =
    /<script type="application\/json" id="tokenlab-fig-1-data">(.*?)<\/script>/
      .exec(html);
  assert(json !== null);
  assertEquals(
    JSON.parse(json[1]).layout.margin.t,
    50 + MODEBAR_BAND,
  );
  assertEquals(original.layout.margin.t, 50);
});

Deno.test("the report index keeps short cells on one line: no-break spaces in Markdown, nowrap in HTML", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tokenlab-index-" });
  try {
    const run = {
      status: "ok" as const,
      error: "",
      seconds: 126,
      html: `${dir}/a.html`,
      headline: null,
      scale: "smoke",
      parameters: {},
      backend: "wasm",
    };
    await writeIndex(dir, [{ ...run, name: "a" }], ["a", "b"]);
    const md = await Deno.readTextFile(`${dir}/README.md`);
    assertStringIncludes(md, "| b | not\u00a0run |");
    assertStringIncludes(md, "| 2.1\u00a0min |");
    assert(/\| \d{4}-\d\d-\d\d\u00a0\d\d:\d\d \|/.test(md), md);
    const html = await Deno.readTextFile(`${dir}/index.html`);
    assertStringIncludes(html, '<td class="nowrap">not run</td>');
    assertStringIncludes(html, '<td class="num nowrap">2.1 min</td>');
    assert(/<td class="nowrap">\d{4}-\d\d-\d\d \d\d:\d\d<\/td>/.test(html));
    assertStringIncludes(html, ".nowrap{white-space:nowrap}");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
