/**
 * Small helpers the score-map modules share: how messages name a cell or a
 * value's type, the class-count rule, paths, the code-point order of keys,
 * and whole writes to a file.
 *
 * Internal to `lib/labels/` (and its `store/` folder).
 *
 * @module
 */

/** A flat index of a [k, H, W] map as `cell (row, column) (rank r)`, for messages. */
export function cellOf(i: number, height: number, width: number): string {
  const hw = height * width;
  const r = i % hw;
  return `cell (${Math.floor(r / width)}, ${r % width}) (rank ${
    Math.floor(i / hw)
  })`;
}

/** What a value is, for messages (`null`, `number`, `Uint8Array`, ...). */
export function typeName(x: unknown): string {
  if (x === null) return "null";
  if (typeof x !== "object") return typeof x;
  return (x as { constructor?: { name?: string } }).constructor?.name ??
    "object";
}

/**
 * Why `numClasses` is not a class count (a positive integer below 2^31),
 * as a message starting with `what`; undefined when it is one.
 */
export function numClassesProblem(
  numClasses: unknown,
  what: string,
): string | undefined {
  if (
    !Number.isSafeInteger(numClasses) || (numClasses as number) < 1 ||
    (numClasses as number) > 2 ** 31 - 1
  ) {
    return `${what}: expected numClasses to be a positive integer below 2^31, found ${
      JSON.stringify(numClasses) ?? String(numClasses)
    }`;
  }
  return undefined;
}

/** A path as a string (a `file:` URL as its decoded path). */
export function pathString(path: string | URL): string {
  if (path instanceof URL) {
    return path.protocol === "file:" ? decodeURIComponent(path.pathname) : path
      .href;
  }
  return path;
}

/** Compares strings by Unicode code point (Python's `sorted` order). */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i), y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (astral code points) sort above the rest of the BMP.
    const sx = x >= 0xd800 && x <= 0xdfff, sy = y >= 0xd800 && y <= 0xdfff;
    if (sx !== sy) return sx ? 1 : -1;
    return x - y;
  }
  return a.length - b.length;
}

/** Whether `path` is a folder (following links); false when nothing is there. */
export async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false;
  }
}

/** Whether two values have the same JSON form. */
export function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Writes all of `bytes` to `file` (a write may take only part of them). */
export async function writeAll(
  file: Deno.FsFile,
  bytes: Uint8Array,
): Promise<void> {
  let done = 0;
  while (done < bytes.length) done += await file.write(bytes.subarray(done));
}
