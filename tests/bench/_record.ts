/**
 * One figure of `deno task bench`: what was measured, on which backend, our
 * value and PyTorch's on the same machine in the same run, and their ratio.
 * `reports/bench.json` is `{ meta: BenchMeta, records: BenchRecord[] }`.
 *
 * @module
 */

/** One measured figure. */
export interface BenchRecord {
  /** What ran: "bench-64", "lvvit_t@224", "matmul [4096,192]x[192,576]", ... */
  config: string;
  /** "e2e" (end-to-end figures) or "micro" (one op). */
  kind: "e2e" | "micro";
  /** Our backend: "wasm", "cpu" or "webgpu". */
  backend: string;
  /** What the number is, with its unit: "train img/s", "eval img/s", "maps/s", "peak MiB", "calls/s". */
  metric: string;
  /** Batch size where one applies, else null. */
  batch: number | null;
  /** Our figure; null when it was not measured (see `note`). */
  ours: number | null;
  /** PyTorch's figure in the same run; null when torch was not run (see `note`). */
  pytorch: number | null;
  /**
   * Which PyTorch: version and BLAS, e.g. "torch 1.13.1 + OpenBLAS
   * (pthread)" or "torch 1.13.1 + reference libblas3"; "" without torch.
   */
  reference: string;
  /**
   * ours / pytorch. For throughputs higher is better (1 = as fast as torch);
   * for memory lower is better (see `higherIsBetter`). Null when either side is.
   */
  ratio: number | null;
  /** Whether a larger `ours` is better (throughputs) or worse (memory). */
  higherIsBetter: boolean;
  /** Threads on both sides (ours: the backend's, torch: set to the same). */
  threads: number;
  /** ISO date and time of the measurement. */
  date: string;
  /** Why a side is missing, or what to know about the figure; "" when nothing. */
  note: string;
  /**
   * On webgpu, what one step asked of the device (a counted step and a
   * profiled step after the timed ones); absent elsewhere.
   */
  webgpu?: WebGpuStepRecord;
}

/** What one webgpu step asked of the device, as the bench reports it. */
export interface WebGpuStepRecord {
  /** Compute dispatches. */
  dispatches: number;
  /** Queue submits. */
  submits: number;
  /** Host-to-device uploads (not counting uniforms). */
  uploads: number;
  /** Device-to-host readbacks. */
  readbacks: number;
  /** Buffers created. */
  buffersCreated: number;
  /** Pipelines compiled (0 once warm). */
  pipelines: number;
  /** Main-thread ms inside queue.submit. */
  submitMs: number;
  /** Wall ms of the counted step. */
  wallMs: number;
  /** Summed GPU ms of the profiled step's kernels (timestamp queries; 0 without). */
  kernelMs: number;
  /** Main-thread ms waiting for readbacks (mapAsync) in the counted step. */
  readbackWaitMs?: number;
  /** Main-thread ms in the other WebGPU calls of the counted step (recording). */
  callMs?: number;
  /**
   * The profiled step's costliest kernels (name and input shapes, calls,
   * summed GPU ms), largest first; absent in records made before they were
   * kept.
   */
  topKernels?: { kernel: string; calls: number; ms: number }[];
}

/** What is true of the whole run. */
export interface BenchMeta {
  date: string;
  /** Commit (with "+dirty" when the tree had changes). */
  commit: string;
  machine: { os: string; cpus: number; cpuModel: string };
  deno: string;
  tfjs: string;
  /** Each PyTorch measured (one per BLAS found), as named in `BenchRecord.reference`. */
  torch: { reference: string; version: string; blas: string }[];
  /** "quick" or "full". */
  scale: string;
  /** Backends measured and why others were not. */
  backends: { name: string; available: boolean; note: string }[];
}

/** ours / pytorch, or null when either is missing or zero. */
export function ratioOf(
  ours: number | null,
  pytorch: number | null,
): number | null {
  if (ours === null || pytorch === null || pytorch === 0) return null;
  if (!Number.isFinite(ours) || !Number.isFinite(pytorch)) return null;
  return ours / pytorch;
}

/**
 * One PyTorch flavour the harness runs (Debian's torch with the BLAS it
 * loads, or the same torch with OpenBLAS put first on `LD_LIBRARY_PATH`).
 */
export interface TorchRef {
  /** The name records carry in `reference`, e.g. "torch 1.13.1 + OpenBLAS (pthread)". */
  reference: string;
  /** The Python interpreter that has torch. */
  python: string;
  /** Extra environment for that interpreter (e.g. `LD_LIBRARY_PATH`). */
  env: Record<string, string>;
  /** Where torch runs the jobs: the CPU (absent) or "cuda" (`--gpu`). */
  device?: "cuda";
}
