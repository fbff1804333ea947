/**
 * A tiny ablation notebook for the sweep tests: 2 arms (plain, oracle token
 * labels) x 2 seeds of a one-block model on 64 synthetic scenes of 16 px,
 * one epoch at the tiny scale (two at smoke); `run` is the runAblation run
 * it passes (the registered `trainArm`, or a closure).
 */

/** Variants of the notebook (none: the plain fixture). */
export interface SweepNotebookOptions {
  /**
   * Adds the parameter `tlBatchSize` (default this value) as the token-label
   * arm's batch size: 0 makes that arm's jobs fail as training starts
   * (trainArm refuses the config); `--param tlBatchSize=32` gives the
   * plain fixture's config (and keys) back.
   */
  tlBatchSize?: number;
}

/** The notebook's JSON text. */
export function notebook(
  run: string,
  options: SweepNotebookOptions = {},
): string {
  const tlBatch = options.tlBatchSize;
  const code = (id: string, source: string, tags: string[] = []) => ({
    cell_type: "code",
    execution_count: null,
    id,
    metadata: tags.length ? { tags } : {},
    outputs: [],
    source: source.split(/(?<=\n)/),
  });
  return JSON.stringify(
    {
      cells: [
        code(
          "params",
          'const scale: "tiny" | "smoke" = "smoke";\n' +
            (tlBatch === undefined ? "" : `const tlBatchSize = ${tlBatch};\n`),
          ["parameters"],
        ),
        code(
          "ablation",
          `import { runAblation, trainArm, type TrainArmSpec } from "tokenlab";
const data = "synthetic:size=16,count=64,classes=3,seed=1";
const train = {
  data, valData: "synthetic:size=16,count=32,classes=3,seed=1,split=val",
  model: "lvvit_xs32", modelOverrides: { embedDim: 16, depth: 1, numHeads: 1, stemChannels: 8 },
  epochs: scale === "tiny" ? 1 : 2, batchSize: 32, warmupEpochs: 0, cooldownEpochs: 0, logEvery: 1,
};
const ab = await runAblation<TrainArmSpec>({
  name: "sweep-test", baseline: "plain", seeds: [1, 2],
  arms: [
    { key: "plain", label: "plain", config: { train } },
    { key: "tl", label: "token labels", config: { train: { ...train, tokenLabel: true${
            tlBatch === undefined ? "" : ", batchSize: tlBatchSize"
          } }, labels: { kind: "oracle", mapSize: 4, k: 3 } } },
  ],
  run: ${run},
  setting: { dataset: "synthetic", real: false, model: "tiny", epochs: 1, scale },
});
`,
        ),
        code("table", "ab.table();\n"),
        code(
          "sources",
          'Deno.jupyter.md`sources: ${ab.outcomes.flatMap((o) => [...o.sources.values()].map((r) => r.source)).join(" ")}`;\n',
        ),
      ],
      metadata: {
        kernelspec: {
          display_name: "Deno",
          language: "typescript",
          name: "deno",
        },
      },
      nbformat: 4,
      nbformat_minor: 5,
    },
    null,
    1,
  ) + "\n";
}

/**
 * A rendered report's Markdown without its timing and provenance lines
 * (sources, seconds, dates, commit, machine, versions, backend): what a
 * report rendered from the cache and one computed directly share.
 */
export async function comparableReport(md: string): Promise<string> {
  const text = await Deno.readTextFile(md);
  return text.split("\n").filter((l) =>
    !/source|seconds|\d+(\.\d+)? s\b|\d{4}-\d\d-\d\d|[Pp]rovenance|commit|machine|Deno |tfjs|took|ran in|backend/
      .test(l)
  ).join("\n");
}
