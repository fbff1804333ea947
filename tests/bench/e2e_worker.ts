/**
 * Our side of one end-to-end benchmark job of `deno task bench`
 * (tests/bench/run.ts), run as a child process so that its peak memory is
 * its own and a crash ends only this job:
 *
 *     deno run -A tests/bench/e2e_worker.ts '<job json>'
 *
 * The job is a {@linkcode Job}; the last line on stdout is one JSON
 * {@linkcode JobResult} (`{"error": "..."}` when the job failed). PyTorch's
 * side of the same jobs is tests/bench/torch_reference.py, with the same
 * protocol and the same definitions:
 *
 * - train: one training step as `tokenlab train` does per batch minus data
 *   loading: forwardTrain with drop path 0.1 and MixToken, loss = CE(cls,
 *   MixToken-blended class target) + 0.5 x mean token CE(aux, token
 *   targets) on fixed random soft targets, `tf.variableGrads`, the loss read
 *   back (NaN guard), AdamW (lr 1e-3, weight decay 0.05 on matrices and
 *   kernels);
 * - eval: `model.predict` (head on the class token + 0.5 x max of aux_head
 *   over the tokens, running BatchNorm statistics), logits read back;
 * - pool: `poolLabels` at the official shape (k 5, 15 x 15 maps, 1000
 *   classes, 14 x 14 tokens) for `batch` maps, until the last label is ready;
 * - data: decode a JPEG and apply the official training transform at 224,
 *   for every JPEG of `dir`, one thread.
 *
 * Images (or maps) per second = batch / median step time over `steps` timed
 * steps after `warmup` untimed ones. Peak memory = VmHWM at the end minus
 * VmRSS right before the model (or the inputs) are built, after the imports
 * and the backend start.
 *
 * @module
 */

import { POOL_CLASSES, POOL_TOKENS, poolingInputs } from "./_pooling_inputs.ts";
import {
  AdamW,
  createModel,
  initBackend,
  MixToken,
  type ModelConfig,
  modelEntry,
  Rng,
  tf,
  tokenLabelingLossParts,
} from "tokenlab";
import { wasmThreads } from "tokenlab/tf.ts";
import { installWebGpuProducts } from "tokenlab/kernels/mod.ts";
import {
  countWebGpu,
  type WebGpuCounts,
} from "tokenlab/kernels/webgpu_counters.ts";
import { poolLabels } from "tokenlab/labels/pooling.ts";
import { type KernelTime, kernelTimes } from "./_kernel_times.ts";
import { decodeImage } from "tokenlab/data/decode.ts";
import { trainTransform } from "tokenlab/data/transforms.ts";

/** One job of the harness, the same for our worker and torch's. */
export interface Job {
  /** What to time. */
  task: "train" | "eval" | "pool" | "data";
  /** Harness model name ("bench-64", "lvvit_t", "lvvit_s"); train and eval only. */
  model?: string;
  /** Batch (images, or maps for pool); images per pass for data. */
  batch: number;
  /** Timed steps. */
  steps: number;
  /** Untimed steps before them. */
  warmup: number;
  /** Our backend ("wasm", "cpu", "webgpu"); torch ignores it. */
  backend: string;
  /** Threads (torch: set to this; ours: reported by the backend). 0: every core. */
  threads: number;
  /** The model's config (registry JSON), for torch to build the same model. */
  config?: ModelConfig;
  /** data: the folder of JPEG files. */
  dir?: string;
  /** Where torch runs it: "cpu" (absent) or "cuda" (the bench's --gpu); ours ignores it. */
  device?: "cpu" | "cuda";
  /** On webgpu: dispatches per queue submit (tfjs's WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE; the kit's default 128, tfjs's 15); torch ignores it. */
  submitBatch?: number;
  /** On webgpu: "tokenlab" installs the kit's tiled WGSL products (the matmul, the linear layers' fused matmul, the convolution and its input gradient; not the default yet); torch ignores it. */
  matmul?: "tfjs" | "tokenlab";
}

/** What a worker prints as its last line. */
export interface JobResult {
  /** Items per second: images (train, eval, data) or maps (pool). */
  ips?: number;
  /** VmHWM at the end minus VmRSS before the model was built, MiB. */
  peakMiB?: number;
  /** Timed steps. */
  steps?: number;
  /** Each timed step, seconds. */
  seconds?: number[];
  /** Threads the side ran with. */
  threads?: number;
  /** Anything worth knowing ("GPU", the BLAS...). */
  detail?: string;
  /** On webgpu: what one more step asked of the device, and its kernel time. */
  webgpu?: WebGpuStepProbe;
  /** Why the job failed. */
  error?: string;
}

