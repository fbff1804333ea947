/**
 * How fast the hot kernels of an LV-ViT-S training step run on the WebGPU
 * adapter, one kernel at a time: GPU time per call (timestamp queries under
 * `tf.profile`, the median of several calls) and the TFLOP/s it makes, for
 * tfjs's matmul and convolution and then the kit's tiled products
 * (`webgpu_matmul.ts`, `webgpu_conv.ts`) on the same shapes, the kit's
 * conv filter gradient, and the fused attention, forward and backward.
 * The kit's products run with the block each picks (`_tiled_gemm.ts`), then
 * with 8×8 and with 4×4 per thread forced on every shape.
 *
 *     deno run -A tests/bench/webgpu_kernel_rates.ts [--batch 64] [--reps 5]
 *       [--out FILE.json]
 *
 * At batch 64 the shapes are LV-ViT-S's at 224 (197 tokens, 384 wide, 6
 * heads, MLP 3x; the stem's 3x3 convolutions at 112x112x64); a smaller
 * batch scales the rows only (`--batch 1` runs in about a minute on
 * lavapipe). The GPU session runs it first (tests/bench/gpu_session.ts): it
 * says which matmul to install and how far each kernel is from the chip.
 * Prints a Markdown table; `--out` also writes the rows as JSON. Imports
 * only the backend and the kernels, so its bundle stays small.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { tf } from "tokenlab/tf.ts";
import { initBackend } from "tokenlab/backend.ts";
import { attentionComposite, attentionCore } from "tokenlab/ops.ts";
import { installWebGpuProducts } from "tokenlab/kernels/mod.ts";
import { forceGemmBlock } from "tokenlab/kernels/_tiled_gemm.ts";
import { testValues } from "tokenlab/testing/reference.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    batch: { type: "string", default: "64" },
    reps: { type: "string", default: "5" },
    out: { type: "string" },
  },
});
const B = Number(values.batch), reps = Number(values.reps);
if (!(Number.isInteger(B) && B > 0 && Number.isInteger(reps) && reps > 0)) {
  console.error(
    `--batch and --reps must be positive whole numbers; found ${values.batch} and ${values.reps}`,
  );
  Deno.exit(2);
}
const choice = await initBackend({ backend: "webgpu" });
const device = (tf.backend() as unknown as { device: GPUDevice }).device;
if (!device.features.has("timestamp-query")) {
  console.error(
    "the WebGPU device has no timestamp queries: kernel times cannot be measured here",
  );
  Deno.exit(1);
}

/** One measured kernel. */
interface Rate {
  /** What ran: the layer, the pass and the kernel's author. */
  what: string;
  /** The kernel tf.profile names. */
  kernel: string;
  /** Median GPU ms of one call. */
  ms: number;
  /** Floating-point operations of one call. */
  flop: number;
  /** flop / ms, in TFLOP/s. */
  tflops: number;
  /**
   * max |out - ref| / max |ref| against tfjs's kernels' result on the same
   * inputs (null where nothing was compared: tfjs's own rows, or no ref).
   */
  error: number | null;
}

/** tfjs's results by what they compute, to hold the kit's against. */
const references = new Map<string, Float32Array>();

/** Reads `op`'s result (the last tensor when it returns several). */
async function result(
  op: () => tf.Tensor | tf.Tensor[],
): Promise<Float32Array> {
  const out = op();
  const t = Array.isArray(out) ? out[out.length - 1] : out;
  const data = (await t.data()) as Float32Array;
  tf.dispose(out);
  return data;
}

/**
 * Stores `op`'s result under `ref` the first time, and after that returns
 * its error against the stored one.
 */
