/**
 * Checking a dataset's options (internal): how a found value is written in
 * an error message, the options object and its keys, and the integer and
 * number range checks, whose `RangeError` is led by the dataset's name.
 *
 * @module
 */

/** A found value as an error message writes it. */
export function found(v: unknown): string {
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  if (v === undefined) return "undefined";
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

/**
 * Refuses anything but an object of options whose keys are all in `known`,
 * with a `RangeError` led by `source` that lists the known keys.
 */
export function checkOptionKeys(
  source: string,
  options: unknown,
  known: readonly string[],
): void {
  if (options === null || typeof options !== "object") {
    throw new RangeError(
      `${source}: expected an options object, found ${found(options)}`,
    );
  }
  for (const k of Object.keys(options)) {
    if (!known.includes(k)) {
      throw new RangeError(
        `${source}: unknown option "${k}"; expected one of ${known.join(", ")}`,
      );
    }
  }
}

/** `v` when it is in [lo, hi] (and of the check's kind); else a `RangeError`. */
export type RangeCheck = (
  name: string,
  v: unknown,
  lo: number,
  hi: number,
) => number;

/**
 * The range checks of one dataset's options: `int` for integers and
 * `number` for any number in [lo, hi], their `RangeError`s led by `source`.
 */
export function rangeChecks(
  source: string,
): { int: RangeCheck; number: RangeCheck } {
  const check = (integer: boolean): RangeCheck => (name, v, lo, hi) => {
    const ok = typeof v === "number" &&
      (!integer || Number.isInteger(v)) && v >= lo && v <= hi;
    if (!ok) {
      throw new RangeError(
        `${source}: option "${name}" must be ${
          integer ? "an integer" : "a number"
        } in [${lo}, ${hi}], found ${found(v)}`,
      );
    }
    return v as number;
  };
  return { int: check(true), number: check(false) };
}
