/**
 * The bench's GPU mode (`deno task bench --gpu`) as one run for a GPU machine
 * that has no network and no npm packages (the lent H200): every job of
 * `gpuJobs` with ours (the bundled worker) and PyTorch on CUDA (float32,
 * TF32 off) back to back, then the queue probe, written to a folder as
 * `bench_gpu.json` ({ meta, records }), `bench_gpu.md` and `queue_probe.txt`.
 * No figures (plotly is not there).
 *
 * Prepared here, run there (from the project root):
 *
 *     bash tests/bench/gpu_prepare.sh
 *     # device run, carry [".gpu"] (the script prints this line):
 *     xz -dkf .gpu/e2e_worker.js.xz .gpu/gpu_session.js.xz &&
 *       TOKENLAB_BENCH_WORKER=.gpu/e2e_worker.js \
 *       bash .gpu/on_device.sh run .gpu/gpu_session.js "$OUT" [--scale full]
 *
 * gpu_prepare.sh bundles this file, the worker and the queue probe with the
 * workplace's ../shared/gpu/prepare.sh and compresses the two large bundles
 * so that they travel (the device tool carries 64 MiB with the tree).
 * The jobs are webgpu's only: the bundled worker cannot start the wasm
 * backend (its binaries are not in the bundle), and the wasm
 * figure is this machine's CPU anyway (`deno task bench`).
 *
 * `TOKENLAB_PYTHON` names the Python with CUDA torch (default python3).
 * `--minutes M` starts no job after M minutes (the device's time is short)
 * and kills a job still running a minute after that (recorded as timed
 * out), so the session ends within M + 1 minutes, inside the device tool's
 * 10 minutes a call; the files are rewritten after every job, so a run cut
 * short keeps what it measured. The queue probe runs first (seconds), then
 * the kernel rates (`webgpu_kernel_rates.ts`: each hot kernel of LV-ViT-S at
 * batch 64 alone, GPU ms and TFLOP/s, tfjs's matmul beside the kit's; at
 * most 3 minutes), written to `kernel_rates.md` and `kernel_rates.json`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { TFJS_VERSION } from "tokenlab";
import {
  buildRecords,
  detectTorchCuda,
  gpuJobs,
  ours,
  theirs,
  TIMED_OUT,
} from "./run.ts";
import { markdownTables } from "./_report.ts";
import type { BenchMeta, BenchRecord } from "./_record.ts";
import { type JobResult, withConfig } from "./e2e_worker.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  options: {
    scale: { type: "string", default: "quick" },
    minutes: { type: "string", default: "8" },
  },
  allowPositionals: true,
});
const out = positionals[0];
const minutes = Number(values.minutes);
if (
  out === undefined || !["quick", "full"].includes(values.scale!) ||
  !(minutes > 0)
) {
  console.error(
    `usage: gpu_session.js OUT_DIR [--scale quick|full] [--minutes M]; found ${
      JSON.stringify(Deno.args)
    }`,
  );
  Deno.exit(2);
}
await Deno.mkdir(out, { recursive: true });
const date = () => new Date().toISOString();
const started = performance.now();
/** A minute past `--minutes`, a job still running is killed. */
const GRACE_MS = 60_000;
/** What a child may still take: until the hard stop, 15 s at the least. */
function timeLeft(): number {
  return Math.max(
    15_000,
    started + minutes * 60_000 + GRACE_MS - performance.now(),
  );
}
/**
 * Runs a bundle beside this one and writes its output to `file` in the
 * output folder, killed after `limitMs`.
 */
async function runBeside(
  bundle: string,
  args: string[],
  file: string,
  limitMs: number,
): Promise<void> {
  const path = new URL(`./${bundle}`, import.meta.url).pathname;
  try {
    const r = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", path, ...args],
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(limitMs),
    }).output();
    const dec = new TextDecoder();
    await Deno.writeTextFile(
      `${out}/${file}`,
      dec.decode(r.stdout) + dec.decode(r.stderr),
    );
    console.log(`${bundle}: exit code ${r.code}, wrote ${file}`);
  } catch (e) {
    console.log(`${bundle} not run: ${(e as Error).message}`);
  }
}
await runBeside("webgpu_queue_probe.js", [], "queue_probe.txt", 60_000);
// Each hot kernel's GPU time and TFLOP/s, tfjs's matmul beside the kit's.
await runBeside(
  "webgpu_kernel_rates.js",
  ["--batch", "64", "--reps", "5", "--out", `${out}/kernel_rates.json`],
  "kernel_rates.md",
  Math.min(180_000, timeLeft()),
);

const torch = await detectTorchCuda();
console.log(torch.note || `PyTorch: ${torch.refs[0].reference}`);
const records: BenchRecord[] = [];
const torchRuns = new Map<string, JobResult>();
const jobs = gpuJobs(values.scale as "quick" | "full", ["webgpu"], [
  "train",
  "eval",
]);
for (const [i, p] of jobs.entries()) {
  if (performance.now() - started > minutes * 60_000) {
    console.log(
      `stopping after ${minutes} min: ${jobs.length - i} job(s) not run`,
    );
    break;
  }
  const job = withConfig(p.job);
  console.log(
    `[${
      i + 1
    }/${jobs.length}] ${job.task} ${job.model} B${job.batch} on ${job.backend} ${
      JSON.stringify({ submitBatch: job.submitBatch, matmul: job.matmul })
    }`,
  );
  const mine = await ours(job, timeLeft());
  const answers = [];
  for (const ref of torch.refs) {
    // PyTorch's side does not change with our submit batch or matmul: one
    // run per task, model and batch.
    const key = `${job.task} ${job.model} ${job.batch}`;
    let result = torchRuns.get(key);
    if (result === undefined) {
      result = await theirs(
        { ...job, threads: navigator.hardwareConcurrency },
        ref,
        timeLeft(),
      );
      torchRuns.set(key, result);
    }
    answers.push({ ref, result, why: "" });
  }
  const rs = buildRecords(p, mine, answers, 0, date(), torch.note);
  for (const r of rs) {
    console.log(
      `  ours ${r.ours?.toFixed(1) ?? "-"} img/s, torch ${
        r.pytorch?.toFixed(1) ?? "-"
      }, ratio ${r.ratio?.toFixed(3) ?? "-"} ${
        r.webgpu ? JSON.stringify({ ...r.webgpu, topKernels: undefined }) : ""
      } ${r.note}`,
    );
  }
  records.push(...rs);
  await save();
  const late = [mine, ...answers.map((a) => a.result)].find((r) =>
    r.error?.startsWith(TIMED_OUT)
  );
  if (late !== undefined) {
    console.log(
      `stopping: a job ran past the session's end (${late.error}); ${
        jobs.length - i - 1
      } job(s) not run`,
    );
    break;
  }
}

/** Writes what was measured so far. */
async function save(): Promise<void> {
  const meta: BenchMeta = {
    date: date(),
    commit: "see the session's note",
    machine: {
      os: Deno.build.os,
      cpus: navigator.hardwareConcurrency,
      cpuModel: "",
    },
    deno: Deno.version.deno,
    tfjs: TFJS_VERSION,
    torch: torch.meta,
    scale: values.scale!,
    backends: [{ name: "webgpu", available: true, note: "" }],
  };
  await Deno.writeTextFile(
    `${out}/bench_gpu.json`,
    JSON.stringify({ meta, records }, null, 1),
  );
  await Deno.writeTextFile(
    `${out}/bench_gpu.md`,
    markdownTables(meta, records),
  );
}
await save();
console.log(`wrote ${out}/bench_gpu.json, bench_gpu.md, queue_probe.txt`);
