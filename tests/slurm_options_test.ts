/**
 * The Slurm executor's checks and readers without a cluster: resources
 * (typed and from a JSON file) and the sbatch flags they become, bad job
 * items, Slurm missing, and the parsers of squeue, sacct and scontrol
 * output (on outputs written out by hand and captured from Slurm 22.05).
 */

import {
  assert,
  assertEquals,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "./_assert.ts";
import {
  checkSlurmResources,
  encodeArgv,
  parseSacct,
  parseScontrolJobs,
  parseSqueue,
  readSlurmResources,
  sbatchResourceArgs,
  SlurmMissingError,
  SlurmOptionsError,
  slurmStateKind,
  submitSlurmArray,
  SweepError,
} from "../lib/sweep/mod.ts";

Deno.test("Slurm resources become one sbatch flag each, in a fixed order", () => {
  assertEquals(
    sbatchResourceArgs({
      partition: "gpu,gpu2",
      time: "1-12:00:00",
      cpusPerTask: 4,
      mem: "16G",
      gres: "gpu:a100:2",
      jobName: "lvvit.sweep",
      maxParallel: 8,
      extraArgs: ["--account=lab", "--qos=short", "--exclusive"],
    }),
    [
      "--job-name=lvvit.sweep",
      "--partition=gpu,gpu2",
      "--time=1-12:00:00",
      "--cpus-per-task=4",
      "--mem=16G",
      "--gres=gpu:a100:2",
      "--account=lab",
      "--qos=short",
      "--exclusive",
    ],
  );
  assertEquals(sbatchResourceArgs({}), ["--job-name=tokenlab-sweep"]);
  for (const time of ["30", "30:00", "02:00:00", "1-12", "1-12:30"]) {
    assertEquals(checkSlurmResources({ time }).time, time);
  }
});

Deno.test("bad Slurm resources are refused, naming the field, expected and found", () => {
  const cases: [Record<string, unknown>, string, string][] = [
    [{ time: "2 hours" }, "time", "a Slurm time"],
    [{ mem: "16 GB" }, "mem", "a memory size"],
    [{ partition: "a;b" }, "partition", "partition names"],
    [{ gres: "gpu:1 --wrap=x" }, "gres", "generic resources"],
    [{ cpusPerTask: 0 }, "cpusPerTask", "a whole number"],
    [{ cpusPerTask: 1.5 }, "cpusPerTask", "a whole number"],
    [{ maxParallel: "4" }, "maxParallel", "a whole number"],
    [{ jobName: "a b" }, "jobName", "a name of 1 to 64"],
    [{ extraArgs: "--qos=short" }, "extraArgs", "an array of --name=value"],
    [{ extraArgs: ["--qos=short; rm -rf ~"] }, "extraArgs[0]", "one --name"],
    [{ extraArgs: ["-p", "gpu"] }, "extraArgs[0]", "one --name"],
    [{ extraArgs: ["--account", "lab"] }, "extraArgs[1]", "one --name"],
    [{ extraArgs: ["--array=0-3"] }, "extraArgs[0]", "set by the executor"],
    [{ extraArgs: ["--output=/x"] }, "extraArgs[0]", "set by the executor"],
    [{ extraArgs: ["--wrap=id"] }, "extraArgs[0]", "set by the executor"],
    [{ extraArgs: ["--time=5"] }, "extraArgs[0]", "its own field"],
    [{ partitions: "gpu" }, "partitions", "expected only partition, time"],
  ];
  for (const [resources, field, message] of cases) {
    const e = assertThrows(
      () => checkSlurmResources(resources),
      SlurmOptionsError,
    );
    assertEquals(e.field, field, JSON.stringify(resources));
    assertStringIncludes(e.message, message);
    assert(e instanceof SweepError);
  }
  const e = assertThrows(() => checkSlurmResources([]), SlurmOptionsError);
  assertStringIncludes(e.message, "found an array");
});

Deno.test("Slurm resources from a JSON file: checked, and a bad file says which and why", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tokenlab-slurm-options-" });
  try {
    const good = `${dir}/slurm.json`;
    await Deno.writeTextFile(
      good,
      '{"partition": "gpu", "time": "02:00:00", "gres": "gpu:1", "extraArgs": ["--qos=short"]}',
    );
    assertEquals(await readSlurmResources(good), {
      partition: "gpu",
      time: "02:00:00",
      gres: "gpu:1",
      extraArgs: ["--qos=short"],
    });
    const bad = `${dir}/bad.json`;
    await Deno.writeTextFile(bad, '{"time": "forever"}');
    const e1 = await assertRejects(
      () => readSlurmResources(bad),
      SlurmOptionsError,
    );
    assertStringIncludes(e1.message, `(in ${bad})`);
    assertStringIncludes(e1.message, 'found "forever"');
    await Deno.writeTextFile(bad, "{time: 1}");
    const e2 = await assertRejects(
      () => readSlurmResources(bad),
      SlurmOptionsError,
    );
    assertStringIncludes(e2.message, "is not JSON");
    const e3 = await assertRejects(
      () => readSlurmResources(`${dir}/none.json`),
      SlurmOptionsError,
    );
    assertStringIncludes(e3.message, "cannot read the Slurm resources file");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("job items are checked before anything is written or submitted", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tokenlab-slurm-items-" });
  try {
    const cases: [unknown[], string, string][] = [
      [[], "items", "nothing to submit"],
      [[{ id: "", argv: ["true"] }], "items[0].id", "an id of 1 to 200"],
      [[{ id: "a\nb", argv: ["true"] }], "items[0].id", "control characters"],
      [
        [{ id: "a", argv: ["true"] }, { id: "a", argv: ["true"] }],
        "items[1].id",
        "already the id",
      ],
      [[{ id: "a", argv: [] }], "items[0].argv", "non-empty array"],
      [[{ id: "a", argv: ["echo", "x\0y"] }], "items[0].argv", "without NUL"],
      [[{ id: "a", argv: "echo hi" }], "items[0].argv", "non-empty array"],
      [[{ id: "a", argv: ["X=1", "env"] }], "items[0].argv", "program name"],
    ];
    for (const [items, field, message] of cases) {
      const e = await assertRejects(
        // deno-lint-ignore no-explicit-any
        () => submitSlurmArray(items as any, { logDir: `${dir}/logs` }),
        SlurmOptionsError,
      );
      assertEquals(e.field, field, JSON.stringify(items));
      assertStringIncludes(e.message, message);
    }
    const found = [];
    for await (const entry of Deno.readDir(dir)) found.push(entry.name);
    assertEquals(found, [], "nothing written for refused items");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("without sbatch, submitting says how to install Slurm", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tokenlab-slurm-missing-" });
  try {
    await Deno.mkdir(`${dir}/bin`);
    const e = await assertRejects(
      () =>
        submitSlurmArray([{ id: "a", argv: ["true"] }], {
          logDir: `${dir}/logs`,
          binDir: `${dir}/bin`,
        }),
      SlurmMissingError,
    );
    assertEquals(e.command, "sbatch");
    assertStringIncludes(e.message, `sbatch not found in ${dir}/bin`);
    assertStringIncludes(e.message, "task setup");
    assertStringIncludes(e.message, "slurm-wlm");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Slurm states: waiting, running, or over", () => {
  for (const s of ["PENDING", "REQUEUED", "SUSPENDED"]) {
    assertEquals(slurmStateKind(s), "pending", s);
  }
  for (const s of ["RUNNING", "CONFIGURING", "COMPLETING"]) {
    assertEquals(slurmStateKind(s), "running", s);
  }
  for (
    const s of [
      "COMPLETED",
      "FAILED",
      "CANCELLED by 0",
      "CANCELLED+",
      "TIMEOUT",
      "OUT_OF_MEMORY",
      "NODE_FAIL",
      "SOMETHING_NEW",
    ]
  ) {
    assertEquals(slurmStateKind(s), "ended", s);
  }
});

Deno.test("squeue, sacct and scontrol output: each task's state by index", () => {
  const squeue = parseSqueue(
    "0|RUNNING\n1|COMPLETING\n[2-4,7]|PENDING\n5%2|PENDING\nsqueue: noise\n\n",
  );
  assertEquals([...squeue.keys()].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 7]);
  assertEquals(squeue.get(1), { state: "COMPLETING" });
  assertEquals(squeue.get(7), { state: "PENDING" });

  const sacct = parseSacct(
    [
      "12_0|COMPLETED|0:0",
      "12_1|FAILED|3:0",
      "12_2|CANCELLED by 0|0:15",
      "12_[3-4]|PENDING|0:0",
      "120_5|COMPLETED|0:0",
      "12_0.batch|COMPLETED|0:0",
    ].join("\n"),
    "12",
  );
  assertEquals(sacct.get(1), { state: "FAILED", exitCode: "3:0" });
  assertEquals(sacct.get(2), { state: "CANCELLED by 0", exitCode: "0:15" });
  assertEquals(sacct.get(4), { state: "PENDING", exitCode: "0:0" });
  assertEquals(sacct.has(5), false, "another job's task");
  assertEquals([...sacct.keys()].sort(), [0, 1, 2, 3, 4]);

  // Captured from Slurm 22.05 (`scontrol --oneliner show job 1`), shortened.
  const scontrol = [
    "JobId=1 ArrayJobId=1 ArrayTaskId=3 JobName=task.sh UserId=root(0) JobState=COMPLETED Reason=None Dependency=(null) ExitCode=0:0 StdOut=/r/logs/3.log",
    "JobId=4 ArrayJobId=1 ArrayTaskId=2 JobName=task.sh UserId=root(0) JobState=FAILED Reason=NonZeroExitCode Dependency=(null) ExitCode=3:0 StdOut=/r/logs/2.log",
    "JobId=9 ArrayJobId=8 ArrayTaskId=0 JobName=other JobState=RUNNING ExitCode=0:0",
    "JobId=5 ArrayJobId=1 ArrayTaskId=4-5 JobState=CANCELLED Reason=None ExitCode=0:0",
  ].join("\n");
  const jobs = parseScontrolJobs(scontrol, "1");
  assertEquals(jobs.get(2), { state: "FAILED", exitCode: "3:0" });
  assertEquals(jobs.get(3), { state: "COMPLETED", exitCode: "0:0" });
  assertEquals(jobs.get(5), { state: "CANCELLED", exitCode: "0:0" });
  assertEquals([...jobs.keys()].sort(), [2, 3, 4, 5]);
});

Deno.test("a command's argv file: each argument ended by NUL, bytes as they are", () => {
  assertEquals(
    [...encodeArgv(["sh", "a b", "", "x\ny", "é"])],
    [
      ...[115, 104, 0],
      ...[97, 32, 98, 0],
      0,
      ...[120, 10, 121, 0],
      ...[0xc3, 0xa9, 0],
    ],
  );
});
