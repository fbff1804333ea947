/**
 * The micro benchmark join (tests/bench/micro.ts) on canned output: deno
 * bench's JSON and torch_micro.py's JSON become records by bench id, with
 * the ratio; a failing side (no output, a failed bench, a missing python)
 * gives null and a note, never a thrown error. No benchmark runs here.
 */

import { assert, assertEquals, assertStringIncludes } from "./_assert.ts";
import {
  joinMicro,
  microBatches,
  parseDenoBench,
  parseTorchMicro,
  POOLING_ID,
  runTorch,
} from "./bench/micro.ts";
import type { TorchRef } from "./bench/_record.ts";

function ok(name: string, avgNs: number) {
  return {
    origin: "file:///x/tests/bench/micro_bench.ts",
    group: null,
    name,
    baseline: false,
    results: [{
      ok: {
        n: 4,
        min: avgNs,
        max: avgNs,
        avg: avgNs,
        p75: avgNs,
        p99: avgNs,
        p995: avgNs,
        p999: avgNs,
        highPrecision: true,
        usedExplicitTimers: true,
      },
    }],
  };
}

const DENO_JSON = JSON.stringify(
  {
    version: 1,
    runtime: "Deno/2.9.6 x86_64-unknown-linux-gnu",
    cpu: "AMD EPYC",
    benches: [
      ok("matmul bench-64 qkv fwd", 50e6), // 20 calls/s
      ok(POOLING_ID, 100e6), // 10 calls/s
      {
        origin: "file:///x/tests/bench/micro_bench.ts",
        group: null,
        name: "conv stem bench-64 fwd",
        baseline: false,
        results: [{
          failed: { name: "Error", message: "2 tensor(s) leaked on wasm" },
        }],
      },
    ],
  },
  null,
  2,
);
const DENO_STDERR = "\x1b[0m\x1b[32mCheck\x1b[0m micro_bench.ts\n" +
  'tokenlab-micro {"backend":"wasm","threads":1,"batch":64,"poolBatch":32,"quick":true,' +
  '"skipped":{"conv stem bench-64 fwd+bwd":"skipped on cpu in quick mode: slow"}}\n';

const TORCH_JSON = "matmul bench-64 qkv fwd: 40\n" + JSON.stringify({
  "matmul bench-64 qkv fwd": 40,
  "conv stem bench-64 fwd": 3,
  [POOLING_ID]: 5,
  "gelu bench-64 fwd": null,
  blas: "/usr/lib/x86_64-linux-gnu/blas/libblas.so.3.11.0",
  torch: "1.13.1",
  threads: 1,
  batch: 64,
  pool_batch: 32,
  errors: { "gelu bench-64 fwd": "RuntimeError: boom" },
});

const REF: TorchRef = {
  reference: "torch 1.13.1 + reference libblas3",
  python: "/usr/bin/python3",
  env: {},
};
const DATE = "2025-01-01T00:00:00.000Z";

Deno.test("micro: deno bench JSON gives calls/s, failures and the shapes", () => {
  const ours = parseDenoBench(DENO_JSON, DENO_STDERR);
  assertEquals(ours.note, "");
  assertEquals(ours.meta?.batch, 64);
  assertEquals(ours.meta?.poolBatch, 32);
  assertEquals(ours.figures.get("matmul bench-64 qkv fwd")?.callsPerSecond, 20);
  const failed = ours.figures.get("conv stem bench-64 fwd")!;
  assertEquals(failed.callsPerSecond, null);
  assertStringIncludes(failed.note, "leaked");
});

Deno.test("micro: torch JSON gives calls/s, BLAS and per-op errors", () => {
  const torch = parseTorchMicro(TORCH_JSON);
  assertEquals(torch.note, "");
  assertEquals(
    torch.figures.get("matmul bench-64 qkv fwd")?.callsPerSecond,
    40,
  );
  assertEquals(torch.figures.get("gelu bench-64 fwd")?.callsPerSecond, null);
  assertStringIncludes(torch.figures.get("gelu bench-64 fwd")!.note, "boom");
  assert(!torch.figures.has("blas") && !torch.figures.has("batch"));
  assertStringIncludes(torch.blas, "libblas.so.3");
  assertEquals(torch.batch, 64);
  assertEquals(torch.poolBatch, 32);
});

