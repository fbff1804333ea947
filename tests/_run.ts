/**
 * Runs the test suite in its two tiers (tests/_tiers.ts), each as
 * `deno test -A --doc ...` in a child process, its output passed through as
 * it comes, and says how long each tier took.
 *
 * - `deno run -A tests/_run.ts` (`deno task test`): the unit tier with the
 *   doc tests of lib/ (in a second process beside it, their output after),
 *   then the integration tier.
 * - `--tier=unit` (`deno task test:quick`): the unit tier and doc tests.
 * - `--tier=integration` (`deno task test:integration`): the other one.
 *
 * Other arguments (`--filter x`) go to each `deno test`. The exit code is
 * the first failing tier's, or 0.
 *
 * One exception to "the exit code is the child's": on machines without a
 * GPU, WebGPU runs on Mesa's software Vulkan driver (lavapipe), and about one
 * full run in ten was seen to abort with glibc's "double free or corruption"
 * while the process exits, after every test had passed and the summary was
 * printed (a teardown crash in native code, not a test failure; it did not
 * reproduce in isolation). When a tier's child dies of SIGABRT after
 * printing `ok | N passed | 0 failed`, this says so loudly and counts the
 * tier as passed. Any other abort, any failure, and any crash before the
 * summary keep their code.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { INTEGRATION_TESTS } from "./_tiers.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const TIERS = ["unit", "integration"] as const;
type Tier = typeof TIERS[number];

/** Test files under `dir` (relative to the root), as `deno test` finds them. */
async function testFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(`${ROOT}${dir}`)) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory) {
      // Temporary folders of running tests, and the fixtures' data.
      if (e.name.startsWith(".") || e.name === "fixtures") continue;
      out.push(...await testFiles(path));
    } else if (/^(.*[._])?test\.(ts|tsx|mts|js|mjs|jsx)$/.test(e.name)) {
      out.push(path);
    }
  }
  return out.sort();
}

/** The files of each tier; a listed integration file that is gone is an error. */
async function tierFiles(): Promise<Record<Tier, string[]>> {
  const all = await testFiles("tests");
  const listed = Object.keys(INTEGRATION_TESTS);
  const gone = listed.filter((f) => !all.includes(f));
  if (gone.length > 0) {
    console.error(
      `tokenlab test: tests/_tiers.ts lists ${
        gone.join(", ")
      }, but no such test file exists: update the list (a renamed file must be listed under its new name)`,
    );
    Deno.exit(2);
  }
  return {
    unit: all.filter((f) => !listed.includes(f)),
    integration: listed.slice().sort(),
  };
}

const SUMMARY = /ok \| \d+ passed(?: \(\d+ steps?\))? \| 0 failed/;

/**
 * Runs `deno test -A --doc ...paths` and returns its exit code (0 also for
 * an abort after a clean summary). Its output is passed through as it
 * comes, or, with `held`, kept and handed back to be printed later.
 */
async function runChild(
  what: string,
  paths: string[],
  extra: string[],
  held = false,
): Promise<{ code: number; output: Uint8Array[] }> {
  // With no paths, deno test would run every test under the folder.
  if (paths.length === 0) return { code: 0, output: [] };
  const child = new Deno.Command(Deno.execPath(), {
    args: ["test", "-A", "--doc", ...paths, ...extra],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const dec = new TextDecoder();
  const output: Uint8Array[] = [];
  let tail = "";
  let summarySeen = false;
  const pump = async (
    stream: ReadableStream<Uint8Array>,
    out: typeof Deno.stdout,
  ): Promise<void> => {
    for await (const chunk of stream) {
      if (held) output.push(chunk);
      else await out.write(chunk);
      tail = (tail + dec.decode(chunk, { stream: true })).slice(-4096);
      // deno-lint-ignore no-control-regex
      if (SUMMARY.test(tail.replace(/\x1b\[[0-9;]*m/g, ""))) summarySeen = true;
    }
  };
  await Promise.all([
    pump(child.stdout, Deno.stdout),
    pump(child.stderr, Deno.stderr),
  ]);
  const status = await child.status;
  if (status.success) return { code: 0, output };
  const aborted = status.signal === "SIGABRT" || status.code === 134;
  if (aborted && summarySeen) {
    output.push(new TextEncoder().encode(
      `\ntokenlab test: every test of ${what} passed; the test process then aborted while exiting ` +
        "(a native teardown crash, see tests/_run.ts); counted as a pass\n",
    ));
    if (!held) await Deno.stderr.write(output.pop()!);
    return { code: 0, output };
  }
  return { code: status.code === 0 ? 1 : status.code, output };
}

/**
 * Runs one tier; its exit code. The unit tier runs lib/'s doc tests in a
 * second process beside its test files (they share nothing, and loading
 * hundreds of doc modules is most of their time); their output follows.
 */
async function runTier(
  tier: Tier,
  files: string[],
  extra: string[],
): Promise<number> {
  if (tier === "integration") {
    return (await runChild("the integration tier", files, extra)).code;
  }
  const [unit, doc] = await Promise.all([
    runChild("the unit tier", files, extra),
    runChild("lib/'s doc tests", ["lib/"], extra, true),
  ]);
  console.log("\ntokenlab test: lib/'s doc tests (run beside the unit tier):");
  for (const chunk of doc.output) await Deno.stdout.write(chunk);
  return unit.code !== 0 ? unit.code : doc.code;
}

function minutes(ms: number): string {
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${s % 60}s`;
}

const tierArg = Deno.args.find((a) => a.startsWith("--tier="));
const extra = Deno.args.filter((a) => a !== tierArg);
const wanted = tierArg?.slice("--tier=".length) ?? "all";
if (wanted !== "all" && !(TIERS as readonly string[]).includes(wanted)) {
  console.error(
    `tokenlab test: --tier must be unit, integration or all, found "${wanted}"`,
  );
  Deno.exit(2);
}
const files = await tierFiles();
const results: string[] = [];
let code = 0;
for (const tier of TIERS) {
  if (wanted !== "all" && wanted !== tier) continue;
  const t0 = performance.now();
  const c = await runTier(tier, files[tier], extra);
  results.push(
    `${tier} tier (${files[tier].length} test files${
      tier === "unit" ? " and lib/'s doc tests" : ""
    }): ${c === 0 ? "passed" : `failed (exit code ${c})`} in ${
      minutes(performance.now() - t0)
    }`,
  );
  if (code === 0) code = c;
}
console.log(`\ntokenlab test: ${results.join("; ")}`);
Deno.exit(code);
