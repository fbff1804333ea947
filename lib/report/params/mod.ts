/**
 * Papermill-style parameters for TypeScript notebooks.
 *
 * A notebook has at most one code cell tagged `parameters`; it declares the
 * defaults as top-level `const` (or `let`) declarations with literal values:
 *
 * ```ts
 * // Parameters.
 * const seed = 3;
 * const lr = 2e-3; // peak learning rate
 * const scale: "smoke" | "full" = "smoke";
 * ```
 *
 * A run with other values gets a cell tagged `injected-parameters` right
 * after it that declares them again (the Deno kernel allows re-declaring a
 * top-level `const` in a later cell), so the notebook itself never changes.
 *
 * The cell is read with a small tokenizer of our own rather than by running
 * it: values must be literals so that they can be listed, type checked and
 * re-declared without executing anything.
 *
 * The pieces, one per file: `spec.ts` (what a parameter is),
 * the lexer and parser (`parse.ts`), resolution of given values
 * (`resolve.ts`), `--params` files (`file.ts`) and the
 * injected cell (`inject.ts`).
 *
 * @module
 */

export * from "./spec.ts";
export { ParameterError } from "./parameter_error.ts";
export { findParameterCell, parseParameters } from "./parse.ts";
export { resolveParameters } from "./resolve.ts";
export { injectParameters, renderInjectedCell } from "./inject.ts";
export {
  MAX_PARAMETER_FILE_BYTES,
  parseParameterFile,
  readParameterFile,
} from "./file.ts";
