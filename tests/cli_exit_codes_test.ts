/**
 * The command line's one exit-code rule: wrong usage or bad input exits 2
 * before any work, with a message that says what was expected and what was
 * found; a failure while running exits 1. Every refusal here happens before
 * training or annotating starts, so the child processes stay cheap.
 */

import { assert, assertEquals, assertStringIncludes } from "./_assert.ts";
import { exists, ROOT, runCli, tinyVit, writeTinyDataset } from "./_helpers.ts";
import { exitCodeOf } from "../lib/cli/main.ts";
import {
  annotate,
  DataSpecError,
  ImageError,
  initBackend,
  LvVit,
  openTensorDataset,
  RunFolderError,
  saveWeights,
  ScoreMapError,
  TrainConfigError,
  WeightsError,
} from "tokenlab";

const CLASSES = 4;

/** A 4-class model small enough to save and load in well under a second. */
const TINY = tinyVit(CLASSES);

async function tempDir(): Promise<string> {
  return await Deno.makeTempDir({ dir: `${ROOT}tests`, prefix: ".tmp-exit-" });
}

/** Runs the command and checks the exit code and the message's parts. */
async function expectExit(
  args: string[],
  code: number,
  says: string[],
): Promise<string> {
  const r = await runCli(args);
  assertEquals(
    r.code,
    code,
    `tokenlab ${args.join(" ")}\nstderr: ${r.stderr}`,
  );
  for (const part of says) assertStringIncludes(r.stderr, part);
  return r.stderr;
}

Deno.test("exit codes: the library's input errors are 2, everything else 1 (typed table)", async () => {
  assertEquals(await exitCodeOf(new DataSpecError("x")), 2);
  assertEquals(await exitCodeOf(new TrainConfigError("x")), 2);
  assertEquals(await exitCodeOf(new WeightsError("x")), 2);
  assertEquals(await exitCodeOf(new RunFolderError("x")), 2);
  assertEquals(await exitCodeOf(new Deno.errors.NotFound("x")), 2);
  assertEquals(await exitCodeOf(new Deno.errors.IsADirectory("x")), 2);
  // Read while running (an image, a store record): a failure, not a refusal.
  assertEquals(await exitCodeOf(new ImageError("x")), 1);
  assertEquals(await exitCodeOf(new ScoreMapError("x")), 1);
  assertEquals(await exitCodeOf(new RangeError("x")), 1);
  assertEquals(await exitCodeOf("not an error"), 1);
  // The class decides, not the name or the message.
  const named = new Error("no such file");
  named.name = "DataSpecError";
  assertEquals(await exitCodeOf(named), 1);
});

Deno.test("exit codes: --help states the rule", async () => {
  const r = await runCli(["--help"]);
  assertEquals(r.code, 0, r.stderr);
  assertStringIncludes(r.stdout, "exit codes:");
  assertStringIncludes(r.stdout, "2  refused before any work");
  assertStringIncludes(r.stdout, "1  failed while running");
});

