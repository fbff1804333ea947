/**
 * Field checks for JSON that tokenlab reads back from its own files (a
 * checkpoint's `state.json`, a stored result, an annotator's
 * `result.json`): each check takes a parsed value and the field's name, and
 * returns the value typed or throws a {@linkcode FieldProblem} naming the
 * field, what was expected and what was found. Each reader turns the
 * problem into its own error, with the file and what to do.
 *
 * Shared by the readers of several folders; not part of the public API
 * (`lib/mod.ts` does not export it).
 *
 * @module
 */

/** One field of a stored file that is not what tokenlab writes. */
export class FieldProblem extends Error {
  /** Creates the problem: the field (`records[3].loss`), what was expected, what was found. */
  constructor(
    readonly field: string,
    readonly expected: string,
    readonly found: string,
  ) {
    super(`field ${field}: expected ${expected}, found ${found}`);
    this.name = "FieldProblem";
  }
}

/** A short description of a found value, for messages: `null`, `an array of 3`, `the string "x"`, `number 7`. */
export function describe(v: unknown): string {
  if (v === undefined) return "nothing (the field is missing)";
  if (v === null) return "null";
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (typeof v === "object") return "an object";
  if (typeof v === "string") {
    const s = JSON.stringify(v);
    return `the string ${s.length > 80 ? s.slice(0, 77) + '..."' : s}`;
  }
  return `${typeof v} ${String(v)}`;
}

/** Throws the {@linkcode FieldProblem} of `field`, describing the value found. */
export function fieldProblem(
  field: string,
  expected: string,
  found: unknown,
): never {
  throw new FieldProblem(field, expected, describe(found));
}

/** Whether a value is a plain JSON object (not null, not an array). */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** `parent.key`, or `parent["../x"]` for a key that is not a plain identifier (`key` alone at the top level). */
export function fieldName(parent: string, key: string): string {
  if (!/^[A-Za-z_$][\w$]*$/.test(key)) {
    return `${parent}[${JSON.stringify(key)}]`;
  }
  return parent === "" ? key : `${parent}.${key}`;
}

/** What {@linkcode objectFields} requires of an object. */
export interface ObjectFieldsOptions {
  /** The fields it must have. */
  required: readonly string[];
  /** The fields it may have besides (default none). */
  optional?: readonly string[];
  /** What the object is called in messages (default: its field, or "the file" at the top level). */
  what?: string;
  /** What a value that is not an object is expected to be (default `an object (<what>)`). */
  expected?: string;
  /**
   * Write an unknown key quoted even when it is a plain identifier
   * (`"note"`, `weights["note"]`), as the results cache and the annotator
   * name them. Default: quoted only when it is not an identifier.
   */
  quoteUnknown?: boolean;
}

/**
 * Checks an object with exactly the fields `options` names: each required
 * one present, no unknown one (tokenlab writes a fixed set, so an unknown
 * field means the file was edited or written by something else).
 *
 * @throws {FieldProblem} for a value that is not an object, a missing field or an unknown one
 */
export function objectFields(
  v: unknown,
  field: string,
  options: ObjectFieldsOptions,
): Record<string, unknown> {
  const { required, optional = [] } = options;
  const what = options.what ?? (field === "" ? "the file" : field);
  if (!isPlainObject(v)) {
    fieldProblem(
      field || "(top level)",
      options.expected ?? `an object (${what})`,
      v,
    );
  }
  for (const k of required) {
    if (!Object.hasOwn(v, k)) {
      fieldProblem(fieldName(field, k), "a value", undefined);
    }
  }
  for (const k of Object.keys(v)) {
    if (!required.includes(k) && !optional.includes(k)) {
      const at = !options.quoteUnknown
        ? fieldName(field, k)
        : field === ""
        ? JSON.stringify(k)
        : `${field}[${JSON.stringify(k)}]`;
      fieldProblem(
        at,
        `no such field (${what} has ${[...required, ...optional].join(", ")})`,
        v[k],
      );
    }
  }
  return v;
}

/** The range of {@linkcode integerField}. */
export interface IntegerRange {
  /** The smallest value. */
  min: number;
  /** The largest value (default `Number.MAX_SAFE_INTEGER`, and the message says only `>= min`). */
  max?: number;
}

/**
 * Checks a safe integer in a range.
 *
 * @throws {FieldProblem} for anything else
 */
export function integerField(
  v: unknown,
  field: string,
  range: IntegerRange,
): number {
  const { min, max = Number.MAX_SAFE_INTEGER } = range;
  if (
    typeof v !== "number" || !Number.isSafeInteger(v) || v < min || v > max
  ) {
    fieldProblem(
      field,
      range.max === undefined
        ? `an integer >= ${min}`
        : `an integer in [${min}, ${max}]`,
      v,
    );
  }
  return v;
}

/** The range of {@linkcode finiteField}, and what the number is. */
export interface FiniteRange {
  /** The smallest value (default none). */
  min?: number;
  /** The largest value (default none). */
  max?: number;
  /** What the number is, added to the message (`a top-1 in percent`). */
  what?: string;
}

/**
 * Checks a finite number, in a range when one is given.
 *
 * @throws {FieldProblem} for anything else (JSON text past a double's range reads as Infinity)
 */
export function finiteField(
  v: unknown,
  field: string,
  range: FiniteRange = {},
): number {
  const { min = -Infinity, max = Infinity } = range;
  if (typeof v !== "number" || !Number.isFinite(v) || v < min || v > max) {
    const within = min === -Infinity
      ? ""
      : max === Infinity
      ? ` >= ${min}`
      : ` in [${min}, ${max}]`;
    fieldProblem(
      field,
      `a finite number${within}${range.what ? ` (${range.what})` : ""}`,
      v,
    );
  }
  return v;
}

/** Control characters, which no text tokenlab stores holds. */
// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/** What {@linkcode stringField} accepts. */
export interface StringFieldOptions {
  /** The most characters. */
  maxLength: number;
  /** A pattern the whole string matches, and what it is in words. */
  pattern?: { re: RegExp; what: string };
  /** Accept control characters (default: refused, unless a pattern decides). */
  allowControl?: boolean;
}

/**
 * Checks a string of at most `maxLength` characters: without control
 * characters unless `allowControl`, and matching `pattern` when given.
 *
 * @throws {FieldProblem} for anything else
 */
export function stringField(
  v: unknown,
  field: string,
  options: StringFieldOptions,
): string {
  const { maxLength: max, pattern, allowControl } = options;
  if (
    typeof v !== "string" || v.length > max ||
    (!allowControl && CONTROL.test(v)) || (pattern && !pattern.re.test(v))
  ) {
    fieldProblem(
      field,
      pattern
        ? `${pattern.what} (a string of at most ${max} characters)`
        : allowControl
        ? `a string of at most ${max} characters`
        : `a string of at most ${max} characters, without control characters`,
      v,
    );
  }
  return v;
}

/**
 * Checks a SHA-256 digest as tokenlab writes it: 64 lowercase hex digits.
 *
 * @throws {FieldProblem} for anything else
 */
export function sha256Field(v: unknown, field: string): string {
  if (typeof v !== "string" || !/^[0-9a-f]{64}$/.test(v)) {
    fieldProblem(field, "64 lowercase hex digits", v);
  }
  return v;
}
