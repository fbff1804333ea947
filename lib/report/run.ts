/**
 * Executing notebooks headlessly into reports: each notebook in `notebooks/`
 * gets its parameters injected (papermill's way: a cell tagged
 * `injected-parameters` after the cell tagged `parameters`), runs with the
 * Deno Jupyter kernel through nbclient, and becomes `reports/<name>.html`
 * (self-contained), `reports/<name>.md` (figures in `<name>_files/`) and the
 * executed `reports/<name>.ipynb`. `reports/index.html` and
 * `reports/README.md` list every report (`index_page.ts`).
 *
 * Any other notebook file can be rendered the same way, by its path: into
 * the folder given (`outDir`), else into a `reports/` folder beside it. Each
 * report folder has its own index; the project's `reports/` lists the
 * project's notebooks only.
 *
 * Everything is checked before anything runs (notebooks are valid JSON,
 * names and parameters exist and have the right types). A report's files
 * are written into a staging folder and moved into place only when all of
 * them are complete; a notebook that could not run at all leaves the
 * existing report untouched. A failing cell fails the run, after the
 * partial report (marked failed) is written.
 *
 * @module
 */

import { basename, dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { UNFROZEN_SCALES } from "./cache.ts";
import {
  Browser,
  findBrowser,
  type PageCheck,
  plotlyScript,
} from "./browser.ts";
import { type Notebook, readNotebook, serializeNotebook } from "./notebook.ts";
import {
  findParameterCell,
  injectParameters,
  ParameterError,
  type ParameterSpec,
  readParameterFile,
  resolveParameters,
} from "./params/mod.ts";
import { HEADLINE_MIME, PROVENANCE_MIME } from "./provenance.ts";
import {
  collectFigures,
  originalCellNumber,
  renderHtml,
  renderMarkdown,
  type ReportMeta,
} from "./render.ts";
import { writeIndex } from "./index_page.ts";
import { TokenlabError } from "../errors.ts";

export { reportGroup } from "./index_page.ts";
import { OWN_GROUP, reportGroup } from "./index_page.ts";

/** The project's notebook folder. */
export const NOTEBOOK_DIR: string = fileURLToPath(
  new URL("../../notebooks/", import.meta.url),
);
/** The project's report folder. */
export const REPORT_DIR: string = fileURLToPath(
  new URL("../../reports/", import.meta.url),
);
/** The project's root (its deno.json maps `tokenlab`). */
const PROJECT_ROOT: string = fileURLToPath(new URL("../../", import.meta.url));
const EXECUTE_PY = fileURLToPath(new URL("./_execute.py", import.meta.url));

/** The scales a report can run at. */
export const SCALES = ["tiny", "smoke", "full"] as const;

/** An error that stops a report run before any notebook executes. */
export class ReportError extends TokenlabError {
  /** Creates the error with its message. */
  constructor(message: string) {
    super(message);
  }
}

/** The outcome of executing one notebook. */
export interface ReportResult {
  /** Notebook name (file stem). */
  name: string;
  /** The notebook file that ran. */
  notebook?: string;
  /** The index group: the project's notebooks by name (`reportGroup`), "Notebooks" for any other. */
  group?: string;
  /** `ok`, or `failed` when a cell failed, the kernel could not run, or the browser check found a problem. */
  status: "ok" | "failed";
  /** 1-based number of the failing cell in the notebook as stored, when known. */
  cell: number | null;
  /** The error, when failed. */
  error: string;
  /** Wall time in seconds. */
  seconds: number;
  /** The HTML report, when written. */
  html: string | null;
  /** The Markdown report, when written. */
  md: string | null;
  /** The executed notebook, when written. */
  ipynb: string | null;
  /** The headline result the notebook declared, if any. */
  headline: string | null;
  /** The scale it ran at, when the notebook has a `scale` parameter. */
  scale: string | null;
  /** The parameters given (those that override the defaults). */
  parameters: Record<string, unknown>;
  /** The backend the notebook reported in its provenance footer, if any. */
  backend: string | null;
  /** Static figure images: `rendered`, `skipped` (no browser) or `none` (no figures). */
  staticImages: "rendered" | "skipped" | "none";
  /** The browser check of the HTML report, when a browser was available. */
  check: PageCheck | null;
}

/** Options of {@linkcode runReports}. */
export interface RunReportsOptions {
  /** Folder of the notebooks that `names` name (default: the project's `notebooks/`). */
  notebookDir?: string;
  /**
   * Folder of the reports, for every notebook run. Default: the project's
   * `reports/` for the notebooks of `notebookDir`, and a `reports/` folder
   * beside any other notebook (one given by its path). With `notebookDir`
   * given, `outDir` is also that folder's home: its index lists every
   * notebook of `notebookDir`, as the project's `reports/` lists the
   * project's. Another folder's index lists the reports rendered into it.
   */
  outDir?: string;
  /** Backend for the kernels (sets `TOKENLAB_BACKEND` for them). */
  backend?: string;
  /** Seconds a single cell may run (default 1800). */
  cellTimeout?: number;
  /** The scale, for notebooks with a `scale` parameter. */
  scale?: string;
  /** `key=value` parameters (applied to every notebook run). */
  params?: readonly string[];
  /** Parameters from a JSON file (an object of name: value). */
  paramsFile?: string;
  /** Recompute cached experiments (`TOKENLAB_REFRESH=1`). */
  refresh?: boolean;
  /** Write every experiment's result into the frozen store (`TOKENLAB_FREEZE=1`). */
  freeze?: boolean;
  /** The Jupyter kernel (default `deno`). */
  kernel?: string;
  /** Use a headless browser for static figures and the HTML check when one is found (default true). */
  browser?: boolean;
  /** Called when a notebook starts and ends. */
  progress?: (line: string) => void;
}

/** The notebooks (file stems) in a folder, sorted, `quickstart` first. */
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
  return names.sort((
    a,
    b,
  ) => (a === "quickstart"
    ? -1
    : b === "quickstart"
    ? 1
    : a < b
    ? -1
    : a > b
    ? 1
    : 0)
  );
}

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

