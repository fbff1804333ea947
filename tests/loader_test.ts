import {
  assert,
  assertEquals,
  assertRejects,
  assertThrows,
} from "./_assert.ts";
import { DataLoader, LoaderError } from "../lib/data/loader.ts";
import {
  mapToImageFrame,
  PipelineError,
  type PipelineSpec,
  SamplePipeline,
} from "../lib/data/pipeline.ts";
import { DataSpecError, parseDataSpec } from "../lib/data/datasets.ts";
import { type ImageDataset, ImageError } from "../lib/data/image.ts";
import { showBatch } from "../lib/data/display.ts";
import { SyntheticScenes } from "../lib/data/synthetic_scenes.ts";
import { oracleAnnotate } from "../lib/annotators/oracle.ts";
import { ScoreMapError } from "../lib/labels/score_map.ts";

const synthetic = (count: number): PipelineSpec["data"] => ({
  kind: "synthetic",
  options: { size: 32, count, seed: 5 },
});

async function collect(loader: DataLoader, epoch: number) {
  const out = [];
  for await (const b of loader.epoch(epoch)) out.push(b);
  return out;
}

Deno.test("loader: the same seed gives the same batches, with or without workers", async () => {
  const spec: PipelineSpec = {
    data: synthetic(20),
    transform: { kind: "train", config: { size: 32 } },
  };
  const a = await DataLoader.open(spec, { batchSize: 6, seed: 3 });
  const b = await DataLoader.open(spec, {
    batchSize: 6,
    seed: 3,
    workers: 2,
    prefetch: 3,
  });
  try {
    const ea = await collect(a, 1), eb = await collect(b, 1);
    assertEquals(ea.length, 4);
    assertEquals(ea.map((x) => x.size), [6, 6, 6, 2]);
    for (let s = 0; s < ea.length; s++) {
      assertEquals(Array.from(ea[s].indices), Array.from(eb[s].indices));
      assertEquals(ea[s].step, s);
      assert(ea[s].boxes !== undefined, "a cropping transform returns boxes");
      assertEquals(Array.from(ea[s].boxes!), Array.from(eb[s].boxes!));
      let same = true;
      for (let i = 0; i < ea[s].images.length; i++) {
        if (ea[s].images[i] !== eb[s].images[i]) same = false;
      }
      assert(same, `batch ${s}: workers changed the pixels`);
    }
    // Every image once per epoch; another epoch, another order.
    const seen = ea.flatMap((x) => Array.from(x.indices)).sort((p, q) => p - q);
    assertEquals(seen, Array.from({ length: 20 }, (_, i) => i));
    const e2 = await collect(a, 2);
    assert(
      e2.some((x, s) => x.indices.join() !== ea[s].indices.join()),
      "epochs 1 and 2 have the same order",
    );
    // Resuming mid-epoch serves the same remaining batches.
    const rest = [];
    for await (const x of a.epoch(1, 2)) rest.push(x);
    assertEquals(rest.map((x) => x.indices.join()), [
      ea[2].indices.join(),
      ea[3].indices.join(),
    ]);
  } finally {
    a.close();
    b.close();
  }
});

Deno.test("loader: unshuffled, dropLast and limit", async () => {
  const loader = await DataLoader.open({
    data: synthetic(10),
    transform: { kind: "none" },
  }, { batchSize: 4, shuffle: false, dropLast: true, limit: 9 });
  try {
    assertEquals(loader.stepsPerEpoch, 2);
    const e = await collect(loader, 0);
    assertEquals(e.map((x) => Array.from(x.indices)), [[0, 1, 2, 3], [
      4,
      5,
      6,
      7,
    ]]);
    assertEquals(e[0].height, 32);
    assertEquals(e[0].boxes, undefined);
  } finally {
    loader.close();
  }
});

