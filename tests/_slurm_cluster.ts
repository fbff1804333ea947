/**
 * A throwaway single-node Slurm cluster for tests: munged, slurmctld and
 * slurmd started as this process's children on a temporary folder (its
 * own munge key and socket, state, spool, logs and free ports), without
 * systemd or cgroups (proctrack/linuxproc, task/none). Clients reach it
 * through `SLURM_CONF` in {@linkcode SlurmCluster.env}.
 *
 * Needs Debian's slurm-wlm and munge (`deno task setup` installs them) and
 * root (slurmd starts jobs as their user); {@linkcode slurmClusterSkip}
 * says why a machine cannot, so tests register as ignored with the reason.
 */

import { join } from "node:path";
import { runProgram } from "./_helpers.ts";

/** The programs the cluster and its clients need. */
const PROGRAMS = [
  "munged",
  "slurmctld",
  "slurmd",
  "sbatch",
  "squeue",
  "scontrol",
  "scancel",
  "sinfo",
];

/** A running throwaway cluster. */
export interface SlurmCluster {
  /** Its temporary folder (configuration, munge key, state, logs). */
  dir: string;
  /** Environment for Slurm clients: `SLURM_CONF`. */
  env: Record<string, string>;
  /** Its one partition. */
  partition: string;
  /** The tail of its daemons' logs, for a failure's message. */
  logs(): Promise<string>;
  /** Cancels every job, stops the daemons and removes the folder. */
  stop(): Promise<void>;
}

/** The path of `program` on PATH or in the sbin folders; null when absent. */
async function which(program: string): Promise<string | null> {
  const dirs = [
    ...(Deno.env.get("PATH") ?? "").split(":"),
    "/usr/sbin",
    "/sbin",
    "/usr/local/sbin",
  ];
  for (const dir of dirs) {
    if (!dir) continue;
    try {
      const info = await Deno.stat(join(dir, program));
      if (info.isFile && ((info.mode ?? 0) & 0o111) !== 0) {
        return join(dir, program);
      }
    } catch {
      // Not in this folder.
    }
  }
  return null;
}

/**
 * Why a throwaway cluster cannot start here (Slurm or munge missing, not
 * root), or undefined when it can.
 */
