/** Score maps display themselves: plotly figure, SVG fallback, text. */

import { assert, assertEquals, assertStringIncludes } from "./_assert.ts";
import { showScoreMap } from "tokenlab";

Deno.test("a score map shows its top classes with the crop box and the token grid", () => {
  const map = {
    k: 2,
    height: 2,
    width: 3,
    scores: new Float32Array([5, 5, 5, 5, 5, 5, 1, 1, 1, 1, 1, 1]),
    ids: new Int32Array([3, 3, 7, 3, 3, 7, 0, 0, 0, 0, 0, 0]),
  };
  const view = showScoreMap(map, {
    box: [0, 0, 1, 2 / 3],
    tokens: 2,
    classNames: ["bg", "a", "b", "cat", "d", "e", "f", "dog"],
    image: { data: new Float32Array(4 * 6 * 3).fill(0.5), height: 4, width: 6 },
  });
  const bundle =
    (view as unknown as Record<symbol, () => Record<string, unknown>>)[
      Symbol.for("Jupyter.display")
    ]();
  assertEquals(Object.keys(bundle).sort(), [
    "application/vnd.plotly.v1+json",
    "image/svg+xml",
    "text/html",
    "text/plain",
  ]);
  const fig = bundle["application/vnd.plotly.v1+json"] as {
    data: { type: string; z: number[][] }[];
    layout: { shapes: unknown[] };
  };
  assertEquals(fig.data.map((d) => d.type), ["image", "heatmap"]);
  assertEquals(fig.data[1].z, [[3, 3, 7], [3, 3, 7]]);
  assertEquals(fig.layout.shapes.length, 2 + 1); // two grid lines and the box
  const svg = bundle["image/svg+xml"] as string;
  assert(svg.startsWith("<svg") && svg.endsWith("</svg>"), "an SVG document");
  assertStringIncludes(svg, "<title>(0, 2): dog</title>");
  assertStringIncludes(bundle["text/plain"] as string, "cat cat dog");
  const html = bundle["text/html"] as string;
  const b64 = html.match(/base64,([^"]+)"/)![1];
  assertEquals(
    new TextDecoder().decode(
      Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)),
    ),
    svg,
  );
});

Deno.test("showScoreMap: a cell whose scores are all 0 (uniform) names no class", () => {
  const map = {
    k: 2,
    height: 1,
    width: 2,
    scores: new Float32Array([3, 0, 1, 0]),
    ids: new Int32Array([4, 0, 2, 1]),
  };
  const view = showScoreMap(map, { classNames: ["a", "b", "c", "d", "e"] });
  assertEquals(Array.from(view.topClasses()), [4, -1]);
  assertStringIncludes(view.toString(), "(uniform)");
});
