/**
 * Whether kernels run on the backend now running: the one check the fused
 * ops make before taking their kernels (wasm's or WebGPU's, registered under
 * the same names) over tfjs's composite ops.
 *
 * @module
 */

import * as tfjs from "@tensorflow/tfjs";

/** True when every named kernel is registered for the running backend. */
export function kernelsHere(...names: string[]): boolean {
  const backend = tfjs.getBackend();
  return names.every((n) => tfjs.getKernel(n, backend) !== undefined);
}
