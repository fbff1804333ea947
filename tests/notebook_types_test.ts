// Every notebook's code type-checks: its code cells, in order, as one
// module checked with the project's deno.json. The report kernel runs cells
// without a type check, so this is where a type error in a notebook shows.
import { listNotebooks, NOTEBOOK_DIR } from "tokenlab/report/run.ts";
import { readNotebook } from "tokenlab/report/notebook.ts";
import { join } from "node:path";
import { assert } from "./_assert.ts";

Deno.test({
  name: "notebooks: the code of every notebook type-checks",
  sanitizeResources: false,
  fn: async () => {
    const names = await listNotebooks(NOTEBOOK_DIR);
    const dir = await Deno.makeTempDir({
      dir: new URL(".", import.meta.url).pathname,
      prefix: ".tmp-nbcheck-",
    });
    try {
      const files: string[] = [];
      for (const name of names) {
        const nb = await readNotebook(join(NOTEBOOK_DIR, `${name}.ipynb`));
        const code = nb.cells.filter((c) => c.cell_type === "code")
          .map((c) =>
            typeof c.source === "string" ? c.source : c.source.join("")
          );
        const file = join(dir, `${name}.ts`);
        await Deno.writeTextFile(file, code.join("\n\n") + "\nexport {};\n");
        files.push(file);
      }
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["check", "--quiet", ...files],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(out.stderr) +
        new TextDecoder().decode(out.stdout);
      assert(
        out.success,
        `a notebook's code does not type-check:\n${text.slice(0, 4000)}`,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
