/**
 * `tokenlab strip`: clear the outputs a Jupyter session leaves in the
 * notebooks, so that `notebooks/` holds sources only (reports hold results).
 *
 * @module
 */

import { relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Command } from "./_args.ts";
import { defineCommand } from "./_command.ts";
import type { StripResult } from "../report/notebook.ts";

const USAGE = `usage: tokenlab strip [FILE ...] [--check]

Clears what running a notebook leaves in it: outputs, execution counts, cell
timings (metadata "execution"), output scroll state, and the notebook metadata
"tokenlab" and "widgets". FILEs are notebooks or folders of them (default:
every notebooks/*.ipynb). Each notebook is rewritten in place, atomically, and
only when something changed. Every file is read and checked before any is
written: a file that is not a valid notebook stops the command (exit 2) with
nothing written.

  --check  change nothing; exit 1 listing the notebooks and cells with
           outputs, 0 when all are clean`;

// The project's notebook folder, found from this module like lib/report/run.ts
// does, so that the command works from any working directory.
const NOTEBOOK_DIR = fileURLToPath(
  new URL("../../notebooks/", import.meta.url),
);

/** A path for messages: relative to the working directory when inside it. */
function display(path: string): string {
  const rel = relative(Deno.cwd(), path);
  return rel === "" || rel.startsWith("..") ? path : rel;
}

/** `*.ipynb` files of a folder, sorted. */
async function notebooksIn(dir: string): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && entry.name.endsWith(".ipynb")) {
      found.push(resolve(dir, entry.name));
    }
  }
  return found.sort();
}

function cellList(cells: number[]): string {
  return cells.length === 1 ? `cell ${cells[0]}` : `cells ${cells.join(", ")}`;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/** The `strip` command. */
export const stripCommand: Command = defineCommand({
  name: "strip",
  summary: "clear outputs from the notebooks (--check: fail if any has some)",
  usage: USAGE,
  options: { check: { type: "boolean", default: false } },
  positionals: true,
  async run({ values, positionals }) {
    const { NotebookError, readNotebook, stripOutputs, writeNotebook } =
      await import("../report/notebook.ts");
    const paths: string[] = [];
    try {
      for (const arg of positionals.length ? positionals : [NOTEBOOK_DIR]) {
        const path = resolve(arg);
        let isDir = false;
        try {
          isDir = (await Deno.stat(path)).isDirectory;
        } catch (e) {
          if (!(e instanceof Deno.errors.NotFound)) throw e;
          // readNotebook below says the file does not exist
        }
        paths.push(...(isDir ? await notebooksIn(path) : [path]));
      }
      if (paths.length === 0) {
        console.error(
          `tokenlab strip: no notebooks found in ${
            positionals.length ? positionals.join(", ") : display(NOTEBOOK_DIR)
          }: expected *.ipynb files; name the notebooks to strip`,
        );
        return 2;
      }
      // read and check them all before writing any, so that a broken file
      // stops the command with nothing half done
      const results: (StripResult & { path: string })[] = [];
      for (const path of paths) {
        results.push({ path, ...stripOutputs(await readNotebook(path)) });
      }
      const dirty = results.filter((r) =>
        r.cells.length > 0 || r.metadata.length > 0
      );
      const what = (r: StripResult) =>
        [
          r.cells.length ? cellList(r.cells) : "",
          r.metadata.length
            ? `notebook metadata ${
              r.metadata.map((k) => JSON.stringify(k)).join(", ")
            }`
            : "",
        ].filter((s) => s !== "").join("; ");
      if (values.check) {
        if (dirty.length === 0) {
          console.log(`${plural(results.length, "notebook")} clean`);
          return 0;
        }
        for (const r of dirty) {
          console.error(`${display(r.path)}: outputs in ${what(r)}`);
        }
        console.error(
          `tokenlab strip --check: ${
            plural(dirty.length, "notebook")
          } of ${results.length} ${
            dirty.length === 1 ? "has" : "have"
          } outputs; expected none (notebooks/ holds sources, reports/ the results). Run \`deno task tokenlab strip${
            positionals.length ? ` ${positionals.join(" ")}` : ""
          }\` to clear them.`,
        );
        return 1;
      }
      for (const r of dirty) {
        await writeNotebook(r.path, r.notebook);
        console.log(`cleaned ${display(r.path)}: ${what(r)}`);
      }
      console.log(
        dirty.length === 0
          ? `${plural(results.length, "notebook")} already clean`
          : `stripped ${plural(dirty.length, "notebook")} of ${results.length}`,
      );
      return 0;
    } catch (e) {
      if (!(e instanceof NotebookError)) throw e;
      console.error(`tokenlab strip: ${e.message}`);
      return 2;
    }
  },
});
