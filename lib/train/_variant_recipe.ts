/**
 * The per-variant parts of the official recipe: drop path, evaluation crop,
 * RandAugment and base lr (the defaults that depend on the model).
 *
 * @module
 */

/** A variant's own recipe values; `aa` and `lrBase` when they differ from the defaults. */
export interface VariantRecipe {
  dropPath: number;
  cropPct: number;
  aa?: string;
  lrBase?: number;
}

/** Per-variant parts of the recipe: drop path, RandAugment and base lr. */
export const VARIANT_RECIPE: Record<string, VariantRecipe> = {
  lvvit_t: { dropPath: 0.1, cropPct: 0.9 },
  lvvit_s: { dropPath: 0.1, cropPct: 0.9 },
  lvvit_m: { dropPath: 0.2, cropPct: 1.0 },
  lvvit_l: {
    dropPath: 0.3,
    cropPct: 1.0,
    aa: "rand-n3-m9-mstd0.5-inc1",
    lrBase: 1e-3,
  },
  vit_ti: { dropPath: 0.1, cropPct: 0.875 },
  vit_s: { dropPath: 0.1, cropPct: 0.875 },
  vit_b: { dropPath: 0.1, cropPct: 0.875 },
};

/** A variant's recipe: its entry, or drop path 0.1 and crop 1.0 for a variant without one. */
export function variantRecipe(model: string): VariantRecipe {
  return VARIANT_RECIPE[model] ?? { dropPath: 0.1, cropPct: 1.0 };
}
