/** Shared test plumbing: running the command line in a child process. */

import { fileURLToPath } from "node:url";

/** The project root. */
export const ROOT: string = fileURLToPath(new URL("../", import.meta.url));

/** Runs `deno run -A lib/cli/main.ts ...args` with extra environment. */
export async function runCli(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "lib/cli/main.ts", ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return {
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}

/** Environment under which Deno's WebGPU finds no adapter on Linux. */
export const NO_ADAPTER_ENV: Record<string, string> = {
  DENO_WEBGPU_BACKEND: "metal",
};
