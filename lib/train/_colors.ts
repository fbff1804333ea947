/**
 * The colours of the training views: one per loss term, the learning rate
 * and each set of evaluated weights.
 *
 * @module
 */

/** Series colours (hex) of the training figure and the live view. */
export const COLORS = {
  loss: "#1f77b4",
  cls: "#ff7f0e",
  dense: "#2ca02c",
  lr: "#555555",
  model: "#d62728",
  ema: "#9467bd",
};
