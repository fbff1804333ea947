/**
 * Writing a file atomically: the bytes go to a hidden temporary file in the
 * same folder (`.<name>.tmp-<random>`, created new, flushed to the disk when
 * asked), which is then moved over the name, so the path holds either the
 * old file (or nothing) or the whole new one, never half of it. On any
 * failure the temporary file is removed. Without `overwrite` the move is a
 * hard link, which refuses an existing name even when another writer races
 * this one. A whole folder is put in place the same way by
 * {@linkcode replaceFolder}.
 *
 * @module
 */

import { CheckpointError } from "./checkpoint_error.ts";

/** Options of {@linkcode writeFileAtomic}. */
export interface WriteFileAtomicOptions {
  /** Replace an existing file at the path (default false: refuse). */
  overwrite?: boolean;
  /** Flush the bytes to the disk before the rename (default true). */
  sync?: boolean;
}

/** Options of {@linkcode writeTextAtomic}. */
export interface WriteTextAtomicOptions {
  /** Create the file's folder (and its parents) first (default false). */
  mkdir?: boolean;
  /** Flush the text to the disk before the rename (default false). */
  sync?: boolean;
}

/**
 * The path a write goes to: the path itself, or a `file:` URL's decoded
 * path; any other URL is a `TypeError`.
 */
export function filePath(path: string | URL): string {
  if (path instanceof URL) {
    if (path.protocol !== "file:") {
      throw new TypeError(
        `expected a file path or file: URL, found ${path.href}`,
      );
    }
    return decodeURIComponent(path.pathname);
  }
  return path;
}

/** The folder (with its trailing separator, or "") and the base name of a path. */
function splitPath(target: string): { dir: string; base: string } {
  const slash = Math.max(target.lastIndexOf("/"), target.lastIndexOf("\\"));
  const base = target.slice(slash + 1);
  if (base === "") {
    throw new TypeError(
      `expected a file path to write, found ${JSON.stringify(target)}`,
    );
  }
  return { dir: slash >= 0 ? target.slice(0, slash + 1) : "", base };
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) done += await file.write(bytes.subarray(done));
}

/** Marks the refusal of an existing file, so that callers tell it from a failed write. */
class ExistsSignal extends Error {}

/**
 * The one write-then-rename: `chunks` in order to a new temporary file beside
 * `target`, flushed when `sync`, then renamed (`overwrite`) or linked (refusing
 * an existing name, by throwing an `ExistsSignal`) into place. Any error leaves
 * no temporary file; it propagates as it came.
 */
