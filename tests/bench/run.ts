/**
 * `deno task bench`: the end-to-end benchmarks of tokenlab against PyTorch on
 * the same machine in the same run, written to reports/bench.{json,md,html}.
 *
 *     deno run -A tests/bench/run.ts [--scale quick|full] [--gpu]
 *       [--backends wasm,cpu,webgpu] [--only train,eval,memory,pooling,data,micro]
 *       [--no-torch] [--out reports]
 *
 * On webgpu every job also counts one step's calls to the device
 * (dispatches, submits, uploads, readbacks, buffers, pipelines) and
 * profiles one for its kernels' GPU time, reported beside the throughput.
 * `--gpu` is the mode for a machine with a CUDA GPU: the jobs that matter
 * there (the issue's targets at batch 64) on webgpu, and PyTorch on CUDA in
 * float32 with TF32 off (`python3`, or `TOKENLAB_PYTHON`) as the reference.
 * `TOKENLAB_BENCH_WORKER` names a bundled worker (a `.js` file made with
 * `deno bundle`) for machines without the npm packages.
 *
 * Every end-to-end job runs in a child process: ours is
 * tests/bench/e2e_worker.ts, PyTorch's tests/bench/torch_reference.py, back
 * to back for the same job (same moment, same machine load), once per
 * PyTorch flavour: Debian's torch with the BLAS it loads, and, when that is
 * Debian's reference libblas3 (about 10x slower at matmuls than OpenBLAS),
 * also the same torch with OpenBLAS's libblas.so.3 first on
 * `LD_LIBRARY_PATH` (found in `TOKENLAB_OPENBLAS_DIR`, in
 * data/cache/openblas, or fetched there with `apt-get download
 * libopenblas0-pthread` + `dpkg -x`, without touching the system).
 *
 * @module
 */

import { existsSync } from "node:fs";
import { availableBackends, modelTable, TFJS_VERSION } from "tokenlab";
import { nativeBlasInfo } from "tokenlab/kernels/native_blas.ts";
import {
  type BenchMeta,
  type BenchRecord,
  ratioOf,
  type TorchRef,
} from "./_record.ts";
import { type Job, type JobResult, withConfig } from "./e2e_worker.ts";
import { markdownTables, writeReport } from "./_report.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const PYTHON = "/usr/bin/python3";
const WORKER = `${ROOT}tests/bench/e2e_worker.ts`;
/**
 * PyTorch's side. Beside this file in a checkout; from the working folder
 * when this file runs as a bundle (`deno bundle`, elsewhere).
 */
const TORCH_SCRIPT = existsSync(`${ROOT}tests/bench/torch_reference.py`)
  ? `${ROOT}tests/bench/torch_reference.py`
  : `${Deno.cwd()}/tests/bench/torch_reference.py`;
const CHILD_TIMEOUT_MS = 10 * 60 * 1000;

/** The sections `--only` selects. */
export const SECTIONS = [
  "train",
  "eval",
  "memory",
  "pooling",
  "data",
  "micro",
] as const;
/** One section. */
export type Section = typeof SECTIONS[number];
const BACKEND_NAMES = ["wasm", "cpu", "webgpu"];

/** Parsed command line. */
export interface Options {
  scale: "quick" | "full";
  /** Null: every available backend. */
  backends: string[] | null;
  only: Section[];
  torch: boolean;
  out: string;
  help: boolean;
  /** The GPU mode: webgpu jobs at the targets' batches, torch on CUDA. */
  gpu: boolean;
}

/** A command-line mistake: the message says what was expected and found. */
export class UsageError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** The `--help` text. */
export const USAGE =
  `deno task bench [options]   (deno run -A tests/bench/run.ts)

End-to-end benchmarks of tokenlab against PyTorch on this machine, written to
<out>/bench.json, <out>/bench.md and <out>/bench.html.

  --scale quick|full     quick (default): a short run (about 15 min on 2 cores);
                         full: more steps, batch 128, every model on every backend
  --backends a,b         backends among wasm, cpu, webgpu (default: every available)
  --only a,b             sections among ${SECTIONS.join(", ")} (default: all)
  --gpu                  on a machine with a CUDA GPU: the webgpu jobs of the
                         targets (bench-64 and lvvit_s at batch 64) against
                         PyTorch on CUDA, float32, TF32 off
  --no-torch             skip PyTorch (records keep pytorch null)
  --out DIR              output folder (default reports)
  --help                 this text`;

