/**
 * `tokenlab report PATH.ipynb [--out DIR]`: any notebook file, inside the
 * project or not, renders into a folder of its own with its own index; the
 * kit's report folder keeps listing the kit's notebooks only; a path that
 * is not a notebook, or a folder that would lose something, is refused
 * before anything runs.
 */

import {
  assert,
  assertEquals,
  assertRejects,
  assertStringIncludes,
} from "./_assert.ts";
import { ReportError, runReports } from "../lib/report/run.ts";
import { exists, runCli } from "./_helpers.ts";

function notebookJson(cells: string[]): string {
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
    await Deno.writeTextFile(`${dir}/my.ipynb`, notebookJson(MINE));
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
      notebookJson(MINE),
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
    await Deno.writeTextFile(`${nbDir}/kit.ipynb`, notebookJson(["1;"]));
    await Deno.mkdir(`${dir}/work`);
    await Deno.writeTextFile(`${dir}/work/first.ipynb`, notebookJson(MINE));
    await Deno.writeTextFile(
      `${dir}/work/second.ipynb`,
      notebookJson(["Deno.jupyter.md`second: ${2 + 3}`;"]),
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
    await Deno.writeTextFile(`${dir}/my.ipynb`, notebookJson(["1;"]));
    await Deno.mkdir(`${dir}/other`);
    await Deno.writeTextFile(`${dir}/other/my.ipynb`, notebookJson(["2;"]));
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
