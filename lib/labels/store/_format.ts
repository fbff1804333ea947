/**
 * The store's format as code: its file names and sizes, the record layout
 * of each version, and the header: made (in a fixed field order, with its
 * checksum), checked (the fields a caller gives) and parsed (everything a
 * reader must trust before it allocates or seeks). Also the whole reads
 * every store file goes through and the messages about damage.
 *
 * Internal to `lib/labels/store/`.
 *
 * @module
 */

import { exists } from "../../_fs.ts";
import { VERSION } from "../../version.ts";
import {
  isDirectory,
  numClassesProblem,
  pathString,
  sameJson,
  typeName,
} from "../_common.ts";
import { ScoreMapError } from "../score_map.ts";
import { crc32 } from "../../io/crc32.ts";
import { BLOCK_BYTES } from "./_checksums.ts";
import { checkPreprocessing, normPreprocessing } from "./_preprocessing.ts";
import { checkProvenance, provenanceFields } from "./_provenance.ts";
import {
  SCORE_MAP_STORE_FORMAT,
  SCORE_MAP_STORE_VERSION,
  type ScoreMapRecordLayout,
  type ScoreMapStoreHeader,
  type ScoreMapStoreIndexInfo,
  type ScoreMapStoreInit,
} from "./format.ts";

/** The format version written. */
export const STORE_VERSION = SCORE_MAP_STORE_VERSION;
/** The files of a store (and of a write in progress). */
export const DATA = "maps.bin";
export const KEYS = "keys.txt";
export const KEY_OFFSETS = "keys.offsets";
export const KEY_SORTED = "keys.sorted";
export const KEY_SUMS = "keys.sums";
export const HEADER = "header.json";
export const PARTIAL_INFO = "partial.json";
export const PROGRESS = "progress.json";
/** `keys.sorted` entry bytes and key-prefix bytes, by format version. */
export const ENTRY_V1 = 48, PREFIX_V1 = 32, ENTRY = 64, PREFIX = 40;
/** Sorted-index entries per checksummed block (version 2; a read unit in version 1). */
export const ENTRIES_PER_BLOCK = BLOCK_BYTES / ENTRY;
/** The longest key, in UTF-8 bytes. */
export const MAX_KEY_BYTES = 4096;
/** What a message about damage tells the user to do. */
export const REBUILD =
  "re-run the conversion or annotation that made the store (officialToStore, or tokenlab annotate with --overwrite) or copy it again from an intact copy";

/** The layout of a record of a map of k x height x width, in format `version`. */
export function recordLayout(
  k: number,
  height: number,
  width: number,
  numClasses: number,
  version: number = STORE_VERSION,
): ScoreMapRecordLayout {
  const n = k * height * width;
  const wide = numClasses > 65536;
  const idSize = wide ? 4 : 2;
  const scoresAt = version === 1 ? 4 : 16;
  const idsOffset = Math.ceil((scoresAt + 2 * n) / idSize) * idSize;
  const bytes = Math.ceil((idsOffset + idSize * n) / 8) * 8;
  const ids = { dtype: wide ? "int32" : "uint16", offset: idsOffset } as const;
  if (version === 1) {
    return {
      bytes,
      label: { dtype: "int32", offset: 0 },
      scores: { dtype: "float16", offset: 4 },
      ids,
    };
  }
  return {
    bytes,
    checksum: { dtype: "uint32", offset: 0 },
    label: { dtype: "int32", offset: 4 },
    keyHash: { dtype: "uint64", offset: 8 },
    scores: { dtype: "float16", offset: 16 },
    ids,
  };
}

