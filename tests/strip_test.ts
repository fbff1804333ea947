/**
 * Notebook files: parsing with errors that point at the problem, writing back
 * the same bytes, clearing outputs, and the `tokenlab strip` command.
 */

import {
  assert,
  assertEquals,
  assertStringIncludes,
  assertThrows,
} from "./_assert.ts";
import {
  cellsWithOutputs,
  NotebookError,
  parseNotebook,
  readNotebook,
  serializeNotebook,
  sourceLines,
  stripOutputs,
  writeNotebook,
} from "../lib/report/notebook.ts";
import { ROOT, runCli } from "./_helpers.ts";

/** A notebook as a Jupyter session leaves it: outputs, counts, timings. */
function executed(): string {
  return JSON.stringify(
    {
      cells: [
        {
          cell_type: "markdown",
          id: "md",
          metadata: {},
          source: ["# Title\n", "text"],
        },
        {
          cell_type: "code",
          execution_count: 1,
          id: "c1",
          metadata: {
            execution: { "iopub.execute_input": "2026-01-01T00:00:00Z" },
            tags: ["parameters"],
          },
          outputs: [],
          source: "const seed = 1;",
        },
        {
          cell_type: "code",
          execution_count: null,
          id: "c2",
          metadata: {},
          outputs: [],
          source: "// not run",
        },
        {
          cell_type: "code",
          execution_count: 3,
          id: "c3",
          metadata: { scrolled: true, collapsed: false },
          outputs: [{
            name: "stdout",
            output_type: "stream",
            text: ["0.00001 ü\n"],
          }, {
            data: { "text/plain": ["1e-05"] },
            execution_count: 3,
            metadata: {},
            output_type: "execute_result",
          }],
          source: ["console.log(1e-5)"],
        },
      ],
      metadata: {
        kernelspec: {
          display_name: "Deno",
          language: "typescript",
          name: "deno",
        },
        tokenlab: { status: "ok" },
        widgets: {},
      },
      nbformat: 4,
      nbformat_minor: 5,
    },
    null,
    1,
  ) + "\n";
}

Deno.test("stripOutputs clears what a run leaves, without touching its input", () => {
  const nb = parseNotebook(executed(), "x.ipynb");
  const before = structuredClone(nb);
  assertEquals(cellsWithOutputs(nb), [2, 4]);
  const { notebook, cells, metadata } = stripOutputs(nb);
  assertEquals(nb, before, "the input is unchanged");
  assertEquals(cells, [2, 4]);
  assertEquals(metadata, ["tokenlab", "widgets"]);
  assertEquals(notebook.cells[1].metadata, { tags: ["parameters"] });
  assertEquals(notebook.cells[1].execution_count, null);
  assertEquals(notebook.cells[3].metadata, {});
  assertEquals(notebook.cells[3].outputs, []);
  assertEquals(notebook.metadata, {
    kernelspec: { display_name: "Deno", language: "typescript", name: "deno" },
  });
  assertEquals(notebook.cells[0], before.cells[0]);
  assertEquals(cellsWithOutputs(notebook), []);
  const again = stripOutputs(notebook);
  assertEquals([again.cells, again.metadata], [[], []]);
  assertEquals(serializeNotebook(again.notebook), serializeNotebook(notebook));
});

Deno.test("serializing the project's notebooks gives back their bytes", async () => {
  let count = 0;
  for await (const entry of Deno.readDir(`${ROOT}notebooks`)) {
    if (!entry.name.endsWith(".ipynb")) continue;
    const text = await Deno.readTextFile(`${ROOT}notebooks/${entry.name}`);
    const nb = parseNotebook(text, entry.name);
    assert(serializeNotebook(nb) === text, `${entry.name} round trips`);
    // a stripped copy keeps the file's layout (final newline included)
    assert(serializeNotebook(stripOutputs(nb).notebook) === text);
    count++;
  }
  assert(count > 0, "notebooks/ has notebooks");
});