/** A notebook to run: where it is, where it runs and where its report goes. */
interface Target {
  /** The report's name: the notebook's file stem. */
  name: string;
  /** The notebook file. */
  path: string;
  /** The kernel's working folder. */
  cwd: string;
  /** The report folder. */
  outDir: string;
  /** Whether it is one of `notebookDir`'s notebooks (named, or by its path). */
  member: boolean;
  /** How the command line named it. */
  given: string;
}

/** Whether a command-line word names a notebook file rather than a notebook of the project. */
function isNotebookPath(word: string): boolean {
  return /[\\/]/.test(word) || word.endsWith(".ipynb");
}

/** What is at `path`, or null when nothing is. */
async function statOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

function kindOf(info: Deno.FileInfo): string {
  return info.isDirectory
    ? "a folder"
    : info.isFile
    ? "a file"
    : "something that is neither a file nor a folder";
}

/**
 * The kernel's working folder for a notebook outside the project: its own
 * folder when a deno.json (or deno.jsonc) at or above it configures Deno
 * there; else the project's root, whose deno.json maps `tokenlab` (the
 * Deno kernel reads its configuration from its working folder).
 */
async function kernelFolder(dir: string): Promise<string> {
  for (let d = dir;; d = dirname(d)) {
    for (const config of ["deno.json", "deno.jsonc"]) {
      if ((await statOrNull(join(d, config)))?.isFile) return dir;
    }
    if (dirname(d) === d) return PROJECT_ROOT;
  }
}

/**
 * The notebooks `words` name (all of `notebookDir`'s when none): a word is
 * a notebook of `notebookDir` by name (`quickstart`), or a notebook file by
 * its path (`my.ipynb`, `../work/my.ipynb`, `/abs/my.ipynb`; relative to
 * the current folder). Throws a ReportError saying what was expected and
 * found for an unknown name or a path that is not a notebook file.
 */
