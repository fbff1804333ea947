/**
 * Which classifier an annotator applies at every location. LV-ViT has two:
 * `head`, trained on the class token only, and `aux_head`, trained on every
 * patch token (token labeling's dense loss). Applied to patch tokens, the
 * class head sees inputs it was never trained on; the aux head is the one
 * made for them. So the default, `"auto"`, is the head the annotator was
 * trained for: its aux head when the model has one, the class head
 * otherwise (a plain ViT, or weights trained without an aux head).
 *
 * @module
 */

import type { TokenModel } from "../models/model.ts";
import { ScoreMapError } from "../labels/score_map.ts";

/** A classifier of the kit's models applied at every token. */
export type AnnotatorHead = "head" | "aux_head";

/** What a caller may ask for: a head, or `"auto"` (the one the model was trained for). */
export type AnnotatorHeadChoice = AnnotatorHead | "auto";

/**
 * The head to annotate with: `"auto"` (or nothing) picks `aux_head` when
 * the model has one and `head` otherwise; an explicit head is checked
 * against the model. Throws a {@linkcode ScoreMapError} for `aux_head` on a
 * model without one, or an unknown name.
 *
 * @example
 * ```ts
 * import { createModel, initBackend } from "tokenlab";
 * import { chooseAnnotatorHead } from "tokenlab/annotators/head.ts";
 * await initBackend();
 * const vit = createModel("vit_xs32"), lvvit = createModel("lvvit_xs32");
 * console.log(chooseAnnotatorHead(vit), chooseAnnotatorHead(lvvit), chooseAnnotatorHead(lvvit, "head")); // head aux_head head
 * vit.dispose();
 * lvvit.dispose();
 * ```
 */
export function chooseAnnotatorHead(
  model: Pick<TokenModel, "config">,
  choice: AnnotatorHeadChoice = "auto",
): AnnotatorHead {
  const hasAux = model.config.auxHead === true;
  if (choice === "auto") return hasAux ? "aux_head" : "head";
  if (choice === "head") return "head";
  if (choice === "aux_head") {
    if (hasAux) return "aux_head";
    throw new ScoreMapError(
      `annotate: head "aux_head" was asked for, but the annotator ${model.config.name} has no aux head (its weights were trained without one); expected "head" or "auto" for it, or train the annotator with an aux head (tokenlab train --aux-head) for token labels`,
    );
  }
  throw new ScoreMapError(
    `annotate: expected head "auto", "aux_head" or "head", found ${
      JSON.stringify(choice)
    }`,
  );
}
