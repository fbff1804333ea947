/**
 * Shared command-line plumbing: `node:util` parseArgs (JSR's @std/cli is
 * unreachable here) with errors that say what was expected, what was found
 * and what to do; number rules per flag, and flags of a few words; checks
 * of the paths a command line names.
 *
 * @module
 */

import { parseArgs, type ParseArgsConfig } from "node:util";
import { exists } from "../_fs.ts";
import { TokenlabError } from "../errors.ts";

/**
 * A usage error: the command line, or an input it names, is wrong (exit
 * code 2). Its message is printed as it is, so it starts with
 * `tokenlab <command>:`.
 */
export class UsageError extends TokenlabError {
  /** Creates the error with its message (and the error it rephrases). */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** An error class, as `instanceof` takes it. */
export type ErrorClass = abstract new (...args: never[]) => Error;

/** A command of the `tokenlab` command line. */
export interface Command {
  /** One line for the command list. */
  summary: string;
  /** Full usage text. */
  usage: string;
  /** Runs the command; resolves to the exit code. */
  run(args: string[]): Promise<number>;
}

type Options = NonNullable<ParseArgsConfig["options"]>;

/**
 * A value that starts with "-" but is a number or a list of numbers (`-3`,
 * `-.5`, `-0.1,1`), not an option: parseArgs alone calls it ambiguous.
 */
const NEGATIVE_VALUE = /^-(\d|\.\d)/;

/**
 * Edit distance for "did you mean": insertions, deletions, substitutions
 * and swaps of two neighbouring letters each cost 1 (optimal string
 * alignment), so `modle` is 1 from `model`.
 */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from(
    { length: a.length + 1 },
    (_, i) => Array.from({ length: b.length + 1 }, (_, j) => i === 0 ? j : i),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(
        d[i - 1][j] + 1,
        d[i][j - 1] + 1,
        d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
      if (
        i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]
      ) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.length][b.length];
}

/**
 * The known option nearest to a mistyped one (`modle` -> `model`), or
 * undefined when none is close: a prefix of a known option counts as
 * nearest, else the smallest edit distance, at most a third of the name
 * (rounded; at least 1). Ties go to the option listed first.
 */
export function nearestOption(
  given: string,
  known: readonly string[],
): string | undefined {
  const name = given.replace(/^-+/, "");
  if (name === "") return undefined;
  const limit = Math.max(1, Math.round(name.length / 3));
  let best: { o: string; d: number } | undefined;
  for (const o of known) {
    const d = o.startsWith(name) ? 0 : editDistance(name, o);
    if (d <= limit && (best === undefined || d < best.d)) best = { o, d };
  }
  return best?.o;
}

function unknownOption(
  command: string,
  usage: string,
  given: string,
  options: Options,
): UsageError {
  const nearName = nearestOption(given, Object.keys(options));
  const near = nearName === undefined ? undefined : { o: nearName };
  return new UsageError(
    `tokenlab ${command}: unknown option ${given}${
      near ? `; did you mean --${near.o}?` : ""
    } (tokenlab ${command} --help lists the options)\n\n${usage}`,
  );
}

/**
 * Checks every option against `options` and writes `--flag VALUE` as
 * `--flag=VALUE`, so that a negative number is a value and a missing value
 * is named, before parseArgs sees the line.
 */
function normalizeArgs(
  command: string,
  usage: string,
  args: string[],
  options: Options,
): string[] {
  const shorts = new Map<string, string>();
  for (const [name, o] of Object.entries(options)) {
    if (o.short !== undefined) shorts.set(o.short, name);
  }
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") {
      out.push(...args.slice(i));
      break;
    }
    let name: string | undefined;
    let inline = false;
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      name = arg.slice(2, eq < 0 ? undefined : eq);
      inline = eq >= 0;
      if (!Object.hasOwn(options, name)) {
        throw unknownOption(
          command,
          usage,
          arg.slice(0, eq < 0 ? undefined : eq),
          options,
        );
      }
    } else if (/^-[^-\d.]$/.test(arg)) {
      name = shorts.get(arg[1]);
      if (name === undefined) {
        throw unknownOption(command, usage, arg, options);
      }
    } else {
      out.push(arg);
      continue;
    }
    if (options[name].type === "boolean") {
      if (inline) {
        throw new UsageError(
          `tokenlab ${command}: --${name} is a switch and takes no value, found ${arg}; write --${name} alone`,
        );
      }
      out.push(`--${name}`);
      continue;
    }
    if (inline) {
      out.push(arg);
      continue;
    }
    const value = args[i + 1];
    if (
      value === undefined ||
      (value.startsWith("-") && !NEGATIVE_VALUE.test(value))
    ) {
      throw new UsageError(
        `tokenlab ${command}: --${name} needs a value, found ${
          value === undefined ? "the end of the command line" : `${value}`
        }; write --${name} VALUE (or --${name}=VALUE for a value that starts with "-")\n\n${usage}`,
      );
    }
    out.push(`--${name}=${value}`);
    i++;
  }
  return out;
}

