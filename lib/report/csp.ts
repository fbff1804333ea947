/**
 * The Content-Security-Policy of a report page: nothing runs but the page's
 * own inline scripts (each allowed by the SHA-256 hash of its text), nothing
 * is fetched, images come only from `data:` URIs. An escaping mistake in an
 * output then shows as text or a blocked element, never as running script.
 *
 * @module
 */

import { createHash } from "node:crypto";

/**
 * The text of an inline `<script>` or `<style>` as the browser's parser
 * hands it to the policy check: the HTML parser turns CR LF and lone CR into
 * LF, so a hash of anything else would not match.
 *
 * @example
 * ```ts
 * import { inlineText } from "tokenlab/report/csp.ts";
 * console.log(JSON.stringify(inlineText("a\r\nb\rc"))); // "a\nb\nc"
 * ```
 */
export function inlineText(text: string): string {
  return text.replace(/\r\n?/g, "\n");
}

/**
 * The CSP source expression of an inline script or style:
 * `'sha256-<base64>'` of its UTF-8 text (give the text as written in the
 * page, after {@linkcode inlineText}).
 *
 * @example
 * ```ts
 * import { cspHash } from "tokenlab/report/csp.ts";
 * console.log(cspHash("")); // 'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='
 * ```
 */
export function cspHash(text: string): string {
  // Synchronous (node:crypto), so that pages render without awaiting.
  const digest = createHash("sha256").update(text, "utf8").digest("base64");
  return `'sha256-${digest}'`;
}

/** What a report page runs and styles itself with, for {@linkcode reportCsp}. */
export interface ReportCspOptions {
  /** The exact texts of the page's inline `<script>` elements that run. */
  scripts?: readonly string[];
  /** The exact texts of the page's `<style>` elements. */
  styles?: readonly string[];
  /**
   * Allow any inline `<style>` element (instead of `styles` by hash): for a
   * page that runs plotly.js, which adds style elements of its own (4.1.2
   * adds maplibre's stylesheet when it loads and an empty sheet it fills
   * rule by rule). Styles cannot run script, and images, fonts and requests
   * stay blocked, so a style cannot fetch anything either. Default false.
   */
  inlineStyleElements?: boolean;
}

/**
 * The policy of a report page, for a `<meta http-equiv="Content-Security-Policy">`
 * placed first in its head: `default-src 'none'` (no fetch, frame, object,
 * font, worker or connection), scripts only by the hashes of `scripts` (none
 * at all without), style elements by the hashes of `styles` (or any, see
 * {@linkcode ReportCspOptions.inlineStyleElements}), style attributes (the
 * kit's tables and plotly's drawing use them; they cannot run script, and
 * the sanitiser limits their properties), images only from `data:`, and no
 * `<base>` or form target. Violations report a sample of what was blocked.
 *
 * @example
 * ```ts
 * import { reportCsp } from "tokenlab/report/csp.ts";
 * console.log(reportCsp({ scripts: ["draw()"], styles: ["body{margin:0}"] }));
 * ```
 */
export function reportCsp(options: ReportCspOptions = {}): string {
  const scripts = [...new Set((options.scripts ?? []).map(cspHash))];
  const styles = options.inlineStyleElements
    ? ["'unsafe-inline'"]
    : [...new Set((options.styles ?? []).map(cspHash))];
  const styleSources = styles.length ? styles.join(" ") : "'none'";
  return [
    "default-src 'none'",
    `script-src ${
      scripts.length ? `${scripts.join(" ")} 'report-sample'` : "'none'"
    }`,
    `style-src-elem ${styleSources} 'report-sample'`,
    "style-src-attr 'unsafe-inline'",
    // For browsers without the -elem/-attr split.
    `style-src ${styleSources}${
      options.inlineStyleElements ? "" : " 'unsafe-inline'"
    }`,
    "img-src data:",
    "base-uri 'none'",
    "form-action 'none'",
  ].join("; ");
}
