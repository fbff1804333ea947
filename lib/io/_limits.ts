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
  options: { maxEntryBytes?: number; maxInflateRatio?: number },
  fail: (message: string) => Error,
): ReadLimits {
  let maxEntryBytes = DEFAULT_MAX_ENTRY_BYTES;
  let maxInflateRatio = DEFAULT_MAX_INFLATE_RATIO;
  if (options.maxEntryBytes !== undefined) {
    const v = options.maxEntryBytes;
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0) {
      throw fail(
        `expected maxEntryBytes to be a positive whole number of bytes, found ${
          String(v)
        }; pass e.g. 8 * 2 ** 30 for 8 GiB`,
      );
    }
    maxEntryBytes = v;
  } else {
    const text = envValue(MAX_ENTRY_BYTES_ENV);
    if (text !== undefined && text.trim() !== "") {
      const v = parseBytes(text);
      if (v === undefined) {
        throw fail(
          `expected ${MAX_ENTRY_BYTES_ENV} to be a positive number of bytes (e.g. 8589934592 or "8 GiB"), found ${
            JSON.stringify(text)
          }; fix or unset it`,
        );
      }
      maxEntryBytes = v;
    }
  }
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
  return { maxEntryBytes, maxInflateRatio };
}