/** Checks the fields of a header that a caller gives (shape, classes, annotator, scores, preprocessing). */
export function checkInit(init: ScoreMapStoreInit, where: string): void {
  if (init === null || typeof init !== "object") {
    throw new ScoreMapError(
      `${where}: expected a header {k, height, width, numClasses, annotator, preprocessing, scores}, found ${
        typeName(init)
      }`,
    );
  }
  for (const f of ["k", "height", "width"] as const) {
    if (!Number.isSafeInteger(init[f]) || init[f] <= 0) {
      throw new ScoreMapError(
        `${where}: expected ${f} to be a positive integer, found ${
          JSON.stringify(init[f])
        }`,
      );
    }
  }
  if (init.k * init.height * init.width > 2 ** 26) {
    throw new ScoreMapError(
      `${where}: a map of k * height * width = ${
        init.k * init.height * init.width
      } values is too large for a record (at most 2^26); keep fewer classes per cell`,
    );
  }
  const bad = numClassesProblem(init.numClasses, where);
  if (bad !== undefined) throw new ScoreMapError(bad);
  if (typeof init.annotator !== "string" || init.annotator === "") {
    throw new ScoreMapError(
      `${where}: expected annotator to name the model that made the maps (e.g. "nfnet_f6 @ 576"), found ${
        JSON.stringify(init.annotator)
      }`,
    );
  }
  if (!["logits", "probabilities", "unknown"].includes(init.scores)) {
    throw new ScoreMapError(
      `${where}: expected scores to be "logits", "probabilities" or "unknown", found ${
        JSON.stringify(init.scores)
      }`,
    );
  }
  checkPreprocessing(init.preprocessing, where);
  checkProvenance(init, where);
  if (init.createdBy !== undefined && typeof init.createdBy !== "string") {
    throw new ScoreMapError(
      `${where}: expected createdBy to be a string, found ${
        JSON.stringify(init.createdBy)
      }`,
    );
  }
}

/**
 * The header object in a fixed field order (the JSON bytes are
 * deterministic); the optional provenance fields only when given, so a
 * header without them is the same as before they existed.
 */
export function makeHeader(
  init: ScoreMapStoreInit,
  count: number,
  labels: boolean,
  index?: ScoreMapStoreIndexInfo,
): ScoreMapStoreHeader {
  const { annotatorHead, annotatorWeights, classNames } = provenanceFields(
    init,
  );
  const h: ScoreMapStoreHeader = {
    format: SCORE_MAP_STORE_FORMAT,
    version: STORE_VERSION,
    k: init.k,
    height: init.height,
    width: init.width,
    numClasses: init.numClasses,
    annotator: init.annotator,
    ...(annotatorHead !== undefined ? { annotatorHead } : {}),
    ...(annotatorWeights !== undefined ? { annotatorWeights } : {}),
    preprocessing: normPreprocessing(init.preprocessing),
    scores: init.scores,
    count,
    labels,
    createdBy: init.createdBy ?? `tokenlab ${VERSION}`,
    record: recordLayout(init.k, init.height, init.width, init.numClasses),
    ...(classNames !== undefined ? { classNames } : {}),
  };
  if (index) h.index = index;
  return h;
}

/** CRC-32 of a header's compact JSON without its `checksum` field. */
export function headerChecksum(h: Record<string, unknown>): number {
  const { checksum: _, ...rest } = h;
  return crc32(new TextEncoder().encode(JSON.stringify(rest)));
}

/** A version-2 header as file bytes, its checksum added last. */
export function headerBytes(h: ScoreMapStoreHeader): Uint8Array {
  const { checksum: _, ...rest } = h;
  return jsonBytes({
    ...rest,
    checksum: headerChecksum(rest as Record<string, unknown>),
  });
}

/** A value as pretty JSON file bytes (with a final line break). */
export function jsonBytes(x: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(x, null, 2) + "\n");
}

/** Reads exactly `out.length` bytes at `offset` of `file`; `what` names the read in errors. */
export async function readFull(
  file: Deno.FsFile,
  offset: number,
  out: Uint8Array,
  what: () => string,
): Promise<void> {
  await file.seek(offset, Deno.SeekMode.Start);
  let done = 0;
  while (done < out.length) {
    const n = await file.read(out.subarray(done));
    if (n === null || n === 0) {
      throw new ScoreMapError(
        `${what()}: expected ${out.length} bytes at byte ${offset}, found the end of the file after ${done}; the store is truncated or damaged, rebuild it or copy it again`,
      );
    }
    done += n;
  }
}

/** {@linkcode readFull} with blocking calls. */
export function readFullSync(
  file: Deno.FsFile,
  offset: number,
  out: Uint8Array,
  what: () => string,
): void {
  file.seekSync(offset, Deno.SeekMode.Start);
  let done = 0;
  while (done < out.length) {
    const n = file.readSync(out.subarray(done));
    if (n === null || n === 0) {
      throw new ScoreMapError(
        `${what()}: expected ${out.length} bytes at byte ${offset}, found the end of the file after ${done}; the store is truncated or damaged, rebuild it or copy it again`,
      );
    }
    done += n;
  }
}

