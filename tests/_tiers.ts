/**
 * The two test tiers, in one place. Every test file under tests/ is in the
 * unit tier unless it is listed here: the integration tier holds the files
 * that start other processes (the command line, Jupyter, Chromium, the
 * bench workers, the fuzzer's children), kill and resume runs, or train and
 * report whole experiments, and the few files whose tests take seconds each
 * (a training epoch, 10k score maps). `deno task test:quick` runs the unit tier and the
 * doc tests; `deno task test` runs both tiers.
 *
 * @module
 */

/** Integration test files (paths from the project root), each with why. */
export const INTEGRATION_TESTS: Readonly<Record<string, string>> = {
  "tests/ablation_reports_test.ts": "runs all nine ablation reports",
  "tests/ablation_test.ts": "trains annotators and ablation arms",
  "tests/annotate_test.ts": "the annotate and labels commands as processes",
  "tests/bench_harness_test.ts": "the bench workers (ours, PyTorch's)",
  "tests/cli_exit_codes_test.ts": "the command line as processes",
  "tests/eval_cli_test.ts": "tokenlab eval --limit as processes",
  "tests/fuzz_test.ts": "the fuzzer and its child processes",
  "tests/labels_cli_test.ts": "the labels command as processes",
  "tests/maps_convert_test.ts": "the maps and train commands as processes",
  "tests/notebook_types_test.ts": "type-checks the notebooks in a process",
  "tests/own_data_notebook_test.ts": "renders own_data (trains its models)",
  "tests/report_browser_test.ts": "Chromium",
  "tests/report_cache_hostile_test.ts": "trains annotators, the command line",
  "tests/report_security_test.ts": "Jupyter and Chromium",
  "tests/report_test.ts": "executes notebooks in Jupyter",
  "tests/resnet_test.ts": "an epoch of the real training engine",
  "tests/score_map_test.ts": "10k maps converted, writers killed and resumed",
  "tests/setup_test.ts": "the setup command and Jupyter's kernelspec",
  "tests/slurm_executor_test.ts":
    "a throwaway Slurm cluster (munged, slurmctld, slurmd) runs arrays",
  "tests/strip_test.ts": "the strip command as processes",
  "tests/sweep_slurm_test.ts": "sweep on a throwaway Slurm cluster, Jupyter",
  "tests/sweep_cli_test.ts":
    "experiments list/run, sweep and report as processes, Jupyter",
  "tests/sweep_failures_test.ts":
    "sweeps with failing jobs, a job killed and resumed, as processes",
  "tests/train_cli_test.ts":
    "tokenlab train as processes (Ctrl-C, recipes, resume)",
  "tests/train_state_test.ts": "checkpoints resumed by the command line",
  "tests/train_test.ts": "training runs killed and resumed",
};
