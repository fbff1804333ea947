/**
 * Micro benchmark records: runs tests/bench/micro_bench.ts (`deno bench
 * --json`, one process per backend) and tests/bench/torch_micro.py (one
 * process per PyTorch flavour and shape set), and joins the two by bench id
 * into {@linkcode BenchRecord}s of kind "micro", metric "calls/s".
 *
 * Ours is 1e9 / the mean time per call deno bench reports (its JSON has no
 * median); torch's is 1 / the median of its timed calls. Both sides measure
 * the same shapes: micro.ts picks the batch of the bench-64 ops and the
 * number of pooled maps per backend ({@linkcode microBatches}) and hands
 * them to both. A side that fails leaves its figures null with the reason in
 * `note`; nothing here throws for one failing side.
 *
 *     deno run -A tests/bench/micro.ts [--backends wasm,cpu] [--threads 1]
 *       [--full] [--python /usr/bin/python3] [--ld-library-path DIR]...
 *
 * prints the table (each `--ld-library-path` adds a torch flavour with that
 * folder first on LD_LIBRARY_PATH, e.g. an unpacked OpenBLAS).
 *
 * @module
 */

import { type BenchRecord, ratioOf, type TorchRef } from "./_record.ts";

const ROOT = new URL("../../", import.meta.url);
const BENCH_FILE = new URL("./micro_bench.ts", import.meta.url);
const TORCH_FILE = new URL("./torch_micro.py", import.meta.url);

/** The label pooling bench: its batch is the number of maps. */
export const POOLING_ID = "label pooling official fwd";

/** Shapes of one run: the batch of the bench-64 ops and the pooled maps. */
export interface MicroBatches {
  batch: number;
  poolBatch: number;
}

/**
 * The shapes a backend is measured at: batch 64 and 128 maps (the model's),
 * in quick mode 32 maps, and batch 8 (8 maps) on the slow backends (cpu,
 * webgpu on a software adapter). micro_bench.ts defaults to the same.
 */
export function microBatches(backend: string, quick: boolean): MicroBatches {
  const slow = backend === "cpu" || backend === "webgpu";
  return {
    batch: quick && slow ? 8 : 64,
    poolBatch: quick ? (slow ? 8 : 32) : 128,
  };
}

/** One side's figure for one bench id: calls/s, or null and why. */
export interface MicroFigure {
  callsPerSecond: number | null;
  note: string;
}

/** What one deno bench run gave. */
export interface OurSide {
  /** By bench id. */
  figures: Map<string, MicroFigure>;
  /** What micro_bench.ts reported about itself (its `tokenlab-micro` line). */
  meta: {
    backend: string;
    threads: number;
    batch: number;
    poolBatch: number;
    /** Benches micro_bench.ts left out, with the reason. */
    skipped?: Record<string, string>;
  } | null;
  /** Why the whole run gave nothing; "" when it gave figures. */
  note: string;
}

/** What one torch_micro.py run gave. */
export interface TorchSide {
  figures: Map<string, MicroFigure>;
  /** The BLAS torch loaded, as /proc/self/maps showed it; "" when unknown. */
  blas: string;
  threads: number | null;
  batch: number | null;
  poolBatch: number | null;
  /** Why the whole run gave nothing; "" when it gave figures. */
  note: string;
}

function lastLines(text: string, n = 3): string {
  return text.split("\n").map((l) => l.trim()).filter((l) => l !== "")
    .slice(-n).join(" | ").slice(0, 600);
}

// deno prints colour codes on stderr; strip them from notes.
// deno-lint-ignore no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g;

/**
 * Parses `deno bench --json` output (stdout) and micro_bench.ts's stderr
 * (its `tokenlab-micro {json}` line). A bench that failed maps to null with
 * its error message.
 */
