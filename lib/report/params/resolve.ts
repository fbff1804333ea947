/**
 * Resolving the values given for a run (`--param NAME=VALUE` texts and a
 * `--params` file) against a notebook's parameters: types, defaults and
 * overrides.
 *
 * @module
 */

import {
  MAX_PARAMETER_DEPTH,
  PARAMETERS_TAG,
  type ParameterSpec,
} from "./spec.ts";
import { ParameterError } from "./parameter_error.ts";
import { defineKey, foundText, render, typeOf } from "./_common.ts";

function expectation(spec: ParameterSpec): string {
  if (spec.choices) {
    return `one of ${spec.choices.map(render).join(", ")}${
      spec.nullable ? " or null" : ""
    }`;
  }
  const base = {
    number: spec.integer ? "a whole number" : "a number",
    string: "a string",
    boolean: "true or false",
    array: "a JSON list",
    object: "a JSON object",
    null: "a JSON value",
  }[spec.type];
  return spec.nullable && spec.type !== "null" ? `${base} or null` : base;
}
function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j];
      row[j] = Math.min(
        row[j] + 1,
        row[j - 1] + 1,
        prev + (a[i - 1].toLowerCase() === b[j - 1].toLowerCase() ? 0 : 1),
      );
      prev = tmp;
    }
  }
  return row[b.length];
}

/** The error for a name the notebook does not declare. */
function unknownName(
  specs: readonly ParameterSpec[],
  name: string,
  notebook: string,
): ParameterError {
  if (specs.length === 0) {
    return new ParameterError(
      `notebook ${notebook} has no parameter "${name}": it declares no parameters; to make it take some, tag a code cell "${PARAMETERS_TAG}" that declares them (e.g. \`const ${name} = ...;\`)`,
    );
  }
  const near = specs.map((s) => s.name)
    .filter((s) => editDistance(s, name) <= (name.length <= 3 ? 1 : 2));
  return new ParameterError(
    `notebook ${notebook} has no parameter "${name}"${
      near.length
        ? ` (did you mean ${near.map((n) => `"${n}"`).join(" or ")}?)`
        : ""
    }; its parameters are: ${
      specs.map((s) => `${s.name} (${render(s.default)})`).join(", ")
    }`,
  );
}

/** Checks a value of the right JavaScript type against the spec; a message or null. */
function mismatch(spec: ParameterSpec, value: unknown): string | null {
  if (value === null || value === undefined) return spec.nullable ? null : "";
  if (spec.choices) return spec.choices.includes(value as string) ? null : "";
  switch (spec.type) {
    case "null":
      return null;
    case "number":
      if (typeof value !== "number" || !Number.isFinite(value)) return "";
      return spec.integer && !Number.isInteger(value) ? "" : null;
    case "string":
    case "boolean":
      return typeOf(value) === spec.type ? null : "";
    case "object":
      return typeof value === "object" && !Array.isArray(value) ? null : "";
    case "array": {
      if (!Array.isArray(value)) return "";
      const def = spec.default;
      if (!Array.isArray(def)) return null;
      if (
        spec.annotation?.trim().startsWith("[") && value.length !== def.length
      ) {
        return ` (the type ${spec.annotation} has ${def.length} elements, found ${value.length})`;
      }
      const kinds = new Set(def.map(typeOf));
      const [kind] = kinds;
      if (
        def.length > 0 && kinds.size === 1 &&
        (kind === "number" || kind === "string" || kind === "boolean")
      ) {
        const bad = value.findIndex((v) => typeOf(v) !== kind);
        if (bad >= 0) {
          return ` (every element must be a ${kind} like the default's; element ${
            bad + 1
          } is ${foundText(value[bad])})`;
        }
      }
      return null;
    }
  }
}

/** A `--param` text as a value of the parameter's type, or why it is not one. */
function coercePair(
  spec: ParameterSpec,
  text: string,
): { value: unknown } | { why: string } {
  const first = spec.choices?.[0];
  if (
    spec.nullable && spec.type !== "string" &&
    (text === "null" || text === "undefined")
  ) {
    return { value: null };
  }
  if (spec.type === "number" || typeof first === "number") {
    const n = text.trim() === "" ? NaN : Number(text);
    return Number.isFinite(n) ? { value: n } : { why: "" };
  }
  if (spec.type === "boolean" || typeof first === "boolean") {
    const word = text.trim().toLowerCase();
    if (["true", "1", "yes"].includes(word)) return { value: true };
    if (["false", "0", "no"].includes(word)) return { value: false };
    return { why: " (write true/false, 1/0 or yes/no)" };
  }
  if (spec.type === "string") return { value: text };
  try {
    return { value: JSON.parse(text) };
  } catch {
    // a parameter declared `= null` without a type takes text as is
    return spec.type === "null"
      ? { value: text }
      : { why: " (not valid JSON)" };
  }
}

