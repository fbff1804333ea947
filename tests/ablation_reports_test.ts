// Every ablation report runs end to end at the tiny scale (CI's proof that
// they all render), with its table, verdicts and headline, and the index
// groups them under "Ablations".
import {
  listNotebooks,
  NOTEBOOK_DIR,
  reportGroup,
  runReports,
} from "tokenlab/report/run.ts";
import { assert, assertEquals, assertStringIncludes } from "./_assert.ts";

const notebooks = (await listNotebooks(NOTEBOOK_DIR)).filter((n) =>
  reportGroup(n) === "Ablations"
);

Deno.test("reportGroup: ablation notebooks form their own group", () => {
  assertEquals(reportGroup("ablation_1_mixtoken"), "Ablations");
  assertEquals(reportGroup("quickstart"), "Guides");
  assertEquals(reportGroup("05_training"), "Guides");
});

Deno.test({
  name: `ablation reports: all ${notebooks.length} run at tiny scale`,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    assert(notebooks.length >= 1, "no ablation notebooks found");
    const outDir = await Deno.makeTempDir({ prefix: "tokenlab-ablations-" });
    try {
      const results = await runReports(notebooks, {
        outDir,
        scale: "tiny",
        refresh: true,
        browser: false,
        cellTimeout: 600,
        progress: () => {},
      });
      for (const r of results) {
        assertEquals(r.status, "ok", `${r.name}: ${r.error}`);
        assertEquals(r.scale, "tiny", r.name);
        assert(
          r.headline !== null && r.headline.length > 0,
          `${r.name} has no headline (the index shows its verdict)`,
        );
        const md = await Deno.readTextFile(`${outDir}/${r.name}.md`);
        assertStringIncludes(md, "tiny");
      }
      const index = await Deno.readTextFile(`${outDir}/README.md`);
      assertStringIncludes(index, "## Ablations");
      // Names are Markdown-escaped in the index like any text from a file.
      for (const n of notebooks) {
        assertStringIncludes(index, `[${n.replaceAll("_", "\\_")}](${n}.md)`);
      }
    } finally {
      await Deno.remove(outDir, { recursive: true });
    }
  },
});
