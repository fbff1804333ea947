/**
 * Hostile notebooks (found by the fuzzing harness, tests/fuzz/): a notebook
 * nested thousands of levels deep is refused with a NotebookError when read,
 * rather than overflowing the stack when it is copied, stripped or written.
 */

import {
  assert,
  assertEquals,
  assertStringIncludes,
  assertThrows,
} from "./_assert.ts";
import {
  MAX_NOTEBOOK_DEPTH,
  NotebookError,
  parseNotebook,
  serializeNotebook,
  stripOutputs,
} from "../lib/report/notebook.ts";
import { injectParameters } from "../lib/report/params/mod.ts";

function notebookWithMetadata(metadata: string): string {
  return `{"cells": [], "metadata": ${metadata}, "nbformat": 4, "nbformat_minor": 5}`;
}

function nestedObjects(depth: number): string {
  return '{"a":'.repeat(depth) + "1" + "}".repeat(depth);
}

Deno.test("a notebook nested 100 000 levels deep is a NotebookError naming where, not a stack overflow", () => {
  for (
    const deep of [
      nestedObjects(100_000),
      "[".repeat(100_000) + "]".repeat(100_000),
    ]
  ) {
    const err = assertThrows(
      () => parseNotebook(notebookWithMetadata(deep), "deep.ipynb"),
      NotebookError,
    );
    assertStringIncludes(err.message, "deep.ipynb");
    assertStringIncludes(err.message, "metadata");
    assertStringIncludes(err.message, `more than ${MAX_NOTEBOOK_DEPTH} levels`);
  }
});

Deno.test("invalid JSON nested 100 000 levels deep is located without a stack overflow", () => {
  // unclosed: JSON.parse fails, and the position finder must not recurse that deep
  const text = notebookWithMetadata("[".repeat(100_000));
  const err = assertThrows(
    () => parseNotebook(text, "open.ipynb"),
    NotebookError,
  );
  assertStringIncludes(err.message, "open.ipynb is not valid JSON");
  assertStringIncludes(
    err.message,
    `at most ${MAX_NOTEBOOK_DEPTH} nested lists and objects`,
  );
});

Deno.test("a notebook nested just under the limit is read, copied, stripped and written", () => {
  // the notebook is level 0 and metadata the first of these objects, at
  // level 1: the innermost lies at level MAX_NOTEBOOK_DEPTH - 1, the deepest allowed
  const text = notebookWithMetadata(nestedObjects(MAX_NOTEBOOK_DEPTH - 1));
  const nb = parseNotebook(text, "ok.ipynb");
  let v: unknown = nb.metadata;
  let depth = 1;
  while (typeof v === "object" && v !== null && "a" in v) {
    v = (v as { a: unknown }).a;
    depth++;
  }
  assertEquals(depth, MAX_NOTEBOOK_DEPTH);
  assertEquals(v, 1);
  assertEquals(stripOutputs(nb).cells, []);
  assertEquals(injectParameters(nb, {}).cells, []);
  const again = parseNotebook(serializeNotebook(nb), "ok.ipynb");
  assertEquals(again.metadata, nb.metadata);
  // one level more is refused
  assert(
    assertThrows(
      () =>
        parseNotebook(
          notebookWithMetadata(nestedObjects(MAX_NOTEBOOK_DEPTH)),
          "x.ipynb",
        ),
      NotebookError,
    ).message.includes("metadata.a"),
  );
});
