/**
 * How tfjs resolves a convolution's padding along one axis (dilation 1), for
 * the tests that build float64 references of convolutions.
 */

/** A convolution's padding as tfjs takes it. */
export type ConvPad = "same" | "valid" | number;

/** Output size and leading pad along an axis of `size` for kernel `k`, stride `s`. */
export function convGeometry(
  size: number,
  k: number,
  s: number,
  pad: ConvPad,
): { out: number; lead: number } {
  if (pad === "valid") return { out: Math.ceil((size - k + 1) / s), lead: 0 };
  if (pad === "same") {
    const out = Math.ceil(size / s);
    const total = Math.max((out - 1) * s + k - size, 0);
    return { out, lead: Math.floor(total / 2) };
  }
  return { out: Math.floor((size + 2 * pad - k) / s) + 1, lead: pad };
}
