/**
 * What notebooks use to build reports: result tables (the paper's value
 * beside ours, mean ± std over seeds), plotly figures, model summaries, the
 * results cache, and the provenance footer and headline.
 *
 * The report runner itself (executing notebooks into HTML and Markdown) is
 * the `tokenlab report` command, in `lib/report/run.ts`.
 *
 * @module
 */

export * from "./cache.ts";
export * from "./plot.ts";
export * from "./provenance.ts";
export * from "./summary.ts";
export * from "./table.ts";
export * from "./ablation.ts";
export * from "./paired.ts";
export * from "./train_arm.ts";
export * from "./verdict.ts";
export * from "./protocol.ts";
