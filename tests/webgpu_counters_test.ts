/**
 * countWebGpu (lib/kernels/webgpu_counters.ts): on the webgpu backend it
 * counts the dispatches, uploads and readbacks of a known piece of work,
 * refuses to nest, and leaves the WebGPU prototypes as it found them.
 */

import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { tf } from "tokenlab";
import { countWebGpu } from "tokenlab/kernels/webgpu_counters.ts";
import { backendTest } from "tokenlab/testing";

await backendTest(
  "countWebGpu: dispatches, uploads and readbacks of one add",
  async () => {
    const a = tf.tensor1d(Array.from({ length: 4096 }, (_, i) => i));
    const b = tf.tensor1d(Array.from({ length: 4096 }, (_, i) => -i));
    const submit = GPUQueue.prototype.submit;
    const { result, counts } = await countWebGpu(async () => {
      const c = tf.add(a, b);
      const values = await c.data();
      c.dispose();
      return values;
    });
    assertEquals(result[4095], 0);
    // Two tensors made on the CPU go up, one add runs, one result comes back.
    assertEquals(counts.uploads, 2);
    assertEquals(counts.dispatches, 1);
    assertEquals(counts.readbacks, 1);
    assert(counts.submits >= 1, `submits ${counts.submits}`);
    assertEquals(counts.uniformWrites, 1);
    assertEquals(GPUQueue.prototype.submit, submit, "prototype restored");
    await assertRejects(
      () => countWebGpu(() => countWebGpu(() => 0)),
      Error,
      "do not nest",
    );
    tf.dispose([a, b]);
  },
  { backends: ["webgpu"] },
);
