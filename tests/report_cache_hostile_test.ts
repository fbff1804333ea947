/**
 * Stored results read as untrusted files. Every way of damaging or editing
 * a results-cache entry (not JSON, cut short, not UTF-8, a link or a
 * folder, too large, too deep, each field missing, null, of the wrong type
 * or out of range, unknown fields, an edit under the digest) is ignored
 * with one warning naming the file and the field, and the experiment is
 * computed again; the same damage to a frozen entry is an ExperimentError
 * naming the file and the field, and nothing is computed. A clean entry
 * still hits, version-1 files (every committed frozen result) are still
 * read, and an edited one is refused. An annotator's damaged result.json
 * or changed weights retrain it with a warning, and `tokenlab eval` refuses
 * a checkpoint folder whose weights were changed.
 */

import {
  assert,
  assertEquals,
  assertIncludesAll,
  assertRejects,
  assertStringIncludes,
} from "./_assert.ts";
import {
  rejection,
  ROOT,
  runCli,
  sealDigest,
  sealed,
  sha256Hex,
  tinyAnnotator,
} from "./_helpers.ts";
import {
  codeVersion,
  experiment,
  ExperimentError,
  type ExperimentOptions,
  MAX_JSON_DEPTH,
  MAX_STORED_RESULT_BYTES,
} from "../lib/report/cache.ts";
import { annotatorStore } from "../lib/report/train_arm.ts";
import {
  AblationError,
  type ArmResult,
  runAblation,
} from "../lib/report/ablation.ts";
import { initBackend } from "../lib/backend.ts";
import type { TrainConfig } from "../lib/train/config.ts";
import { evaluationTargets } from "../lib/train/evaluation_targets.ts";
import { RunFolderError } from "../lib/train/run_folder_error.ts";
import { train } from "../lib/train/engine.ts";

const TMP = `${ROOT}tests/.tmp-cache-hostile`;

