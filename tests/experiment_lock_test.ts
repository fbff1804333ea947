/**
 * The lock of a results-cache entry: two concurrent computes of one key run
 * the compute once and both get the same result; a stale lock (an old
 * heartbeat, or a holder process that is gone) is taken over with a
 * warning; a failed compute leaves neither a result nor a lock; a live lock
 * with skipLocked is refused with its own error class.
 */

import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { experiment } from "../lib/report/cache.ts";
import { ExperimentLockedError } from "../lib/report/experiment_lock.ts";
import { experimentKey } from "../lib/report/experiment_key.ts";
import { codeVersion } from "../lib/report/origin.ts";
import { ROOT } from "./_helpers.ts";

async function tempDirs() {
  const root = await Deno.makeTempDir({
    dir: `${ROOT}tests`,
    prefix: ".tmp-lock-",
  });
  return { root, cacheDir: `${root}/cache`, frozenDir: `${root}/frozen` };
}

async function entryFiles(dir: string, name: string): Promise<string[]> {
  try {
    const out: string[] = [];
    for await (const e of Deno.readDir(`${dir}/${name}`)) out.push(e.name);
    return out.sort();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
}

async function lockPath(cacheDir: string, name: string, config: unknown) {
  const { configKey } = await experimentKey(name, config);
  return `${cacheDir}/${name}/${configKey}-${await codeVersion()}.lock`;
}

Deno.test("lock: two concurrent computes of one key compute once, both get the result", async () => {
  const d = await tempDirs();
  try {
    let calls = 0;
    const compute = async () => {
      calls++;
      await new Promise((r) => setTimeout(r, 300));
      return { top1: 51.5, calls };
    };
    const options = { ...d, lock: { pollMs: 20 } };
    const [a, b] = await Promise.all([
      experiment("lock-twice", { seed: 1 }, compute, options),
      experiment("lock-twice", { seed: 1 }, compute, options),
    ]);
    assertEquals(calls, 1);
    assertEquals(a.value, b.value);
    assertEquals([a.source, b.source].sort(), ["cache", "computed"]);
    // Only the result is left: no lock, no temporary files.
    const left = await entryFiles(d.cacheDir, "lock-twice");
    assertEquals(left.length, 1);
    assert(left[0].endsWith(".json"), left[0]);
  } finally {
    await Deno.remove(d.root, { recursive: true });
  }
});

Deno.test("lock: a stale lock is taken over with a warning", async () => {
  for (const holder of ["old heartbeat", "gone process"]) {
    const d = await tempDirs();
    try {
      const path = await lockPath(d.cacheDir, "lock-stale", { seed: 2 });
      await Deno.mkdir(`${d.cacheDir}/lock-stale`, { recursive: true });
      const old = new Date(Date.now() - 3_600_000).toISOString();
      const now = new Date().toISOString();
      await Deno.writeTextFile(
        path,
        JSON.stringify(
          holder === "old heartbeat"
            ? {
              host: "elsewhere",
              pid: 1,
              started: old,
              heartbeat: old,
              token: "t-old",
            }
            : {
              host: Deno.hostname(),
              // A pid above Linux's pid_max: no such process.
              pid: 2 ** 22 + 7,
              started: now,
              heartbeat: now,
              token: "t-gone",
            },
        ),
      );
      const warnings: string[] = [];
      const r = await experiment(
        "lock-stale",
        { seed: 2 },
        () => ({ top1: 1 }),
        {
          ...d,
          lock: { pollMs: 20 },
          onWarning: (m) => warnings.push(m),
        },
      );
      assertEquals(r.source, "computed");
      assertEquals(warnings.length, 1, holder);
      assert(warnings[0].includes(path), warnings[0]);
      assertEquals(
        (await entryFiles(d.cacheDir, "lock-stale")).filter((f) =>
          !f.endsWith(".json")
        ),
        [],
      );
    } finally {
      await Deno.remove(d.root, { recursive: true });
    }
  }
});

Deno.test("lock: a failed compute leaves no result and no lock", async () => {
  const d = await tempDirs();
  try {
    await assertRejects(
      () =>
        experiment("lock-fail", { seed: 3 }, () => {
          throw new RangeError("training diverged");
        }, d),
      RangeError,
    );
    assertEquals(await entryFiles(d.cacheDir, "lock-fail"), []);
    // The next worker computes it.
    const r = await experiment("lock-fail", { seed: 3 }, () => ({ ok: 1 }), d);
    assertEquals(r.source, "computed");
  } finally {
    await Deno.remove(d.root, { recursive: true });
  }
});

Deno.test("lock: a live lock with skipLocked is refused with ExperimentLockedError", async () => {
  const d = await tempDirs();
  try {
    const path = await lockPath(d.cacheDir, "lock-live", { seed: 4 });
    await Deno.mkdir(`${d.cacheDir}/lock-live`, { recursive: true });
    const now = new Date().toISOString();
    await Deno.writeTextFile(
      path,
      JSON.stringify({
        host: "elsewhere",
        pid: 1,
        started: now,
        heartbeat: now,
        token: "t-live",
      }),
    );
    let ran = false;
    const e = await assertRejects(
      () =>
        experiment("lock-live", { seed: 4 }, () => {
          ran = true;
          return 1;
        }, { ...d, lock: { skipLocked: true } }),
      ExperimentLockedError,
    );
    assertEquals(e.holder?.pid, 1);
    assert(!ran, "computed despite the lock");
    // Waiting runs out the same way.
    await assertRejects(
      () =>
        experiment("lock-live", { seed: 4 }, () => 1, {
          ...d,
          lock: { waitMs: 50, pollMs: 10 },
        }),
      ExperimentLockedError,
    );
  } finally {
    await Deno.remove(d.root, { recursive: true });
  }
});
