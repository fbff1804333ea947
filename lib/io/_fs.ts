/**
 * File-system helpers shared inside the kit (not part of the public API).
 *
 * @module
 */

/** Whether something exists at `path` (a link counts, whatever it points to); other errors than "not found" propagate. */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}
