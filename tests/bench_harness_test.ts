/**
 * Fast tests of the benchmark harness (tests/bench/run.ts and friends): the
 * command line, the plan, record building, the report writers on a fake
 * record set, and the job protocol of both workers on one tiny job.
 */

import { assert, assertEquals, assertThrows } from "./_assert.ts";
import {
  buildRecords,
  parseArgs,
  parseResultLine,
  planJobs,
  type Planned,
  skippedRecords,
  UsageError,
} from "./bench/run.ts";
import {
  figures,
  gpuTargets,
  htmlReport,
  markdownReport,
  markdownTables,
  pivot,
  targets,
  webgpuKernelsTable,
  webgpuTable,
  writeReport,
} from "./bench/_report.ts";
import type { BenchMeta, BenchRecord, TorchRef } from "./bench/_record.ts";
import { parseJob, withConfig } from "./bench/e2e_worker.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const OB: TorchRef = {
  reference: "torch 1.13.1 + OpenBLAS (pthread)",
  python: "/usr/bin/python3",
  env: { LD_LIBRARY_PATH: "/x" },
};
const REF: TorchRef = {
  reference: "torch 1.13.1 + reference libblas3",
  python: "/usr/bin/python3",
  env: {},
};
const META: BenchMeta = {
  date: "2025-01-01T00:00:00.000Z",
  commit: "abc+dirty",
  machine: { os: "Debian 12 (x86_64)", cpus: 2, cpuModel: "Some CPU" },
  deno: "2.9.6",
  tfjs: "4.22.0",
  torch: [
    { reference: OB.reference, version: "1.13.1", blas: "libopenblas" },
    { reference: REF.reference, version: "1.13.1", blas: "libblas.so.3" },
  ],
  scale: "quick",
  backends: [{ name: "wasm", available: true, note: "" }],
};

Deno.test("parseArgs: defaults, values and errors", () => {
  const d = parseArgs([]);
  assertEquals(d.scale, "quick");
  assertEquals(d.backends, null);
  assertEquals(d.only.length, 6);
  assertEquals(d.torch, true);
  assertEquals(d.out, "reports");
  const o = parseArgs([
    "--scale=full",
    "--backends",
    "wasm,cpu",
    "--only",
    "train,memory",
    "--no-torch",
    "--out",
    "x",
  ]);
  assertEquals(o.scale, "full");
  assertEquals(o.backends, ["wasm", "cpu"]);
  assertEquals(o.only, ["train", "memory"]);
  assertEquals(o.torch, false);
  assertEquals(o.out, "x");
  assertThrows(() => parseArgs(["--fast"]), UsageError, "unknown option");
  assertThrows(() => parseArgs(["--scale", "huge"]), UsageError, "quick");
  assertThrows(() => parseArgs(["--backends", "metal"]), UsageError, "metal");
  assertThrows(() => parseArgs(["--only"]), UsageError, "needs a value");
  assertThrows(() => parseArgs(["--no-torch=1"]), UsageError, "no value");
});

Deno.test("planJobs: quick plan on wasm and cpu", () => {
  const { jobs, skipped } = planJobs("quick", ["wasm", "cpu"], [
    "train",
    "eval",
    "memory",
    "pooling",
    "data",
  ]);
  const wasm = jobs.filter((j) => j.job.backend === "wasm");
  const trainB = wasm.filter((j) =>
    j.job.task === "train" && j.job.model === "bench-64"
  ).map((j) => j.job.batch);
  assertEquals(trainB, [8, 16, 32, 64]);
  assert(wasm.some((j) => j.peak && j.job.batch === 64));
  const cpu = jobs.filter((j) => j.job.backend === "cpu");
  assert(cpu.every((j) => j.job.model !== "lvvit_s"));
  assert(
    skipped.some((s) => s.backend === "cpu" && /--scale full/.test(s.note)),
  );
  assertEquals(jobs.filter((j) => j.job.task === "data").length, 1);
  // Only memory: the batch-64 train job, throughput not recorded.
  const mem = planJobs("quick", ["wasm"], ["memory"]).jobs;
  assert(mem.length > 0 && mem.every((j) => j.peak && !j.ips));
});