Deno.test("micro: the join matches ids, computes ratios, keeps one-sided ids", () => {
  const records = joinMicro({
    backend: "wasm",
    ours: parseDenoBench(DENO_JSON, DENO_STDERR),
    torch: [{ ref: REF, side: parseTorchMicro(TORCH_JSON) }],
    threads: 1,
    batches: microBatches("wasm", true),
    date: DATE,
  });
  const by = new Map(records.map((r) => [r.config, r]));
  assertEquals(records.length, 5);
  const mm = by.get("matmul bench-64 qkv fwd")!;
  assertEquals(mm.kind, "micro");
  assertEquals(mm.metric, "calls/s");
  assertEquals(mm.backend, "wasm");
  assertEquals(mm.batch, 64);
  assertEquals(mm.ours, 20);
  assertEquals(mm.pytorch, 40);
  assertEquals(mm.ratio, 0.5);
  assertEquals(mm.higherIsBetter, true);
  assertEquals(mm.threads, 1);
  assertEquals(mm.date, DATE);
  assertEquals(mm.reference, REF.reference);
  const pool = by.get(POOLING_ID)!;
  assertEquals(pool.batch, 32);
  assertEquals(pool.ratio, 2);
  const conv = by.get("conv stem bench-64 fwd")!;
  assertEquals(conv.ours, null);
  assertEquals(conv.pytorch, 3);
  assertEquals(conv.ratio, null);
  assertStringIncludes(conv.note, "leaked");
  const skippedConv = by.get("conv stem bench-64 fwd+bwd")!; // left out by ours
  assertEquals(skippedConv.ours, null);
  assertStringIncludes(skippedConv.note, "skipped on cpu");
  const gelu = by.get("gelu bench-64 fwd")!; // torch only, and failed there
  assertEquals(gelu.ours, null);
  assertEquals(gelu.pytorch, null);
  assertStringIncludes(gelu.note, "boom");
});

Deno.test("micro: a failing side gives notes, not a throw", async () => {
  // Ours gave nothing (the bench file did not load); torch is fine.
  const broken = parseDenoBench("", "error: Module not found\n");
  assertStringIncludes(broken.note, "Module not found");
  const records = joinMicro({
    backend: "cpu",
    ours: broken,
    torch: [{ ref: REF, side: parseTorchMicro(TORCH_JSON) }],
    threads: 1,
    batches: { batch: 64, poolBatch: 32 },
    date: DATE,
  });
  assertEquals(records.length, 4);
  for (const r of records) {
    assertEquals(r.ours, null);
    assertEquals(r.ratio, null);
    assertStringIncludes(r.note, "Module not found");
  }
  // Torch's python is missing: ours stay, torch is null with the reason.
  const missing: TorchRef = {
    reference: "torch (nowhere)",
    python: "/nonexistent/python3",
    env: {},
  };
  const side = await runTorch(
    missing,
    1,
    true,
    microBatches("wasm", true),
    10_000,
  );
  assertStringIncludes(side.note, "could not start");
  const rs = joinMicro({
    backend: "wasm",
    ours: parseDenoBench(DENO_JSON, DENO_STDERR),
    torch: [{ ref: missing, side }],
    threads: 1,
    batches: microBatches("wasm", true),
    date: DATE,
  });
  const mm = rs.find((r) => r.config === "matmul bench-64 qkv fwd")!;
  assertEquals(mm.ours, 20);
  assertEquals(mm.pytorch, null);
  assertStringIncludes(mm.note, "could not start");
  // Unreadable torch output, a torch batch that does not match, no torch.
  assertStringIncludes(parseTorchMicro("{not json").note, "unreadable");
  const other = parseTorchMicro(TORCH_JSON.replace('"batch":64', '"batch":8'));
  const mismatch = joinMicro({
    backend: "wasm",
    ours: parseDenoBench(DENO_JSON, DENO_STDERR),
    torch: [{ ref: REF, side: other }],
    threads: 1,
    batches: microBatches("wasm", true),
    date: DATE,
  }).find((r) => r.config === "matmul bench-64 qkv fwd")!;
  assertEquals(mismatch.pytorch, null);
  assertStringIncludes(mismatch.note, "batch 8");
  const alone = joinMicro({
    backend: "wasm",
    ours: parseDenoBench(DENO_JSON, DENO_STDERR),
    torch: [],
    threads: 1,
    batches: microBatches("wasm", true),
    date: DATE,
  });
  assertEquals(alone.length, 4);
  assertEquals(alone[0].reference, "");
  assertStringIncludes(alone[0].note, "torch not run");
});

Deno.test("micro: slow backends are measured at batch 8 in quick mode", () => {
  assertEquals(microBatches("wasm", false), { batch: 64, poolBatch: 128 });
  assertEquals(microBatches("wasm", true), { batch: 64, poolBatch: 32 });
  assertEquals(microBatches("cpu", true), { batch: 8, poolBatch: 8 });
  assertEquals(microBatches("webgpu", true), { batch: 8, poolBatch: 8 });
});
