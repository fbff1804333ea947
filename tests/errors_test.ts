/**
 * One error base: every error class the kit exports extends
 * `TokenlabError`, names itself after its class and keeps a cause; the
 * internal signals (`FieldProblem`) stay outside it.
 */

import { assert, assertEquals } from "./_assert.ts";
import * as kit from "tokenlab";
import { TokenlabError } from "tokenlab";
import * as reportRun from "../lib/report/run.ts";
import * as browser from "../lib/report/browser.ts";
import * as notebook from "../lib/report/notebook.ts";
import * as params from "../lib/report/params/mod.ts";
import * as setup from "../lib/cli/setup.ts";
import { FieldProblem } from "../lib/io/json_fields.ts";

type ErrorClass = new (...args: never[]) => Error;

function errorClasses(
  modules: Record<string, unknown>[],
): Map<string, ErrorClass> {
  const found = new Map<string, ErrorClass>();
  for (const m of modules) {
    for (const [name, value] of Object.entries(m)) {
      if (
        typeof value === "function" && value.prototype instanceof Error
      ) {
        found.set(name, value as ErrorClass);
      }
    }
  }
  return found;
}

Deno.test("errors: every exported kit error extends TokenlabError and names itself", () => {
  const classes = errorClasses([
    kit,
    reportRun,
    browser,
    notebook,
    params,
    setup,
  ]);
  // Far fewer would mean the modules above stopped exporting their errors.
  assert(classes.size >= 25, `found only ${classes.size} error classes`);
  for (const [name, cls] of classes) {
    if (cls === TokenlabError) continue;
    assert(
      cls.prototype instanceof TokenlabError,
      `${name} does not extend TokenlabError`,
    );
    let e: Error;
    try {
      e = new (cls as unknown as new (m: string) => Error)("m");
    } catch {
      continue; // a constructor that needs more than a message
    }
    assertEquals(e.name, name, `the name of a new ${name}`);
    assert(e instanceof TokenlabError && e instanceof Error);
  }
});

Deno.test("errors: TokenlabError keeps the cause and the subclass name", () => {
  class WidgetError extends TokenlabError {}
  const cause = new Error("disk full");
  const e = new WidgetError("expected 3 widgets, found 2", { cause });
  assertEquals(e.name, "WidgetError");
  assertEquals(e.message, "expected 3 widgets, found 2");
  assert(e.cause === cause);
  assertEquals(new TokenlabError("x").name, "TokenlabError");
  assertEquals(new kit.DatasetError("x").name, "DatasetError");
  assert(new kit.DatasetError("x") instanceof TokenlabError);
});

Deno.test("errors: FieldProblem is an internal signal, not a kit error", () => {
  const p = new FieldProblem("records[3].loss", "a number", "null");
  assert(!(p instanceof TokenlabError));
  assertEquals(p.name, "FieldProblem");
});
