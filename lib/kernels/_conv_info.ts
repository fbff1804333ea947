/**
 * A 2-D convolution's attributes as tfjs hands them to the `Conv2D`,
 * `Conv2DBackpropFilter` and `Conv2DBackpropInput` kernels, and their
 * resolution into sizes (`backend_util.computeConv2DInfo`, NHWC): the one
 * reading of them that the wasm, OpenBLAS and WebGPU convolution kernels
 * share.
 *
 * Imports tfjs directly and only defines functions (a kernel module is a
 * leaf).
 *
 * @module
 */

import * as tfjs from "@tensorflow/tfjs";

/** A 4-D shape. */
export type Shape4 = [number, number, number, number];

/** Conv2D attributes as the kernels receive them. */
export interface ConvAttrs {
  /** Strides along rows and columns (one number: both). */
  strides: number | [number, number];
  /** Padding: `valid`, `same`, a number, or explicit per-side pads. */
  pad: Parameters<typeof tfjs.backend_util.computeConv2DInfo>[4];
  /** The layout of the input; the kit's kernels handle NHWC. */
  dataFormat: "NHWC" | "NCHW";
  /** Dilations (Conv2D's; the gradients' attributes have none). */
  dilations?: number | [number, number];
  /** How output sizes are rounded with a numeric pad. */
  dimRoundingMode?: "floor" | "round" | "ceil";
  /** Conv2DBackpropInput's. */
  inputShape?: Shape4;
  /** Conv2DBackpropFilter's. */
  filterShape?: Shape4;
}

/**
 * The sizes of an NHWC convolution of an input of `xShape` by a filter of
 * `filterShape` under `attrs`, dilated by `dilations` (default: the
 * attributes', else 1; the gradients' attributes have none).
 *
 * @throws {Error} tfjs's own, for attributes it refuses
 */
export function convInfo(
  xShape: readonly number[],
  filterShape: readonly number[],
  attrs: ConvAttrs,
  dilations: number | [number, number] = attrs.dilations ?? 1,
): tfjs.backend_util.Conv2DInfo {
  return tfjs.backend_util.computeConv2DInfo(
    xShape as Shape4,
    filterShape as Shape4,
    attrs.strides,
    dilations,
    attrs.pad,
    attrs.dimRoundingMode,
  );
}
