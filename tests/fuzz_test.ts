/**
 * The fuzzing harness (tests/fuzz/, `deno task fuzz`) on a few hundred cases
 * per reader: every reader of untrusted files must answer every mutated
 * input with success or its own error, within the time and memory bounds.
 * The full run (10 000 cases per reader) is `deno task fuzz`;
 * TOKENLAB_FUZZ_CASES sets the cases here (default 400 for every reader:
 * 10 to 25 s for the eleven readers on two cores).
 */

import { assert, assertEquals } from "./_assert.ts";
import { formatResult, runFuzz } from "./fuzz/run.ts";
import { READERS } from "./fuzz/readers/mod.ts";

const CASES = Number(Deno.env.get("TOKENLAB_FUZZ_CASES") ?? 400);

Deno.test(`fuzzing: ${CASES} mutated inputs per reader give no defect, hang or memory blow-up`, async () => {
  const lines: string[] = [];
  const summary = await runFuzz({
    cases: CASES,
    seed: 1,
    jobs: 2,
    timeMs: 10_000,
    log: (l) => lines.push(l),
  });
  assertEquals(
    summary.readers.map((r) => r.reader),
    READERS.map((r) => r.name),
  );
  for (const r of summary.readers) {
    // every case is accounted for exactly once
    assertEquals(r.success + r.own + r.defects + r.hangs + r.memory, r.cases);
    assertEquals(r.cases, CASES, `${r.reader} ran ${r.cases} cases`);
  }
  const bad = summary.readers.filter((r) => r.defects + r.hangs + r.memory > 0);
  assert(
    bad.length === 0,
    `defects found (replay each with its command, fix the reader, add a regression test):\n${
      bad.flatMap(formatResult).join("\n")
    }`,
  );
});

Deno.test("fuzzing: a case is the same input whenever it is made (seed, reader, index)", async () => {
  const { Rng } = await import("../lib/random.ts");
  const { mutateBytes, mutateJson, mutateText } = await import(
    "./fuzz/mutate.ts"
  );
  const bytes = new Uint8Array(64).map((_, i) => i);
  const json = '{"a": [1, 2, {"b": "c"}], "d": null}';
  const make = (i: number) => {
    const rng = Rng.derive(1, 3, i);
    return [
      mutateBytes(rng, bytes).value,
      mutateJson(rng, json).value,
      mutateText(rng, "const x = 1;").value,
    ];
  };
  for (let i = 0; i < 20; i++) assertEquals(make(i), make(i));
  // and different cases differ
  const all = new Set(
    Array.from({ length: 20 }, (_, i) => JSON.stringify(make(i).slice(1))),
  );
  assert(all.size > 15, `only ${all.size} distinct cases of 20`);
});

Deno.test("fuzzing: the harness tells success, own error, defect, hang and memory apart, and goes on after each", async () => {
  const { Rng } = await import("../lib/random.ts");
  const { SELF_TEST } = await import("./fuzz/readers/mod.ts");
  const n = 12;
  // the kinds the self-test reader draws, computed here independently
  const kinds = Array.from(
    { length: n },
    (_, i) => Rng.derive(5, SELF_TEST.id, i).int(5),
  );
  const count = (k: number) => kinds.filter((x) => x === k).length;
  for (let k = 0; k < 5; k++) assert(count(k) > 0, `kind ${k} is never drawn`);
  const keep = await Deno.makeTempDir();
  try {
    const s = await runFuzz({
      cases: n,
      seed: 5,
      readers: ["self-test"],
      // room for filling 300 MiB on a loaded machine before the time bound
      timeMs: 2_500,
      memoryMb: 300,
      keep,
      log: () => {},
    });
    const [r] = s.readers;
    assertEquals(
      [r.cases, r.success, r.own, r.defects, r.hangs],
      [n, count(0), count(1), count(2), count(3)],
    );
    if (s.memoryChecked) assertEquals(r.memory, count(4));
    assert(s.failed);
    const defect = r.classes.find((c) => c.kind === "defect");
    assertEquals(defect?.name, "TypeError");
    // the first case of each bad class is kept for replaying
    for (const c of r.classes) {
      assert(c.saved !== null);
      const text = await Deno.readTextFile(`${c.saved}/CASE.txt`);
      assert(text.includes(`case ${c.firstCase}`), text);
      assertEquals(
        (await Deno.readTextFile(`${c.saved}/kind`)).trim(),
        String(kinds[c.firstCase]),
      );
    }
  } finally {
    await Deno.remove(keep, { recursive: true });
  }
});

Deno.test("fuzzing: the re-sealed digest of a stored result is the one experiment() writes, and a warning's field is found", async () => {
  const { experiment } = await import("../lib/report/cache.ts");
  const { sealOf, warnedField } = await import("./fuzz/readers/_damaged.ts");
  const dir = await Deno.makeTempDir();
  try {
    await experiment("seal-check", { a: [1, 2] }, () => ({ top1: 3.5 }), {
      cacheDir: dir,
      refresh: false,
      freeze: false,
      onWarning: () => {},
    });
    const [name] = [...Deno.readDirSync(`${dir}/seal-check`)].map((e) =>
      e.name
    );
    const doc = JSON.parse(
      await Deno.readTextFile(`${dir}/seal-check/${name}`),
    );
    // without re-sealing, the fuzzer's mutations would all stop at the digest
    const fields = ["config", "format", "provenance", "value"];
    assertEquals(await sealOf(doc, fields), doc.sha256);
    assertEquals(
      await sealOf({ ...doc, value: 1 }, fields) === doc.sha256,
      false,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  assertEquals(
    warnedField("entry x: field provenance.seconds: expected a number"),
    "provenance.seconds",
  );
  assertEquals(
    warnedField("entry x: field value.a[0][0][0]: expected JSON"),
    "value.a...",
  );
  assertEquals(warnedField("no field named here"), "(unnamed)");
});
