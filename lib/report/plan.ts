/**
 * A report run's plan: every chosen notebook read, validated and given its
 * parameters (the command line's, a parameter file's and the scale's)
 * before anything runs, with the checks of `--scale` and `--freeze`.
 *
 * @module
 */

import { UNFROZEN_SCALES } from "./cache.ts";
import { type Notebook, readNotebook } from "./notebook.ts";
import {
  findParameterCell,
  injectParameters,
  ParameterError,
  type ParameterSpec,
  readParameterFile,
  resolveParameters,
} from "./params/mod.ts";
import { ReportError } from "./report_error.ts";
import type { RunReportsOptions } from "./run_types.ts";
import type { Target } from "./targets.ts";

/** The scales a report can run at. */
export const SCALES = ["tiny", "smoke", "full"] as const;

/** A notebook ready to run: read, validated, parameters resolved. */
export interface Planned {
  target: Target;
  name: string;
  notebook: Notebook;
  injected: Notebook;
  injectedCell: number | null;
  parameters: Record<string, unknown>;
  scale: string | null;
}

/** Reads, validates and parameterises every chosen notebook; throws before anything runs. */
export async function plan(
  targets: readonly Target[],
  options: RunReportsOptions,
): Promise<Planned[]> {
  if (
    options.scale !== undefined &&
    !(SCALES as readonly string[]).includes(options.scale)
  ) {
    throw new ReportError(
      `--scale expects one of ${SCALES.join(", ")}, found "${options.scale}"`,
    );
  }
  const fileValues = options.paramsFile !== undefined
    ? await readParameterFile(options.paramsFile)
    : {};
  const planned: Planned[] = [];
  let anyScale = false;
  for (const target of targets) {
    const { name } = target;
    const notebook = await readNotebook(target.path);
    let found: ReturnType<typeof findParameterCell>;
    try {
      found = findParameterCell(notebook);
    } catch (e) {
      if (!(e instanceof ParameterError)) throw e;
      throw new ParameterError(`notebook ${name}: ${e.message}`);
    }
    const specs: readonly ParameterSpec[] = found?.specs ?? [];
    const scaleSpec = specs.find((s) => s.name === "scale");
    anyScale ||= scaleSpec !== undefined;
    const pairs = [...(options.params ?? [])];
    if (options.scale !== undefined && scaleSpec) {
      pairs.push(`scale=${options.scale}`);
    }
    const given = pairs.length > 0 || Object.keys(fileValues).length > 0;
    if (given && !found) {
      throw new ReportError(
        `notebook ${name} has no parameters (no code cell tagged "parameters"), so --param/--params cannot apply to it; run it on its own, or tag a cell of TypeScript consts "parameters" to give it some`,
      );
    }
    const parameters = found
      ? resolveParameters(specs, { pairs, values: fileValues }, name)
      : {};
    const injected = injectParameters(notebook, parameters);
    const injectedCell = Object.keys(parameters).length > 0
      ? injected.cells.findIndex((c) =>
        (c.metadata?.tags as string[] | undefined)?.includes(
          "injected-parameters",
        )
      )
      : null;
    const scale = scaleSpec
      ? String(parameters.scale ?? scaleSpec.default)
      : null;
    planned.push({
      target,
      name,
      notebook,
      injected,
      injectedCell,
      parameters,
      scale,
    });
  }
  if (options.scale !== undefined && !anyScale) {
    throw new ReportError(
      `--scale ${options.scale}: none of ${
        targets.map((t) => t.name).join(", ")
      } has a "scale" parameter, so the scale would change nothing`,
    );
  }
  const unfrozen = planned.filter((p) =>
    p.scale && UNFROZEN_SCALES.has(p.scale)
  );
  if (options.freeze && unfrozen.length > 0) {
    throw new ReportError(
      `--freeze stores full-scale results for CI to re-render; ${
        unfrozen.map((p) => `${p.name} (${p.scale})`).join(", ")
      } would run at a smaller scale. Add --scale full.`,
    );
  }
  return planned;
}
