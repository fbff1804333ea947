/**
 * The score-map store: one folder per dataset holding every image's map as
 * a fixed-size record (one seek + read per image), a key index searched on
 * disk, and checksums over all of it, so that a damaged store answers with
 * the right map or a `ScoreMapError`, never with another image's map.
 *
 * - `format.ts`: the format on disk (header, record layout, key index).
 * - `reader.ts`: {@linkcode ScoreMapStore}, opening and reading a store.
 * - `writer.ts`: {@linkcode ScoreMapStoreWriter}, writing one resumably.
 * - `upgrade.ts`: {@linkcode upgradeScoreMapStore}, from format version 1.
 * - `conversions.ts`: a store against a dataset, and to and from the
 *   official per-image files.
 *
 * @module
 */

export * from "./conversions.ts";
export * from "./format.ts";
export * from "./reader.ts";
export * from "./upgrade.ts";
export {
  type CreateScoreMapStoreOptions,
  type ResumeScoreMapStoreOptions,
  type ScoreMapResumeInfo,
  ScoreMapStoreWriter,
} from "./writer.ts";