async function check(
  ref: string,
  op: () => tf.Tensor | tf.Tensor[],
): Promise<number | null> {
  const got = await result(op);
  const want = references.get(ref);
  if (want === undefined) {
    references.set(ref, got);
    return null;
  }
  let diff = 0, scale = 0;
  for (let i = 0; i < want.length; i++) {
    diff = Math.max(diff, Math.abs(got[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  return got.length === want.length ? diff / (scale || 1) : Infinity;
}

const rates: Rate[] = [];
let seed = 1;
const input = (shape: number[]) =>
  tf.tensor(
    testValues(shape.reduce((a, b) => a * b, 1), seed++, 0.5),
    shape,
    "float32",
  );

/**
 * Runs `op` `reps` times under tf.profile and keeps the median time of the
 * calls of `kernel` (the first call of each rep, when an op runs several);
 * with `ref`, checks its result as {@linkcode check} does.
 */
async function measure(
  what: string,
  kernel: string,
  flop: number,
  op: () => tf.Tensor | tf.Tensor[],
  ref?: string,
): Promise<void> {
  const error = ref === undefined ? null : await check(ref, op);
  tf.dispose(op()); // warm: the pipeline compiled, the buffers pooled
  const times: number[] = [];
  for (let r = 0; r < reps; r++) {
    const info = await tf.profile(() => {
      tf.dispose(op());
    });
    const k = info.kernels.find((k) => k.name === kernel);
    if (k !== undefined) times.push(Number(k.kernelTimeMs) || 0);
  }
  if (times.length === 0) {
    console.error(`${what}: no ${kernel} kernel ran`);
    return;
  }
  times.sort((a, b) => a - b);
  const ms = times[Math.floor(times.length / 2)];
  rates.push({ what, kernel, ms, flop, tflops: flop / ms / 1e9, error });
  console.error(`${what}: ${ms.toFixed(3)} ms`);
}

// LV-ViT-S at 224: 197 tokens, 384 wide, 6 heads, MLP 1152.
const T = 197, C = 384, H = 6, F = 3 * C, rows = B * T;
const linears: [string, number, number, boolean][] = [
  ["qkv", C, 3 * C, false],
  ["proj", C, C, true],
  ["fc1", C, F, true],
  ["fc2", F, C, true],
];
const matmuls: {
  what: string;
  a: number[];
  b: number[];
  ta: boolean;
  tb: boolean;
  bias: number | null;
}[] = [];
for (const [name, cin, cout, bias] of linears) {
  // forward x[rows, in] W[in, out] (+ b); dX = dY W^T; dW = X^T dY.
  matmuls.push(
    {
      what: `${name} forward`,
      a: [rows, cin],
      b: [cin, cout],
      ta: false,
      tb: false,
      bias: bias ? cout : null,
    },
    {
      what: `${name} input grad`,
      a: [rows, cout],
      b: [cin, cout],
      ta: false,
      tb: true,
      bias: null,
    },
    {
      what: `${name} weight grad`,
      a: [rows, cin],
      b: [rows, cout],
      ta: true,
      tb: false,
      bias: null,
    },
  );
}
const operands = matmuls.map((m) => ({
  a: input(m.a),
  b: input(m.b),
  bias: m.bias === null ? null : input([m.bias]),
}));

async function matmulRates(author: string): Promise<void> {
  for (const [i, m] of matmuls.entries()) {
    const { a, b, bias } = operands[i];
    const [M, K] = m.ta ? [m.a[1], m.a[0]] : m.a;
    const N = m.tb ? m.b[0] : m.b[1];
    await measure(
      `${m.what} [${M}x${K}]x[${K}x${N}] (${author})`,
      bias === null ? "BatchMatMul" : "_FusedMatMul",
      2 * M * N * K,
      () =>
        bias === null
          ? tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D, m.ta, m.tb)
          : tf.fused.matMul({
            a: a as tf.Tensor2D,
            b: b as tf.Tensor2D,
            transposeA: m.ta,
            transposeB: m.tb,
            bias,
          }),
      m.what,
    );
  }
}

await matmulRates("tfjs");

// The stem's 3x3 convolutions, 64 -> 64 at 112x112, stride 1, pad 1.
const S = 112, CS = 64;
const x = input([B, S, S, CS]) as tf.Tensor4D;
const filter = input([3, 3, CS, CS]) as tf.Tensor4D;
const dy = input([B, S, S, CS]) as tf.Tensor4D;
const convFlop = 2 * B * S * S * CS * 9 * CS;
async function convRates(author: string): Promise<void> {
  await measure(
    `stem conv 3x3 forward [${B},${S},${S},${CS}] (${author})`,
    "Conv2D",
    convFlop,
    () => tf.conv2d(x, filter, 1, "same"),
    "conv forward",
  );
  await measure(
    `stem conv 3x3 input grad (${author})`,
    "Conv2DBackpropInput",
    convFlop,
    () => tf.conv2dTranspose(dy, filter, [B, S, S, CS], 1, "same"),
    "conv input grad",
  );
}
await convRates("tfjs");
await measure(
  "stem conv 3x3 filter grad (tokenlab)",
  "Conv2DBackpropFilter",
  convFlop,
  () => {
    const [, df] = tf.grads((a: tf.Tensor, f: tf.Tensor) =>
      tf.sum(
        tf.mul(tf.conv2d(a as tf.Tensor4D, f as tf.Tensor4D, 1, "same"), dy),
      )
    )([x, filter]);
    return df;
  },
);

// Fused attention: QK^T and PV forward, four products backward.
const qkv = input([B, T, 3 * C]) as tf.Tensor3D;
const attnFlop = 4 * B * H * T * T * (C / H);
// tfjs's kernels through the composite are the reference.
await check("attention forward", () => attentionComposite(qkv, H));
await check(
  "attention backward",
  () =>
    tf.grad((q: tf.Tensor) =>
      tf.sum(tf.square(attentionComposite(q as tf.Tensor3D, H)))
    )(qkv),
);
await measure(
  `attention forward [${B},${T},${3 * C}], ${H} heads (tokenlab)`,
  "TokenlabFusedAttention",
  attnFlop,
  () => attentionCore(qkv, H),
  "attention forward",
);
await measure(
  "attention backward (tokenlab)",
  "TokenlabFusedAttentionGrad",
  2 * attnFlop,
  () =>
    tf.grad((q: tf.Tensor) =>
      tf.sum(tf.square(attentionCore(q as tf.Tensor3D, H)))
    )(qkv),
  "attention backward",
);

installWebGpuProducts();
// The block each product picks, then the two largest forced on all.
for (const block of [null, [8, 8], [4, 4]] as const) {
  forceGemmBlock(block);
  const author = `tokenlab, block ${block?.join("x") ?? "chosen"}`;
  await matmulRates(author);
  await convRates(author);
}
forceGemmBlock(null);

const adapter = choice.adapter?.description ?? "?";
const lines = [
  `Kernel rates on ${adapter}, batch ${B} (LV-ViT-S at 224), median of ${reps} call(s) under tf.profile`,
  "",
  "| kernel | GPU ms | TFLOP/s | error vs tfjs |",
  "| --- | ---: | ---: | ---: |",
  ...rates.map((r) =>
    `| ${r.what} | ${r.ms.toFixed(3)} | ${
      r.tflops >= 1 ? r.tflops.toFixed(2) : r.tflops.toPrecision(3)
    } | ${r.error === null ? "-" : r.error.toExponential(1)} |`
  ),
  "",
  "error vs tfjs: max |kit's - tfjs's| / max |tfjs's| on the same inputs (tfjs's composite for the attention).",
];
console.log(lines.join("\n"));
if (values.out !== undefined) {
  await Deno.writeTextFile(
    values.out,
    JSON.stringify({ adapter, batch: B, reps, rates }, null, 1),
  );
}
