/**
 * Opening a file tokenlab wrote as an untrusted file: only a regular file
 * (never a link, which could lead anywhere), of a bounded size, and for
 * JSON strict UTF-8 that parses. A failure of {@linkcode readJsonFile} is a
 * {@linkcode FieldProblem} of the field `(file)`; each reader turns it into
 * its own error with the file and what to do.
 *
 * Shared by the readers of several folders; not part of the public API
 * (`lib/mod.ts` does not export it).
 *
 * @module
 */

import { FieldProblem } from "./json_fields.ts";

/** The entry at `path` itself, not following a link (null: nothing is there); other errors propagate. */
export async function lstatOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.lstat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/** What an entry is in words when it is not a regular file (`a link`, `a folder`, `not a regular file`); null for a regular file. */
export function notRegularFile(info: Deno.FileInfo): string | null {
  if (info.isSymlink) return "a link";
  if (info.isDirectory) return "a folder";
  return info.isFile ? null : "not a regular file";
}

/** What {@linkcode readJsonFile} accepts. */
export interface ReadJsonFileOptions {
  /** The largest file read, in bytes: a larger one is refused before it is read. */
  maxBytes: number;
}

/**
 * Reads a JSON file as untrusted: a regular file of at most `maxBytes`,
 * strict UTF-8, parsed (`{ value }`: the file may hold `null`). Returns
 * null when nothing is at `path`.
 *
 * @throws {FieldProblem} of the field `(file)` for anything else: a link, a folder, too large, unreadable, not UTF-8, not JSON
 */
export async function readJsonFile(
  path: string,
  options: ReadJsonFileOptions,
): Promise<{ value: unknown } | null> {
  let info: Deno.FileInfo | null;
  try {
    info = await lstatOrNull(path);
  } catch (e) {
    throw new FieldProblem(
      "(file)",
      "a readable file",
      `one that cannot be examined (${(e as Error).message})`,
    );
  }
  if (info === null) return null;
  const other = notRegularFile(info);
  if (other !== null) {
    throw new FieldProblem(
      "(file)",
      "a regular file (tokenlab writes one; it follows no links)",
      other,
    );
  }
  if (info.size > options.maxBytes) {
    throw new FieldProblem(
      "(file)",
      `at most ${options.maxBytes} bytes`,
      `${info.size} bytes`,
    );
  }
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new FieldProblem(
      "(file)",
      "JSON text (UTF-8)",
      `a file that cannot be read (${(e as Error).message})`,
    );
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new FieldProblem(
      "(file)",
      "JSON text (UTF-8)",
      "bytes that are not UTF-8: the file was damaged",
    );
  }
  try {
    return { value: JSON.parse(text) };
  } catch (e) {
    throw new FieldProblem(
      "(file)",
      "JSON text (UTF-8)",
      `text that does not parse (${
        (e as Error).message
      }): the file was cut short or damaged`,
    );
  }
}
