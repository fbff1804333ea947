/**
 * Which notebooks a report run renders and where their reports go: the
 * project's notebook and report folders, the notebooks of a folder, the
 * command line's words resolved into notebooks (a name of the project's, or
 * the path of any notebook file) with each one's kernel folder and report
 * folder, and the refusal of report folders that would lose something.
 *
 * @module
 */

import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ReportError } from "./report_error.ts";
import type { RunReportsOptions } from "./run_types.ts";

/** The project's notebook folder. */
export const NOTEBOOK_DIR: string = fileURLToPath(
  new URL("../../notebooks/", import.meta.url),
);
/** The project's report folder. */
export const REPORT_DIR: string = fileURLToPath(
  new URL("../../reports/", import.meta.url),
);
/** The project's root (its deno.json maps `tokenlab`). */
export const PROJECT_ROOT: string = fileURLToPath(
  new URL("../../", import.meta.url),
);

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

/** A notebook to run: where it is, where it runs and where its report goes. */
export interface Target {
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
export async function resolveTargets(
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
export async function checkOutDirs(
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