/**
 * Parses `args` for `command`: unknown options (with the nearest known
 * one), switches given a value, options without one and every other
 * parseArgs refusal become UsageErrors; negative numbers are values.
 */
export function parseCommandArgs<T extends ParseArgsConfig["options"]>(
  command: string,
  usage: string,
  args: string[],
  options: T,
  allowPositionals = false,
): ReturnType<typeof parseArgs<{ options: T; allowPositionals: boolean }>> {
  const normalized = normalizeArgs(command, usage, args, options ?? {});
  try {
    return parseArgs({
      args: normalized,
      options,
      allowPositionals,
      strict: true,
    });
  } catch (e) {
    throw new UsageError(
      `tokenlab ${command}: ${(e as Error).message}\n\n${usage}`,
      { cause: e },
    );
  }
}

/**
 * What a numeric flag accepts: an integer or any finite number, within
 * inclusive (`min`, `max`) or exclusive (`above`, `below`) bounds.
 */
export interface NumberRule {
  /** Whole numbers only. */
  integer?: boolean;
  /** Smallest value allowed. */
  min?: number;
  /** Values must be larger than this. */
  above?: number;
  /** Largest value allowed. */
  max?: number;
  /** Values must be smaller than this. */
  below?: number;
}

/** 1, 2, 3...: sizes, counts, steps. */
export const POSITIVE_INT: NumberRule = { integer: true, min: 1 };
/** 0, 1, 2...: seeds, counts that may be zero. */
export const NON_NEGATIVE_INT: NumberRule = { integer: true, min: 0 };
/** Any number > 0: learning rates, epsilons. */
export const POSITIVE: NumberRule = { above: 0 };
/** Any number >= 0: weights, alphas where 0 turns a feature off. */
export const NON_NEGATIVE: NumberRule = { min: 0 };
/** A probability: [0, 1]. */
export const PROBABILITY: NumberRule = { min: 0, max: 1 };
/** A rate below 1: [0, 1) (drop rates, smoothing, decays). */
export const UNIT_RATE: NumberRule = { min: 0, below: 1 };
/** A fraction above 0: (0, 1] (crop fractions). */
export const FRACTION: NumberRule = { above: 0, max: 1 };

/** The rule in words: "a positive integer", "a number in [0, 1)". */
export function describeNumber(rule: NumberRule): string {
  const noun = rule.integer ? "integer" : "number";
  const a = rule.integer ? "an" : "a";
  const low = rule.min ?? rule.above, high = rule.max ?? rule.below;
  if (low !== undefined && high !== undefined) {
    return `a ${noun} in ${rule.min !== undefined ? "[" : "("}${low}, ${high}${
      rule.max !== undefined ? "]" : ")"
    }`;
  }
  if (high !== undefined) {
    return `${a} ${noun} ${rule.max !== undefined ? "<=" : "<"} ${high}`;
  }
  if (rule.min === 1 && rule.integer) return "a positive integer";
  if (rule.above === 0) return `a positive ${noun}`;
  if (rule.min === 0) return `${a} ${noun} >= 0`;
  if (low !== undefined) {
    return `${a} ${noun} ${rule.min !== undefined ? ">=" : ">"} ${low}`;
  }
  return `${a} ${noun}`;
}

/** Whether `n` is a number the rule accepts. */
export function followsRule(n: number, rule: NumberRule): boolean {
  return Number.isFinite(n) && (!rule.integer || Number.isInteger(n)) &&
    (rule.min === undefined || n >= rule.min) &&
    (rule.above === undefined || n > rule.above) &&
    (rule.max === undefined || n <= rule.max) &&
    (rule.below === undefined || n < rule.below);
}

/** Text as it was typed: a number bare, anything else quoted. */
export function shown(text: string): string {
  return text.trim() !== "" && Number.isFinite(Number(text))
    ? text
    : JSON.stringify(text);
}

/**
 * Parses a numeric flag value by its rule: a UsageError naming the command,
 * the flag, what it expects and what was found when it is not one.
 */
export function parseNumber(
  command: string,
  flag: string,
  text: string,
  rule: NumberRule,
): number {
  const n = text.trim() === "" ? NaN : Number(text);
  if (!followsRule(n, rule)) {
    throw new UsageError(
      `tokenlab ${command}: ${flag} needs ${describeNumber(rule)}, found ${
        shown(text)
      }`,
    );
  }
  return n;
}

