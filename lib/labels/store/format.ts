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
 *   height, width, numClasses, annotator, [annotatorHead], [annotatorWeights],
 *   preprocessing, what the scores are, count, whether there are labels,
 *   createdBy, the record layout, [classNames], `index` (`keysBytes`, the
 *   size of `keys.txt`; `blockBytes` 4096; `entryBytes` 64) and last
 *   `checksum`: the CRC-32 of the header's compact JSON (`JSON.stringify`,
 *   the file's field order) without that field. The fields in brackets are
 *   optional (see below).
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
 * ## Where the maps come from (optional header fields)
 *
 * Three fields say more than `annotator` (a name such as
 * `"lvvit_xs32 @ 32"`); each is written only when known, and a store
 * without them (older stores, converted official maps) reads as before, so
 * they need no new format version:
 *
 * - `annotatorHead`: the classifier applied at every location. `tokenlab
 *   annotate` writes `"aux_head"` (LV-ViT's token head, trained on every
 *   patch token: what token labeling uses, and its default when the
 *   weights have one) or `"head"` (the class head, trained on the class
 *   token only).
 * - `annotatorWeights`: `{file, bytes, sha256}`, the weights file's name
 *   (without its folder), size and SHA-256 (lowercase hex), so a store can
 *   be traced to the exact annotator.
 * - `classNames`: the dataset's class names in id order (`numClasses` of
 *   them; at most 512 KiB as JSON), so ids can be shown as names.
 *
 * Like every field they are covered by the header's checksum, and an
 * interrupted write is resumed only with the same values.
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
import type { ScoreMapProvenance } from "./_provenance.ts";

// Defined beside their checks; still exported here.
export type { ScoreMapPreprocessing } from "./_preprocessing.ts";
export type {
  ScoreMapAnnotatorWeights,
  ScoreMapProvenance,
} from "./_provenance.ts";

/** What a store's scores are. */
export type ScoreKind = "logits" | "probabilities" | "unknown";

/**
 * What {@linkcode ScoreMapStore.create} needs: the maps' shape and where they
 * come from (the optional {@linkcode ScoreMapProvenance} fields:
 * `annotatorHead`, `annotatorWeights`, `classNames`).
 */
export interface ScoreMapStoreInit extends ScoreMapProvenance {
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
