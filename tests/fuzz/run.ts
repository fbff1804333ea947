/**
 * The fuzzing harness (`deno task fuzz`): mutates valid inputs of every
 * reader of untrusted files and classifies each case as a success, the
 * reader's own error, a defect (any other exception, or a crash), a hang
 * (past the time bound) or memory (past the memory bound).
 *
 * Each reader's cases run in a child Deno process (tests/fuzz/_child.ts)
 * that reports each case's start and end; this process times every case,
 * polls the child's resident memory (Linux: /proc/<pid>/status), kills the
 * child on a hang or a blow-up and starts a new one at the next case. Case
 * i of reader r under seed s is made from `Rng.derive(s, id(r), i)` alone:
 * `--case i` replays it.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { copyTree } from "./_reader.ts";
import { type CaseEnd, MARK } from "./_child.ts";
import { type ReaderEntry, readerNamed, READERS } from "./readers/mod.ts";

/** Options of {@linkcode runFuzz}. */
export interface FuzzOptions {
  /** Cases per reader (default 10 000). */
  cases?: number;
  /** The first case index (default 0; `--case` sets it with `cases: 1`). */
  from?: number;
  /** Readers by name (default: all). */
  readers?: readonly string[];
  /** The run's seed (default 1). */
  seed?: number;
  /** Time bound per case, in milliseconds (default 5000). */
  timeMs?: number;
  /** Resident memory bound of a child, in MiB (default 1024). */
  memoryMb?: number;
  /** A folder to save the inputs of defect, hang and memory cases in. */
  keep?: string;
  /** Readers fuzzed at once (default 1). */
  jobs?: number;
  /** Show each case's mutation and every error's stack (for replaying a case). */
  verbose?: boolean;
  /** Where progress lines go (default: console.log). */
  log?: (line: string) => void;
}

/** How a bad case ended. */
export type BadKind = "defect" | "crash" | "hang" | "memory";

/** Bad cases that ended the same way at the same place. */
export interface DefectClass {
  /** How they ended. */
  kind: BadKind;
  /** The error's class name (defects), or what killed the child. */
  name: string;
  /** The top stack frame outside the harness (defects). */
  frame: string;
  /** The first case's message. */
  message: string;
  /** Cases of this class. */
  count: number;
  /** The first case's index. */
  firstCase: number;
  /** The first case's mutation. */
  what: string[];
  /** Where the first case's input was saved (with `keep`). */
  saved: string | null;
  /** The command that replays the first case. */
  repro: string;
}

/** One reader's figures. */
export interface ReaderResult {
  /** The reader's name. */
  reader: string;
  /** Cases run. */
  cases: number;
  /** Cases read without an error. */
  success: number;
  /** Cases refused with the reader's own error. */
  own: number;
  /** Cases that threw anything else, or crashed the child. */
  defects: number;
  /** Cases past the time bound. */
  hangs: number;
  /** Cases past the memory bound. */
  memory: number;
  /** Wall time, in seconds. */
  seconds: number;
  /** The bad cases, by class. */
  classes: DefectClass[];
  /**
   * Where the own errors were thrown (top frame: count, most first): how
   * deep into the reader the mutations get.
   */
  ownAt: Record<string, number>;
}

/** What {@linkcode runFuzz} found. */
export interface FuzzSummary {
  /** The run's seed. */
  seed: number;
  /** Cases per reader asked for. */
  cases: number;
  /** The time bound per case (ms). */
  timeMs: number;
  /** The memory bound (MiB). */
  memoryMb: number;
  /** Whether memory was watched (Linux only). */
  memoryChecked: boolean;
  /** Per reader. */
  readers: ReaderResult[];
  /** True when any case was a defect, hang or memory case. */
  failed: boolean;
}

const CHILD = new URL("./_child.ts", import.meta.url).pathname;
const ROOT = new URL("../../", import.meta.url).pathname;
const MEMORY_CHECKED = Deno.build.os === "linux";
const STARTUP_MS = 180_000;

