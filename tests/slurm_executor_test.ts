/**
 * The Slurm executor against a real single-node cluster started for the
 * file (tests/_slurm_cluster.ts): an array with a task failing on purpose,
 * commands with awkward arguments passed as data, progress reports, sbatch
 * refusing, and cancelling sleeping tasks. Registered as ignored, with the
 * reason, where Slurm, munge or root is missing. The task script is also
 * run by bash alone, without Slurm.
 */

import {
  assert,
  assertEquals,
  assertRejects,
  assertStringIncludes,
} from "./_assert.ts";
import {
  cancelSlurmArray,
  followSlurmArray,
  formatSlurmProgress,
  readSlurmSubmission,
  SLURM_TASK_SCRIPT,
  SlurmCommandError,
  type SlurmProgress,
  submitSlurmArray,
} from "../lib/sweep/mod.ts";
import { encodeArgv } from "../lib/sweep/slurm_task_script.ts";
import { slurmClusterSkip, startSlurmCluster } from "./_slurm_cluster.ts";
import { ROOT } from "./_helpers.ts";

const skip = await slurmClusterSkip();

/** Arguments a shell would read as code, globs, words or nothing. */
function awkward(dir: string): string[] {
  return ["a b", `$(touch ${dir}/pwned)`, "", "x\ny", `'q"`, "*", "`id`"];
}

/** What the `brackets` command writes for `args`: each one in [ ]. */
function bracketed(args: string[]): string {
  return args.map((a) => `[${a}]`).join("");
}

/** sh writing each of its arguments in brackets to the file $0. */
function brackets(file: string, args: string[]): string[] {
  return [
    "sh",
    "-c",
    'for a in "$@"; do printf "[%s]" "$a"; done > "$0"',
    file,
    ...args,
  ];
}

