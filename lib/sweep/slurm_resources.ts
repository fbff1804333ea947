/**
 * What each Slurm array task asks for (partition, time limit, CPUs,
 * memory, GPUs, a few checked extra `sbatch` flags), as a typed object or a
 * small JSON file, and the `sbatch` arguments it becomes. Every value is
 * checked against a strict pattern before it reaches `sbatch`'s argv.
 *
 * @module
 */

import { SlurmOptionsError } from "./sweep_error.ts";

/**
 * The resources of each array task. Every field is optional: what is left
 * out is the cluster's default.
 */
export interface SlurmResources {
  /** `--partition` (`gpu`, or `a,b` for either). */
  partition?: string;
  /** `--time`, in Slurm's forms: `30` (minutes), `02:00:00`, `1-12:00:00`. */
  time?: string;
  /** `--cpus-per-task`, a positive integer. */
  cpusPerTask?: number;
  /** `--mem` per task: `16G`, `4000M`, `8000` (megabytes). */
  mem?: string;
  /** `--gres`: `gpu:1`, `gpu:a100:2`. */
  gres?: string;
  /** `--job-name` (default `tokenlab-sweep`). */
  jobName?: string;
  /** At most this many tasks at once (the array's `%N`). */
  maxParallel?: number;
  /**
   * Further `sbatch` flags, each one `--name=value` element (`--account=lab`,
   * `--qos=short`, `--constraint=a100`); flags that would break the
   * executor's contract (`--array`, `--output`, `--chdir`, `--wrap`, ...)
   * are refused.
   */
  extraArgs?: readonly string[];
}

const PARTITION = /^[A-Za-z0-9_.-]+(,[A-Za-z0-9_.-]+)*$/;
const TIME =
  /^(\d{1,4}-\d{1,2}(:\d{1,2}(:\d{1,2})?)?|\d{1,6}(:\d{1,2}(:\d{1,2})?)?)$/;
const MEM = /^\d{1,9}[KMGT]?$/;
const GRES =
  /^[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)*(,[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)*)*$/;
const JOB_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const EXTRA = /^--([a-z][a-z0-9-]*)(=[A-Za-z0-9_.,:@+\/=-]+)?$/;

/** `sbatch` flags that the executor sets itself or that change what a job is. */
const RESERVED = new Set([
  "array",
  "output",
  "error",
  "input",
  "chdir",
  "wrap",
  "parsable",
  "test-only",
  "help",
  "usage",
  "version",
  "wait",
  "export-file",
  "partition",
  "time",
  "cpus-per-task",
  "mem",
  "gres",
  "job-name",
]);

const KEYS: readonly (keyof SlurmResources)[] = [
  "partition",
  "time",
  "cpusPerTask",
  "mem",
  "gres",
  "jobName",
  "maxParallel",
  "extraArgs",
];

function checkText(
  value: unknown,
  field: string,
  pattern: RegExp,
  expected: string,
  where = "",
): string {
  if (typeof value !== "string" || !pattern.test(value)) {
    throw new SlurmOptionsError(
      `Slurm resource ${field}${where}: expected ${expected}, found ${
        JSON.stringify(value)
      }; fix it in the sweep's Slurm options`,
      field,
    );
  }
  return value;
}

function checkCount(value: unknown, field: string, where = ""): number {
  if (
    typeof value !== "number" || !Number.isInteger(value) || value < 1 ||
    value > 100000
  ) {
    throw new SlurmOptionsError(
      `Slurm resource ${field}${where}: expected a whole number from 1 to 100000, found ${
        JSON.stringify(value)
      }; fix it in the sweep's Slurm options`,
      field,
    );
  }
  return value;
}

/** The text resources: each field's pattern and what it accepts, in words. */
const TEXT_RULES: Readonly<Record<string, readonly [RegExp, string]>> = {
  partition: [
    PARTITION,
    "partition names (letters, digits, _ . -), comma-separated",
  ],
  time: [TIME, "a Slurm time such as 30, 02:00:00 or 1-12:00:00"],
  mem: [MEM, "a memory size such as 16G, 4000M or 8000"],
  gres: [GRES, "generic resources such as gpu:1 or gpu:a100:2"],
  jobName: [JOB_NAME, "a name of 1 to 64 letters, digits, _ . -"],
};

/**
 * Checks every field of `resources` and returns a clean copy; throws a
 * {@linkcode SlurmOptionsError} naming the first bad field, what it expects
 * and what it found. `source` (a file's path) is named in the message.
 *
 * @example
 * ```ts
 * import { checkSlurmResources } from "tokenlab/sweep/mod.ts";
 * const r = checkSlurmResources({ time: "01:00:00", extraArgs: ["--qos=short"] });
 * console.log(r.time, r.extraArgs); // 01:00:00 [ "--qos=short" ]
 * ```
 */
