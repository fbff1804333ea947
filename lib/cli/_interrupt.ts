/**
 * Ctrl-C for a long command that stops at a safe point (a batch, a chunk)
 * and can be resumed.
 *
 * @module
 */

/** A SIGINT listener that aborts a signal; `remove` takes the listener away. */
export interface SigintStop {
  /** Aborted by the first SIGINT. */
  readonly signal: AbortSignal;
  /** Removes the listener (the command is done). */
  remove(): void;
}

/**
 * Listens for SIGINT: the first one prints that the current `unit` (a
 * batch, a chunk) is being finished and aborts `signal`, which the library
 * call checks between units.
 */
export function stopOnSigint(unit: string): SigintStop {
  const controller = new AbortController();
  const onSignal = () => {
    console.error(`\ninterrupted: finishing the current ${unit}...`);
    controller.abort();
  };
  Deno.addSignalListener("SIGINT", onSignal);
  return {
    signal: controller.signal,
    remove: () => Deno.removeSignalListener("SIGINT", onSignal),
  };
}
