/**
 * File-system helpers shared inside the kit (not part of the public API).
 *
 * @module
 */

/**
 * Whether something exists at `path` (a link counts, whatever it points to;
 * with `followLinks`, a link counts only when its target exists); other
 * errors than "not found" propagate.
 */
export async function exists(
  path: string,
  options: { followLinks?: boolean } = {},
): Promise<boolean> {
  try {
    await (options.followLinks ? Deno.stat(path) : Deno.lstat(path));
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/**
 * Writes `text` to `path` through a hidden temporary file in the same folder
 * and a rename, so a reader never sees half a file and a failed write leaves
 * the old file as it was. Creates the folder when `mkdir` is set.
 */
export async function writeTextAtomic(
  path: string,
  text: string,
  options: { mkdir?: boolean } = {},
): Promise<void> {
  const slash = path.lastIndexOf("/");
  const dir = slash >= 0 ? path.slice(0, slash) : ".";
  const base = path.slice(slash + 1);
  if (options.mkdir) await Deno.mkdir(dir, { recursive: true });
  const tmp = `${dir}/.${base}.tmp-${crypto.randomUUID().slice(0, 8)}`;
  try {
    await Deno.writeTextFile(tmp, text);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}