export function parseDenoBench(stdout: string, stderr = ""): OurSide {
  const err = stderr.replace(ANSI, "");
  let meta: OurSide["meta"] = null;
  const m = /tokenlab-micro (\{.*\})/.exec(err);
  if (m !== null) {
    try {
      meta = JSON.parse(m[1]);
    } catch { /* leave null */ }
  }
  const figures = new Map<string, MicroFigure>();
  const start = stdout.indexOf("{");
  if (start < 0) {
    return {
      figures,
      meta,
      note: `deno bench gave no JSON: ${lastLines(err) || "no output"}`,
    };
  }
  let doc: unknown;
  try {
    doc = JSON.parse(stdout.slice(start));
  } catch (e) {
    return {
      figures,
      meta,
      note: `deno bench JSON unreadable (${(e as Error).message}): ${
        lastLines(err)
      }`,
    };
  }
  const benches = (doc as { benches?: unknown }).benches;
  if (!Array.isArray(benches)) {
    return { figures, meta, note: "deno bench JSON has no `benches` array" };
  }
  for (const b of benches) {
    const name = typeof b?.name === "string" ? b.name : null;
    if (name === null) continue;
    const result = Array.isArray(b.results) ? b.results[0] : undefined;
    const ok = result?.ok;
    if (ok !== undefined && typeof ok.avg === "number" && ok.avg > 0) {
      figures.set(name, { callsPerSecond: 1e9 / ok.avg, note: "" });
    } else if (result?.failed !== undefined) {
      const f = result.failed;
      const msg = typeof f?.message === "string"
        ? `${f.name ?? "Error"}: ${f.message}`
        : JSON.stringify(f).slice(0, 300);
      figures.set(name, { callsPerSecond: null, note: `ours failed: ${msg}` });
    } else {
      figures.set(name, {
        callsPerSecond: null,
        note: `ours: no timing in deno bench output`,
      });
    }
  }
  return {
    figures,
    meta,
    note: figures.size === 0 ? "deno bench reported no benches" : "",
  };
}

/**
 * Parses torch_micro.py's stdout: the JSON object on its last line. Ids with
 * a null figure get the error torch_micro.py listed for them.
 */
export function parseTorchMicro(stdout: string, stderr = ""): TorchSide {
  const empty = (note: string): TorchSide => ({
    figures: new Map(),
    blas: "",
    threads: null,
    batch: null,
    poolBatch: null,
    note,
  });
  const line = stdout.split("\n").map((l) => l.trim()).filter((l) =>
    l.startsWith("{")
  ).pop();
  if (line === undefined) {
    return empty(
      `torch_micro.py gave no JSON: ${lastLines(stderr) || "no output"}`,
    );
  }
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(line);
  } catch (e) {
    return empty(`torch_micro.py JSON unreadable: ${(e as Error).message}`);
  }
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) {
    return empty("torch_micro.py did not print a JSON object");
  }
  const errors = (doc.errors ?? {}) as Record<string, string>;
  const num = (v: unknown) => typeof v === "number" ? v : null;
  const figures = new Map<string, MicroFigure>();
  const fields = new Set(["blas", "torch", "threads", "batch", "pool_batch"]);
  for (const [id, v] of Object.entries(doc)) {
    if (fields.has(id) || id === "errors") continue;
    if (typeof v === "number" && Number.isFinite(v) && v > 0) {
      figures.set(id, { callsPerSecond: v, note: "" });
    } else if (v === null) {
      figures.set(id, {
        callsPerSecond: null,
        note: `torch failed: ${errors[id] ?? "no figure"}`,
      });
    }
  }
  return {
    figures,
    blas: typeof doc.blas === "string" ? doc.blas : "",
    threads: num(doc.threads),
    batch: num(doc.batch),
    poolBatch: num(doc.pool_batch),
    note: "",
  };
}

/** Everything {@linkcode joinMicro} needs for one backend. */
export interface JoinInput {
  backend: string;
  ours: OurSide;
  /** One entry per torch flavour; empty: torch not run. */
  torch: { ref: TorchRef; side: TorchSide }[];
  /** Threads asked for on both sides. */
  threads: number;
  /** The shapes both sides were asked to measure. */
  batches: MicroBatches;
  date: string;
}

function shortBlas(blas: string): string {
  return blas.split(",").map((p) => p.trim().split("/").pop()).join(", ");
}

/**
 * Joins our figures and each torch flavour's by bench id: one record per
 * (id, torch flavour), or one per id without torch. Ids either side lacks
 * still get a record, with the missing side null and the reason in `note`.
 */
