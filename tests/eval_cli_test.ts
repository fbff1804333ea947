/**
 * `tokenlab eval --limit N` as a process: on data sorted by class it keeps
 * a seeded sample spread over the classes (not the first N, which would be
 * one class), says so once, and `--seed` chooses the sample.
 */

import { assert, assertEquals, assertStringIncludes } from "./_assert.ts";
import { ROOT, runCli, tinyVit } from "./_helpers.ts";
import { initBackend, LvVit, saveWeights } from "tokenlab";
import { writeTensorDataset } from "../lib/data/tensor_dataset.ts";

/** 40 images of 4 classes, sorted by class (ten 0s, then ten 1s, ...). */
async function sortedData(path: string): Promise<void> {
  const n = 40;
  const images = new Uint8Array(n * 32 * 32 * 3);
  for (let i = 0; i < images.length; i++) images[i] = (i * 7919) % 256;
  const labels = Array.from({ length: n }, (_, i) => Math.floor(i / 10));
  await writeTensorDataset(path, {
    images,
    height: 32,
    width: 32,
    labels,
    keys: labels.map((l, i) => `class${l}/img_${i}`),
  });
}

Deno.test("eval --limit: a seeded sample over every class of data sorted by class, said once; --seed chooses it", async () => {
  await initBackend({ backend: "cpu" });
  const dir = await Deno.makeTempDir({
    dir: `${ROOT}tests`,
    prefix: ".tmp-eval-cli-",
  });
  const model = LvVit.create(tinyVit(4), { seed: 5 });
  try {
    await saveWeights(model, `${dir}/w.safetensors`);
    await sortedData(`${dir}/data.safetensors`);
    const evalWith = (...extra: string[]) =>
      runCli([
        "eval",
        "--checkpoint",
        `${dir}/w.safetensors`,
        "--data",
        `${dir}/data.safetensors`,
        "--limit",
        "8",
        "--backend",
        "cpu",
        "--json",
        ...extra,
      ]);
    const a = await evalWith();
    assertEquals(a.code, 0, a.stderr);
    const [ra] = JSON.parse(a.stdout) as { images: number; top1: number }[];
    assertEquals(ra.images, 8);
    assertStringIncludes(
      a.stderr,
      "--limit 8: a sample seeded by 42, 8 images spread over 4 of the 4 classes",
    );
    assertEquals(a.stderr.split("--limit 8:").length - 1, 1);

    const same = await evalWith("--seed", "42");
    assertEquals(same.code, 0, same.stderr);
    assertEquals(JSON.parse(same.stdout), JSON.parse(a.stdout));

    const other = await evalWith("--seed", "7");
    assertEquals(other.code, 0, other.stderr);
    assertStringIncludes(other.stderr, "a sample seeded by 7, 8 images");

    const bad = await evalWith("--seed", "-1");
    assertEquals(bad.code, 2, bad.stderr);
    assertStringIncludes(bad.stderr, "--seed");

    const help = await runCli(["eval", "--help"]);
    assert(help.stdout.includes("spread over the classes"), help.stdout);
  } finally {
    model.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});
