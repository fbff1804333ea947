/**
 * `--params` files: a JSON object of parameter names and values.
 *
 * @module
 */

import { readRegularFile } from "../../io/file_checks.ts";
import { FieldProblem } from "../../io/json_fields.ts";
import { ParameterError } from "./parameter_error.ts";
import { foundText } from "./_common.ts";

/**
 * The values of a `--params` file's text: a JSON object of parameter names
 * and values (checked against a notebook's parameters later, by
 * {@linkcode resolveParameters}). `source` names the file in errors. Throws
 * {@linkcode ParameterError} for text that is not JSON or not an object.
 *
 * @example
 * ```ts
 * import { parseParameterFile } from "tokenlab/report/params/mod.ts";
 * console.log(parseParameterFile('{"epochs": 8}', "p.json")); // { epochs: 8 }
 * ```
 */
export function parseParameterFile(
  text: string,
  source: string,
): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new ParameterError(
      `--params ${source} is not valid JSON (${
        (e as Error).message
      }); expected an object such as {"epochs": 8, "scale": "full"}`,
    );
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new ParameterError(
      `--params ${source} must hold a JSON object of parameter names and values, found ${
        foundText(value)
      }; write it as {"name": value, ...}`,
    );
  }
  return value as Record<string, unknown>;
}

/**
 * The largest `--params` file read: 16 MiB. A parameters file holds a few
 * values; this only stops a wrong path (a device, a huge file) from being
 * read without end.
 */
export const MAX_PARAMETER_FILE_BYTES = 16 * 2 ** 20;

/**
 * Reads a `--params` file; see {@linkcode parseParameterFile}. A link is
 * followed (the path is the user's own); what it leads to must be a
 * regular file of at most {@linkcode MAX_PARAMETER_FILE_BYTES} bytes of
 * UTF-8 text. Throws {@linkcode ParameterError} when the file cannot be
 * read, or is not such a file.
 *
 * @example
 * ```ts
 * import { readParameterFile } from "tokenlab/report/params/mod.ts";
 * const path = await Deno.makeTempFile({ suffix: ".json" });
 * await Deno.writeTextFile(path, '{"seed": 3}');
 * console.log(await readParameterFile(path)); // { seed: 3 }
 * await Deno.remove(path);
 * ```
 */
export async function readParameterFile(
  path: string,
): Promise<Record<string, unknown>> {
  const expected = "expected a JSON file of parameter names and values";
  let bytes: Uint8Array | null;
  try {
    bytes = await readRegularFile(await Deno.realPath(path), {
      maxBytes: MAX_PARAMETER_FILE_BYTES,
    });
  } catch (e) {
    const why = e instanceof FieldProblem
      ? `expected ${e.expected}, found ${e.found}`
      : (e as Error).message;
    throw new ParameterError(
      `--params ${path}: cannot read it (${why}); ${expected}`,
    );
  }
  if (bytes === null) {
    throw new ParameterError(
      `--params ${path}: cannot read it (it was removed while being opened); ${expected}`,
    );
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new ParameterError(
      `--params ${path}: expected UTF-8 text, found bytes that are not UTF-8; save the file as UTF-8 JSON`,
    );
  }
  return parseParameterFile(text, path);
}
