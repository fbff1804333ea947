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

/** What {@linkcode readRegularFile} and {@linkcode readJsonFile} accept. */
export interface ReadJsonFileOptions {
  /** The largest file read, in bytes: a larger one is refused before it is read. */
  maxBytes: number;
}

/**
 * Reads a file as untrusted: a regular file (not a link, folder, FIFO or
 * device: those are refused before the file is opened, so none can block
 * or stream forever) of at most `maxBytes`. The bytes come from one open
 * handle checked to be the same file the path named (a file swapped in
 * after the check is refused), and no more than the size it had when
 * opened is read. Returns null when nothing is at `path`.
 *
 * @throws {FieldProblem} of the field `(file)` for anything else: a link, a folder, too large, unreadable, changed while read
 */
export async function readRegularFile(
  path: string,
  options: ReadJsonFileOptions,
): Promise<Uint8Array | null> {
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
  const tooLarge = (size: number) =>
    new FieldProblem(
      "(file)",
      `at most ${options.maxBytes} bytes`,
      `${size} bytes`,
    );
  if (info.size > options.maxBytes) throw tooLarge(info.size);
  const unreadable = (e: unknown) =>
    new FieldProblem(
      "(file)",
      "a readable file",
      `a file that cannot be read (${(e as Error).message})`,
    );
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (e) {
    throw unreadable(e);
  }
  try {
    const now = await file.stat();
    if (
      !now.isFile || now.ino !== info.ino || now.dev !== info.dev
    ) {
      throw new FieldProblem(
        "(file)",
        "the regular file that was checked",
        "another file in its place when it was opened (it was replaced meanwhile)",
      );
    }
    if (now.size > options.maxBytes) throw tooLarge(now.size);
    const bytes = new Uint8Array(now.size);
    let got = 0;
    while (got < bytes.length) {
      const n = await file.read(bytes.subarray(got));
      if (n === null) break;
      got += n;
    }
    const more = await file.read(new Uint8Array(1));
    if (got !== bytes.length || more !== null) {
      throw new FieldProblem(
        "(file)",
        `the ${now.size} bytes the file held when opened`,
        "a file that changed size while it was read",
      );
    }
    return bytes;
  } catch (e) {
    if (e instanceof FieldProblem) throw e;
    throw unreadable(e);
  } finally {
    file.close();
  }
}

/**
 * Reads a JSON file as untrusted: a regular file of at most `maxBytes`
 * (read by {@linkcode readRegularFile}), strict UTF-8, parsed (`{ value }`:
 * the file may hold `null`). Returns null when nothing is at `path`.
 *
 * @throws {FieldProblem} of the field `(file)` for anything else: a link, a folder, too large, unreadable, not UTF-8, not JSON
 */
export async function readJsonFile(
  path: string,
  options: ReadJsonFileOptions,
): Promise<{ value: unknown } | null> {
  const bytes = await readRegularFile(path, options);
  if (bytes === null) return null;
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