/**
 * One step on webgpu looked at twice after the timed ones: counted (the
 * calls it makes, {@linkcode WebGpuCounts}) and profiled (`tf.profile`:
 * the GPU time of its kernels by timestamp queries, where the adapter has
 * them). The profiled step submits each kernel on its own, so only its
 * kernel time is meaningful, not its wall time.
 */
export interface WebGpuStepProbe {
  /** The counted step's calls. */
  counts: WebGpuCounts;
  /** The counted step's wall time, ms. */
  wallMs: number;
  /** Summed GPU time of the profiled step's kernels, ms (0 without timestamp queries). */
  kernelMs: number;
  /** Kernels the profiled step ran (tfjs's and the kit's, as tfjs counts them). */
  kernels: number;
  /** Whether the adapter has timestamp queries (else kernelMs is 0). */
  timestamps: boolean;
  /**
   * The profiled step's kernels (name and input shapes) that took the most
   * GPU time, at most {@linkcode TOP_KERNELS}; empty without timestamps.
   */
  topKernels: KernelTime[];
}

/** How many of a step's costliest kernels a webgpu probe keeps. */
export const TOP_KERNELS = 12;

/** Registry name of each harness model name. */
export const HARNESS_MODELS: Readonly<Record<string, string>> = Object.freeze({
  "bench-64": "lvvit_xs64",
  "lvvit_t": "lvvit_t",
  "lvvit_s": "lvvit_s",
});

const TASKS = ["train", "eval", "pool", "data"] as const;

/** Checks a job's JSON text; the error says which field and what to pass. */
export function parseJob(text: string): Job {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new Error(
      `the job must be one JSON object argument, e.g. '{"task":"eval","model":"bench-64","batch":2,"steps":1,"warmup":0,"backend":"cpu","threads":1}'; found ${
        JSON.stringify(text.slice(0, 80))
      } (${(e as Error).message})`,
    );
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new Error(
      `the job must be a JSON object; found ${JSON.stringify(raw)}`,
    );
  }
  const j = raw as Record<string, unknown>;
  if (!TASKS.includes(j.task as typeof TASKS[number])) {
    throw new Error(
      `job.task must be one of ${TASKS.join(", ")}; found ${
        JSON.stringify(j.task)
      }`,
    );
  }
  for (const k of ["batch", "steps"] as const) {
    if (!(Number.isInteger(j[k]) && (j[k] as number) > 0)) {
      throw new Error(
        `job.${k} must be a positive integer; found ${JSON.stringify(j[k])}`,
      );
    }
  }
  for (const k of ["warmup", "threads"] as const) {
    if (!(Number.isInteger(j[k]) && (j[k] as number) >= 0)) {
      throw new Error(
        `job.${k} must be an integer >= 0; found ${JSON.stringify(j[k])}`,
      );
    }
  }
  if (typeof j.backend !== "string" || j.backend === "") {
    throw new Error(
      `job.backend must be a backend name (wasm, cpu, webgpu); found ${
        JSON.stringify(j.backend)
      }`,
    );
  }
  if (j.task === "train" || j.task === "eval") {
    if (typeof j.model !== "string" || !(j.model in HARNESS_MODELS)) {
      throw new Error(
        `job.model must be one of ${
          Object.keys(HARNESS_MODELS).join(", ")
        } for a ${j.task} job; found ${JSON.stringify(j.model)}`,
      );
    }
  }
  if (
    j.submitBatch !== undefined &&
    !(Number.isInteger(j.submitBatch) && (j.submitBatch as number) > 0)
  ) {
    throw new Error(
      `job.submitBatch must be a positive integer (dispatches per queue submit); found ${
        JSON.stringify(j.submitBatch)
      }`,
    );
  }
  if (
    j.matmul !== undefined && j.matmul !== "tfjs" && j.matmul !== "tokenlab"
  ) {
    throw new Error(
      `job.matmul must be "tfjs" or "tokenlab"; found ${
        JSON.stringify(j.matmul)
      }`,
    );
  }
  if (j.task === "data" && typeof j.dir !== "string") {
    throw new Error(
      `job.dir must be the folder of JPEG files for a data job; found ${
        JSON.stringify(j.dir)
      }`,
    );
  }
  return j as unknown as Job;
}

