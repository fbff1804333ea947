/**
 * The training state a resumed run reads: a real tiny run's checkpoint,
 * then every way of damaging or editing its `state.json` (each field
 * missing, null or of the wrong type; out-of-range and inconsistent values;
 * file names that lead elsewhere; an edit under the digest; cut short; not
 * JSON) and its `run.json` is refused with a {@linkcode RunFolderError}
 * naming the file and the field, before any file outside the run folder is
 * opened (checked in a child process allowed to read the run folder only).
 * A clean checkpoint, and one written before `state.sha256` existed, still
 * resume to the uninterrupted run's weights, byte for byte (cpu).
 */

import {
  assert,
  assertEquals,
  assertRejects,
  assertStringIncludes,
} from "./_assert.ts";
import { rejection, ROOT } from "./_helpers.ts";
import { initBackend } from "../lib/backend.ts";
import type { TrainConfig } from "../lib/train/config.ts";
import {
  type CheckpointParts,
  latestCheckpoint,
  readCheckpoint,
  restoreCheckpoint,
  RunFolderError,
} from "../lib/train/checkpoint.ts";
import { train } from "../lib/train/engine.ts";

const TMP = `${ROOT}tests/.tmp-train-state`;

/** 2 steps per epoch, 1 epoch + 1 cooldown epoch, EMA, a checkpoint every step. */
const RUN: Partial<TrainConfig> & { data: string } = {
  model: "lvvit_xs32",
  modelOverrides: { embedDim: 32, depth: 2, numHeads: 2, stemChannels: 8 },
  imgSize: 16,
  data: "synthetic:size=16,count=32,classes=4",
  valLimit: 16,
  batchSize: 16,
  epochs: 1,
  warmupEpochs: 0,
  cooldownEpochs: 1,
  modelEma: true,
  checkpointEvery: 1,
  logEvery: 1,
  backend: "cpu",
};

/** The newest checkpoint the run writes (step 4 = 2 epochs x 2 steps) and the one before. */
const LAST = "step-00000004", BEFORE = "step-00000003";

let base: string | null = null;

/** The uninterrupted run, made once (about 3 s on the cpu backend). */
async function baseRun(): Promise<string> {
  if (base !== null) return base;
  await initBackend({ backend: "cpu" });
  const dir = `${TMP}/base`;
  await Deno.remove(TMP, { recursive: true }).catch(() => {});
  await Deno.mkdir(TMP, { recursive: true });
  (await train({ ...RUN, output: dir }, { live: false })).dispose();
  base = dir;
  return dir;
}

async function copyDir(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const e of Deno.readDir(from)) {
    if (e.isDirectory) await copyDir(`${from}/${e.name}`, `${to}/${e.name}`);
    else await Deno.copyFile(`${from}/${e.name}`, `${to}/${e.name}`);
  }
}

/** A copy of the base run folder under `name`. */
async function runCopy(name: string): Promise<string> {
  const from = await baseRun();
  const to = `${TMP}/${name}`;
  await Deno.remove(to, { recursive: true }).catch(() => {});
  await copyDir(from, to);
  return to;
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const d = await crypto.subtle.digest(
    "SHA-256",
    bytes as Uint8Array<ArrayBuffer>,
  );
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0"))
    .join("");
}

/** Writes state.json as these bytes, and a state.sha256 that matches them (so the field checks, not the digest, must catch an edit). */
async function writeState(ckpt: string, bytes: Uint8Array): Promise<void> {
  await Deno.writeFile(`${ckpt}/state.json`, bytes);
  await Deno.writeTextFile(
    `${ckpt}/state.sha256`,
    `${await sha256Hex(bytes)}  state.json\n`,
  );
}

type Json = Record<string, unknown>;

const text = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

/** A value of another JSON type than `v`. */
function wrongType(v: unknown): unknown {
  if (typeof v === "number") return String(v);
  if (typeof v === "string") return 7;
  if (Array.isArray(v)) return "x";
  return [1];
}

/**
 * Asserts that the run folder of `ckpt` (its newest checkpoint), read as a
 * resume reads it, is refused at state.json's `field`.
 */
