/**
 * Executing notebooks headlessly into reports: each notebook in `notebooks/`
 * runs with the Deno Jupyter kernel through nbclient, and its executed copy
 * and a self-contained HTML page land in `reports/`.
 *
 * @module
 */

import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The project's notebook folder. */
export const NOTEBOOK_DIR: string = fileURLToPath(
  new URL("../../notebooks/", import.meta.url),
);
/** The project's report folder. */
export const REPORT_DIR: string = fileURLToPath(
  new URL("../../reports/", import.meta.url),
);
const EXECUTE_PY = fileURLToPath(new URL("./_execute.py", import.meta.url));

/** An error that stops a report run before any notebook executes. */
export class ReportError extends Error {
  /** Creates the error with its message. */
  constructor(message: string) {
    super(message);
    this.name = "ReportError";
  }
}

/** The outcome of executing one notebook. */
export interface ReportResult {
  /** Notebook name (file stem). */
  name: string;
  /** `ok`, or `failed` when a cell failed or the kernel could not run. */
  status: "ok" | "failed";
  /** 1-based index of the failing cell, when known. */
  cell: number | null;
  /** The error, when failed. */
  error: string;
  /** Wall time in seconds. */
  seconds: number;
  /** The HTML report, when written. */
  html: string | null;
  /** The executed notebook, when written. */
  ipynb: string | null;
}

/** Options of {@linkcode runReports}. */
export interface RunReportsOptions {
  /** Folder of the notebooks (default: the project's `notebooks/`). */
  notebookDir?: string;
  /** Folder of the reports (default: the project's `reports/`). */
  outDir?: string;
  /** Backend for the kernels (sets `TOKENLAB_BACKEND` for them). */
  backend?: string;
  /** Seconds a single cell may run (default 1800). */
  cellTimeout?: number;
  /** Called when a notebook starts and ends. */
  progress?: (line: string) => void;
}

/** The notebooks (file stems) in a folder, sorted. */
export async function listNotebooks(dir: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isFile && entry.name.endsWith(".ipynb")) {
        names.push(entry.name.slice(0, -".ipynb".length));
      }
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new ReportError(`notebook folder ${dir} does not exist`);
    }
    throw e;
  }
  return names.sort();
}

let python: Promise<string> | null = null;

/**
 * The Python that can import nbclient and nbconvert. Debian's packages live
 * under /usr/bin/python3, which a pyenv or venv `python3` on PATH may shadow.
 */
export function findPython(): Promise<string> {
  python ??= (async () => {
    const tried: string[] = [];
    for (const candidate of ["/usr/bin/python3", "python3", "python"]) {
      try {
        const out = await new Deno.Command(candidate, {
          args: ["-c", "import nbclient, nbconvert, nbformat"],
          stdout: "null",
          stderr: "null",
        }).output();
        if (out.success) return candidate;
        tried.push(`${candidate} (cannot import nbclient/nbconvert)`);
      } catch {
        tried.push(`${candidate} (not found)`);
      }
    }
    throw new ReportError(
      `no Python with nbclient and nbconvert: tried ${
        tried.join(", ")
      }. Run \`deno task setup\` (it installs Debian's jupyter-nbconvert and python3-nbclient).`,
    );
  })();
  return python;
}

/**
 * Executes the named notebooks (all of them when `names` is empty) and writes
 * `<outDir>/<name>.html` and `<outDir>/<name>.ipynb` for each, also for a
 * notebook whose cell failed (marked failed in its metadata).
 *
 * @throws {ReportError} for an unknown notebook name or a missing Jupyter
 * stack, before anything runs
 */
export async function runReports(
  names: readonly string[],
  options: RunReportsOptions = {},
): Promise<ReportResult[]> {
  const notebookDir = options.notebookDir ?? NOTEBOOK_DIR;
  const outDir = options.outDir ?? REPORT_DIR;
  const progress = options.progress ?? ((s: string) => console.error(s));
  const available = await listNotebooks(notebookDir);
  const unknown = names.filter((n) =>
    !available.includes(basename(n).replace(/\.ipynb$/, ""))
  );
  if (unknown.length > 0) {
    throw new ReportError(
      `unknown notebook${unknown.length > 1 ? "s" : ""} ${
        unknown.join(", ")
      }: expected one of ${available.join(", ") || "(none)"} in ${notebookDir}`,
    );
  }
  const chosen = names.length > 0
    ? names.map((n) => basename(n).replace(/\.ipynb$/, ""))
    : available;
  if (chosen.length === 0) {
    throw new ReportError(`no notebooks in ${notebookDir}`);
  }
  const py = await findPython();
  await Deno.mkdir(outDir, { recursive: true });
  const env: Record<string, string> = {};
  if (options.backend !== undefined) env.TOKENLAB_BACKEND = options.backend;

  const results: ReportResult[] = [];
  for (const name of chosen) {
    progress(`report ${name}: running`);
    const t0 = performance.now();
    const html = join(outDir, `${name}.html`);
    const ipynb = join(outDir, `${name}.ipynb`);
    const out = await new Deno.Command(py, {
      args: [
        EXECUTE_PY,
        join(notebookDir, `${name}.ipynb`),
        ipynb,
        html,
        "--kernel",
        "deno",
        "--timeout",
        String(options.cellTimeout ?? 1800),
      ],
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const seconds = (performance.now() - t0) / 1000;
    const stdout = new TextDecoder().decode(out.stdout).trim();
    const stderr = new TextDecoder().decode(out.stderr).trim();
    let parsed: {
      status?: string;
      cell?: number | null;
      error?: string;
      written?: boolean;
    } = {};
    try {
      parsed = JSON.parse(stdout.split("\n").at(-1) ?? "");
    } catch {
      parsed = {
        status: "failed",
        error: `the executor printed no result (exit ${out.code}): ${
          stderr.split("\n").slice(-5).join("\n")
        }`,
      };
    }
    const written = parsed.written === true;
    const result: ReportResult = {
      name,
      status: parsed.status === "ok" && out.code === 0 ? "ok" : "failed",
      cell: parsed.cell ?? null,
      error: parsed.error ?? "",
      seconds,
      html: written ? html : null,
      ipynb: written ? ipynb : null,
    };
    results.push(result);
    progress(
      result.status === "ok"
        ? `report ${name}: ok in ${seconds.toFixed(1)} s -> ${html}`
        : `report ${name}: FAILED${
          result.cell !== null ? ` at cell ${result.cell}` : ""
        } after ${seconds.toFixed(1)} s: ${result.error}${
          written ? ` (partial report written to ${html})` : ""
        }`,
    );
  }
  return results;
}
