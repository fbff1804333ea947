/**
 * An experiment's config key: the first 16 hex digits of the SHA-256 of its
 * name and its canonical config. The results cache names an entry by it
 * (with the code version), and `tokenlab experiments run` takes it.
 *
 * @module
 */

import { sha256Hex } from "../io/digest.ts";
import { canonicalJson } from "./canonical_json.ts";

/** An experiment's canonical config and its key. */
export interface ExperimentKey {
  /** The canonical JSON of the config. */
  configText: string;
  /** 16 lowercase hex digits. */
  configKey: string;
}

/**
 * The config key of experiment `name` with `config`.
 *
 * @throws {ExperimentError} for a config that is not JSON data
 *
 * @example
 * ```ts
 * import { experimentKey } from "tokenlab/report/experiment_key.ts";
 * const { configKey } = await experimentKey("toy", { seed: 1 });
 * console.log(configKey.length); // 16
 * ```
 */
export async function experimentKey(
  name: string,
  config: unknown,
): Promise<ExperimentKey> {
  const configText = canonicalJson(config, `the config of experiment ${name}`);
  const configKey = (await sha256Hex(`${name}\n${configText}`)).slice(0, 16);
  return { configText, configKey };
}