async function resolveTargets(
  words: readonly string[],
  available: readonly string[],
  notebookDir: string,
  options: RunReportsOptions,
): Promise<Target[]> {
  const memberOut = resolve(options.outDir ?? REPORT_DIR);
  const member = (name: string, given: string): Target => ({
    name,
    path: join(notebookDir, `${name}.ipynb`),
    cwd: notebookDir,
    outDir: memberOut,
    member: true,
    given,
  });
  if (words.length === 0) return available.map((n) => member(n, n));
  const unknown: string[] = [];
  const targets: Target[] = [];
  for (const word of words) {
    if (!isNotebookPath(word)) {
      if (available.includes(word)) targets.push(member(word, word));
      else unknown.push(word);
      continue;
    }
    const path = resolve(word);
    const stem = basename(path).replace(/\.ipynb$/, "");
    const inCollection = path.endsWith(".ipynb") && available.includes(stem);
    if (inCollection && dirname(path) === resolve(notebookDir)) {
      targets.push(member(stem, word));
      continue;
    }
    const info = await statOrNull(path);
    if (info === null) {
      // A bare "quickstart.ipynb" not in the current folder: the project's.
      if (inCollection && !/[\\/]/.test(word)) {
        targets.push(member(stem, word));
        continue;
      }
      throw new ReportError(
        `notebook ${word} not found: expected a Jupyter notebook file (.ipynb) at ${path}, found nothing there. Check the path (relative paths start at the current folder ${Deno.cwd()}), or name one of ${
          available.join(", ") || "(none)"
        } in ${notebookDir}.`,
      );
    }
    if (!info.isFile || !path.endsWith(".ipynb")) {
      throw new ReportError(
        `${word} is not a notebook: expected a Jupyter notebook file whose name ends in .ipynb, found ${
          info.isFile ? `a file named ${basename(path)}` : kindOf(info)
        } at ${path}. Give the path of the .ipynb file${
          info.isDirectory ? ` (for example ${join(word, "NAME.ipynb")})` : ""
        }.`,
      );
    }
    targets.push({
      name: stem,
      path,
      cwd: await kernelFolder(dirname(path)),
      outDir: options.outDir !== undefined
        ? resolve(options.outDir)
        : join(dirname(path), "reports"),
      member: false,
      given: word,
    });
  }
  if (unknown.length > 0) {
    throw new ReportError(
      `unknown notebook${unknown.length > 1 ? "s" : ""} ${
        unknown.join(", ")
      }: expected one of ${
        available.join(", ") || "(none)"
      } in ${notebookDir}, or the path of a notebook file (ending in .ipynb)`,
    );
  }
  return targets.filter((t, i) =>
    targets.findIndex((u) => u.path === t.path) === i
  );
}

/**
 * Refuses report folders that would lose something: a notebook outside
 * `notebookDir` into the folder whose index lists `notebookDir`'s
 * notebooks, two notebooks of one name into one folder, an executed copy
 * over its own notebook, and a folder that holds files `tokenlab report`
 * did not write (no index.json).
 */
async function checkOutDirs(
  targets: readonly Target[],
  home: string,
  notebookDir: string,
): Promise<void> {
  for (const t of targets) {
    const where = t.outDir === join(dirname(t.path), "reports") && !t.member
      ? `the report folder beside ${t.given}, ${t.outDir},`
      : `the report folder ${t.outDir}`;
    if (!t.member && t.outDir === home) {
      throw new ReportError(
        `${t.given} is not one of the notebooks of ${notebookDir}, and ${where} is theirs: its index lists only those. Give another folder for it with --out DIR.`,
      );
    }
    if (resolve(t.outDir, `${t.name}.ipynb`) === t.path) {
      throw new ReportError(
        `${where} is the folder of ${t.given} itself: the executed copy ${t.name}.ipynb would replace the notebook. Give another folder with --out DIR.`,
      );
    }
    const twin = targets.find((u) =>
      u !== t && u.outDir === t.outDir && u.name === t.name
    );
    if (twin) {
      throw new ReportError(
        `${t.given} and ${twin.given} are both named ${t.name}: their reports would overwrite each other in ${t.outDir}. Render them one at a time, each with its own --out DIR.`,
      );
    }
  }
  for (const dir of new Set(targets.map((t) => t.outDir))) {
    if (dir === home) continue;
    const info = await statOrNull(dir);
    if (info === null) continue;
    if (!info.isDirectory) {
      throw new ReportError(
        `the report folder ${dir} is ${
          kindOf(info)
        }: expected a folder (or nothing there, and it is created). Give another with --out DIR.`,
      );
    }
    let empty = true;
    for await (const _ of Deno.readDir(dir)) {
      empty = false;
      break;
    }
    if (
      !empty && (await statOrNull(join(dir, "index.json")))?.isFile !== true
    ) {
      throw new ReportError(
        `the report folder ${dir} already holds files that tokenlab report did not write (it has no index.json): the reports and their index (README.md, index.html, index.json) would be written among them. Give an empty or new folder with --out DIR, or one tokenlab report wrote before.`,
      );
    }
  }
}

