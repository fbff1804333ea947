/**
 * What a store header may say about where its maps come from, beyond the
 * annotator's name: which of the annotator's classifiers made the scores
 * (`annotatorHead`), its weights file (`annotatorWeights`: the file's name,
 * size and SHA-256) and the class names (`classNames`, in id order). All
 * three are optional: stores without them (older ones, converted official
 * maps) read as before. Their checks and their order in the header live
 * here.
 *
 * Internal to `lib/labels/store/`; the types are public through
 * `format.ts`.
 *
 * @module
 */

import { ScoreMapError } from "../score_map.ts";

/** The annotator's weights file, as a store header records it. */
export interface ScoreMapAnnotatorWeights {
  /** The file's name (without its folder: no machine paths in a store). */
  file: string;
  /** Its size in bytes. */
  bytes: number;
  /** Its SHA-256, lowercase hex. */
  sha256: string;
}

/** The optional provenance fields of a header, as a caller gives them. */
export interface ScoreMapProvenance {
  /**
   * The classifier applied at every location: `"aux_head"` (LV-ViT's token
   * head, what token labeling trains on every patch token) or `"head"` (the
   * class head); another annotator may name its own.
   */
  annotatorHead?: string;
  /** The annotator's weights file (name, size, SHA-256). */
  annotatorWeights?: ScoreMapAnnotatorWeights;
  /** The class names, in id order: `numClasses` of them. */
  classNames?: readonly string[];
}

/** The most bytes the class names may take as JSON (the header stays under 1 MiB). */
export const MAX_CLASS_NAMES_BYTES = 512 * 1024;

/** Checks the optional provenance fields; `where` names the store in errors. */
export function checkProvenance(
  p: ScoreMapProvenance & { numClasses: number },
  where: string,
): void {
  const h = p.annotatorHead;
  if (
    h !== undefined &&
    (typeof h !== "string" || h === "" || h.length > 100)
  ) {
    throw new ScoreMapError(
      `${where}: expected annotatorHead to name the classifier applied at every location ("aux_head" or "head", at most 100 characters), found ${
        JSON.stringify(h)?.slice(0, 120)
      }`,
    );
  }
  const w = p.annotatorWeights as unknown;
  if (w !== undefined) {
    const o = w as Record<string, unknown>;
    const ok = w !== null && typeof w === "object" && !Array.isArray(w) &&
      typeof o.file === "string" && o.file !== "" && o.file.length <= 1024 &&
      !o.file.includes("/") && !o.file.includes("\\") &&
      Number.isSafeInteger(o.bytes) && (o.bytes as number) >= 0 &&
      typeof o.sha256 === "string" && /^[0-9a-f]{64}$/.test(o.sha256);
    if (!ok) {
      throw new ScoreMapError(
        `${where}: expected annotatorWeights {file: the file's name without its folder, bytes: its size, sha256: 64 lowercase hex digits}, found ${
          JSON.stringify(w)?.slice(0, 300)
        }`,
      );
    }
  }
  const names = p.classNames as unknown;
  if (names !== undefined) {
    if (!Array.isArray(names) || names.length !== p.numClasses) {
      throw new ScoreMapError(
        `${where}: expected classNames to list the ${p.numClasses} class names in id order, found ${
          Array.isArray(names)
            ? `${names.length} names`
            : JSON.stringify(names)?.slice(0, 100)
        }; give one name per class, or leave classNames out`,
      );
    }
    const bad = names.findIndex((n) => typeof n !== "string");
    if (bad >= 0) {
      throw new ScoreMapError(
        `${where}: expected every class name to be a string, found ${
          JSON.stringify(names[bad])?.slice(0, 100)
        } for class ${bad}`,
      );
    }
    const bytes = new TextEncoder().encode(JSON.stringify(names)).length;
    if (bytes > MAX_CLASS_NAMES_BYTES) {
      throw new ScoreMapError(
        `${where}: the class names take ${bytes} bytes as JSON, more than the ${MAX_CLASS_NAMES_BYTES} a store header holds; leave classNames out (keep them beside the store)`,
      );
    }
  }
}

/** The fields that are given, in the header's order (absent ones left out, so older headers are unchanged). */
export function provenanceFields(
  p: ScoreMapProvenance,
): ScoreMapProvenance {
  const out: ScoreMapProvenance = {};
  if (p.annotatorHead !== undefined) out.annotatorHead = p.annotatorHead;
  if (p.annotatorWeights !== undefined) {
    const { file, bytes, sha256 } = p.annotatorWeights;
    out.annotatorWeights = { file, bytes, sha256 };
  }
  if (p.classNames !== undefined) out.classNames = [...p.classNames];
  return out;
}