/** Runs `fn` in a fresh folder `name` under the test's folder, removed after. */
async function inFresh(
  name: string,
  fn: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = `${TMP}/${name}`;
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  await Deno.mkdir(dir, { recursive: true });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

type Json = Record<string, unknown>;

// ---------------------------------------------------------------------------
// The results cache and the frozen store.

const NAME = "toy";
const CONFIG = { seed: 3, model: { depth: 2, embedDim: 64 } };
const VALUE = { top1: 51.25, curve: [0, 0.5, 1] };
const PROVENANCE_FIELDS = [
  "experiment",
  "configKey",
  "codeVersion",
  "commit",
  "computedAt",
  "machine",
  "backend",
  "adapter",
  "deno",
  "tfjs",
  "tokenlab",
  "seconds",
  "scale",
];

/** What each provenance field must be, in the words of the messages. */
const EXPECTED: Record<string, string> = {
  experiment: '"toy" (the experiment the file is stored under)',
  codeVersion: "16 lowercase hex digits (a string of at most 16 characters)",
  commit:
    'a git commit (hex, "+dirty" allowed) or "unknown" (a string of at most 80 characters)',
  computedAt:
    "an ISO 8601 UTC time (2026-12-04T18:19:07.834Z) (a string of at most 40 characters)",
  machine: "a string of at most 1000 characters, without control characters",
  backend:
    'a backend name ("cpu", "wasm", "webgpu") (a string of at most 100 characters)',
  adapter: "a string of at most 1000 characters, without control characters",
  deno: "a string of at most 100 characters, without control characters",
  tfjs: "a string of at most 100 characters, without control characters",
  tokenlab: "a string of at most 100 characters, without control characters",
  seconds: "a finite number >= 0",
  scale: "a string of at most 100 characters, without control characters",
};

/** Fields whose null is a valid value. */
const NULLABLE = new Set(["adapter", "scale"]);

/** One damage: a change to the parsed file (resealed unless `raw`) or to its bytes. */
interface Damage {
  what: string;
  /** Changes the parsed file; its digest is made anew unless `keepDigest`. */
  edit?: (doc: Json) => void;
  keepDigest?: boolean;
  /** Replaces the file's bytes (given the clean ones). */
  bytes?: (clean: Uint8Array) => Uint8Array;
  /** Replaces the file by something else at its path. */
  replace?: (path: string) => Promise<void>;
  /** A version-1 file (no digest): a frozen one is told to be recomputed or deleted, not restored. */
  digestless?: boolean;
  field: string;
  expected: string | ((doc: Json) => Promise<string> | string);
  found: string | ((doc: Json) => Promise<string> | string);
}

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

/** The engine's own message for JSON.parse of this text. */
function parseMessage(text: string): string {
  try {
    JSON.parse(text);
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error(`${text} parses`);
}

/** The damages every stored result is checked against (`key`: the config key). */
function damages(key: string, code: string): Damage[] {
  // Neither store reads version 1 (no digest): a file relabelled so, its
  // digest dropped, could carry any edit.
  const format = '"tokenlab-result/2"';
  const v1 =
    'the string "tokenlab-result/1", written before results carried a digest';
  const out: Damage[] = [
    {
      what: "not JSON",
      bytes: () => enc("{not json"),
      field: "(file)",
      expected: "JSON text (UTF-8)",
      found: `text that does not parse (${
        parseMessage("{not json")
      }): the file was cut short or damaged`,
    },
    {
      what: "cut short",
      bytes: (b) => b.slice(0, 100),
      field: "(file)",
      expected: "JSON text (UTF-8)",
      found: (doc) =>
        `text that does not parse (${
          parseMessage(
            dec(enc(JSON.stringify(doc, null, 1) + "\n")).slice(0, 100),
          )
        }): the file was cut short or damaged`,
    },
    {
      what: "empty",
      bytes: () => new Uint8Array(0),
      field: "(file)",
      expected: "JSON text (UTF-8)",
      found: `text that does not parse (${
        parseMessage("")
      }): the file was cut short or damaged`,
    },
    {
      what: "not UTF-8",
      bytes: (b) => {
        const c = b.slice();
        c[c.indexOf(0x35)] = 0xff; // a digit of 51.25
        return c;
      },
      field: "(file)",
      expected: "JSON text (UTF-8)",
      found: "bytes that are not UTF-8: the file was damaged",
    },
    {
      what: "an array",
      bytes: () => enc("[1]"),
      field: "(file)",
      expected: "a JSON object",
      found: "an array of 1",
    },
    {
      what: "a link to a clean copy",
      replace: async (path) => {
        await Deno.copyFile(path, `${path}.copy`);
        await Deno.remove(path);
        await Deno.symlink(`${path}.copy`, path);
      },
      field: "(file)",
      expected: "a regular file (tokenlab writes one; it follows no links)",
      found: "a link",
    },
    {
      what: "a folder",
      replace: async (path) => {
        await Deno.remove(path);
        await Deno.mkdir(path);
      },
      field: "(file)",
      expected: "a regular file (tokenlab writes one; it follows no links)",
      found: "a folder",
    },
    {
      what: "larger than the limit",
      replace: async (path) => {
        // A sparse file: its size is checked before anything is read.
        await Deno.truncate(path, MAX_STORED_RESULT_BYTES + 1);
      },
      field: "(file)",
      expected: `at most ${MAX_STORED_RESULT_BYTES} bytes`,
      found: `${MAX_STORED_RESULT_BYTES + 1} bytes`,
    },
    {
      what: "format deleted",
      edit: (d) => delete d.format,
      field: "format",
      expected: format,
      found: "nothing (the field is missing)",
    },
    {
      what: "format null",
      edit: (d) => d.format = null,
      field: "format",
      expected: format,
      found: "null",
    },
    {
      what: "format of another version",
      edit: (d) => d.format = "tokenlab-result/3",
      field: "format",
      expected: format,
      found: 'the string "tokenlab-result/3"',
    },
    {
      what: "sha256 deleted",
      edit: (d) => delete d.sha256,
      keepDigest: true,
      field: "sha256",
      expected: "a value",
      found: "nothing (the field is missing)",
    },
    {
      what: "sha256 null",
      edit: (d) => d.sha256 = null,
      keepDigest: true,
      field: "sha256",
      expected: "64 lowercase hex digits (a string of at most 64 characters)",
      found: "null",
    },
    {
      what: "sha256 in capitals",
      edit: (d) => d.sha256 = (d.sha256 as string).toUpperCase(),
      keepDigest: true,
      field: "sha256",
      expected: "64 lowercase hex digits (a string of at most 64 characters)",
      found: (d) => `the string "${(d.sha256 as string).toUpperCase()}"`,
    },
    {
      what: "value edited, digest untouched",
      edit: (d) => (d.value as Json).top1 = 99.5,
      keepDigest: true,
      field: "sha256",
      expected: async (d) => {
        const edited = structuredClone(d);
        (edited.value as Json).top1 = 99.5;
        return `the SHA-256 of the file's other fields (${await sealDigest(
          edited,
        )})`;
      },
      found: (d) => `${d.sha256}: the file was edited or damaged`,
    },
    {
      what: "an unknown field",
      edit: (d) => d.note = 1,
      field: '"note"',
      expected:
        "no such field (a stored result has format, sha256, config, provenance, value)",
      found: "number 1",
    },
    {
      what: "config deleted",
      edit: (d) => delete d.config,
      field: "config",
      expected: "a value",
      found: "nothing (the field is missing)",
    },
    {
      what: "config of another lookup",
      edit: (d) => (d.config as Json).seed = 4,
      field: "config",
      expected:
        "the config the experiment was looked up with (its key is the file's name)",
      found: "another config",
    },
    {
      what: "value deleted",
      edit: (d) => delete d.value,
      field: "value",
      expected: "a value",
      found: "nothing (the field is missing)",
    },
    {
      what: "value past the range of a double",
      bytes: (b) => enc(dec(b).replace('"top1": 51.25', '"top1": 1e999')),
      field: "value.top1",
      expected: "a finite number",
      found: "a number beyond the range of a double (it reads as Infinity)",
    },
    {
      what: `value nested ${MAX_JSON_DEPTH + 1} levels`,
      edit: (d) => {
        let deep: unknown = 1;
        for (let i = 0; i <= MAX_JSON_DEPTH; i++) deep = [deep];
        d.value = deep;
      },
      field: `value${
        ("$" + "[0]".repeat(MAX_JSON_DEPTH)).slice(0, 200).slice(1)
      }...`,
      expected: `JSON data nested at most ${MAX_JSON_DEPTH} levels deep`,
      found: "deeper nesting",
    },
    {
      what: "provenance null",
      edit: (d) => d.provenance = null,
      field: "provenance",
      expected: "an object",
      found: "null",
    },
    {
      what: "provenance with an unknown field",
      edit: (d) => (d.provenance as Json).host = "x",
      field: 'provenance["host"]',
      expected: `no such field (provenance has ${
        PROVENANCE_FIELDS.join(", ")
      })`,
      found: 'the string "x"',
    },
    {
      what: "provenance of another experiment",
      edit: (d) => (d.provenance as Json).experiment = "other",
      field: "provenance.experiment",
      expected: EXPECTED.experiment,
      found: 'the string "other"',
    },
    {
      what: "provenance of another config key",
      edit: (d) => (d.provenance as Json).configKey = "0123456789abcdef",
      field: "provenance.configKey",
      expected: `"${key}" (the key in the file's name)`,
      found: 'the string "0123456789abcdef"',
    },
    {
      what: "computedAt not a time",
      edit: (d) => (d.provenance as Json).computedAt = "yesterday",
      field: "provenance.computedAt",
      expected: EXPECTED.computedAt,
      found: 'the string "yesterday"',
    },
    {
      what: "computedAt not a date",
      edit: (d) => (d.provenance as Json).computedAt = "2026-13-45T99:99:99Z",
      field: "provenance.computedAt",
      expected: "a valid date",
      found: 'the string "2026-13-45T99:99:99Z"',
    },
    {
      what: "machine with a control character",
      edit: (d) => (d.provenance as Json).machine = "linux\u001b[2J",
      field: "provenance.machine",
      expected: EXPECTED.machine,
      found: 'the string "linux\\u001b[2J"',
    },
    {
      what: "seconds negative",
      edit: (d) => (d.provenance as Json).seconds = -1,
      field: "provenance.seconds",
      expected: EXPECTED.seconds,
      found: "number -1",
    },
  ];
  for (const f of PROVENANCE_FIELDS) {
    const field = `provenance.${f}`;
    out.push({
      what: `${field} deleted`,
      edit: (d) => delete (d.provenance as Json)[f],
      field,
      expected: "a value",
      found: "nothing (the field is missing)",
    });
    const expected = f === "configKey"
      ? `"${key}" (the key in the file's name)`
      : f === "codeVersion"
      ? EXPECTED.codeVersion
      : EXPECTED[f];
    if (!NULLABLE.has(f)) {
      out.push({
        what: `${field} null`,
        edit: (d) => (d.provenance as Json)[f] = null,
        field,
        expected,
        found: "null",
      });
    }
    const wrong = f === "seconds" ? "12" : 7;
    out.push({
      what: `${field} of the wrong type`,
      edit: (d) => (d.provenance as Json)[f] = wrong,
      field,
      expected,
      found: f === "seconds" ? 'the string "12"' : "number 7",
    });
  }
  out.push(
    {
      what: "relabelled version 1 without its digest, otherwise clean",
      edit: (d) => {
        d.format = "tokenlab-result/1";
        delete d.sha256;
      },
      keepDigest: true,
      digestless: true,
      field: "format",
      expected: format,
      found: v1,
    },
    {
      // The downgrade: an edit passed off as a file from before the digest.
      what: "value edited and relabelled version 1 without its digest",
      edit: (d) => {
        d.format = "tokenlab-result/1";
        delete d.sha256;
        (d.value as Json).top1 = 99;
      },
      keepDigest: true,
      digestless: true,
      field: "format",
      expected: format,
      found: v1,
    },
    {
      what: "relabelled version 1, its digest kept",
      edit: (d) => d.format = "tokenlab-result/1",
      keepDigest: true,
      digestless: true,
      field: "format",
      expected: format,
      found: v1,
    },
    {
      what:
        "version 1 with a provenance field also wrong (the format is checked first)",
      edit: (d) => {
        d.format = "tokenlab-result/1";
        delete d.sha256;
        (d.provenance as Json).seconds = "33.9";
      },
      keepDigest: true,
      digestless: true,
      field: "format",
      expected: format,
      found: v1,
    },
  );
  void code;
  return out;
}

/** Where the test's experiments are stored, and what they warned. */
function options(root: string, warnings: string[]): ExperimentOptions {
  return {
    cacheDir: `${root}/cache`,
    frozenDir: `${root}/frozen`,
    refresh: false,
    freeze: false,
    onWarning: (m) => warnings.push(m),
  };
}

/** A test's options, the warnings they collect, and a compute of VALUE that counts its calls. */
function harness(root: string) {
  const warnings: string[] = [];
  const h = {
    warnings,
    opts: options(root, warnings),
    calls: 0,
    compute: () => {
      h.calls++;
      return VALUE;
    },
  };
  return h;
}

/** Applies a damage to the stored file at `path`, whose clean bytes are `clean`. */
async function damage(
  path: string,
  clean: Uint8Array,
  d: Damage,
): Promise<Json> {
  const doc = JSON.parse(dec(clean)) as Json;
  if (d.bytes) {
    await Deno.writeFile(path, d.bytes(clean));
  } else if (d.replace) {
    await Deno.writeFile(path, clean);
    await d.replace(path);
  } else {
    const edited = structuredClone(doc);
    d.edit!(edited);
    const out = d.keepDigest ? edited : await sealed(edited);
    await Deno.writeTextFile(path, JSON.stringify(out, null, 1) + "\n");
  }
  return doc;
}

/** Removes what a damage left at `path` (a folder, a link's target). */
async function clear(path: string): Promise<void> {
  await Deno.remove(path, { recursive: true }).catch(() => {});
  await Deno.remove(`${path}.copy`).catch(() => {});
}

const text = async (
  v: string | ((doc: Json) => Promise<string> | string),
  doc: Json,
) => typeof v === "string" ? v : await v(doc);

Deno.test("results cache: each damaged or edited entry is ignored with a warning naming the file and field, and the experiment computed again", async () => {
  await inFresh("cache", async (root) => {
    const h = harness(root);
    const { warnings, opts, compute } = h;
    const first = await experiment(NAME, CONFIG, compute, opts);
    assertEquals([first.source, h.calls], ["computed", 1]);
    const key = first.provenance.configKey;
    const code = await codeVersion();
    const path = `${root}/cache/${NAME}/${key}-${code}.json`;
    const clean = await Deno.readFile(path);
    const doc = JSON.parse(dec(clean));
    assertEquals(doc.format, "tokenlab-result/2");
    assertEquals(doc.sha256, await sealDigest(doc));

    for (const d of damages(key, code)) {
      await damage(path, clean, d);
      warnings.length = 0;
      const before = h.calls;
      const r = await experiment(NAME, CONFIG, compute, opts);
      assertIncludesAll(warnings[0], [
        `results cache entry ${path}`,
        `field ${d.field}: expected ${await text(
          d.expected,
          doc,
        )}, found ${await text(
          d.found,
          doc,
        )}`,
        "computed again",
      ], d.what);
      if (d.what === "a folder") {
        // The write cannot replace a folder: the result stands, uncached.
        assertEquals(warnings.length, 2, d.what);
        assert(
          warnings[1].startsWith(
            `could not store the result of experiment ${NAME} in the results cache at ${path} (`,
          ),
          warnings[1],
        );
      } else {
        assertEquals(warnings.length, 1, d.what);
        // The entry was replaced by a clean one.
        assertEquals(
          await sealDigest(JSON.parse(await Deno.readTextFile(path))),
          JSON.parse(await Deno.readTextFile(path)).sha256,
        );
      }
      assertEquals(h.calls, before + 1, `${d.what}: computed again`);
      assertEquals([r.source, r.value], ["computed", VALUE], d.what);
      await clear(path);
      await Deno.writeFile(path, clean);
    }

    // The clean entry still hits, without a warning.
    warnings.length = 0;
    const hit = await experiment(NAME, CONFIG, compute, opts);
    assertEquals([hit.source, warnings.length], ["cache", 0]);
    assertEquals(hit.value, VALUE);
    assertEquals(hit.provenance, first.provenance);

    // A cache entry of another code version in this file's name is refused.
    const other = await sealed({
      ...doc,
      provenance: { ...doc.provenance, codeVersion: "0123456789abcdef" },
    });
    await Deno.writeTextFile(path, JSON.stringify(other));
    warnings.length = 0;
    await experiment(NAME, CONFIG, compute, opts);
    assertEquals(warnings.length, 1);
    assertIncludesAll(warnings[0], [
      path,
      "field provenance.codeVersion",
      `expected "${code}"`,
      'found the string "0123456789abcdef"',
      "computed again",
    ]);

    // The experiment's own check of its value counts like a field check.
    const check = (v: unknown) => {
      const top1 = (v as { top1?: unknown }).top1;
      if (typeof top1 !== "number" || top1 < 0 || top1 > 100) {
        throw new Error(`top1 must be a percentage, found ${top1}`);
      }
    };
    await Deno.writeTextFile(
      path,
      JSON.stringify(await sealed({ ...doc, value: { top1: 140 } })),
    );
    warnings.length = 0;
    const checked = await experiment(NAME, CONFIG, compute, {
      ...opts,
      check,
    });
    assertEquals(checked.value, VALUE);
    assertEquals(warnings.length, 1);
    assertIncludesAll(warnings[0], [
      path,
      "field value",
      "check",
      "top1 must be a percentage, found 140",
      "computed again",
    ]);

    // A damaged cache entry with a frozen result: the frozen one is used.
    await experiment(NAME, CONFIG, compute, { ...opts, freeze: true });
    await Deno.writeTextFile(path, "{");
    warnings.length = 0;
    const n = h.calls;
    const frozen = await experiment(NAME, CONFIG, compute, opts);
    assertEquals([frozen.source, h.calls], ["frozen", n]);
    assertEquals(warnings.length, 1);
    assertIncludesAll(warnings[0], [
      path,
      "field (file)",
      "expected JSON text",
      parseMessage("{"),
      `frozen result ${root}/frozen/${NAME}/${key}.json is used`,
      "delete the entry",
    ]);
  });
});

Deno.test("frozen store: each damaged or edited result is an ExperimentError naming the file and field, and nothing is computed", async () => {
  await inFresh("frozen", async (root) => {
    const h = harness(root);
    const { warnings, opts, compute } = h;
    const first = await experiment(NAME, CONFIG, compute, {
      ...opts,
      cacheDir: `${root}/elsewhere`,
      freeze: true,
    });
    const key = first.provenance.configKey;
    const path = `${root}/frozen/${NAME}/${key}.json`;
    const clean = await Deno.readFile(path);
    const doc = JSON.parse(dec(clean));
    const all: Damage[] = [
      ...damages(key, await codeVersion()),
      {
        what: "frozen at smoke scale",
        edit: (d: Json) => (d.provenance as Json).scale = "smoke",
        field: "provenance.scale",
        expected: "a scale that is frozen (not tiny or smoke)",
        found: 'the string "smoke"',
      },
    ];
    for (const d of all) {
      await damage(path, clean, d);
      const e = await rejection(
        () => experiment(NAME, CONFIG, compute, opts),
        ExperimentError,
        d.what,
      );
      assertIncludesAll(e.message, [
        `frozen result ${path}`,
        `field ${d.field}: expected ${await text(
          d.expected,
          doc,
        )}, found ${await text(
          d.found,
          doc,
        )}`,
        "freeze it again",
        ...(d.digestless ? [] : ["restore it from git"]),
      ], d.what);
      assertEquals([e.file, e.field], [path, d.field], d.what);
      await clear(path);
    }
    assertEquals([h.calls, warnings.length], [1, 0]);

    // Another code version is no damage: the result is used and flagged.
    await Deno.writeTextFile(
      path,
      JSON.stringify(
        await sealed({
          ...doc,
          provenance: { ...doc.provenance, codeVersion: "0123456789abcdef" },
        }),
      ),
    );
    const old = await experiment(NAME, CONFIG, compute, opts);
    assertEquals([old.source, old.codeChanged, h.calls], ["frozen", true, 1]);

    // Version 1 (no digest), exactly as it was frozen before the digest
    // existed, is refused too, and nothing is computed in its place.
    const { sha256: _, ...v1 } = { ...doc, format: "tokenlab-result/1" };
    await Deno.writeTextFile(path, JSON.stringify(v1, null, 1) + "\n");
    const legacy = await assertRejects(
      () => experiment(NAME, CONFIG, compute, opts),
      ExperimentError,
    );
    assertEquals([legacy.file, legacy.field], [path, "format"]);
    assertStringIncludes(
      legacy.message,
      'found the string "tokenlab-result/1", written before results carried a digest; recompute and freeze it again (the report with --refresh --freeze), or delete it',
    );
    assertEquals([h.calls, warnings.length], [1, 0]);
  });
});

Deno.test("frozen store: every committed frozen result is version 2, sealed, passes the checks and is used", async () => {
  await inFresh("committed", async (root) => {
    let n = 0;
    for await (const dir of Deno.readDir(`${ROOT}data/frozen`)) {
      if (!dir.isDirectory) continue;
      for await (const f of Deno.readDir(`${ROOT}data/frozen/${dir.name}`)) {
        const doc = JSON.parse(
          await Deno.readTextFile(`${ROOT}data/frozen/${dir.name}/${f.name}`),
        );
        assertEquals(doc.format, "tokenlab-result/2", `${dir.name}/${f.name}`);
        assertEquals(
          doc.sha256,
          await sealDigest(doc),
          `${dir.name}/${f.name}`,
        );
        const r = await experiment(dir.name, doc.config, () => {
          throw new Error("a frozen result must not be computed");
        }, {
          cacheDir: `${root}/cache`,
          frozenDir: `${ROOT}data/frozen`,
          refresh: false,
          freeze: false,
          onWarning: (m) => {
            throw new Error(m);
          },
        });
        assertEquals(r.source, "frozen", `${dir.name}/${f.name}`);
        assertEquals(r.value, doc.value);
        assertEquals(`${r.provenance.configKey}.json`, f.name);
        n++;
      }
    }
    assert(n > 0, "the repository holds frozen results");
  });
});

Deno.test("canonicalJson: a computed result nested too deep is refused with its path", async () => {
  await inFresh("deep", async (root) => {
    let deep: unknown = 1;
    for (let i = 0; i <= MAX_JSON_DEPTH; i++) deep = { a: deep };
    const e = await assertRejects(
      () => experiment("deep", {}, () => deep, options(root, [])),
      ExperimentError,
    );
    const at = ("$" + ".a".repeat(MAX_JSON_DEPTH)).slice(0, 200) + "...";
    assertEquals(e.field, at);
    assertIncludesAll(e.message, [
      "experiment deep",
      `at most ${MAX_JSON_DEPTH} levels`,
      `found deeper nesting at ${at}`,
      "flat",
    ]);
  });
});

// ---------------------------------------------------------------------------
// An ablation's stored arm results.

Deno.test("runAblation: a stored arm result that is no ArmResult is damage (a cache entry recomputed with a warning, a frozen one refused); a run returning one is an AblationError naming the field", async () => {
  await inFresh("ablation", async (root) => {
    const warnings: string[] = [];
    let calls = 0;
    let result: unknown = {
      value: 61.5,
      curve: [{ epoch: 1, value: 40 }, { epoch: 2, value: 61.5 }],
      seconds: 2.5,
      extra: { ema: 60.25 },
    };
    const ablation = (experimentOptions: ExperimentOptions) =>
      runAblation({
        name: "hostile",
        arms: [{ key: "base", label: "baseline", config: { gain: 0 } }],
        baseline: "base",
        seeds: [1],
        run: () => {
          calls++;
          return Promise.resolve(structuredClone(result) as ArmResult);
        },
        setting: {
          dataset: "none",
          real: false,
          model: "none",
          epochs: 0,
          scale: "test",
        },
        experimentOptions,
      });
    const opts = options(root, warnings);
    const first = await ablation(opts);
    assertEquals([first.values("base"), calls], [[61.5], 1]);
    const key = first.outcomes[0].sources.get(1)!.provenance.configKey;
    const path =
      `${root}/cache/hostile-base/${key}-${await codeVersion()}.json`;
    const doc = JSON.parse(await Deno.readTextFile(path)) as Json;
    assertEquals(doc.value, result);

    const clean = doc.value as Json;
    const cases: [string, Json, string, string][] = [
      [
        "value null",
        { ...clean, value: null },
        "value",
        "a finite number, found null",
      ],
      [
        "value a string",
        { ...clean, value: "61.5" },
        "value",
        'a finite number, found the string "61.5"',
      ],
      [
        "value missing",
        { curve: clean.curve },
        "value",
        "a finite number, found nothing (the field is missing)",
      ],
      [
        "curve not an array",
        { ...clean, curve: { epoch: 1 } },
        "curve",
        "an array of { epoch, value } points, found an object",
      ],
      [
        "a curve point without a value",
        { ...clean, curve: [{ epoch: 1 }] },
        "curve[0].value",
        "a value, found nothing (the field is missing)",
      ],
      [
        "a curve point with a fractional epoch",
        { ...clean, curve: [{ epoch: 1.5, value: 3 }] },
        "curve[0].epoch",
        "an integer >= 0, found number 1.5",
      ],
      [
        "a curve point with an unknown field",
        { ...clean, curve: [{ epoch: 1, value: 3, x: 1 }] },
        "curve[0].x",
        "no such field (curve[0] has epoch, value), found number 1",
      ],
      [
        "seconds negative",
        { ...clean, seconds: -1 },
        "seconds",
        "a finite number >= 0, found number -1",
      ],
      [
        "extra not numbers",
        { ...clean, extra: { ema: "60" } },
        "extra.ema",
        'a finite number, found the string "60"',
      ],
      [
        "extra an array",
        { ...clean, extra: [1] },
        "extra",
        "an object of numbers, found an array of 1",
      ],
    ];
    for (const [what, value, field, problem] of cases) {
      await Deno.writeTextFile(
        path,
        JSON.stringify(await sealed({ ...doc, value })),
      );
      warnings.length = 0;
      const before = calls;
      const again = await ablation(opts);
      assertEquals(warnings.length, 1, what);
      assertIncludesAll(warnings[0], [
        path,
        "field value",
        `field ${field}: expected ${problem}`,
        "experiment hostile-base is computed again",
      ], what);
      assertEquals([again.values("base"), calls], [[61.5], before + 1], what);
    }

    // The same in the frozen store: refused, naming the file, nothing computed.
    await ablation({ ...opts, freeze: true });
    const frozenPath = `${root}/frozen/hostile-base/${key}.json`;
    await Deno.remove(path);
    const [, value, field, problem] = cases[3];
    await Deno.writeTextFile(
      frozenPath,
      JSON.stringify(await sealed({ ...doc, value })),
    );
    const before = calls;
    const e = await assertRejects(() => ablation(opts), ExperimentError);
    assertEquals([e.file, e.field], [frozenPath, "value"]);
    assertStringIncludes(
      e.message,
      `frozen result ${frozenPath} is unusable: field value: expected a result the experiment's check accepts, found one it refuses: field ${field}: expected ${problem}.`,
    );
    assertEquals(calls, before);
    await Deno.remove(frozenPath);

    // A run that returns no ArmResult: the ablation's own error, its field named.
    result = { value: 61.5, seconds: -2 };
    const bad = await assertRejects(() => ablation(opts), AblationError);
    assertEquals([bad.file, bad.field], [undefined, "seconds"]);
    assertStringIncludes(
      bad.message,
      'arm "base" at seed 1 returned a result whose field seconds: expected a finite number >= 0, found number -2;',
    );
  });
});

// ---------------------------------------------------------------------------
// An annotator's result.json and weights.

const ANNOTATOR_DATA = "synthetic:size=32,count=16,classes=4,seed=0";
const ANNOTATOR = tinyAnnotator(ANNOTATOR_DATA);

Deno.test({
  name:
    "annotatorStore: a damaged or edited result.json, or changed weights, retrain the annotator with a warning naming the file and field",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await inFresh("annotator", async (cacheDir) => {
      const warnings: string[] = [];
      const opts = { cacheDir, onWarning: (m: string) => warnings.push(m) };
      const a = await annotatorStore(ANNOTATOR, ANNOTATOR_DATA, 1, opts);
      assert(a.seconds > 0, "the first call trains");
      const dir = a.store.slice(0, a.store.lastIndexOf("/"));
      const resultPath = `${dir}/result.json`;
      const weightsPath = `${dir}/model.safetensors`;
      const clean = await Deno.readTextFile(resultPath);
      const doc = JSON.parse(clean) as Json;
      const weights = await Deno.readFile(weightsPath);
      assertEquals(doc.format, "tokenlab-annotator/1");
      assertEquals(doc.top1, a.top1);
      assertEquals(doc.weights, {
        bytes: weights.length,
        sha256: await sha256Hex(weights),
      });
      assertEquals(doc.sha256, await sealDigest(doc));
      const hit = await annotatorStore(ANNOTATOR, ANNOTATOR_DATA, 1, opts);
      assertEquals([hit.store, hit.top1, hit.seconds], [a.store, a.top1, 0]);
      assertEquals(warnings, []);

      const edited = (change: (d: Json) => void) => {
        const d = structuredClone(doc);
        change(d);
        return JSON.stringify(d);
      };
      const range = "a finite number in [0, 100] (a top-1 in percent)";
      const cases: [string, string, string, string, string][] = [
        [
          "not JSON",
          "{",
          "(file)",
          "JSON text (UTF-8)",
          `text that does not parse (${
            parseMessage("{")
          }): the file was cut short or damaged`,
        ],
        [
          "cut short",
          clean.slice(0, 30),
          "(file)",
          "JSON text (UTF-8)",
          `text that does not parse (${
            parseMessage(clean.slice(0, 30))
          }): the file was cut short or damaged`,
        ],
        [
          "top1 missing",
          edited((d) => delete d.top1),
          "top1",
          "a value",
          "nothing (the field is missing)",
        ],
        ["top1 null", edited((d) => d.top1 = null), "top1", range, "null"],
        [
          "top1 a string",
          edited((d) => d.top1 = "51.5"),
          "top1",
          range,
          'the string "51.5"',
        ],
        [
          "top1 NaN",
          clean.replace(/"top1":[^,]+/, '"top1":NaN'),
          "(file)",
          "JSON text (UTF-8)",
          `text that does not parse (${
            parseMessage(clean.replace(/"top1":[^,]+/, '"top1":NaN'))
          }): the file was cut short or damaged`,
        ],
        [
          "top1 past a double",
          clean.replace(/"top1":[^,]+/, '"top1":1e999'),
          "top1",
          range,
          "number Infinity",
        ],
        [
          "top1 below 0",
          edited((d) => d.top1 = -0.5),
          "top1",
          range,
          "number -0.5",
        ],
        [
          "top1 above 100",
          edited((d) => d.top1 = 100.5),
          "top1",
          range,
          "number 100.5",
        ],
        [
          "top1 edited in range, digest untouched",
          edited((d) => d.top1 = 12.5),
          "sha256",
          `the SHA-256 of the file's other fields (${await sealDigest({
            ...doc,
            top1: 12.5,
          })})`,
          `${doc.sha256}: the file was edited or damaged`,
        ],
        [
          "an unknown field",
          edited((d) => d.note = "x"),
          '"note"',
          "no such field (result.json has format, top1, seconds, title, weights, sha256)",
          'the string "x"',
        ],
      ];
      for (const [what, text, field, expected, found] of cases) {
        await Deno.writeTextFile(resultPath, text);
        warnings.length = 0;
        const r = await annotatorStore(ANNOTATOR, ANNOTATOR_DATA, 1, opts);
        assertEquals(warnings.length, 1, what);
        assertIncludesAll(warnings[0], [
          `annotator result ${resultPath}`,
          `field ${field}: expected ${expected}, found ${found}`,
          "trained again",
        ], what);
        assert(r.seconds > 0, `${what}: trained again`);
        const after = JSON.parse(await Deno.readTextFile(resultPath));
        assertEquals(after.sha256, await sealDigest(after), what);
      }

      // Weights changed under a clean result.json: refused before loading
      // (another head needs them: its store is not made yet).
      const now = JSON.parse(await Deno.readTextFile(resultPath));
      const bytes = await Deno.readFile(weightsPath);
      bytes[bytes.length - 3] ^= 0x40;
      await Deno.writeFile(weightsPath, bytes);
      warnings.length = 0;
      const other = await annotatorStore(
        { ...ANNOTATOR, head: "head" },
        ANNOTATOR_DATA,
        1,
        opts,
      );
      assertEquals(warnings.length, 1);
      assertIncludesAll(warnings[0], [
        `annotator weights ${weightsPath}`,
        `${now.weights.bytes} bytes, SHA-256 ${now.weights.sha256}`,
        `found SHA-256 ${await sha256Hex(bytes)}`,
        "trained again",
      ]);
      assert(other.seconds > 0, "trained again");
      // The first head's store came from the replaced weights: it is made
      // again, not reused.
      await assertRejects(() => Deno.lstat(a.store), Deno.errors.NotFound);
      warnings.length = 0;
      const first = await annotatorStore(ANNOTATOR, ANNOTATOR_DATA, 1, opts);
      assertEquals([first.store, first.seconds, warnings], [a.store, 0, []]);
      assertEquals(
        JSON.parse(await Deno.readTextFile(`${a.store}/header.json`)).count,
        16,
      );
    });
  },
});

// ---------------------------------------------------------------------------
// tokenlab eval on a checkpoint folder.

/** One step, a checkpoint after it, with EMA. */
const RUN: Partial<TrainConfig> & { data: string } = {
  model: "lvvit_xs32",
  modelOverrides: { embedDim: 16, depth: 1, numHeads: 1, stemChannels: 4 },
  imgSize: 16,
  data: "synthetic:size=16,count=16,classes=4",
  valLimit: 16,
  batchSize: 16,
  epochs: 1,
  warmupEpochs: 0,
  cooldownEpochs: 0,
  modelEma: true,
  checkpointEvery: 1,
  backend: "cpu",
};

Deno.test({
  name:
    "evaluationTargets and tokenlab eval: a checkpoint folder is checked against its state; changed weights are refused",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await inFresh("eval", async (root) => {
      await initBackend({ backend: "cpu" });
      const out = `${root}/run`;
      (await train({ ...RUN, output: out }, { live: false })).dispose();
      const ckpt = `${out}/checkpoints/step-00000001`;
      assertEquals(await evaluationTargets(ckpt), [
        { which: "model", path: `${ckpt}/model.safetensors` },
        { which: "ema", path: `${ckpt}/ema.safetensors` },
      ]);

      const weights = `${ckpt}/model.safetensors`;
      const bytes = await Deno.readFile(weights);
      bytes[bytes.length - 5] ^= 0x01;
      await Deno.writeFile(weights, bytes);
      const facts = [
        `checkpoint ${ckpt}`,
        "model.safetensors does not match its digest in state.json",
        `${bytes.length} bytes`,
        "delete this checkpoint folder",
      ];
      const e = await assertRejects(
        () => evaluationTargets(ckpt),
        RunFolderError,
        facts,
      );
      assertEquals(
        [e.file, e.field],
        [weights, 'files["model.safetensors"]'],
      );

      const ev = await runCli([
        "eval",
        "--checkpoint",
        ckpt,
        "--data",
        "synthetic:size=16,count=16,classes=4",
        "--backend",
        "cpu",
      ]);
      assertEquals(ev.code, 2, ev.stderr);
      assertIncludesAll(ev.stderr, facts);
    });
  },
});