Deno.test("buildRecords: one record per flavour, ratios and notes", () => {
  const p: Planned = {
    job: {
      task: "train",
      model: "bench-64",
      batch: 64,
      steps: 3,
      warmup: 1,
      backend: "wasm",
      threads: 1,
    },
    ips: true,
    peak: true,
    note: "1 warm-up + 3 timed step(s)",
  };
  const rs = buildRecords(
    p,
    { ips: 10, peakMiB: 300 },
    [
      { ref: OB, result: { ips: 20, peakMiB: 200 }, why: "" },
      { ref: REF, result: { error: "boom" }, why: "" },
    ],
    1,
    "d",
  );
  assertEquals(rs.length, 4);
  const [a, b, c] = rs;
  assertEquals(a.metric, "train img/s");
  assertEquals(a.ratio, 0.5);
  assertEquals(a.config, "bench-64");
  assertEquals(b.pytorch, null);
  assert(/torch failed: boom/.test(b.note) && /not a fair/.test(b.note));
  assertEquals(c.metric, "peak MiB");
  assertEquals(c.higherIsBetter, false);
  assertEquals(c.ratio, 1.5);
  // Ours failed; no torch at all.
  const none = buildRecords(p, { error: "oom" }, [], 1, "d", "no torch");
  assertEquals(none.length, 2);
  assert(none.every((r) => r.ours === null && r.pytorch === null));
  assert(
    /ours failed: oom/.test(none[0].note) && /no torch/.test(none[0].note),
  );
  const sk = skippedRecords(
    {
      config: "lvvit_s@224",
      backend: "cpu",
      metric: "eval img/s",
      batch: 8,
      note: "slow",
    },
    [OB, REF],
    "d",
  );
  assertEquals(sk.map((r) => r.reference), [OB.reference, REF.reference]);
});

Deno.test("GPU mode: the targets' jobs, torch on CUDA, the webgpu probe in the records and report", () => {
  assertEquals(parseArgs(["--gpu"]).gpu, true);
  assertEquals(parseArgs([]).gpu, false);
  const { jobs, skipped } = planJobs("quick", ["webgpu", "wasm", "cpu"], [
    "train",
    "eval",
  ], true);
  assertEquals(skipped, []);
  const names = jobs.map((p) =>
    `${p.job.backend} ${p.job.task} ${p.job.model} ${p.job.batch}`
  );
  for (
    const want of [
      "webgpu train bench-64 64",
      "webgpu eval lvvit_s 64",
      "webgpu train lvvit_s 64",
      "wasm train bench-64 64",
    ]
  ) assert(names.includes(want), `${want} missing from ${names}`);
  assert(!names.some((n) => n.startsWith("cpu")), "no cpu jobs in GPU mode");
  const cuda: TorchRef = {
    reference: "torch 2.5.0 on CUDA NVIDIA H200 (fp32, TF32 off)",
    python: "python3",
    env: {},
    device: "cuda",
  };
  const p = jobs.find((j) => j.job.backend === "webgpu")!;
  const counts = {
    dispatches: 900,
    submits: 60,
    uploads: 110,
    uniformWrites: 900,
    readbacks: 1,
    buffersCreated: 110,
    bindGroups: 900,
    pipelines: 0,
    copies: 111,
    submitMs: 40,
    callMs: 50,
    readbackWaitMs: 5,
  };
  const [r] = buildRecords(
    p,
    {
      ips: 100,
      webgpu: {
        counts,
        wallMs: 400,
        kernelMs: 100,
        kernels: 2000,
        timestamps: true,
        topKernels: [
          { kernel: "BatchMatMul [1,520,192] [1,576,192]", calls: 8, ms: 40 },
          { kernel: "TokenlabAdamW [3] [3] [3] [3]", calls: 1, ms: 2.5 },
        ],
      },
    },
    [{ ref: cuda, result: { ips: 1000 }, why: "" }],
    0,
    "d",
  );
  assertEquals(r.ratio, 0.1);
  assert(/torch on CUDA/.test(r.note), r.note);
  assertEquals(r.webgpu?.dispatches, 900);
  const table = webgpuTable([r]);
  assert(/\| 900 \| 60 \| 110 \| 1 \| 110 \| 0 \|/.test(table), table);
  assert(/\| 25% \|$/.test(table), "kernel / wall = 100 / 400");
  assertEquals(webgpuTable([{ ...r, webgpu: undefined }]), "");
  const kernels = webgpuKernelsTable([r]);
  assert(
    /\| BatchMatMul \[1,520,192\] \[1,576,192\] \| 8 \| 40(\.0)? \| 40\.0% \|/
      .test(
        kernels,
      ),
    kernels,
  );
  assert(/recording 50(\.0)? ms/.test(kernels), kernels);
  assert(/waiting for readbacks 5(\.0+)? ms/.test(kernels), kernels);
  assertEquals(
    webgpuKernelsTable([{ ...r, webgpu: { ...r.webgpu!, topKernels: [] } }]),
    "",
  );
  // Issue 19's targets read the CUDA records at batch 64 only.
  const [lvTrain, lvEval, benchTrain] = gpuTargets([r]);
  assertEquals([lvTrain.met, lvEval.met], [null, null]);
  assertEquals(lvTrain.where, "not measured");
  assertEquals([benchTrain.goal, benchTrain.ratio, benchTrain.met], [
    ">= 0.3x",
    0.1,
    false,
  ]);
  assertEquals(
    gpuTargets([{ ...r, note: "GPU; torch on every core" }])[2].ratio,
    null,
  );
});