/** A notebook ready to run: read, validated, parameters resolved. */
interface Planned {
  target: Target;
  name: string;
  notebook: Notebook;
  injected: Notebook;
  injectedCell: number | null;
  parameters: Record<string, unknown>;
  scale: string | null;
}

/** Reads, validates and parameterises every chosen notebook; throws before anything runs. */
async function plan(
  targets: readonly Target[],
  options: RunReportsOptions,
): Promise<Planned[]> {
  if (
    options.scale !== undefined &&
    !(SCALES as readonly string[]).includes(options.scale)
  ) {
    throw new ReportError(
      `--scale expects one of ${SCALES.join(", ")}, found "${options.scale}"`,
    );
  }
  const fileValues = options.paramsFile !== undefined
    ? await readParameterFile(options.paramsFile)
    : {};
  const planned: Planned[] = [];
  let anyScale = false;
  for (const target of targets) {
    const { name } = target;
    const notebook = await readNotebook(target.path);
    let found: ReturnType<typeof findParameterCell>;
    try {
      found = findParameterCell(notebook);
    } catch (e) {
      if (!(e instanceof ParameterError)) throw e;
      throw new ParameterError(`notebook ${name}: ${e.message}`);
    }
    const specs: readonly ParameterSpec[] = found?.specs ?? [];
    const scaleSpec = specs.find((s) => s.name === "scale");
    anyScale ||= scaleSpec !== undefined;
    const pairs = [...(options.params ?? [])];
    if (options.scale !== undefined && scaleSpec) {
      pairs.push(`scale=${options.scale}`);
    }
    const given = pairs.length > 0 || Object.keys(fileValues).length > 0;
    if (given && !found) {
      throw new ReportError(
        `notebook ${name} has no parameters (no code cell tagged "parameters"), so --param/--params cannot apply to it; run it on its own, or tag a cell of TypeScript consts "parameters" to give it some`,
      );
    }
    const parameters = found
      ? resolveParameters(specs, { pairs, values: fileValues }, name)
      : {};
    const injected = injectParameters(notebook, parameters);
    const injectedCell = Object.keys(parameters).length > 0
      ? injected.cells.findIndex((c) =>
        (c.metadata?.tags as string[] | undefined)?.includes(
          "injected-parameters",
        )
      )
      : null;
    const scale = scaleSpec
      ? String(parameters.scale ?? scaleSpec.default)
      : null;
    planned.push({
      target,
      name,
      notebook,
      injected,
      injectedCell,
      parameters,
      scale,
    });
  }
  if (options.scale !== undefined && !anyScale) {
    throw new ReportError(
      `--scale ${options.scale}: none of ${
        targets.map((t) => t.name).join(", ")
      } has a "scale" parameter, so the scale would change nothing`,
    );
  }
  const unfrozen = planned.filter((p) =>
    p.scale && UNFROZEN_SCALES.has(p.scale)
  );
  if (options.freeze && unfrozen.length > 0) {
    throw new ReportError(
      `--freeze stores full-scale results for CI to re-render; ${
        unfrozen.map((p) => `${p.name} (${p.scale})`).join(", ")
      } would run at a smaller scale. Add --scale full.`,
    );
  }
  return planned;
}

interface Executed {
  status: "ok" | "failed";
  kind: "error" | "timeout" | "dead" | "fatal" | null;
  cell: number | null;
  error: string;
  written: boolean;
}

