/**
 * Outcomes of readers whose damaged input is by design not an error but a
 * cache miss with a warning (the results cache, annotators): the harness
 * classifies by the class of what a case throws, so such a case throws
 * {@linkcode DamagedEntry} (listed as the reader's own), and a wrong answer
 * given as valid throws {@linkcode WrongValue} (a defect).
 *
 * @module
 */

import { canonicalJson } from "../../../lib/report/cache.ts";
import { sha256Hex } from "../../../lib/io/digest.ts";

/** A damaged cache entry was noticed, warned about and recomputed (the warning is the message). */
export class DamagedEntry extends Error {
  /** Where the reader found the damage (the summary keys own errors by it). */
  readonly where: string;
  /** Creates the error from the warning and where it says the damage is. */
  constructor(warning: string, where: string) {
    super(warning);
    this.name = "DamagedEntry";
    this.where = where;
  }
}

/**
 * The field a warning names (`field provenance.seconds: expected ...`), its
 * first two steps only (a deep mutation's path is thousands long), or
 * "(unnamed)".
 */
export function warnedField(warning: string): string {
  const field = /\bfield (\S+?):? expected/.exec(warning)?.[1];
  if (field === undefined) return "(unnamed)";
  const steps = /^[^.[]*(\.[^.[]+|\[[^\]]*\])?/.exec(field)![0];
  return steps.length < field.length ? `${steps}...` : field;
}

/** A reader returned a wrong value as if it were valid. */
export class WrongValue extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "WrongValue";
  }
}

/**
 * The SHA-256 of the canonical JSON of some fields of a parsed document, as
 * the results cache and annotators seal their files (null when those fields
 * are not JSON data, e.g. nested too deep: the case stays unsealed).
 */
export async function sealOf(
  doc: Record<string, unknown>,
  fields: readonly string[],
): Promise<string | null> {
  try {
    return await sha256Hex(
      canonicalJson(Object.fromEntries(fields.map((f) => [f, doc[f]]))),
    );
  } catch {
    return null;
  }
}
