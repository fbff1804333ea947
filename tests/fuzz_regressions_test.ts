/**
 * Regression tests for what the fuzzing harness (tests/fuzz/) found in the
 * readers it fuzzes: each input is the smallest form of a defect case, and
 * each test checks the reader's own error names the file.
 */

import { assertRejects, assertStringIncludes } from "./_assert.ts";
import { readWeights, WeightsError } from "../lib/models/weights.ts";

Deno.test("fuzz regression: a weights path that is a folder is a WeightsError naming it, not a bare IsADirectory", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/model.safetensors`;
    await Deno.mkdir(path);
    const e = await assertRejects(() => readWeights(path), WeightsError);
    assertStringIncludes(e.message, path);
    assertStringIncludes(e.message, "regular file");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