Deno.test("parseResultLine: last JSON line, or the error", () => {
  assertEquals(parseResultLine('noise\n{"ips": 3}\n', "", 0).ips, 3);
  const e = parseResultLine("", "npm warn x\nSegmentation fault\n", 139);
  assert(/exit code 139/.test(e.error!) && /Segmentation/.test(e.error!));
});

function fakeRecords(): BenchRecord[] {
  const out: BenchRecord[] = [];
  const rec = (
    config: string,
    metric: string,
    batch: number | null,
    ours: number,
    torch: [number, number],
    hib = true,
  ) => {
    for (const [i, ref] of [OB, REF].entries()) {
      out.push({
        config,
        kind: "e2e",
        backend: "wasm",
        metric,
        batch,
        ours,
        pytorch: torch[i],
        reference: ref.reference,
        ratio: ours / torch[i],
        higherIsBetter: hib,
        threads: 1,
        date: "d",
        note: i === 1 ? "not a fair reference" : "",
      });
    }
  };
  for (const b of [8, 64]) {
    rec("bench-64", "train img/s", b, 10 + b, [30, 3]);
    rec("bench-64", "eval img/s", b, 40 + b, [60, 6]);
  }
  rec("lvvit_t@224", "eval img/s", 8, 1, [5, 0.5]);
  rec("bench-64", "peak MiB", 64, 500, [200, 210], false);
  rec("poolLabels k5 15x15 C1000 -> 14x14", "maps/s", 128, 900, [500, 400]);
  out.push({
    config: "matmul | x",
    kind: "micro",
    backend: "wasm",
    metric: "calls/s",
    batch: null,
    ours: 5,
    pytorch: null,
    reference: "",
    ratio: null,
    higherIsBetter: true,
    threads: 1,
    date: "d",
    note: "no torch",
  });
  return out;
}