async function refusedAt(
  ckpt: string,
  field: string,
  what: string,
): Promise<RunFolderError> {
  const e = await rejection(
    () => latestCheckpoint(ckpt.slice(0, ckpt.lastIndexOf("/checkpoints/"))),
    RunFolderError,
    what,
  );
  assertEquals(e.file, `${ckpt}/state.json`, `${what}: ${e.message}`);
  assertEquals(e.field, field, `${what}: ${e.message}`);
  assertStringIncludes(e.message, "state.json");
  assertStringIncludes(e.message, `field ${field}:`);
  assertStringIncludes(e.message, "expected");
  assertStringIncludes(e.message, "delete this checkpoint folder");
  return e;
}

Deno.test("state.json: every top-level field missing, null or of the wrong type is refused, naming the field", async () => {
  const dir = await runCopy("fields");
  const ckpt = `${dir}/checkpoints/${LAST}`;
  const good = JSON.parse(
    await Deno.readTextFile(`${ckpt}/state.json`),
  ) as Json;
  // The clean checkpoint loads.
  const ok = (await latestCheckpoint(dir))!;
  assertEquals(ok.name, LAST);
  assertEquals([ok.state.step, ok.state.epoch, ok.state.stepInEpoch], [
    4,
    2,
    0,
  ]);
  assertEquals(ok.state.version, 2);
  const fields = Object.keys(good);
  assertEquals(fields.length, 13, `fields: ${fields}`);
  for (const k of fields) {
    for (
      const [how, edit] of [
        ["deleted", (s: Json) => delete s[k]],
        ["null", (s: Json) => s[k] = null],
        ["of the wrong type", (s: Json) => s[k] = wrongType(s[k])],
      ] as const
    ) {
      const s = structuredClone(good);
      edit(s);
      await writeState(ckpt, text(s));
      const e = await refusedAt(ckpt, k, `${k} ${how}`);
      if (how === "deleted") {
        assertStringIncludes(e.message, "nothing (the field is missing)");
      }
      if (how === "null") assertStringIncludes(e.message, "found null");
    }
  }
  // An unknown field is refused too.
  await writeState(ckpt, text({ ...good, extra: 1 }));
  await refusedAt(ckpt, "extra", "an unknown field");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("state.json: out-of-range and inconsistent values are refused, naming the field", async () => {
  const dir = await runCopy("values");
  const ckpt = `${dir}/checkpoints/${LAST}`;
  const good = JSON.parse(
    await Deno.readTextFile(`${ckpt}/state.json`),
  ) as Json;
  const cases: [string, (s: Json) => void, string][] = [
    // 2 epochs in all (1 + 1 cooldown): epoch 2 with step 0 is the end.
    ["epoch", (s) => s.epoch = 2 ** 32, "an integer in [0, 2]"],
    ["epoch", (s) => s.epoch = -1, "an integer in [0, 2]"],
    ["epoch", (s) => s.epoch = 1.5, "an integer in [0, 2]"],
    // 2 steps per epoch; at the last epoch's end nothing may follow.
    ["stepInEpoch", (s) => s.stepInEpoch = 99, "an integer in [0, 0]"],
    ["stepInEpoch", (s) => {
      s.epoch = 1;
      s.stepInEpoch = 3;
    }, "an integer in [0, 2]"],
    // step = epoch * stepsPerEpoch + stepInEpoch = 4.
    ["step", (s) => s.step = 5, "4 (epoch * stepsPerEpoch + stepInEpoch)"],
    // 32 images, batch 16: at most 2 steps per epoch... of any size 1 and up.
    ["stepsPerEpoch", (s) => s.stepsPerEpoch = 0, "an integer in [1,"],
    ["elapsed", (s) => s.elapsed = -3, "a finite number >= 0"],
    ["records", (s) => s.records = "x", "an array of log records"],
    ["records", (s) => s.records = [], "at least the checkpoint's own record"],
    ["records[0].loss", (s) => {
      (s.records as Json[])[0].loss = null;
    }, "a finite number"],
    ["records[0].kind", (s) => {
      (s.records as Json[])[0].kind = "note";
    }, '"step", "eval" or "checkpoint"'],
    ["records[0].stepInEpoch", (s) => {
      (s.records as Json[])[0].stepInEpoch = 99;
    }, "an integer in [0, 1]"],
    ["records[0].extra", (s) => {
      (s.records as Json[])[0].extra = 1;
    }, "no such field"],
    ["records[3].top1", (s) => {
      (s.records as Json[])[3].top1 = 101;
    }, "a finite number in [0, 100]"],
    ["records[0]", (s) => {
      (s.records as Json[])[0] = "step" as unknown as Json;
    }, "a log record"],
    ["records[10]", (s) => {
      (s.records as Json[]).pop();
    }, "the checkpoint's own record"],
    ["records[0].lr", (s) => {
      (s.records as Json[])[0].lr = 0.5;
    }, "the schedule's lr of that step"],
    ["optimizer.step", (s) => {
      (s.optimizer as Json).step = 3;
    }, "4 (one optimizer step per step)"],
    ["optimizer.weightDecay", (s) => {
      (s.optimizer as Json).weightDecay = 0.5;
    }, "0.05 (the config's weightDecay)"],
    ["optimizer.betas", (s) => {
      (s.optimizer as Json).betas = [0.9];
    }, "[0.9,0.999]"],
    ["optimizer.lr", (s) => {
      (s.optimizer as Json).lr = 1;
    }, "the schedule's lr of the last step"],
    ["optimizer.extra", (s) => {
      (s.optimizer as Json).extra = 1;
    }, "no such field"],
    ["rng.seed", (s) => {
      (s.rng as Json).seed = 43;
    }, "42 (the config's seed)"],
    ["rng.scheme", (s) => {
      delete (s.rng as Json).scheme;
    }, "a value"],
    [
      "config.seed",
      (s) => {
        (s.config as Json).seed = 43;
        (s.rng as Json).seed = 43;
      },
      "the run's own config (differences, this file's value first: seed: 43 -> 42)",
    ],
    ["config", (s) => {
      (s.config as Json).lr = -1;
    }, "lr must be > 0"],
    ["config.grid", (s) => {
      (s.config as Json).grid = 5;
    }, "what the rest of the config resolves to"],
    ["config", (s) => {
      (s.config as Json).nonsense = 1;
    }, 'unknown config field "nonsense"'],
    ['files["model.safetensors"].sha256', (s) => {
      (s.files as Record<string, Json>)["model.safetensors"].sha256 = "../x";
    }, "64 lowercase hex digits"],
    ['files["model.safetensors"].bytes', (s) => {
      (s.files as Record<string, Json>)["model.safetensors"].bytes = -1;
    }, "an integer in [0,"],
    // The run keeps an EMA: its file must be listed.
    ['files["ema.safetensors"]', (s) => {
      delete (s.files as Json)["ema.safetensors"];
    }, "a value"],
    ["format", (s) => s.format = "other", '"tokenlab-train-state"'],
    ["version", (s) => s.version = 3, "1 or 2"],
    ["tokenlab", (s) => s.tokenlab = "x".repeat(101), "at most 100"],
  ];
  for (const [field, edit, expected] of cases) {
    const s = structuredClone(good);
    edit(s);
    await writeState(ckpt, text(s));
    const e = await refusedAt(ckpt, field, `${field}: ${expected}`);
    assertStringIncludes(e.message, expected);
  }
  // A state written mid-epoch (step 3: epoch 1, step 1 of 2) names its folder.
  const mid = `${dir}/checkpoints/${BEFORE}`;
  const s3 = JSON.parse(await Deno.readTextFile(`${mid}/state.json`)) as Json;
  assertEquals([s3.step, s3.epoch, s3.stepInEpoch], [3, 1, 1]);
  await writeState(ckpt, text(s3));
  const e = await refusedAt(ckpt, "step", "a state in another step's folder");
  assertStringIncludes(e.message, `the step its folder ${LAST} names`);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("state.json: an edit under the digest, a cut-short file and non-JSON are refused", async () => {
  const dir = await runCopy("digest");
  const ckpt = `${dir}/checkpoints/${LAST}`;
  const bytes = await Deno.readFile(`${ckpt}/state.json`);
  const good = JSON.parse(new TextDecoder().decode(bytes)) as Json;
  const sum = await Deno.readTextFile(`${ckpt}/state.sha256`);
  assertEquals(sum, `${await sha256Hex(bytes)}  state.json\n`);

  // A valid value changed, state.sha256 left as it was.
  await Deno.writeFile(`${ckpt}/state.json`, text({ ...good, elapsed: 1e6 }));
  let e = await assertRejects(() => readCheckpoint(ckpt), RunFolderError);
  assertStringIncludes(e.message, "state.json does not match its digest");
  assertStringIncludes(e.message, "state.sha256");
  assertStringIncludes(e.message, `delete this checkpoint folder (${ckpt})`);
  assertEquals(e.file, `${ckpt}/state.json`);

  // Cut short: the digest no longer matches.
  await Deno.writeFile(`${ckpt}/state.json`, bytes.slice(0, 100));
  e = await assertRejects(() => readCheckpoint(ckpt), RunFolderError);
  assertStringIncludes(e.message, "does not match its digest");

  // Cut short or not JSON with a matching digest (or none): not JSON.
  for (const bad of [bytes.slice(0, 100), new TextEncoder().encode("hello")]) {
    await writeState(ckpt, bad);
    e = await assertRejects(() => readCheckpoint(ckpt), RunFolderError);
    assertStringIncludes(e.message, "state.json is not readable JSON");
    assertEquals(e.file, `${ckpt}/state.json`);
  }
  // A damaged digest file.
  await Deno.writeFile(`${ckpt}/state.json`, bytes);
  await Deno.writeTextFile(`${ckpt}/state.sha256`, "zz\n");
  e = await assertRejects(() => readCheckpoint(ckpt), RunFolderError);
  assertStringIncludes(e.message, "state.sha256 is not a digest line");

  // Version 2 without its digest file: refused (the digest cannot be dropped).
  await Deno.remove(`${ckpt}/state.sha256`);
  e = await refusedAt(ckpt, "version", "version 2 without state.sha256");
  assertStringIncludes(e.message, "state.sha256 is missing");

  // A tensor file changed, or replaced by a link: refused, naming it.
  await Deno.writeFile(`${ckpt}/state.json`, bytes);
  await Deno.writeTextFile(`${ckpt}/state.sha256`, sum);
  await readCheckpoint(ckpt);
  const model = await Deno.readFile(`${ckpt}/model.safetensors`);
  model[model.length - 1] ^= 1;
  await Deno.writeFile(`${ckpt}/model.safetensors`, model);
  e = await assertRejects(() => readCheckpoint(ckpt), RunFolderError);
  assertStringIncludes(
    e.message,
    "model.safetensors does not match its digest",
  );
  model[model.length - 1] ^= 1;
  await Deno.writeFile(`${dir}/outside.safetensors`, model);
  await Deno.remove(`${ckpt}/model.safetensors`);
  await Deno.symlink(`${dir}/outside.safetensors`, `${ckpt}/model.safetensors`);
  e = await assertRejects(() => readCheckpoint(ckpt), RunFolderError);
  assertStringIncludes(e.message, "is a link");
  assertEquals(e.file, `${ckpt}/model.safetensors`);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a tensor file swapped after the checkpoint was checked is refused when loaded; state.json that is not a plain file is refused", async () => {
  const dir = await runCopy("swap");
  const ckpt = `${dir}/checkpoints/${LAST}`;
  const checked = await readCheckpoint(ckpt);
  // The step before's weights: the same size, another digest.
  await Deno.copyFile(
    `${dir}/checkpoints/${BEFORE}/model.safetensors`,
    `${ckpt}/model.safetensors`,
  );
  // The refusal comes before any part is touched, so none is needed.
  const parts = {
    model: null,
    ema: null,
    optimizer: null,
  } as unknown as CheckpointParts;
  const e = await assertRejects(
    () => restoreCheckpoint(checked, parts),
    RunFolderError,
  );
  assertStringIncludes(
    e.message,
    "model.safetensors does not match its digest in state.json",
  );
  assertStringIncludes(e.message, "delete this checkpoint folder");
  assertEquals(e.file, `${ckpt}/model.safetensors`);

  // state.json as a folder: refused by name, not an IsADirectory error.
  await Deno.remove(`${ckpt}/state.json`);
  await Deno.mkdir(`${ckpt}/state.json`);
  const f = await assertRejects(() => readCheckpoint(ckpt), RunFolderError);
  assertStringIncludes(f.message, `${ckpt}/state.json`);
  assertStringIncludes(f.message, "expected a regular file");
  assertStringIncludes(f.message, "found a folder");
  await Deno.remove(dir, { recursive: true });
});

/** The child's program: loads each run folder given, prints what happened, and shows that a read outside is denied. */
const CHILD = `
import { latestCheckpoint } from "${
  new URL("../lib/train/checkpoint.ts", import.meta.url).href
}";
const [decoy, ...dirs] = Deno.args;
const out = [];
for (const dir of dirs) {
  try {
    await latestCheckpoint(dir);
    out.push({ dir, loaded: true });
  } catch (e) {
    out.push({ dir, name: e.name, field: e.field, message: e.message });
  }
}
let decoyDenied = false;
try { await Deno.readFile(decoy); } catch (e) { decoyDenied = e instanceof Deno.errors.NotCapable; }
console.log(JSON.stringify({ out, decoyDenied }));
`;

Deno.test({
  name:
    "state.json: file names that lead out of the checkpoint are refused before anything outside the run folder is opened",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await baseRun();
    // A decoy outside the run folders, with what a traversal name would need.
    const decoy = `${TMP}/decoy.safetensors`;
    await Deno.copyFile(
      `${base}/checkpoints/${LAST}/model.safetensors`,
      decoy,
    );
    const names = [
      "../x",
      "../../../decoy.safetensors",
      "/etc/passwd",
      decoy,
      "a/b",
      "",
      "..\\decoy.safetensors",
      "model.safetensors\0",
      "..",
    ];
    const dirs: string[] = [];
    for (const [i, name] of names.entries()) {
      const dir = await runCopy(`escape-${i}`);
      const ckpt = `${dir}/checkpoints/${LAST}`;
      const s = JSON.parse(await Deno.readTextFile(`${ckpt}/state.json`));
      // Listed with the decoy's true size and digest: only the name is wrong.
      s.files[name] = s.files["model.safetensors"];
      await writeState(ckpt, text(s));
      dirs.push(dir);
    }
    const child = `${TMP}/child.ts`;
    await Deno.writeTextFile(child, CHILD);
    // The child may read the run folders (and the source) and nothing else.
    const r = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-check",
        // tf.ts looks for its wasm files at import time.
        `--allow-read=${[...dirs, `${ROOT}node_modules`].join(",")}`,
        child,
        decoy,
        ...dirs,
      ],
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    // Left in tests/, the script would be type-checked with the project.
    await Deno.remove(child);
    const stderr = new TextDecoder().decode(r.stderr);
    assertEquals(r.code, 0, stderr);
    const got = JSON.parse(new TextDecoder().decode(r.stdout)) as {
      out: { dir: string; name?: string; field?: string; message?: string }[];
      decoyDenied: boolean;
    };
    // The sandbox is real: the decoy cannot be read from the child.
    assert(got.decoyDenied, "the child could read outside the run folders");
    assertEquals(got.out.length, names.length);
    for (const [i, name] of names.entries()) {
      const o = got.out[i];
      const field = `files[${JSON.stringify(name)}]`;
      assertEquals(o.name, "RunFolderError", `${field}: ${JSON.stringify(o)}`);
      assertEquals(o.field, field);
      assertStringIncludes(o.message!, "state.json");
      assertStringIncludes(o.message!, "one of the file names tokenlab writes");
    }
    for (const dir of dirs) await Deno.remove(dir, { recursive: true });
  },
});

Deno.test("run.json: damaged or edited fields are refused, naming the file and the field, also by --resume", async () => {
  const dir = await runCopy("runjson");
  const path = `${dir}/run.json`;
  const good = JSON.parse(await Deno.readTextFile(path)) as Json;
  const cases: [string, (r: Json) => void][] = [
    ["version", (r) => r.version = 2],
    ["config", (r) => r.config = null],
    ["config", (r) => (r.config as Json).batchSize = "16"],
    ["config.grid", (r) => (r.config as Json).grid = 3],
    ["created", (r) => r.created = "yesterday"],
    ["created", (r) => delete r.created],
    ["extra", (r) => r.extra = true],
  ];
  for (const [field, edit] of cases) {
    const r = structuredClone(good);
    edit(r);
    await Deno.writeTextFile(path, JSON.stringify(r));
    const e = await rejection(
      () => latestCheckpoint(dir),
      RunFolderError,
      field,
    );
    assertEquals(e.file, path);
    assertEquals(e.field, field, e.message);
    assertStringIncludes(e.message, `run.json: field ${field}: expected`);
    // The library speaks of the config field; the CLI names --overwrite.
    assertStringIncludes(e.message, "`overwrite`");
    assert(e.fields.includes("overwrite"), e.message);
  }
  await Deno.writeTextFile(path, "{");
  let e = await assertRejects(() => latestCheckpoint(dir), RunFolderError);
  assertStringIncludes(e.message, "run.json: is not readable JSON");
  // The resume path reads it the same way, before any model is built.
  const r = structuredClone(good);
  (r.config as Json).seed = -1;
  await Deno.writeTextFile(path, JSON.stringify(r));
  e = await assertRejects(
    () => train({ ...RUN, output: dir, resume: true }, { live: false }),
    RunFolderError,
  );
  assertEquals(e.field, "config");
  assertStringIncludes(e.message, "seed must be an integer >= 0");
  // --overwrite replaces a damaged run.json instead of reading it.
  await Deno.writeTextFile(path, "{");
  const again = await train(
    { ...RUN, output: dir, overwrite: true, epochs: 1, cooldownEpochs: 0 },
    { live: false },
  );
  again.dispose();
  assertEquals(
    JSON.parse(await Deno.readTextFile(path)).format,
    "tokenlab-run",
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a clean checkpoint, and one written before state.sha256 (version 1), resume to the uninterrupted run's weights (cpu)", async () => {
  const whole = await baseRun();
  for (const legacy of [false, true]) {
    const dir = await runCopy(legacy ? "resume-legacy" : "resume");
    // Back to the checkpoint of step 3 (mid second epoch).
    await Deno.remove(`${dir}/checkpoints/${LAST}`, { recursive: true });
    for (const f of ["model.safetensors", "ema.safetensors", "result.json"]) {
      await Deno.remove(`${dir}/${f}`);
    }
    const ckpt = `${dir}/checkpoints/${BEFORE}`;
    if (legacy) {
      const s = JSON.parse(await Deno.readTextFile(`${ckpt}/state.json`));
      s.version = 1;
      await Deno.writeTextFile(
        `${ckpt}/state.json`,
        JSON.stringify(s, null, 1) + "\n",
      );
      await Deno.remove(`${ckpt}/state.sha256`);
      assertEquals((await readCheckpoint(ckpt)).state.version, 1);
    }
    const run = await train({ ...RUN, output: dir, resume: true }, {
      live: false,
    });
    assertEquals(run.status, "done");
    run.dispose();
    for (const f of ["model.safetensors", "ema.safetensors"]) {
      const a = await Deno.readFile(`${whole}/${f}`);
      const b = await Deno.readFile(`${dir}/${f}`);
      assert(
        a.length === b.length && a.every((x, i) => x === b[i]),
        `${f} differs after resuming from ${
          legacy ? "a version 1" : "a"
        } checkpoint`,
      );
    }
    // What the resumed run writes is version 2 with its digest.
    const last = await readCheckpoint(`${dir}/checkpoints/${LAST}`);
    assertEquals(last.state.version, 2);
    await Deno.remove(dir, { recursive: true });
  }
});