/** Resident memory of a process in MiB (null where it cannot be read). */
function rssMb(pid: number): number | null {
  try {
    const s = Deno.readTextFileSync(`/proc/${pid}/status`);
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(s);
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

function childArgs(
  entry: ReaderEntry,
  dirs: { seeds: string; work: string },
  o: Required<Pick<FuzzOptions, "seed" | "memoryMb">> & FuzzOptions,
  extra: string[],
): string[] {
  return [
    "run",
    "-A",
    `--v8-flags=--max-old-space-size=${o.memoryMb}`,
    CHILD,
    "--reader",
    entry.name,
    "--seeds",
    dirs.seeds,
    "--work",
    dirs.work,
    "--seed",
    String(o.seed),
    ...(o.keep !== undefined ? ["--keep", o.keep] : []),
    ...(o.verbose ? ["--verbose"] : []),
    ...extra,
  ];
}

async function prepare(entry: ReaderEntry, seeds: string, o: FuzzOptions) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      CHILD,
      "--reader",
      entry.name,
      "--seeds",
      seeds,
      "--prepare",
    ],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  if (!out.success) {
    throw new Error(
      `fuzz: preparing the seeds of ${entry.name} failed (exit ${out.code}):\n${
        new TextDecoder().decode(out.stderr)
      }`,
    );
  }
  if (o.verbose) await Deno.stderr.write(out.stderr);
}

/** Reads a stream to its end, keeping its last `max` characters. */
async function tail(
  stream: ReadableStream<Uint8Array>,
  max: number,
  echo: boolean,
): Promise<string> {
  let text = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    if (echo) await Deno.stderr.write(new TextEncoder().encode(chunk));
    text = (text + chunk).slice(-max);
  }
  return text;
}

const OOM = /out of memory|heap limit|allocation failed|OOM/i;

