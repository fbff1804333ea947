/**
 * The score-map store's format on disk: the header (`header.json`), the
 * layout of a record of `maps.bin`, the key index files, and the format's
 * name and version. How they are read and checked is in `reader.ts`, how
 * they are written in `writer.ts`.
 *
 * ## The store on disk (format version 2)
 *
 * A folder `<name>` holding:
 *
 * - `header.json`: format (`tokenlab.score-map-store`) and version (2), k,
 *   height, width, numClasses, annotator, preprocessing, what the scores are,
 *   count, whether there are labels, createdBy, the record layout, `index`
 *   (`keysBytes`, the size of `keys.txt`; `blockBytes` 4096; `entryBytes`
 *   64) and last `checksum`: the CRC-32 of the header's compact JSON
 *   (`JSON.stringify`, the file's field order) without that field.
 * - `maps.bin`: `count` records of `record.bytes` bytes; record i starts at
 *   byte i * record.bytes, so one image is one seek + read.
 * - `keys.txt`: the image keys in record order, UTF-8, one per line.
 * - `keys.offsets`: count + 1 little-endian uint64, where line i starts in
 *   `keys.txt` (`keyAt` is two small reads).
 * - `keys.sorted`: count entries of 64 bytes sorted by the keys' UTF-8 bytes
 *   (`indexOf` is a binary search by seek; the index is never loaded).
 * - `keys.sums`: little-endian uint32 CRC-32s of every 4096-byte block of
 *   `keys.offsets`, then of `keys.sorted`, then of `keys.txt` (the last
 *   block of each may be short).
 *
 * A record (little-endian): uint32 checksum at byte 0; int32 label at 4 (-1:
 * none); uint64 key hash at 8; float16 scores [k, H, W] at 16; ids
 * [k, H, W] as uint16 (numClasses <= 65536) or int32 from `record.ids.offset`
 * (aligned to the id size); zero padding to a multiple of 8 bytes. The key
 * hash is 64-bit FNV-1a of the key's UTF-8 bytes; the checksum is the
 * CRC-32 (ZIP's) of the record's index as a uint64 followed by the record's
 * bytes from byte 4 on, so a record that is changed, or moved to another
 * place, fails. A `keys.sorted` entry: uint32 record index, uint32 key
 * length in bytes, uint64 offset of the key in `keys.txt`, uint64 key hash,
 * then the key's first 40 bytes zero-padded. A lookup reads one checked
 * 4096-byte block (64 entries) per step of the binary search (the prefix
 * decides unless two keys share their first 40 bytes): 11 reads for 100 000
 * keys, about 15 for 1.3 million, plus the few pages of `keys.sums` they
 * need.
 *
 * Version 1 (tokenlab 0.1 before December 2026) has no checksums: records
 * of `record.bytes` with the label at 0 and scores at 4, no key hash,
 * 48-byte sorted entries with a 32-byte prefix, no `keys.sums`, no `index`
 * or `checksum` in the header. It is still read (bounds and order checks
 * apply, checksums cannot), with a one-time warning per store through
 * `onWarning`; {@linkcode upgradeScoreMapStore} rewrites it as version 2 in
 * place, after checking every record and the index. An interrupted
 * version-1 write holding records cannot be resumed: start it over
 * (`overwrite: true`).
 *
 * @module
 */

import { sameJson } from "../_common.ts";
import {
  normPreprocessing,
  type ScoreMapPreprocessing,
} from "./_preprocessing.ts";

// Defined beside its checks; still exported here.
export type { ScoreMapPreprocessing } from "./_preprocessing.ts";

/** What a store's scores are. */
export type ScoreKind = "logits" | "probabilities" | "unknown";

/** What {@linkcode ScoreMapStore.create} needs: the maps' shape and where they come from. */
export interface ScoreMapStoreInit {
  /** Classes kept per cell. */
  k: number;
  /** Rows of every map. */
  height: number;
  /** Columns of every map. */
  width: number;
  /** Classes of the dataset (ids lie in [0, numClasses)). */
  numClasses: number;
  /** The annotator, e.g. `"nfnet_f6 @ 576"`. */
  annotator: string;
  /** How the annotator's inputs were made. */
  preprocessing: ScoreMapPreprocessing;
  /** Whether the scores are raw logits (official), probabilities, or unknown (ReLabel). */
  scores: ScoreKind;
  /** Who made the store (default `"tokenlab <version>"`). */
  createdBy?: string;
}

/** Where a field sits in a record. */
export interface ScoreMapRecordField {
  /** Element type. */
  dtype: "int32" | "float16" | "uint16" | "uint32" | "uint64";
  /** Byte offset in the record. */
  offset: number;
}

/** The layout of one record of `maps.bin`. */
export interface ScoreMapRecordLayout {
  /** Bytes per record (a multiple of 8). */
  bytes: number;
  /**
   * Version 2: the record's CRC-32 (uint32 at byte 0), of the record index
   * as a uint64 then the record's bytes after the checksum.
   */
  checksum?: ScoreMapRecordField;
  /** Version 2: the 64-bit FNV-1a hash of the record's key (uint64). */
  keyHash?: ScoreMapRecordField;
  /** The ground-truth label (int32, -1 for none). */
  label: ScoreMapRecordField;
  /** The scores [k, H, W]. */
  scores: ScoreMapRecordField;
  /** The class ids [k, H, W]. */
  ids: ScoreMapRecordField;
}

/** Version 2: what a reader needs to check the key index (see the module doc). */
export interface ScoreMapStoreIndexInfo {
  /** Bytes of `keys.txt`. */
  keysBytes: number;
  /** Bytes per checksummed block of the index files (4096). */
  blockBytes: number;
  /** Bytes per `keys.sorted` entry (64). */
  entryBytes: number;
}

/** A store's `header.json`. */
export interface ScoreMapStoreHeader extends ScoreMapStoreInit {
  /** Always `"tokenlab.score-map-store"`. */
  format: string;
  /** Format version: 2 is written; 1 (without checksums) is still read. */
  version: number;
  /** Who made the store. */
  createdBy: string;
  /** Number of images. */
  count: number;
  /** Whether the records hold ground-truth labels. */
  labels: boolean;
  /** Where things are in a record of `maps.bin`. */
  record: ScoreMapRecordLayout;
  /** Version 2, committed stores: the key index's sizes. */
  index?: ScoreMapStoreIndexInfo;
  /**
   * Version 2: CRC-32 of the header's compact JSON (`JSON.stringify`) without
   * this field, in the file's field order.
   */
  checksum?: number;
}

/** The format name in every store header. */
export const SCORE_MAP_STORE_FORMAT = "tokenlab.score-map-store";
/** The store format version written (version 1 is still read, with a warning). */
export const SCORE_MAP_STORE_VERSION = 2;

/**
 * Whether two preprocessings are the same (`cropPct` defaults to 1 and is
 * ignored for `"squash"`).
 *
 * @example
 * ```ts
 * import { samePreprocessing } from "tokenlab/labels/store/format.ts";
 * const a = { mode: "resize-center-crop", size: 224 } as const;
 * console.log(samePreprocessing(a, { ...a, cropPct: 1 }), samePreprocessing(a, { mode: "squash", size: 224 })); // true false
 * ```
 */
export function samePreprocessing(
  a: ScoreMapPreprocessing,
  b: ScoreMapPreprocessing,
): boolean {
  return sameJson(normPreprocessing(a), normPreprocessing(b));
}
