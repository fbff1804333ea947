/**
 * Executing one notebook: the Python that can import nbclient, the run of
 * `_execute.py` (which executes the notebook with a Jupyter kernel and
 * writes the executed copy), and the message that says why a run failed.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { ReportError } from "./report_error.ts";

const EXECUTE_PY = fileURLToPath(new URL("./_execute.py", import.meta.url));

let python: Promise<string> | null = null;

/**
 * The Python that can import nbclient. Debian's packages live under
 * /usr/bin/python3, which a pyenv or venv `python3` on PATH may shadow.
 */
export function findPython(): Promise<string> {
  python ??= (async () => {
    const tried: string[] = [];
    for (const candidate of ["/usr/bin/python3", "python3", "python"]) {
      try {
        const out = await new Deno.Command(candidate, {
          args: ["-c", "import nbclient, nbformat, jupyter_client"],
          stdout: "null",
          stderr: "null",
        }).output();
        if (out.success) return candidate;
        tried.push(`${candidate} (cannot import nbclient)`);
      } catch {
        tried.push(`${candidate} (not found)`);
      }
    }
    throw new ReportError(
      `no Python with nbclient: tried ${
        tried.join(", ")
      }. Run \`deno task setup\` (it installs Debian's python3-nbclient).`,
    );
  })();
  return python;
}

/** What the executor (`_execute.py`) reports of one notebook run. */
export interface Executed {
  status: "ok" | "failed";
  kind: "error" | "timeout" | "dead" | "fatal" | null;
  cell: number | null;
  error: string;
  written: boolean;
}

/** Runs one notebook through nbclient (`_execute.py`) with the given Python. */
export async function execute(
  py: string,
  input: string,
  output: string,
  cwd: string,
  kernel: string,
  timeout: number,
  env: Record<string, string>,
): Promise<Executed> {
  const out = await new Deno.Command(py, {
    args: [
      EXECUTE_PY,
      input,
      output,
      "--cwd",
      cwd,
      "--kernel",
      kernel,
      "--timeout",
      String(timeout),
    ],
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout).trim();
  const stderr = new TextDecoder().decode(out.stderr).trim();
  try {
    const parsed = JSON.parse(stdout.split("\n").at(-1) ?? "");
    return {
      status: parsed.status === "ok" && out.code === 0 ? "ok" : "failed",
      kind: parsed.kind ?? null,
      cell: typeof parsed.cell === "number" ? parsed.cell : null,
      error: parsed.error ?? "",
      written: parsed.written === true,
    };
  } catch {
    return {
      status: "failed",
      kind: "fatal",
      cell: null,
      error: `the executor printed no result (exit ${out.code}): ${
        stderr.split("\n").slice(-5).join("\n")
      }`,
      written: false,
    };
  }
}

/** Why a notebook run failed, as one message naming the notebook and where. */
export function failureMessage(
  name: string,
  run: Executed,
  cellNumber: number | "injected" | null,
  timeout: number,
): string {
  const where = cellNumber === null
    ? ""
    : cellNumber === "injected"
    ? " in the injected parameters cell"
    : ` at cell ${cellNumber}`;
  switch (run.kind) {
    case "timeout":
      return `${name}: cell ${cellNumber} did not finish within the ${timeout} s cell timeout; it was stopped. Raise the limit with --cell-timeout SECONDS, or make the cell faster (a smaller --scale).`;
    case "dead":
      return `${name}: the kernel died${where} (out of memory, or a crash in native code): ${run.error}`;
    case "fatal":
      return `${name}: could not run: ${run.error}`;
    default:
      return `${name}: failed${where}: ${run.error}`;
  }
}
