/**
 * The kit's own kernels in tfjs's registry: their registration, and whether
 * they run on the backend now running (the one check the fused ops make
 * before taking their kernels, wasm's or WebGPU's, registered under the
 * same names, over tfjs's composite ops).
 *
 * @module
 */

import * as tfjs from "@tensorflow/tfjs";

/** True when every named kernel is registered for the running backend. */
export function kernelsHere(...names: string[]): boolean {
  const backend = tfjs.getBackend();
  return names.every((n) => tfjs.getKernel(n, backend) !== undefined);
}

type KernelFunc = Parameters<typeof tfjs.registerKernel>[0]["kernelFunc"];

/** A kernel function, whatever the types its backend's arguments have. */
export type AnyKernelFunc = (args: never) => unknown;

/**
 * Registers each kernel function under its name for `backendName`, unless
 * a kernel of that name is there already (idempotent), and returns the
 * names.
 */
export function registerMissingKernels(
  backendName: string,
  kernels: readonly (readonly [string, AnyKernelFunc])[],
): string[] {
  for (const [kernelName, kernelFunc] of kernels) {
    if (tfjs.getKernel(kernelName, backendName) === undefined) {
      tfjs.registerKernel({
        kernelName,
        backendName,
        kernelFunc: kernelFunc as unknown as KernelFunc,
      });
    }
  }
  return kernels.map(([name]) => name);
}
