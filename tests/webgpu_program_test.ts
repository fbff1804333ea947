/**
 * runWgsl (lib/kernels/webgpu_program.ts) with a shader the device refuses:
 * the refusal, which WebGPU reports asynchronously, is printed when it
 * arrives, and every later dispatch of that kernel throws it rather than
 * computing nothing in silence.
 */

import { assert, assertStringIncludes, assertThrows } from "./_assert.ts";
import { tf } from "tokenlab";
import {
  runWgsl,
  type WebGpuBackend,
} from "tokenlab/kernels/webgpu_program.ts";
import { backendTest } from "tokenlab/testing";

await backendTest(
  "runWgsl: a WGSL kernel the device refuses is reported, then refused loudly",
  async () => {
    const backend = tf.backend() as unknown as WebGpuBackend;
    const x = tf.tensor1d([1, 2, 3]);
    const dispatch = {
      key: "tokenlab.test.refused",
      // vec8 does not exist in WGSL.
      code: `@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@compute @workgroup_size(1) fn main() { var v: vec8<f32>; y[0] = x[0]; }`,
      inputs: [x],
      outputs: [{ shape: [1] }],
      workgroups: [1, 1, 1] as [number, number, number],
    };
    const printed: string[] = [];
    const error = console.error;
    console.error = (...args: unknown[]) => printed.push(args.join(" "));
    try {
      const [y] = runWgsl(backend, dispatch);
      // The device's answer arrives once the queue has moved on.
      const z = tf.tensor1d([0]);
      await z.data();
      z.dispose();
      await new Promise((r) => setTimeout(r, 50));
      backend.disposeData(y.dataId);
      assert(
        printed.some((p) =>
          p.includes("refused the WGSL kernel tokenlab.test.refused")
        ),
        `nothing printed: ${printed}`,
      );
      const e = assertThrows(() => runWgsl(backend, dispatch));
      assertStringIncludes(
        (e as Error).message,
        "refused the kit's WGSL kernel tokenlab.test.refused",
      );
      assertStringIncludes((e as Error).message, "vec8");
    } finally {
      console.error = error;
      x.dispose();
    }
  },
  { backends: ["webgpu"] },
);