Deno.test("serializeNotebook writes like nbformat", () => {
  // Python's float notation, non-ASCII as is, a final newline by default
  const text = executed();
  const nb = parseNotebook(text, "x.ipynb");
  const out = serializeNotebook(nb);
  assertEquals(out, text);
  nb.metadata.small = [1e-5, 0.0001, 1.5e-7, -2e-10, 12.5, 3];
  assertStringIncludes(
    serializeNotebook(nb),
    `"small": [\n   1e-05,\n   0.0001,\n   1.5e-07,\n   -2e-10,\n   12.5,\n   3\n  ]`,
  );
  const fresh = JSON.parse(text);
  assert(serializeNotebook(fresh).endsWith("}\n"));
  const bare = parseNotebook(text.trimEnd(), "x.ipynb");
  assert(serializeNotebook(bare).endsWith("}"), "no final newline stays so");
});

Deno.test("sourceLines splits like Jupyter", () => {
  assertEquals(sourceLines("a\nb\n\nc"), ["a\n", "b\n", "\n", "c"]);
  assertEquals(sourceLines("a\n"), ["a\n"]);
  assertEquals(sourceLines(""), []);
});

Deno.test("parseNotebook says what is wrong and where", () => {
  const e = assertThrows(
    () => parseNotebook('{\n "cells": [],\n "nbformat": x\n}', "nb/x.ipynb"),
    NotebookError,
    'nb/x.ipynb is not valid JSON: expected a value (object, list, string, number, true, false or null), found "x" at line 3, column 14.',
  );
  assertStringIncludes(e.message, "git checkout");
  assertThrows(
    () => parseNotebook('{\n "cells": [\n  {}\n  {}\n ]}', "x.ipynb"),
    NotebookError,
    'found "{" at line 4, column 3',
  );
  assertThrows(
    () => parseNotebook('{"cells": [], "nbformat": 4', "x.ipynb"),
    NotebookError,
    "at line 1, column 28",
  );
  assertThrows(() => parseNotebook("", "x.ipynb"), NotebookError, "is empty");
  assertThrows(
    () => parseNotebook("[]", "x.ipynb"),
    NotebookError,
    'expected a JSON object with "cells", found a list',
  );
  assertThrows(
    () =>
      parseNotebook(
        '{"cells": [], "metadata": {}, "nbformat": 3, "nbformat_minor": 0}',
        "old.ipynb",
      ),
    NotebookError,
    'old.ipynb is not an nbformat 4 notebook: expected "nbformat": 4, found 3',
  );
  const nb = (cells: unknown[]) =>
    JSON.stringify({ cells, metadata: {}, nbformat: 4, nbformat_minor: 5 });
  const cellCases: [unknown, string][] = [
    [{ cell_type: "code", metadata: {} }, 'cell 2 has no "source"'],
    [
      { cell_type: "code", source: 3 },
      'cell 2 has a "source" that is number 3',
    ],
    [
      { cell_type: "code", source: ["a", 1] },
      "expected a string or a list of strings",
    ],
    [{ cell_type: "heading", source: "" }, 'cell 2 has cell_type "heading"'],
    [{ source: "" }, "cell 2 has no cell_type"],
    [
      { cell_type: "code", source: "", outputs: {} },
      '"outputs" that are an object',
    ],
    [
      { cell_type: "code", source: "", execution_count: "1" },
      "execution_count",
    ],
    [{ cell_type: "code", source: "", metadata: { tags: "x" } }, "tags"],
    ["cell", "cell 2 is the string"],
  ];
  for (const [bad, message] of cellCases) {
    assertThrows(
      () =>
        parseNotebook(nb([{ cell_type: "raw", source: "" }, bad]), "x.ipynb"),
      NotebookError,
      message,
    );
  }
  // lenient where Jupyter is: missing outputs, count and metadata
  const parsed = parseNotebook(
    nb([{ cell_type: "code", source: "" }]),
    "x.ipynb",
  );
  assertEquals(parsed.cells[0], {
    cell_type: "code",
    source: "",
    metadata: {},
    outputs: [],
    execution_count: null,
  });
});

