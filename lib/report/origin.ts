/**
 * Where a result was computed, for its provenance: the version of the code
 * (a digest of `lib/` and the pinned dependencies), the git commit of the
 * project, and the machine in words. Each is worked out once per process.
 *
 * @module
 */

import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { sha256Hex } from "../io/digest.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

let codeVersionPromise: Promise<string> | null = null;

/**
 * The version of the code: SHA-256 (16 hex digits) over the path and bytes
 * of every file under `lib/`, plus `deno.json` and `deno.lock` (the pinned
 * dependencies). Any change to the library gives a new version, so cached
 * results never outlive the code that made them.
 */
export function codeVersion(): Promise<string> {
  codeVersionPromise ??= (async () => {
    const files: string[] = [];
    const walk = async (dir: string) => {
      for await (const e of Deno.readDir(dir)) {
        const p = join(dir, e.name);
        if (e.isDirectory) await walk(p);
        else if (e.isFile) files.push(p);
      }
    };
    await walk(join(ROOT, "lib"));
    files.sort();
    for (const extra of ["deno.json", "deno.lock"]) {
      const p = join(ROOT, extra);
      try {
        await Deno.stat(p);
        files.push(p);
      } catch { /* a published copy has no lock file */ }
    }
    const parts: string[] = [];
    for (const f of files) {
      parts.push(
        `${relative(ROOT, f)}\0${await sha256Hex(await Deno.readFile(f))}`,
      );
    }
    return (await sha256Hex(parts.join("\n"))).slice(0, 16);
  })();
  return codeVersionPromise;
}

async function gitCommit(): Promise<string> {
  try {
    const run = async (args: string[]) => {
      const out = await new Deno.Command("git", {
        args,
        cwd: ROOT,
        stdout: "piped",
        stderr: "null",
      }).output();
      if (!out.success) throw new Error("git failed");
      return new TextDecoder().decode(out.stdout).trim();
    };
    const head = await run(["rev-parse", "HEAD"]);
    const dirty = await run([
      "status",
      "--porcelain",
      "--",
      "lib",
      "deno.json",
    ]);
    return dirty ? `${head}+dirty` : head;
  } catch {
    return "unknown";
  }
}

let commitPromise: Promise<string> | null = null;
/** The git commit of the project (`+dirty` when lib/ has local changes), or "unknown". Cached per process. */
export function projectCommit(): Promise<string> {
  commitPromise ??= gitCommit();
  return commitPromise;
}

let machinePromise: Promise<string> | null = null;
/** The machine in words, without names or paths: OS, arch, CPUs and their model. */
export function machineDescription(): Promise<string> {
  machinePromise ??= (async () => {
    let model = "";
    try {
      const info = await Deno.readTextFile("/proc/cpuinfo");
      model = info.match(/^model name\s*:\s*(.+)$/m)?.[1]?.trim() ?? "";
    } catch { /* not Linux */ }
    const cpus = navigator.hardwareConcurrency;
    return `${Deno.build.os} ${Deno.build.arch}, ${cpus} CPU${
      cpus === 1 ? "" : "s"
    }${model ? ` (${model})` : ""}`;
  })();
  return machinePromise;
}
