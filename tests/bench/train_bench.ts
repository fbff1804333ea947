/**
 * One full training step of the registry model lvvit_xs32 (32 x 32 inputs,
 * patch 4, 8 x 8 tokens, D 128, depth 4, 10 classes) at batch 32 on the wasm
 * backend, side by side with the same model written in PyTorch
 * (tests/bench/train_torch_bench.py, run by Debian's /usr/bin/python3 in the
 * same process tree and the same `deno bench` run).
 *
 * A step is what `tokenlab train` does per batch, minus data loading and
 * label pooling: the training forward (drop path 0.1, batch statistics) with
 * the MixToken mixer, the token labeling loss (class token + dense, targets
 * are fixed random soft labels of the right shapes, the class target blended
 * by the box inside the loss), `tf.variableGrads`, reading the loss back (the
 * NaN guard) and AdamW (lr 1e-3, weight decay 0.05 on matrices and kernels
 * only). The "plain" variant is class-token training without aux head,
 * MixToken or dense loss (what `tokenlab train` runs on data without score
 * maps).
 *
 * PyTorch runs each step in a persistent worker process, one with a single
 * thread (OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and torch.set_num_threads)
 * and one with every core of this machine; the Deno bench times the round
 * trip (the pipe adds well under a millisecond), and the summary printed at
 * the end takes the worker's own step times. The summary gives images per
 * second from the median step of each row and the ratios torch / tfjs. The
 * machines are shared and noisy: read the ratios, not the absolute numbers.
 * Without torch (the `python3` on PATH has none) the torch rows are skipped
 * with the reason printed. Debian's python3-torch computes matmuls with
 * whatever libblas.so.3 is installed: the reference libblas3 (no OpenBLAS)
 * makes PyTorch over 10x slower here, and the bench warns when it sees it.
 *
 *     npx -y deno@2.9.6 bench -A tests/bench/train_bench.ts
 *
 * `TOKENLAB_TRAIN_BATCH=64` sets another batch, `TOKENLAB_TRAIN_STEPS=20`
 * the timed steps per row (default 10, after 2 warm-up steps), and
 * `TOKENLAB_TRAIN_PROFILE=1` first prints the most expensive tfjs kernels of
 * one step (tf.profile, by kernel and input shapes).
 */

import {
  AdamW,
  type BackendChoice,
  createModel,
  initBackend,
  type LvVit,
  MixToken,
  Rng,
  tf,
  tokenLabelingLossParts,
} from "tokenlab";

const MODEL = "lvvit_xs32";
const B = Number(Deno.env.get("TOKENLAB_TRAIN_BATCH") ?? 32);
const STEPS = Number(Deno.env.get("TOKENLAB_TRAIN_STEPS") ?? 10);
const WARMUP = 2;
const LR = 1e-3, WEIGHT_DECAY = 0.05, DROP_PATH = 0.1;

/** The two kinds of step, named as the torch worker names them. */
type Variant = "full" | "plain";
const VARIANTS: Record<Variant, string> = {
  full: "MixToken + token labeling (cls + dense)",
  plain: "plain class token (no aux head, no MixToken)",
};

/** One model, its optimizer and fixed inputs; `step()` is one training step. */
class TfjsTrainer {
  readonly model: LvVit;
  readonly optimizer: AdamW;
  readonly #trainables: tf.Variable[];
  readonly #paramOf: Map<string, string>;
  readonly #mixer: MixToken | null;
  readonly #images: tf.Tensor4D;
  readonly #clsTarget: tf.Tensor2D;
  readonly #tokenTarget: tf.Tensor3D | null;
  #step = 0;