function list<T extends string>(
  value: string,
  allowed: readonly T[],
  flag: string,
): T[] {
  const items = value.split(",").map((s) => s.trim().toLowerCase()).filter(
    (s) => s !== "",
  );
  if (items.length === 0) {
    throw new UsageError(
      `${flag} needs a comma-separated list among ${
        allowed.join(", ")
      }; found an empty value`,
    );
  }
  for (const i of items) {
    if (!(allowed as readonly string[]).includes(i)) {
      throw new UsageError(
        `${flag}: unknown "${i}"; expected a comma-separated list among ${
          allowed.join(", ")
        }`,
      );
    }
  }
  return [...new Set(items)] as T[];
}

/** Parses the command line (`--flag value` or `--flag=value`). */
export function parseArgs(args: readonly string[]): Options {
  const o: Options = {
    scale: "quick",
    backends: null,
    only: [...SECTIONS],
    torch: true,
    out: "reports",
    help: false,
    gpu: false,
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const eq = arg.indexOf("=");
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const takesValue = ["--scale", "--backends", "--only", "--out"].includes(
      flag,
    );
    let value = "";
    if (takesValue) {
      if (eq > 0) value = arg.slice(eq + 1);
      else if (i + 1 < args.length && !args[i + 1].startsWith("--")) {
        value = args[++i];
      } else {
        throw new UsageError(
          `${flag} needs a value (e.g. ${flag} ${
            flag === "--scale"
              ? "quick"
              : flag === "--out"
              ? "reports"
              : flag === "--only"
              ? "train,eval"
              : "wasm"
          }); found none`,
        );
      }
    } else if (eq > 0) {
      throw new UsageError(`${flag} takes no value; found "${arg}"`);
    }
    switch (flag) {
      case "--scale":
        if (value !== "quick" && value !== "full") {
          throw new UsageError(
            `--scale must be "quick" or "full"; found "${value}"`,
          );
        }
        o.scale = value;
        break;
      case "--backends":
        o.backends = list(value, BACKEND_NAMES, "--backends");
        break;
      case "--only":
        o.only = list(value, SECTIONS, "--only");
        break;
      case "--out":
        o.out = value;
        break;
      case "--gpu":
        o.gpu = true;
        break;
      case "--no-torch":
        o.torch = false;
        break;
      case "--help":
      case "-h":
        o.help = true;
        break;
      default:
        throw new UsageError(
          `unknown option "${arg}"; the options are --scale, --gpu, --backends, --only, --no-torch, --out, --help (see --help)`,
        );
    }
  }
  return o;
}

// ---- the plan ----

/** One end-to-end job and what to record from it. */
export interface Planned {
  job: Job;
  /** Record the throughput (its section's metric). */
  ips: boolean;
  /** Record the peak memory ("peak MiB"). */
  peak: boolean;
  /** Flavours to skip (by "reference" flavour only), with the reason. */
  skipReferenceBlas?: string;
  /** Said in every record of the job. */
  note: string;
}

/** A figure not measured, with the reason (becomes a record with nulls). */
export interface Skipped {
  config: string;
  backend: string;
  metric: string;
  batch: number | null;
  note: string;
}

/** Name of a job's figure in the records ("bench-64", "lvvit_s@224", ...). */
export function configName(job: Job): string {
  switch (job.task) {
    case "train":
    case "eval":
      return (job.model === "bench-64" ? "bench-64" : `${job.model}@224`) +
        (job.submitBatch === undefined
          ? ""
          : ` (submit every ${job.submitBatch})`) +
        (job.matmul === "tokenlab" ? " (tokenlab matmul)" : "");
    case "pool":
      return "poolLabels k5 15x15 C1000 -> 14x14";
    case "data":
      return "JPEG 500x375 -> train transform 224";
  }
}

/** The metric of a job's throughput. */
export function metricOf(task: Job["task"]): string {
  return {
    train: "train img/s",
    eval: "eval img/s",
    pool: "maps/s",
    data: "data img/s",
  }[task];
}

/**
 * The jobs of `--gpu`: the issue's targets (bench-64 training, lvvit_s
 * evaluation and training, all at batch 64) and smaller batches beside
 * them on webgpu; on wasm, bench-64 training at batch 64 only (the CPU
 * figure the GPU must beat tenfold).
 */