export function joinMicro(input: JoinInput): BenchRecord[] {
  const { backend, ours, torch, threads, batches, date } = input;
  const skipped = ours.meta?.skipped ?? {};
  const ids: string[] = [...ours.figures.keys()];
  for (const id of Object.keys(skipped)) {
    if (!ids.includes(id)) ids.push(id);
  }
  for (const t of torch) {
    for (const id of t.side.figures.keys()) {
      if (!ids.includes(id)) ids.push(id);
    }
  }
  const records: BenchRecord[] = [];
  const flavours = torch.length > 0 ? torch : [null];
  for (const id of ids) {
    const pooling = id === POOLING_ID;
    const batch = pooling
      ? (ours.meta?.poolBatch ?? batches.poolBatch)
      : (ours.meta?.batch ?? batches.batch);
    const mine = ours.figures.get(id);
    for (const t of flavours) {
      const notes: string[] = [];
      const oursValue = mine?.callsPerSecond ?? null;
      if (mine === undefined) {
        notes.push(
          skipped[id] !== undefined
            ? `ours ${skipped[id]}`
            : ours.note || "ours: not measured",
        );
      } else if (mine.note) notes.push(mine.note);
      let theirs: number | null = null;
      if (t === null) {
        notes.push("torch not run");
      } else {
        const f = t.side.figures.get(id);
        theirs = f?.callsPerSecond ?? null;
        if (f === undefined) {
          notes.push(t.side.note || "torch: not measured");
        } else if (f.note) notes.push(f.note);
        const tb = pooling ? t.side.poolBatch : t.side.batch;
        if (theirs !== null && tb !== null && tb !== batch) {
          notes.push(`torch ran batch ${tb}, ours ${batch}: no ratio`);
          theirs = null;
        }
        if (t.side.threads !== null && t.side.threads !== threads) {
          notes.push(`torch ran on ${t.side.threads} thread(s)`);
        }
        if (t.side.blas) notes.push(`torch BLAS ${shortBlas(t.side.blas)}`);
      }
      if (ours.meta !== null && ours.meta.threads !== threads) {
        notes.push(`ours ran on ${ours.meta.threads} thread(s)`);
      }
      records.push({
        config: id,
        kind: "micro",
        backend,
        metric: "calls/s",
        batch,
        ours: oursValue,
        pytorch: theirs,
        reference: t?.ref.reference ?? "",
        ratio: ratioOf(oursValue, theirs),
        higherIsBetter: true,
        threads,
        date,
        note: notes.join("; "),
      });
    }
  }
  return records;
}

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
  problem: string;
}

async function runProcess(
  cmd: string,
  args: string[],
  env: Record<string, string>,
  timeoutMs: number,
): Promise<Ran> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), timeoutMs);
  try {
    const out = await new Deno.Command(cmd, {
      args,
      env,
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: ac.signal,
    }).output();
    const dec = new TextDecoder();
    return {
      code: out.code,
      stdout: dec.decode(out.stdout),
      stderr: dec.decode(out.stderr),
      problem: ac.signal.aborted
        ? `timed out after ${Math.round(timeoutMs / 1000)} s`
        : "",
    };
  } catch (e) {
    return {
      code: null,
      stdout: "",
      stderr: "",
      problem: `could not start ${cmd}: ${(e as Error).message}`,
    };
  } finally {
    clearTimeout(timer);
  }
}

/** Runs micro_bench.ts on one backend. */
export async function runOurs(
  backend: string,
  quick: boolean,
  batches: MicroBatches,
  timeoutMs: number,
): Promise<OurSide> {
  const ran = await runProcess(
    Deno.execPath(),
    ["bench", "-A", "--json", BENCH_FILE.pathname],
    {
      TOKENLAB_BENCH_BACKEND: backend,
      TOKENLAB_BENCH_QUICK: quick ? "1" : "0",
      TOKENLAB_BENCH_MICRO_BATCH: String(batches.batch),
      TOKENLAB_BENCH_POOL_BATCH: String(batches.poolBatch),
      NO_COLOR: "1",
    },
    timeoutMs,
  );
  if (ran.problem !== "" && ran.stdout === "") {
    return { figures: new Map(), meta: null, note: `ours: ${ran.problem}` };
  }
  const side = parseDenoBench(ran.stdout, ran.stderr);
  if (ran.problem !== "") {
    side.note = `ours: ${ran.problem}${side.note ? `; ${side.note}` : ""}`;
  }
  return side;
}