/** Fuzzes one reader: its cases in children, restarted after a hang, a blow-up or a crash. */
async function fuzzReader(
  entry: ReaderEntry,
  tmp: string,
  o:
    & Required<Pick<FuzzOptions, "seed" | "memoryMb" | "timeMs" | "cases">>
    & FuzzOptions,
): Promise<ReaderResult> {
  const t0 = performance.now();
  const dirs = {
    seeds: `${tmp}/${entry.name}/seeds`,
    work: `${tmp}/${entry.name}/work`,
  };
  await Deno.mkdir(dirs.work, { recursive: true });
  await prepare(entry, dirs.seeds, o);
  const result: ReaderResult = {
    reader: entry.name,
    cases: 0,
    success: 0,
    own: 0,
    defects: 0,
    hangs: 0,
    memory: 0,
    seconds: 0,
    classes: [],
    ownAt: {},
  };
  const ownAt = new Map<string, number>();
  const classes = new Map<string, DefectClass>();
  const from = o.from ?? 0;
  const end = from + o.cases;
  const what = new Map<number, string[]>();
  const bad = async (
    kind: BadKind,
    i: number,
    name: string,
    frame: string,
    message: string,
  ) => {
    if (kind === "hang") result.hangs++;
    else if (kind === "memory") result.memory++;
    else result.defects++;
    // by line, not column: an await and its call differ only in the column
    const key = `${kind} ${name} ${frame.replace(/:\d+$/, "")}`;
    const known = classes.get(key);
    if (known) {
      known.count++;
      return;
    }
    let saved: string | null = null;
    if (o.keep !== undefined) {
      saved = `${o.keep}/${entry.name}-${o.seed}-${i}`;
      if (kind !== "defect") {
        // the child was killed or died: the case is still in its folder
        await Deno.remove(saved, { recursive: true }).catch(() => {});
        const skipped = await copyTree(`${dirs.work}/case`, saved).catch(
          () => [],
        );
        await Deno.writeTextFile(
          `${saved}/CASE.txt`,
          `reader ${entry.name}, seed ${o.seed}, case ${i}: ${kind}\nmutation: ${
            (what.get(i) ?? []).join(" ")
          }\n${
            skipped.length ? `not kept (too big): ${skipped.join(", ")}\n` : ""
          }\n${message}\n`,
        );
      }
    }
    classes.set(key, {
      kind,
      name,
      frame,
      message,
      count: 1,
      firstCase: i,
      what: what.get(i) ?? [],
      saved,
      repro:
        `deno task fuzz --reader ${entry.name} --seed ${o.seed} --case ${i}`,
    });
  };

  let next = from;
  while (next < end) {
    const child = new Deno.Command(Deno.execPath(), {
      args: childArgs(entry, dirs, o, [
        "--from",
        String(next),
        "--to",
        String(end),
      ]),
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    const errText = tail(child.stderr, 16_384, o.verbose ?? false);
    let current: number | null = null;
    let startedAt = 0;
    let ready = false;
    let lastDone = next - 1;
    let lastOutcome: CaseEnd["outcome"] | null = null;
    let harnessError: { i: number; message: string } | null = null;
    let killed: { kind: "hang" | "memory"; i: number; why: string } | null =
      null;
    const spawnedAt = performance.now();
    const kill = (kind: "hang" | "memory", i: number, why: string) => {
      if (killed) return;
      killed = { kind, i, why };
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
    };
    const watch = setInterval(() => {
      const now = performance.now();
      if (current !== null && now - startedAt > o.timeMs) {
        kill("hang", current, `no result after ${o.timeMs} ms`);
      } else if (!ready && now - spawnedAt > STARTUP_MS) {
        kill("hang", -1, `the child did not start in ${STARTUP_MS} ms`);
      }
      if (MEMORY_CHECKED) {
        const mb = rssMb(child.pid);
        if (mb !== null && mb > o.memoryMb) {
          kill(
            "memory",
            current ?? -1,
            `resident memory ${Math.round(mb)} MiB > ${o.memoryMb} MiB`,
          );
        }
      }
    }, 5);
    let buffer = "";
    for await (
      const chunk of child.stdout.pipeThrough(new TextDecoderStream())
    ) {
      buffer += chunk;
      let nl: number;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (!line.startsWith(MARK)) continue;
        const msg = JSON.parse(line.slice(MARK.length));
        if (msg.t === "ready") ready = true;
        else if (msg.t === "start") {
          current = msg.i;
          startedAt = performance.now();
        } else if (msg.t === "made") what.set(msg.i, msg.what);
        else if (msg.t === "harness") harnessError = msg;
        else if (msg.t === "end") {
          const e = msg as CaseEnd & { t: string };
          current = null;
          lastDone = e.i;
          lastOutcome = e.outcome;
          result.cases++;
          what.set(e.i, e.what);
          if (e.outcome === "success") result.success++;
          else if (e.outcome === "own") {
            result.own++;
            const f = e.frame ?? "?";
            ownAt.set(f, (ownAt.get(f) ?? 0) + 1);
          } else {
            await bad(
              "defect",
              e.i,
              e.name ?? "?",
              e.frame ?? "?",
              e.message ?? "",
            );
          }
          what.delete(e.i - 1);
        }
      }
    }
    const status = await child.status;
    clearInterval(watch);
    const stderr = await errText;
    const h = harnessError as { i: number; message: string } | null;
    if (h !== null) {
      throw new Error(
        `fuzz: making case ${h.i} of ${entry.name} failed (a bug of the harness, not of the reader):\n${h.message}`,
      );
    }
    const k = killed as
      | { kind: "hang" | "memory"; i: number; why: string }
      | null;
    if (k !== null && k.i < 0 && k.kind === "memory" && lastDone >= next) {
      // over the bound between cases: what the last case left behind
      if (lastOutcome === "success") result.success--;
      else if (lastOutcome === "own") result.own--;
      else result.defects--;
      result.cases--;
      k.i = lastDone;
      k.why += ` (between cases, after case ${lastDone})`;
    }
    if (k !== null) {
      if (k.i < 0) {
        throw new Error(
          `fuzz: the ${entry.name} child was killed before any case (${k.why}):\n${stderr}`,
        );
      }
      result.cases++;
      await bad(k.kind, k.i, k.kind, "", k.why);
      next = k.i + 1;
      continue;
    }
    // Every case ended: a failing exit without an uncaught error is the
    // runtime's teardown (see tests/_run.ts), not a case's doing.
    if (
      lastDone === end - 1 && current === null &&
      (status.success || !/error: Uncaught/.test(stderr))
    ) break;
    // The child died on its own.
    const i = current ?? lastDone;
    if (current === null && !ready) {
      throw new Error(
        `fuzz: the ${entry.name} child failed to start (exit ${status.code}):\n${stderr}`,
      );
    }
    if (current === null) {
      // after a case had ended (a rejection surfacing later): that case is bad
      if (lastOutcome === "success") result.success--;
      else if (lastOutcome === "own") result.own--;
      else result.defects--;
    }
    if (current !== null) result.cases++;
    const uncaught = /error: Uncaught[^\n]*/.exec(stderr);
    const message = uncaught
      ? uncaught[0]
      : stderr.trim().split("\n").slice(-6).join("\n");
    await bad(
      OOM.test(stderr) ? "memory" : "crash",
      i,
      OOM.test(stderr)
        ? "memory"
        : `exit ${status.code}${status.signal ? ` ${status.signal}` : ""}`,
      "",
      message,
    );
    next = i + 1;
  }
  result.classes = [...classes.values()];
  result.ownAt = Object.fromEntries(
    [...ownAt].sort((a, b) => b[1] - a[1]),
  );
  result.seconds = (performance.now() - t0) / 1000;
  return result;
}

/** One reader's figures as one line, then one line per bad class. */
export function formatResult(r: ReaderResult): string[] {
  const lines = [
    `${r.reader.padEnd(13)} ${
      String(r.cases).padStart(6)
    } cases: ${r.success} success, ${r.own} own error, ${r.defects} defects, ${r.hangs} hangs, ${r.memory} memory (${
      r.seconds.toFixed(1)
    } s)`,
  ];
  for (const c of r.classes) {
    const at = c.frame ? ` at ${c.frame}` : "";
    lines.push(
      `  ${c.kind} ${c.name}${at}: ${c.count} case${
        c.count > 1 ? "s" : ""
      }, first ${c.firstCase}: ${c.message.split("\n")[0].slice(0, 200)}`,
      `    mutation: ${c.what.join(" ").slice(0, 200)}`,
      `    ${c.saved ? `saved: ${c.saved}; ` : ""}replay: ${c.repro}`,
    );
  }
  return lines;
}

/**
 * Fuzzes the readers and returns the figures (printing one line per reader
 * as it finishes).
 *
 * @example
 * ```ts ignore
 * import { runFuzz } from "./run.ts";
 * const s = await runFuzz({ cases: 50, readers: ["notebook"] });
 * console.log(s.failed);
 * ```
 */
export async function runFuzz(options: FuzzOptions = {}): Promise<FuzzSummary> {
  const o = {
    cases: 10_000,
    seed: 1,
    timeMs: 5_000,
    memoryMb: 1_024,
    jobs: 1,
    ...Object.fromEntries(
      Object.entries(options).filter(([, v]) => v !== undefined),
    ) as FuzzOptions,
  };
  const names = o.readers && o.readers.length > 0
    ? o.readers
    : READERS.map((r) => r.name);
  const entries = names.map((n) => {
    const e = readerNamed(n);
    if (!e) {
      throw new Error(
        `fuzz: unknown reader "${n}"; expected one of ${
          READERS.map((r) => r.name).join(", ")
        }`,
      );
    }
    return e;
  });
  const log = o.log ?? ((l: string) => console.log(l));
  if (!MEMORY_CHECKED) {
    log(
      `fuzz: memory is unchecked on ${Deno.build.os} (it is read from /proc on Linux)`,
    );
  }
  const tmp = await Deno.makeTempDir({ prefix: "tokenlab-fuzz-" });
  const results: ReaderResult[] = new Array(entries.length);
  try {
    let at = 0;
    const worker = async () => {
      while (at < entries.length) {
        const k = at++;
        results[k] = await fuzzReader(entries[k], tmp, o);
        for (const line of formatResult(results[k])) log(line);
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, o.jobs) }, worker));
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
  return {
    seed: o.seed,
    cases: o.cases,
    timeMs: o.timeMs,
    memoryMb: o.memoryMb,
    memoryChecked: MEMORY_CHECKED,
    readers: results,
    failed: results.some((r) => r.defects + r.hangs + r.memory > 0),
  };
}

