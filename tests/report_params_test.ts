/**
 * Notebook parameters: reading a `parameters` cell's literal declarations,
 * checking `--param`/`--params` values against them, and injecting them as a
 * cell after it.
 */

import {
  assert,
  assertEquals,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "./_assert.ts";
import {
  findParameterCell,
  injectParameters,
  MAX_PARAMETER_DEPTH,
  MAX_PARAMETER_FILE_BYTES,
  MAX_PARAMETERS_SOURCE,
  ParameterError,
  type ParameterSpec,
  parseParameters,
  readParameterFile,
  renderInjectedCell,
  resolveParameters,
} from "../lib/report/params/mod.ts";
import {
  cellSource,
  type Notebook,
  type NotebookCell,
  readNotebook,
  serializeNotebook,
} from "../lib/report/notebook.ts";
import { ROOT } from "./_helpers.ts";

const CELL = `// Parameters.
const seed = 3;
const size = 32; // image side in pixels
const lr = 2e-3;
const scale: "smoke" | "full" = "smoke";
const name = "run";
const useEma = true;
const seeds = [3, 4, 5];
const model: string = "lvvit_xs32";
const overrides = { depth: 2, embedDim: 64 };
`;

function byName(specs: ParameterSpec[]): Record<string, ParameterSpec> {
  return Object.fromEntries(specs.map((s) => [s.name, s]));
}

Deno.test("parseParameters reads the example cell", () => {
  const specs = parseParameters(CELL);
  assertEquals(specs.map((s) => s.name), [
    "seed",
    "size",
    "lr",
    "scale",
    "name",
    "useEma",
    "seeds",
    "model",
    "overrides",
  ]);
  const s = byName(specs);
  assertEquals(s.seed, {
    name: "seed",
    kind: "const",
    type: "number",
    integer: true,
    nullable: false,
    annotation: null,
    choices: null,
    default: 3,
    asConst: false,
    line: 2,
    comment: null,
  });
  assertEquals(s.size.comment, "image side in pixels");
  assertEquals([s.lr.type, s.lr.integer, s.lr.default], [
    "number",
    false,
    2e-3,
  ]);
  assertEquals(s.scale.annotation, '"smoke" | "full"');
  assertEquals(s.scale.choices, ["smoke", "full"]);
  assertEquals([s.scale.type, s.scale.default], ["string", "smoke"]);
  assertEquals([s.name.type, s.useEma.type], ["string", "boolean"]);
  assertEquals([s.seeds.type, s.seeds.default], ["array", [3, 4, 5]]);
  assertEquals([s.model.annotation, s.model.choices], ["string", null]);
  assertEquals([s.overrides.type, s.overrides.default], ["object", {
    depth: 2,
    embedDim: 64,
  }]);
  assertEquals(s.overrides.line, 10);
});

Deno.test("parseParameters reads every literal form", () => {
  const specs = byName(parseParameters(`
/* a block
   comment */ let a = -1.5e+3; /* trailing block */
const b = 1_000_000 // no semicolon
const c = .5;
const d = 0x1F;
const e = 'it\\'s "quoted"\\n';
const f = \`two
lines\`;
const g = null;
const h = [[1, -2], { "k-1": [true, false], k2: null, }, "x",] as const;
const i = { nested: { deeper: [1e-3] } };
const j: boolean = false; // help
const k = 2.0;
const l = undefined;
const m: number | null = null;
const n: 1 | 2 | -4 = 2;
const o = "\\u{1F600}\\x41\\u0042";
const p = [];
`));
  assertEquals(specs.a.default, -1500);
  assertEquals([specs.a.kind, specs.a.line, specs.a.comment], [
    "let",
    3,
    "trailing block",
  ]);
  assertEquals([specs.b.default, specs.b.integer], [1_000_000, true]);
  assertEquals(specs.b.comment, "no semicolon");
  assertEquals([specs.c.default, specs.c.integer], [0.5, false]);
  assertEquals([specs.d.default, specs.d.integer], [31, true]);
  assertEquals(specs.e.default, `it's "quoted"\n`);
  assertEquals(specs.f.default, "two\nlines");
  assertEquals([specs.g.type, specs.g.default, specs.g.nullable], [
    "null",
    null,
    true,
  ]);
  assertEquals(specs.h.default, [[1, -2], {
    "k-1": [true, false],
    k2: null,
  }, "x"]);
  assert(specs.h.asConst);
  assertEquals(specs.i.default, { nested: { deeper: [0.001] } });
  assertEquals([specs.j.type, specs.j.annotation, specs.j.comment], [
    "boolean",
    "boolean",
    "help",
  ]);
  // 2.0 is written as a fraction, so any number is accepted
  assertEquals([specs.k.default, specs.k.integer], [2, false]);
  assertEquals([specs.l.type, specs.l.default, specs.l.nullable], [
    "null",
    undefined,
    true,
  ]);
  assertEquals([specs.m.type, specs.m.nullable], ["number", true]);
  assertEquals([specs.n.type, specs.n.choices], ["number", [1, 2, -4]]);
  assertEquals(specs.o.default, "\u{1F600}AB");
  assertEquals(specs.p.default, []);
});

Deno.test("parseParameters: the type of an undefined default comes from its annotation", () => {
  const [backend, box] = parseParameters(
    `const backend: string | undefined = undefined;
const box: [number, number] | null = null;`,
  );
  assertEquals([backend.type, backend.nullable, backend.default], [
    "string",
    true,
    undefined,
  ]);
  assertEquals([box.type, box.nullable], ["array", true]);
});

Deno.test("parseParameters rejects what is not a literal declaration, naming the line", () => {
  const cases: [string, string][] = [
    ["// x\nconst x = Math.PI;", 'line 2: the value of "x" is not a literal'],
    ["const x = 1 + 2;", "parameters must be literal values"],
    ["const x = `a${b}`;", "line 1: a template literal with ${...}"],
    ["const a = 1, b = 2;", "one declaration per statement"],
    ["\nfoo();", "line 2: expected a declaration"],
    ["const { a } = b;", "destructuring is not supported"],
    ["const x = [1, , 2];", "empty slot"],
    ["const x = 3n;", "BigInt"],
    ["const x = { a };", 'expected ":" after the key "a"'],
    ["const x = 1 as number;", "only `as const`"],
    ['const s: "a" | "b" = "c";', "not one of its choices"],
    ["const x = 1;\nconst x = 2;", '"x" is declared twice'],
    ["const x;", '"x" has no value'],
    ["const x = 'open;", "is not closed"],
    ["const x = NaN;", "not a literal"],
  ];
  for (const [src, message] of cases) {
    assertThrows(() => parseParameters(src), ParameterError, message);
  }
});

function cell(
  source: string | string[],
  tags?: string[],
  id = crypto.randomUUID().slice(0, 8),
): NotebookCell {
  return {
    cell_type: "code",
    execution_count: null,
    id,
    metadata: tags ? { tags } : {},
    outputs: [],
    source,
  };
}

function notebook(cells: NotebookCell[]): Notebook {
  return { cells, metadata: {}, nbformat: 4, nbformat_minor: 5 };
}

Deno.test("findParameterCell finds the tagged cell, or says two are tagged", () => {
  const nb = notebook([cell("1;"), cell("const a = 1;", ["parameters"])]);
  const found = findParameterCell(nb)!;
  assertEquals(found.index, 1);
  assertEquals(found.specs.map((s) => s.name), ["a"]);
  assertEquals(findParameterCell(notebook([cell("1;")])), null);
  assertThrows(
    () =>
      findParameterCell(
        notebook([
          cell("const a = 1;", ["parameters"]),
          cell("const b = 1;", ["x", "parameters"]),
        ]),
      ),
    ParameterError,
    'cells 1, 2 are all tagged "parameters"',
  );
  assertThrows(
    () =>
      findParameterCell(
        notebook([cell("1;"), cell("const a = f();", ["parameters"])]),
      ),
    ParameterError,
    "the parameters cell (cell 2), line 1:",
  );
});

Deno.test("resolveParameters coerces --param values by type", () => {
  const specs = parseParameters(CELL);
  assertEquals(
    resolveParameters(specs, {
      pairs: [
        "lr=1e-3",
        "seed=-7",
        "scale=full",
        "name=a=b",
        "useEma=no",
        "seeds=[1, 2]",
        'overrides={"depth": 4}',
      ],
    }, "05_training"),
    {
      seed: -7,
      lr: 0.001,
      scale: "full",
      name: "a=b",
      useEma: false,
      seeds: [1, 2],
      overrides: { depth: 4 },
    },
  );
  for (const [text, value] of [["1", true], ["yes", true], ["FALSE", false]]) {
    assertEquals(
      resolveParameters(specs, { pairs: [`useEma=${text}`] }, "nb").useEma,
      value,
    );
  }
  assertEquals(resolveParameters(specs, {}, "nb"), {});
});

Deno.test("resolveParameters says what was expected and found", () => {
  const specs = parseParameters(CELL);
  const cases: [string, string][] = [
    ["lr=abc", '--param lr expects a number (default 0.002), found "abc"'],
    ["lr=", "--param lr expects a number"],
    ["lr=Infinity", "--param lr expects a number"],
    [
      "seed=1.5",
      '--param seed expects a whole number (default 3), found "1.5"',
    ],
    ["scale=big", 'one of "smoke", "full" (default "smoke"), found "big"'],
    ["useEma=maybe", "expects true or false"],
    ["seeds=[1", "(not valid JSON)"],
    ["seeds={}", "expects a JSON list"],
    ['seeds=[1, "a"]', 'element 2 is the string "a"'],
    ["overrides=[1]", "expects a JSON object"],
    ["lr", '--param "lr" is not NAME=VALUE'],
    ["=3", "is not NAME=VALUE"],
  ];
  for (const [pair, message] of cases) {
    assertThrows(
      () => resolveParameters(specs, { pairs: [pair] }, "05_training"),
      ParameterError,
      message,
    );
  }
  const e = assertThrows(
    () => resolveParameters(specs, { pairs: ["foo=1"] }, "05_training"),
    ParameterError,
    [
      "notebook 05_training",
      'no parameter "foo"',
      'seed (3), size (32), lr (0.002), scale ("smoke")',
    ],
  );
  assertStringIncludes(e.message, 'overrides ({"depth":2,"embedDim":64})');
  assertThrows(
    () => resolveParameters(specs, { pairs: ["sede=1"] }, "05_training"),
    ParameterError,
    'did you mean "seed"',
  );
  assertThrows(
    () => resolveParameters([], { pairs: ["seed=1"] }, "03_mixing"),
    ParameterError,
    "it declares no parameters",
  );
});

Deno.test("resolveParameters checks --params JSON values strictly; pairs win", () => {
  const specs = parseParameters(CELL);
  assertEquals(
    resolveParameters(specs, {
      values: { seed: 5, lr: 0.01, scale: "full" },
      pairs: ["seed=6"],
    }, "nb"),
    { seed: 6, lr: 0.01, scale: "full" },
  );
  const cases: [Record<string, unknown>, string][] = [
    [
      { seed: "3" },
      'p.json: "seed" expects a whole number (default 3), found the string "3"',
    ],
    [{ seed: 2.5 }, "expects a whole number"],
    [{ useEma: "true" }, "expects true or false"],
    [{ name: 3 }, "expects a string"],
    [{ scale: "big" }, 'expects one of "smoke", "full"'],
    [{ seeds: { a: 1 } }, "expects a JSON list"],
    [{ overrides: null }, "expects a JSON object"],
    [{ nope: 1 }, 'has no parameter "nope"'],
  ];
  for (const [values, message] of cases) {
    assertThrows(
      () => resolveParameters(specs, { values, valuesSource: "p.json" }, "nb"),
      ParameterError,
      message,
    );
  }
  assertThrows(
    () =>
      resolveParameters(specs, {
        values: [1] as unknown as Record<string, unknown>,
      }, "nb"),
    ParameterError,
    "--params must hold a JSON object",
  );
  // null is fine where the declaration allows it
  const nullable = parseParameters(
    "const backend: string | undefined = undefined;",
  );
  assertEquals(
    resolveParameters(nullable, { values: { backend: null } }, "nb"),
    { backend: null },
  );
  assertEquals(
    resolveParameters(nullable, { pairs: ["backend=wasm"] }, "nb"),
    { backend: "wasm" },
  );
});

Deno.test("renderInjectedCell writes typed declarations", () => {
  const specs = parseParameters(
    CELL + "let count = 1;\nconst mode = 'a' as const;\n",
  );
  assertEquals(
    renderInjectedCell(specs, {
      overrides: { depth: 1 },
      lr: 0.001,
      scale: "full",
      name: 'say "hi"',
      useEma: false,
      seeds: [1, 2],
      count: 5,
      mode: "b",
    }),
    [
      "// Injected by tokenlab report",
      "const lr: number = 0.001;",
      'const scale: "smoke" | "full" = "full";',
      'const name: string = "say \\"hi\\"";',
      "const useEma: boolean = false;",
      "const seeds = [1,2];",
      'const overrides = {"depth":1};',
      "let count: number = 5;",
      'const mode = "b" as const;',
    ].join("\n"),
  );
  assertThrows(
    () => renderInjectedCell(specs, { nope: 1 }),
    ParameterError,
    'cannot inject "nope"',
  );
});

Deno.test("injectParameters inserts after the parameters cell and replaces a stale one", () => {
  const nb = notebook([
    cell("# title", undefined, "c0"),
    cell(["const seed = 3;\n", "const lr = 0.1;"], ["parameters"], "c1"),
    cell("train();", undefined, "c2"),
  ]);
  const before = serializeNotebook(nb);
  const once = injectParameters(nb, { seed: 9 });
  assertEquals(serializeNotebook(nb), before, "the input is not changed");
  assertEquals(once.cells.map((c) => c.id), [
    "c0",
    "c1",
    "injected-parameters",
    "c2",
  ]);
  const injected = once.cells[2];
  assertEquals(injected, {
    cell_type: "code",
    execution_count: null,
    id: "injected-parameters",
    metadata: { tags: ["injected-parameters"] },
    outputs: [],
    // the parameters cell's list form
    source: [
      "// Injected by tokenlab report\n",
      "const seed: number = 9;",
    ],
  });
  assert(/^[a-zA-Z0-9-_]{8,64}$/.test(injected.id!));

  // a stale injected cell elsewhere is replaced, not duplicated
  const moved = structuredClone(once);
  moved.cells.push(moved.cells.splice(2, 1)[0]);
  const twice = injectParameters(moved, { lr: 0.5 });
  assertEquals(twice.cells.map((c) => c.id), [
    "c0",
    "c1",
    "injected-parameters",
    "c2",
  ]);
  assertEquals(
    cellSource(twice.cells[2]),
    "// Injected by tokenlab report\nconst lr: number = 0.5;",
  );

  // no values: only the stale cell goes
  assertEquals(injectParameters(once, {}).cells.map((c) => c.id), [
    "c0",
    "c1",
    "c2",
  ]);
  assertEquals(serializeNotebook(injectParameters(nb, {})), before);

  // notebooks before 4.5 have no cell ids
  const old = { ...structuredClone(nb), nbformat_minor: 4 };
  old.cells.forEach((c) => delete c.id);
  assertEquals(injectParameters(old, { seed: 1 }).cells[2].id, undefined);

  assertThrows(
    () => injectParameters(nb, { nope: 1 }),
    ParameterError,
    'cannot inject "nope"',
  );
});

Deno.test("injectParameters without a parameters cell says how to add one", () => {
  const nb = notebook([cell("train();")]);
  assertEquals(injectParameters(nb, {}).cells.length, 1);
  assertThrows(
    () => injectParameters(nb, { seed: 1 }),
    ParameterError,
    'the notebook declares no parameters, so "seed" cannot be set: expected a code cell tagged "parameters"',
  );
});

Deno.test("the project's notebooks' parameters cells parse", async () => {
  const nb = await readNotebook(`${ROOT}notebooks/05_training.ipynb`);
  const found = findParameterCell(nb);
  assert(found !== null, "05_training has a parameters cell");
  const specs = byName(found.specs);
  for (const name of ["seed", "epochs", "batchSize", "lr"]) {
    assert(name in specs, `05_training declares ${name}`);
  }
  assertEquals([specs.epochs.type, specs.epochs.integer], ["number", true]);
  assertEquals([specs.lr.type, specs.lr.integer], ["number", false]);
  assertThrows(
    () =>
      resolveParameters(found.specs, { pairs: ["epochs=1.5"] }, "05_training"),
    ParameterError,
    "expects a whole number",
  );
  // and a run with values injects right after it
  const injected = injectParameters(nb, { epochs: 1 });
  assertEquals(injected.cells[found.index + 1].metadata.tags, [
    "injected-parameters",
  ]);
  for await (const entry of Deno.readDir(`${ROOT}notebooks`)) {
    if (!entry.name.endsWith(".ipynb")) continue;
    findParameterCell(await readNotebook(`${ROOT}notebooks/${entry.name}`));
  }
});

Deno.test("a help comment belongs to the last declaration on its line", () => {
  const [a, b] = parseParameters("const a = 1; const b = 2; // about b");
  assertEquals([a.comment, b.comment], [null, "about b"]);
});

// Found by the fuzzing harness (tests/fuzz/): hostile parameters cells and
// --params files are ParameterErrors, never a stack overflow or a hang.

Deno.test("a parameter nested 50 000 levels deep is a ParameterError, not a stack overflow", () => {
  for (const open of ["[", "{a:"]) {
    const src = `const deep = ${open.repeat(50_000)}1;`;
    const err = assertThrows(() => parseParameters(src), ParameterError);
    assertStringIncludes(err.message, '"deep"');
    assertStringIncludes(
      err.message,
      `more than ${MAX_PARAMETER_DEPTH} levels deep`,
    );
  }
  // the deepest allowed is read
  const ok = `const v = ${"[".repeat(MAX_PARAMETER_DEPTH)}1${
    "]".repeat(MAX_PARAMETER_DEPTH)
  };`;
  let v = parseParameters(ok)[0].default;
  let depth = 0;
  while (Array.isArray(v)) {
    v = v[0];
    depth++;
  }
  assertEquals([depth, v], [MAX_PARAMETER_DEPTH, 1]);
});

Deno.test("a parameters cell of millions of characters is refused at once, not parsed for seconds", () => {
  const src = `const names = [${"'x',".repeat(1_000_000)}'y'];`;
  const t0 = performance.now();
  const err = assertThrows(() => parseParameters(src), ParameterError);
  assert(performance.now() - t0 < 500, "refusing took too long");
  assertStringIncludes(err.message, `${src.length} characters`);
  assertStringIncludes(err.message, `at most ${MAX_PARAMETERS_SOURCE}`);
  // a long cell within the limit is still read, in linear time
  const n = 150_000;
  const long = `const names = [${"'x',".repeat(n)}'y'];`;
  assert(long.length <= MAX_PARAMETERS_SOURCE);
  const t1 = performance.now();
  const [spec] = parseParameters(long);
  assertEquals((spec.default as string[]).length, n + 1);
  assert(performance.now() - t1 < 3_000, "a 600 kB cell took too long");
});

Deno.test("a --params file that is not JSON or not an object is a ParameterError naming the file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const cases: [string, string][] = [
      ["{", "is not valid JSON"],
      ["[1, 2]", "must hold a JSON object"],
      ["null", "must hold a JSON object"],
      ['"x"', "must hold a JSON object"],
      ["", "is not valid JSON"],
    ];
    for (const [text, says] of cases) {
      await Deno.writeTextFile(`${dir}/p.json`, text);
      const err = await assertRejects(
        () => readParameterFile(`${dir}/p.json`),
        ParameterError,
      );
      assertStringIncludes(err.message, `${dir}/p.json`);
      assertStringIncludes(err.message, says);
    }
    const missing = await assertRejects(
      () => readParameterFile(`${dir}/none.json`),
      ParameterError,
    );
    assertStringIncludes(missing.message, "cannot read it");
    await Deno.mkdir(`${dir}/folder.json`);
    await assertRejects(
      () => readParameterFile(`${dir}/folder.json`),
      ParameterError,
    );
    await Deno.writeTextFile(`${dir}/p.json`, '{"seed": 4, "__proto__": 1}');
    const values = await readParameterFile(`${dir}/p.json`);
    assertEquals(Object.keys(values), ["seed", "__proto__"]);
    assertEquals(values.seed, 4);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--params and --param values nested deeper than a parameters cell may nest are refused; huge values are quoted short", () => {
  const specs = parseParameters("const cfg = null;\nconst seed = 3;");
  const deep = JSON.parse("[".repeat(5_000) + "]".repeat(5_000));
  const fromFile = assertThrows(
    () => resolveParameters(specs, { values: { cfg: deep } }, "nb"),
    ParameterError,
  );
  assertStringIncludes(fromFile.message, '"cfg"');
  assertStringIncludes(fromFile.message, `more than ${MAX_PARAMETER_DEPTH}`);
  const fromPair = assertThrows(
    () =>
      resolveParameters(specs, {
        pairs: [`cfg=${"[".repeat(5_000)}${"]".repeat(5_000)}`],
      }, "nb"),
    ParameterError,
  );
  assertStringIncludes(fromPair.message, "--param cfg");
  // the deepest a cell allows is allowed here too
  const ok = JSON.parse(
    "[".repeat(MAX_PARAMETER_DEPTH) + "]".repeat(MAX_PARAMETER_DEPTH),
  );
  assertEquals(
    resolveParameters(specs, { values: { cfg: ok } }, "nb").cfg,
    ok,
  );
  // a wrong value of a megabyte is quoted by its start
  const huge = "x".repeat(1_000_000);
  const err = assertThrows(
    () => resolveParameters(specs, { values: { seed: huge } }, "nb"),
    ParameterError,
  );
  assert(err.message.length < 600, `message of ${err.message.length} chars`);
  assertStringIncludes(err.message, '"seed" expects a whole number');
});

