/**
 * How hard the synthetic scenes are, measured (not a `deno bench` file: run
 * it as a script).
 *
 * 1. Crops: RandomResizedCrop with the official ranges (scale 0.08-1,
 *    ratio 3/4-4/3, area uniform in scale x image area, log-uniform ratio,
 *    10 tries, then the centre-crop fallback), and, from the exact class
 *    map, how often the image label covers less than half of the crop, is
 *    not the crop's majority object class, is absent from it, or the crop
 *    is mostly background. At sizes 32 and 64 with the default options.
 * 2. With `--train [seconds]` (default 150): a small ViT (`vit_xs32`, or
 *    `--model lvvit_xs32`) trained from scratch with Adam on 2000 training
 *    scenes at 32 px for that long on the CPU (wasm backend), then top-1 on
 *    500 validation scenes (a disjoint split); chance is 1 / numClasses.
 *
 * ```sh
 * npx -y deno@2.9.6 run -A tests/bench/synthetic_difficulty.ts
 * npx -y deno@2.9.6 run -A tests/bench/synthetic_difficulty.ts --train 150
 * ```
 *
 * Options: `--crops N` crops per image (default 4), `--images N` images
 * per size (default 2000), `--train-count N`, `--val-count N`, `--batch N`,
 * `--lr X`, `--model NAME`, `--backend wasm|cpu|webgpu`, and any synthetic
 * option as `--opt key=value` (JSON value), e.g. `--opt maxObjects=3`.
 */

import {
  createModel,
  initBackend,
  Rng,
  type SyntheticOptions,
  SyntheticScenes,
  tf,
} from "tokenlab";

const args = Deno.args;
function flag(name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  if (i < 0) return undefined;
  const v = args[i + 1];
  return v === undefined || v.startsWith("--") ? "" : v;
}
const extra: SyntheticOptions = {};
args.forEach((a, i) => {
  if (a === "--opt") {
    const [k, v] = args[i + 1].split("=");
    (extra as Record<string, unknown>)[k] = JSON.parse(v);
  }
});

/** Python's round (half to even), as torchvision rounds crop sides. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** RandomResizedCrop's box: [top, left, height, width] in pixels. */
function randomResizedCrop(
  rng: Rng,
  H: number,
  W: number,
  scale: [number, number] = [0.08, 1],
  ratio: [number, number] = [3 / 4, 4 / 3],
): [number, number, number, number] {
  const area = H * W;
  const l0 = Math.log(ratio[0]), l1 = Math.log(ratio[1]);
  for (let t = 0; t < 10; t++) {
    const target = area * (scale[0] + rng.float() * (scale[1] - scale[0]));
    const aspect = Math.exp(l0 + rng.float() * (l1 - l0));
    const w = roundHalfEven(Math.sqrt(target * aspect));
    const h = roundHalfEven(Math.sqrt(target / aspect));
    if (w > 0 && w <= W && h > 0 && h <= H) {
      return [rng.int(H - h + 1), rng.int(W - w + 1), h, w];
    }
  }
  const r = W / H;
  let w = W, h = H;
  if (r < ratio[0]) h = roundHalfEven(w / ratio[0]);
  else if (r > ratio[1]) w = roundHalfEven(h * ratio[1]);
  return [Math.floor((H - h) / 2), Math.floor((W - w) / 2), h, w];
}

function cropStats(size: number, images: number, crops: number): void {
  const ds = new SyntheticScenes({ ...extra, size, count: images, seed: 11 });
  const K = ds.options.numClasses;
  const rng = new Rng(2024);
  let n = 0, belowHalf = 0, notMajority = 0, absent = 0, mostlyBg = 0;
  let fullBelowHalf = 0, objects = 0;
  const counts = new Int32Array(K);
  for (let i = 0; i < images; i++) {
    const s = ds.render(i);
    const map = s.classMap.data;
    objects += s.objects.length;
    let labelPx = 0;
    for (const c of map) if (c === s.label) labelPx++;
    if (labelPx < map.length / 2) fullBelowHalf++;
    for (let j = 0; j < crops; j++) {
      const [top, left, h, w] = randomResizedCrop(rng, size, size);
      counts.fill(0);
      let bg = 0;
      for (let y = top; y < top + h; y++) {
        for (let x = left; x < left + w; x++) {
          const c = map[y * size + x];
          if (c < 0) bg++;
          else counts[c]++;
        }
      }
      let best = -1;
      for (let c = 0; c < K; c++) {
        if (best < 0 || counts[c] > counts[best]) best = c;
      }
      const own = counts[s.label];
      n++;
      if (own < (h * w) / 2) belowHalf++;
      if (best !== s.label || counts[best] === 0) notMajority++;
      if (own === 0) absent++;
      if (bg > (h * w) / 2) mostlyBg++;
    }
  }
  const pct = (v: number, of = n) => `${(100 * v / of).toFixed(1)} %`;
  console.log(
    `size ${size}: ${images} images x ${crops} RandomResizedCrop boxes, ${
      (objects / images).toFixed(2)
    } objects per image`,
  );
  console.log(
    `  whole image: label class covers < 1/2 of it in ${
      pct(fullBelowHalf, images)
    } of images`,
  );
  console.log(`  crop: label covers < 1/2 of the crop  ${pct(belowHalf)}`);
  console.log(
    `  crop: label not the majority object class  ${pct(notMajority)}`,
  );
  console.log(`  crop: label absent from the crop  ${pct(absent)}`);
  console.log(`  crop: mostly background (> 1/2)  ${pct(mostlyBg)}`);
}