Deno.test("the task script runs its argv file as data and records the exit code", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tokenlab-slurm-script-" });
  try {
    for (const sub of ["argv", "exit"]) await Deno.mkdir(`${dir}/${sub}`);
    await Deno.writeTextFile(`${dir}/task.sh`, SLURM_TASK_SCRIPT);
    const args = awkward(dir);
    await Deno.writeFile(
      `${dir}/argv/0`,
      encodeArgv(brackets(`${dir}/out.txt`, args)),
    );
    await Deno.writeFile(
      `${dir}/argv/1`,
      encodeArgv(["sh", "-c", "exit 7"]),
    );
    // A shell builtin's name is looked up as a program, never run as a builtin.
    await Deno.writeFile(`${dir}/argv/2`, encodeArgv(["eval", "exit 0"]));
    const run = (task: string) =>
      new Deno.Command("bash", {
        args: [`${dir}/task.sh`, dir],
        env: { SLURM_ARRAY_TASK_ID: task },
        stdout: "piped",
        stderr: "piped",
      }).output();
    assertEquals((await run("0")).code, 0);
    assertEquals(await Deno.readTextFile(`${dir}/out.txt`), bracketed(args));
    assertEquals(await Deno.readTextFile(`${dir}/exit/0`), "0\n");
    assertEquals((await run("1")).code, 7);
    assertEquals(await Deno.readTextFile(`${dir}/exit/1`), "7\n");
    assertEquals((await run("2")).code, 127);
    assertEquals(await Deno.readTextFile(`${dir}/exit/2`), "127\n");
    const bad = await run("0;id");
    assertEquals(bad.code, 2);
    assertStringIncludes(
      new TextDecoder().decode(bad.stderr),
      'expected SLURM_ARRAY_TASK_ID to be a task index, found "0;id"',
    );
    const missing = await run("9");
    assertEquals(missing.code, 2);
    assertStringIncludes(
      new TextDecoder().decode(missing.stderr),
      "cannot read the command of task 9",
    );
    let pwned = true;
    await Deno.lstat(`${dir}/pwned`).catch(() => pwned = false);
    assertEquals(pwned, false, "an argument was run as shell code");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: skip
    ? `Slurm executor on a single-node cluster (skipped: ${skip})`
    : "Slurm executor on a single-node cluster: arrays, failures, progress, refusal, cancel",
  ignore: skip !== undefined,
  fn: async (t) => {
    const cluster = await startSlurmCluster();
    const dir = await Deno.makeTempDir({ prefix: "tokenlab-slurm-sweep-" });
    const client = { env: cluster.env };
    try {
      await t.step("an array of four, one failing on purpose", async () => {
        const args = awkward(dir);
        const items = [
          {
            id: "write-alpha",
            argv: [
              "sh",
              "-c",
              'sleep 1; printf %s "$1" > "$2"',
              "sh",
              "alpha",
              `${dir}/alpha.txt`,
            ],
          },
          { id: "awkward args", argv: brackets(`${dir}/awkward.txt`, args) },
          {
            id: "fails-on-purpose",
            argv: ["sh", "-c", "sleep 1; echo failing on purpose >&2; exit 3"],
          },
          {
            id: "deno-writes",
            argv: [
              Deno.execPath(),
              "eval",
              `await Deno.writeTextFile(${
                JSON.stringify(`${dir}/deno.txt`)
              }, Deno.cwd())`,
            ],
          },
        ];
        const job = await submitSlurmArray(items, {
          ...client,
          logDir: `${dir}/logs`,
          cwd: ROOT,
          resources: {
            partition: cluster.partition,
            time: "5",
            cpusPerTask: 1,
          },
        });
        assertStringIncludes(job.sbatchArgv.join(" "), "--array=0-3");
        const reports: SlurmProgress[] = [];
        const summary = await followSlurmArray(job, {
          ...client,
          pollMs: 200,
          endGraceMs: 5000,
          onProgress: (p) => reports.push(p),
        });
        const failure = `${formatSlurmProgress(summary)}\n${await cluster
          .logs()}`;
        assertEquals(
          [
            summary.complete,
            summary.done,
            summary.failed,
            summary.running,
            summary.pending,
          ],
          [true, 3, 1, 0, 0],
          failure,
        );
        const failed = summary.tasks.filter((task) => task.state === "failed");
        assertEquals(
          failed.map((task) => [task.id, task.exitCode, task.reason]),
          [
            ["fails-on-purpose", 3, "exit 3"],
          ],
        );
        assertEquals(failed[0].logPath, `${job.runDir}/logs/2.log`);
        assertStringIncludes(
          await Deno.readTextFile(failed[0].logPath),
          "failing on purpose",
        );
        assertStringIncludes(
          formatSlurmProgress(summary),
          `failed: task 2 fails-on-purpose: exit 3; log ${job.runDir}/logs/2.log`,
        );
        // The commands did their work, with their arguments as given.
        assertEquals(await Deno.readTextFile(`${dir}/alpha.txt`), "alpha");
        assertEquals(
          await Deno.readTextFile(`${dir}/awkward.txt`),
          bracketed(args),
        );
        assertEquals(
          await Deno.readTextFile(`${dir}/deno.txt`),
          ROOT.replace(/\/$/, ""),
        );
        let pwned = true;
        await Deno.lstat(`${dir}/pwned`).catch(() => pwned = false);
        assertEquals(pwned, false, "an argument was run as shell code");
        // Progress came before the end, and the last report is the summary.
        assert(reports.length >= 2, `only ${reports.length} progress reports`);
        assert(
          reports.some((p) => !p.complete && p.pending + p.running > 0),
          "no report while tasks waited or ran",
        );
        assertEquals(reports.at(-1)!.tasks, summary.tasks);
        // The run folder tells the same story to a later process.
        const again = await readSlurmSubmission(job.runDir);
        assertEquals(again.jobId, job.jobId);
        assertEquals(again.items.map((i) => i.id), items.map((i) => i.id));
        const later = await followSlurmArray(again, { ...client, pollMs: 200 });
        assertEquals([later.done, later.failed], [3, 1]);
      });

      await t.step("sbatch refusing shows its stderr", async () => {
        const e = await assertRejects(
          () =>
            submitSlurmArray([{ id: "a", argv: ["true"] }], {
              ...client,
              logDir: `${dir}/logs`,
              resources: { partition: "no-such-partition" },
            }),
          SlurmCommandError,
        );
        assertStringIncludes(e.message, "sbatch refused");
        assertStringIncludes(e.stderr.toLowerCase(), "invalid partition");
        assertStringIncludes(e.message, e.stderr);
      });

      await t.step(
        "cancel ends sleeping tasks, reported as failed",
        async () => {
          const job = await submitSlurmArray(
            [
              { id: "sleep-a", argv: ["sleep", "300"] },
              { id: "sleep-b", argv: ["sleep", "300"] },
              { id: "sleep-c", argv: ["sleep", "300"] },
            ],
            { ...client, logDir: `${dir}/logs` },
          );
          const running = new AbortController();
          const before = await followSlurmArray(job, {
            ...client,
            pollMs: 200,
            signal: running.signal,
            onProgress: (p) => {
              if (p.running >= 2) running.abort();
            },
          });
          assertEquals(
            [before.complete, before.running, before.pending],
            [false, 2, 1],
            formatSlurmProgress(before),
          );
          const t0 = performance.now();
          await cancelSlurmArray(job, client);
          const summary = await followSlurmArray(job, {
            ...client,
            pollMs: 200,
            endGraceMs: 5000,
          });
          const seconds = (performance.now() - t0) / 1000;
          assert(seconds < 30, `cancelling took ${seconds} s`);
          assertEquals([summary.done, summary.failed], [0, 3]);
          for (const task of summary.tasks) {
            assertStringIncludes(task.reason ?? "", "CANCELLED");
            assertEquals(task.exitCode, undefined);
          }
        },
      );
    } finally {
      await cluster.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
