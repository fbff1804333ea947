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
