/**
 * The few assertions the tests use. JSR's @std/assert is unreachable from
 * these machines, so they are written here on top of node:util.
 */

import { inspect, isDeepStrictEqual } from "node:util";

/** Thrown when an assertion fails. */
export class AssertionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AssertionError";
  }
}

function show(x: unknown): string {
  return inspect(x, { depth: 6, breakLength: 100 });
}

export function assert(
  condition: unknown,
  msg = "expected a truthy value",
): asserts condition {
  if (!condition) throw new AssertionError(msg);
}

export function assertEquals<T>(actual: T, expected: T, msg?: string): void {
  if (!isDeepStrictEqual(actual, expected)) {
    throw new AssertionError(
      `${msg ? msg + ": " : ""}values differ\n  actual:   ${
        show(actual)
      }\n  expected: ${show(expected)}`,
    );
  }
}

export function assertStringIncludes(actual: string, expected: string): void {
  if (!actual.includes(expected)) {
    throw new AssertionError(
      `expected to find ${show(expected)} in ${show(actual)}`,
    );
  }
}

/**
 * Asserts that `actual` holds every one of `facts` (the file, the field, the
 * values, the hint's keyword of an error message), naming the missing ones;
 * for messages whose wording may change while their facts may not.
 */
export function assertIncludesAll(
  actual: string,
  facts: readonly string[],
  msg?: string,
): void {
  const missing = facts.filter((f) => !actual.includes(f));
  if (missing.length > 0) {
    throw new AssertionError(
      `${msg ? msg + ": " : ""}expected to find ${show(missing)} in ${
        show(actual)
      }`,
    );
  }
}

export function assertMatch(actual: string, re: RegExp): void {
  if (!re.test(actual)) {
    throw new AssertionError(`expected ${show(actual)} to match ${re}`);
  }
}

// deno-lint-ignore no-explicit-any
type ErrorClass<E extends Error> = new (...args: any[]) => E;

function checkError<E extends Error>(e: unknown, cls?: ErrorClass<E>): E {
  if (cls && !(e instanceof cls)) {
    throw new AssertionError(`expected a ${cls.name}, got ${show(e)}`);
  }
  if (!(e instanceof Error)) {
    throw new AssertionError(`expected an Error, got ${show(e)}`);
  }
  return e as E;
}

/** A fact the message must include, or several (the key facts of it). */
type Includes = string | readonly string[];

function checkIncludes<E extends Error>(e: E, includes?: Includes): E {
  const facts = includes === undefined
    ? []
    : typeof includes === "string"
    ? [includes]
    : includes;
  const missing = facts.filter((f) => !e.message.includes(f));
  if (missing.length > 0) {
    throw new AssertionError(
      `expected the error message to include ${
        missing.map((f) => JSON.stringify(f)).join(", ")
      }, got: ${e.message}`,
    );
  }
  return e;
}

export function assertThrows<E extends Error = Error>(
  fn: () => unknown,
  cls?: ErrorClass<E>,
  includes?: Includes,
): E {
  try {
    fn();
  } catch (e) {
    return checkIncludes(checkError(e, cls), includes);
  }
  throw new AssertionError("expected the function to throw");
}

export async function assertRejects<E extends Error = Error>(
  fn: () => Promise<unknown>,
  cls?: ErrorClass<E>,
  includes?: Includes,
): Promise<E> {
  try {
    await fn();
  } catch (e) {
    return checkIncludes(checkError(e, cls), includes);
  }
  throw new AssertionError("expected the promise to reject");
}
