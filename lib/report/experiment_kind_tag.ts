/**
 * How a compute function says which registered experiment kind it is: a
 * tag on the function itself (`trainArm` carries "train-arm"), read by
 * {@linkcode runAblation} to learn whether its `run` can be computed by key
 * from the command line. A closure carries no tag: its experiments run in
 * a report, and `tokenlab experiments list` marks them not runnable by key.
 *
 * @module
 */

const TAG: unique symbol = Symbol.for("tokenlab.experimentKind");

/** What a compute function may carry: its kind's name. */
interface Tagged {
  [TAG]?: string;
}

/**
 * Tags `fn` as the compute function of experiment kind `kind` (once, on
 * the function's own property; `fn` is returned unchanged).
 *
 * @example
 * ```ts
 * import { experimentKindOf, tagExperimentKind } from "tokenlab/report/experiment_kind_tag.ts";
 * const f = tagExperimentKind("toy-kind", (x: number) => x);
 * console.log(experimentKindOf(f), experimentKindOf((x: number) => x)); // toy-kind null
 * ```
 */
export function tagExperimentKind<F extends (...args: never[]) => unknown>(
  kind: string,
  fn: F,
): F {
  Object.defineProperty(fn, TAG, { value: kind, enumerable: false });
  return fn;
}

/** The experiment kind `fn` is tagged with, or null. */
export function experimentKindOf(fn: unknown): string | null {
  if (typeof fn !== "function") return null;
  const kind = (fn as Tagged)[TAG];
  return typeof kind === "string" ? kind : null;
}
