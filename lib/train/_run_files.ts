/**
 * Reading the files of a run folder as untrusted, and writing its JSON:
 * the helpers the run folder, its checkpoints and its log share.
 *
 * @module
 */

import { type SizedDigest, sizedDigest } from "../io/digest.ts";
import {
  lstatOrNull,
  notRegularFile,
  readRegularFile,
} from "../io/file_checks.ts";
import { FieldProblem } from "../io/json_fields.ts";
import { type RunInfo, validateRunInfo } from "./_state_schema.ts";
import { RunFolderError } from "./run_folder_error.ts";

/** The largest `run.json` read: it holds one config. */
const MAX_RUN_INFO_BYTES = 16 * 2 ** 20;
/**
 * The largest `state.json` or `log.jsonl` read: about a million log records,
 * far more than any run writes, and below the longest string JavaScript can
 * hold (a larger file could not be parsed anyway).
 */
export const MAX_RECORDS_FILE_BYTES = 256 * 2 ** 20;

/**
 * Reads a file of the run folder as untrusted ({@linkcode readRegularFile}:
 * a regular file, not a link, of at most `maxBytes`, read through one
 * handle). Null when nothing is there.
 *
 * @throws {RunFolderError} naming the file and what to do
 */
export async function readRunFile(
  path: string,
  maxBytes: number,
  todo: string,
): Promise<Uint8Array | null> {
  try {
    return await readRegularFile(path, { maxBytes });
  } catch (e) {
    if (!(e instanceof FieldProblem)) throw e;
    throw new RunFolderError(
      `${path}: expected ${e.expected}, found ${e.found}; ${todo}`,
      { file: path },
    );
  }
}

/** A value as the run folder's JSON files hold it (one space indent, a final newline). */
export function jsonBytes(value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value, null, 1) + "\n");
}

/** A file's size and SHA-256. */
export async function fileDigest(path: string): Promise<SizedDigest> {
  return await sizedDigest(await Deno.readFile(path));
}

/**
 * The file's info when `path` is a regular file (null: it does not exist).
 * A link or anything else is refused: tokenlab writes plain files, and a
 * link could lead outside the run folder.
 */
export async function regularFile(
  path: string,
  what: () => string,
): Promise<Deno.FileInfo | null> {
  const info = await lstatOrNull(path);
  const other = info === null ? null : notRegularFile(info);
  if (other !== null) {
    throw new RunFolderError(
      `${path} is ${other}; tokenlab writes a plain file there and does not follow links out of the run folder: ${what()}`,
      { file: path },
    );
  }
  return info;
}

/**
 * Reads and checks `run.json` of a run folder.
 *
 * @throws {RunFolderError} naming the file, the field, and what to do
 */
export async function readRunInfo(out: string): Promise<RunInfo> {
  const path = `${out}/run.json`;
  const todo =
    "restore the run's run.json, set `overwrite` to start over, or choose another `output`";
  const fail: (why: string, field?: string) => never = (why, field) => {
    throw new RunFolderError(
      `${path}: ${why}; the folder's run cannot be identified: ${todo}`,
      { file: path, field, fields: ["overwrite", "output"] },
    );
  };
  const bytes = await readRunFile(path, MAX_RUN_INFO_BYTES, todo);
  if (bytes === null) fail("missing");
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (e) {
    fail(`is not readable JSON (${(e as Error).message})`);
  }
  try {
    return validateRunInfo(value);
  } catch (e) {
    if (!(e instanceof FieldProblem)) throw e;
    return fail(
      `field ${e.field}: expected ${e.expected}, found ${e.found}; the file was edited or damaged`,
      e.field,
    );
  }
}
