/**
 * `deno task setup`: make this machine able to test the kit and render its
 * reports. Idempotent, and quick when everything is already there.
 *
 * 1. Deno >= 2.9.0 (older kernels crash nbclient or report failing cells as
 *    passing).
 * 2. Debian's Jupyter stack, the lavapipe Vulkan driver, Chromium (the
 *    reports' static figures and their in-browser check) and OpenBLAS (under
 *    the wasm backend's products), and Slurm with munge (sweeps as Slurm
 *    array jobs, and the throwaway cluster their tests start), installed with
 *    apt-get when running as root; otherwise it stops with the exact command.
 * 3. The Deno Jupyter kernelspec, pointing at the Deno that is running.
 *
 * @module
 */

import { dirname, join } from "node:path";
import { writeTextAtomic } from "../io/atomic_write.ts";
import { TokenlabError } from "../errors.ts";

/** The oldest Deno whose Jupyter kernel works with nbclient. */
export const MIN_DENO = "2.9.0";

/**
 * Debian packages the kit needs: the headless Jupyter stack, lavapipe,
 * Chromium (static figures and the browser check of the reports) and
 * OpenBLAS (the wasm backend's matrix products and convolutions run on it
 * through FFI: lib/kernels/native_blas.ts).
 */
export const DEBIAN_PACKAGES: readonly string[] = [
  "jupyter-nbconvert",
  "python3-nbclient",
  "jupyter-client",
  "python3-ipykernel",
  "mesa-vulkan-drivers",
  "chromium",
  "libopenblas0-pthread",
];

/**
 * Debian packages of the Slurm executor (lib/sweep/slurm.ts): the Slurm
 * daemons and clients, and munge, their authentication. Setup starts no
 * daemon; the tests start a throwaway cluster of their own.
 */
export const SLURM_PACKAGES: readonly string[] = ["slurm-wlm", "munge"];

/** An error that setup reports as its whole message and exits non-zero on. */
export class SetupError extends TokenlabError {
  /** Creates the error with its message. */
  constructor(message: string) {
    super(message);
  }
}

/** Compares dotted versions numerically: negative, 0 or positive. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.+-]/).slice(0, 3).map((x) => parseInt(x, 10) || 0);
  const pb = b.split(/[.+-]/).slice(0, 3).map((x) => parseInt(x, 10) || 0);
  for (let i = 0; i < 3; i++) {
    if ((pa[i] ?? 0) !== (pb[i] ?? 0)) return (pa[i] ?? 0) - (pb[i] ?? 0);
  }
  return 0;
}

/** Throws unless `version` is at least {@linkcode MIN_DENO}. */
export function checkDenoVersion(version: string): void {
  if (compareVersions(version, MIN_DENO) < 0) {
    throw new SetupError(
      `tokenlab needs Deno >= ${MIN_DENO} (older Deno kernels crash nbclient or report a failing cell as a success); found Deno ${version}. ` +
        `Run the tasks through npm instead: \`npx -y deno@2.9.6 task test\`, or upgrade with \`deno upgrade 2.9.6\`.`,
    );
  }
}

/**
 * Parses `dpkg-query -W -f '${Package} ${db:Status-Status}\n'` output and
 * returns the wanted packages that are not installed.
 */
export function missingFromDpkg(
  output: string,
  wanted: readonly string[],
): string[] {
  const installed = new Set<string>();
  for (const line of output.split("\n")) {
    const [name, status] = line.trim().split(/\s+/);
    if (name && status === "installed") installed.add(name.split(":")[0]);
  }
  return wanted.filter((p) => !installed.has(p));
}

/** The exact command a non-root user runs to install `packages`. */
export function aptCommand(packages: readonly string[]): string {
  return `sudo apt-get update && sudo apt-get install -y --no-install-recommends ${
    packages.join(" ")
  }`;
}

/** Jupyter's per-user data folder, as jupyter_core computes it on Linux. */
export function jupyterDataDir(
  env: (name: string) => string | undefined,
): string {
  const explicit = env("JUPYTER_DATA_DIR");
  if (explicit) return explicit;
  const xdg = env("XDG_DATA_HOME");
  if (xdg) return join(xdg, "jupyter");
  const home = env("HOME");
  if (!home) {
    throw new SetupError(
      "cannot place the Jupyter kernelspec: HOME is not set (set HOME or JUPYTER_DATA_DIR)",
    );
  }
  return join(home, ".local", "share", "jupyter");
}

/** The kernelspec of the Deno kernel for a given Deno binary. */
export function kernelSpec(denoPath: string): Record<string, unknown> {
  return {
    argv: [denoPath, "jupyter", "--kernel", "--conn", "{connection_file}"],
    display_name: "Deno",
    language: "typescript",
  };
}

async function run(
  cmd: string,
  args: string[],
  options: { inherit?: boolean; env?: Record<string, string> } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const out = await new Deno.Command(cmd, {
      args,
      env: options.env,
      stdin: "null",
      stdout: options.inherit ? "inherit" : "piped",
      stderr: options.inherit ? "inherit" : "piped",
    }).output();
    const dec = new TextDecoder();
    return {
      code: out.code,
      stdout: options.inherit ? "" : dec.decode(out.stdout),
      stderr: options.inherit ? "" : dec.decode(out.stderr),
    };
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      return { code: 127, stdout: "", stderr: `${cmd}: not found` };
    }
    throw e;
  }
}

