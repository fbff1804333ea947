/**
 * `tokenlab sweep --executor slurm` on a throwaway single-node Slurm cluster
 * (tests/_slurm_cluster.ts): the missing experiments of a tiny ablation
 * notebook run as one array job and land in the results cache, which then
 * lists every one as cached; the report then renders from that cache (every
 * source "cache") and equals the report computed locally. Registered as
 * ignored, with the reason, where Slurm, munge or root is missing.
 */

import { join } from "node:path";
import { assert, assertEquals, assertStringIncludes } from "./_assert.ts";
import { ROOT, runCli } from "./_helpers.ts";
import { slurmClusterSkip, startSlurmCluster } from "./_slurm_cluster.ts";
import { comparableReport, notebook } from "./_sweep_notebook.ts";

const skip = await slurmClusterSkip();

Deno.test({
  name: `sweep: --executor slurm computes the missing experiments${
    skip ? ` (skipped: ${skip})` : ""
  }`,
  ignore: skip !== undefined,
  async fn() {
    const cluster = await startSlurmCluster();
    const root = await Deno.makeTempDir({
      dir: `${ROOT}tests`,
      prefix: ".tmp-sweep-slurm-",
    });
    try {
      const nb = join(root, "slurm_ablation.ipynb");
      await Deno.writeTextFile(nb, notebook("trainArm"));
      const resources = join(root, "resources.json");
      await Deno.writeTextFile(
        resources,
        JSON.stringify({ partition: cluster.partition, time: "00:20:00" }),
      );
      const env = {
        ...cluster.env,
        TOKENLAB_RESULTS_DIR: join(root, "cache"),
        TOKENLAB_BACKEND: "cpu",
      };
      const swept = await runCli([
        "sweep",
        nb,
        "--scale",
        "tiny",
        "--executor",
        "slurm",
        "--slurm-resources",
        resources,
      ], env);
      assertEquals(
        swept.code,
        0,
        `${swept.stderr}\n${await cluster.logs()}`,
      );
      assertStringIncludes(swept.stdout, "4 computed");
      const listed = await runCli(
        ["experiments", "list", nb, "--scale", "tiny", "--json"],
        env,
      );
      const exps = JSON.parse(listed.stdout).experiments as {
        cached: boolean;
      }[];
      assertEquals(exps.length, 4);
      assert(exps.every((e) => e.cached), listed.stdout);

      // The report renders from what the cluster computed, and equals the
      // one computed locally in a cache of its own.
      const fromCache = join(root, "from-cache");
      const rep = await runCli(
        ["report", nb, "--scale", "tiny", "--out", fromCache, "--no-browser"],
        env,
      );
      assertEquals(rep.code, 0, rep.stderr);
      assertStringIncludes(
        await Deno.readTextFile(join(fromCache, "slurm_ablation.md")),
        "sources: cache cache cache cache",
      );
      const local = join(root, "local");
      const rep2 = await runCli(
        ["report", nb, "--scale", "tiny", "--out", local, "--no-browser"],
        { ...env, TOKENLAB_RESULTS_DIR: join(root, "cache-local") },
      );
      assertEquals(rep2.code, 0, rep2.stderr);
      assertStringIncludes(
        await Deno.readTextFile(join(local, "slurm_ablation.md")),
        "sources: computed computed computed computed",
      );
      assertEquals(
        await comparableReport(join(fromCache, "slurm_ablation.md")),
        await comparableReport(join(local, "slurm_ablation.md")),
      );
    } finally {
      await cluster.stop();
      await Deno.remove(root, { recursive: true });
    }
  },
});
