/**
 * Regression tests for what the fuzzing harness (tests/fuzz/) found in the
 * readers it fuzzes: each input is the smallest form of a defect case, and
 * each test checks the reader's own error names the file.
 */

import {
  assertEquals,
  assertRejects,
  assertStringIncludes,
} from "./_assert.ts";
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

Deno.test("fuzz regression: a weights file whose config metadata asks for another size is refused before a model is built", async () => {
  const { initBackend } = await import("../lib/backend.ts");
  const { createModel } = await import("../lib/models/registry.ts");
  const { loadModel, saveWeights } = await import("../lib/models/weights.ts");
  const { decodeSafetensors, encodeSafetensors } = await import(
    "../lib/io/safetensors.ts"
  );
  await initBackend({ backend: "cpu" });
  const overrides = { embedDim: 16, depth: 1, numHeads: 2, stemChannels: 4 };
  const m = createModel("lvvit_xs32", { ...overrides, imgSize: 16 });
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/model.safetensors`;
    await saveWeights(m, path);
    const { tensors, metadata } = decodeSafetensors(await Deno.readFile(path));
    // as found: imgSize 16384 (a model of 4 million tokens, which hung) and
    // an mlpRatio of 2^64 (a bare RangeError from the initialiser)
    for (const change of [{ imgSize: 16384 }, { mlpRatio: 2 ** 64 }]) {
      const config = { ...JSON.parse(metadata["tokenlab.config"]), ...change };
      await Deno.writeFile(
        path,
        encodeSafetensors(tensors, {
          metadata: { ...metadata, "tokenlab.config": JSON.stringify(config) },
        }),
      );
      const e = await assertRejects(() => loadModel(path), WeightsError);
      assertStringIncludes(e.message, path);
      assertStringIncludes(e.message, "does not describe its tensors");
      assertStringIncludes(
        e.message,
        "imgSize" in change ? "pos_embed: the file has" : "mlp.fc1.weight",
      );
    }
    // as found: the config a 2-million-character string (spread into one
    // field per character, it hung); a list alike
    for (const config of ["x".repeat(2_000_000), [1, 2]]) {
      await Deno.writeFile(
        path,
        encodeSafetensors(tensors, {
          metadata: { ...metadata, "tokenlab.config": JSON.stringify(config) },
        }),
      );
      await assertRejects(
        () => loadModel(path),
        WeightsError,
        `config fields, found a ${
          typeof config === "string" ? "string" : "list"
        }`,
      );
    }
    // the file as saved still loads
    await Deno.writeFile(path, encodeSafetensors(tensors, { metadata }));
    (await loadModel(path)).model.dispose();
  } finally {
    m.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fuzz regression: a PNG whose header declares more pixels than maxPixels is an ImageError before decoding", async () => {
  const { crc32 } = await import("node:zlib");
  const { decodeImage } = await import("../lib/data/decode.ts");
  const { ImageError } = await import("../lib/data/image.ts");
  const { encodePng } = await import("../lib/view/png.ts");
  const png = await encodePng(new Uint8Array(40 * 9 * 3).fill(200), 40, 9);
  // as found: the width field set to 16777256 (about 600 MB of pixels for a
  // 400-byte file), the IHDR CRC brought up to date
  const bad = png.slice();
  const v = new DataView(bad.buffer);
  v.setUint32(16, 16777256);
  v.setUint32(29, crc32(bad.subarray(12, 29)) >>> 0);
  const e = await assertRejects(() => decodeImage(bad, "big.png"), ImageError);
  assertStringIncludes(e.message, "big.png");
  assertStringIncludes(e.message, "declares 16777256 x 9 pixels");
  // the bound is an option: the valid 40 x 9 image passes by default, not under 359
  const ok = await decodeImage(png, "ok.png");
  assertEquals([ok.width, ok.height, ok.data[0]], [40, 9, 200]);
  await assertRejects(
    () => decodeImage(png, "ok.png", { maxPixels: 359 }),
    ImageError,
    "declares 40 x 9 pixels",
  );
  assertEquals(
    (await decodeImage(png, "ok.png", { maxPixels: 360 })).width,
    40,
  );
});

Deno.test("readWeights: a file that is neither a zip nor safetensors is named for what it is", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const cases: [string, number[], string][] = [
      [
        "a.png",
        [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a],
        "a PNG image",
      ],
      ["b.jpg", [0xff, 0xd8, 0xff, 0xe0], "a JPEG image"],
      [
        "c.bin",
        [0x13, 0x37, 0, 0, 0, 0, 0, 0, 0x20, 0x20],
        "an unknown format",
      ],
      ["d.safetensors", [], "an empty file"],
    ];
    for (const [name, bytes, kind] of cases) {
      const data = new Uint8Array(bytes.length === 0 ? 0 : 64);
      data.set(bytes);
      await Deno.writeFile(`${dir}/${name}`, data);
      const e = await assertRejects(
        () => readWeights(`${dir}/${name}`),
        WeightsError,
      );
      assertStringIncludes(e.message, `weights file ${dir}/${name}`);
      assertStringIncludes(e.message, kind);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
