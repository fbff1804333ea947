/**
 * GPU (or CPU) time of a profiled step's kernels, grouped by kernel name or
 * by name and input shapes, largest first: what `tf.profile` reports,
 * summed. A wrapped kernel (one that calls another registered kernel) is
 * timed as both, so its time counts twice.
 *
 * @module
 */

import type { tf } from "tokenlab";

/** The parts of one `tf.profile` kernel entry read here. */
export type ProfiledKernel = Pick<
  Awaited<ReturnType<typeof tf.profile>>["kernels"][number],
  "name" | "inputShapes" | "kernelTimeMs"
>;

/** One group of kernels: its key, calls and summed milliseconds. */
export interface KernelTime {
  /** The kernel's name, with its input shapes when grouped by shape. */
  kernel: string;
  /** Calls in the step. */
  calls: number;
  /** Summed kernel time, ms. */
  ms: number;
}

/** The kernels grouped by `by`, largest summed time first. */
export function kernelTimes(
  kernels: readonly ProfiledKernel[],
  by: "name" | "shape",
): KernelTime[] {
  const groups = new Map<string, KernelTime>();
  for (const k of kernels) {
    const ms = Number(k.kernelTimeMs) || 0;
    const key = by === "name"
      ? k.name
      : `${k.name} ${
        k.inputShapes.filter((x) => x !== null).map((x) => `[${x}]`).join(" ")
      }`;
    const g = groups.get(key) ?? { kernel: key, calls: 0, ms: 0 };
    g.calls++;
    g.ms += ms;
    groups.set(key, g);
  }
  return [...groups.values()].sort((a, b) => b.ms - a.ms);
}