const HELP = `deno task fuzz [options]

Mutates valid inputs of every reader of untrusted files and classifies each
case: success, the reader's own error, defect (any other exception, or a
crash), hang (past --time-ms), memory (past --memory-mb). Exit 1 if any case
is a defect, hang or memory case.

Options:
  --cases N         cases per reader (default 10000)
  --reader NAME     a reader to fuzz (repeatable; default all):
${
  READERS.map((r) => `                      ${r.name.padEnd(13)} ${r.about}`)
    .join("\n")
}
  --seed S          the run's seed (default 1); case i of a reader depends on (S, reader, i) only
  --case I          replay case I only, showing its mutation and the full stack
  --time-ms MS      time bound per case (default 5000)
  --memory-mb MB    resident memory bound of a child (default 1024; Linux only)
  --jobs N          readers fuzzed at once (default 1)
  --out FILE        write the figures as JSON
  --keep DIR        save the input of every bad class's first case under DIR
  --help            this text
`;

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: Deno.args,
      options: {
        cases: { type: "string" },
        reader: { type: "string", multiple: true },
        seed: { type: "string" },
        case: { type: "string" },
        "time-ms": { type: "string" },
        "memory-mb": { type: "string" },
        jobs: { type: "string" },
        out: { type: "string" },
        keep: { type: "string" },
        help: { type: "boolean", default: false },
      },
    }));
  } catch (e) {
    console.error(`fuzz: ${(e as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const int = (flag: string, v: string | undefined, min: number) => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) {
      throw new Error(
        `fuzz: --${flag} expects a whole number >= ${min}, found "${v}"`,
      );
    }
    return n;
  };
  let options: FuzzOptions;
  try {
    const one = int("case", values.case, 0);
    options = {
      cases: one !== undefined ? 1 : int("cases", values.cases, 1),
      from: one,
      readers: values.reader,
      seed: int("seed", values.seed, 0),
      timeMs: int("time-ms", values["time-ms"], 1),
      memoryMb: int("memory-mb", values["memory-mb"], 64),
      jobs: int("jobs", values.jobs, 1),
      keep: values.keep,
      verbose: one !== undefined,
    };
  } catch (e) {
    console.error((e as Error).message);
    return 2;
  }
  const summary = await runFuzz(options);
  if (values.out !== undefined) {
    await Deno.writeTextFile(
      values.out,
      JSON.stringify(summary, null, 2) + "\n",
    );
  }
  const bad = summary.readers.reduce(
    (n, r) => n + r.defects + r.hangs + r.memory,
    0,
  );
  console.log(
    bad === 0
      ? `fuzz: no defects, hangs or memory cases in ${
        summary.readers.reduce((n, r) => n + r.cases, 0)
      } cases`
      : `fuzz: ${bad} bad cases; replay one with the command shown, fix the reader, add a regression test`,
  );
  return summary.failed ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main());
