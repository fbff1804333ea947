import {
  assert,
  assertEquals,
  assertRejects,
  assertStringIncludes,
} from "./_assert.ts";
import {
  browserTest as sharedBrowserTest,
  checkHtml,
  chromiumSkip,
  ROOT,
} from "./_helpers.ts";
import {
  Browser,
  BrowserError,
  plotlyScript,
  plotlyVersion,
} from "../lib/report/browser.ts";

// A missing Chromium is reported as skipped, never as a pass.
const skip = await chromiumSkip();
if (skip) console.warn(`report_browser_test: skipped: ${skip}`);

/** A Deno.test that needs Chromium: it gets a fresh browser, closed after. */
const browserTest = (
  name: string,
  fn: (browser: Browser, dir: string) => Promise<void>,
) => sharedBrowserTest(name, fn, { skip, prefix: ".tmp-browser-" });

/** A page that inlines plotly.js and draws `figures` into containers. */
async function plotlyPage(figures: string[], extra = ""): Promise<string> {
  const divs = figures.map((_, i) =>
    `<div class="tokenlab-plotly" id="f${i}"></div>`
  ).join("\n");
  const draws = figures.map((f, i) =>
    `<script>Plotly.newPlot("f${i}", ${f});</script>`
  ).join("\n");
  return `<!DOCTYPE html><html><head><meta charset="utf-8">
<script>${await plotlyScript()}</script></head><body>
${divs}
${draws}
${extra}
</body></html>`;
}

const SCATTER = JSON.stringify({
  data: [{ type: "scatter", x: [1, 2, 3], y: [2, 1, 3], name: "loss-curve" }],
  layout: { title: { text: "a tiny figure" }, width: 400, height: 300 },
});
const BARS = JSON.stringify({
  data: [{ type: "bar", x: ["a", "b"], y: [3, 4] }],
  layout: {},
});

function pngWidth(png: Uint8Array): number {
  // The IHDR chunk follows the 8-byte signature; width is its first field.
  return new DataView(png.buffer, png.byteOffset).getUint32(16);
}

Deno.test("the pinned plotly.js bundle is readable and versioned", async () => {
  const version = await plotlyVersion();
  assertEquals(version, "4.1.2");
  const script = await plotlyScript();
  assert(script.length > 1_000_000, `plotly.min.js is ${script.length} chars`);
  assertStringIncludes(script.slice(0, 500), version);
  assert(await plotlyScript() === script, "the text is cached");
});

Deno.test("launching a browser that does not exist says what to do", async () => {
  const missing = `${ROOT}tests/no-such-chromium`;
  const e = await assertRejects(
    () => Browser.launch({ executable: missing }),
    BrowserError,
  );
  assertStringIncludes(e.message, missing);
  assertStringIncludes(e.message, "does not exist");
  assertStringIncludes(e.message, "task setup");
  assertStringIncludes(e.message, "TOKENLAB_CHROMIUM");
});

browserTest("a page of plotly figures checks ok", async (browser, dir) => {
  const { check } = await checkHtml(browser, {
    dir,
    name: "good.html",
    html: await plotlyPage([SCATTER, BARS]),
  });
  assertEquals(check, {
    url: check.url,
    figures: 2,
    rendered: 2,
    consoleErrors: [],
    consoleMessages: [],
    pageErrors: [],
    dialogs: [],
    cspViolations: [],
    csp: null,
    network: [],
    ok: true,
  });
  assert(check.url.startsWith("file:///") && check.url.endsWith("good.html"));
});

browserTest(
  "console errors, exceptions and network requests are reported promptly",
  async (browser, dir) => {
    const { check, ms } = await checkHtml(browser, {
      dir,
      name: "bad.html",
      html: `<!DOCTYPE html><html><body>
<script>console.error("boom from the console", 42);</script>
<script>throw new Error("boom thrown");</script>
<img src="https://example.com/x.png">
<script>fetch("http://example.invalid/").catch(() => {});</script>
</body></html>`,
    });
    assert(
      ms < 20_000,
      `checkPage took ${
        ms.toFixed(0)
      } ms on a page without figures (it waited for figures that are not there)`,
    );
    assertEquals(check.ok, false);
    assertEquals([check.figures, check.rendered], [0, 0]);
    assert(
      check.consoleErrors.some((m) => m.includes("boom from the console 42")),
      `consoleErrors: ${JSON.stringify(check.consoleErrors)}`,
    );
    assertEquals(check.pageErrors.length, 1);
    assertStringIncludes(check.pageErrors[0], "boom thrown");
    assertEquals(check.network.toSorted(), [
      "http://example.invalid/",
      "https://example.com/x.png",
    ]);
  },
);

browserTest(
  "a figure that never renders fails the check after the timeout",
  async (browser, dir) => {
    // No plotly.js here, so the page loads at once even on a busy machine
    // and only the wait for the figure is timed: one container holds what
    // plotly leaves (an svg.main-svg), the other gets broken data.
    const { check, ms } = await checkHtml(browser, {
      dir,
      name: "broken.html",
      html: `<!DOCTYPE html><html><body>
<div class="tokenlab-plotly"><div><svg class="main-svg"></svg></div></div>
<div class="tokenlab-plotly" id="f1"></div>
<script>JSON.parse("{broken figure");</script>
</body></html>`,
      timeoutMs: 2000,
    });
    assert(ms >= 2000 && ms < 20_000, `checkPage took ${ms.toFixed(0)} ms`);
    assertEquals([check.figures, check.rendered], [2, 1]);
    assertEquals(check.ok, false);
    assertEquals(check.network, []);
    assertStringIncludes(check.pageErrors.join("\n"), "JSON");
  },
);

browserTest("a missing page is a BrowserError", async (browser, dir) => {
  await assertRejects(
    () => browser.checkPage(`${dir}/nothing.html`),
    BrowserError,
    "no such file",
  );
});

browserTest("plotly figures render to PNG and SVG", async (browser) => {
  const figures = [JSON.parse(SCATTER), JSON.parse(BARS)];
  const pngs = await browser.renderPlotly(figures);
  assertEquals(pngs.length, 2);
  const signature = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  for (const png of pngs) assertEquals([...png.subarray(0, 8)], signature);
  // Layout width (400) or the default (700), times the default scale 2.
  assertEquals(pngs.map(pngWidth), [800, 1400]);
  const [one] = await browser.renderPlotly([figures[0]], {
    width: 321,
    scale: 1,
  });
  assertEquals(pngWidth(one), 321);
  const svgs = await browser.renderPlotly(figures, { format: "svg" });
  const text = svgs.map((b) => new TextDecoder().decode(b));
  for (const svg of text) assert(svg.startsWith("<svg"), svg.slice(0, 80));
  assertStringIncludes(text[0], "a tiny figure");
  assertStringIncludes(text[0], 'width="400"');
  assertStringIncludes(text[1], 'width="700"');
});

browserTest("close is idempotent", async (browser) => {
  await browser.close();
  await browser.close();
  await assertRejects(
    () => browser.renderPlotly([{ data: [] }]),
    BrowserError,
    "closed",
  );
});

browserTest("renderPlotly refuses what is not a figure", async (browser) => {
  await assertRejects(
    () => browser.renderPlotly([{ data: [] }, { layout: {} }]),
    TypeError,
    'figure 1 is an object with keys ["layout"]',
  );
});
