/**
 * Opening a checkpoint file: its path as messages show it, exact reads at an
 * offset (what a file that is not a ZIP archive is lives in
 * `../file_kind.ts`), and the translation of file-system and engine errors into `CheckpointError`s.
 * Private to the torch reader.
 *
 * @module
 */

import { CheckpointError } from "../checkpoint_error.ts";
import { notAFileError } from "../_read_errors.ts";
export { describeNonZip, isZipHead } from "../file_kind.ts";

/** How messages name a file: its path, or a `file:` URL's decoded path. */
export function pathLabel(path: string | URL): string {
  if (path instanceof URL) {
    return path.protocol === "file:" ? decodeURIComponent(path.pathname) : path
      .href;
  }
  return path;
}

// ---------------------------------------------------------------------------
// Reading the bytes of a file at an offset.

/** Reads exactly `length` bytes at `offset`; a shorter file is a `CheckpointError`. */
export async function readAt(
  file: Deno.FsFile,
  offset: number,
  length: number,
  label: string,
): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  await file.seek(offset, Deno.SeekMode.Start);
  let done = 0;
  while (done < length) {
    const n = await file.read(out.subarray(done));
    if (n === null || n === 0) {
      throw new CheckpointError(
        `${label}: expected ${length} bytes at byte ${offset}, found the end of the file after ${done}; the file is truncated (an interrupted download or copy?), fetch or copy it again`,
      );
    }
    done += n;
  }
  return out;
}

/**
 * Passes a CheckpointError through; turns an engine error (a RangeError or
 * TypeError from a check that should have come first) into one, naming
 * `where`, so a damaged file never surfaces as a bare engine error.
 */
export function internalError(e: unknown, where: string): unknown {
  if (e instanceof RangeError || e instanceof TypeError) {
    return new CheckpointError(
      `${where} could not be read (${e.name}: ${e.message}); the file is damaged or hostile, fetch or copy it again`,
      { cause: e },
    );
  }
  return e;
}

/** The size of an open file; a directory is a `CheckpointError`. */
export async function fileSize(
  file: Deno.FsFile,
  label: string,
): Promise<number> {
  const stat = await file.stat();
  if (stat.isDirectory) {
    throw new CheckpointError(
      `cannot read ${label}: expected a file, found a directory; name the checkpoint file inside it`,
    );
  }
  return stat.size;
}

/** Turns a failure to open `label` (missing, not permitted, a directory) into a `CheckpointError`. */
export function openError(label: string, e: unknown): Error {
  if (e instanceof Deno.errors.PermissionDenied) {
    return new CheckpointError(
      `cannot read ${label}: permission denied (${
        (e as Error).message
      }); run with --allow-read or fix the file's permissions`,
      { cause: e },
    );
  }
  return notAFileError(label, e, "a file", "checkpoint file") ?? e as Error;
}
