/**
 * One record of `maps.bin` (format version 2; version 1 lacks the checksum
 * and key hash): encoded from a map when appended, and decoded back into
 * float32 scores and int32 ids when read, with the checks of its values
 * against the header. Reads group the records of consecutive indices.
 *
 * Internal to `lib/labels/store/`.
 *
 * @module
 */

import { float16BitsToFloat32 } from "../../io/raw_tensor.ts";
import { cellOf } from "../_common.ts";
import { keyHash, recordChecksum, setKeyHash } from "./_checksums.ts";
import type { ScoreMapRecordLayout, ScoreMapStoreHeader } from "./format.ts";

/**
 * The bytes of record `index` (version 2): `label` (-1 for none), the
 * float16 `bits` of the scores, the ids, the key's hash and last the
 * checksum over all of it.
 */
export function encodeRecord(
  layout: ScoreMapRecordLayout,
  key: string,
  bits: Uint16Array,
  ids: Int32Array,
  label: number,
  index: number,
): Uint8Array {
  const rec = new Uint8Array(layout.bytes);
  const v = new DataView(rec.buffer);
  v.setInt32(layout.label.offset, label, true);
  rec.set(new Uint8Array(bits.buffer), layout.scores.offset);
  const n = ids.length;
  if (layout.ids.dtype === "uint16") {
    new Uint16Array(rec.buffer, layout.ids.offset, n).set(ids);
  } else {
    new Int32Array(rec.buffer, layout.ids.offset, n).set(ids);
  }
  setKeyHash(
    v,
    layout.keyHash!.offset,
    keyHash(new TextEncoder().encode(key)),
  );
  v.setUint32(0, recordChecksum(rec, index), true);
  return rec;
}

let halfTable: Float32Array | undefined;

/** Every float16 bit pattern as a float32 (made on first use). */
function half(): Float32Array {
  if (!halfTable) {
    const all = new Uint16Array(65536);
    for (let i = 0; i < 65536; i++) all[i] = i;
    halfTable = float16BitsToFloat32(all);
  }
  return halfTable;
}

/**
 * Decodes the record at byte `base` of a read buffer (seen as `u16` and
 * `i32`) into `scores` and `ids` from element `out` (`n` values each);
 * returns its label.
 */
export function decodeRecord(
  layout: ScoreMapRecordLayout,
  u16: Uint16Array,
  i32: Int32Array,
  base: number,
  scores: Float32Array,
  ids: Int32Array,
  out: number,
  n: number,
): number {
  const table = half();
  const s0 = (base + layout.scores.offset) >> 1;
  for (let e = 0; e < n; e++) scores[out + e] = table[u16[s0 + e]];
  if (layout.ids.dtype === "uint16") {
    const i0 = (base + layout.ids.offset) >> 1;
    for (let e = 0; e < n; e++) ids[out + e] = u16[i0 + e];
  } else {
    const i0 = (base + layout.ids.offset) >> 2;
    for (let e = 0; e < n; e++) ids[out + e] = i32[i0 + e];
  }
  return i32[(base + layout.label.offset) >> 2];
}

/**
 * The first of the `n` decoded values from `from` with a score that is not
 * finite or a class out of [0, C), counted from `from`; -1 when none is.
 */
function firstBadValue(
  numClasses: number,
  scores: Float32Array,
  ids: Int32Array,
  from: number,
  n: number,
): number {
  for (let e = 0; e < n; e++) {
    const s = scores[from + e], id = ids[from + e];
    if (!(s - s === 0) || id < 0 || id >= numClasses) return e;
  }
  return -1;
}

/** Whether a record's label lies in [-1, C) (a store with labels) or is -1 (one without). */
function labelOk(h: ScoreMapStoreHeader, label: number): boolean {
  return h.labels ? label >= -1 && label < h.numClasses : label === -1;
}

/**
 * What is out of range in a decoded record (`n` values from `from`): a
 * score that is not finite, a class id outside [0, C) or a label out of
 * range, as the end of a message `record i (key) holds ...`; undefined
 * when nothing is (the check of every record read: no message is made
 * then).
 */
export function recordProblem(
  h: ScoreMapStoreHeader,
  scores: Float32Array,
  ids: Int32Array,
  from: number,
  n: number,
  label: number,
): string | undefined {
  const c = h.numClasses;
  const bad = firstBadValue(c, scores, ids, from, n);
  const labelBad = !labelOk(h, label);
  if (bad < 0 && !labelBad) return undefined;
  if (labelBad) {
    return `the label ${label}, but ${
      h.labels ? `labels lie in [-1, ${c})` : "the store has no labels"
    }`;
  }
  const s = scores[from + bad], id = ids[from + bad];
  return `${
    !(s - s === 0)
      ? `the score ${s}`
      : `class ${id}, but the store has ${c} classes,`
  } in ${cellOf(bad, h.height, h.width)}`;
}

/** A read of the records `indices[order[p]]` to `indices[order[q - 1]]` (consecutive or repeated), into `buf`. */
export interface RecordRun {
  /** First position in `order`. */
  p: number;
  /** Position after the last. */
  q: number;
  /** Byte offset in `maps.bin`. */
  offset: number;
  /** The bytes read. */
  buf: Uint8Array;
}

/**
 * Groups records to read: `order` sorts `indices`; runs of consecutive (or
 * repeated) indices, at most 8 MiB each, become one read.
 */
export function recordRuns(
  indices: ArrayLike<number>,
  order: number[],
  recordBytes: number,
): RecordRun[] {
  const B = order.length;
  const maxRun = Math.max(1, Math.floor((8 << 20) / recordBytes));
  // Runs of consecutive (or repeated) record indices: one read each.
  const runs: RecordRun[] = [];
  for (let p = 0; p < B;) {
    const first = indices[order[p]];
    let q = p + 1;
    while (
      q < B && indices[order[q]] - first <= maxRun - 1 &&
      indices[order[q]] - indices[order[q - 1]] <= 1
    ) q++;
    const last = indices[order[q - 1]];
    const buf = new Uint8Array((last - first + 1) * recordBytes);
    runs.push({ p, q, offset: first * recordBytes, buf });
    p = q;
  }
  return runs;
}
