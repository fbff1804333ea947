/**
 * The weights a path names, for evaluation: a weights file, a run folder or
 * a checkpoint folder.
 *
 * @module
 */

import { exists } from "../_fs.ts";
import {
  type Checkpoint,
  latestCheckpoint,
  readCheckpoint,
} from "./checkpoint.ts";
import { RunFolderError } from "./run_folder_error.ts";

/** One set of weights to evaluate. */
export interface EvaluationTarget {
  /** "model" or "ema". */
  which: "model" | "ema";
  /** The weights file. */
  path: string;
}

/**
 * The weights a path names: a weights file; a run folder (its final
 * `model.safetensors` and `ema.safetensors`, or else its newest checkpoint's);
 * or a checkpoint folder. A checkpoint, named or the newest of a run, is
 * read with {@linkcode readCheckpoint}'s checks first: its `state.json`
 * against `state.sha256`, field by field, and each weights file against its
 * size and SHA-256 there; its targets are the weights its state lists.
 *
 * @throws {RunFolderError} for a folder that is neither, a run without weights yet, or a damaged or edited checkpoint (which file, which field, what to do)
 *
 * @example
 * ```ts
 * import { evaluationTargets, RunFolderError } from "tokenlab";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/state.json`, "{}");
 * try {
 *   await evaluationTargets(dir);
 * } catch (e) {
 *   console.log(e instanceof RunFolderError); // true: not a checkpoint's state
 * }
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function evaluationTargets(
  path: string,
): Promise<EvaluationTarget[]> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch {
    throw new RunFolderError(
      `${path}: no such file or folder; give a weights file, a run folder of tokenlab train, or a checkpoint folder`,
    );
  }
  if (info.isFile) return [{ which: "model", path }];
  const pair = async (dir: string): Promise<EvaluationTarget[]> => {
    const out: EvaluationTarget[] = [{
      which: "model",
      path: `${dir}/model.safetensors`,
    }];
    if (await exists(`${dir}/ema.safetensors`)) {
      out.push({ which: "ema", path: `${dir}/ema.safetensors` });
    }
    return out;
  };
  // The weights a verified state lists, by their fixed names in its folder.
  const listed = (c: Checkpoint): EvaluationTarget[] =>
    (["model", "ema"] as const)
      .filter((which) => `${which}.safetensors` in c.state.files)
      .map((which) => ({ which, path: `${c.path}/${which}.safetensors` }));
  if (await exists(`${path}/state.json`)) {
    return listed(await readCheckpoint(path));
  }
  if (await exists(`${path}/run.json`)) {
    if (await exists(`${path}/model.safetensors`)) return await pair(path);
    const latest = await latestCheckpoint(path);
    if (latest === null) {
      throw new RunFolderError(
        `${path}: the run has written no weights yet (no model.safetensors, no checkpoint); wait for its first checkpoint`,
      );
    }
    return listed(latest);
  }
  throw new RunFolderError(
    `${path}: a folder that is neither a run of tokenlab train (run.json) nor a checkpoint (state.json); give a weights file instead`,
  );
}
