/**
 * Micro benchmarks: the ops the bench-64 LV-ViT (64 x 64 images, batch 64,
 * 64 patch tokens + cls = 65 tokens, D 192, 3 heads of 64, MLP hidden 576,
 * 10 classes) spends its time in, each through the library's public function
 * so the figures follow its kernels, on ONE backend:
 *
 *     TOKENLAB_BENCH_BACKEND=wasm TOKENLAB_BENCH_QUICK=1 \
 *       deno bench -A tests/bench/micro_bench.ts
 *
 * - `TOKENLAB_BENCH_BACKEND`: wasm (default), cpu or webgpu.
 * - `TOKENLAB_BENCH_QUICK=1`: fewer iterations (about 2 minutes on wasm),
 *   and batch 8 instead of 64 (32 instead of 128 maps for label pooling, 8
 *   on cpu and webgpu) where the backend is slow (cpu, webgpu on lavapipe).
 * - `TOKENLAB_BENCH_MICRO_ALL=1`: also the benches left out by default (the
 *   conv stem fwd+bwd on cpu: minutes per call).
 * - `TOKENLAB_BENCH_MICRO_BATCH`, `TOKENLAB_BENCH_POOL_BATCH`: set the
 *   batch of the bench-64 ops and the number of pooled maps explicitly
 *   (tests/bench/micro.ts passes both, and the same to torch_micro.py).
 *
 * Bench names are stable ids ("matmul bench-64 qkv fwd", ...) shared with
 * tests/bench/torch_micro.py; the batch is not in the name but printed on
 * stderr in a line `tokenlab-micro {json}` (backend, threads, batch,
 * poolBatch, quick) that micro.ts reads. Each iteration times the op (for
 * "fwd+bwd" the forward and the gradients, through `tf.grads` with a fixed
 * random dy) and awaits the data of every result so the work is really
 * done; then disposes all it made, and throws if a tensor leaked.
 */

import { POOL_CLASSES, POOL_TOKENS, poolingInputs } from "./_pooling_inputs.ts";
import {
  attentionCore,
  type BackendName,
  gelu,
  initBackend,
  layerNormAffine,
  tf,
  tokenLabelingLossParts,
} from "tokenlab";
import { poolLabels } from "tokenlab/labels/pooling.ts";
import { swapBox } from "tokenlab/mixing/mixtoken.ts";
import type { TokenBox } from "tokenlab/models/lvvit.ts";

const backend = (Deno.env.get("TOKENLAB_BENCH_BACKEND") ?? "wasm").trim()
  .toLowerCase();
const quick = Deno.env.get("TOKENLAB_BENCH_QUICK") === "1";
const slow = backend === "cpu" || backend === "webgpu";

function intEnv(name: string, fallback: number): number {
  const raw = Deno.env.get(name);
  if (raw === undefined || raw.trim() === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) {
    throw new Error(`${name} must be a positive integer, found "${raw}"`);
  }
  return n;
}

/** Batch of the bench-64 ops and number of pooled maps. */
const B = intEnv("TOKENLAB_BENCH_MICRO_BATCH", quick && slow ? 8 : 64);
const P = intEnv("TOKENLAB_BENCH_POOL_BATCH", quick ? (slow ? 8 : 32) : 128);

const choice = await initBackend({ backend: backend as BackendName });

// bench-64 shapes.
const N = 65, D = 192, HEADS = 3, HIDDEN = 576, CLASSES = 10, GRID = 8;
const BOX: TokenBox = { top: 2, left: 1, bottom: 6, right: 5 }; // 16 of 64 tokens

/**
 * Iterations: light ops (well under 100 ms a call) and heavy ones. Deno
 * makes one untimed call more than `n + warmup`.
 */
function iterations(heavy: boolean): { n: number; warmup: number } {
  if (slow) return heavy ? { n: 2, warmup: 0 } : { n: 5, warmup: 1 };
  if (quick) return heavy ? { n: 3, warmup: 1 } : { n: 10, warmup: 2 };
  return heavy ? { n: 10, warmup: 2 } : { n: 50, warmup: 5 };
}

/**
 * Benches left out, with the reason (reported on the `tokenlab-micro` line
 * so micro.ts can say why the figure is missing).
 */
const skipped: Record<string, string> = {};
if (backend === "cpu" && Deno.env.get("TOKENLAB_BENCH_MICRO_ALL") !== "1") {
  skipped["conv stem bench-64 fwd+bwd"] =
    "skipped on cpu: the cpu backend's conv filter gradient (scalar JavaScript) takes minutes per call even at batch 8 (TOKENLAB_BENCH_MICRO_ALL=1 runs it)";
}

let seed = 2024;
function normal(shape: number[], std = 1): tf.Tensor {
  return tf.randomNormal(shape, 0, std, "float32", seed++);
}
function softmaxOf(shape: number[]): tf.Tensor {
  return tf.tidy(() => tf.softmax(tf.mul(normal(shape), 2)));
}

/** Awaits every result's data (the work is done), then disposes them. */
async function settle(ys: tf.Tensor | tf.Tensor[]): Promise<void> {
  const list = Array.isArray(ys) ? ys : [ys];
  for (const y of list) await y.data();
  tf.dispose(list);
}

interface MicroCase {
  id: string;
  heavy: boolean;
  /** One call: the op's results (the bench awaits and disposes them). */
  run: () => tf.Tensor | tf.Tensor[] | Promise<tf.Tensor | tf.Tensor[]>;
}

const cases: MicroCase[] = [];