export function gpuJobs(
  scale: "quick" | "full",
  backends: readonly string[],
  only: readonly Section[],
): Planned[] {
  const [w, s] = scale === "quick" ? [2, 5] : [3, 20];
  const note = `${w} warm-up + ${s} timed step(s)`;
  const jobs: Planned[] = [];
  const add = (
    task: "train" | "eval",
    model: string,
    batch: number,
    backend: string,
    variant: Pick<Job, "submitBatch" | "matmul"> = {},
  ) => {
    if (!only.includes(task)) return;
    const job: Job = {
      task,
      model,
      batch,
      steps: s,
      warmup: w,
      backend,
      threads: 0,
      ...variant,
    };
    const notes = [note];
    if (variant.submitBatch !== undefined) {
      notes.push(
        `tfjs submits every ${variant.submitBatch} dispatch(es) (the kit's default: 128, tfjs's: 15)`,
      );
    }
    if (variant.matmul === "tokenlab") {
      notes.push(
        "the kit's tiled WGSL products (matmul, linear layers, convolution and its input gradient) in place of tfjs's",
      );
    }
    jobs.push({ job, ips: true, peak: false, note: notes.join("; ") });
  };
  // The targets first (a short device session may end before the rest).
  if (backends.includes("webgpu")) {
    add("train", "bench-64", 64, "webgpu");
    add("eval", "lvvit_s", 64, "webgpu");
    add("train", "lvvit_s", 64, "webgpu");
  }
  if (backends.includes("wasm")) add("train", "bench-64", 64, "wasm");
  if (backends.includes("webgpu")) {
    // Whether the time outside the kernels goes with the number of queue
    // submits: one per dispatch, tfjs's 15, and one per step (the kit's
    // default is 128: DEFAULT_WEBGPU_SUBMIT_BATCH).
    for (const n of [1, 15, 1000]) {
      add("train", "bench-64", 64, "webgpu", { submitBatch: n });
    }
    // The kit's tiled products (webgpu_matmul.ts, webgpu_conv.ts), not
    // installed by default until measured here.
    add("train", "bench-64", 64, "webgpu", { matmul: "tokenlab" });
    add("eval", "lvvit_s", 64, "webgpu", { matmul: "tokenlab" });
    add("train", "lvvit_s", 64, "webgpu", { matmul: "tokenlab" });
    add("eval", "bench-64", 64, "webgpu");
    add("train", "bench-64", 16, "webgpu");
    add("train", "lvvit_s", 16, "webgpu");
  }
  return jobs;
}

const REF_SKIP =
  "reference-BLAS torch not run at quick scale (about 10x slower: minutes per job); --scale full runs it";

/** The jobs of a run. */
export function planJobs(
  scale: "quick" | "full",
  backends: readonly string[],
  only: readonly Section[],
  gpu = false,
): { jobs: Planned[]; skipped: Skipped[] } {
  if (gpu) return { jobs: gpuJobs(scale, backends, only), skipped: [] };
  const jobs: Planned[] = [];
  const skipped: Skipped[] = [];
  const quick = scale === "quick";
  const want = (s: Section) => only.includes(s);
  const e2e = (
    task: "train" | "eval",
    model: string,
    batch: number,
    backend: string,
    steps: number,
    warmup: number,
    extra: Partial<Planned> = {},
  ) => {
    const ips = want(task);
    const peak = extra.peak ?? false;
    if (!ips && !peak) return;
    jobs.push({
      job: { task, model, batch, steps, warmup, backend, threads: 0 },
      ips,
      peak,
      note: extra.note ?? "",
      skipReferenceBlas: extra.skipReferenceBlas,
    });
  };
  const stepsNote = (w: number, s: number) =>
    `${w} warm-up + ${s} timed step(s)`;
  for (const backend of backends) {
    const full = backend === "wasm" || !quick;
    if (full) {
      const [w, s] = quick ? [1, 3] : [2, 10];
      const trainBatches = quick ? [8, 16, 32, 64] : [8, 16, 32, 64, 128];
      for (const b of trainBatches) {
        e2e("train", "bench-64", b, backend, s, w, {
          peak: want("memory") && b === 64,
          note: stepsNote(w, s),
          skipReferenceBlas: quick && b > 16 ? REF_SKIP : undefined,
        });
      }
      for (const b of [8, 16, 32, 64, 128]) {
        e2e("eval", "bench-64", b, backend, s, w, {
          note: stepsNote(w, s),
          skipReferenceBlas: quick && b > 32 ? REF_SKIP : undefined,
        });
      }
      const [bw, bs] = quick ? [1, 2] : [1, 5];
      for (const model of ["lvvit_t", "lvvit_s"]) {
        const heavy = quick ? REF_SKIP : undefined;
        e2e("eval", model, 8, backend, bs, bw, {
          note: stepsNote(bw, bs),
          skipReferenceBlas: heavy,
        });
        e2e("train", model, 8, backend, bs, bw, {
          peak: want("memory"),
          note: stepsNote(bw, bs),
          skipReferenceBlas: heavy,
        });
      }
    } else {
      e2e("eval", "bench-64", 8, backend, 2, 1, { note: stepsNote(1, 2) });
      const why =
        `skipped on ${backend} at quick scale (minutes per step here); run with --scale full --backends ${backend}`;
      if (want("train")) {
        skipped.push({
          config: "bench-64",
          backend,
          metric: metricOf("train"),
          batch: 8,
          note: why,
        });
      }
      for (const model of ["lvvit_t", "lvvit_s"]) {
        for (const task of ["eval", "train"] as const) {
          if (!want(task)) continue;
          skipped.push({
            config: `${model}@224`,
            backend,
            metric: metricOf(task),
            batch: 8,
            note: why,
          });
        }
      }
    }
    if (want("pooling")) {
      const slow = backend !== "wasm";
      const [w, s] = quick ? [1, slow ? 2 : 5] : [2, slow ? 3 : 10];
      jobs.push({
        job: {
          task: "pool",
          batch: 128,
          steps: s,
          warmup: w,
          backend,
          threads: 0,
        },
        ips: true,
        peak: false,
        note: `batch 128; ${stepsNote(w, s)}`,
      });
    }
  }
  if (want("data") && backends.length > 0) {
    // The pipeline is JavaScript on the CPU: the backend does not matter.
    jobs.push({
      job: {
        task: "data",
        batch: 32,
        steps: quick ? 3 : 10,
        warmup: 1,
        backend: backends.includes("wasm") ? "wasm" : backends[0],
        threads: 1,
      },
      ips: true,
      peak: false,
      note:
        "decode + official train transform at 224, one thread (torch: Pillow + torchvision, RandAugment(2, 9))",
    });
  }
  return { jobs, skipped };
}

