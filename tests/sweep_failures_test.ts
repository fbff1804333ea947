/**
 * A sweep's failures, from the command line, on the tiny ablation notebook
 * of tests/_sweep_notebook.ts (cpu backend):
 *
 * - jobs that fail (the token-label arm's batch size 0, which trainArm
 *   refuses as training starts) make the sweep exit non-zero naming each
 *   failed experiment with its log, which holds the error; the cache holds
 *   no result, lock, temporary file or run folder of theirs, and the other
 *   experiments are stored; with the cause fixed (`--param tlBatchSize=32`)
 *   the sweep run again computes only the missing ones and leaves the
 *   stored ones as they were;
 * - `experiments run KEY` killed (SIGKILL) once its run folder holds a
 *   checkpoint leaves no result, only its lock; run again, it takes the
 *   lock over (its holder is gone), resumes at the checkpoint's step, and
 *   stores the same value and curve as a run that was never interrupted.
 */

import { join } from "node:path";
import {
  assert,
  assertEquals,
  assertMatch,
  assertStringIncludes,
} from "./_assert.ts";
import { exists, ROOT, runCli } from "./_helpers.ts";
import { notebook } from "./_sweep_notebook.ts";

/** Every path under `dir`, relative to it. */
async function walk(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    out.push(rel);
    if (e.isDirectory) out.push(...await walk(join(dir, e.name), rel));
  }
  return out;
}

/** The stored results of experiment `name` (`KEY-CODE.json`), by key. */
async function results(
  cache: string,
  name: string,
): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  if (!await exists(join(cache, name))) return found;
  for await (const e of Deno.readDir(join(cache, name))) {
    const m = /^([0-9a-f]{16})-[0-9a-f]+\.json$/.exec(e.name);
    if (m && e.isFile) {
      found.set(m[1], await Deno.readTextFile(join(cache, name, e.name)));
    }
  }
  return found;
}

/** The experiments `tokenlab experiments list --json` lists. */
async function list(
  nb: string,
  args: string[],
  env: Record<string, string>,
): Promise<{ key: string; name: string; cached: boolean }[]> {
  const r = await runCli(["experiments", "list", nb, ...args, "--json"], env);
  assertEquals(r.code, 0, r.stderr);
  return JSON.parse(r.stdout).experiments;
}

