/**
 * The limits the checkpoint readers put on what a file may make them
 * allocate, their defaults, and their override through the environment (not
 * part of the public API: the readers' options document them).
 *
 * @module
 */

/**
 * Default for the most bytes one archive entry may hold once read (inflated),
 * and one tensor once expanded from a view that repeats elements (zero or
 * overlapping strides): 4 GiB. A single storage of a real checkpoint is far
 * smaller (the largest tensors of common models are a few hundred MB).
 */
export const DEFAULT_MAX_ENTRY_BYTES = 2 ** 32;

/**
 * Default for the most an entry may declare to inflate to, per byte it holds
 * compressed. Deflate cannot do better than about 1032:1 (a run of one byte
 * value), so a larger declared ratio is a lie or a bomb.
 */
export const DEFAULT_MAX_INFLATE_RATIO = 1100;

/**
 * Default for the most bytes one checkpoint read may allocate for tensor
 * data in all (its storages as read, plus every tensor view copied out of
 * them): 16 GiB (four entries at the entry limit), or twice the file's size
 * when that is more. A genuine checkpoint needs about its own size (torch
 * stores storages uncompressed), so twice the file leaves room for views;
 * what the bound refuses is a small file that declares many large views of
 * one storage (each under the entry limit, together terabytes).
 */
export const DEFAULT_MAX_TOTAL_BYTES = 2 ** 34;

/** The total limit for a file of `fileSize` bytes when none is set: see {@linkcode DEFAULT_MAX_TOTAL_BYTES}. */
export function defaultMaxTotalBytes(fileSize: number): number {
  return Math.max(DEFAULT_MAX_TOTAL_BYTES, 2 * fileSize);
}

/** Environment variable that sets the total tensor data limit of one read. */
export const MAX_TOTAL_BYTES_ENV = "TOKENLAB_MAX_TOTAL_BYTES";

/** Environment variable that raises (or lowers) the entry size limit. */
export const MAX_ENTRY_BYTES_ENV = "TOKENLAB_MAX_ENTRY_BYTES";

/** Environment variable that raises (or lowers) the inflate ratio limit. */
export const MAX_INFLATE_RATIO_ENV = "TOKENLAB_MAX_INFLATE_RATIO";

/** The limits in force for one read. */
export interface ReadLimits {
  /** Most bytes one entry (or one expanded tensor) may hold. */
  maxEntryBytes: number;
  /** Most declared inflated bytes per compressed byte. */
  maxInflateRatio: number;
  /**
   * Most bytes of tensor data one read may allocate in all; null when
   * neither the option nor the environment sets it (then
   * {@linkcode defaultMaxTotalBytes} of the file's size applies).
   */
  maxTotalBytes: number | null;
}

const UNITS: Record<string, number> = {
  "": 1,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

/** Reads an environment variable if the program may; undefined otherwise. */
function envValue(name: string): string | undefined {
  try {
    if (
      Deno.permissions.querySync({ name: "env", variable: name }).state !==
        "granted"
    ) {
      return undefined;
    }
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

/** Parses "8589934592", "8 GiB", "512MiB": a whole number of bytes. */
function parseBytes(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]ib)?\s*$/i.exec(text);
  if (!m) return undefined;
  const n = Number(m[1]) * UNITS[(m[2] ?? "").toLowerCase()];
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

/**
 * The limits for one read: each from `options` when given, else from its
 * environment variable when set (and readable), else the default. A value
 * that is not a positive number is refused with `fail(message)`.
 */
export function resolveReadLimits(
  options: {
    maxEntryBytes?: number;
    maxInflateRatio?: number;
    maxTotalBytes?: number;
  },
  fail: (message: string) => Error,
): ReadLimits {
  const maxEntryBytes = byteLimit(
    "maxEntryBytes",
    options.maxEntryBytes,
    MAX_ENTRY_BYTES_ENV,
    fail,
  ) ?? DEFAULT_MAX_ENTRY_BYTES;
  const maxTotalBytes = byteLimit(
    "maxTotalBytes",
    options.maxTotalBytes,
    MAX_TOTAL_BYTES_ENV,
    fail,
  );
  let maxInflateRatio = DEFAULT_MAX_INFLATE_RATIO;
  if (options.maxInflateRatio !== undefined) {
    const v = options.maxInflateRatio;
    if (typeof v !== "number" || !Number.isFinite(v) || v < 1) {
      throw fail(
        `expected maxInflateRatio to be a finite number of at least 1, found ${
          String(v)
        }; the default is ${DEFAULT_MAX_INFLATE_RATIO}`,
      );
    }
    maxInflateRatio = v;
  } else {
    const text = envValue(MAX_INFLATE_RATIO_ENV);
    if (text !== undefined && text.trim() !== "") {
      const v = Number(text);
      if (!/^\s*\d+(\.\d+)?\s*$/.test(text) || !(v >= 1)) {
        throw fail(
          `expected ${MAX_INFLATE_RATIO_ENV} to be a number of at least 1 (e.g. 2000), found ${
            JSON.stringify(text)
          }; fix or unset it`,
        );
      }
      maxInflateRatio = v;
    }
  }
  return { maxEntryBytes, maxInflateRatio, maxTotalBytes };
}

/** A limit in bytes: from the option when given, else from `env` when set, else null. */
function byteLimit(
  name: string,
  option: number | undefined,
  env: string,
  fail: (message: string) => Error,
): number | null {
  if (option !== undefined) {
    if (
      typeof option !== "number" || !Number.isSafeInteger(option) || option <= 0
    ) {
      throw fail(
        `expected ${name} to be a positive whole number of bytes, found ${
          String(option)
        }; pass e.g. 8 * 2 ** 30 for 8 GiB`,
      );
    }
    return option;
  }
  const text = envValue(env);
  if (text === undefined || text.trim() === "") return null;
  const v = parseBytes(text);
  if (v === undefined) {
    throw fail(
      `expected ${env} to be a positive number of bytes (e.g. 8589934592 or "8 GiB"), found ${
        JSON.stringify(text)
      }; fix or unset it`,
    );
  }
  return v;
}
