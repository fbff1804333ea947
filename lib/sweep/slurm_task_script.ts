/**
 * The batch script every Slurm array task runs, and the data it reads.
 * The script is fixed text: the run folder comes as its first argument and
 * each task's command as a NUL-separated argv file, so nothing of an item
 * is ever interpolated into shell code.
 *
 * @module
 */

/**
 * The batch script: task N reads `RUN_DIR/argv/N` (arguments separated and
 * ended by NUL), runs it as argv, and records its exit code in
 * `RUN_DIR/exit/N` (written to a temporary file, then renamed). A task
 * that is cancelled or killed records nothing; Slurm's state says why.
 *
 * @example
 * ```ts
 * import { SLURM_TASK_SCRIPT } from "tokenlab/sweep/mod.ts";
 * console.log(SLURM_TASK_SCRIPT.startsWith("#!/bin/bash\n")); // true
 * ```
 */
export const SLURM_TASK_SCRIPT: string = `#!/bin/bash
# tokenlab sweep task (lib/sweep/slurm_task_script.ts): runs the command of
# array task $SLURM_ARRAY_TASK_ID, read as data from RUN_DIR/argv/INDEX
# (NUL-separated arguments), and records its exit code in RUN_DIR/exit/INDEX.
# The run folder comes as $1; nothing of a task is interpolated into code.
set -u
run_dir=$1
task=\${SLURM_ARRAY_TASK_ID-}
case $task in
  '' | *[!0-9]*)
    printf 'tokenlab sweep: expected SLURM_ARRAY_TASK_ID to be a task index, found "%s"; submit with --array\\n' "$task" >&2
    exit 2 ;;
esac
argv_file=$run_dir/argv/$task
if ! mapfile -d '' -t argv < "$argv_file" || [ "\${#argv[@]}" -eq 0 ]; then
  printf 'tokenlab sweep: cannot read the command of task %s from %s\\n' "$task" "$argv_file" >&2
  exit 2
fi
printf 'tokenlab sweep: task %s of job %s on %s at %s\\n' "$task" "\${SLURM_ARRAY_JOB_ID-?}" "$(hostname)" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >&2
# Through env: argv[0] is always a program, never a shell builtin or function.
env -- "\${argv[@]}"
code=$?
tmp=$run_dir/exit/.$task.$$
printf '%s\\n' "$code" > "$tmp" && mv -f "$tmp" "$run_dir/exit/$task"
exit "$code"
`;

/**
 * A command as the bytes of its argv file: each argument followed by a
 * NUL (arguments cannot hold NUL, so any other byte, newlines and quotes
 * included, passes through as it is).
 *
 * @example
 * ```ts
 * import { encodeArgv } from "tokenlab/sweep/mod.ts";
 * console.log(encodeArgv(["echo", "a b", ""]).length); // 10
 * ```
 */
export function encodeArgv(argv: readonly string[]): Uint8Array {
  return new TextEncoder().encode(argv.map((a) => `${a}\0`).join(""));
}