Deno.test("--params files that are devices, FIFOs, oversize or not UTF-8 are refused at once", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const refused = async (path: string, says: string[]) => {
      const t0 = performance.now();
      const err = await assertRejects(
        () => readParameterFile(path),
        ParameterError,
      );
      const took = performance.now() - t0;
      assert(took < 5000, `expected a refusal at once, took ${took} ms`);
      assertStringIncludes(err.message, `--params ${path}`);
      for (const s of says) assertStringIncludes(err.message, s);
    };
    // A device that never ends.
    await refused("/dev/zero", [
      "expected a regular file (tokenlab writes one; it follows no links), found not a regular file",
    ]);
    // A FIFO: opening it would wait for a writer for ever.
    const fifo = `${dir}/fifo.json`;
    const mk = await new Deno.Command("mkfifo", { args: [fifo] }).output();
    assert(mk.success, "mkfifo failed");
    await refused(fifo, ["found not a regular file"]);
    // A sparse file one byte over the limit: refused before it is read.
    const big = `${dir}/big.json`;
    await Deno.writeTextFile(big, "{}");
    await Deno.truncate(big, MAX_PARAMETER_FILE_BYTES + 1);
    await refused(big, [
      `expected at most ${MAX_PARAMETER_FILE_BYTES} bytes, found ${
        MAX_PARAMETER_FILE_BYTES + 1
      } bytes`,
    ]);
    // Invalid UTF-8 is refused, not replaced.
    const latin = `${dir}/latin1.json`;
    await Deno.writeFile(
      latin,
      new Uint8Array([0x7b, 0x22, 0x6e, 0xe9, 0x22, 0x3a, 0x31, 0x7d]), // {"n\xe9":1}
    );
    await refused(latin, [
      "expected UTF-8 text, found bytes that are not UTF-8",
    ]);
    // A link to a good file is followed: the path is the user's own.
    await Deno.writeTextFile(`${dir}/real.json`, '{"seed": 5}');
    await Deno.symlink(`${dir}/real.json`, `${dir}/link.json`);
    assertEquals(await readParameterFile(`${dir}/link.json`), { seed: 5 });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