/** A job with the model's config filled in (what the harness sends). */
export function withConfig(job: Job): Job {
  if (job.model === undefined) return job;
  return { ...job, config: modelEntry(HARNESS_MODELS[job.model]).config };
}

/** Median of a list (mean of the middle two for an even count). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : (s[(s.length - 1) >> 1] + s[s.length >> 1]) / 2;
}

/** A field of /proc/self/status in MiB (VmRSS, VmHWM); NaN where absent. */
export function procStatusMiB(field: "VmRSS" | "VmHWM"): number {
  try {
    const text = Deno.readTextFileSync("/proc/self/status");
    const m = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, "m").exec(text);
    return m === null ? NaN : Number(m[1]) / 1024;
  } catch {
    return NaN;
  }
}

async function runJob(job: Job): Promise<JobResult> {
  let threads = 1, detail = "";
  if (job.task !== "data") {
    const choice = await initBackend({ backend: job.backend });
    threads = choice.name === "wasm"
      ? wasmThreads()
      : choice.name === "webgpu"
      ? 0
      : 1;
    if (choice.name === "webgpu") detail = "GPU";
    if (choice.name === "webgpu" && job.submitBatch !== undefined) {
      tf.env().set("WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE", job.submitBatch);
    }
    if (choice.name === "webgpu" && job.matmul === "tokenlab") {
      installWebGpuProducts();
    }
  }
  const rssBefore = procStatusMiB("VmRSS");
  const step = await prepare(job);
  const seconds: number[] = [];
  const before = tf.memory().numTensors;
  for (let i = 0; i < job.warmup + job.steps; i++) {
    const t0 = performance.now();
    await step.run(i);
    const dt = (performance.now() - t0) / 1000;
    if (i >= job.warmup) seconds.push(dt);
    const leaked = tf.memory().numTensors - before;
    if (leaked !== 0) {
      throw new Error(
        `a ${job.task} step left ${leaked} tensor(s) behind; every step must dispose what it makes`,
      );
    }
  }
  const peakMiB = procStatusMiB("VmHWM") - rssBefore;
  const webgpu = tf.getBackend() === "webgpu"
    ? await probeWebGpu(step, job.warmup + job.steps)
    : undefined;
  step.dispose();
  return {
    ips: step.items / median(seconds),
    peakMiB,
    steps: seconds.length,
    seconds,
    threads,
    detail,
    ...(webgpu === undefined ? {} : { webgpu }),
  };
}

async function probeWebGpu(step: Step, i: number): Promise<WebGpuStepProbe> {
  const t0 = performance.now();
  const { counts } = await countWebGpu(() => step.run(i));
  const wallMs = performance.now() - t0;
  const info = await tf.profile(() => step.run(i + 1));
  let kernelMs = 0;
  for (const k of info.kernels) kernelMs += Number(k.kernelTimeMs) || 0;
  const device = (tf.backend() as unknown as { device: GPUDevice }).device;
  const timestamps = device.features.has("timestamp-query");
  return {
    counts,
    wallMs,
    kernelMs,
    kernels: info.kernels.length,
    timestamps,
    topKernels: timestamps
      ? kernelTimes(info.kernels, "shape").slice(0, TOP_KERNELS)
      : [],
  };
}

interface Step {
  /** Items (images or maps) per step. */
  items: number;
  run(i: number): Promise<void>;
  dispose(): void;
}

async function prepare(job: Job): Promise<Step> {
  switch (job.task) {
    case "train":
      return trainStep(job);
    case "eval":
      return evalStep(job);
    case "pool":
      return poolStep(job);
    case "data":
      return await dataStep(job);
  }
}

const LR = 1e-3, WEIGHT_DECAY = 0.05, DROP_PATH = 0.1;
const CLS_WEIGHT = 1, DENSE_WEIGHT = 0.5;