// ---- records ----

/** One PyTorch flavour's answer to a job. */
export interface TorchAnswer {
  ref: TorchRef;
  /** Null: not run (see `why`). */
  result: JobResult | null;
  why: string;
}

function shortName(reference: string): string {
  const plus = reference.indexOf(" + ");
  return plus >= 0 ? reference.slice(plus + 3) : reference;
}

/** Whether a flavour is the reference BLAS (its ratios are not fair). */
export function isReferenceBlas(ref: TorchRef): boolean {
  return /reference/i.test(ref.reference);
}

function num(x: unknown): number | null {
  return typeof x === "number" && Number.isFinite(x) ? x : null;
}

/**
 * The records of one job: for each metric, one record per torch flavour
 * (the same `ours`), or one with pytorch null without torch.
 */
export function buildRecords(
  planned: Planned,
  ours: JobResult,
  answers: readonly TorchAnswer[],
  threads: number,
  date: string,
  torchNote = "",
): BenchRecord[] {
  const { job } = planned;
  const metrics: { metric: string; key: "ips" | "peakMiB"; hib: boolean }[] =
    [];
  if (planned.ips) {
    metrics.push({ metric: metricOf(job.task), key: "ips", hib: true });
  }
  if (planned.peak) {
    metrics.push({ metric: "peak MiB", key: "peakMiB", hib: false });
  }
  const out: BenchRecord[] = [];
  const base = (extra: string[]) =>
    [
      planned.note,
      job.backend === "webgpu"
        ? answers.some((a) => a.ref.device === "cuda")
          ? "GPU; torch on CUDA"
          : "GPU; torch on every core"
        : "",
      ...extra,
    ].filter((s) => s !== "").join("; ");
  for (const m of metrics) {
    const oursValue = ours.error === undefined ? num(ours[m.key]) : null;
    const oursWhy = ours.error !== undefined
      ? `ours failed: ${ours.error}`
      : "";
    const probe = m.key === "ips" ? ours.webgpu : undefined;
    const common = {
      config: configName(job),
      kind: "e2e" as const,
      backend: job.backend,
      metric: m.metric,
      batch: job.task === "data" ? null : job.batch,
      ours: oursValue,
      higherIsBetter: m.hib,
      threads,
      date,
      ...(probe === undefined ? {} : {
        webgpu: {
          dispatches: probe.counts.dispatches,
          submits: probe.counts.submits,
          uploads: probe.counts.uploads,
          readbacks: probe.counts.readbacks,
          buffersCreated: probe.counts.buffersCreated,
          pipelines: probe.counts.pipelines,
          submitMs: probe.counts.submitMs,
          wallMs: probe.wallMs,
          kernelMs: probe.kernelMs,
          readbackWaitMs: probe.counts.readbackWaitMs,
          callMs: probe.counts.callMs,
          topKernels: probe.topKernels,
        },
      }),
    };
    if (answers.length === 0) {
      out.push({
        ...common,
        pytorch: null,
        reference: "",
        ratio: null,
        note: base([oursWhy, torchNote || "PyTorch not run"]),
      });
      continue;
    }
    for (const a of answers) {
      const r = a.result;
      const theirs = r !== null && r.error === undefined ? num(r[m.key]) : null;
      const why = r === null
        ? a.why
        : r.error !== undefined
        ? `torch failed: ${r.error}`
        : "";
      out.push({
        ...common,
        pytorch: theirs,
        reference: a.ref.reference,
        ratio: ratioOf(oursValue, theirs),
        note: base([
          oursWhy,
          why,
          isReferenceBlas(a.ref)
            ? `${shortName(a.ref.reference)} ratio: not a fair reference`
            : "",
        ]),
      });
    }
  }
  return out;
}