Deno.test("sweep: failed jobs leave only their logs; run again, the sweep computes only what is missing", async () => {
  const root = await Deno.makeTempDir({
    dir: `${ROOT}tests`,
    prefix: ".tmp-sweep-fail-",
  });
  try {
    const nb = join(root, "failing_ablation.ipynb");
    await Deno.writeTextFile(
      nb,
      notebook("trainArm", { tlBatchSize: 0 }),
    );
    const cache = join(root, "cache");
    const env = { TOKENLAB_RESULTS_DIR: cache, TOKENLAB_BACKEND: "cpu" };

    const first = await runCli(
      ["sweep", nb, "--scale", "tiny", "--executor", "local", "--jobs", "2"],
      env,
    );
    assertEquals(first.code, 1, first.stderr);
    assertStringIncludes(first.stderr, "2 jobs failed (no result stored)");
    assertStringIncludes(
      first.stderr,
      "2 done, 0 running, 0 pending, 2 failed",
    );
    const failed = [
      ...first.stderr.matchAll(/^ {2}(\S+) \(([0-9a-f]{16})\): log (.+)$/gm),
    ].map((m) => ({ name: m[1], key: m[2], log: m[3] }));
    assertEquals(failed.map((f) => f.name), ["sweep-test-tl", "sweep-test-tl"]);
    assertEquals(new Set(failed.map((f) => f.key)).size, 2);
    for (const f of failed) {
      // The log is the job's, under the cache's .sweep-logs, and says why.
      assert(f.log.startsWith(join(cache, ".sweep-logs")), f.log);
      assert(f.log.endsWith(`${f.key}.log`), f.log);
      const log = await Deno.readTextFile(f.log);
      assertMatch(log, /batchSize\b.*found 0/);
      assertMatch(first.stderr, new RegExp(`${f.key}: exit [1-9]\\d*, log `));
    }

    // The failed ones left nothing in the cache but their plan records and
    // logs: no result, no lock, no temporary file, no run folder.
    const files = await walk(cache);
    for (const f of failed) {
      assertEquals(
        files.filter((p) =>
          p.includes(f.key) && !p.startsWith(".plan/") &&
          !p.startsWith(".sweep-logs/")
        ),
        [],
      );
    }
    assertEquals(
      files.filter((p) => /\.lock|\.tmp|\.stale-/.test(p)),
      [],
    );
    assertEquals(files.filter((p) => p.startsWith(".runs/")), []);
    assertEquals((await results(cache, "sweep-test-tl")).size, 0);
    const plain = await results(cache, "sweep-test-plain");
    assertEquals(plain.size, 2);

    // The cause fixed, the sweep computes the two missing experiments only.
    const second = await runCli(
      [
        "sweep",
        nb,
        "--scale",
        "tiny",
        "--param",
        "tlBatchSize=32",
        "--jobs",
        "2",
      ],
      env,
    );
    assertEquals(second.code, 0, second.stderr);
    assertStringIncludes(second.stdout, "2 computed, 4 experiments listed");
    assertStringIncludes(
      second.stderr,
      "4 experiments, 2 in the cache, 2 to compute",
    );
    assertEquals(await results(cache, "sweep-test-plain"), plain);
    const tl = await results(cache, "sweep-test-tl");
    assertEquals(tl.size, 2);
    assert(failed.every((f) => !tl.has(f.key)));
    const listed = await list(
      nb,
      ["--scale", "tiny", "--param", "tlBatchSize=32"],
      env,
    );
    assertEquals(listed.length, 4);
    assert(listed.every((e) => e.cached));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("experiments run: a job killed mid-training resumes from its checkpoint when run again", async () => {
  const root = await Deno.makeTempDir({
    dir: `${ROOT}tests`,
    prefix: ".tmp-sweep-kill-",
  });
  let child: Deno.ChildProcess | null = null;
  try {
    const nb = join(root, "sweep_ablation.ipynb");
    await Deno.writeTextFile(nb, notebook("trainArm"));
    const cache = join(root, "cache");
    const env = { TOKENLAB_RESULTS_DIR: cache, TOKENLAB_BACKEND: "cpu" };
    // smoke: 2 epochs of 2 steps, a checkpoint after each epoch.
    const listed = await list(nb, ["--scale", "smoke"], env);
    const { key, name } = listed.find((e) => e.name === "sweep-test-plain")!;

    child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "lib/cli/main.ts", "experiments", "run", key],
      cwd: ROOT,
      env: { NO_COLOR: "1", ...env },
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const pid = child.pid;
    let ended = false;
    const status = child.status.finally(() => ended = true);
    const runs = join(cache, ".runs");
    let runDir: string | null = null;
    const checkpoints = async (): Promise<string[]> => {
      if (runDir === null) return [];
      const dir = join(runDir, "checkpoints");
      if (!await exists(dir)) return [];
      const names: string[] = [];
      for await (const e of Deno.readDir(dir)) {
        if (e.isDirectory && /^step-\d{8,}$/.test(e.name)) names.push(e.name);
      }
      return names.sort();
    };
    const deadline = Date.now() + 150_000;
    while ((await checkpoints()).length === 0) {
      assert(!ended, "the job ended before it wrote a checkpoint");
      assert(Date.now() < deadline, "no checkpoint after 150 s");
      if (runDir === null && await exists(runs)) {
        for await (const e of Deno.readDir(runs)) {
          if (e.name.startsWith(`${name}-${key}-`)) runDir = join(runs, e.name);
        }
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill("SIGKILL");
    assertEquals((await status).signal, "SIGKILL");
    child = null;

    // Killed: no result, its lock left behind, the checkpoint kept.
    assertEquals((await results(cache, name)).size, 0);
    const lock = (await walk(cache)).filter((p) => p.endsWith(".lock"));
    assertEquals(lock.length, 1);
    assertEquals(
      JSON.parse(await Deno.readTextFile(join(cache, lock[0]))).pid,
      pid,
    );
    const newest = (await checkpoints()).at(-1)!;
    const step = Number(newest.slice("step-".length));
    assert(step >= 2 && step < 4, newest);

    const again = await runCli(["experiments", "run", key], env);
    assertEquals(again.code, 0, again.stderr);
    assertStringIncludes(again.stderr, "took over the lock");
    assertStringIncludes(again.stderr, `process ${pid} on this host, is gone`);
    assertMatch(
      again.stderr,
      new RegExp(`resumed the run .* at step ${step} of 4\\b`),
    );
    assertStringIncludes(again.stderr, "computed and stored");
    const stored = await results(cache, name);
    assertEquals([...stored.keys()], [key]);
    assert(!await exists(runDir!), "the run folder is removed once stored");
    assertEquals(
      (await walk(cache)).filter((p) => /\.lock|\.tmp|\.stale-/.test(p)),
      [],
    );

    // The same experiment computed without interruption, in a cache of its own.
    const env2 = { ...env, TOKENLAB_RESULTS_DIR: join(root, "cache2") };
    const listed2 = await list(nb, ["--scale", "smoke"], env2);
    assert(listed2.some((e) => e.key === key));
    const direct = await runCli(["experiments", "run", key], env2);
    assertEquals(direct.code, 0, direct.stderr);
    assert(!direct.stderr.includes("resumed"), direct.stderr);
    const reference = await results(join(root, "cache2"), name);
    const a = JSON.parse(stored.get(key)!).value;
    const b = JSON.parse(reference.get(key)!).value;
    assertEquals(a.value, b.value);
    assertEquals(a.curve, b.curve);
    assertEquals(a.curve.length, 2);
  } finally {
    if (child !== null) {
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
      await child.status;
    }
    await Deno.remove(root, { recursive: true });
  }
});