Deno.test("report: tables, targets, figures, HTML", async () => {
  const records = fakeRecords();
  const rows = pivot(records);
  assertEquals(rows.length, 8);
  const tables = markdownTables(META, records);
  for (const t of ["Training", "Evaluation", "Memory", "Label pooling"]) {
    assert(tables.includes(`## ${t}`), t);
  }
  assert(tables.includes("## Micro benchmarks"));
  assert(tables.includes("matmul \\| x"), "pipes are escaped");
  assert(tables.includes("ratio (OpenBLAS (pthread))"));
  const ts = targets(records, [OB.reference, REF.reference]);
  assertEquals(ts.map((t) => t.met), [true, true, true, false]);
  assertEquals(ts[0].ratio, 74 / 30);
  assertEquals(ts[3].ratio, 2.5);
  const md = markdownReport(META, records, { skipped: "no browser" });
  assert(md.includes("Debian 12") && md.includes("skipped: no browser"));
  assert(!md.includes("host"));
  const figs = figures(META, records, [
    { config: "bench-64", params: 4e6, flops: 1e9 },
    { config: "lvvit_t@224", params: 8.5e6, flops: 2.9e9 },
  ]);
  assertEquals(figs.length, 2);
  const byBatch = figs[0].data.find((t) => t.name === "ours wasm train")!;
  assertEquals(byBatch.x, [8, 64]);
  assertEquals(byBatch.y, [18, 74]);
  assert(figs[1].data.some((t) => (t.x as number[]).includes(8.5)));
  const html = htmlReport(META, records, figs, "/* plotly */");
  assert(html.includes("<table>") && html.includes("bench-fig-1-data"));
  assert(!/src="https?:/.test(html), "offline");
  const dir = await Deno.makeTempDir({
    dir: `${ROOT}tests`,
    prefix: ".tmp-harness-",
  });
  try {
    const files = await writeReport(`${dir}/out`, META, records, {
      models: [],
      images: false,
    });
    assertEquals(files.length, 3);
    const json = JSON.parse(await Deno.readTextFile(`${dir}/out/bench.json`));
    assertEquals(json.records.length, records.length);
    assertEquals(json.meta.commit, "abc+dirty");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("job protocol: parseJob errors", () => {
  assertThrows(() => parseJob("nope"), Error, "JSON object");
  assertThrows(
    () => parseJob('{"task":"fly","batch":1,"steps":1}'),
    Error,
    "job.task",
  );
  assertThrows(
    () =>
      parseJob(
        '{"task":"eval","model":"x","batch":1,"steps":1,"warmup":0,"backend":"cpu","threads":1}',
      ),
    Error,
    "job.model",
  );
  assertThrows(
    () =>
      parseJob(
        '{"task":"eval","model":"bench-64","batch":0,"steps":1,"warmup":0,"backend":"cpu","threads":1}',
      ),
    Error,
    "job.batch",
  );
});

async function child(cmd: string, args: string[]) {
  const out = await new Deno.Command(cmd, {
    args,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return parseResultLine(
    new TextDecoder().decode(out.stdout),
    new TextDecoder().decode(out.stderr),
    out.code,
  );
}

const TINY_JOB = withConfig({
  task: "eval",
  model: "bench-64",
  batch: 2,
  steps: 1,
  warmup: 0,
  backend: "cpu",
  threads: 1,
});

/** Why PyTorch's side cannot run here (no python3, no torch), or "". */
async function torchSkip(): Promise<string> {
  try {
    const out = await new Deno.Command("/usr/bin/python3", {
      args: ["-c", "import torch"],
      stdout: "null",
      stderr: "null",
    }).output();
    return out.success ? "" : "python3 cannot import torch";
  } catch {
    return "no /usr/bin/python3";
  }
}
const noTorch = await torchSkip();

Deno.test("job protocol: one tiny eval job on our side", async () => {
  const job = TINY_JOB;
  const ours = await child(Deno.execPath(), [
    "run",
    "-A",
    `${ROOT}tests/bench/e2e_worker.ts`,
    JSON.stringify(job),
  ]);
  assertEquals(ours.error, undefined);
  assert(ours.ips! > 0 && ours.steps === 1 && ours.threads === 1);
  const bad = await child(Deno.execPath(), [
    "run",
    "-A",
    `${ROOT}tests/bench/e2e_worker.ts`,
    "{}",
  ]);
  assert(/job.task/.test(bad.error ?? ""));
});

Deno.test({
  name: `job protocol: one tiny eval job on PyTorch's side${
    noTorch ? ` (skipped: ${noTorch})` : ""
  }`,
  ignore: noTorch !== "",
}, async () => {
  const theirs = await child("/usr/bin/python3", [
    `${ROOT}tests/bench/torch_reference.py`,
    JSON.stringify(TINY_JOB),
  ]);
  assertEquals(theirs.error, undefined);
  assert(theirs.ips! > 0 && theirs.steps === 1 && theirs.threads === 1);
  const badTorch = await child("/usr/bin/python3", [
    `${ROOT}tests/bench/torch_reference.py`,
    '{"task":"eval","batch":1,"steps":1,"warmup":0,"threads":1}',
  ]);
  assert(/config/.test(badTorch.error ?? ""));
});
