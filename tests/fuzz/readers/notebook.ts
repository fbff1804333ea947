/**
 * Fuzzing the notebook reader: the project's notebooks (and one with
 * outputs, as a run leaves it), mutated as JSON, as bytes, or in the source
 * of their parameters cell; each case is read, its parameters cell parsed,
 * its outputs stripped, and it is written back and read again.
 *
 * @module
 */

import {
  cellsWithOutputs,
  type Notebook,
  NotebookError,
  parseNotebook,
  readNotebook,
  serializeNotebook,
  sourceLines,
  stripOutputs,
} from "../../../lib/report/notebook.ts";
import {
  findParameterCell,
  injectParameters,
  ParameterError,
} from "../../../lib/report/params/mod.ts";
import type { Rng } from "../../../lib/random.ts";
import { filesReader, hostileFile, type MakeCase, steps } from "../_reader.ts";
import { mutateBytes, mutateJson, mutateText, pick } from "../mutate.ts";

const INPUT = "input.ipynb";

/** The notebook with its parameters cell's source mutated as text (null when it has none). */
export function mutateParameterCell(
  rng: Rng,
  text: string,
): { text: string; what: string[] } | null {
  const nb = JSON.parse(text) as Notebook;
  const cell = nb.cells.find((c) =>
    Array.isArray(c.metadata?.tags) && c.metadata.tags.includes("parameters")
  );
  if (!cell) return null;
  const src = typeof cell.source === "string"
    ? cell.source
    : cell.source.join("");
  const m = mutateText(rng, src);
  cell.source = rng.float() < 0.5 ? m.value : sourceLines(m.value);
  return { text: JSON.stringify(nb, null, 1), what: m.what };
}

const make: MakeCase = async (rng, seeds, dir) => {
  const seed = pick(rng, seeds);
  const path = `${dir}/${INPUT}`;
  const text = new TextDecoder().decode(seed.bytes);
  const what = [`seed ${seed.name}`];
  const r = rng.float();
  if (r < 0.55) {
    const m = mutateJson(rng, text);
    await Deno.writeTextFile(path, m.value);
    return [...what, ...m.what];
  }
  if (r < 0.75) {
    const m = mutateBytes(rng, seed.bytes);
    await Deno.writeFile(path, m.value);
    return [...what, ...m.what];
  }
  if (r < 0.96) {
    const m = mutateParameterCell(rng, text);
    if (m !== null) {
      await Deno.writeTextFile(path, m.text);
      return [...what, "parameters cell:", ...m.what];
    }
    await Deno.writeFile(path, seed.bytes);
    return [...what, "unchanged (no parameters cell)"];
  }
  return [await hostileFile(rng, path)];
};

const own = [NotebookError, ParameterError] as const;

/** The notebook reader: readNotebook, then its parameters cell, stripping, writing back and reading again. */
export const reader = filesReader({
  own,
  async prepare(dir) {
    await Deno.mkdir(dir, { recursive: true });
    const root = new URL("../../../notebooks/", import.meta.url);
    const names: string[] = [];
    for await (const e of Deno.readDir(root)) {
      if (e.name.endsWith(".ipynb")) names.push(e.name);
    }
    for (const n of names.sort()) {
      await Deno.copyFile(new URL(n, root), `${dir}/${n}`);
    }
    // One as a run leaves it: outputs, counts, run metadata.
    const nb = JSON.parse(
      await Deno.readTextFile(new URL("quickstart.ipynb", root)),
    );
    nb.metadata.tokenlab = { status: "ok" };
    nb.nbformat_minor = 4;
    for (const [i, c] of nb.cells.entries()) {
      delete c.id;
      if (c.cell_type !== "code") continue;
      c.execution_count = i + 1;
      c.metadata.execution = { "iopub.status.busy": "2026-01-01T00:00:00Z" };
      c.outputs = [
        { output_type: "stream", name: "stdout", text: ["hello\n"] },
        {
          output_type: "display_data",
          data: { "text/plain": ["1"], "text/html": "<b>1</b>" },
          metadata: {},
        },
        {
          output_type: "error",
          ename: "Error",
          evalue: "x",
          traceback: ["a", "b"],
        },
      ];
    }
    await Deno.writeTextFile(
      `${dir}/ran_quickstart.ipynb`,
      JSON.stringify(nb, null, 1),
    );
  },
  make,
  async run(dir) {
    const path = `${dir}/${INPUT}`;
    const nb = await readNotebook(path);
    await steps(
      own,
      () => findParameterCell(nb),
      () => injectParameters(nb, {}),
      () => cellsWithOutputs(nb),
      () => {
        const again = parseNotebook(serializeNotebook(nb), path);
        const stripped = stripOutputs(again).notebook;
        parseNotebook(serializeNotebook(stripped), path);
      },
    );
  },
});
