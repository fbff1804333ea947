/**
 * The shape of lib/'s import graph: no circle among its files, no folder
 * importing a higher layer, and no file reaching into another folder's
 * `_`-prefixed (private) files. Edges are the relative specifiers of the
 * static `import` and `export ... from` statements (type-only ones
 * included) that begin a line, so the `@example` code inside doc comments
 * is not read.
 */

import { assert, assertEquals } from "./_assert.ts";

const LIB = new URL("../lib/", import.meta.url);

/** Layers from low to high; a file may import only its own layer or lower. */
const ROOT_LAYERS: Record<string, number> = {
  "errors.ts": 0,
  "tf.ts": 0,
  "random.ts": 0,
  "version.ts": 0,
  "_duration.ts": 0,
  "_fs.ts": 0,
  "_reference.ts": 0,
  "backend.ts": 2,
  "ops.ts": 2,
  "backend_check.ts": 2,
};
const FOLDER_LAYERS: Record<string, number> = {
  kernels: 1,
  io: 3,
  view: 4,
  models: 5,
  mixing: 6,
  losses: 7,
  labels: 8,
  data: 9,
  annotators: 10,
  train: 11,
  // May import anything below report.
  testing: 11.5,
  report: 12,
  // Slurm and other executors of a sweep; the command line drives them.
  sweep: 12.5,
  cli: 13,
};

const STATEMENT =
  /^(?:import|export)\s+(?:type\s+)?(?:\{[^}]*\}|\*(?:\s+as\s+\w+)?|\w+(?:\s*,\s*(?:\{[^}]*\}|\*\s+as\s+\w+))?)\s+from\s*["']([^"']+)["']|^import\s*["']([^"']+)["']/gm;

/** The specifiers of a source's line-initial import and re-export statements. */
export function specifiers(source: string): string[] {
  const out: string[] = [];
  for (const m of source.matchAll(STATEMENT)) out.push(m[1] ?? m[2]);
  return out;
}

async function libFiles(dir = LIB, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isDirectory) {
      out.push(
        ...await libFiles(new URL(`${e.name}/`, dir), `${prefix}${e.name}/`),
      );
    } else if (e.isFile && e.name.endsWith(".ts")) {
      out.push(`${prefix}${e.name}`);
    }
  }
  return out.sort();
}

/** Every file's relative imports, as paths inside lib/ ("labels/score_map.ts"). */
async function importGraph(): Promise<Map<string, string[]>> {
  const graph = new Map<string, string[]>();
  for (const file of await libFiles()) {
    const url = new URL(file, LIB);
    const targets = specifiers(await Deno.readTextFile(url))
      .filter((s) => s.startsWith("./") || s.startsWith("../"))
      .map((s) => new URL(s, url).href)
      .map((href) => {
        assert(href.startsWith(LIB.href), `${file} imports ${href}`);
        return href.slice(LIB.href.length);
      });
    graph.set(file, [...new Set(targets)].sort());
  }
  return graph;
}

const graph = await importGraph();

function dirOf(file: string): string {
  const i = file.lastIndexOf("/");
  return i < 0 ? "" : file.slice(0, i + 1);
}

function baseOf(file: string): string {
  return file.slice(dirOf(file).length);
}

/** A file's layer; undefined for lib/mod.ts, which may import anything. */
function layerOf(file: string): number | undefined {
  if (file === "mod.ts") return undefined;
  const slash = file.indexOf("/");
  const layer = slash < 0
    ? ROOT_LAYERS[file]
    : FOLDER_LAYERS[file.slice(0, slash)];
  assert(
    layer !== undefined,
    `lib/${file} has no layer: place it in ROOT_LAYERS or FOLDER_LAYERS of tests/import_graph_test.ts`,
  );
  return layer;
}

Deno.test("import graph: the parser reads statements, not doc examples", () => {
  const source = [
    "/**",
    " * @example",
    " * ```ts",
    ' * import { b } from "./doc.ts";',
    " * ```",
    " */",
    'import { a } from "./a.ts";',
    'import type { T } from "./t.ts";',
    "import {",
    "  c,",
    "  type D,",
    '} from "./c.ts";',
    'import * as e from "./e.ts";',
    'import f, { g } from "./f.ts";',
    'export * from "./h.ts";',
    'export { type I } from "./i.ts";',
    'import "./side.ts";',
    'const x = Array.from("./not.ts");',
    'const y = await import("./dynamic.ts");',
  ].join("\n");
  assertEquals(specifiers(source), [
    "./a.ts",
    "./t.ts",
    "./c.ts",
    "./e.ts",
    "./f.ts",
    "./h.ts",
    "./i.ts",
    "./side.ts",
  ]);
  assert(graph.size > 100, `only ${graph.size} files found under lib/`);
  assert(
    (graph.get("mod.ts") ?? []).length > 10,
    "lib/mod.ts's imports were not read",
  );
});

Deno.test("import graph: no file of lib/ imports itself through others", () => {
  const cycles: string[] = [];
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const visit = (file: string) => {
    state.set(file, "open");
    stack.push(file);
    for (const next of graph.get(file) ?? []) {
      const s = state.get(next);
      if (s === "open") {
        const cycle = stack.slice(stack.indexOf(next));
        cycles.push([...cycle, next].map((f) => `lib/${f}`).join(" -> "));
      } else if (s === undefined) {
        visit(next);
      }
    }
    stack.pop();
    state.set(file, "done");
  };
  for (const file of graph.keys()) if (!state.has(file)) visit(file);
  assert(cycles.length === 0, `import cycles:\n${cycles.join("\n")}`);
});

Deno.test("import graph: no folder imports a higher layer", () => {
  const upward: string[] = [];
  for (const [file, targets] of graph) {
    const from = layerOf(file);
    if (from === undefined) continue;
    for (const target of targets) {
      const to = layerOf(target);
      if (to === undefined || to > from) {
        upward.push(`lib/${file} (${from}) -> lib/${target} (${to ?? "top"})`);
      }
    }
  }
  assert(
    upward.length === 0,
    `imports of a higher layer:\n${upward.join("\n")}`,
  );
});

Deno.test("import graph: no file imports another folder's private files", () => {
  const reaching: string[] = [];
  for (const [file, targets] of graph) {
    for (const target of targets) {
      if (!baseOf(target).startsWith("_")) continue;
      // The private file's own folder and its subfolders may use it.
      if (!dirOf(file).startsWith(dirOf(target))) {
        reaching.push(`lib/${file} -> lib/${target}`);
      }
    }
  }
  assert(
    reaching.length === 0,
    `imports of another folder's private files:\n${reaching.join("\n")}`,
  );
});
