/**
 * Sweeps past one machine: job items (an id and a command as argv each)
 * run as one Slurm array job, followed until every task is done or failed,
 * with each failed task's log; resources as typed options or a small JSON
 * file.
 *
 * @module
 */

export * from "./sweep_error.ts";
export * from "./slurm_resources.ts";
export * from "./slurm_state.ts";
export * from "./slurm_task_script.ts";
export * from "./slurm.ts";
export * from "./slurm_progress_text.ts";