async function tempDir(): Promise<string> {
  return await Deno.makeTempDir({ dir: `${ROOT}tests`, prefix: ".tmp-strip-" });
}

Deno.test("readNotebook and writeNotebook", async () => {
  const dir = await tempDir();
  try {
    await writeNotebook(`${dir}/a.ipynb`, parseNotebook(executed(), "a"));
    assertEquals(await Deno.readTextFile(`${dir}/a.ipynb`), executed());
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assertEquals(names, ["a.ipynb"], "no temporary file is left");
    assertEquals((await readNotebook(`${dir}/a.ipynb`)).cells.length, 4);
    try {
      await readNotebook(`${dir}/missing.ipynb`);
      throw new Error("expected a NotebookError");
    } catch (e) {
      assert(e instanceof NotebookError);
      assertStringIncludes(e.message, `${dir}/missing.ipynb does not exist`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tokenlab strip --check, strip, and a broken file", async () => {
  const dir = await tempDir();
  try {
    const clean = serializeNotebook(
      stripOutputs(parseNotebook(executed(), "x")).notebook,
    );
    await Deno.writeTextFile(`${dir}/a.ipynb`, executed());
    await Deno.writeTextFile(`${dir}/b.ipynb`, clean);

    let r = await runCli(["strip", "--check", dir]);
    assertEquals(r.code, 1, r.stderr);
    assertStringIncludes(
      r.stderr,
      `a.ipynb: outputs in cells 2, 4; notebook metadata "tokenlab", "widgets"`,
    );
    assert(!r.stderr.includes("b.ipynb"), r.stderr);
    assertStringIncludes(r.stderr, "deno task tokenlab strip");
    assertEquals(await Deno.readTextFile(`${dir}/a.ipynb`), executed());

    r = await runCli(["strip", "--check", `${dir}/b.ipynb`]);
    assertEquals(r.code, 0, r.stderr);
    assertStringIncludes(r.stdout, "1 notebook clean");

    // a broken file stops everything: exit 2, nothing written
    await Deno.writeTextFile(`${dir}/c.ipynb`, '{"cells": [}');
    r = await runCli(["strip", dir]);
    assertEquals(r.code, 2, r.stderr);
    assertStringIncludes(r.stderr, "c.ipynb is not valid JSON");
    assertStringIncludes(r.stderr, "line 1, column 12");
    assertEquals(await Deno.readTextFile(`${dir}/a.ipynb`), executed());
    assertEquals(await Deno.readTextFile(`${dir}/c.ipynb`), '{"cells": [}');
    r = await runCli(["strip", "--check", `${dir}/c.ipynb`]);
    assertEquals(r.code, 2, r.stderr);
    await Deno.remove(`${dir}/c.ipynb`);

    r = await runCli(["strip", `${dir}/a.ipynb`, `${dir}/b.ipynb`]);
    assertEquals(r.code, 0, r.stderr);
    assertStringIncludes(r.stdout, "a.ipynb: cells 2, 4");
    assertStringIncludes(r.stdout, "stripped 1 notebook of 2");
    assertEquals(await Deno.readTextFile(`${dir}/a.ipynb`), clean);

    r = await runCli(["strip", dir]);
    assertEquals(r.code, 0, r.stderr);
    assertStringIncludes(r.stdout, "2 notebooks already clean");
    r = await runCli(["strip", "--check", dir]);
    assertEquals(r.code, 0, r.stderr);

    r = await runCli(["strip", `${dir}/missing.ipynb`]);
    assertEquals(r.code, 2);
    assertStringIncludes(r.stderr, "missing.ipynb does not exist");
    r = await runCli(["strip", "--bogus"]);
    assertEquals(r.code, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the project's notebooks have no outputs (tokenlab strip --check)", async () => {
  const r = await runCli(["strip", "--check"]);
  assertEquals(r.code, 0, r.stderr);
  assertStringIncludes(r.stdout, "notebooks clean");
});
