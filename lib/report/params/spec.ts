/**
 * What a notebook parameter is: its kind of value, its declaration, the cell
 * tags, and the limits on a parameters cell.
 *
 * @module
 */

/** The kind of value a parameter holds. */
export type ParameterType =
  | "number"
  | "string"
  | "boolean"
  | "array"
  | "object"
  | "null";

/** One declaration of a parameters cell. */
export interface ParameterSpec {
  /** The variable name. */
  name: string;
  /** `const` or `let` (an injected value is declared the same way). */
  kind: "const" | "let";
  /**
   * The kind of value: from the default, or from the annotation when the
   * default is `null`/`undefined` (`"null"` when neither tells).
   */
  type: ParameterType;
  /** True for a number whose default is written as a whole number. */
  integer: boolean;
  /** True when `null`/`undefined` is allowed (by the default or annotation). */
  nullable: boolean;
  /** The TypeScript type after the colon, if written. */
  annotation: string | null;
  /** The allowed values when the annotation is a union of literals. */
  choices: readonly (string | number | boolean)[] | null;
  /** The default value (`undefined` when declared `= undefined`). */
  default: unknown;
  /** True when the value is followed by `as const`. */
  asConst: boolean;
  /** 1-based line of the declaration within the cell. */
  line: number;
  /** The trailing `//` comment (help text), if any. */
  comment: string | null;
}

/** The tag of the cell that declares a notebook's parameters. */
export const PARAMETERS_TAG = "parameters";
/** The tag of the cell a run inserts with the given values. */
export const INJECTED_TAG = "injected-parameters";
/** The most characters a parameters cell may have: literals, not data. */
export const MAX_PARAMETERS_SOURCE = 1_000_000;
/** The deepest nesting of lists and objects a parameter's value may have. */
export const MAX_PARAMETER_DEPTH = 100;