/** Records (nulls and the reason) for a figure not measured. */
export function skippedRecords(
  s: Skipped,
  refs: readonly TorchRef[],
  date: string,
): BenchRecord[] {
  const flavours = refs.length === 0 ? [""] : refs.map((r) => r.reference);
  return flavours.map((reference) => ({
    config: s.config,
    kind: "e2e",
    backend: s.backend,
    metric: s.metric,
    batch: s.batch,
    ours: null,
    pytorch: null,
    reference,
    ratio: null,
    higherIsBetter: s.metric !== "peak MiB",
    threads: 0,
    date,
    note: s.note,
  }));
}

// ---- child processes ----

/** The last line of a child's stdout as a JobResult, or an error result. */
export function parseResultLine(
  stdout: string,
  stderr: string,
  code: number,
): JobResult {
  const lines = stdout.trim().split("\n").filter((l) => l.trim() !== "");
  const last = lines.at(-1) ?? "";
  if (last.startsWith("{")) {
    try {
      const r = JSON.parse(last);
      if (typeof r === "object" && r !== null) return r as JobResult;
    } catch { /* below */ }
  }
  const why = stderr.trim().split("\n").filter((l) => !/^npm warn/i.test(l))
    .at(-1);
  return {
    error: `exit code ${code}, no result line${why ? `: ${why}` : ""}`,
  };
}

async function runChild(
  cmd: string,
  args: string[],
  env: Record<string, string>,
  timeoutMs = CHILD_TIMEOUT_MS,
): Promise<JobResult> {
  const started = performance.now();
  const signal = AbortSignal.timeout(timeoutMs);
  const late = `${TIMED_OUT} after ${(timeoutMs / 60000).toFixed(1)} min`;
  try {
    const out = await new Deno.Command(cmd, {
      args,
      env,
      stdout: "piped",
      stderr: "piped",
      signal,
    }).output();
    if (signal.aborted) return { error: `${late} (killed)` };
    const dec = new TextDecoder();
    return parseResultLine(
      dec.decode(out.stdout),
      dec.decode(out.stderr),
      out.code,
    );
  } catch (e) {
    const secs = (performance.now() - started) / 1000;
    return {
      error: secs * 1000 >= timeoutMs - 1000
        ? late
        : `could not run ${cmd}: ${(e as Error).message}`,
    };
  }
}

/** How a child's error begins when it ran out of time (then killed). */
export const TIMED_OUT = "timed out";

/**
 * Runs our side of a job in a child process (the worker, or
 * `TOKENLAB_BENCH_WORKER`), killed after `timeoutMs` (default 10 min).
 */
export function ours(job: Job, timeoutMs?: number): Promise<JobResult> {
  return runChild(
    Deno.execPath(),
    [
      "run",
      "-A",
      Deno.env.get("TOKENLAB_BENCH_WORKER") || WORKER,
      JSON.stringify(job),
    ],
    {},
    timeoutMs,
  );
}

/**
 * Runs PyTorch's side of a job in a child process, killed after
 * `timeoutMs` (default 10 min).
 */
export function theirs(
  job: Job,
  ref: TorchRef,
  timeoutMs?: number,
): Promise<JobResult> {
  const t = String(job.threads);
  const sent = ref.device === undefined ? job : { ...job, device: ref.device };
  return runChild(ref.python, [TORCH_SCRIPT, JSON.stringify(sent)], {
    ...ref.env,
    OMP_NUM_THREADS: t,
    OPENBLAS_NUM_THREADS: t,
    MKL_NUM_THREADS: t,
  }, timeoutMs);
}

// ---- PyTorch flavours ----

interface TorchInfo {
  torch: string;
  blas: string;
  reference_blas: boolean;
  /** The CUDA device's name, when asked about cuda. */
  cuda?: string;
}

async function torchInfo(
  python: string,
  env: Record<string, string>,
  device = "cpu",
): Promise<TorchInfo | string> {
  const r = await runChild(python, [
    TORCH_SCRIPT,
    JSON.stringify({ task: "info", device }),
  ], env);
  if (r.error !== undefined) return r.error;
  return r as unknown as TorchInfo;
}