/** A forward case and its fwd+bwd twin (gradients w.r.t. all `inputs`, dy fixed). */
function pair(
  id: string,
  heavy: boolean,
  inputs: tf.Tensor[],
  f: (...xs: tf.Tensor[]) => tf.Tensor,
  dy: tf.Tensor | null,
): void {
  cases.push({
    id: `${id} fwd`,
    heavy,
    run: () => tf.tidy(() => f(...inputs)),
  });
  const g = tf.grads(f);
  cases.push({
    id: `${id} fwd+bwd`,
    heavy,
    run: () => g(inputs, dy ?? undefined),
  });
}

// matmul: the qkv and fc1 linears [B*65, 192] x [192, 576], fc2 [B*65, 576] x [576, 192].
for (
  const [tag, k, n] of [
    ["qkv", D, 3 * D],
    ["fc1", D, HIDDEN],
    ["fc2", HIDDEN, D],
  ] as const
) {
  const a = normal([B * N, k]), b = normal([k, n], k ** -0.5);
  pair(
    `matmul bench-64 ${tag}`,
    true,
    [a, b],
    (a, b) => tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D),
    normal([B * N, n]),
  );
}

// attention core on qkv [B, 65, 576], 3 heads.
pair(
  "attention bench-64",
  true,
  [normal([B, N, 3 * D])],
  (qkv) => attentionCore(qkv as tf.Tensor3D, HEADS),
  normal([B, N, D]),
);

// layer norm [B, 65, 192] with weight and bias.
pair(
  "layernorm bench-64",
  false,
  [
    normal([B, N, D]),
    tf.tidy(() => tf.add(1, normal([D], 0.1))),
    normal([D], 0.1),
  ],
  (x, w, b) => layerNormAffine(x, w, b, 1e-5),
  normal([B, N, D]),
);

// exact GELU on the MLP hidden activations [B, 65, 576].
pair(
  "gelu bench-64",
  false,
  [normal([B, N, HIDDEN])],
  (x) => gelu(x),
  normal([B, N, HIDDEN]),
);

// conv stem (NHWC): 7x7/2 pad 3 3->64, ReLU, 3x3 pad 1 64->64, ReLU, 3x3 pad
// 1, ReLU, projection k=s=4 64->192; no BatchNorm, no bias.
pair(
  "conv stem bench-64",
  true,
  [
    normal([B, 64, 64, 3]),
    normal([7, 7, 3, 64], Math.sqrt(2 / 147)),
    normal([3, 3, 64, 64], Math.sqrt(2 / 576)),
    normal([3, 3, 64, 64], Math.sqrt(2 / 576)),
    normal([4, 4, 64, 192], Math.sqrt(1 / 1024)),
  ],
  (x, w1, w2, w3, w4) => {
    let y = tf.relu(tf.conv2d(x as tf.Tensor4D, w1 as tf.Tensor4D, 2, 3));
    y = tf.relu(tf.conv2d(y, w2 as tf.Tensor4D, 1, 1));
    y = tf.relu(tf.conv2d(y, w3 as tf.Tensor4D, 1, 1));
    return tf.conv2d(y, w4 as tf.Tensor4D, 4, "valid");
  },
  normal([B, GRID, GRID, D]),
);

// label pooling at the official shape (as tests/bench/pooling_bench.ts): P
// maps, k 5, 15 x 15, 1000 classes, pooled to cls + 14 x 14 tokens.
{
  const C = POOL_CLASSES, S = POOL_TOKENS;
  const { maps, boxes, flips, labels } = poolingInputs(P);
  cases.push({
    id: "label pooling official fwd",
    heavy: true,
    run: async () => {
      const out = await poolLabels(
        maps,
        boxes,
        { numClasses: C, tokenGrid: S, flips, labels },
      );
      // Training hands the labels to the loss on the backend: wait for the
      // last token label instead of copying 100 MB to JavaScript (as
      // pooling_bench.ts does).
      const last = tf.slice(out.tokens, [P - 1, S * S - 1, C - 1], [1, 1, 1]);
      await last.data();
      tf.dispose(Object.values(out));
      return last;
    },
  });
}

// MixToken: swap a fixed box with the reversed batch on [B, 8, 8, 192].
pair(
  "mixtoken bench-64 swapBox",
  false,
  [normal([B, GRID, GRID, D])],
  (x) => swapBox(x as tf.Tensor4D, BOX),
  normal([B, GRID, GRID, D]),
);

// The token labeling loss: cls [B, 10], aux [B, 64, 10], soft targets, class
// weight 1, dense weight 0.5, the MixToken box; gradients w.r.t. cls and aux.
{
  const yCls = softmaxOf([B, CLASSES]);
  const yTok = softmaxOf([B, GRID * GRID, CLASSES]);
  pair(
    "loss bench-64 token labeling",
    false,
    [normal([B, CLASSES]), normal([B, GRID * GRID, CLASSES])],
    (cls, aux) => {
      const parts = tokenLabelingLossParts(
        { cls, aux },
        { cls: yCls, tokens: yTok },
        { clsWeight: 1, denseWeight: 0.5, box: BOX },
      );
      tf.dispose([parts.cls, parts.dense]);
      return parts.loss;
    },
    null,
  );
}

console.error(
  `tokenlab-micro ${
    JSON.stringify({
      backend: choice.name,
      threads: choice.threads > 0 ? choice.threads : 1,
      batch: B,
      poolBatch: P,
      quick,
      skipped,
    })
  }`,
);

for (const c of cases) {
  Deno.bench({
    name: c.id,
    ignore: c.id in skipped,
    ...iterations(c.heavy),
    async fn(t) {
      const before = tf.memory().numTensors;
      t.start();
      await settle(await c.run());
      t.end();
      const after = tf.memory().numTensors;
      if (after !== before) {
        throw new Error(
          `${c.id}: ${after - before} tensor(s) leaked on ${choice.name}`,
        );
      }
    },
  });
}