async function writeThroughTemporary(
  target: string,
  chunks: readonly Uint8Array[],
  overwrite: boolean,
  sync: boolean,
): Promise<void> {
  const { dir, base } = splitPath(target);
  const tmp = `${dir}.${base}.tmp-${crypto.randomUUID().slice(0, 8)}`;
  let file: Deno.FsFile | null = null;
  try {
    file = await Deno.open(tmp, { write: true, createNew: true });
    // Chunks are written one after the other (a large file is never
    // concatenated in memory).
    for (const chunk of chunks) await writeAll(file, chunk);
    if (sync) await file.syncData();
    file.close();
    file = null;
    if (overwrite) {
      await Deno.rename(tmp, target);
    } else {
      // A hard link fails if the name exists (no race with another writer);
      // where links are not supported, check and rename.
      try {
        await Deno.link(tmp, target);
        await Deno.remove(tmp);
      } catch (e) {
        if (e instanceof Deno.errors.AlreadyExists) throw new ExistsSignal();
        const there = await Deno.lstat(target).then(() => true, () => false);
        if (there) throw new ExistsSignal();
        await Deno.rename(tmp, target);
      }
    }
  } catch (e) {
    try {
      file?.close();
    } catch { /* already closed */ }
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

/**
 * Writes bytes (one array, or chunks written in order) to a file
 * atomically: to a temporary file in the same folder
 * (`.<name>.tmp-<random>`), then moved into place, so the path holds either
 * nothing (or the old file) or the whole new file. Without `overwrite` the
 * move is a hard link, which refuses an existing name even when another
 * writer races this one.
 *
 * @example
 * ```ts
 * import { writeFileAtomic } from "tokenlab/io/atomic_write.ts";
 * const dir = await Deno.makeTempDir();
 * await writeFileAtomic(`${dir}/a.txt`, new TextEncoder().encode("hi"));
 * await writeFileAtomic(`${dir}/a.txt`, new Uint8Array(1)).catch((e) => console.log(e.name)); // CheckpointError
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeFileAtomic(
  path: string | URL,
  bytes: Uint8Array | readonly Uint8Array[],
  options: WriteFileAtomicOptions = {},
): Promise<void> {
  const target = filePath(path);
  splitPath(target); // a path without a file name is the caller's mistake
  const exists = () =>
    new CheckpointError(
      `cannot write ${target}: a file already exists there; pass overwrite: true to replace it, or choose another path`,
    );
  if (!options.overwrite) {
    // Refused before anything is written (the link below refuses a name
    // that appears meanwhile).
    try {
      await Deno.lstat(target);
      throw exists();
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }
  try {
    await writeThroughTemporary(
      target,
      bytes instanceof Uint8Array ? [bytes] : bytes,
      options.overwrite ?? false,
      options.sync ?? true,
    );
  } catch (e) {
    if (e instanceof ExistsSignal) throw exists();
    throw new CheckpointError(
      `cannot write ${target}: ${
        (e as Error).message
      }; nothing was changed there (the temporary file was removed). Check that the folder exists and is writable, that ${target} is not a folder, and that the disk has room`,
      { cause: e },
    );
  }
}

/**
 * Writes `text` (UTF-8) over `path` atomically, through a hidden temporary
 * file in the same folder and a rename, so a reader never sees half a file
 * and a failed write leaves the old file as it was. An error propagates as
 * the file system raised it.
 *
 * @example
 * ```ts
 * import { writeTextAtomic } from "tokenlab/io/atomic_write.ts";
 * const dir = await Deno.makeTempDir();
 * await writeTextAtomic(`${dir}/sub/a.txt`, "hi", { mkdir: true });
 * await writeTextAtomic(`${dir}/sub/a.txt`, "hello");
 * console.log(await Deno.readTextFile(`${dir}/sub/a.txt`)); // hello
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeTextAtomic(
  path: string,
  text: string,
  options: WriteTextAtomicOptions = {},
): Promise<void> {
  if (options.mkdir) {
    const slash = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
    await Deno.mkdir(slash >= 0 ? path.slice(0, slash) || "/" : ".", {
      recursive: true,
    });
  }
  await writeThroughTemporary(
    path,
    [new TextEncoder().encode(text)],
    true,
    options.sync ?? false,
  );
}

/**
 * Moves the finished folder `staged` to `target`, replacing what is there:
 * an existing `target` is first moved aside (`.<name>.old-<random>` in the
 * same folder), put back if the move fails, and removed only once the new folder is in place.
 * The caller decides whether replacing is allowed.
 *
 * @example
 * ```ts
 * import { replaceFolder } from "tokenlab/io/atomic_write.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.mkdir(`${dir}/.out.tmp`);
 * await Deno.writeTextFile(`${dir}/.out.tmp/a.txt`, "new");
 * await replaceFolder(`${dir}/.out.tmp`, `${dir}/out`);
 * console.log(await Deno.readTextFile(`${dir}/out/a.txt`)); // new
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function replaceFolder(
  staged: string,
  target: string,
): Promise<void> {
  const there = await Deno.lstat(target).then(() => true, (e) => {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  });
  if (!there) {
    await Deno.rename(staged, target);
    return;
  }
  const { dir, base } = splitPath(target);
  const old = `${dir}.${base}.old-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.rename(target, old);
  try {
    await Deno.rename(staged, target);
  } catch (e) {
    await Deno.rename(old, target).catch(() => {});
    throw e;
  }
  await Deno.remove(old, { recursive: true });
}
