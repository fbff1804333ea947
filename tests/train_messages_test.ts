/**
 * The command line's messages: a mistyped option gets the nearest known
 * one for every command (the shared parser), and the evaluation lines of
 * `tokenlab train` count epochs from 1, as its progress bar does.
 */

import {
  assert,
  assertEquals,
  assertStringIncludes,
  assertThrows,
} from "./_assert.ts";
import {
  editDistance,
  nearestOption,
  parseCommandArgs,
  UsageError,
} from "../lib/cli/_args.ts";
import { trainConfigFromArgs } from "../lib/cli/train.ts";
import { evalLine } from "../lib/cli/_eval_line.ts";
import { liveBundle } from "../lib/train/live_view.ts";
import type { EvalRecord } from "../lib/train/log.ts";

Deno.test("messages: a swapped pair of letters is one edit", () => {
  assertEquals(editDistance("modle", "model"), 1);
  assertEquals(editDistance("model", "model"), 0);
  assertEquals(editDistance("", "ab"), 2);
  assertEquals(editDistance("batch-sise", "batch-size"), 1);
  assertEquals(nearestOption("--modle", ["model-config", "model"]), "model");
  assertEquals(nearestOption("--xyz", ["model", "data"]), undefined);
});

Deno.test("messages: train suggests the nearest flag for --modle", () => {
  const e = assertThrows(
    () => trainConfigFromArgs(["--data", "synthetic", "--modle", "lvvit_s"]),
    UsageError,
  );
  assertStringIncludes(
    e.message,
    "unknown option --modle; did you mean --model?",
  );
  const e2 = assertThrows(
    () => trainConfigFromArgs(["--data", "synthetic", "--warmup-epoch", "1"]),
    UsageError,
  );
  assertStringIncludes(e2.message, "did you mean --warmup-epochs?");
});

Deno.test("messages: every command's parser suggests (eval's --chekpoint, a command's own options)", () => {
  const e = assertThrows(
    () =>
      parseCommandArgs("eval", "usage: tokenlab eval", ["--chekpoint", "x"], {
        checkpoint: { type: "string" },
        data: { type: "string" },
      }),
    UsageError,
  );
  assertStringIncludes(
    e.message,
    "tokenlab eval: unknown option --chekpoint; did you mean --checkpoint?",
  );
  const far = assertThrows(
    () =>
      parseCommandArgs("strip", "usage", ["--frobnicate"], {
        check: { type: "boolean" },
      }),
    UsageError,
  );
  assert(!far.message.includes("did you mean"), far.message);
});

Deno.test("messages: evaluation lines count epochs from 1, as the progress bar", () => {
  const r: EvalRecord = {
    kind: "eval",
    epoch: 0,
    step: 4,
    which: "model",
    top1: 50,
    top5: 100,
    loss: 0.5,
    images: 64,
  };
  const line = evalLine(r, 3);
  assert(line.startsWith("epoch 1/3 model top-1 50.00%"), line);
  assert(
    evalLine({ ...r, epoch: 2, which: "ema" }, 3).startsWith("epoch 3/3 EMA"),
  );
  const bar = String(
    liveBundle({
      title: "t",
      epoch: 0,
      epochs: 3,
      step: 4,
      steps: 12,
      loss: 1,
      lr: 1e-3,
      imagesPerSecond: null,
      etaSeconds: null,
      last: [],
      status: "running",
    })["text/plain"],
  );
  // The bar during the first epoch and the line after it name the same epoch.
  assertStringIncludes(bar, "epoch 1/3");
});
