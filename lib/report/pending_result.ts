/**
 * What a planning run returns in place of a result it did not compute: an
 * object that lets the notebook go on to its next experiments (it can be
 * stored, passed and awaited) and throws the first
 * {@linkcode PlanPendingError} as soon as anything of it is read.
 *
 * @module
 */

import type { PlanPendingError } from "./plan_mode.ts";

/**
 * A stand-in for a `T` whose experiments plan mode listed and did not
 * compute: reading any of its properties throws the first pending error.
 *
 * @example
 * ```ts
 * import { PlanPendingError } from "tokenlab/report/plan_mode.ts";
 * import { pendingAblation } from "tokenlab/report/pending_result.ts";
 * const r = pendingAblation<{ value: number }>([new PlanPendingError("toy", "0123456789abcdef")]);
 * try { r.value; } catch (e) { console.log(e instanceof PlanPendingError); } // true
 * ```
 */
export function pendingAblation<T>(
  pending: readonly PlanPendingError[],
): T {
  return new Proxy({}, {
    get(_target, prop) {
      // `await` looks for a `then`: a pending result is not a promise.
      if (prop === "then") return undefined;
      throw pending[0];
    },
  }) as T;
}