async function train(seconds: number): Promise<void> {
  const backend = flag("backend") || "wasm";
  await initBackend({ backend: backend as "wasm" | "cpu" | "webgpu" });
  const modelName = flag("model") || "vit_xs32";
  const nTrain = Number(flag("train-count") || 2000);
  const nVal = Number(flag("val-count") || 500);
  const batch = Number(flag("batch") || 64);
  const lr = Number(flag("lr") || 1e-3);
  const opts: SyntheticOptions = { ...extra, size: 32, seed: 5 };
  const trainSet = new SyntheticScenes({ ...opts, count: nTrain });
  const valSet = new SyntheticScenes({ ...opts, count: nVal, split: "val" });
  const K = trainSet.options.numClasses;
  const t0 = performance.now();
  const xTrain = await trainSet.read(0, nTrain);
  const xVal = await valSet.read(0, nVal);
  const yTrain = Int32Array.from(
    { length: nTrain },
    (_, i) => trainSet.label(i),
  );
  const yVal = Int32Array.from({ length: nVal }, (_, i) => valSet.label(i));
  console.log(
    `rendered ${nTrain} + ${nVal} scenes in ${
      ((performance.now() - t0) / 1000).toFixed(2)
    } s; majority-class baseline on val ${
      (100 * Math.max(...Array.from({ length: K }, (_, c) =>
        yVal.filter((y) =>
          y === c
        ).length)) /
        nVal).toFixed(1)
    } %`,
  );
  const model = createModel(modelName, { numClasses: K }, { seed: 1 });
  const opt = tf.train.adam(lr);
  const rng = new Rng(9);
  const px = 32 * 32 * 3;
  const normalise = (x: tf.Tensor) => tf.div(tf.sub(x, 0.5), 0.25);
  const order = Array.from({ length: nTrain }, (_, i) => i);
  let step = 0, epoch = 0, seen = 0, lastLoss = NaN;
  const start = performance.now();
  while ((performance.now() - start) / 1000 < seconds) {
    // Shuffle (Fisher-Yates) each epoch.
    for (let i = nTrain - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [order[i], order[j]] = [order[j], order[i]];
    }
    for (let b = 0; b + batch <= nTrain; b += batch) {
      if ((performance.now() - start) / 1000 >= seconds) break;
      const xb = new Float32Array(batch * px);
      const yb = new Int32Array(batch);
      for (let j = 0; j < batch; j++) {
        const i = order[b + j];
        const flip = rng.float() < 0.5;
        for (let y = 0; y < 32; y++) {
          for (let x = 0; x < 32; x++) {
            const sx = flip ? 31 - x : x;
            for (let c = 0; c < 3; c++) {
              xb[j * px + (y * 32 + x) * 3 + c] =
                xTrain[i * px + (y * 32 + sx) * 3 + c];
            }
          }
        }
        yb[j] = yTrain[i];
      }
      const x = tf.tidy(() => normalise(tf.tensor4d(xb, [batch, 32, 32, 3])));
      const y = tf.oneHot(tf.tensor1d(yb, "int32"), K);
      const loss = opt.minimize(
        () => {
          const out = model.forwardTrain(x, { rng });
          return tf.losses.softmaxCrossEntropy(y, out.cls) as tf.Scalar;
        },
        true,
        model.trainableVariables(),
      );
      if (step % 20 === 0) lastLoss = (await loss!.data())[0];
      tf.dispose([x, y, loss!]);
      step++;
      seen += batch;
    }
    epoch++;
  }
  const trainSeconds = (performance.now() - start) / 1000;
  let correct = 0, trainCorrect = 0;
  const evalSet = async (
    xs: Float32Array,
    ys: Int32Array,
    n: number,
  ): Promise<number> => {
    let ok = 0;
    for (let b = 0; b < n; b += 100) {
      const m = Math.min(100, n - b);
      const x = tf.tidy(() =>
        normalise(
          tf.tensor4d(xs.subarray(b * px, (b + m) * px), [m, 32, 32, 3]),
        )
      );
      const pred = tf.tidy(() => tf.argMax(model.predict(x), 1));
      const p = await pred.data();
      for (let j = 0; j < m; j++) if (p[j] === ys[b + j]) ok++;
      tf.dispose([x, pred]);
    }
    return ok;
  };
  correct = await evalSet(xVal, yVal, nVal);
  trainCorrect = await evalSet(xTrain, yTrain, Math.min(nTrain, 500));
  console.log(
    `${modelName} on ${tf.getBackend()}: ${step} steps (batch ${batch}, ${
      (seen / nTrain).toFixed(1)
    } epochs) in ${trainSeconds.toFixed(0)} s, last loss ${
      lastLoss.toFixed(3)
    }`,
  );
  console.log(
    `  top-1 val ${
      (100 * correct / nVal).toFixed(1)
    } % (${correct}/${nVal}), train (first 500) ${
      (100 * trainCorrect / Math.min(nTrain, 500)).toFixed(1)
    } %, chance ${(100 / K).toFixed(1)} %`,
  );
  void epoch;
  opt.dispose();
  model.dispose();
}

const crops = Number(flag("crops") || 4);
const images = Number(flag("images") || 2000);
if (flag("train") === undefined || flag("crops") !== undefined) {
  for (const size of [32, 64]) cropStats(size, images, crops);
}
if (flag("train") !== undefined) await train(Number(flag("train") || 150));
