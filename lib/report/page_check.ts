/**
 * The verdict of the browser check of a report page: why a checked page
 * fails (foreign script, no policy, figures not drawn, errors, network), as
 * one message.
 *
 * @module
 */

import type { PageCheck } from "./browser.ts";

/**
 * Why a checked report page fails, as one message, or "" when it passed.
 * Script that is not the report's own (a dialog, a policy violation,
 * console output) is named first: it means an output escaped the sanitiser.
 *
 * @example
 * ```ts
 * import { pageCheckProblems } from "tokenlab/report/page_check.ts";
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
