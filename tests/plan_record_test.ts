/**
 * Plan records and plan mode: a record written by listing reads back the
 * same; hostile records (a link, edited config, unknown field, a kind with
 * symbols, a key that names a path, no record) are refused with
 * ExperimentError naming the field; plan mode lists an experiment without
 * computing it, and returns a stored one.
 */

import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { experiment, ExperimentError } from "../lib/report/cache.ts";
import { experimentKey } from "../lib/report/experiment_key.ts";
import {
  type PlanRecord,
  readPlanRecord,
  writePlanRecord,
} from "../lib/report/plan_record.ts";
import { PLAN_ENV, PlanPendingError } from "../lib/report/plan_mode.ts";
import { experimentKind } from "../lib/report/experiment_kinds.ts";
import { ROOT } from "./_helpers.ts";

async function record(): Promise<PlanRecord> {
  const config = { common: null, arm: { train: { data: "x" } }, seed: 1 };
  const { configKey } = await experimentKey("plan-test-arm", config);
  return {
    key: configKey,
    name: "plan-test-arm",
    kind: "train-arm",
    config,
    scale: "tiny",
    codeVersion: "0123456789abcdef",
  };
}

async function withDir(f: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({
    dir: `${ROOT}tests`,
    prefix: ".tmp-plan-",
  });
  try {
    await f(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("plan record: round trip", () =>
  withDir(async (dir) => {
    const r = await record();
    await writePlanRecord(dir, r);
    assertEquals(await readPlanRecord(dir, r.key), r);
  }));

Deno.test("plan record: hostile records are refused with the field", () =>
  withDir(async (dir) => {
    const r = await record();
    const path = `${dir}/.plan/${r.key}.json`;
    const cases: [string, (doc: Record<string, unknown>) => unknown, string][] =
      [
        [
          "edited config",
          (d) => ({ ...d, config: { ...r.config as object, seed: 2 } }),
          "config",
        ],
        ["unknown field", (d) => ({ ...d, run: "rm -rf /" }), '"run"'],
        ["kind with symbols", (d) => ({ ...d, kind: "$(rm -rf /)" }), "kind"],
        ["other key", (d) => ({ ...d, key: "ffffffffffffffff" }), "key"],
        ["bad format", (d) => ({ ...d, format: "tokenlab-plan/9" }), "format"],
        ["not an object", () => [1, 2], "(top level)"],
      ];
    for (const [what, edit, field] of cases) {
      await writePlanRecord(dir, r);
      const doc = JSON.parse(await Deno.readTextFile(path));
      await Deno.writeTextFile(path, JSON.stringify(edit(doc)));
      const e = await assertRejects(
        () => readPlanRecord(dir, r.key),
        ExperimentError,
      );
      assertEquals(e.field, field, what);
      assertEquals(e.file, path, what);
    }
    // A link is not read.
    await Deno.remove(path);
    await Deno.writeTextFile(`${dir}/elsewhere.json`, "{}");
    await Deno.symlink(`${dir}/elsewhere.json`, path);
    assertEquals(
      (await assertRejects(() => readPlanRecord(dir, r.key), ExperimentError))
        .field,
      "(file)",
    );
    // A key that is not 16 hex digits names no file at all.
    for (const key of ["../../etc/passwd", "0123456789ABCDEF", ""]) {
      await assertRejects(() => readPlanRecord(dir, key), ExperimentError);
    }
    // No record: list first.
    await assertRejects(
      () => readPlanRecord(dir, "0000000000000000"),
      ExperimentError,
      "experiments list",
    );
    // A kind name that is not registered is refused, never evaluated.
    assertEquals(
      (await assertRejects(
        () => Promise.resolve(experimentKind("constructor")),
        ExperimentError,
      )).name,
      "ExperimentError",
    );
  }));

Deno.test("plan mode: lists without computing; a stored result comes back", () =>
  withDir(async (dir) => {
    const options = { cacheDir: `${dir}/cache`, frozenDir: `${dir}/frozen` };
    const stored = await experiment(
      "plan-done",
      { n: 1 },
      () => ({ v: 1 }),
      options,
    );
    const plan = `${dir}/plan.jsonl`;
    Deno.env.set(PLAN_ENV, plan);
    let ran = false;
    try {
      await assertRejects(
        () =>
          experiment("plan-new", { n: 2 }, () => {
            ran = true;
            return 1;
          }, { ...options, kind: "train-arm" }),
        PlanPendingError,
      );
      const back = await experiment("plan-done", { n: 1 }, () => {
        ran = true;
        return { v: 2 };
      }, options);
      assertEquals(back.value, stored.value);
    } finally {
      Deno.env.delete(PLAN_ENV);
    }
    assert(!ran, "plan mode computed");
    const lines = (await Deno.readTextFile(plan)).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    assertEquals(
      lines.map((l) => [l.name, l.kind, l.cached]),
      [["plan-new", "train-arm", false], ["plan-done", null, true]],
    );
    assertEquals(
      lines[0].key,
      (await experimentKey("plan-new", { n: 2 })).configKey,
    );
  }));
