/**
 * The report runner executes real notebooks with the Deno kernel: one that
 * passes, and one whose second code cell throws.
 */

import {
  assert,
  assertEquals,
  assertRejects,
  assertStringIncludes,
} from "./_assert.ts";
import { ReportError, runReports } from "../lib/report/run.ts";
import { ROOT, runCli } from "./_helpers.ts";

function notebook(cells: string[]): string {
  return JSON.stringify({
    cells: cells.map((source, i) => ({
      cell_type: "code",
      id: `c${i}`,
      execution_count: null,
      metadata: {},
      outputs: [],
      source,
    })),
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
    // No temporary files are left behind.
    const left = [...Deno.readDirSync(outDir)].map((e) => e.name).sort();
    assertEquals(left, ["bad.html", "bad.ipynb", "good.html", "good.ipynb"]);
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
    "--cell-timeout expects a whole number of seconds",
  );
  const name = await runCli(["report", "no_such_notebook"]);
  assertEquals(name.code, 1);
  assertStringIncludes(
    name.stderr,
    "unknown notebook no_such_notebook: expected one of",
  );
  const backend = await runCli(["report", "--backend", "gpu"]);
  assertEquals(backend.code, 1);
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
    assertStringIncludes(result.error, "timed out");
    assert(
      result.html !== null && result.seconds < 25,
      `took ${result.seconds} s`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
