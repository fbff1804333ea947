/**
 * The report runner executes real notebooks with the Deno kernel: one that
 * passes, and one whose second code cell throws.
 */

import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertStringIncludes,
} from "./_assert.ts";
import { ReportError, runReports } from "../lib/report/run.ts";
import { ParameterError } from "../lib/report/params/mod.ts";
import { NotebookError } from "../lib/report/notebook.ts";
import { findBrowser } from "../lib/report/browser.ts";
import { exists, ROOT, runCli } from "./_helpers.ts";

/** A code cell's source; prefix "#parameters\n" tags it `parameters`, "#md\n" makes a Markdown cell. */
function notebook(cells: string[]): string {
  return JSON.stringify({
    cells: cells.map((source, i) => {
      if (source.startsWith("#md\n")) {
        return {
          cell_type: "markdown",
          id: `c${i}`,
          metadata: {},
          source: source.slice(4),
        };
      }
      const tagged = source.startsWith("#parameters\n");
      return {
        cell_type: "code",
        id: `c${i}`,
        execution_count: null,
        metadata: tagged ? { tags: ["parameters"] } : {},
        outputs: [],
        source: tagged ? source.slice("#parameters\n".length) : source,
      };
    }),
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

/** Writes notebooks (name -> cells) into a fresh folder inside the project. */
async function tempNotebooks(
  notebooks: Record<string, string[]>,
): Promise<{ nbDir: string; outDir: string; dir: string }> {
  // Inside the project, so that the kernel resolves deno.json and "tokenlab".
  const dir = await Deno.makeTempDir({
    dir: `${ROOT}tests`,
    prefix: ".tmp-report-",
  });
  const nbDir = `${dir}/notebooks`, outDir = `${dir}/reports`;
  await Deno.mkdir(nbDir);
  for (const [name, cells] of Object.entries(notebooks)) {
    await Deno.writeTextFile(`${nbDir}/${name}.ipynb`, notebook(cells));
  }
  return { nbDir, outDir, dir };
}

function fixture(): ReturnType<typeof tempNotebooks> {
  return tempNotebooks({
    good: [
      'import { VERSION } from "tokenlab";',
      "Deno.jupyter.md`tokenlab **${VERSION}** says 6 * 7 = ${6 * 7}`;",
    ],
    bad: [
      "const a = 1;",
      'throw new Error("cell two is broken");',
      "const never = 3;",
    ],
  });
}

Deno.test("reports: a passing notebook renders, a failing cell fails the run but still writes", async () => {
  const { nbDir, outDir, dir } = await fixture();
  try {
    const results = await runReports([], {
      notebookDir: nbDir,
      outDir,
      progress: () => {},
    });
    const byName = Object.fromEntries(results.map((r) => [r.name, r]));
    assertEquals(Object.keys(byName).sort(), ["bad", "good"]);

    assertEquals(byName.good.status, "ok", byName.good.error);
    const executed = JSON.parse(
      await Deno.readTextFile(`${outDir}/good.ipynb`),
    );
    assertEquals(executed.metadata.tokenlab.status, "ok");
    const outputs = JSON.stringify(
      executed.cells.map((c: { outputs: unknown }) => c.outputs),
    );
    assertEquals(executed.cells[1].execution_count, 2, outputs);
    assertStringIncludes(outputs, "6 * 7 = 42");
    const html = await Deno.readTextFile(`${outDir}/good.html`);
    assertStringIncludes(html, "6 * 7 = 42");

    assertEquals(byName.bad.status, "failed");
    assertEquals(byName.bad.cell, 2);
    assertStringIncludes(byName.bad.error, "cell two is broken");
    const badHtml = await Deno.readTextFile(`${outDir}/bad.html`);
    assertStringIncludes(badHtml, "cell two is broken");
    const bad = JSON.parse(await Deno.readTextFile(`${outDir}/bad.ipynb`));
    assertEquals(bad.metadata.tokenlab.status, "failed");
    assertEquals(bad.cells[2].execution_count, null); // never reached
    const badMd = await Deno.readTextFile(`${outDir}/bad.md`);
    assertStringIncludes(badMd, "**This report failed.**");
    assertStringIncludes(
      badMd,
      "*Cell 3 was not run (an earlier cell failed).*",
    );
    assertStringIncludes(
      badHtml,
      '<meta name="tokenlab-status" content="failed">',
    );
    // The index lists both, with their status.
    const index = await Deno.readTextFile(`${outDir}/README.md`);
    assertStringIncludes(index, "| [good](good.md) ([html](good.html)) | ok |");
    assertStringIncludes(
      index,
      "| [bad](bad.md) ([html](bad.html)) | **failed**: bad: failed at cell 2: Error: cell two is broken",
    );
    // No temporary files are left behind.
    const left = [...Deno.readDirSync(outDir)].map((e) => e.name).sort();
    assertEquals(left, [
      "README.md",
      "bad.html",
      "bad.ipynb",
      "bad.md",
      "good.html",
      "good.ipynb",
      "good.md",
      "index.html",
      "index.json",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("reports: an unknown notebook name is refused before anything runs", async () => {
  const { nbDir, outDir, dir } = await fixture();
  try {
    const e = await assertRejects(
      () =>
        runReports(["nope"], {
          notebookDir: nbDir,
          outDir,
          progress: () => {},
        }),
      ReportError,
    );
    assertStringIncludes(
      e.message,
      "unknown notebook nope: expected one of bad, good",
    );
    assert(!(await Deno.stat(outDir).then(() => true, () => false)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli: report with a bad flag value or name exits non-zero", async () => {
  const timeout = await runCli(["report", "--cell-timeout", "soon"]);
  assertEquals(timeout.code, 2);
  assertStringIncludes(
    timeout.stderr,
    "--cell-timeout needs a positive integer",
  );
  const scale = await runCli(["report", "--scale", "huge"]);
  assertEquals(scale.code, 2);
  assertStringIncludes(
    scale.stderr,
    "--scale expects one of tiny, smoke, full",
  );
  const param = await runCli([
    "report",
    "00_backend_check",
    "--param",
    "nope=1",
  ]);
  assertEquals(param.code, 2);
  assertStringIncludes(param.stderr, 'has no parameter "nope"');
  const name = await runCli(["report", "no_such_notebook"]);
  assertEquals(name.code, 2);
  assertStringIncludes(
    name.stderr,
    "unknown notebook no_such_notebook: expected one of",
  );
  const backend = await runCli(["report", "--backend", "gpu"]);
  assertEquals(backend.code, 2);
  assertStringIncludes(
    backend.stderr,
    "expected one of auto, webgpu, wasm, cpu",
  );
});

Deno.test("reports: no cell output is lost to the kernel's late execute_result", async () => {
  // Deno's kernel sometimes sends a cell's result just after the cell's idle
  // status (about one cell in five); plain nbclient dropped those outputs.
  const cells = Array.from(
    { length: 40 },
    (_, i) => `Deno.jupyter.md\`cell ${i}: \${${i} * 2}\`;`,
  );
  const { nbDir, outDir, dir } = await tempNotebooks({ many: cells });
  try {
    const [result] = await runReports([], {
      notebookDir: nbDir,
      outDir,
      progress: () => {},
    });
    assertEquals(result.status, "ok", result.error);
    const executed = JSON.parse(
      await Deno.readTextFile(`${outDir}/many.ipynb`),
    );
    const missing = executed.cells
      .map((c: { outputs: unknown[] }, i: number) =>
        c.outputs.length === 0 ? i : -1
      )
      .filter((i: number) => i >= 0);
    assertEquals(missing, [], "cells whose output was lost");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("reports: a cell that runs past --cell-timeout fails and is named", async () => {
  const { nbDir, outDir, dir } = await tempNotebooks({
    slow: ["const a = 1;", "await new Promise((r) => setTimeout(r, 30_000));"],
  });
  try {
    const [result] = await runReports([], {
      notebookDir: nbDir,
      outDir,
      cellTimeout: 1,
      progress: () => {},
    });
    assertEquals([result.status, result.cell], ["failed", 2]);
    assertStringIncludes(
      result.error,
      "slow: cell 2 did not finish within the 1 s cell timeout",
    );
    assert(
      result.html !== null && result.seconds < 25,
      `took ${result.seconds} s`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const PARAMS = `#parameters
// Parameters.
const epochs = 2;
const lr = 0.5;
const scale: "smoke" | "full" = "smoke";
const name = "x";`;

Deno.test("reports: parameters are injected typed after the parameters cell; failing cells keep their own numbers", async () => {
  const { nbDir, outDir, dir } = await tempNotebooks({
    params: [
      "#md\n# Parameter test",
      PARAMS,
      'Deno.jupyter.md`${epochs + 1}|${typeof lr}|${scale}|${name}|${Deno.env.get("TOKENLAB_SCALE")}|${Deno.env.get("TOKENLAB_PARAMS")}`;',
      "if (epochs > 4) throw new Error(`too many: ${epochs}`);",
    ],
  });
  try {
    const [ok] = await runReports([], {
      notebookDir: nbDir,
      outDir,
      params: ["name=hello"],
      scale: "full",
      progress: () => {},
    });
    assertEquals(ok.status, "ok", ok.error);
    assertEquals(ok.parameters, { name: "hello", scale: "full" });
    const executed = JSON.parse(
      await Deno.readTextFile(`${outDir}/params.ipynb`),
    );
    const injected = executed.cells[2];
    assertEquals(injected.metadata.tags, ["injected-parameters"]);
    assertStringIncludes(
      injected.source.join(""),
      'const scale: "smoke" | "full" = "full";',
    );
    assertStringIncludes(
      JSON.stringify(executed.cells[3].outputs),
      '3|number|full|hello|full|{\\"scale\\":\\"full\\",\\"name\\":\\"hello\\"}',
    );
    // The notebook on disk is untouched.
    const source = JSON.parse(await Deno.readTextFile(`${nbDir}/params.ipynb`));
    assertEquals(source.cells.length, 4);

    // A failure after the injected cell is reported with the stored notebook's numbering.
    const [bad] = await runReports([], {
      notebookDir: nbDir,
      outDir,
      params: ["epochs=7"],
      progress: () => {},
    });
    assertEquals([bad.status, bad.cell], ["failed", 4]);
    assertStringIncludes(
      bad.error,
      "params: failed at cell 4: Error: too many: 7",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("reports: bad parameters and broken notebooks are refused before anything runs; existing reports stay", async () => {
  const { nbDir, outDir, dir } = await tempNotebooks({
    params: [PARAMS, "const a = epochs;"],
  });
  try {
    await Deno.mkdir(outDir);
    await Deno.writeTextFile(`${outDir}/params.html`, "the previous report");
    const run = (options: Parameters<typeof runReports>[1]) =>
      runReports([], {
        notebookDir: nbDir,
        outDir,
        progress: () => {},
        ...options,
      });

    const unknown = await assertRejects(
      () => run({ params: ["epoch=3"] }),
      ParameterError,
    );
    assertStringIncludes(unknown.message, 'no parameter "epoch"');
    assertStringIncludes(unknown.message, "epochs");
    const type = await assertRejects(
      () => run({ params: ["epochs=2.5"] }),
      ParameterError,
    );
    assertStringIncludes(type.message, "whole number");
    const choice = await assertRejects(
      () => run({ params: ["scale=medium"] }),
      ParameterError,
    );
    assertStringIncludes(choice.message, "smoke");
    await Deno.writeTextFile(`${dir}/p.json`, '{"lr": "fast"}');
    const file = await assertRejects(
      () => run({ paramsFile: `${dir}/p.json` }),
      ParameterError,
    );
    assertStringIncludes(file.message, "lr");
    await Deno.writeTextFile(`${dir}/p.json`, "[1, 2");
    const json = await assertRejects(
      () => run({ paramsFile: `${dir}/p.json` }),
      ParameterError,
    );
    assertStringIncludes(json.message, "is not valid JSON");

    await Deno.writeTextFile(`${nbDir}/params.ipynb`, '{"cells": [,]}');
    const broken = await assertRejects(() => run({}), NotebookError);
    assertStringIncludes(broken.message, "params.ipynb is not valid JSON");

    assertEquals(
      await Deno.readTextFile(`${outDir}/params.html`),
      "the previous report",
    );
    assertEquals([...Deno.readDirSync(outDir)].map((e) => e.name), [
      "params.html",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("reports: a table becomes Markdown in the .md and HTML in the .html; the headline reaches the index", async () => {
  const { nbDir, outDir, dir } = await tempNotebooks({
    tables: [
      "#md\n# Tables",
      'import { headline, table } from "tokenlab";',
      'table({ caption: "Top-1 <b>", columns: [{ key: "run", label: "run" }, { key: "top1", label: "top-1", unit: "%", paper: true }], rows: [{ run: "TL", top1: [80, 81, 82], paper: { top1: 81.5 } }] });',
      'headline("TL reaches 81.00 %");',
    ],
  });
  try {
    const [r] = await runReports([], {
      notebookDir: nbDir,
      outDir,
      browser: false,
      progress: () => {},
    });
    assertEquals(r.status, "ok", r.error);
    assertEquals(r.headline, "TL reaches 81.00 %");
    const md = await Deno.readTextFile(`${outDir}/tables.md`);
    assertStringIncludes(md, "**Top-1 \\<b\\>**");
    assertMatch(md, /\| TL +\| +81\.00 ± 1\.00 \| +81\.50 \| +-0\.50 \|/);
    const html = await Deno.readTextFile(`${outDir}/tables.html`);
    assertStringIncludes(html, '<table class="tokenlab-table"');
    assertStringIncludes(html, "Top-1 &lt;b&gt;");
    assertStringIncludes(html, "<title>Tables</title>");
    assert(
      !html.includes("<script"),
      "a report without figures carries no script",
    );
    const index = await Deno.readTextFile(`${outDir}/README.md`);
    assertStringIncludes(index, "TL reaches 81.00 %");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const browser = await findBrowser();

Deno.test({
  name:
    "reports: a report with plotly figures works in headless Chromium, offline, and the Markdown gets PNGs",
  ignore: browser === null,
  async fn() {
    const { nbDir, outDir, dir } = await tempNotebooks({
      figs: [
        "#md\n# Figures",
        'import { plot, trainingFigure, figureBundle } from "tokenlab";',
        'plot({ data: [{ x: [1, 2, 3], y: [2, 1, 3], name: "loss" }], layout: { title: { text: "a curve" } } }, { caption: "three points" });',
        'const parts = trainingFigure([{ kind: "step", epoch: 0, step: 1, loss: 1.5, lr: 0.001, seconds: 0.1 }] as never, { title: "run" });',
        "Deno.jupyter.display(figureBundle(parts), { raw: true });",
      ],
    });
    try {
      const [r] = await runReports([], {
        notebookDir: nbDir,
        outDir,
        progress: () => {},
      });
      assertEquals(r.status, "ok", r.error);
      assertEquals(r.staticImages, "rendered");
      assert(r.check !== null);
      assertEquals(
        [
          r.check.figures,
          r.check.rendered,
          r.check.consoleErrors,
          r.check.pageErrors,
          r.check.network,
        ],
        [2, 2, [], [], []],
      );
      const md = await Deno.readTextFile(`${outDir}/figs.md`);
      const links = [
        ...md.matchAll(/!\[([^\]]*)\]\((figs_files\/[^)]+\.png)\)/g),
      ];
      assertEquals(links.length, 2, md);
      assertEquals(links[0][1], "a curve");
      for (const [, , path] of links) {
        const png = await Deno.readFile(`${outDir}/${path}`);
        assertEquals([...png.slice(1, 4)], [0x50, 0x4e, 0x47]);
      }
      const html = await Deno.readTextFile(`${outDir}/figs.html`);
      assert(!/<(script|link|img)[^>]+(src|href)="https?:/.test(html));
      assert(
        !html.includes("tokenlab-plot-fallback"),
        "the fallback note is dropped where plotly draws",
      );
      const executed = JSON.parse(
        await Deno.readTextFile(`${outDir}/figs.ipynb`),
      );
      assert("image/png" in executed.cells[2].outputs[0].data);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("reports: a missing kernel fails the notebook with what to do, and leaves its existing report alone", async () => {
  const { nbDir, outDir, dir } = await tempNotebooks({ k: ["const a = 1;"] });
  try {
    await Deno.mkdir(outDir);
    await Deno.writeTextFile(`${outDir}/k.html`, "the previous report");
    const [r] = await runReports([], {
      notebookDir: nbDir,
      outDir,
      kernel: "no-such-kernel",
      progress: () => {},
    });
    assertEquals([r.status, r.html], ["failed", null]);
    assertStringIncludes(
      r.error,
      "k: could not run: no Jupyter kernel named 'no-such-kernel' is installed: run `deno task setup`",
    );
    assertEquals(
      await Deno.readTextFile(`${outDir}/k.html`),
      "the previous report",
    );
    const left = [...Deno.readDirSync(outDir)].map((e) => e.name).sort();
    assertEquals(left, ["README.md", "index.html", "index.json", "k.html"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("render: without a browser the Markdown says the static image was skipped, or uses the bundle's own SVG", async () => {
  const { renderMarkdown, renderHtml } = await import(
    "../lib/report/render.ts"
  );
  const { parseNotebook } = await import("../lib/report/notebook.ts");
  const plotly = {
    data: [{ y: [1, 2] }],
    layout: { title: { text: "t" } },
  };
  const nb = parseNotebook(
    JSON.stringify({
      cells: [{
        cell_type: "code",
        id: "a",
        metadata: {},
        execution_count: 1,
        source: "x",
        outputs: [
          {
            output_type: "display_data",
            metadata: {},
            data: {
              "application/vnd.plotly.v1+json": plotly,
              "text/html": '<p class="tokenlab-plot-fallback">needs plotly</p>',
            },
          },
          {
            output_type: "display_data",
            metadata: {},
            data: {
              "application/vnd.plotly.v1+json": plotly,
              "image/svg+xml": "<svg/>",
              "text/html":
                '<img class="tokenlab-static" alt="t" src="data:x"/><pre>after</pre>',
            },
          },
        ],
      }],
      metadata: {},
      nbformat: 4,
      nbformat_minor: 5,
    }),
    "mem.ipynb",
  );
  const meta = {
    name: "mem",
    status: "ok" as const,
    error: null,
    failedCell: null,
    injectedCell: null,
    parameters: {},
    scale: null,
    seconds: 1,
    date: "2026-01-01T00:00:00.000Z",
    staticNote: "Static images were skipped: no browser.",
  };
  const { markdown, files } = renderMarkdown(nb, meta, new Map());
  assertStringIncludes(
    markdown,
    '*(static image of "t" skipped: no browser to render it; the HTML report draws it)*',
  );
  assertStringIncludes(
    markdown,
    "![t](mem_files/cell1-1.svg)\n\n<pre>after</pre>",
  );
  assertStringIncludes(markdown, "> Static images were skipped: no browser.");
  assertEquals(files.map((f) => f.path), ["mem_files/cell1-1.svg"]);
  const html = renderHtml(nb, meta, "/* plotly */");
  assertEquals(html.match(/class="tokenlab-plotly"/g)?.length, 2);
  assert(!html.includes("needs plotly") && !html.includes("tokenlab-static"));
  assertStringIncludes(html, "<pre>after</pre>");
});

// `tokenlab report PATH.ipynb [--out DIR]`: any notebook file, inside the
// project or not, renders into a folder of its own with its own index; the
// kit's report folder keeps listing the kit's notebooks only; a path that
// is not a notebook, or a folder that would lose something, is refused
// before anything runs.

/** A notebook that imports the kit: it runs only where "tokenlab" resolves. */
const MINE = [
  'import { VERSION } from "tokenlab";',
  "Deno.jupyter.md`my own notebook, tokenlab ${VERSION}, 6 * 7 = ${6 * 7}`;",
];

/** A folder outside the project (no deno.json at or above it). */
async function outside(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "tokenlab-own-notebook-" });
}

Deno.test("cli: report PATH.ipynb renders a notebook outside the project into --out, with that folder's own index", async () => {
  const dir = await outside();
  try {
    await Deno.writeTextFile(`${dir}/my.ipynb`, notebook(MINE));
    const out = `${dir}/rendered`;
    const r = await runCli([
      "report",
      `${dir}/my.ipynb`,
      "--out",
      out,
      "--no-browser",
    ]);
    assertEquals(r.code, 0, r.stderr);
    assertStringIncludes(r.stdout, "1 of 1 reports ok");
    assertStringIncludes(
      await Deno.readTextFile(`${out}/my.html`),
      "6 * 7 = 42",
    );
    const md = await Deno.readTextFile(`${out}/my.md`);
    assertStringIncludes(md, "6 * 7 = 42");
    assertStringIncludes(md, "edit ../my.ipynb instead");
    assert(await exists(`${out}/my.ipynb`));
    // The notebook itself is untouched (stored without outputs).
    assertEquals(
      await Deno.readTextFile(`${dir}/my.ipynb`),
      notebook(MINE),
    );
    // The folder's index lists this report, and nothing of the kit's.
    const index = await Deno.readTextFile(`${out}/README.md`);
    assertStringIncludes(index, "## Notebooks");
    assertStringIncludes(index, "| [my](my.md) ([html](my.html)) | ok |");
    assert(!index.includes("quickstart"), index);
    const html = await Deno.readTextFile(`${out}/index.html`);
    assertStringIncludes(html, '<a href="./my.html">my</a>');
    assert(!html.includes("quickstart"), html);
    const manifest = JSON.parse(await Deno.readTextFile(`${out}/index.json`));
    assertEquals(Object.keys(manifest.reports), ["my"]);
    const left = [...Deno.readDirSync(out)].map((e) => e.name).sort();
    assertEquals(left, [
      "README.md",
      "index.html",
      "index.json",
      "my.html",
      "my.ipynb",
      "my.md",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("reports: a notebook given by its path goes beside it by default; a second one joins that folder's index", async () => {
  const dir = await outside();
  try {
    // The home collection of this run: its index must never list them.
    const nbDir = `${dir}/collection`, home = `${dir}/home`;
    await Deno.mkdir(nbDir);
    await Deno.writeTextFile(`${nbDir}/kit.ipynb`, notebook(["1;"]));
    await Deno.mkdir(`${dir}/work`);
    await Deno.writeTextFile(`${dir}/work/first.ipynb`, notebook(MINE));
    await Deno.writeTextFile(
      `${dir}/work/second.ipynb`,
      notebook(["Deno.jupyter.md`second: ${2 + 3}`;"]),
    );
    const options = {
      notebookDir: nbDir,
      outDir: home,
      browser: false,
      progress: () => {},
    };
    // outDir is this collection's home: a notebook from elsewhere is refused there.
    const refused = await assertRejects(
      () => runReports([`${dir}/work/first.ipynb`], options),
      ReportError,
    );
    assertStringIncludes(
      refused.message,
      `is not one of the notebooks of ${nbDir}`,
    );
    assertStringIncludes(refused.message, "--out DIR");
    assert(!(await exists(home)), "nothing was written");

    // Without outDir the report goes beside the notebook, into reports/.
    const [first] = await runReports([`${dir}/work/first.ipynb`], {
      ...options,
      outDir: undefined,
    });
    assertEquals(first.status, "ok", first.error);
    assertEquals(first.html, `${dir}/work/reports/first.html`);
    const [second] = await runReports([`${dir}/work/second.ipynb`], {
      ...options,
      outDir: undefined,
    });
    assertEquals(second.status, "ok", second.error);
    const index = await Deno.readTextFile(`${dir}/work/reports/README.md`);
    assertStringIncludes(index, "[first](first.md)");
    assertStringIncludes(index, "[second](second.md)");
    assert(!index.includes("kit"), "the collection's notebooks stay out");
    assert(!(await exists(home)), "the home index is not touched");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli: report with a path that is not a notebook exits 2 saying what was expected and found", async () => {
  const dir = await outside();
  try {
    const missing = await runCli(["report", `${dir}/nope/my.ipynb`]);
    assertEquals(missing.code, 2, missing.stderr);
    assertStringIncludes(
      missing.stderr,
      `notebook ${dir}/nope/my.ipynb not found: expected a Jupyter notebook file (.ipynb) at ${dir}/nope/my.ipynb, found nothing there`,
    );
    assert(!missing.stderr.includes("unknown notebook my"), missing.stderr);

    const folder = await runCli(["report", `${dir}/`]);
    assertEquals(folder.code, 2, folder.stderr);
    assertStringIncludes(
      folder.stderr,
      "is not a notebook: expected a Jupyter notebook file whose name ends in .ipynb, found a folder",
    );

    await Deno.writeTextFile(`${dir}/notes.txt`, "hello");
    const text = await runCli(["report", `${dir}/notes.txt`]);
    assertEquals(text.code, 2, text.stderr);
    assertStringIncludes(text.stderr, "found a file named notes.txt");

    await Deno.writeTextFile(`${dir}/broken.ipynb`, '{"cells": [,]}');
    const broken = await runCli(["report", `${dir}/broken.ipynb`]);
    assertEquals(broken.code, 2, broken.stderr);
    assertStringIncludes(broken.stderr, "broken.ipynb is not valid JSON");

    const empty = await runCli(["report", "quickstart", "--out", ""]);
    assertEquals(empty.code, 2, empty.stderr);
    assertStringIncludes(empty.stderr, "--out expects a folder");

    const name = await runCli(["report", "my"]);
    assertEquals(name.code, 2, name.stderr);
    assertStringIncludes(
      name.stderr,
      "or the path of a notebook file (ending in .ipynb)",
    );
    // Nothing was written anywhere.
    assertEquals(
      [...Deno.readDirSync(dir)].map((e) => e.name).sort(),
      ["broken.ipynb", "notes.txt"],
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("reports: a report folder that would lose something is refused before anything runs", async () => {
  const dir = await outside();
  try {
    await Deno.writeTextFile(`${dir}/my.ipynb`, notebook(["1;"]));
    await Deno.mkdir(`${dir}/other`);
    await Deno.writeTextFile(`${dir}/other/my.ipynb`, notebook(["2;"]));
    const run = (names: string[], outDir?: string) =>
      runReports(names, { outDir, browser: false, progress: () => {} });

    // The notebook's own folder: the executed copy would replace it.
    const own = await assertRejects(
      () => run([`${dir}/my.ipynb`], dir),
      ReportError,
    );
    assertStringIncludes(
      own.message,
      "the executed copy my.ipynb would replace the notebook",
    );
    // Two notebooks of one name into one folder.
    const twins = await assertRejects(
      () => run([`${dir}/my.ipynb`, `${dir}/other/my.ipynb`], `${dir}/out`),
      ReportError,
    );
    assertStringIncludes(twins.message, "are both named my");
    // A folder of someone else's files (no index.json of tokenlab report).
    await Deno.mkdir(`${dir}/docs`);
    await Deno.writeTextFile(`${dir}/docs/README.md`, "my project's readme");
    const foreign = await assertRejects(
      () => run([`${dir}/my.ipynb`], `${dir}/docs`),
      ReportError,
    );
    assertStringIncludes(
      foreign.message,
      "already holds files that tokenlab report did not write",
    );
    assertEquals(
      await Deno.readTextFile(`${dir}/docs/README.md`),
      "my project's readme",
    );
    // A file where the folder should be.
    await Deno.writeTextFile(`${dir}/file`, "x");
    const file = await assertRejects(
      () => run([`${dir}/my.ipynb`], `${dir}/file`),
      ReportError,
    );
    assertStringIncludes(file.message, "is a file: expected a folder");
    assert(!(await exists(`${dir}/out`)));
    assert(!(await exists(`${dir}/reports`)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// What a reader sees in Chromium: no figure title under plotly's toolbar,
// no line of code cut off, the index's short cells on one line.

/** Measures the page in Chromium (its policy removed so the measuring script runs). */
async function measure(
  exe: string,
  file: string,
  width: number,
  script: string,
): Promise<unknown> {
  const html = (await Deno.readTextFile(file))
    .replace(/<meta http-equiv="Content-Security-Policy"[^>]*>/, "")
    .replace(
      "</body>",
      `<script>
addEventListener("load", () => {
  const done = (n) => {
    const divs = [...document.querySelectorAll(".tokenlab-plotly")];
    if (n < 200 && !divs.every((d) => d.querySelector(".main-svg"))) {
      return setTimeout(() => done(n + 1), 50);
    }
    const rect = (e) => {
      if (!e) return null;
      const b = e.getBoundingClientRect();
      return { left: b.left, top: b.top, right: b.right, bottom: b.bottom };
    };
    const out = document.createElement("pre");
    out.id = "measured";
    out.textContent = JSON.stringify((${script})());
    document.body.appendChild(out);
  };
  done(0);
});
</script></body>`,
    );
  const page = file.replace(/\.html$/, ".measure.html");
  await Deno.writeTextFile(page, html);
  const out = await new Deno.Command(exe, {
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--hide-scrollbars",
      `--window-size=${width},900`,
      "--virtual-time-budget=20000",
      "--dump-dom",
      `file://${page}`,
    ],
    stdout: "piped",
    stderr: "null",
    signal: AbortSignal.timeout(90_000),
  }).output();
  const dom = new TextDecoder().decode(out.stdout);
  const m = /<pre id="measured">(.*?)<\/pre>/s.exec(dom);
  assert(m !== null, `the page was not measured: ${dom.slice(-500)}`);
  const text = m[1].replaceAll("&quot;", '"').replaceAll("&lt;", "<")
    .replaceAll("&gt;", ">").replaceAll("&amp;", "&");
  return JSON.parse(text);
}

type Rect = { left: number; top: number; right: number; bottom: number };
const overlap = (a: Rect, b: Rect) =>
  a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;

Deno.test({
  name:
    "reports in Chromium: plotly's toolbar covers no figure title, long code lines wrap, the index's short cells stay on one line",
  ignore: browser === null,
  sanitizeResources: false,
  async fn() {
    const { renderHtml } = await import("../lib/report/render.ts");
    const { parseNotebook } = await import("../lib/report/notebook.ts");
    const { plotlyScript } = await import("../lib/report/browser.ts");
    const { writeIndex } = await import("../lib/report/index_page.ts");
    const long =
      "training scene 0 (label: red_circle_plain): top class per token";
    const figures = [
      // The quickstart's score map: a square figure, a small top margin.
      { width: 520, height: 520, margin: { l: 40, r: 20, t: 50, b: 40 } },
      // The training figure's layout (lib/view/chart.ts).
      { width: 1000, height: 420, margin: { l: 60, r: 20, t: 70, b: 110 } },
      // Plotly's own margins, autosized, a title of two lines.
      { titleText: `${long}<br>and a second line ${long}` },
      // Three lines of a large font in a margin too small for them.
      {
        titleText: `${long}<br>two<br>three`,
        titleFont: { size: 26 },
        margin: { t: 20 },
      },
    ].map(({ titleText, titleFont, ...layout }) => ({
      output_type: "display_data",
      metadata: {},
      data: {
        "application/vnd.plotly.v1+json": {
          data: [{ y: [1, 3, 2] }],
          layout: {
            title: { text: titleText ?? long, font: titleFont },
            ...layout,
          },
        },
      },
    }));
    const nb = parseNotebook(
      JSON.stringify({
        cells: [{
          cell_type: "code",
          id: "a",
          metadata: {},
          execution_count: 1,
          source: `const x = ${JSON.stringify("a long line ".repeat(40))};`,
          outputs: [
            ...figures,
            { output_type: "stream", name: "stdout", text: "y".repeat(500) },
          ],
        }],
        metadata: {},
        nbformat: 4,
        nbformat_minor: 5,
      }),
      "page.ipynb",
    );
    const dir = await Deno.makeTempDir({
      dir: `${ROOT}tests`,
      prefix: ".tmp-report-layout-",
    });
    try {
      await Deno.writeTextFile(
        `${dir}/page.html`,
        renderHtml(nb, {
          name: "page",
          status: "ok",
          error: null,
          failedCell: null,
          injectedCell: null,
          parameters: {},
          scale: null,
          seconds: 1,
          date: "2026-01-01T00:00:00.000Z",
          staticNote: null,
        }, await plotlyScript()),
      );
      const page = await measure(
        browser!,
        `${dir}/page.html`,
        1100,
        `() => ({
          figures: [...document.querySelectorAll(".tokenlab-plotly")].map((d) => ({
            title: rect(d.querySelector(".gtitle")),
            modebar: rect(d.querySelector(".modebar")),
            plot: rect(d.querySelector(".bglayer rect, .nsewdrag")),
          })),
          cut: [...document.querySelectorAll("pre")]
            .filter((p) => p.scrollWidth > p.clientWidth).length,
        })`,
      ) as {
        figures: { title: Rect; modebar: Rect; plot: Rect }[];
        cut: number;
      };
      assertEquals(page.figures.length, 4);
      page.figures.forEach((f, i) => {
        assert(f.title && f.modebar && f.plot, `figure ${i + 1} drawn`);
        assert(
          !overlap(f.title, f.modebar),
          `figure ${i + 1}: the toolbar ${
            JSON.stringify(f.modebar)
          } covers the title ${JSON.stringify(f.title)}`,
        );
        assert(
          f.title.bottom <= f.plot.top,
          `figure ${i + 1}: the title runs into the plot`,
        );
      });
      assertEquals(page.cut, 0, "pre elements whose lines are cut off");

      // The index at a narrow width: status, time and date on one line.
      const run = {
        status: "ok" as const,
        error: "",
        seconds: 126,
        html: `${dir}/a.html`,
        headline: "a headline long enough to take the room a narrow page has",
        scale: "smoke",
        parameters: {},
        backend: "wasm",
      };
      await writeIndex(dir, [{ ...run, name: "a" }], ["a", "not_run_yet"]);
      const lines = await measure(
        browser!,
        `${dir}/index.html`,
        420,
        `() => [...document.querySelectorAll("td.nowrap")].map((td) => {
          const r = document.createRange();
          r.selectNodeContents(td);
          const tops = new Set([...r.getClientRects()].map((x) => Math.round(x.top)));
          return [td.textContent, tops.size];
        })`,
      ) as [string, number][];
      assertEquals(
        lines.map(([text]) => text).filter((t) => t !== "").sort(),
        ["2.1 min", "not run", "ok", lines.find(([t]) => /^\d{4}/.test(t))![0]]
          .sort(),
      );
      for (const [text, n] of lines) {
        if (text !== "") assertEquals(n, 1, `"${text}" wraps`);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "the quickstart renders at tiny scale: the class token's target as the official code has it, the gap computed against seed noise, no stray Promise",
  sanitizeResources: false,
  async fn() {
    const source = await Deno.readTextFile(
      `${ROOT}notebooks/quickstart.ipynb`,
    );
    assert(!source.includes("class token against the image label"));
    assert(!source.includes("larger than that"));
    assertStringIncludes(source, "pooled over the whole crop");
    const outDir = await Deno.makeTempDir({ prefix: "tokenlab-quickstart-" });
    try {
      const [r] = await runReports(["quickstart"], {
        outDir,
        scale: "tiny",
        browser: false,
        cellTimeout: 600,
        progress: () => {},
      });
      assertEquals(r.status, "ok", `cell ${r.cell}: ${r.error}`);
      const md = await Deno.readTextFile(`${outDir}/quickstart.md`);
      const html = await Deno.readTextFile(`${outDir}/quickstart.html`);
      for (const page of [md, html]) {
        assert(!page.includes("Promise {"), "a stray Promise output");
      }
      // Two seeds at tiny scale: the gap with its interval and the spread.
      assertMatch(
        md,
        /\*\*The gap\.\*\* Token labels \+ MixToken minus plain, paired by seed over 2 seeds: [+−]\d+\.\d points of top-1, 95% interval \[[+−]\d+\.\d, [+−]\d+\.\d\]/,
      );
      assertMatch(md, /spreads by \d+\.\d points over seeds/);
    } finally {
      await Deno.remove(outDir, { recursive: true });
    }
  },
});
