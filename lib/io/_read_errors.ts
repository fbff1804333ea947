/**
 * The errors of a path that cannot be read as a file (internal): shared by
 * the safetensors reader and the torch reader, so that both say the same
 * thing for the same mistake.
 *
 * @module
 */

import { CheckpointError } from "./checkpoint_error.ts";

/**
 * The `CheckpointError` for a failure to open or read `label` because
 * nothing is there, or because it is a directory ("expected `expected`,
 * found a directory; name the `inside` inside it"); undefined for any other
 * failure, which the caller handles.
 */
export function notAFileError(
  label: string,
  e: unknown,
  expected: string,
  inside: string,
): CheckpointError | undefined {
  if (e instanceof Deno.errors.NotFound) {
    return new CheckpointError(
      `cannot read ${label}: expected a file there, found nothing; check the path`,
      { cause: e },
    );
  }
  if (e instanceof Deno.errors.IsADirectory) {
    return new CheckpointError(
      `cannot read ${label}: expected ${expected}, found a directory; name the ${inside} inside it`,
      { cause: e },
    );
  }
  return undefined;
}
