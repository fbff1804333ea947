/**
 * Backend micro benchmarks: the same operation on every available backend,
 * side by side in one group, so `deno bench` reports ratios measured in the
 * same run (wasm is the baseline). The full suite with PyTorch references
 * lands with the performance issue.
 */

import { availableBackends, type BackendName, initBackend, tf } from "tokenlab";
import { testValues } from "tokenlab/testing/reference.ts";

const backends = await availableBackends();

function bench(
  group: string,
  make: () => tf.Tensor[],
  op: (...xs: tf.Tensor[]) => tf.Tensor,
): void {
  for (const b of backends) {
    let inputs: tf.Tensor[] | null = null;
    Deno.bench({
      name: `${group} [${b.name}]`,
      group,
      baseline: b.name === "wasm",
      ignore: !b.available,
      async fn(t) {
        await initBackend({ backend: b.name as BackendName });
        inputs ??= make();
        await warm(op, inputs);
        t.start();
        const y = op(...inputs);
        await y.data(); // wait for the backend to finish (async on webgpu)
        t.end();
        y.dispose();
      },
    });
  }
}

const warmed = new WeakSet<tf.Tensor[]>();
async function warm(
  op: (...xs: tf.Tensor[]) => tf.Tensor,
  inputs: tf.Tensor[],
) {
  if (warmed.has(inputs)) return;
  const y = op(...inputs);
  await y.data(); // compile shaders / first-use allocations outside the timing
  y.dispose();
  warmed.add(inputs);
}

for (const n of [256, 512]) {
  bench(
    `matmul ${n}x${n}`,
    () => [
      tf.tensor2d(testValues(n * n, 1), [n, n]),
      tf.tensor2d(testValues(n * n, 2), [n, n]),
    ],
    (a, b) => tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D),
  );
}

bench(
  "softmax [64x197x100]",
  () => [tf.tensor3d(testValues(64 * 197 * 100, 3, 5), [64, 197, 100])],
  (x) => tf.softmax(x),
);

bench(
  "conv 7x7/2 stem [8,64,64,3]->64",
  () => [
    tf.tensor4d(testValues(8 * 64 * 64 * 3, 4), [8, 64, 64, 3]),
    tf.tensor4d(testValues(7 * 7 * 3 * 64, 5, 0.1), [7, 7, 3, 64]),
  ],
  (x, f) => tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, 2, "same"),
);
