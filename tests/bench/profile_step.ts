/**
 * Where one training (or evaluation) step of a model spends its time, by
 * tfjs kernel: `tf.profile` over one step after a warm-up, grouped by kernel
 * name and by kernel plus input shapes, with the count of kernels and of
 * transposes and copies per step.
 *
 *     npx -y deno@2.9.6 run -A tests/bench/profile_step.ts [--model lvvit_xs64]
 *       [--batch 64] [--backend wasm] [--eval] [--top 25]
 *
 * The training step is the bench's: MixToken, the token labeling loss
 * (class 1.0 + dense 0.5), gradients of every parameter and AdamW. Kernel
 * times of a wrapped kernel (one that calls another registered kernel)
 * count twice, so the percentages are of the kernels' summed time; the
 * step's wall time is printed beside it.
 */

import { parseArgs } from "node:util";
import {
  AdamW,
  createModel,
  initBackend,
  MixToken,
  Rng,
  tf,
  tokenLabelingLossParts,
} from "tokenlab";
import { kernelTimes } from "./_kernel_times.ts";

const { values: args } = parseArgs({
  args: Deno.args,
  options: {
    model: { type: "string", default: "lvvit_xs64" },
    batch: { type: "string", default: "64" },
    backend: { type: "string", default: "wasm" },
    top: { type: "string", default: "25" },
    eval: { type: "boolean", default: false },
  },
});
const B = Number(args.batch);
const choice = await initBackend({
  backend: args.backend as "wasm" | "cpu" | "webgpu",
});
const model = createModel(args.model, {
  dropPathRate: 0.1,
  auxHead: true,
}, { seed: 0 });
const { imgSize: S, numClasses: C } = model.config;
const N = model.grid ** 2;
const images = tf.randomNormal([B, S, S, 3], 0, 1, "float32", 1) as tf.Tensor4D;
const clsTarget = tf.tidy(() =>
  tf.softmax(tf.randomNormal([B, C], 0, 2, "float32", 2))
) as tf.Tensor2D;
const tokenTarget = tf.tidy(() =>
  tf.softmax(tf.randomNormal([B, N, C], 0, 2, "float32", 3))
) as tf.Tensor3D;
const params = model.spec.filter((p) => p.kind === "param").map((p) => ({
  name: p.name,
  variable: model.state.get(p.name)!,
  decay: p.decay,
}));
const optimizer = new AdamW(params, { lr: 1e-3, weightDecay: 0.05 });
const paramOf = new Map(params.map((p) => [p.variable.name, p.name]));
const mixer = new MixToken();
let stepNo = 0;

async function trainStep(): Promise<void> {
  const rng = new Rng(1000 + stepNo++);
  const { value, grads } = tf.variableGrads(() => {
    const out = model.forwardTrain(images, { rng, mixer });
    return tokenLabelingLossParts(
      { cls: out.cls, aux: out.aux },
      { cls: clsTarget, tokens: tokenTarget },
      { clsWeight: 1, denseWeight: 0.5, box: out.box },
    ).loss;
  }, params.map((p) => p.variable));
  const loss = (await value.data())[0];
  if (!Number.isFinite(loss)) throw new Error(`the loss is ${loss}`);
  const byName = new Map<string, tf.Tensor>();
  for (const [v, g] of Object.entries(grads)) byName.set(paramOf.get(v)!, g);
  optimizer.apply(byName);
  tf.dispose([value, ...Object.values(grads)]);
}

async function evalStep(): Promise<void> {
  const logits = model.predict(images);
  await logits.data();
  logits.dispose();
}

const step = args.eval ? evalStep : trainStep;
await step(); // warm-up: kernels compiled, buffers sized
const t0 = performance.now();
await step();
const wall = performance.now() - t0;
const info = await tf.profile(step);

let total = 0;
for (const k of info.kernels) total += Number(k.kernelTimeMs) || 0;
const top = Number(args.top);
const show = (title: string, by: "name" | "shape") => {
  console.log(`\n${title}`);
  for (const e of kernelTimes(info.kernels, by).slice(0, top)) {
    console.log(
      `${e.ms.toFixed(1).padStart(8)} ms ${
        (100 * e.ms / total).toFixed(1).padStart(5)
      }% ${String(e.calls).padStart(4)}x  ${e.kernel}`,
    );
  }
};
const count = (names: string[]) =>
  info.kernels.filter((k) => names.includes(k.name)).length;
console.log(
  `${args.model} ${
    args.eval ? "eval" : "train"
  } step, batch ${B}, ${choice.name} (${choice.threads} thread(s)): ` +
    `${wall.toFixed(0)} ms wall (${(B / wall * 1000).toFixed(1)} img/s), ${
      total.toFixed(0)
    } ms in kernels, ${info.kernels.length} kernels, ${
      count(["Transpose"])
    } transposes, ${
      count(["Identity", "Reshape", "Cast", "Slice", "Concat", "Pad"])
    } copies/reshapes, peak ${
      (info.peakBytes / 2 ** 20).toFixed(0)
    } MiB of tensors`,
);
show("by kernel", "name");
show("by kernel and input shapes", "shape");
optimizer.dispose();
model.dispose();
tf.dispose([images, clsTarget, tokenTarget]);