function trainStep(job: Job): Step {
  const B = job.batch;
  const model = createModel(HARNESS_MODELS[job.model!], {
    dropPathRate: DROP_PATH,
    auxHead: true,
  }, { seed: 0 });
  const params = model.spec.filter((p) => p.kind === "param").map((p) => ({
    name: p.name,
    variable: model.state.get(p.name)!,
    decay: p.decay,
  }));
  const optimizer = new AdamW(params, { lr: LR, weightDecay: WEIGHT_DECAY });
  const trainables = params.map((p) => p.variable);
  const paramOf = new Map(params.map((p) => [p.variable.name, p.name]));
  const mixer = new MixToken();
  const { imgSize: s, numClasses: C } = model.config;
  const N = model.grid ** 2;
  const images = tf.randomNormal([B, s, s, 3], 0, 1, "float32", 1);
  const clsTarget = tf.tidy(() =>
    tf.softmax(tf.randomNormal([B, C], 0, 2, "float32", 2))
  );
  const tokenTarget = tf.tidy(() =>
    tf.softmax(tf.randomNormal([B, N, C], 0, 2, "float32", 3))
  );
  return {
    items: B,
    async run(i) {
      const rng = new Rng(1000 + i);
      const owned: tf.Tensor[] = [];
      try {
        const { value, grads } = tf.variableGrads(() => {
          const out = model.forwardTrain(images, { rng, mixer });
          const parts = tokenLabelingLossParts(
            { cls: out.cls, aux: out.aux },
            { cls: clsTarget, tokens: tokenTarget },
            { clsWeight: CLS_WEIGHT, denseWeight: DENSE_WEIGHT, box: out.box },
          );
          return parts.loss;
        }, trainables);
        owned.push(value, ...Object.values(grads));
        const loss = (await value.data())[0];
        if (!Number.isFinite(loss)) {
          throw new Error(`the training loss is ${loss} at step ${i}`);
        }
        const byName = new Map<string, tf.Tensor>();
        for (const [vname, g] of Object.entries(grads)) {
          byName.set(paramOf.get(vname)!, g);
        }
        optimizer.apply(byName);
      } finally {
        tf.dispose(owned);
      }
    },
    dispose() {
      optimizer.dispose();
      model.dispose();
      tf.dispose([images, clsTarget, tokenTarget]);
    },
  };
}

function evalStep(job: Job): Step {
  const B = job.batch;
  const model = createModel(HARNESS_MODELS[job.model!], {
    dropPathRate: DROP_PATH,
    auxHead: true,
  }, { seed: 0 });
  const s = model.config.imgSize;
  const images = tf.randomNormal([B, s, s, 3], 0, 1, "float32", 1);
  return {
    items: B,
    async run() {
      const logits = model.predict(images);
      try {
        await logits.data();
      } finally {
        logits.dispose();
      }
    },
    dispose() {
      model.dispose();
      images.dispose();
    },
  };
}

function poolStep(job: Job): Step {
  const B = job.batch, C = POOL_CLASSES, S = POOL_TOKENS;
  const { maps, boxes, flips, labels } = poolingInputs(B);
  return {
    items: B,
    async run() {
      const out = await poolLabels(maps, boxes, {
        numClasses: C,
        tokenGrid: S,
        flips,
        labels,
      });
      // Wait for the last label without a 100 MB copy: training hands the
      // labels to the loss on the backend.
      const last = tf.slice(out.tokens, [B - 1, S * S - 1, C - 1], [1, 1, 1]);
      try {
        await last.data();
      } finally {
        tf.dispose([last, ...Object.values(out)]);
      }
    },
    dispose() {},
  };
}

async function dataStep(job: Job): Promise<Step> {
  const files: string[] = [];
  for await (const e of Deno.readDir(job.dir!)) {
    if (e.isFile && /\.jpe?g$/i.test(e.name)) {
      files.push(`${job.dir}/${e.name}`);
    }
  }
  files.sort();
  if (files.length === 0) {
    throw new Error(
      `the data job found no .jpg file in ${job.dir}; the harness writes them there first`,
    );
  }
  const bytes = await Promise.all(files.map((f) => Deno.readFile(f)));
  const rng = new Rng(7);
  const B = job.batch;
  return {
    items: B,
    async run() {
      for (let i = 0; i < B; i++) {
        const image = await decodeImage(bytes[i % bytes.length]);
        trainTransform({ image }, { size: 224 }, rng);
      }
    },
    dispose() {},
  };
}

if (import.meta.main) {
  let result: JobResult;
  try {
    if (Deno.args.length !== 1) {
      throw new Error(
        `expected one argument, the job as JSON; found ${Deno.args.length}. Usage: deno run -A tests/bench/e2e_worker.ts '{"task":"eval","model":"bench-64","batch":2,"steps":1,"warmup":0,"backend":"cpu","threads":1}'`,
      );
    }
    result = await runJob(parseJob(Deno.args[0]));
  } catch (e) {
    result = { error: e instanceof Error ? e.message : String(e) };
  }
  console.log(JSON.stringify(result));
  Deno.exit(result.error === undefined ? 0 : 1);
}