/** Whether a value nests lists and objects more than `limit` levels deep (checked without recursion). */
function nestedDeeper(value: unknown, limit: number): boolean {
  const todo: [unknown, number][] = [[value, 0]];
  while (todo.length > 0) {
    const [v, depth] = todo.pop()!;
    if (v === null || typeof v !== "object") continue;
    if (depth >= limit) return true;
    for (const x of Object.values(v)) {
      if (x !== null && typeof x === "object") todo.push([x, depth + 1]);
    }
  }
  return false;
}

/** The error for a value nested deeper than a parameters cell may nest one. */
function tooDeepValue(source: string, name: string): ParameterError {
  return new ParameterError(
    `${source}: the value of "${name}" nests lists and objects more than ${MAX_PARAMETER_DEPTH} levels deep: expected a small literal, as the parameters cell allows; pass large data as a file path instead`,
  );
}

/**
 * Validates given values against a notebook's parameters and returns the
 * overridden ones (in declaration order). `pairs` are `--param NAME=VALUE`
 * texts, coerced by the parameter's type: numbers (finite; whole numbers when
 * the default is written as one), booleans (`true/false/1/0/yes/no`), strings
 * as is, lists/objects/null as JSON. `values` come from a `--params` JSON file
 * (`valuesSource` names it in errors) and must have the right JSON types.
 * Pairs win over values. Throws {@linkcode ParameterError} saying what was
 * expected and found, and listing the notebook's parameters for an unknown
 * name.
 *
 * @example
 * ```ts
 * import { parseParameters, resolveParameters } from "tokenlab/report/params/mod.ts";
 * const specs = parseParameters("const seed = 3;\nconst lr = 2e-3;");
 * console.log(resolveParameters(specs, { pairs: ["lr=0.01"], values: { seed: 4 } }, "a.ipynb"));
 * // { seed: 4, lr: 0.01 }
 * ```
 */
export function resolveParameters(
  specs: readonly ParameterSpec[],
  given: {
    pairs?: readonly string[];
    values?: Record<string, unknown>;
    valuesSource?: string;
  },
  notebook: string,
): Record<string, unknown> {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const chosen = new Map<string, unknown>();
  const source = given.valuesSource ?? "--params";
  if (given.values !== undefined) {
    if (
      typeof given.values !== "object" || given.values === null ||
      Array.isArray(given.values)
    ) {
      throw new ParameterError(
        `${source} must hold a JSON object of parameter names and values, found ${
          foundText(given.values)
        }`,
      );
    }
    for (const [name, value] of Object.entries(given.values)) {
      const spec = byName.get(name);
      if (!spec) throw unknownName(specs, name, notebook);
      const why = mismatch(spec, value);
      if (why !== null) {
        throw new ParameterError(
          `${source}: "${name}" expects ${expectation(spec)} (default ${
            render(spec.default)
          }), found ${foundText(value)}${why}`,
        );
      }
      if (nestedDeeper(value, MAX_PARAMETER_DEPTH)) {
        throw tooDeepValue(source, name);
      }
      chosen.set(name, value);
    }
  }
  for (const pair of given.pairs ?? []) {
    const eq = pair.indexOf("=");
    const name = eq < 0 ? "" : pair.slice(0, eq).trim();
    if (eq < 0 || name === "") {
      const example = specs[0]
        ? `${specs[0].name}=${render(specs[0].default)}`
        : "seed=3";
      throw new ParameterError(
        `--param ${
          JSON.stringify(pair)
        } is not NAME=VALUE: expected for example --param ${example}`,
      );
    }
    const spec = byName.get(name);
    if (!spec) throw unknownName(specs, name, notebook);
    const text = pair.slice(eq + 1);
    const coerced = coercePair(spec, text);
    const why = "why" in coerced ? coerced.why : mismatch(spec, coerced.value);
    if (why !== null) {
      throw new ParameterError(
        `--param ${name} expects ${expectation(spec)} (default ${
          render(spec.default)
        }), found ${JSON.stringify(text)}${why}`,
      );
    }
    const value = (coerced as { value: unknown }).value;
    if (nestedDeeper(value, MAX_PARAMETER_DEPTH)) {
      throw tooDeepValue(`--param ${name}`, name);
    }
    chosen.set(name, value);
  }
  const out: Record<string, unknown> = {};
  for (const spec of specs) {
    if (chosen.has(spec.name)) defineKey(out, spec.name, chosen.get(spec.name));
  }
  return out;
}