/** Runs torch_micro.py with one torch flavour. */
export async function runTorch(
  ref: TorchRef,
  threads: number,
  quick: boolean,
  batches: MicroBatches,
  timeoutMs: number,
): Promise<TorchSide> {
  const ran = await runProcess(
    ref.python,
    [
      TORCH_FILE.pathname,
      "--threads",
      String(threads),
      "--batch",
      String(batches.batch),
      "--pool-batch",
      String(batches.poolBatch),
      ...(quick ? ["--quick"] : []),
    ],
    ref.env,
    timeoutMs,
  );
  const side = parseTorchMicro(ran.stdout, ran.stderr);
  if (ran.problem !== "") {
    side.note = `torch: ${ran.problem}${side.note ? `; ${side.note}` : ""}`;
  } else if (side.figures.size === 0 && ran.code !== 0) {
    side.note = `torch exited ${ran.code}: ${side.note}`;
  }
  return side;
}

/** Options of {@linkcode microRecords}. */
export interface MicroOptions {
  backends: string[];
  /** Threads on both sides (torch is set to it; ours runs what it can). */
  threads: number;
  quick: boolean;
  torch: TorchRef[];
  /** Limit for one process (default 15 min quick, 90 min full). */
  timeoutMs?: number;
}

/** Runs both sides on every backend and joins them into records. */
export async function microRecords(opts: MicroOptions): Promise<BenchRecord[]> {
  const timeoutMs = opts.timeoutMs ??
    (opts.quick ? 15 : 90) * 60_000;
  const date = new Date().toISOString();
  const torchCache = new Map<string, TorchSide>();
  const records: BenchRecord[] = [];
  for (const backend of opts.backends) {
    const batches = microBatches(backend, opts.quick);
    const ours = await runOurs(backend, opts.quick, batches, timeoutMs);
    const torch: JoinInput["torch"] = [];
    for (const [i, ref] of opts.torch.entries()) {
      const key = `${i} ${batches.batch} ${batches.poolBatch}`;
      let side = torchCache.get(key);
      if (side === undefined) {
        side = await runTorch(
          ref,
          opts.threads,
          opts.quick,
          batches,
          timeoutMs,
        );
        torchCache.set(key, side);
      }
      torch.push({ ref, side });
    }
    records.push(
      ...joinMicro({
        backend,
        ours,
        torch,
        threads: opts.threads,
        batches,
        date,
      }),
    );
  }
  return records;
}

function fmt(v: number | null, digits = 3): string {
  if (v === null) return "-";
  return v >= 100 ? v.toFixed(0) : v.toPrecision(digits);
}

/** The records as a Markdown table. */
export function microTable(records: readonly BenchRecord[]): string {
  const rows = [
    "| config | backend | batch | ours calls/s | torch calls/s | ours/torch | reference | note |",
    "| --- | --- | ---: | ---: | ---: | ---: | --- | --- |",
  ];
  for (const r of records) {
    rows.push(
      `| ${r.config} | ${r.backend} | ${r.batch ?? "-"} | ${fmt(r.ours)} | ${
        fmt(r.pytorch)
      } | ${fmt(r.ratio)} | ${r.reference} | ${r.note} |`,
    );
  }
  return rows.join("\n");
}

/** `deno run -A tests/bench/micro.ts`: measures and prints the table. */
export async function main(args: readonly string[]): Promise<void> {
  let backends = ["wasm", "cpu"];
  let threads = 1;
  let quick = true;
  let python = "/usr/bin/python3";
  const libDirs: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const value = () => {
      const v = args[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === "--backends") backends = value().split(",").filter(Boolean);
    else if (a === "--threads") threads = Number(value());
    else if (a === "--full") quick = false;
    else if (a === "--python") python = value();
    else if (a === "--ld-library-path") libDirs.push(value());
    else {
      throw new Error(
        `unknown argument ${a}; usage: deno run -A tests/bench/micro.ts [--backends wasm,cpu] [--threads 1] [--full] [--python PATH] [--ld-library-path DIR]...`,
      );
    }
  }
  const torch: TorchRef[] = [
    { reference: "torch (default BLAS)", python, env: {} },
    ...libDirs.map((dir) => ({
      reference: `torch (LD_LIBRARY_PATH=${dir})`,
      python,
      env: { LD_LIBRARY_PATH: dir },
    })),
  ];
  const records = await microRecords({ backends, threads, quick, torch });
  console.log(microTable(records));
}

if (import.meta.main) await main(Deno.args);