Deno.test("loader: score maps travel with their images and the batch shows itself", async () => {
  const dir = await Deno.makeTempDir({ dir: "tests", prefix: ".tmp-loader-" });
  try {
    const scenes = new SyntheticScenes({ size: 32, count: 8, seed: 5 });
    await oracleAnnotate(scenes, `${dir}/maps`, { mapSize: 8, k: 3 });
    const loader = await DataLoader.open({
      data: synthetic(8),
      maps: `${dir}/maps`,
      transform: { kind: "train", config: { size: 32 } },
    }, { batchSize: 4, seed: 1, workers: 1 });
    try {
      const [first] = await collect(loader, 0);
      assertEquals(first.maps?.length, 4);
      assertEquals(first.maps![0].height, 8);
      const view = await showBatch(first);
      const bundle = (view as unknown as {
        [k: symbol]: () => Record<string, string>;
      })[Symbol.for("Jupyter.display")]();
      assert(bundle["text/html"].startsWith("<img"));
      assert(bundle["image/svg+xml"].includes("data:image/png;base64,"));
      assertEquals(view.tiles.length, 4);
      assert(view.tiles[0].overlayPng !== undefined);
      assertEquals(view.tiles[0].tokenLabels?.length, 4);
      assert(view.toString().includes("tokens:"));
    } finally {
      loader.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loader: a store without the dataset's keys is refused up front", async () => {
  const dir = await Deno.makeTempDir({ dir: "tests", prefix: ".tmp-loader-" });
  try {
    const other = new SyntheticScenes({ size: 32, count: 3, seed: 99 });
    await oracleAnnotate(other, `${dir}/maps`, { mapSize: 4, k: 2 });
    await assertRejects(
      () =>
        SamplePipeline.open({
          data: synthetic(3),
          maps: `${dir}/maps`,
          transform: { kind: "none" },
        }),
      ScoreMapError,
      "lacks 3 of the dataset's 3 images",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

function flakyDataset(bad: Set<number>): ImageDataset {
  return {
    size: 6,
    description: "flaky",
    classes: ["a", "b"],
    key: (i) => `a/${i}`,
    label: (i) => i % 2,
    image: (i) =>
      bad.has(i)
        ? Promise.reject(
          new ImageError(`img_${i}.jpg: truncated JPEG`, `img_${i}.jpg`),
        )
        : Promise.resolve({
          width: 4,
          height: 4,
          data: new Uint8Array(48).fill(i),
        }),
  };
}

Deno.test("loader: a bad image stops naming the file, or is skipped and counted", async () => {
  const stop = DataLoader.fromPipeline(
    await SamplePipeline.fromDataset(flakyDataset(new Set([4])), {
      transform: { kind: "none" },
    }),
    { batchSize: 3, shuffle: false },
  );
  await assertRejects(() => collect(stop, 0), LoaderError, "img_4.jpg");
  stop.close();
  const skip = DataLoader.fromPipeline(
    await SamplePipeline.fromDataset(flakyDataset(new Set([1, 4])), {
      transform: { kind: "none" },
      onBadImage: "skip",
    }),
    { batchSize: 3, shuffle: false },
  );
  const warn = console.warn;
  const warnings: string[] = [];
  console.warn = (m: string) => warnings.push(m);
  try {
    const e = await collect(skip, 0);
    assertEquals(e.map((x) => Array.from(x.indices)), [[0, 2], [3, 5]]);
    assertEquals(e[0].skipped, ["img_1.jpg"]);
    assertEquals(skip.skippedCount, 2);
    assert(warnings.some((w) => w.includes("img_4.jpg")));
  } finally {
    console.warn = warn;
    skip.close();
  }
});

Deno.test("loader: bad options and specs say what was expected", async () => {
  const pipeline = await SamplePipeline.fromDataset(flakyDataset(new Set()), {
    transform: { kind: "none" },
  });
  assertThrows(
    () => DataLoader.fromPipeline(pipeline, { batchSize: 0 }),
    LoaderError,
    "batchSize to be an integer >= 1",
  );
  assertThrows(
    () => DataLoader.fromPipeline(pipeline, { batchSize: 2, workers: 1 }),
    LoaderError,
    "DataLoader.open(spec",
  );
  await assertRejects(
    () =>
      SamplePipeline.fromDataset(flakyDataset(new Set()), {
        transform: { kind: "none" },
        mapFrame: "stretched" as "official",
      }),
    PipelineError,
    'mapFrame must be "image" or "official", found "stretched"',
  );
  await assertRejects(
    () => parseDataSpec("tests/.no-such-folder"),
    DataSpecError,
    "no such file or folder",
  );
  await assertRejects(
    () => parseDataSpec("synthetic:size"),
    DataSpecError,
    "expected key=value",
  );
  const s = await parseDataSpec("synthetic:size=64,classes=12,count=30", {
    split: "val",
  });
  assertEquals(s, {
    kind: "synthetic",
    options: { split: "val", size: 64, numClasses: 12, count: 30 },
  });
});

Deno.test("mapToImageFrame: a centre-crop map of a 500x375 image lands on the central square", () => {
  const k = 2, n = 14;
  const map = {
    k,
    height: n,
    width: n,
    scores: new Float32Array(k * n * n).map((_, i) => 1 + (i % (n * n))),
    ids: new Int32Array(k * n * n).map((_, i) => i % (n * n)),
  };
  const full = mapToImageFrame(
    map,
    { mode: "resize-center-crop", size: 224 },
    500,
    375,
  );
  // The annotator saw the image resized to 299 x 224 and its central 224
  // columns from 37: in image pixels, columns from 37 * 500/299, cells
  // 16 * 500/299 px wide and 375/14 px high: 19 columns, 14 rows.
  assertEquals([full.height, full.width], [14, 19]);
  const sx = 500 / 299, x0 = 37 * sx, cw = 16 * sx;
  for (let r = 0; r < 14; r++) {
    for (let c = 0; c < 19; c++) {
      const x = ((c + 0.5) * 500) / 19;
      const u = Math.floor((x - x0) / cw);
      const at = r * 19 + c;
      if (u < 0 || u >= 14) {
        assertEquals(full.scores[at], 0, `cell ${r},${c} is outside`);
        assertEquals(full.ids[at], r * 14 + Math.min(13, Math.max(0, u)));
      } else {
        assertEquals(full.ids[at], r * 14 + u);
        assertEquals(full.scores[at], 1 + r * 14 + u);
      }
    }
  }
  // Squashed maps and maps that cover the whole image are left alone.
  assert(mapToImageFrame(map, { mode: "squash", size: 224 }, 500, 375) === map);
  assert(
    mapToImageFrame(
      map,
      { mode: "resize-center-crop", size: 224 },
      300,
      300,
    ) ===
      map,
  );
});
