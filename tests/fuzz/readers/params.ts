/**
 * Fuzzing the parameters path of `tokenlab report`: a notebook with a
 * parameters cell and a `--params` file of values for it (valid seeds made
 * from the project's notebooks), with the file mutated as JSON or bytes, or
 * the cell's source mutated as text; each case goes through what a report
 * run does: read the notebook, parse its parameters cell, read the file,
 * resolve the values (and the same values as `--param` pairs), inject them.
 *
 * @module
 */

import {
  type Notebook,
  NotebookError,
  readNotebook,
  serializeNotebook,
} from "../../../lib/report/notebook.ts";
import {
  findParameterCell,
  injectParameters,
  ParameterError,
  readParameterFile,
  renderInjectedCell,
  resolveParameters,
} from "../../../lib/report/params/mod.ts";
import {
  type FuzzReader,
  hostileFile,
  loadFiles,
  type MakeCase,
  steps,
} from "../_reader.ts";
import { mutateBytes, mutateJson, pick } from "../mutate.ts";
import { mutateParameterCell } from "./notebook.ts";

const NOTEBOOK = "notebook.ipynb";
const PARAMS = "params.json";

/** A notebook and a valid parameters file for it. */
interface ParamsSeed {
  name: string;
  notebook: string;
  params: string;
}

/** Values for a notebook's parameters: the defaults, with numbers nudged and choices switched. */
function valuesFor(nb: Notebook): Record<string, unknown> {
  const found = findParameterCell(nb);
  const out: Record<string, unknown> = {};
  for (const s of found?.specs ?? []) {
    if (s.choices && s.choices.length > 1) out[s.name] = s.choices.at(-1);
    else if (typeof s.default === "number") {
      out[s.name] = s.integer ? s.default + 1 : s.default * 1.5;
    } else out[s.name] = s.default ?? null;
  }
  return out;
}

const make: MakeCase<ParamsSeed[]> = async (rng, seeds, dir) => {
  const seed = pick(rng, seeds);
  const what = [`seed ${seed.name}`];
  let notebook = seed.notebook;
  let params: string | Uint8Array = seed.params;
  const r = rng.float();
  if (r < 0.3) {
    const m = mutateParameterCell(rng, notebook)!;
    notebook = m.text;
    what.push("parameters cell:", ...m.what);
  } else if (r < 0.8) {
    const m = mutateJson(rng, seed.params);
    params = m.value;
    what.push(`${PARAMS}:`, ...m.what);
  } else if (r < 0.97) {
    const m = mutateBytes(rng, new TextEncoder().encode(seed.params));
    params = m.value;
    what.push(`${PARAMS} bytes:`, ...m.what);
  }
  await Deno.writeTextFile(`${dir}/${NOTEBOOK}`, notebook);
  if (typeof params === "string") {
    await Deno.writeTextFile(`${dir}/${PARAMS}`, params);
  } else await Deno.writeFile(`${dir}/${PARAMS}`, params);
  if (r >= 0.97) what.push(await hostileFile(rng, `${dir}/${PARAMS}`));
  return what;
};

/** A value as `--param NAME=VALUE` text: strings as they are, anything else as JSON. */
function pairText(name: string, v: unknown): string {
  return `${name}=${typeof v === "string" ? v : JSON.stringify(v) ?? ""}`;
}

const own = [ParameterError, NotebookError] as const;

/** The parameters path: the notebook's parameters cell, the --params file, --param pairs, the injected cell. */
export const reader: FuzzReader<ParamsSeed[]> = {
  own,
  async prepare(dir) {
    await Deno.mkdir(dir, { recursive: true });
    const root = new URL("../../../notebooks/", import.meta.url);
    for await (const e of Deno.readDir(root)) {
      if (!e.name.endsWith(".ipynb")) continue;
      const path = new URL(e.name, root).pathname;
      const nb = await readNotebook(path);
      if (findParameterCell(nb) === null) continue;
      const stem = e.name.replace(/\.ipynb$/, "");
      await Deno.copyFile(path, `${dir}/${stem}.ipynb`);
      await Deno.writeTextFile(
        `${dir}/${stem}.json`,
        JSON.stringify(valuesFor(nb), null, 2),
      );
    }
  },
  async load(dir) {
    const files = await loadFiles(dir);
    const dec = new TextDecoder();
    const out: ParamsSeed[] = [];
    for (const f of files.filter((f) => f.name.endsWith(".ipynb"))) {
      const stem = f.name.replace(/\.ipynb$/, "");
      const params = files.find((p) => p.name === `${stem}.json`)!;
      out.push({
        name: stem,
        notebook: dec.decode(f.bytes),
        params: dec.decode(params.bytes),
      });
    }
    return out;
  },
  make,
  async run(dir) {
    const nb = await readNotebook(`${dir}/${NOTEBOOK}`);
    const found = findParameterCell(nb);
    const specs = found?.specs ?? [];
    const values = await readParameterFile(`${dir}/${PARAMS}`);
    await steps(
      own,
      () => {
        const resolved = resolveParameters(specs, {
          values,
          valuesSource: PARAMS,
        }, "notebook");
        renderInjectedCell(specs, resolved);
        serializeNotebook(injectParameters(nb, resolved));
      },
      () => {
        const pairs = Object.entries(values).map(([k, v]) => pairText(k, v));
        const resolved = resolveParameters(specs, { pairs }, "notebook");
        serializeNotebook(injectParameters(nb, resolved));
      },
    );
  },
};