function dpkgQuery(packages: readonly string[]) {
  return run("dpkg-query", [
    "-W",
    "-f",
    "${Package} ${db:Status-Status}\n",
    ...packages,
  ]);
}

/** Options of {@linkcode ensureDebianPackages}. */
export interface DebianPackagesOptions {
  /** Packages to ensure (default {@linkcode DEBIAN_PACKAGES}). */
  packages?: readonly string[];
  /** The user id deciding whether apt-get may run (default: this process's). */
  uid?: number | null;
  /** Where progress lines go. */
  log?: (line: string) => void;
}

/**
 * Installs the missing Debian packages with apt-get when root; otherwise
 * throws a {@linkcode SetupError} holding the exact command to run.
 */
export async function ensureDebianPackages(
  options: DebianPackagesOptions = {},
): Promise<string> {
  const packages = options.packages ?? DEBIAN_PACKAGES;
  const uid = options.uid === undefined ? Deno.uid() : options.uid;
  const log = options.log ?? ((s: string) => console.error(s));
  const query = await dpkgQuery(packages);
  if (query.code === 127) {
    // Not a Debian-like system: accept any working Jupyter stack.
    const probe = await run("python3", [
      "-c",
      "import nbclient, nbconvert, jupyter_client",
    ]);
    if (probe.code !== 0) {
      throw new SetupError(
        "this is not a Debian system (no dpkg-query) and python3 cannot import nbclient, nbconvert and jupyter_client. " +
          "Install them with your package manager, or `python3 -m pip install nbclient nbconvert jupyter_client ipykernel`, then run setup again.",
      );
    }
    return "no dpkg: using the Jupyter stack of python3";
  }
  const missing = missingFromDpkg(query.stdout, packages);
  if (missing.length === 0) {
    return `${packages.length} Debian packages present`;
  }
  if (uid !== 0) {
    throw new SetupError(
      `missing Debian packages: ${
        missing.join(", ")
      }. Install them as root, then run setup again:\n  ${aptCommand(missing)}`,
    );
  }
  log(`setup: installing ${missing.join(" ")} with apt-get (once)`);
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  const update = await run("apt-get", ["update", "-q"], { inherit: true, env });
  const install = update.code === 0
    ? await run(
      "apt-get",
      ["install", "-y", "-q", "--no-install-recommends", ...missing],
      { inherit: true, env },
    )
    : update;
  if (install.code !== 0) {
    throw new SetupError(
      `apt-get failed (exit ${install.code}) installing ${
        missing.join(", ")
      }; see its output above, fix the cause, then run setup again`,
    );
  }
  const after = await dpkgQuery(packages);
  const still = missingFromDpkg(after.stdout, packages);
  if (still.length > 0) {
    throw new SetupError(
      `apt-get finished but these packages are still not installed: ${
        still.join(", ")
      }`,
    );
  }
  return `installed ${missing.join(", ")}`;
}

async function ensureKernelSpec(denoPath: string): Promise<string> {
  const dir = join(
    jupyterDataDir((n) => Deno.env.get(n)),
    "kernels",
    "deno",
  );
  const file = join(dir, "kernel.json");
  const wanted = kernelSpec(denoPath);
  try {
    const have = JSON.parse(await Deno.readTextFile(file));
    if (JSON.stringify(have.argv) === JSON.stringify(wanted.argv)) {
      return "Deno kernelspec up to date";
    }
  } catch {
    // Missing or unreadable: written below.
  }
  await Deno.mkdir(dir, { recursive: true });
  await writeTextAtomic(file, JSON.stringify(wanted, null, 2) + "\n");
  return `Deno kernelspec written (${dirname(file)})`;
}

/** Options of {@linkcode setup}. */
export interface SetupOptions {
  /** Where progress lines go (default: console.error). */
  log?: (line: string) => void;
}

/**
 * Runs every step and returns the one-line summary.
 *
 * @throws {SetupError} when a step cannot be completed; the message says what
 * to do
 */
export async function setup(options: SetupOptions = {}): Promise<string> {
  const log = options.log ?? ((s: string) => console.error(s));
  const t0 = performance.now();
  checkDenoVersion(Deno.version.deno);
  const packages = await ensureDebianPackages({
    packages: [...DEBIAN_PACKAGES, ...SLURM_PACKAGES],
    log,
  });
  const kernel = await ensureKernelSpec(Deno.execPath());
  const seconds = ((performance.now() - t0) / 1000).toFixed(1);
  return `setup: ok in ${seconds} s (Deno ${Deno.version.deno}; ${packages}; ${kernel})`;
}

if (import.meta.main) {
  try {
    console.error(await setup());
  } catch (e) {
    if (!(e instanceof SetupError)) throw e;
    console.error(`setup failed: ${e.message}`);
    Deno.exit(1);
  }
}
