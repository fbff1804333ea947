/**
 * What the harness needs of each reader under fuzzing: its valid inputs
 * (made once), how to make one case from them, how to read a case, and
 * which errors are the reader's own.
 *
 * @module
 */

import type { Rng } from "../../lib/random.ts";
import { pick, randomBytes } from "./mutate.ts";

/** An error class (for `instanceof`). */
// deno-lint-ignore no-explicit-any
export type ErrorClass = abstract new (...args: any[]) => Error;

/** One reader under fuzzing; `S` is its seeds as loaded in memory. */
export interface FuzzReader<S> {
  /** The errors the reader throws on bad input by design; anything else is a defect. */
  own: readonly ErrorClass[];
  /** Writes the valid inputs into `dir` (done once per run, in a child). */
  prepare(dir: string): Promise<void>;
  /** Loads the inputs `prepare` wrote. */
  load(dir: string): Promise<S>;
  /** Writes one mutated case into the empty folder `dir`; returns what was done, in words. */
  make(rng: Rng, seeds: S, dir: string): Promise<string[]>;
  /** Reads the case in `dir` as the kit would, every way it can be read. */
  run(dir: string): Promise<void>;
}

/** How a reader makes one case from its seeds `S` (default: seed files). */
export type MakeCase<S = SeedFile[]> = FuzzReader<S>["make"];

/** A reader whose seeds are the files its `prepare` writes, loaded by {@linkcode loadFiles}. */
export function filesReader(
  reader: Omit<FuzzReader<SeedFile[]>, "load">,
): FuzzReader<SeedFile[]> {
  return { ...reader, load: loadFiles };
}

/** A file as loaded from the seeds. */
export interface SeedFile {
  /** Its name (relative to the seed folder). */
  name: string;
  /** Its bytes. */
  bytes: Uint8Array;
}

/** Every file under `dir`, recursively, by relative name (sorted, so the order is stable). */
export async function loadFiles(dir: string): Promise<SeedFile[]> {
  const out: SeedFile[] = [];
  const walk = async (rel: string) => {
    const names: Deno.DirEntry[] = [];
    for await (const e of Deno.readDir(`${dir}/${rel}`)) names.push(e);
    names.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
    for (const e of names) {
      const r = rel === "" ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory) await walk(r);
      else if (e.isFile) {
        out.push({ name: r, bytes: await Deno.readFile(`${dir}/${r}`) });
      }
    }
  };
  await walk("");
  return out;
}

/**
 * Runs every way of reading a case, each on its own: the reader's own error
 * in one step does not stop the next; a defect (any other exception) stops
 * the case at once. Throws the defect, else the first own error, else
 * returns (success).
 */
export async function steps(
  own: readonly ErrorClass[],
  ...fns: (() => Promise<unknown> | unknown)[]
): Promise<void> {
  let first: unknown = undefined;
  for (const fn of fns) {
    try {
      await fn();
    } catch (e) {
      if (!isOwn(e, own)) throw e;
      first ??= e;
    }
  }
  if (first !== undefined) throw first;
}

/** Whether `e` is one of the reader's own errors (by class, never by message). */
export function isOwn(e: unknown, own: readonly ErrorClass[]): boolean {
  return own.some((c) => e instanceof c);
}

/** The bytes of a case's file, or null when it is none (a folder, or nothing: a hostile case). */
export async function readOrNull(path: string): Promise<Uint8Array | null> {
  try {
    return await Deno.readFile(path);
  } catch {
    return null;
  }
}

/** Writes fewer than `max` random bytes to `path`; returns what it did. */
export async function randomFile(
  rng: Rng,
  path: string,
  max: number,
): Promise<string[]> {
  const n = rng.int(max);
  await Deno.writeFile(path, randomBytes(rng, n));
  return [`random ${n} bytes`];
}

/**
 * Replaces the file at `path` by something a reader meets on a bad disk: a
 * folder of the same name, nothing, or an empty file. Returns what it did.
 */
export async function hostileFile(rng: Rng, path: string): Promise<string> {
  await Deno.remove(path, { recursive: true }).catch(() => {});
  const kind = pick(rng, ["folder", "missing", "empty"] as const);
  if (kind === "folder") await Deno.mkdir(path, { recursive: true });
  if (kind === "empty") await Deno.writeFile(path, new Uint8Array());
  return `${path.slice(path.lastIndexOf("/") + 1)}: ${kind}`;
}

/**
 * Writes bytes as a huge sparse file: the bytes at the start or at the end
 * of a file of 2 to 8 GiB that takes no disk space. Returns what it did.
 */
export async function hugeSparse(
  rng: Rng,
  path: string,
  bytes: Uint8Array,
): Promise<string> {
  const size = pick(rng, [2 ** 31 + 7, 2 ** 32 + 100, 2 ** 33]);
  const atEnd = rng.float() < 0.5;
  using f = await Deno.open(path, {
    write: true,
    create: true,
    truncate: true,
  });
  if (atEnd) {
    await f.truncate(size - bytes.length);
    await f.seek(size - bytes.length, Deno.SeekMode.Start);
  }
  let done = 0;
  while (done < bytes.length) done += await f.write(bytes.subarray(done));
  if (!atEnd) await f.truncate(size);
  return `sparse ${size} bytes, input at the ${atEnd ? "end" : "start"}`;
}

/**
 * Copies a case folder (to keep a defect's input); files over `maxBytes`
 * (a huge sparse file) are left out and named in the returned list.
 */
export async function copyTree(
  from: string,
  to: string,
  maxBytes = 64 << 20,
): Promise<string[]> {
  const skipped: string[] = [];
  await Deno.mkdir(to, { recursive: true });
  for await (const e of Deno.readDir(from)) {
    const src = `${from}/${e.name}`, dst = `${to}/${e.name}`;
    if (e.isDirectory) skipped.push(...await copyTree(src, dst, maxBytes));
    else if (e.isFile) {
      const { size } = await Deno.stat(src);
      if (size > maxBytes) skipped.push(`${e.name} (${size} bytes)`);
      else await Deno.copyFile(src, dst);
    }
  }
  return skipped;
}