/** {@linkcode parseNumber} for an optional flag: undefined when absent. */
export function numberOption(
  command: string,
  flag: string,
  text: string | undefined,
  rule: NumberRule,
): number | undefined {
  return text === undefined
    ? undefined
    : parseNumber(command, flag, text, rule);
}

/**
 * Parses an optional positive-integer flag value: undefined when absent, a
 * UsageError naming the command and the flag when it is not one.
 */
export function positiveIntOption(
  command: string,
  flag: string,
  text: string | undefined,
): number | undefined {
  return numberOption(command, flag, text, POSITIVE_INT);
}

/** Words as a list in prose: "a", "a or b", "a, b or c". */
function orList(words: readonly string[]): string {
  return words.length < 2
    ? words.join("")
    : `${words.slice(0, -1).join(", ")} or ${words[words.length - 1]}`;
}

/**
 * Parses a flag that takes one of a few words: the first of `choices` when
 * absent, a UsageError naming the command, the flag, the choices and what
 * was found (then `hint`) when it is none of them.
 */
export function choiceOption<C extends string>(
  command: string,
  flag: string,
  text: string | undefined,
  choices: readonly [C, ...C[]],
  hint = "",
): C {
  const value = text ?? choices[0];
  if (!(choices as readonly string[]).includes(value)) {
    throw new UsageError(
      `tokenlab ${command}: ${flag} must be ${
        orList(choices)
      }, found "${value}"${hint}`,
    );
  }
  return value as C;
}

/** What a path named on the command line must be. */
export interface PathExpectation {
  /** A file or a folder. */
  kind: "file" | "folder";
  /** What the flag takes, in words ("a weights file (.safetensors or .pth)"). */
  what: string;
}

/**
 * Checks, before any work, that a path the command line names exists and
 * is a file or a folder as expected; a UsageError naming the flag, what it
 * takes and what is there otherwise.
 */
export async function checkPath(
  command: string,
  flag: string,
  path: string,
  expected: PathExpectation,
): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    throw new UsageError(
      `tokenlab ${command}: ${flag} takes ${expected.what}, found nothing at ${path}; check the path`,
      { cause: e },
    );
  }
  const kind = info.isFile ? "file" : info.isDirectory ? "folder" : "neither";
  if (kind !== expected.kind) {
    throw new UsageError(
      `tokenlab ${command}: ${flag} takes ${expected.what}, found ${
        kind === "neither"
          ? "something that is neither file nor folder"
          : `a ${kind}`
      } at ${path}; ${
        expected.kind === "file" && kind === "folder"
          ? "name the file inside it"
          : `give ${expected.what}`
      }`,
    );
  }
}

/**
 * Refuses, before any work, an `--out` store that already exists unless
 * `--overwrite` was given (the old store stays until the new one is
 * complete).
 */
export async function checkNewStore(
  command: string,
  out: string,
  overwrite: boolean,
): Promise<void> {
  if (!overwrite && await exists(out)) {
    throw new UsageError(
      `tokenlab ${command}: --out ${out} already exists; expected a new path for the store: pass --overwrite to replace it (the old store stays until the new one is complete), or choose another --out`,
    );
  }
}

/**
 * Runs `read` on an input the command line names: an error of one of the
 * `readers`' classes then means the input is wrong, and becomes a
 * UsageError (exit 2) that keeps the reader's message, naming the flag
 * (`null`: the reader's message names what is wrong itself).
 */
export async function readingInput<T>(
  command: string,
  flag: string | null,
  readers: readonly ErrorClass[],
  read: () => Promise<T>,
): Promise<T> {
  try {
    return await read();
  } catch (e) {
    if (readers.some((c) => e instanceof c)) {
      throw new UsageError(
        `tokenlab ${command}: ${flag === null ? "" : `${flag}: `}${
          (e as Error).message
        }`,
        { cause: e },
      );
    }
    throw e;
  }
}

/**
 * Parses a `--backend` value before any work, so that an unknown name is a
 * usage error (exit 2); a backend that is known but cannot start here fails
 * later, while running (exit 1).
 */
export async function checkBackendOption(
  command: string,
  value: string | undefined,
): Promise<void> {
  if (value === undefined) return;
  const { BackendError, parseBackendRequest } = await import("../backend.ts");
  try {
    parseBackendRequest(value, "--backend");
  } catch (e) {
    if (!(e instanceof BackendError)) throw e;
    throw new UsageError(`tokenlab ${command}: ${e.message}`, { cause: e });
  }
}
