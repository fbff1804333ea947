/**
 * Canonical JSON: one text for equal JSON data (object keys sorted), and a
 * refusal, naming the path, of anything JSON cannot hold exactly. The
 * results cache keys, stores and digests its entries by this text.
 *
 * @module
 */

import { ExperimentError } from "./experiment_error.ts";

/** The deepest nesting of JSON data a config, a result or a stored file may have. */
export const MAX_JSON_DEPTH = 1000;

/** What canonicalJson refuses: where (`field`, a path like `$.a[2]`) and why. */
export class JsonDataError extends ExperimentError {
  constructor(
    message: string,
    field: string,
    readonly reason: "number" | "depth" | "type",
  ) {
    super(message, { field });
  }
}

/**
 * JSON with the keys of every object sorted, so that equal configs give
 * equal text. Throws an {@linkcode ExperimentError} (its `field` the path,
 * `$.a[2]`) for what JSON cannot hold exactly: non-finite numbers,
 * functions, `undefined` in arrays, typed arrays, class instances other
 * than plain objects and arrays; and for nesting deeper than
 * {@linkcode MAX_JSON_DEPTH} levels.
 *
 * @example
 * ```ts
 * import { canonicalJson } from "tokenlab";
 * console.assert(canonicalJson({ b: 1, a: [true, "x"] }) === '{"a":[true,"x"],"b":1}');
 * ```
 */
export function canonicalJson(value: unknown, what = "value"): string {
  const walk = (v: unknown, path: string, depth: number): string => {
    if (v === null) return "null";
    switch (typeof v) {
      case "number":
        if (!Number.isFinite(v)) {
          throw new JsonDataError(
            `${what} must be JSON data: found the non-finite number ${v} at ${path}`,
            path,
            "number",
          );
        }
        return JSON.stringify(v);
      case "string":
      case "boolean":
        return JSON.stringify(v);
      case "object": {
        if (depth >= MAX_JSON_DEPTH) {
          const at = path.length > 200 ? path.slice(0, 200) + "..." : path;
          throw new JsonDataError(
            `${what} must be JSON data nested at most ${MAX_JSON_DEPTH} levels deep: found deeper nesting at ${at}; keep results and configs flat summaries`,
            at,
            "depth",
          );
        }
        if (Array.isArray(v)) {
          return `[${
            v.map((x, i) => walk(x, `${path}[${i}]`, depth + 1)).join(",")
          }]`;
        }
        const proto = Object.getPrototypeOf(v);
        if (proto !== Object.prototype && proto !== null) {
          throw new JsonDataError(
            `${what} must be JSON data (numbers, strings, booleans, null, arrays, plain objects): found a ${
              (v as object).constructor?.name ?? "non-plain object"
            } at ${path}; convert it (Array.from for typed arrays, a summary object for models)`,
            path,
            "type",
          );
        }
        const keys = Object.keys(v as object).filter((k) =>
          (v as Record<string, unknown>)[k] !== undefined
        ).sort();
        return `{${
          keys.map((k) =>
            `${JSON.stringify(k)}:${
              walk((v as Record<string, unknown>)[k], `${path}.${k}`, depth + 1)
            }`
          ).join(",")
        }}`;
      }
      default:
        throw new JsonDataError(
          `${what} must be JSON data: found a ${typeof v} at ${path}`,
          path,
          "type",
        );
    }
  };
  return walk(value, "$", 0);
}
