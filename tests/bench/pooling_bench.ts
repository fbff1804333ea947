/**
 * Label pooling (lib/labels/pooling.ts) at the official training shape:
 * a batch of 128 maps (k 5, 15 x 15, 1000 classes) pooled to the class
 * token and 14 x 14 token labels (softmax and smoothing included), on every
 * backend side by side (wasm is the baseline). Each iteration ends when the
 * last token label can be read (the labels stay on the backend, as in
 * training).
 *
 * `TOKENLAB_POOLING_BATCH=32 deno bench -A tests/bench/pooling_bench.ts`
 * sets another batch. The same computation in PyTorch (torchvision's
 * roi_align + softmax) is timed by tests/bench/pooling_torch_bench.py, to be
 * run in the same session for a ratio on the same machine.
 */

import { availableBackends, type BackendName, initBackend, tf } from "tokenlab";
import { poolLabels } from "tokenlab/labels/pooling.ts";
import { poolingInputs } from "./_pooling_inputs.ts";

const backends = await availableBackends();
const B = Number(Deno.env.get("TOKENLAB_POOLING_BATCH") ?? 128);
const k = 5, H = 15, W = 15, C = 1000, S = 14;

const data = poolingInputs(B);
const group =
  `poolLabels B=${B} k=${k} ${H}x${W} C=${C} -> cls + ${S}x${S} tokens`;
for (const b of backends) {
  // cpu: tens of seconds of scalar JavaScript per call; webgpu on a software
  // adapter (lavapipe) is slow too: few iterations for both.
  const few = b.name === "cpu"
    ? { n: 2, warmup: 1 }
    : b.name === "webgpu"
    ? { n: 3, warmup: 1 }
    : { n: 10, warmup: 2 };
  Deno.bench({
    name: `${group} [${b.name}]`,
    group,
    baseline: b.name === "wasm",
    ignore: !b.available,
    ...few,
    async fn(t) {
      await initBackend({ backend: b.name as BackendName });
      t.start();
      const out = await poolLabels(data.maps, data.boxes, {
        numClasses: C,
        tokenGrid: S,
        flips: data.flips,
        labels: data.labels,
      });
      // Wait for the backend (asynchronous on webgpu) without timing a
      // 100 MB copy to JavaScript: training hands the labels to the loss.
      const last = tf.slice(out.tokens, [B - 1, S * S - 1, C - 1], [1, 1, 1]);
      await last.data();
      t.end();
      tf.dispose([last, ...Object.values(out)]);
    },
  });
}