Deno.test("exit codes: train refuses bad data, numbers, paths and options with 2", async () => {
  const dir = await tempDir();
  try {
    await Deno.mkdir(`${dir}/empty`);
    const train = ["train", "--backend", "cpu", "--data"];
    await expectExit([...train, `${dir}/missing`], 2, [
      `--data ${dir}/missing: no such file or folder`,
      "--data takes synthetic",
    ]);
    await expectExit([...train, `${dir}/empty`], 2, [
      `--data ${dir}/empty`,
      "pass --val-data, or --no-eval",
    ]);
    await expectExit([...train, "synthetic:size=-3"], 2, [
      'option "size" must be an integer in [16, 4096], found -3',
    ]);
    await expectExit([...train, "synthetic", "--batch-size", "0"], 2, [
      "--batch-size needs a positive integer, found 0",
    ]);
    await expectExit([...train, "synthetic", "--batch-size", "-3"], 2, [
      "--batch-size needs a positive integer, found -3",
    ]);
    await expectExit([...train, "synthetic", "--lr", "-1"], 2, [
      "--lr needs a positive number, found -1",
    ]);
    await expectExit([...train, "synthetic", "--seed", "-1"], 2, [
      "--seed needs an integer >= 0, found -1",
    ]);
    await expectExit([...train, "synthetic", "--smoothing", "1"], 2, [
      "--smoothing needs a number in [0, 1), found 1",
    ]);
    await expectExit(
      [
        ...train,
        "synthetic",
        "--initial-checkpoint",
        `${dir}/empty`,
      ],
      2,
      [
        "--initial-checkpoint takes a weights file",
        `found a folder at ${dir}/empty`,
      ],
    );
    await expectExit([...train, "synthetic", "--batch-sise", "8"], 2, [
      "unknown option --batch-sise; did you mean --batch-size?",
    ]);
    await expectExit([...train, "synthetic", "--batch-size"], 2, [
      "--batch-size needs a value, found the end of the command line",
    ]);
    await expectExit([...train, "synthetic", "--backend", "metal"], 2, [
      'unknown --backend "metal": expected one of auto, webgpu, wasm, cpu',
    ]);
    // An output folder that holds another run's files.
    await Deno.mkdir(`${dir}/out`);
    await Deno.writeTextFile(`${dir}/out/log.jsonl`, "");
    await expectExit(
      [
        ...train,
        "synthetic:size=32,count=16",
        "--model",
        "vit_xs32",
        "--batch-size",
        "8",
        "--no-eval",
        "--output",
        `${dir}/out`,
      ],
      2,
      [`--output ${dir}/out holds log.jsonl`, "set --overwrite"],
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("exit codes: the other commands' refusals are 2", async () => {
  const dir = await tempDir();
  try {
    await expectExit(["models", "--img-size", "-3"], 2, [
      "--img-size needs a positive integer, found -3",
    ]);
    await expectExit(["backend", "--backend", "metal"], 2, [
      "expected one of auto, webgpu, wasm, cpu",
    ]);
    await expectExit(
      [
        "eval",
        "--checkpoint",
        `${dir}/none.safetensors`,
        "--data",
        "synthetic",
      ],
      2,
      [`--checkpoint: ${dir}/none.safetensors: no such file or folder`],
    );
    // An image given as weights is named for what it is, not read as a
    // safetensors header length of 727905341920923785.
    const png = new Uint8Array(64);
    png.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]);
    await Deno.writeFile(`${dir}/x.png`, png);
    await expectExit(
      ["eval", "--checkpoint", `${dir}/x.png`, "--data", "synthetic"],
      2,
      [
        `weights file ${dir}/x.png: expected a .safetensors file`,
        "found a PNG image, not a checkpoint or weights file",
      ],
    );
    await expectExit(["labels", `${dir}/none.pt`], 2, [
      "MAP takes an official per-image map file",
      `found nothing at ${dir}/none.pt`,
    ]);
    await expectExit(["labels", `${dir}/none.pt`, "--smoothing", "-0.1"], 2, [
      "--smoothing needs a number in [0, 1), found -0.1",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("exit codes: annotate refuses k beyond the classes, an existing store, a folder for --model; writes nothing", async () => {
  await initBackend({ backend: "wasm" });
  const dir = await tempDir();
  const model = LvVit.create(TINY, { seed: 1 });
  try {
    await saveWeights(model, `${dir}/tiny.safetensors`);
    await writeTinyDataset(`${dir}/data.safetensors`, {
      n: 4,
      classes: CLASSES,
    });
    const annotateArgs = (out: string, ...extra: string[]) => [
      "annotate",
      "--model",
      `${dir}/tiny.safetensors`,
      "--data",
      `${dir}/data.safetensors`,
      "--out",
      out,
      "--backend",
      "wasm",
      ...extra,
    ];
    await expectExit(annotateArgs(`${dir}/maps`, "--k", "100"), 2, [
      `--k 100 is more than the ${CLASSES} classes of the model tiny_vit`,
      `expected 1 <= k <= ${CLASSES}`,
    ]);
    assert(!(await exists(`${dir}/maps`)), "no store after the refusal");
    assert(!(await exists(`${dir}/maps.partial`)), "no partial store either");
    await expectExit(annotateArgs(`${dir}/maps`, "--k", "-2"), 2, [
      "--k needs a positive integer, found -2",
    ]);
    // The corrected command runs: nothing was left to refuse it.
    const ok = await runCli(annotateArgs(`${dir}/maps`, "--k", "2"));
    assertEquals(ok.code, 0, ok.stderr);
    assertStringIncludes(
      ok.stderr,
      `4 score maps (k 2, 4x4, ${CLASSES} classes)`,
    );
    const before = await Deno.readTextFile(`${dir}/maps/header.json`);
    await expectExit(annotateArgs(`${dir}/maps`, "--k", "2"), 2, [
      `--out ${dir}/maps already exists`,
      "pass --overwrite",
    ]);
    assertEquals(await Deno.readTextFile(`${dir}/maps/header.json`), before);
    await expectExit(
      [
        "annotate",
        "--model",
        dir,
        "--data",
        `${dir}/data.safetensors`,
        "--out",
        `${dir}/other`,
      ],
      2,
      ["--model takes a weights file", `found a folder at ${dir}`],
    );
    assert(!(await exists(`${dir}/other`)));

    // An interrupted write made with k 3 refuses k 2, naming the flag.
    const stop = new AbortController();
    await annotate(model, await openTensorDataset(`${dir}/data.safetensors`), {
      out: `${dir}/cut`,
      k: 3,
      batchSize: 2,
      flushEvery: 2,
      signal: stop.signal,
      onProgress: (done) => {
        if (done >= 2) stop.abort();
      },
    });
    assert(await exists(`${dir}/cut.partial`));
    await expectExit(
      annotateArgs(`${dir}/cut`, "--k", "2", "--batch-size", "2"),
      2,
      [
        `--out ${dir}/cut: `,
        "pass --overwrite to start the store over",
      ],
    );
    const redo = await runCli(
      annotateArgs(
        `${dir}/cut`,
        "--k",
        "2",
        "--batch-size",
        "2",
        "--overwrite",
      ),
    );
    assertEquals(redo.code, 0, redo.stderr);
    assertStringIncludes(redo.stderr, "4 score maps (k 2,");
  } finally {
    model.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("exit codes: an image that cannot be read while annotating is a failure while running (1)", async () => {
  const dir = await tempDir();
  try {
    const cls = `${dir}/images/train/a`;
    await Deno.mkdir(cls, { recursive: true });
    await Deno.copyFile(
      `${ROOT}tests/fixtures/image_folder/train/cat/a.png`,
      `${cls}/a.png`,
    );
    // A PNG signature followed by garbage: listed as an image, found
    // broken only when the run reads it.
    await Deno.writeFile(
      `${cls}/b.png`,
      Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3),
    );
    await expectExit(
      [
        "annotate",
        "--model",
        "vit_xs32",
        "--data",
        `${dir}/images`,
        "--out",
        `${dir}/maps`,
        "--k",
        "2",
        "--batch-size",
        "1",
        "--backend",
        "wasm",
      ],
      1,
      ["tokenlab annotate: ", "b.png"],
    );
    assert(!(await exists(`${dir}/maps`)), "no committed store");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
