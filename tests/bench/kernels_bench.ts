/**
 * tokenlab's wasm Conv2DBackpropFilter (lib/kernels/wasm_grad.ts) against the
 * cpu backend's native one (and webgpu's, where it runs), on the shapes of
 * the LV-ViT small variant's conv stem and patch embedding, side by side in
 * one group per shape (wasm is the baseline).
 *
 * The cpu kernel is a scalar JavaScript loop and takes tens of seconds to
 * minutes per call at batch 16, so its benches run once after the warm-up
 * Deno always does. The default batch is 4 (about 2 minutes in all, most of
 * it the cpu kernel); `TOKENLAB_BENCH_BATCH=16 deno bench -A
 * tests/bench/kernels_bench.ts` runs the training batch (about 8 minutes).
 */

import { tf } from "tokenlab/tf.ts";
import {
  availableBackends,
  type BackendName,
  initBackend,
} from "tokenlab/backend.ts";
import { testValues } from "tokenlab/testing/reference.ts";

const backends = await availableBackends();
const batch = Number(Deno.env.get("TOKENLAB_BENCH_BATCH") ?? 4);

interface FilterGradCase {
  name: string;
  x: [number, number, number, number];
  filter: [number, number, number, number];
  strides: number;
  pad: "same" | "valid" | number;
}

const CASES: FilterGradCase[] = [
  {
    name: `stem conv 7x7/2 pad 3 [${batch},64,64,3] -> 32`,
    x: [batch, 64, 64, 3],
    filter: [7, 7, 3, 32],
    strides: 2,
    pad: 3,
  },
  {
    name: `stem conv 3x3/1 pad 1 [${batch},32,32,64] -> 64`,
    x: [batch, 32, 32, 64],
    filter: [3, 3, 64, 64],
    strides: 1,
    pad: 1,
  },
  {
    name: `patchify k=4 [${batch},32,32,64] -> 192`,
    x: [batch, 32, 32, 64],
    filter: [4, 4, 64, 192],
    strides: 4,
    pad: "valid",
  },
];

function size(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

for (const c of CASES) {
  const group = `Conv2DBackpropFilter ${c.name}`;
  const info = tf.backend_util.computeConv2DInfo(
    c.x,
    c.filter,
    c.strides,
    1,
    c.pad,
  );
  const dyShape = [batch, info.outHeight, info.outWidth, c.filter[3]];
  for (const b of backends) {
    let inputs: { x: tf.Tensor; dy: tf.Tensor } | null = null;
    let warm = false;
    // cpu: a scalar loop, tens of seconds per call; webgpu on a software
    // adapter (lavapipe) is slow too: few iterations for both.
    const slow = b.name === "cpu";
    const few = slow
      ? { n: 1, warmup: 0 }
      : b.name === "webgpu"
      ? { n: 5, warmup: 1 }
      : {};
    Deno.bench({
      name: `${group} [${b.name}${b.name === "wasm" ? ", tokenlab" : ""}]`,
      group,
      baseline: b.name === "wasm",
      ignore: !b.available,
      ...few,
      async fn(t) {
        await initBackend({ backend: b.name as BackendName });
        inputs ??= {
          x: tf.tensor(testValues(size(c.x), 1), c.x),
          dy: tf.tensor(testValues(size(dyShape), 2), dyShape),
        };
        const run = () =>
          tf.engine().runKernel("Conv2DBackpropFilter", inputs!, {
            strides: c.strides,
            pad: c.pad,
            dataFormat: "NHWC",
            filterShape: c.filter,
          }) as tf.Tensor;
        if (!warm && !slow) {
          // first-use allocations and shader compilation outside the timing
          const y = run();
          await y.data();
          y.dispose();
          warm = true;
        }
        t.start();
        const y = run();
        await y.data(); // wait for the backend (asynchronous on webgpu)
        t.end();
        y.dispose();
      },
    });
  }
}
