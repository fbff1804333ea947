/**
 * The preprocessing a store records (how the annotator's inputs were made):
 * its checks, and the stored form that two preprocessings are compared in.
 *
 * Internal to `lib/labels/store/`; {@linkcode ScoreMapPreprocessing} is
 * public through `format.ts`.
 *
 * @module
 */

import { ScoreMapError } from "../score_map.ts";

/** How the annotator's input images were made from the originals. */
export interface ScoreMapPreprocessing {
  /**
   * `"resize-center-crop"`: short side resized, centre crop (official
   * TokenLabeling; the map covers the central square only); `"squash"`: the
   * whole image resized to a square (ReLabel).
   */
  mode: "resize-center-crop" | "squash";
  /** The annotator's input size in pixels (square). */
  size: number;
  /**
   * For `resize-center-crop`: crop size / resized short side (timm's
   * `crop_pct`; default 1, the whole short side). Ignored for `squash`.
   */
  cropPct?: number;
}

/** Checks a preprocessing's mode, size and crop; `where` names the store in errors. */
export function checkPreprocessing(
  p: ScoreMapPreprocessing,
  where: string,
): void {
  const bad = (what: string) =>
    new ScoreMapError(
      `${where}: expected preprocessing {mode: "resize-center-crop" | "squash", size, cropPct?}, ${what}`,
    );
  if (p === null || typeof p !== "object") {
    throw bad(`found ${JSON.stringify(p)}`);
  }
  if (p.mode !== "resize-center-crop" && p.mode !== "squash") {
    throw bad(`found mode ${JSON.stringify(p.mode)}`);
  }
  if (!Number.isSafeInteger(p.size) || p.size <= 0) {
    throw bad(`found size ${JSON.stringify(p.size)} (a positive integer)`);
  }
  if (
    p.cropPct !== undefined &&
    (typeof p.cropPct !== "number" || !(p.cropPct > 0 && p.cropPct <= 1))
  ) {
    throw bad(`found cropPct ${JSON.stringify(p.cropPct)} (in (0, 1])`);
  }
}

/** The stored form: `squash` has no crop; `resize-center-crop` always states its crop (default 1). */
export function normPreprocessing(
  p: ScoreMapPreprocessing,
): ScoreMapPreprocessing {
  return p.mode === "squash"
    ? { mode: p.mode, size: p.size }
    : { mode: p.mode, size: p.size, cropPct: p.cropPct ?? 1 };
}
