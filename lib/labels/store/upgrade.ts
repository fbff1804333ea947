/**
 * Upgrading a store of format version 1 (no checksums) to the current
 * version, in place, after checking everything version 1 allows.
 *
 * @module
 */

import { STORE_VERSION, storePath } from "./_format.ts";
import { ScoreMapStore } from "./reader.ts";
import type { ScoreMapStoreWriter } from "./writer.ts";

/** Options of {@linkcode upgradeScoreMapStore}. */
export interface UpgradeScoreMapStoreOptions {
  /** Called after each chunk with the maps done and the total. */
  onProgress?: (done: number, total: number) => void;
}

/** What {@linkcode upgradeScoreMapStore} did. */
export interface ScoreMapUpgradeResult {
  /** The store's format version before. */
  from: number;
  /** Its version now ({@linkcode SCORE_MAP_STORE_VERSION}). */
  to: number;
  /** Maps in the store. */
  count: number;
}

/**
 * Rewrites a version-1 store (no checksums) as the current version, in
 * place: first checks everything version 1 allows (every record's values,
 * the key index against `keys.txt`, see {@linkcode ScoreMapStore.verify}),
 * then writes the same keys, maps and labels as a new store at
 * `<path>.partial` and swaps it in when complete (the old store stays until
 * then). A store already at the current version is left as it is.
 *
 * @example
 * ```ts
 * import { ScoreMapStore, upgradeScoreMapStore } from "tokenlab/labels/store/mod.ts";
 * const dir = await Deno.makeTempDir();
 * const w = await ScoreMapStore.create(`${dir}/s`, { k: 1, height: 1, width: 1, numClasses: 2, annotator: "a", preprocessing: { mode: "squash", size: 8 }, scores: "unknown" });
 * await w.append("a", { k: 1, height: 1, width: 1, scores: new Float32Array([1]), ids: new Int32Array([1]) });
 * await w.commit();
 * console.log(await upgradeScoreMapStore(`${dir}/s`)); // { from: 2, to: 2, count: 1 } (already current)
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function upgradeScoreMapStore(
  path: string | URL,
  options: UpgradeScoreMapStoreOptions = {},
): Promise<ScoreMapUpgradeResult> {
  const dir = storePath(path);
  const old = await ScoreMapStore.open(dir, { onWarning: () => {} });
  let writer: ScoreMapStoreWriter | undefined;
  try {
    const h = old.header;
    const from = h.version;
    if (from === STORE_VERSION) {
      return { from, to: STORE_VERSION, count: h.count };
    }
    await old.verify();
    const keys = await old.keys();
    writer = await ScoreMapStore.create(dir, {
      k: h.k,
      height: h.height,
      width: h.width,
      numClasses: h.numClasses,
      annotator: h.annotator,
      preprocessing: h.preprocessing,
      scores: h.scores,
      createdBy: h.createdBy,
      annotatorHead: h.annotatorHead,
      annotatorWeights: h.annotatorWeights,
      classNames: h.classNames,
    }, { overwrite: true, flushEvery: 4096 });
    const n = h.k * h.height * h.width;
    const chunk = 256;
    for (let at = 0; at < h.count; at += chunk) {
      const m = Math.min(chunk, h.count - at);
      const b = await old.readBatch(
        Array.from({ length: m }, (_, j) => at + j),
      );
      for (let j = 0; j < m; j++) {
        await writer.append(keys[at + j], {
          k: h.k,
          height: h.height,
          width: h.width,
          scores: b.scores.subarray(j * n, (j + 1) * n),
          ids: b.ids.subarray(j * n, (j + 1) * n),
        }, b.labels && b.labels[j] >= 0 ? b.labels[j] : undefined);
      }
      options.onProgress?.(at + m, h.count);
    }
    old.close();
    await writer.commit();
    return { from, to: STORE_VERSION, count: h.count };
  } catch (e) {
    await writer?.abort();
    throw e;
  } finally {
    old.close();
  }
}