async function execute(
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

/** The tokenlab bundles a notebook left behind: headline and provenance. */
function readMarkers(
  nb: Notebook,
): { headline: string | null; backend: string | null } {
  let headline: string | null = null, backend: string | null = null;
  for (const cell of nb.cells) {
    for (
      const o of (cell.outputs ?? []) as { data?: Record<string, unknown> }[]
    ) {
      const h = o.data?.[HEADLINE_MIME] as { text?: string } | undefined;
      if (h?.text) headline = h.text;
      const p = o.data?.[PROVENANCE_MIME] as { backend?: string } | undefined;
      if (p?.backend) backend = p.backend;
    }
  }
  return { headline, backend };
}

function failureMessage(
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

/** Moves a finished report's files from the staging folder into place. */
async function publish(
  staging: string,
  outDir: string,
  name: string,
  hasFiles: boolean,
): Promise<void> {
  const filesDir = join(outDir, `${name}_files`);
  await Deno.remove(filesDir, { recursive: true }).catch((e) => {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  });
  if (hasFiles) await Deno.rename(join(staging, `${name}_files`), filesDir);
  for (const ext of ["md", "ipynb", "html"]) {
    await Deno.rename(
      join(staging, `${name}.${ext}`),
      join(outDir, `${name}.${ext}`),
    );
  }
}

/**
 * Executes the named notebooks (all of them when `names` is empty) and
 * writes `<outDir>/<name>.html`, `.md` (+ `<name>_files/`) and `.ipynb`
 * for each, also for a notebook whose cell failed (marked failed), then
 * updates the index.
 *
 * @throws {ReportError} for an unknown notebook name, an invalid notebook,
 * a bad parameter or a missing Jupyter stack, before anything runs
 */
export async function runReports(
  names: readonly string[],
  options: RunReportsOptions = {},
): Promise<ReportResult[]> {
  const notebookDir = options.notebookDir ?? NOTEBOOK_DIR;
  const outDir = options.outDir ?? REPORT_DIR;
  const progress = options.progress ?? ((s: string) => console.error(s));
  const timeout = options.cellTimeout ?? 1800;
  const available = await listNotebooks(notebookDir);
  const targets = await resolveTargets(names, available, notebookDir, options);
  if (targets.length === 0) {
    throw new ReportError(`no notebooks in ${notebookDir}`);
  }
  // The folder whose index lists every notebook of notebookDir.
  const home = resolve(
    options.notebookDir === undefined ? REPORT_DIR : outDir,
  );
  await checkOutDirs(targets, home, notebookDir);
  const planned = await plan(targets, options);
  const py = await findPython();
  const outDirs = [...new Set(targets.map((t) => t.outDir))];
  for (const dir of outDirs) await Deno.mkdir(dir, { recursive: true });

  let browser: Browser | null = null;
  let browserProblem: string | null = null;
  const wantBrowser = options.browser ?? true;
  const getBrowser = async (): Promise<Browser | null> => {
    if (browser || browserProblem) return browser;
    if (!wantBrowser) {
      browserProblem = "the browser was turned off (--no-browser)";
      return null;
    }
    const exe = await findBrowser();
    if (exe === null) {
      browserProblem =
        "no headless Chromium found (run `deno task setup`, which installs Debian's chromium)";
      return null;
    }
    try {
      browser = await Browser.launch({ executable: exe });
    } catch (e) {
      browserProblem = `Chromium did not start: ${(e as Error).message}`;
    }
    return browser;
  };

  const results: ReportResult[] = [];
  try {
    for (const p of planned) {
      results.push(await runOne(p));
    }
  } finally {
    await (browser as Browser | null)?.close();
  }
  for (const dir of outDirs) {
    const here = results.filter((_, i) => planned[i].target.outDir === dir);
    await writeIndex(dir, here, dir === home ? available : null);
  }
  return results;

  async function runOne(p: Planned): Promise<ReportResult> {
    const { name } = p;
    const { outDir, cwd } = p.target;
    progress(
      `report ${name}: running${p.scale ? ` (${p.scale} scale)` : ""}${
        p.target.member
          ? ""
          : ` from ${p.target.path}${
            cwd === PROJECT_ROOT
              ? ` in the project's root (no deno.json at or above the notebook's folder, so the project's, which maps "tokenlab")`
              : ""
          }`
      }`,
    );
    const t0 = performance.now();
    const started = Date.now();
    const staging = await Deno.makeTempDir({
      dir: outDir,
      // The name is only a hint for whoever looks into the folder: a name
      // with characters some file systems refuse must not stop the run.
      prefix: `.staging-${name.replace(/[^\w.-]/g, "_")}-`,
    });
    try {
      const input = join(staging, "input.ipynb");
      await Deno.writeTextFile(input, serializeNotebook(p.injected));
      const env: Record<string, string> = {
        TOKENLAB_REPORT: name,
        TOKENLAB_REPORT_STARTED: String(started),
        TOKENLAB_PARAMS: JSON.stringify(p.parameters),
        TOKENLAB_SCALE: p.scale ?? "",
        TOKENLAB_REFRESH: options.refresh ? "1" : "",
        TOKENLAB_FREEZE: options.freeze ? "1" : "",
      };
      if (options.backend !== undefined) env.TOKENLAB_BACKEND = options.backend;
      const executedPath = join(staging, `${name}.ipynb`);
      const run = await execute(
        py,
        input,
        executedPath,
        cwd,
        options.kernel ?? "deno",
        timeout,
        env,
      );
      const base: ReportResult = {
        name,
        notebook: p.target.path,
        group: p.target.member ? reportGroup(name) : OWN_GROUP,
        status: "failed",
        cell: null,
        error: "",
        seconds: 0,
        html: null,
        md: null,
        ipynb: null,
        headline: null,
        scale: p.scale,
        parameters: p.parameters,
        backend: null,
        staticImages: "none",
        check: null,
      };
      const cellNumber = run.cell === null
        ? null
        : originalCellNumber(run.cell, p.injectedCell);
      const failure = run.status === "failed"
        ? failureMessage(name, run, cellNumber, timeout)
        : null;
      if (!run.written) {
        base.seconds = (performance.now() - t0) / 1000;
        base.error = failure ?? "";
        progress(
          `report ${name}: FAILED: ${base.error} (existing report left as it was)`,
        );
        return base;
      }
      const executed = await readNotebook(executedPath);
      executed.metadata.tokenlab = {
        status: run.status,
        ...(run.status === "failed"
          ? { cell: cellNumber, error: failure }
          : {}),
        parameters: p.parameters,
        scale: p.scale,
      };

      // Static images of the plotly figures, for the Markdown report and
      // the executed notebook (image/png beside the plotly MIME type).
      const figures = collectFigures(executed);
      const images = new Map<string, Uint8Array>();
      let staticNote: string | null = null;
      let staticImages: ReportResult["staticImages"] = "none";
      if (figures.length > 0) {
        const b = await getBrowser();
        if (b) {
          try {
            const pngs = await b.renderPlotly(figures.map((f) => f.figure), {
              format: "png",
            });
            figures.forEach((f, k) => {
              images.set(`${f.cell}:${f.output}`, pngs[k]);
              const out = executed.cells[f.cell].outputs![f.output] as {
                data: Record<string, unknown>;
              };
              out.data["image/png"] = btoa(
                Array.from(pngs[k], (c) => String.fromCharCode(c)).join(""),
              );
            });
            staticImages = "rendered";
          } catch (e) {
            staticNote =
              `Static images were skipped: the browser could not render the figures (${
                (e as Error).message
              }).`;
            staticImages = "skipped";
          }
        } else {
          staticNote =
            `Static images were skipped: ${browserProblem}. The HTML report draws the figures; the Markdown uses each figure's own SVG where it has one.`;
          staticImages = "skipped";
        }
      }
      const seconds = (performance.now() - t0) / 1000;
      const meta: ReportMeta = {
        name,
        status: run.status,
        error: failure,
        failedCell: run.status === "failed" ? run.cell : null,
        injectedCell: p.injectedCell,
        parameters: p.parameters,
        scale: p.scale,
        seconds,
        date: new Date().toISOString(),
        staticNote,
        source: p.target.member && options.notebookDir === undefined
          ? `notebooks/${name}.ipynb`
          : relative(outDir, p.target.path).split(sep).join("/"),
      };
      const plotly = figures.length > 0 ? await plotlyScript() : null;
      const html = renderHtml(executed, meta, plotly);
      const { markdown, files } = renderMarkdown(executed, meta, images);
      await Deno.writeTextFile(join(staging, `${name}.html`), html);
      await Deno.writeTextFile(join(staging, `${name}.md`), markdown);
      await Deno.writeTextFile(executedPath, serializeNotebook(executed));
      if (files.length > 0) {
        await Deno.mkdir(join(staging, `${name}_files`));
        for (const f of files) {
          await Deno.writeFile(join(staging, f.path), f.bytes);
        }
      }

      // Open the page in a real browser: every figure drawn, no console
      // errors, nothing fetched, nothing run but the page's own scripts.
      let check: PageCheck | null = null;
      let checkError = "";
      const b = await getBrowser();
      if (b) {
        try {
          check = await b.checkPage(join(staging, `${name}.html`));
          checkError = pageCheckProblems(name, check);
        } catch (e) {
          // The browser itself failed (crashed, stuck): this report fails,
          // and the next one gets a fresh browser.
          checkError =
            `${name}: the browser check of the HTML report could not finish: ${
              (e as Error).message
            }`;
          browser = null;
          await b.close().catch(() => {});
        }
      }
      await publish(staging, outDir, name, files.length > 0);
      const { headline, backend } = readMarkers(executed);
      const result: ReportResult = {
        ...base,
        status: run.status === "ok" && checkError === "" ? "ok" : "failed",
        cell: typeof cellNumber === "number" ? cellNumber : null,
        error: meta.error ?? checkError,
        seconds,
        html: join(outDir, `${name}.html`),
        md: join(outDir, `${name}.md`),
        ipynb: join(outDir, `${name}.ipynb`),
        headline,
        backend,
        staticImages,
        check,
      };
      progress(
        result.status === "ok"
          ? `report ${name}: ok in ${seconds.toFixed(1)} s -> ${result.html}${
            staticNote ? ` (${staticNote})` : ""
          }`
          : `report ${name}: FAILED after ${
            seconds.toFixed(1)
          } s: ${result.error} (the partial report, marked failed, is in ${result.html})`,
      );
      return result;
    } finally {
      await Deno.remove(staging, { recursive: true }).catch(() => {});
    }
  }
}

/**
 * Why a checked report page fails, as one message, or "" when it passed.
 * Script that is not the report's own (a dialog, a policy violation,
 * console output) is named first: it means an output escaped the sanitiser.
 *
 * @example
 * ```ts
 * import { pageCheckProblems } from "tokenlab/report/run.ts";
 * const check = {
 *   url: "file:///r/x.html", figures: 0, rendered: 0, consoleErrors: [],
 *   consoleMessages: [], pageErrors: [], dialogs: ['alert: "1"'],
 *   cspViolations: [], csp: "default-src 'none'", network: [], ok: false,
 * };
 * console.log(pageCheckProblems("x", check));
 * // x: the HTML report does not work in a browser: script that is not the report's own ran (a dialog opened (alert: "1")); ...
 * ```
 */
export function pageCheckProblems(name: string, check: PageCheck): string {
  const foreign = [
    ...check.dialogs.map((d) => `a dialog opened (${d})`),
    ...check.cspViolations.map((v) => `the page's policy blocked ${v}`),
    ...check.consoleMessages.map((m) => `console output ${m}`),
  ];
  const problems = [
    foreign.length
      ? `script that is not the report's own ran (${
        foreign.join("; ")
      }); an output escaped the sanitiser: look at what the notebook printed`
      : "",
    check.csp === null
      ? "the page has no Content-Security-Policy; expected the meta tag renderHtml writes"
      : "",
    check.rendered < check.figures
      ? `${
        check.figures - check.rendered
      } of ${check.figures} figures did not render`
      : "",
    ...check.pageErrors.map((e) => `page error: ${e}`),
    ...check.consoleErrors.map((e) => `console error: ${e}`),
    ...check.network.map((u) => `network request: ${u}`),
  ].filter(Boolean);
  return problems.length
    ? `${name}: the HTML report does not work in a browser: ${
      problems.join("; ")
    }`
    : "";
}
