/**
 * Sweeps from the command line, on a tiny ablation notebook (2 arms x 2
 * seeds of trainArm, a one-block model on 64 synthetic scenes):
 * `tokenlab experiments list` lists every arm x seed with its key and
 * computes none; `tokenlab experiments run KEY` fills the cache with that
 * one; `tokenlab sweep --executor local --jobs 2` computes the rest; and
 * `tokenlab report` then renders from the cache (every result's source
 * "cache"), the same report as one computed directly, timing and
 * provenance lines aside. A notebook whose run is a closure is refused by
 * the sweep with what to do.
 */

import { join } from "node:path";
import { assert, assertEquals, assertStringIncludes } from "./_assert.ts";
import { ROOT, runCli } from "./_helpers.ts";
import { comparableReport, notebook } from "./_sweep_notebook.ts";

Deno.test("sweep: list, run by key, sweep --jobs 2, then report from the cache", async () => {
  const root = await Deno.makeTempDir({
    dir: `${ROOT}tests`,
    prefix: ".tmp-sweep-",
  });
  try {
    const nb = join(root, "sweep_ablation.ipynb");
    await Deno.writeTextFile(nb, notebook("trainArm"));
    const cache = join(root, "cache");
    const env = { TOKENLAB_RESULTS_DIR: cache, TOKENLAB_BACKEND: "cpu" };

    const listed = await runCli(
      ["experiments", "list", nb, "--scale", "tiny", "--json"],
      env,
    );
    assertEquals(listed.code, 0, listed.stderr);
    const listing = JSON.parse(listed.stdout);
    const exps = listing.experiments as {
      key: string;
      name: string;
      cached: boolean;
      runnable: boolean;
      kind: string;
    }[];
    assertEquals(
      exps.map((e) => e.name).sort(),
      [
        "sweep-test-plain",
        "sweep-test-plain",
        "sweep-test-tl",
        "sweep-test-tl",
      ],
    );
    assert(
      exps.every((e) =>
        /^[0-9a-f]{16}$/.test(e.key) && !e.cached && e.runnable &&
        e.kind === "train-arm"
      ),
    );
    assertEquals(new Set(exps.map((e) => e.key)).size, 4);

    const one = await runCli(["experiments", "run", exps[0].key], env);
    assertEquals(one.code, 0, one.stderr);
    assertStringIncludes(one.stderr, "computed");
    const again = await runCli(
      ["experiments", "list", nb, "--scale", "tiny", "--json"],
      env,
    );
    const cached = (JSON.parse(again.stdout).experiments as typeof exps)
      .filter((e) => e.cached).map((e) => e.key);
    assertEquals(cached, [exps[0].key]);

    const swept = await runCli(
      ["sweep", nb, "--scale", "tiny", "--executor", "local", "--jobs", "2"],
      env,
    );
    assertEquals(swept.code, 0, swept.stderr);
    assertStringIncludes(swept.stdout, "3 computed");
    assertStringIncludes(swept.stdout, "tokenlab report");
    assertStringIncludes(
      swept.stderr,
      "3 done, 0 running, 0 pending, 0 failed",
    );

    const out = join(root, "from-cache");
    const rep = await runCli(
      ["report", nb, "--scale", "tiny", "--out", out, "--no-browser"],
      env,
    );
    assertEquals(rep.code, 0, rep.stderr);
    const md = await Deno.readTextFile(join(out, "sweep_ablation.md"));
    assertStringIncludes(md, "sources: cache cache cache cache");

    // The same report computed directly, in a cache of its own.
    const direct = join(root, "direct");
    const rep2 = await runCli(
      ["report", nb, "--scale", "tiny", "--out", direct, "--no-browser"],
      { ...env, TOKENLAB_RESULTS_DIR: join(root, "cache2") },
    );
    assertEquals(rep2.code, 0, rep2.stderr);
    assertStringIncludes(
      await Deno.readTextFile(join(direct, "sweep_ablation.md")),
      "sources: computed computed computed computed",
    );
    assertEquals(
      await comparableReport(join(out, "sweep_ablation.md")),
      await comparableReport(join(direct, "sweep_ablation.md")),
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("sweep: an experiment of an unregistered closure is refused with what to do", async () => {
  const root = await Deno.makeTempDir({
    dir: `${ROOT}tests`,
    prefix: ".tmp-sweep-",
  });
  try {
    const nb = join(root, "closure_ablation.ipynb");
    await Deno.writeTextFile(nb, notebook("(c, s) => trainArm(c, s)"));
    const env = {
      TOKENLAB_RESULTS_DIR: join(root, "cache"),
      TOKENLAB_BACKEND: "cpu",
    };
    const listed = await runCli(
      ["experiments", "list", nb, "--scale", "tiny"],
      env,
    );
    assertEquals(listed.code, 0, listed.stderr);
    assertStringIncludes(listed.stdout, "not runnable by key");
    const swept = await runCli(["sweep", nb, "--scale", "tiny"], env);
    assertEquals(swept.code, 1, swept.stderr);
    assertStringIncludes(swept.stderr, "cannot be computed by key");
    assertStringIncludes(swept.stderr, "run: trainArm");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
