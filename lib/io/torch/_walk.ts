/**
 * Walking the object graph of an unpickled value (internal): shared by the
 * unpickler's check of its result and by `tensorsOf`.
 *
 * @module
 */

import { TorchTensor } from "./pickle_types.ts";

/**
 * Calls `visit` with every object reachable from `value`, each once (a
 * shared or cyclic object is met once), depth first. A tensor or a byte
 * array is met but not entered; an array gives its items, a map its values
 * (and its keys before each value when `withKeys`), any other object its
 * own enumerable values.
 */
export function forEachReachable(
  value: unknown,
  withKeys: boolean,
  visit: (v: object) => void,
): void {
  const seen = new Set<object>();
  const todo: unknown[] = [value];
  while (todo.length) {
    const v = todo.pop();
    if (v === null || typeof v !== "object" || seen.has(v)) continue;
    seen.add(v);
    visit(v);
    if (v instanceof TorchTensor || v instanceof Uint8Array) continue;
    // Loops, not spreads: a list of millions of items would overflow the
    // call stack as spread arguments.
    if (Array.isArray(v)) { for (const x of v) todo.push(x); }
    else if (v instanceof Map) {
      for (const [k, x] of v) {
        if (withKeys) todo.push(k);
        todo.push(x);
      }
    } else for (const x of Object.values(v)) todo.push(x);
  }
}
