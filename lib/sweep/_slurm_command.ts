/**
 * Runs one Slurm client command (argv only, never a shell) and captures
 * its output; a missing program becomes a {@linkcode SlurmMissingError}
 * saying how to install Slurm. Internal to lib/sweep/.
 *
 * @module
 */

import { join } from "node:path";
import { SlurmMissingError } from "./sweep_error.ts";

/** Where the Slurm client commands are found and the environment they get. */
export interface SlurmClientOptions {
  /**
   * The folder holding `sbatch`, `squeue`, `scontrol`, `sacct` and
   * `scancel` (default: found on PATH).
   */
  binDir?: string;
  /**
   * Extra environment for every Slurm command and, through `sbatch`, for
   * the tasks (`SLURM_CONF` for a cluster whose configuration is not in
   * /etc/slurm).
   */
  env?: Record<string, string>;
}

/** What a Slurm command did. */
export interface SlurmCommandOutput {
  /** The argv it ran (program first). */
  argv: string[];
  /** Its exit code. */
  code: number;
  /** Its standard output. */
  stdout: string;
  /** Its standard error, trimmed. */
  stderr: string;
}

/** Runs `program args...` of the Slurm client, capturing its output. */
export async function runSlurm(
  program: string,
  args: readonly string[],
  options: SlurmClientOptions = {},
): Promise<SlurmCommandOutput> {
  const path = options.binDir === undefined
    ? program
    : join(options.binDir, program);
  const argv = [path, ...args];
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(path, {
      args: [...args],
      env: options.env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      const where = options.binDir === undefined
        ? "on PATH"
        : `in ${options.binDir}`;
      throw new SlurmMissingError(
        `${program} not found ${where}: this machine has no Slurm client. ` +
          "Run `npx -y deno@2.9.6 task setup` (it installs slurm-wlm on Debian), or install your cluster's Slurm client and put it on PATH, " +
          "or run the sweep with --executor local",
        program,
      );
    }
    throw e;
  }
  const dec = new TextDecoder();
  return {
    argv,
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr).trim(),
  };
}
