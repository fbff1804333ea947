/**
 * Training and evaluation: the official recipe as a config
 * ({@linkcode resolveTrainConfig}), AdamW, the cosine schedule, EMA,
 * resumable checkpoints, the training loop ({@linkcode train}), its regimes
 * ({@linkcode regimeFor}) and evaluation ({@linkcode evaluate}).
 *
 * @module
 */

export * from "./config.ts";
export * from "./resolve_config.ts";
export * from "./config_differences.ts";
export * from "./schedule.ts";
export * from "./optimizer.ts";
export * from "./ema.ts";
export * from "./log.ts";
export * from "./run_folder_error.ts";
export * from "./run_folder.ts";
export * from "./run_log.ts";
export * from "./checkpoint.ts";
export * from "./evaluation_targets.ts";
export * from "./evaluate.ts";
export * from "./training_figure.ts";
export * from "./result_table.ts";
export * from "./live_view.ts";
export * from "./live_display.ts";
export * from "./train_run.ts";
export * from "./engine.ts";
export * from "./regimes/mod.ts";