function isScoreMapStoreHeader(h: unknown): h is ScoreMapStoreHeader {
  return h !== null && typeof h === "object";
}

/** The folder of a store, as a string without trailing slashes. */
export function storePath(path: string | URL): string {
  const p = pathString(path).replace(/\/+$/, "");
  if (p === "") {
    throw new ScoreMapError(
      `expected a store path (a folder name), found ${JSON.stringify(path)}`,
    );
  }
  return p;
}

/** A message about a damaged store: the store, what is wrong, what to do. */
export function damaged(path: string, what: string): ScoreMapError {
  return new ScoreMapError(
    `score-map store ${path} is damaged: ${what}; ${REBUILD}`,
  );
}

/**
 * Parses and checks a store header (`header.json`, or `partial.json` with
 * `committed: false`): the format, a version this tokenlab reads, the
 * version-2 checksum, the shape (bounded: no header makes a reader allocate
 * more than a record of 2^26 values), count, labels, the record layout and,
 * for a committed version-2 store, the index sizes.
 */
export function parseHeader(
  text: string,
  where: string,
  file: string,
  committed = true,
): ScoreMapStoreHeader {
  const at = `${where}/${file}`;
  let h: unknown;
  try {
    h = JSON.parse(text);
  } catch (e) {
    throw new ScoreMapError(
      `score-map store ${where}: its ${file} is not valid JSON (${
        (e as Error).message
      }); the store is damaged, ${REBUILD}`,
      { cause: e },
    );
  }
  if (!isScoreMapStoreHeader(h) || h.format !== SCORE_MAP_STORE_FORMAT) {
    throw new ScoreMapError(
      `${where} is not a score-map store: expected ${file} with format ${
        JSON.stringify(SCORE_MAP_STORE_FORMAT)
      }, found ${
        JSON.stringify(isScoreMapStoreHeader(h) ? h.format : h)?.slice(0, 200)
      }`,
    );
  }
  if (h.version !== 1 && h.version !== STORE_VERSION) {
    throw new ScoreMapError(
      `score-map store ${where} has format version ${
        JSON.stringify(h.version)?.slice(0, 40)
      } in ${file}, this tokenlab reads versions 1 and ${STORE_VERSION}; ${
        typeof h.version === "number" && h.version > STORE_VERSION
          ? "upgrade tokenlab"
          : `the header is damaged, ${REBUILD}`
      }`,
    );
  }
  if (h.version === STORE_VERSION) {
    const want = headerChecksum(h as unknown as Record<string, unknown>);
    if (h.checksum !== want) {
      throw new ScoreMapError(
        `score-map store ${where} is damaged: the checksum of ${at} is ${
          JSON.stringify(h.checksum)?.slice(0, 40)
        }, but its fields give ${want} (a field was changed or the file is corrupted); ${REBUILD}`,
      );
    }
  }
  checkInit(h, `score-map store ${at}`);
  if (!Number.isSafeInteger(h.count) || h.count < 0 || h.count >= 2 ** 32) {
    throw new ScoreMapError(
      `score-map store ${at}: expected count to be an integer in [0, 2^32), found ${
        JSON.stringify(h.count)?.slice(0, 40)
      }; the header is damaged, ${REBUILD}`,
    );
  }
  if (typeof h.labels !== "boolean") {
    throw new ScoreMapError(
      `score-map store ${at}: expected labels to be true or false, found ${
        JSON.stringify(h.labels)?.slice(0, 40)
      }; the header is damaged, ${REBUILD}`,
    );
  }
  const layout = recordLayout(h.k, h.height, h.width, h.numClasses, h.version);
  if (!sameJson(h.record, layout)) {
    throw new ScoreMapError(
      `score-map store ${at}: its record layout ${
        JSON.stringify(h.record)?.slice(0, 300)
      } is not the one this tokenlab computes for version ${h.version}, k=${h.k}, ${h.height} x ${h.width}, ${h.numClasses} classes (${
        JSON.stringify(layout)
      }); the header is damaged or from another writer`,
    );
  }
  if (h.count * layout.bytes > Number.MAX_SAFE_INTEGER) {
    throw new ScoreMapError(
      `score-map store ${at}: count ${h.count} of ${layout.bytes}-byte records is too large a store; the header is damaged, ${REBUILD}`,
    );
  }
  if (h.version === STORE_VERSION && committed) {
    const ix = h.index as unknown;
    const ok = ix !== null && typeof ix === "object" &&
      sameJson(
        Object.keys(ix as object),
        ["keysBytes", "blockBytes", "entryBytes"],
      ) && (ix as ScoreMapStoreIndexInfo).blockBytes === BLOCK_BYTES &&
      (ix as ScoreMapStoreIndexInfo).entryBytes === ENTRY &&
      Number.isSafeInteger((ix as ScoreMapStoreIndexInfo).keysBytes) &&
      (ix as ScoreMapStoreIndexInfo).keysBytes >= 2 * h.count &&
      (ix as ScoreMapStoreIndexInfo).keysBytes <=
        (MAX_KEY_BYTES + 1) * h.count;
    if (!ok) {
      throw new ScoreMapError(
        `score-map store ${at}: expected index {keysBytes (2 to ${
          MAX_KEY_BYTES + 1
        } bytes per key), blockBytes: ${BLOCK_BYTES}, entryBytes: ${ENTRY}}, found ${
          JSON.stringify(ix)?.slice(0, 200)
        }; the header is damaged, ${REBUILD}`,
      );
    }
  }
  return h;
}

