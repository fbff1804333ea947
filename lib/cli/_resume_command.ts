/**
 * The command line that continues a `tokenlab train` run: the same
 * arguments plus `--resume` (without `--overwrite`, which would start it
 * over), printed when a run is interrupted, shell-quoted so that it can be
 * pasted as it is.
 *
 * @module
 */

/** `text` quoted for a POSIX shell when it needs it. */
export function shellQuote(text: string): string {
  return /^[A-Za-z0-9_\/.,:=@%+-]+$/.test(text)
    ? text
    : `'${text.replaceAll("'", `'"'"'`)}'`;
}

/**
 * The arguments that resume a run started with `args` (the arguments after
 * `train`): `--overwrite` dropped, `--resume` added once.
 *
 * @example
 * ```ts
 * import { resumeArgs } from "tokenlab/cli/_resume_command.ts";
 * console.log(resumeArgs(["--data", "mnist", "--output", "runs/a", "--overwrite"]));
 * // [ "--data", "mnist", "--output", "runs/a", "--resume" ]
 * ```
 */
export function resumeArgs(args: readonly string[]): string[] {
  const out: string[] = [];
  let resume = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--") {
      out.push(...args.slice(i));
      break;
    }
    if (a === "--overwrite") continue;
    if (a === "--resume") resume = true;
    out.push(a);
  }
  if (!resume) out.push("--resume");
  return out;
}

/**
 * The whole command line that resumes: how this process was started (the
 * Deno executable, `run -A`, the entry script as given) and
 * {@linkcode resumeArgs}.
 */
export function resumeCommandLine(args: readonly string[]): string {
  const main = new URL("./main.ts", import.meta.url);
  let script = main.protocol === "file:"
    ? decodeURIComponent(main.pathname)
    : main.href;
  const cwd = Deno.cwd();
  if (script.startsWith(`${cwd}/`)) script = script.slice(cwd.length + 1);
  return [Deno.execPath(), "run", "-A", script, "train", ...resumeArgs(args)]
    .map(shellQuote).join(" ");
}
