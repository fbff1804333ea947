/**
 * An annotator's weights file as a score-map store records it: the file's
 * name (never its folder: stores travel between machines), its size and
 * its SHA-256, so a store can be traced to the exact weights that made it.
 *
 * @module
 */

import { sha256Hex } from "../io/digest.ts";
import type { ScoreMapAnnotatorWeights } from "../labels/store/mod.ts";

/**
 * The name, size and SHA-256 of a weights file (read whole once).
 *
 * @example
 * ```ts
 * import { describeWeightsFile } from "tokenlab/annotators/weights_file.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/w.safetensors`, "abc");
 * console.log(await describeWeightsFile(`${dir}/w.safetensors`));
 * // { file: "w.safetensors", bytes: 3, sha256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" }
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function describeWeightsFile(
  path: string | URL,
): Promise<ScoreMapAnnotatorWeights> {
  const p = path instanceof URL ? decodeURIComponent(path.pathname) : path;
  const bytes = await Deno.readFile(path);
  const file = p.replace(/[\\/]+$/, "").split(/[\\/]/).pop() ?? p;
  return { file, bytes: bytes.length, sha256: await sha256Hex(bytes) };
}
