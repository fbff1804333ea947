/**
 * Injecting given values into a notebook: the cell tagged
 * `injected-parameters` after the parameters cell.
 *
 * @module
 */

import {
  cloneNotebook,
  type Notebook,
  type NotebookCell,
  sourceLines,
} from "../notebook.ts";
import { INJECTED_TAG, PARAMETERS_TAG, type ParameterSpec } from "./spec.ts";
import { ParameterError } from "./parameter_error.ts";
import { findParameterCell } from "./parse.ts";
import { isParametersCell, render } from "./_common.ts";

/**
 * The source of the injected cell: a comment line, then one declaration per
 * value, typed with the parameter's own annotation if it had one, else the
 * value's type (number, string or boolean; none for lists and objects), e.g.
 * `const lr: number = 0.001;`. Throws {@linkcode ParameterError} for a name
 * the specs do not declare.
 *
 * @example
 * ```ts
 * import { parseParameters, renderInjectedCell } from "tokenlab/report/params/mod.ts";
 * const specs = parseParameters("const lr = 2e-3;");
 * console.log(renderInjectedCell(specs, { lr: 0.01 }));
 * // // Injected by tokenlab report
 * // const lr: number = 0.01;
 * ```
 */
export function renderInjectedCell(
  specs: readonly ParameterSpec[],
  values: Record<string, unknown>,
): string {
  const lines = ["// Injected by tokenlab report"];
  const byName = new Map(specs.map((s) => [s.name, s]));
  for (const name of Object.keys(values)) {
    if (!byName.has(name)) {
      throw new ParameterError(
        `cannot inject "${name}": the parameters cell declares ${
          specs.length ? specs.map((s) => s.name).join(", ") : "nothing"
        }; expected one of those names`,
      );
    }
  }
  for (const spec of specs) {
    if (!Object.hasOwn(values, spec.name)) continue;
    const value = values[spec.name];
    const t = typeof value;
    const annotation = spec.annotation ??
      (spec.asConst
        ? null
        : t === "number" || t === "string" || t === "boolean"
        ? t
        : null);
    lines.push(
      `${spec.kind} ${spec.name}${annotation ? `: ${annotation}` : ""} = ${
        render(value)
      }${spec.asConst && !spec.annotation ? " as const" : ""};`,
    );
  }
  return lines.join("\n");
}

function freshId(nb: Notebook): string {
  // a stable id rather than a random one, so that two runs with the same
  // values give the same executed notebook
  const taken = new Set(nb.cells.map((c) => c.id));
  let id = INJECTED_TAG;
  for (let n = 2; taken.has(id); n++) id = `${INJECTED_TAG}-${n}`;
  return id;
}

/**
 * A copy of the notebook with a code cell tagged `injected-parameters`,
 * declaring `values`, right after the parameters cell. Any earlier injected
 * cell is removed first; with no values nothing new is inserted. Throws
 * {@linkcode ParameterError} when values are given but the notebook has no
 * parameters cell, or names a parameter it does not declare.
 *
 * @example
 * ```ts
 * import { injectParameters } from "tokenlab/report/params/mod.ts";
 * import type { Notebook } from "tokenlab/report/notebook.ts";
 * const nb: Notebook = {
 *   nbformat: 4, nbformat_minor: 5, metadata: {},
 *   cells: [{
 *     cell_type: "code", execution_count: null, outputs: [],
 *     metadata: { tags: ["parameters"] }, source: "const seed = 3;",
 *   }],
 * };
 * const run = injectParameters(nb, { seed: 7 });
 * console.log(run.cells.length, run.cells[1].metadata.tags); // 2 ["injected-parameters"]
 * ```
 */
export function injectParameters(
  nb: Notebook,
  values: Record<string, unknown>,
): Notebook {
  const copy = cloneNotebook(nb);
  copy.cells = copy.cells.filter((c) => !isParametersCell(c, INJECTED_TAG));
  if (Object.keys(values).length === 0) return copy;
  const found = findParameterCell(copy);
  if (found === null) {
    throw new ParameterError(
      `the notebook declares no parameters, so ${
        Object.keys(values).map((n) => `"${n}"`).join(", ")
      } cannot be set: expected a code cell tagged "${PARAMETERS_TAG}"; add one near the top that declares the defaults (e.g. \`const seed = 3;\`) and tag it (in Jupyter: the property inspector, Common Tools > Cell Tags)`,
    );
  }
  const paramsCell = copy.cells[found.index];
  const text = renderInjectedCell(found.specs, values);
  const cell: NotebookCell = {
    cell_type: "code",
    execution_count: null,
    // nbformat 4.5 added cell ids; older notebooks must not have them
    ...(copy.nbformat_minor >= 5 ? { id: freshId(copy) } : {}),
    metadata: { tags: [INJECTED_TAG] },
    outputs: [],
    source: typeof paramsCell.source === "string" ? text : sourceLines(text),
  };
  copy.cells.splice(found.index + 1, 0, cell);
  return copy;
}
