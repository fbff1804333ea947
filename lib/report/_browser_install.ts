/**
 * What the browser driver needs installed, and where it finds it: a
 * Chromium (or Chrome) executable, and the pinned plotly.js bundle that
 * report pages inline and the render page loads.
 *
 * @module
 */

import plotlyPackage from "plotly.js-dist-min/package.json" with {
  type: "json",
};
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { exists } from "../_fs.ts";
import { BrowserError } from "./_browser_error.ts";

/** Where Debian, Ubuntu and Google put a Chromium, in order of preference. */
export const BROWSER_PATHS = [
  "/usr/bin/chromium",
  "/usr/bin/chromium-headless-shell",
  "/usr/bin/chromium-browser",
  "/usr/bin/google-chrome",
];

/** What to do when no usable browser is found. */
export const HOW_TO_INSTALL =
  "run `npx -y deno@2.9.6 task setup` (installs Debian's chromium) or set TOKENLAB_CHROMIUM to a Chromium or Chrome executable";

/**
 * Path of a usable Chromium: `$TOKENLAB_CHROMIUM` if set, else the first
 * existing of /usr/bin/chromium, /usr/bin/chromium-headless-shell,
 * /usr/bin/chromium-browser and /usr/bin/google-chrome; null when none.
 *
 * @throws {BrowserError} when `$TOKENLAB_CHROMIUM` names a missing file
 */
export async function findBrowser(): Promise<string | null> {
  const explicit = Deno.env.get("TOKENLAB_CHROMIUM");
  if (explicit) {
    if (!(await exists(explicit, { followLinks: true }))) {
      throw new BrowserError(
        `TOKENLAB_CHROMIUM is set to ${explicit}, which does not exist; point it at a Chromium or Chrome executable, or unset it to use ${
          BROWSER_PATHS.join(", ")
        }`,
      );
    }
    return explicit;
  }
  for (const path of BROWSER_PATHS) {
    if (await exists(path, { followLinks: true })) return path;
  }
  return null;
}

let plotlyText: string | undefined;

/** The file of a package path, installed where Deno put the npm packages. */
function packageFile(specifier: string): string {
  // With "nodeModulesDir": "auto" the static import above makes Deno install
  // the package, and import.meta.resolve then gives its file in node_modules.
  const url = import.meta.resolve(specifier);
  if (url.startsWith("file:")) return fileURLToPath(url);
  // Otherwise (no node_modules folder), ask Node's resolution.
  return createRequire(import.meta.url).resolve(specifier);
}

/**
 * The text of the pinned plotly.js bundle (npm "plotly.js-dist-min", file
 * plotly.min.js), read once and kept.
 *
 * @throws {BrowserError} when the installed bundle cannot be read
 */
export async function plotlyScript(): Promise<string> {
  if (plotlyText !== undefined) return plotlyText;
  let file = "(unresolved)";
  try {
    file = packageFile("plotly.js-dist-min/plotly.min.js");
    plotlyText = await Deno.readTextFile(file);
  } catch (e) {
    throw new BrowserError(
      `cannot read the pinned plotly.js bundle (plotly.js-dist-min@${plotlyPackage.version}, plotly.min.js; looked at ${file}): ${
        e instanceof Error ? e.message : String(e)
      }. Run \`npx -y deno@2.9.6 install\` in the project root so Deno installs the npm packages, then try again.`,
      { cause: e },
    );
  }
  return plotlyText;
}

/** The plotly.js version of the bundle that {@linkcode plotlyScript} reads. */
export function plotlyVersion(): Promise<string> {
  return Promise.resolve(plotlyPackage.version);
}