async function isDir(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false;
  }
}

const OPENBLAS_SUBDIR = "usr/lib/x86_64-linux-gnu/openblas-pthread";

/** Finds (or fetches into data/cache/openblas) OpenBLAS's pthread folder. */
async function openBlasDir(): Promise<string | string[]> {
  const tried: string[] = [];
  const env = Deno.env.get("TOKENLAB_OPENBLAS_DIR");
  if (env) {
    if (await isDir(env)) return env;
    tried.push(`TOKENLAB_OPENBLAS_DIR=${env} is not a folder`);
  }
  const cache = `${ROOT}data/cache/openblas`;
  const dir = `${cache}/${OPENBLAS_SUBDIR}`;
  if (await isDir(dir)) return dir;
  let aptGet = false;
  try {
    aptGet = (await Deno.stat("/usr/bin/apt-get")).isFile;
  } catch { /* absent */ }
  if (!aptGet) {
    tried.push(`${dir} is absent and there is no apt-get to fetch it`);
    return tried;
  }
  console.log(
    `fetching OpenBLAS for a fair PyTorch: apt-get download libopenblas0-pthread, then dpkg -x into ${cache} (nothing is installed)`,
  );
  const tmp = await Deno.makeTempDir({
    dir: `${ROOT}tests`,
    prefix: ".tmp-bench-openblas-",
  });
  try {
    const dl = await new Deno.Command("apt-get", {
      args: ["download", "libopenblas0-pthread"],
      cwd: tmp,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const debs = [...Deno.readDirSync(tmp)].filter((e) =>
      e.name.endsWith(".deb")
    );
    if (!dl.success || debs.length === 0) {
      tried.push(
        `apt-get download libopenblas0-pthread failed: ${
          new TextDecoder().decode(dl.stderr).trim().split("\n").at(-1)
        }`,
      );
      return tried;
    }
    await Deno.mkdir(cache, { recursive: true });
    const x = await new Deno.Command("dpkg", {
      args: ["-x", `${tmp}/${debs[0].name}`, cache],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!x.success || !(await isDir(dir))) {
      tried.push(
        `dpkg -x ${debs[0].name} failed: ${
          new TextDecoder().decode(x.stderr).trim()
        }`,
      );
      return tried;
    }
    return dir;
  } catch (e) {
    tried.push(`fetching OpenBLAS failed: ${(e as Error).message}`);
    return tried;
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

/** PyTorch on CUDA (`--gpu`): float32 with TF32 off, the fair reference. */
export async function detectTorchCuda(): Promise<{
  refs: TorchRef[];
  meta: BenchMeta["torch"];
  note: string;
}> {
  const python = Deno.env.get("TOKENLAB_PYTHON") || "python3";
  const info = await torchInfo(python, {}, "cuda");
  if (typeof info === "string") {
    return {
      refs: [],
      meta: [],
      note: `PyTorch on CUDA not available (${python}: ${info})`,
    };
  }
  const reference = `torch ${info.torch} on CUDA ${
    info.cuda ?? "?"
  } (fp32, TF32 off)`;
  return {
    refs: [{ reference, python, env: {}, device: "cuda" }],
    meta: [{ reference, version: info.torch, blas: "cuBLAS / cuDNN" }],
    note: "",
  };
}

/** The PyTorch flavours here, with their meta entries and notes. */
async function detectTorch(): Promise<{
  refs: TorchRef[];
  meta: BenchMeta["torch"];
  note: string;
}> {
  const base = await torchInfo(PYTHON, {});
  if (typeof base === "string") {
    return {
      refs: [],
      meta: [],
      note: `PyTorch not available (${PYTHON}: ${base})`,
    };
  }
  const blasName = (i: TorchInfo) =>
    i.reference_blas
      ? "reference libblas3"
      : /openblas/i.test(i.blas)
      ? "OpenBLAS"
      : i.blas;
  const refs: TorchRef[] = [];
  const meta: BenchMeta["torch"] = [];
  const notes: string[] = [];
  if (base.reference_blas) {
    const dir = await openBlasDir();
    if (typeof dir === "string") {
      const env = { LD_LIBRARY_PATH: dir };
      const ob = await torchInfo(PYTHON, env);
      if (typeof ob !== "string" && !ob.reference_blas) {
        const reference = `torch ${ob.torch} + OpenBLAS (pthread)`;
        refs.push({ reference, python: PYTHON, env });
        meta.push({ reference, version: ob.torch, blas: ob.blas });
      } else {
        notes.push(
          `OpenBLAS in ${dir} was not loaded by torch (${
            typeof ob === "string" ? ob : ob.blas
          })`,
        );
      }
    } else {
      notes.push(`no OpenBLAS flavour: ${dir.join("; ")}`);
    }
  }
  const reference = `torch ${base.torch} + ${blasName(base)}`;
  refs.push({ reference, python: PYTHON, env: {} });
  meta.push({ reference, version: base.torch, blas: base.blas });
  return { refs, meta, note: notes.join("; ") };
}

// ---- the run ----

async function commitName(): Promise<string> {
  try {
    const git = (args: string[]) =>
      new Deno.Command("git", { args, cwd: ROOT, stdout: "piped" }).output();
    const head = new TextDecoder().decode(
      (await git(["rev-parse", "HEAD"]))
        .stdout,
    ).trim();
    const dirty = new TextDecoder().decode(
      (await git(["status", "--porcelain"])).stdout,
    ).trim() !== "";
    return head === ""
      ? "unknown"
      : `${head.slice(0, 12)}${dirty ? "+dirty" : ""}`;
  } catch {
    return "unknown";
  }
}

function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(
      Deno.readTextFileSync("/proc/cpuinfo"),
    );
    return m?.[1].trim() ?? "unknown";
  } catch {
    return "unknown";
  }
}

function osName(): string {
  try {
    const m = /^PRETTY_NAME="?([^"\n]+)"?$/m.exec(
      Deno.readTextFileSync("/etc/os-release"),
    );
    return `${m?.[1] ?? Deno.build.os} (${Deno.build.arch})`;
  } catch {
    return `${Deno.build.os} (${Deno.build.arch})`;
  }
}

