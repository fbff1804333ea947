/**
 * Plain labels against token labels + MixToken, over several seeds, at the
 * scale of notebooks/05_training.ipynb: a 2-block, 64-wide LV-ViT on 1024
 * synthetic 32 px scenes (10 classes, oracle score maps of 8 x 8 cells),
 * 4 epochs at batch 64, lr 2e-3 per step, top-1 on 512 validation scenes.
 * A script, not a `deno bench` file (about 100 s a seed on one wasm thread):
 *
 *     npx -y deno@2.9.6 run -A tests/bench/token_label_seeds.ts [seed ...]
 *
 * Default seeds 3 4 5 (3 is the notebook's).
 */

import { oracleAnnotate, SyntheticScenes, train } from "../../lib/mod.ts";

const seeds = Deno.args.length ? Deno.args.map(Number) : [3, 4, 5];
const rows: string[] = [];
for (const seed of seeds) {
  const work = await Deno.makeTempDir({ prefix: "tokenlab-seeds-" });
  try {
    const data = `synthetic:size=32,count=1024,classes=10,seed=${seed}`;
    const scenes = new SyntheticScenes({
      size: 32,
      count: 1024,
      numClasses: 10,
      seed,
    });
    await oracleAnnotate(scenes, `${work}/maps`, { mapSize: 8, k: 5 });
    const common = {
      model: "lvvit_xs32",
      modelOverrides: { embedDim: 64, depth: 2, numHeads: 2, stemChannels: 16 },
      data,
      valData: `synthetic:size=32,count=512,classes=10,seed=${seed},split=val`,
      batchSize: 64,
      lr: 2e-3,
      epochs: 4,
      warmupEpochs: 1,
      cooldownEpochs: 0,
      schedUpdate: "step" as const,
      logEvery: 4,
      modelEma: true,
      modelEmaDecay: 0.98,
      seed,
      backend: "wasm" as const,
    };
    const plain = await train(common, { live: false });
    const labelled = await train(
      { ...common, tokenLabel: true, tokenLabelData: `${work}/maps` },
      { live: false },
    );
    const a = plain.result.model!.top1, b = labelled.result.model!.top1;
    rows.push(
      `seed ${seed}: plain ${a.toFixed(2)}%  token labels + MixToken ${
        b.toFixed(2)
      }%  (${(b - a >= 0 ? "+" : "") + (b - a).toFixed(2)})`,
    );
    console.log(rows.at(-1));
    plain.dispose();
    labelled.dispose();
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}