/**
 * Reads and checks a committed store's `header.json` (at most 1 MiB; see
 * {@linkcode parseHeader}); a missing one is explained (an interrupted
 * write, a folder or file that is not a store, nothing there).
 */
export async function readHeaderFile(
  dir: string,
): Promise<{ header: ScoreMapStoreHeader; bytes: number }> {
  let text: string;
  let headerSize = 0;
  try {
    const file = await Deno.open(`${dir}/${HEADER}`, { read: true });
    try {
      // A header is small; a huge file is not one (never read it whole).
      const size = (await file.stat()).size;
      if (size > 1 << 20) {
        throw damaged(
          dir,
          `${HEADER} is ${size} bytes, expected a small JSON object (under 1 MiB)`,
        );
      }
      const b = new Uint8Array(size);
      await readFull(file, 0, b, () => `reading ${dir}/${HEADER}`);
      text = new TextDecoder().decode(b);
      headerSize = size;
    } finally {
      file.close();
    }
  } catch (e) {
    if (e instanceof ScoreMapError) throw e;
    if (!(e instanceof Deno.errors.NotFound)) {
      throw new ScoreMapError(
        `cannot open the score-map store ${dir}: reading ${HEADER} failed: ${
          (e as Error).message
        }`,
        { cause: e },
      );
    }
    if (await exists(`${dir}.partial`)) {
      throw new ScoreMapError(
        `no committed score-map store at ${dir}, but an interrupted write is at ${dir}.partial: finish it (on the command line, run the tokenlab annotate or tokenlab maps convert --resume that started it again; in code, continue it with ScoreMapStore.resume(${
          JSON.stringify(dir)
        }) and commit() it)`,
      );
    }
    if (await exists(dir)) {
      const folder = await isDirectory(dir);
      throw new ScoreMapError(
        `${dir} is not a score-map store: expected a folder holding ${HEADER}, found ${
          folder ? "a folder without one" : "a file"
        }; ${
          folder
            ? `if it holds official per-image maps (<class>/<stem>.pt), convert them into a store once with \`tokenlab maps convert ${dir} --out STORE\` (in code: officialToStore) and use STORE`
            : "give the store's folder; an official per-image map file (<class>/<stem>.pt) holds one image's map: convert the folder of all of them with `tokenlab maps convert FOLDER --out STORE` (in code: officialToStore; readOfficialMap reads one file)"
        }`,
      );
    }
    throw new ScoreMapError(
      `no score-map store at ${dir}: nothing is there; check the path, or make the store: on the command line with \`tokenlab annotate --model WEIGHTS --data DATASET --out ${dir}\` (maps from a trained annotator) or \`tokenlab maps convert MAPS_FOLDER --out ${dir}\` (official per-image .pt maps); in code with ScoreMapStore.create or officialToStore`,
    );
  }
  return { header: parseHeader(text, dir, HEADER), bytes: headerSize };
}