export function checkSlurmResources(
  resources: unknown,
  source?: string,
): SlurmResources {
  const where = source === undefined ? "" : ` (in ${source})`;
  if (
    typeof resources !== "object" || resources === null ||
    Array.isArray(resources)
  ) {
    throw new SlurmOptionsError(
      `Slurm resources${where}: expected an object such as {"partition": "gpu", "time": "02:00:00"}, found ${
        Array.isArray(resources) ? "an array" : JSON.stringify(resources)
      }`,
      "",
    );
  }
  const r = resources as Record<string, unknown>;
  for (const key of Object.keys(r)) {
    if (!(KEYS as readonly string[]).includes(key)) {
      throw new SlurmOptionsError(
        `Slurm resources${where}: unknown field ${
          JSON.stringify(key)
        }; expected only ${KEYS.join(", ")}`,
        key,
      );
    }
  }
  const out: SlurmResources = {};
  for (const [field, [pattern, what]] of Object.entries(TEXT_RULES)) {
    if (r[field] !== undefined) {
      (out as Record<string, unknown>)[field] = checkText(
        r[field],
        field,
        pattern,
        what,
        where,
      );
    }
  }
  for (const field of ["cpusPerTask", "maxParallel"] as const) {
    if (r[field] !== undefined) out[field] = checkCount(r[field], field, where);
  }
  if (r.extraArgs !== undefined) {
    if (!Array.isArray(r.extraArgs)) {
      throw new SlurmOptionsError(
        `Slurm resource extraArgs${where}: expected an array of --name=value strings, found ${
          JSON.stringify(r.extraArgs)
        }`,
        "extraArgs",
      );
    }
    out.extraArgs = r.extraArgs.map((arg, i) => {
      const field = `extraArgs[${i}]`;
      const flag = checkText(
        arg,
        field,
        EXTRA,
        "one --name or --name=value element (value of letters, digits and _ . , : @ + / = -)",
        where,
      );
      const name = EXTRA.exec(flag)![1];
      if (RESERVED.has(name)) {
        throw new SlurmOptionsError(
          `Slurm resource ${field}${where}: --${name} is set by the executor or by its own field (partition, time, cpusPerTask, mem, gres, jobName, maxParallel); found ${
            JSON.stringify(flag)
          }; remove it or use the field`,
          field,
        );
      }
      return flag;
    });
  }
  return out;
}

/**
 * Reads and checks a JSON file of {@linkcode SlurmResources}
 * (`{"partition": "gpu", "time": "02:00:00", "gres": "gpu:1"}`).
 *
 * @example
 * ```ts
 * import { readSlurmResources } from "tokenlab/sweep/mod.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/slurm.json`, '{"cpusPerTask": 4, "mem": "8G"}');
 * console.log(await readSlurmResources(`${dir}/slurm.json`)); // { cpusPerTask: 4, mem: "8G" }
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function readSlurmResources(
  path: string,
): Promise<SlurmResources> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new SlurmOptionsError(
      `cannot read the Slurm resources file ${path}: ${
        (e as Error).message
      }; give the path of a JSON file such as {"partition": "gpu", "time": "02:00:00"}`,
      "",
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new SlurmOptionsError(
      `the Slurm resources file ${path} is not JSON (${
        (e as Error).message
      }); expected an object such as {"partition": "gpu", "time": "02:00:00"}`,
      "",
    );
  }
  return checkSlurmResources(value, path);
}

/**
 * The `sbatch` flags of checked resources, in a fixed order, one argv
 * element each (the array, output and folder flags are the executor's).
 *
 * @example
 * ```ts
 * import { sbatchResourceArgs } from "tokenlab/sweep/mod.ts";
 * console.log(sbatchResourceArgs({ partition: "gpu", gres: "gpu:1" }));
 * // [ "--job-name=tokenlab-sweep", "--partition=gpu", "--gres=gpu:1" ]
 * ```
 */
export function sbatchResourceArgs(resources: SlurmResources): string[] {
  const r = checkSlurmResources(resources);
  const args = [`--job-name=${r.jobName ?? "tokenlab-sweep"}`];
  if (r.partition) args.push(`--partition=${r.partition}`);
  if (r.time) args.push(`--time=${r.time}`);
  if (r.cpusPerTask) args.push(`--cpus-per-task=${r.cpusPerTask}`);
  if (r.mem) args.push(`--mem=${r.mem}`);
  if (r.gres) args.push(`--gres=${r.gres}`);
  args.push(...(r.extraArgs ?? []));
  return args;
}