  constructor(variant: Variant) {
    const tokenLabel = variant === "full";
    this.model = createModel(MODEL, {
      dropPathRate: DROP_PATH,
      auxHead: tokenLabel,
    }, { seed: 0 });
    const params = this.model.spec.filter((p) => p.kind === "param").map((
      p,
    ) => ({
      name: p.name,
      variable: this.model.state.get(p.name)!,
      decay: p.decay,
    }));
    this.optimizer = new AdamW(params, {
      lr: LR,
      weightDecay: WEIGHT_DECAY,
    });
    this.#trainables = params.map((p) => p.variable);
    this.#paramOf = new Map(params.map((p) => [p.variable.name, p.name]));
    this.#mixer = tokenLabel ? new MixToken() : null;
    const { imgSize: s, numClasses: C } = this.model.config;
    const N = this.model.grid ** 2;
    this.#images = tf.randomNormal([B, s, s, 3], 0, 1, "float32", 1);
    this.#clsTarget = tf.tidy(() =>
      tf.softmax(tf.randomNormal([B, C], 0, 2, "float32", 2))
    );
    this.#tokenTarget = tokenLabel
      ? tf.tidy(() =>
        tf.softmax(tf.randomNormal([B, N, C], 0, 2, "float32", 3))
      )
      : null;
  }

  /** One training step, as lib/train/_train_step.ts trainStep; returns the loss. */
  async step(): Promise<number> {
    const rng = new Rng(1000 + this.#step++);
    const owned: tf.Tensor[] = [];
    try {
      let kept: tf.Tensor[] = [];
      const { value, grads } = tf.variableGrads(() => {
        const out = this.model.forwardTrain(this.#images, {
          rng,
          mixer: this.#mixer ?? undefined,
        });
        const parts = tokenLabelingLossParts(
          { cls: out.cls, aux: out.aux },
          { cls: this.#clsTarget, tokens: this.#tokenTarget },
          { clsWeight: 1, denseWeight: 1, box: out.box },
        );
        kept = [tf.keep(parts.cls), tf.keep(parts.dense)];
        return parts.loss;
      }, this.#trainables);
      owned.push(value, ...Object.values(grads), ...kept);
      const stacked = tf.stack([value, ...kept]);
      owned.push(stacked);
      const loss = (await stacked.data())[0];
      if (!Number.isFinite(loss)) throw new Error(`the loss is ${loss}`);
      const byName = new Map<string, tf.Tensor>();
      for (const [vname, g] of Object.entries(grads)) {
        byName.set(this.#paramOf.get(vname)!, g);
      }
      this.optimizer.apply(byName);
      return loss;
    } finally {
      tf.dispose(owned);
    }
  }

  dispose(): void {
    this.optimizer.dispose();
    this.model.dispose();
    tf.dispose([this.#images, this.#clsTarget]);
    this.#tokenTarget?.dispose();
  }
}

/** Reads a child's output line by line. */
class LineReader {
  readonly #reader: ReadableStreamDefaultReader<string>;
  #buffer = "";

  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  }

  /** The next line, or null at the end of the stream. */
  async next(): Promise<string | null> {
    while (true) {
      const at = this.#buffer.indexOf("\n");
      if (at >= 0) {
        const line = this.#buffer.slice(0, at);
        this.#buffer = this.#buffer.slice(at + 1);
        return line;
      }
      const { value, done } = await this.#reader.read();
      if (done) return null;
      this.#buffer += value;
    }
  }
}

/** What a torch worker says about itself when it starts. */
interface TorchInfo {
  torch: string;
  threads: number;
  default_threads: number;
  all_threads: number;
  blas: string;
  reference_blas: boolean;
}

/**
 * A PyTorch process that runs one training step per request, with a fixed
 * thread count (set before torch loads, so that OpenMP and the BLAS agree).
 */
class TorchWorker {
  readonly info: TorchInfo;
  readonly #child: Deno.ChildProcess;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly #lines: LineReader;

  private constructor(
    info: TorchInfo,
    child: Deno.ChildProcess,
    lines: LineReader,
  ) {
    this.info = info;
    this.#child = child;
    this.#stdin = child.stdin.getWriter();
    this.#lines = lines;
  }

  /**
   * Starts a worker with `threads` threads (0: torch's default count, then
   * every core); answers why when torch cannot run here.
   */
  static async start(threads: number): Promise<TorchWorker | string> {
    const env: Record<string, string> = threads > 0
      ? {
        OMP_NUM_THREADS: String(threads),
        OPENBLAS_NUM_THREADS: String(threads),
        MKL_NUM_THREADS: String(threads),
      }
      : {};
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(PYTHON, {
        args: [
          TORCH_SCRIPT,
          "--serve",
          "--batch",
          String(B),
          "--threads",
          String(threads),
        ],
        env,
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    } catch (e) {
      return `${PYTHON} could not start: ${(e as Error).message}`;
    }
    const errors = new Response(child.stderr).text();
    const lines = new LineReader(child.stdout);
    const hello = await lines.next();
    if (hello === null || !hello.startsWith("{")) {
      await child.status;
      const why = (await errors).trim().split("\n").at(-1);
      return why || `the worker said ${JSON.stringify(hello)}`;
    }
    return new TorchWorker(JSON.parse(hello) as TorchInfo, child, lines);
  }

  /** One training step; the worker's own step time in seconds. */
  async step(variant: Variant): Promise<number> {
    await this.#stdin.write(new TextEncoder().encode(`step ${variant}\n`));
    const line = await this.#lines.next();
    const seconds = Number(line?.split(" ")[0]);
    if (line === null || !Number.isFinite(seconds)) {
      throw new Error(
        `the torch worker (${this.info.threads} threads) answered ${
          JSON.stringify(line)
        } instead of "<seconds> <loss>"; run ${PYTHON} ${TORCH_SCRIPT} by hand to see its error`,
      );
    }
    return seconds;
  }

  /** Ends the worker. */
  close(): void {
    try {
      this.#child.kill();
    } catch { /* already gone */ }
  }
}

const root = new URL("../../", import.meta.url).pathname;
const PYTHON = "/usr/bin/python3"; // Debian's, with python3-torch
const TORCH_SCRIPT = `${root}tests/bench/train_torch_bench.py`;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : (s[(s.length - 1) >> 1] + s[s.length >> 1]) / 2;
};

// ---- set-up: the backend, the torch workers ----

let choice: BackendChoice | null = null;
let wasmProblem = "";
try {
  choice = await initBackend({ backend: "wasm" });
} catch (e) {
  wasmProblem = (e as Error).message;
}
const workers: { label: string; worker: TorchWorker }[] = [];
const one = await TorchWorker.start(1);
if (typeof one === "string") {
  console.log(`torch reference skipped: ${one}`);
} else {
  workers.push({ label: "torch 1 thread", worker: one });
  // Started without thread variables, so that it sees torch's default.
  const all = await TorchWorker.start(0);
  const i = typeof all === "string" ? one.info : all.info;
  if (typeof all !== "string" && all.info.threads > 1) {
    workers.push({ label: `torch ${all.info.threads} threads`, worker: all });
  } else if (typeof all !== "string") all.close();
  console.log(
    `torch ${i.torch}: ${i.all_threads} core(s), torch's default ${i.default_threads} thread(s); BLAS ${i.blas}`,
  );
  if (i.reference_blas) {
    console.log(
      "WARNING: this torch computes its matmuls with Debian's reference BLAS (libblas3, a few GFLOP/s), so its numbers are not PyTorch's speed. " +
        "Install libopenblas0-pthread, or point LD_LIBRARY_PATH at an unpacked copy of its openblas-pthread/ folder, for a fair reference.",
    );
  }
}
globalThis.addEventListener("unload", () => {
  for (const w of workers) w.worker.close();
});
if (choice !== null) {
  console.log(
    `tfjs ${tf.version_core} on ${choice.name} with ${choice.threads} thread(s)`,
  );
} else {
  console.log(`tfjs wasm skipped: ${wasmProblem}`);
}

// ---- optional: where a tfjs step spends its time ----

if (choice !== null && Deno.env.get("TOKENLAB_TRAIN_PROFILE") === "1") {
  const trainer = new TfjsTrainer("full");
  await trainer.step(); // warm-up
  const info = await tf.profile(async () => {
    await trainer.step();
  });
  trainer.dispose();
  // By kernel and input shapes: the same kernel costs very differently on
  // the attention's small batched matrices and on the big linear layers.
  const byKernel = new Map<string, { ms: number; calls: number }>();
  let total = 0;
  for (const k of info.kernels) {
    const ms = Number(k.kernelTimeMs) || 0;
    const key = `${k.name} ${
      k.inputShapes.filter((x) => x !== null).map((x) => `[${x}]`).join(" ")
    }`;
    const e = byKernel.get(key) ?? { ms: 0, calls: 0 };
    e.ms += ms;
    e.calls++;
    byKernel.set(key, e);
    total += ms;
  }
  console.log(
    `tfjs kernels of one 'full' step: ${info.kernels.length} calls, ${
      total.toFixed(0)
    } ms in kernels (wrapped kernels count twice); the most expensive:`,
  );
  const top = [...byKernel].sort((a, b) => b[1].ms - a[1].ms).slice(0, 12);
  for (const [key, e] of top) {
    console.log(
      `  ${e.ms.toFixed(0).padStart(5)} ms ${
        (100 * e.ms / total).toFixed(1).padStart(5)
      }% ${String(e.calls).padStart(3)}x ${key}`,
    );
  }
}

// ---- the benches ----

/** Step times in seconds, by variant and row label. */
const times = new Map<string, number[]>();
const record = (variant: Variant, label: string, seconds: number) => {
  const key = `${variant}\t${label}`;
  if (!times.has(key)) times.set(key, []);
  times.get(key)!.push(seconds);
};
const tfjsLabel = `tfjs ${choice?.name ?? "wasm"} ${
  choice?.threads ?? 1
} thread`;

const trainers: TfjsTrainer[] = [];
globalThis.addEventListener("unload", () => {
  for (const t of trainers) t.dispose();
});

for (const variant of Object.keys(VARIANTS) as Variant[]) {
  const group = `${MODEL} train step B=${B}: ${VARIANTS[variant]}`;
  let trainer: TfjsTrainer | null = null;
  Deno.bench({
    name: `${group} [${tfjsLabel}]`,
    group,
    baseline: true,
    ignore: choice === null,
    n: STEPS,
    warmup: WARMUP,
    async fn(t) {
      if (trainer === null) {
        trainer = new TfjsTrainer(variant);
        trainers.push(trainer);
      }
      const before = tf.memory().numTensors;
      t.start();
      const t0 = performance.now();
      await trainer.step();
      const seconds = (performance.now() - t0) / 1000;
      t.end();
      record(variant, tfjsLabel, seconds);
      const leaked = tf.memory().numTensors - before;
      if (leaked !== 0) {
        throw new Error(
          `a training step left ${leaked} tensor(s) behind; every step must dispose what it makes`,
        );
      }
    },
  });
  for (const { label, worker } of workers) {
    Deno.bench({
      name: `${group} [${label}]`,
      group,
      n: STEPS,
      warmup: WARMUP,
      async fn() {
        record(variant, label, await worker.step(variant));
      },
    });
  }
}

// The summary: images per second from the median step, and the ratios.
globalThis.addEventListener("unload", () => {
  if (times.size === 0) return;
  // Deno's reporter may still be writing the last row: let it finish first.
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
  const labels = [tfjsLabel, ...workers.map((w) => w.label)];
  const header = [
    "step",
    ...labels.map((l) => `${l} img/s`),
    ...workers.map((w) => `${w.label} / tfjs`),
  ];
  const rows = (Object.keys(VARIANTS) as Variant[]).map((variant) => {
    // Deno runs the warm-up iterations through fn too: drop them.
    const ips = labels.map((l) =>
      B / median((times.get(`${variant}\t${l}`) ?? []).slice(WARMUP))
    );
    return [
      variant,
      ...ips.map((x) => Number.isNaN(x) ? "-" : x.toFixed(1)),
      ...ips.slice(1).map((x) =>
        Number.isNaN(x) || Number.isNaN(ips[0])
          ? "-"
          : `${(x / ips[0]).toFixed(2)}x`
      ),
    ];
  });
  const widths = header.map((h, i) =>
    Math.max(h.length, ...rows.map((r) => r[i].length))
  );
  const line = (cells: string[]) =>
    `| ${
      cells.map((c, i) => i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))
        .join(" | ")
    } |`;
  console.log(
    `\n${MODEL} training step, batch ${B}, median of ${STEPS} steps (full: ${VARIANTS.full}; plain: ${VARIANTS.plain})`,
  );
  console.log(line(header));
  console.log(
    `|${
      widths.map((w, i) =>
        i === 0 ? `-${"-".repeat(w)}-` : ` ${"-".repeat(w - 1)}: `
      ).join("|")
    }|`,
  );
  for (const r of rows) console.log(line(r));
});