export async function slurmClusterSkip(): Promise<string | undefined> {
  if (Deno.build.os !== "linux") return "Slurm clusters need Linux";
  const missing: string[] = [];
  for (const p of PROGRAMS) if (await which(p) === null) missing.push(p);
  if (missing.length > 0) {
    return `Slurm or munge missing (${
      missing.join(", ")
    }); run \`npx -y deno@2.9.6 task setup\` as root or apt-get install slurm-wlm munge`;
  }
  if (Deno.uid() !== 0) {
    return "the throwaway Slurm cluster runs slurmd, which needs root";
  }
  return undefined;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

function output(
  program: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return runProgram(program, args, { env });
}

/** The node's hardware line from `slurmd -C`, without its name and uptime. */
async function nodeHardware(slurmd: string): Promise<string> {
  const out = await output(slurmd, ["-C"]);
  const line = out.stdout.split("\n").find((l) => l.startsWith("NodeName="));
  if (out.code !== 0 || !line) {
    throw new Error(
      `slurmd -C should print the node's hardware, found exit ${out.code}: ${out.stdout}${out.stderr}`,
    );
  }
  const keep = [
    "CPUs",
    "Boards",
    "SocketsPerBoard",
    "CoresPerSocket",
    "ThreadsPerCore",
    "RealMemory",
  ];
  return line.split(/\s+/).filter((kv) => keep.includes(kv.split("=")[0]))
    .join(" ");
}

async function tail(path: string, lines = 15): Promise<string> {
  try {
    const text = await Deno.readTextFile(path);
    return text.trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/**
 * Starts a throwaway cluster and waits until its node is idle (at most
 * `timeoutMs`, default 30 s); on failure stops what started and throws
 * with the daemons' logs.
 */
export async function startSlurmCluster(
  options: { timeoutMs?: number } = {},
): Promise<SlurmCluster> {
  const paths: Record<string, string> = {};
  for (const p of PROGRAMS) {
    const found = await which(p);
    if (found === null) {
      throw new Error(`${p} not found: ${await slurmClusterSkip()}`);
    }
    paths[p] = found;
  }
  const dir = await Deno.realPath(
    await Deno.makeTempDir({ prefix: "tokenlab-slurm-" }),
  );
  const children: Deno.ChildProcess[] = [];
  const env = { SLURM_CONF: join(dir, "slurm.conf") };
  const pumps: Promise<void>[] = [];
  const spawn = async (program: string, args: string[]) => {
    const child = new Deno.Command(paths[program], {
      args,
      env,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    children.push(child);
    // What a daemon says before its log file is open (bad permissions...).
    const file = await Deno.open(join(dir, `${program}.stderr`), {
      write: true,
      create: true,
    });
    pumps.push(child.stderr.pipeTo(file.writable).catch(() => undefined));
  };
  const logs = async () =>
    (await Promise.all(
      [
        "munged.stderr",
        "munged.log",
        "slurmctld.log",
        "slurmd.log",
      ].map(async (f) => `--- ${f}\n${await tail(join(dir, f))}`),
    )).join("\n");
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    // Cancel what runs so that no job outlives its daemons.
    await output(paths.scancel, ["--user=root"], env).catch(() => undefined);
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const q = await output(paths.squeue, ["--noheader"], env).catch(() =>
        null
      );
      if (q === null || q.code !== 0 || q.stdout.trim() === "") break;
      await new Promise((r) => setTimeout(r, 250));
    }
    for (const child of children.reverse()) {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already gone.
      }
      const killer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch {
          // Already gone.
        }
      }, 5000);
      await child.status;
      clearTimeout(killer);
    }
    await Promise.all(pumps);
    await Deno.remove(dir, { recursive: true });
  };
  try {
    // munged wants every folder above its socket open to all (execute).
    await Deno.chmod(dir, 0o755);
    // A random key of this cluster alone, readable by its owner only.
    const key = crypto.getRandomValues(new Uint8Array(1024));
    await Deno.writeFile(join(dir, "munge.key"), key, { mode: 0o600 });
    await Deno.chmod(join(dir, "munge.key"), 0o600);
    for (const sub of ["state", "spool"]) await Deno.mkdir(join(dir, sub));
    const host = Deno.hostname().split(".")[0];
    const [ctldPort, slurmdPort] = [freePort(), freePort()];
    const hardware = await nodeHardware(paths.slurmd);
    const conf = [
      "ClusterName=tokenlab-test",
      `SlurmctldHost=${host}(127.0.0.1)`,
      `SlurmctldPort=${ctldPort}`,
      `SlurmdPort=${slurmdPort}`,
      "SlurmUser=root",
      "SlurmdUser=root",
      "AuthType=auth/munge",
      "CredType=cred/munge",
      `AuthInfo=socket=${join(dir, "munge.sock")}`,
      "ProctrackType=proctrack/linuxproc",
      "TaskPlugin=task/none",
      "MpiDefault=none",
      "SelectType=select/cons_tres",
      "SelectTypeParameters=CR_Core",
      "JobAcctGatherType=jobacct_gather/none",
      "AccountingStorageType=accounting_storage/none",
      "JobCompType=jobcomp/none",
      `StateSaveLocation=${join(dir, "state")}`,
      `SlurmdSpoolDir=${join(dir, "spool")}`,
      `SlurmctldPidFile=${join(dir, "slurmctld.pid")}`,
      `SlurmdPidFile=${join(dir, "slurmd.pid")}`,
      `SlurmctldLogFile=${join(dir, "slurmctld.log")}`,
      `SlurmdLogFile=${join(dir, "slurmd.log")}`,
      "MailProg=/bin/true",
      "ReturnToService=2",
      "MinJobAge=300",
      "SchedulerParameters=sched_min_interval=100000",
      `NodeName=localnode NodeAddr=127.0.0.1 ${hardware} State=UNKNOWN`,
      "PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
      "",
    ].join("\n");
    await Deno.writeTextFile(env.SLURM_CONF, conf);
    await spawn("munged", [
      "--foreground",
      `--key-file=${join(dir, "munge.key")}`,
      `--socket=${join(dir, "munge.sock")}`,
      `--pid-file=${join(dir, "munged.pid")}`,
      `--log-file=${join(dir, "munged.log")}`,
      `--seed-file=${join(dir, "munged.seed")}`,
    ]);
    const timeoutMs = options.timeoutMs ?? 30_000;
    const deadline = Date.now() + timeoutMs;
    while (!(await exists(join(dir, "munge.sock")))) {
      if (Date.now() > deadline) throw new Error("munged made no socket");
      await new Promise((r) => setTimeout(r, 100));
    }
    await spawn("slurmctld", ["-D", "-f", env.SLURM_CONF]);
    await spawn("slurmd", ["-D", "-N", "localnode", "-f", env.SLURM_CONF]);
    let last = "";
    while (true) {
      const out = await output(paths.sinfo, [
        "--noheader",
        "--Node",
        "--format=%t",
      ], env);
      last = `${out.stdout}${out.stderr}`.trim();
      if (out.code === 0 && last === "idle") break;
      if (Date.now() > deadline) {
        throw new Error(
          `the node should be idle within ${timeoutMs} ms, sinfo says ${
            JSON.stringify(last)
          }`,
        );
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  } catch (e) {
    const text = await logs();
    await stop();
    throw new Error(
      `the throwaway Slurm cluster did not start: ${e}\n${text}`,
      {
        cause: e,
      },
    );
  }
  return { dir, env, partition: "test", logs, stop };
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}
