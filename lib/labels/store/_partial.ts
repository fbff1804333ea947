/**
 * The folder of a store being written, `<name>.partial`: what an
 * interrupted write holds (read without changing it), how its header
 * differs from the one a new run would write, its progress checkpoints and
 * leftover temporaries, and the final move of the finished folder into
 * place.
 *
 * Internal to `lib/labels/store/`.
 *
 * @module
 */

import { replaceFolder, writeFileAtomic } from "../../io/atomic_write.ts";
import { exists } from "../../_fs.ts";
import { sameJson } from "../_common.ts";
import { ScoreMapError } from "../score_map.ts";
import {
  DATA,
  jsonBytes,
  KEYS,
  parseHeader,
  PARTIAL_INFO,
  PROGRESS,
  readFull,
} from "./_format.ts";
import type { ScoreMapStoreHeader } from "./format.ts";

/** A progress checkpoint: the records (and bytes of each file) safely on disk. */
export interface Progress {
  count: number;
  dataBytes: number;
  keysBytes: number;
}

/** "1 record", "2 records". */
export function plural(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? "" : "s"}`;
}

/** The header fields (but the record layout, which follows from them) where `want` and `have` differ. */
export function headerDifferences(
  want: ScoreMapStoreHeader,
  have: ScoreMapStoreHeader,
): (keyof ScoreMapStoreHeader)[] {
  // Both sides' fields: an optional field (annotatorWeights, ...) present
  // on one side only is a difference too.
  const fields = [...new Set([...Object.keys(want), ...Object.keys(have)])];
  return (fields as (keyof ScoreMapStoreHeader)[])
    .filter((f) =>
      f !== "record" && f !== "checksum" && !sameJson(want[f], have[f])
    );
}

/** `field value, ...` of a header, for messages. */
export function describeFields(
  h: ScoreMapStoreHeader,
  fields: (keyof ScoreMapStoreHeader)[],
): string {
  return fields.map((f) => `${f} ${JSON.stringify(h[f])?.slice(0, 100)}`)
    .join(", ");
}

/**
 * What an interrupted write holds, without changing it: its creation header
 * (undefined when `partial.json` is unreadable) and how many records a
 * resume would keep (-1: unknown).
 */
export async function partialState(
  partial: string,
): Promise<{ header?: ScoreMapStoreHeader; records: number }> {
  let header: ScoreMapStoreHeader;
  try {
    header = parseHeader(
      await Deno.readTextFile(`${partial}/${PARTIAL_INFO}`),
      partial,
      PARTIAL_INFO,
      false,
    );
  } catch {
    return { records: -1 };
  }
  let claimed = 0;
  try {
    const p = JSON.parse(await Deno.readTextFile(`${partial}/${PROGRESS}`));
    claimed = Number.isSafeInteger(p?.count) && p.count >= 0 ? p.count : -1;
  } catch (e) {
    // No progress file: no checkpoint yet (what resume keeps: nothing).
    if (!(e instanceof Deno.errors.NotFound)) claimed = -1;
  }
  const size = async (name: string) => {
    try {
      return (await Deno.stat(`${partial}/${name}`)).size;
    } catch {
      return 0;
    }
  };
  const onDisk = Math.min(
    Math.floor((await size(DATA)) / header.record.bytes),
    (await size(KEYS)) > 0 ? Number.MAX_SAFE_INTEGER : 0,
  );
  if (onDisk === 0) return { header, records: 0 };
  return { header, records: claimed < 0 ? -1 : Math.min(claimed, onDisk) };
}

/** Removes leftover temporary files (`.<name>.tmp-*`) of an interrupted write. */
export async function removeTemporaries(partial: string): Promise<void> {
  for await (const e of Deno.readDir(partial)) {
    if (e.isFile && e.name.startsWith(".")) {
      await Deno.remove(`${partial}/${e.name}`);
    }
  }
}

/** Records a progress checkpoint (atomically). */
export async function writeProgress(
  partial: string,
  p: Progress,
): Promise<void> {
  await writeFileAtomic(`${partial}/${PROGRESS}`, jsonBytes(p), {
    overwrite: true,
  });
}

/** Renames the finished folder to its final name; with `overwrite` the old store goes only after. */
export async function moveIntoPlace(
  partial: string,
  dir: string,
  overwrite: boolean,
): Promise<void> {
  if (!overwrite && await exists(dir)) {
    throw new ScoreMapError(
      `cannot commit the score-map store ${dir}: something already exists there (the finished store stays at ${partial}); remove or move it and call ScoreMapStore.resume(${
        JSON.stringify(dir)
      }, { overwrite: true }) then commit(), or pass overwrite: true when creating`,
    );
  }
  await replaceFolder(partial, dir);
}

/** What a resumed write continues from (see {@linkcode recoverPartial}). */
export interface RecoveredWrite {
  /** The records kept, as a checkpoint. */
  progress: Progress;
  /** Records kept and bytes dropped after them. */
  resumed: { records: number; discardedBytes: number };
  /** The keys of the records kept. */
  keySet: Set<string>;
  /** Whether the records kept have labels (undefined: none kept). */
  labels: boolean | undefined;
}

/**
 * Recovers an interrupted write to resume it: keeps the records of the last
 * checkpoint that are whole in both `maps.bin` (`data`) and `keys.txt`
 * (`keys`), cuts the files after them (a torn record is dropped) and
 * records that as the checkpoint.
 */
export async function recoverPartial(
  partial: string,
  header: ScoreMapStoreHeader,
  data: Deno.FsFile,
  keys: Deno.FsFile,
): Promise<RecoveredWrite> {
  const rb = header.record.bytes;
  await removeTemporaries(partial);
  let claimed = 0;
  try {
    const p = JSON.parse(await Deno.readTextFile(`${partial}/${PROGRESS}`));
    if (Number.isSafeInteger(p?.count) && p.count >= 0) claimed = p.count;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      // A damaged progress file: trust only what the files prove.
      claimed = Number.MAX_SAFE_INTEGER;
    }
  }
  const dataSize = (await data.stat()).size;
  const keysSize = (await keys.stat()).size;
  const keyBytes = new Uint8Array(keysSize);
  await readFull(keys, 0, keyBytes, () => `resuming ${partial}/${KEYS}`);
  // Whole lines of keys.txt, and where each ends.
  const ends: number[] = [];
  for (let i = 0; i < keyBytes.length; i++) {
    if (keyBytes[i] === 0x0a) ends.push(i + 1);
  }
  const count = Math.min(claimed, Math.floor(dataSize / rb), ends.length);
  const keysBytes = count > 0 ? ends[count - 1] : 0;
  const dec = new TextDecoder("utf-8", { fatal: true });
  let text: string;
  try {
    text = dec.decode(keyBytes.subarray(0, keysBytes));
  } catch (e) {
    throw new ScoreMapError(
      `cannot resume ${partial}: ${KEYS} is not valid UTF-8; the partial store is damaged, start over with ScoreMapStore.create(path, header, { overwrite: true })`,
      { cause: e },
    );
  }
  const keySet = new Set<string>();
  let labels: boolean | undefined;
  if (count > 0) {
    for (const k of text.slice(0, -1).split("\n")) keySet.add(k);
    const lb = new Uint8Array(4);
    await readFull(
      data,
      header.record.label.offset,
      lb,
      () => `resuming ${partial}/${DATA}`,
    );
    labels = new DataView(lb.buffer).getInt32(0, true) >= 0;
  }
  const progress = { count, dataBytes: count * rb, keysBytes };
  const resumed = {
    records: count,
    discardedBytes: dataSize - progress.dataBytes + keysSize - keysBytes,
  };
  await data.truncate(progress.dataBytes);
  await keys.truncate(keysBytes);
  await data.syncData();
  await keys.syncData();
  await writeProgress(partial, progress);
  return { progress, resumed, keySet, labels };
}