/** Writes the JPEG photos of the data job; returns the folder. */
async function writePhotos(): Promise<string> {
  const { SyntheticScenes } = await import("tokenlab/data/synthetic_scenes.ts");
  const sharp = (await import("sharp")).default;
  const dir = await Deno.makeTempDir({
    dir: `${ROOT}tests`,
    prefix: ".tmp-bench-data-",
  });
  const photos = new SyntheticScenes({
    size: 512,
    count: 32,
    seed: 11,
    numClasses: 4,
  });
  const w = 500, h = 375;
  for (let i = 0; i < photos.size; i++) {
    const img = await photos.image(i);
    const out = new Uint8Array(w * h * 3);
    for (let y = 0; y < h; y++) {
      out.set(img.data.subarray(y * 512 * 3, y * 512 * 3 + w * 3), y * w * 3);
    }
    await Deno.writeFile(
      `${dir}/img_${String(i).padStart(3, "0")}.jpg`,
      await sharp(out, { raw: { width: w, height: h, channels: 3 } }).jpeg({
        quality: 90,
      }).toBuffer(),
    );
  }
  return dir;
}

function fmtValue(x: number | null): string {
  return x === null ? "-" : x >= 100 ? x.toFixed(0) : x.toFixed(2);
}

async function main(): Promise<number> {
  let opts: Options;
  try {
    opts = parseArgs(Deno.args);
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`error: ${e.message}`);
      return 2;
    }
    throw e;
  }
  if (opts.help) {
    console.log(USAGE);
    return 0;
  }
  const t0 = performance.now();
  const date = () => new Date().toISOString();
  const out = opts.out.startsWith("/") ? opts.out : `${Deno.cwd()}/${opts.out}`;

  const avail = await availableBackends();
  const metaBackends: BenchMeta["backends"] = [];
  const backends: string[] = [];
  for (const a of avail) {
    const asked = opts.backends === null || opts.backends.includes(a.name);
    let note = a.detail;
    if (a.name === "wasm") {
      // Whether the products and convolutions ran on the native BLAS.
      const blas = nativeBlasInfo();
      note = [
        note,
        blas.active
          ? `native BLAS: ${blas.reason} (${blas.library})`
          : `no native BLAS: ${blas.reason}`,
      ].filter(Boolean).join("; ");
    }
    if (!asked) note = `not asked for (--backends)${note ? `; ${note}` : ""}`;
    metaBackends.push({ name: a.name, available: a.available, note });
    if (asked && a.available) backends.push(a.name);
    else if (asked) console.log(`backend ${a.name} unavailable: ${a.detail}`);
  }
  // wasm first: the fastest CPU path gives the headline figures.
  backends.sort((a, b) => BACKEND_NAMES.indexOf(a) - BACKEND_NAMES.indexOf(b));
  const { wasmThreads } = await import("tokenlab/tf.ts");
  const cores = navigator.hardwareConcurrency;
  const threadsOf = (backend: string) =>
    backend === "wasm" ? wasmThreads() : backend === "webgpu" ? 0 : 1;

  let torch = {
    refs: [] as TorchRef[],
    meta: [] as BenchMeta["torch"],
    note: "",
  };
  if (opts.torch) {
    torch = opts.gpu ? await detectTorchCuda() : await detectTorch();
  } else torch.note = "PyTorch not run (--no-torch)";
  for (const m of torch.meta) {
    console.log(`PyTorch: ${m.reference} (${m.blas})`);
  }
  if (torch.note) console.log(torch.note);

  const meta: BenchMeta = {
    date: date(),
    commit: await commitName(),
    machine: { os: osName(), cpus: cores, cpuModel: cpuModel() },
    deno: Deno.version.deno,
    tfjs: TFJS_VERSION,
    torch: torch.meta,
    scale: opts.scale,
    backends: metaBackends,
  };

  const { jobs, skipped } = planJobs(
    opts.scale,
    backends,
    opts.only,
    opts.gpu,
  );
  const records: BenchRecord[] = [];
  for (const s of skipped) {
    records.push(...skippedRecords(s, torch.refs, date()));
  }
  const print = (rs: BenchRecord[]) => {
    for (const r of rs) {
      console.log(
        `  ${r.config} ${r.backend} B=${r.batch ?? "-"} ${r.metric}: ours ${
          fmtValue(r.ours)
        }, ${r.reference || "torch"} ${fmtValue(r.pytorch)}, ratio ${
          r.ratio === null ? "-" : r.ratio.toFixed(2)
        }${r.note ? ` (${r.note})` : ""}`,
      );
    }
  };

  let photos: string | null = null;
  try {
    for (const [i, p] of jobs.entries()) {
      let job = withConfig({ ...p.job, threads: threadsOf(p.job.backend) });
      if (job.task === "data") {
        if (photos === null) {
          console.log("writing the JPEG photos of the data job...");
          photos = await writePhotos();
        }
        job = { ...job, dir: photos, threads: 1 };
      }
      console.log(
        `[${i + 1}/${jobs.length}] ${job.task} ${
          configName(job)
        } on ${job.backend}${
          job.task === "data" ? "" : ` at batch ${job.batch}`
        } (${job.warmup} warm-up + ${job.steps} steps)...`,
      );
      const mine = await ours(job);
      if (mine.error !== undefined) console.log(`  ours failed: ${mine.error}`);
      const threads = job.backend === "webgpu" ? 0 : job.threads;
      const torchJob = {
        ...job,
        threads: job.backend === "webgpu" ? cores : threads,
      };
      const answers: TorchAnswer[] = [];
      for (const ref of torch.refs) {
        if (p.skipReferenceBlas && isReferenceBlas(ref)) {
          answers.push({ ref, result: null, why: p.skipReferenceBlas });
          continue;
        }
        answers.push({ ref, result: await theirs(torchJob, ref), why: "" });
      }
      const rs = buildRecords(p, mine, answers, threads, date(), torch.note);
      print(rs);
      records.push(...rs);
    }
  } finally {
    if (photos !== null) {
      await Deno.remove(photos, { recursive: true }).catch(() => {});
    }
  }

  if (opts.only.includes("micro") && !opts.gpu) {
    const file = `${ROOT}tests/bench/micro.ts`;
    let exists = false;
    try {
      exists = (await Deno.stat(file)).isFile;
    } catch { /* absent */ }
    if (!exists) {
      console.log("micro benchmarks skipped: tests/bench/micro.ts is absent");
    } else {
      try {
        console.log("micro benchmarks (tests/bench/micro.ts)...");
        const mod = await import(new URL("./micro.ts", import.meta.url).href);
        const rs = await mod.microRecords({
          backends,
          threads: threadsOf(backends[0] ?? "wasm"),
          quick: opts.scale === "quick",
          torch: torch.refs,
        }) as BenchRecord[];
        print(rs);
        records.push(...rs);
      } catch (e) {
        console.log(
          `micro benchmarks skipped: ${e instanceof Error ? e.message : e}`,
        );
      }
    }
  }

  const sizes = modelTable(["lvvit_xs64", "lvvit_t", "lvvit_s"]);
  const files = await writeReport(out, meta, records, {
    models: [
      { config: "bench-64", ...pick(sizes[0]) },
      { config: "lvvit_t@224", ...pick(sizes[1]) },
      { config: "lvvit_s@224", ...pick(sizes[2]) },
    ],
  });
  console.log(`\n${markdownTables(meta, records)}`);
  console.log(
    `\nwrote ${files.join(", ")} in ${
      ((performance.now() - t0) / 60000).toFixed(1)
    } min`,
  );
  return 0;
}

function pick(r: { params: number; flops: number }) {
  return { params: r.params, flops: r.flops };
}

if (import.meta.main) Deno.exit(await main());
