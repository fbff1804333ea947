/**
 * The safetensors format: an 8-byte little-endian header length, a JSON
 * header `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__":
 * {...}}`, then the tensors' bytes. Reading validates everything; writing
 * lays the file out as the format's reference (Rust) writer does and is
 * atomic (a temporary file in the same folder, renamed into place).
 *
 * @module
 */

import { CheckpointError } from "./checkpoint_error.ts";
import { writeFileAtomic } from "./atomic_write.ts";
import { notAFileError } from "./_read_errors.ts";
import {
  checkRawTensor,
  dataView,
  itemSize,
  type RawData,
  type RawDType,
  type RawTensor,
} from "./raw_tensor.ts";

/** The contents of a safetensors file. */
export interface SafetensorsContents {
  /** The tensors by name, in the file's order (by data offset). */
  tensors: Map<string, RawTensor>;
  /** The `__metadata__` string map (empty when the file has none). */
  metadata: Record<string, string>;
}

/** Options of {@linkcode writeSafetensors} and {@linkcode encodeSafetensors}. */
export interface WriteSafetensorsOptions {
  /** Text-only metadata stored as the header's `__metadata__`. */
  metadata?: Record<string, string>;
}

/** Options of {@linkcode decodeSafetensors}. */
export interface DecodeSafetensorsOptions {
  /** Names the bytes in error messages (default "safetensors bytes"). */
  label?: string;
  /**
   * Copy each tensor's data out of `bytes` (default true). False: views of
   * `bytes` where aligned (copies where not), for a caller that owns the
   * bytes and will not change them.
   */
  copy?: boolean;
}

/** The tensors to write: a Map or a record of name to tensor. */
export type SafetensorsInput =
  | Map<string, RawTensor>
  | Record<string, RawTensor>;

const MAX_HEADER = 100_000_000;

const TO_CODE: Record<RawDType, string> = {
  float64: "F64",
  float32: "F32",
  float16: "F16",
  bfloat16: "BF16",
  int64: "I64",
  int32: "I32",
  int16: "I16",
  int8: "I8",
  uint8: "U8",
  bool: "BOOL",
};

const FROM_CODE: Record<string, RawDType> = Object.fromEntries(
  Object.entries(TO_CODE).map(([k, v]) => [v, k as RawDType]),
);

/** Writing order of the reference writer: alignment descending (its dtype enum, reversed). */
const WRITE_RANK: Record<RawDType, number> = {
  int64: 0,
  float64: 1,
  float32: 2,
  int32: 3,
  bfloat16: 4,
  float16: 5,
  int16: 6,
  int8: 7,
  uint8: 8,
  bool: 9,
};

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function checkHost(): void {
  if (!LITTLE_ENDIAN) {
    throw new CheckpointError(
      "safetensors data are little-endian and this machine is big-endian; tokenlab's reader expects a little-endian host",
    );
  }
}

interface HeaderEntry {
  name: string;
  dtype: RawDType;
  shape: number[];
  begin: number;
  end: number;
}

/**
 * The header length (the first 8 bytes, little-endian) of a file of `total`
 * bytes, checked against the format's limit and the file before anything is
 * allocated for the header.
 */
function headerLength(head: Uint8Array, total: number, label: string): number {
  const dv = new DataView(head.buffer, head.byteOffset, 8);
  const n64 = dv.getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER)) {
    throw new CheckpointError(
      `cannot read ${label}: expected a header length of at most ${MAX_HEADER} bytes, found ${n64}; the file is damaged or not safetensors`,
    );
  }
  const n = Number(n64);
  if (8 + n > total) {
    throw new CheckpointError(
      `cannot read ${label}: the header length ${n} runs past the end (${total} bytes in all); the file is truncated or not safetensors, fetch it again`,
    );
  }
  return n;
}

const JSON_SPACE = new Set([" ", "\t", "\n", "\r"]);

/**
 * The first key that an object of the JSON `text` (already parsed, so
 * valid) holds twice, with the key of the object it is in ("" for the top
 * level); undefined when every key is unique. A scan of the text, without
 * recursion, so deep nesting cannot overflow the stack.
 */
function duplicateKey(
  text: string,
): { key: string; within: string } | undefined {
  const stack: ({ keys: Set<string>; name: string } | null)[] = [];
  let lastKey = "";
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      const literal = text.slice(i, j + 1);
      i = j + 1;
      let k = i;
      while (JSON_SPACE.has(text[k])) k++;
      const top = stack[stack.length - 1];
      if (top && text[k] === ":") {
        const key = JSON.parse(literal) as string;
        if (top.keys.has(key)) return { key, within: top.name };
        top.keys.add(key);
        lastKey = key;
        i = k + 1;
      }
      continue;
    }
    if (c === "{") {
      stack.push({ keys: new Set(), name: stack.length ? lastKey : "" });
    } else if (c === "[") stack.push(null);
    else if (c === "}" || c === "]") stack.pop();
    i++;
  }
  return undefined;
}

function tooShort(length: number, label: string): CheckpointError {
  return new CheckpointError(
    `cannot read ${label}: expected at least 8 bytes (the header length), found ${length}; the file is damaged or not safetensors`,
  );
}

/**
 * The tensors and metadata the JSON header (`headerBytes`, without the
 * length before it) declares, checked to cover the `dataLength` bytes that
 * follow it exactly.
 */
function parseHeader(
  headerBytes: Uint8Array,
  dataLength: number,
  label: string,
): { entries: HeaderEntry[]; metadata: Record<string, string> } {
  const bad = (what: string, todo = "the file is damaged or not safetensors") =>
    new CheckpointError(`cannot read ${label}: ${what}; ${todo}`);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(headerBytes);
  } catch {
    throw bad("expected a UTF-8 JSON header, found bytes that are not UTF-8");
  }
  if (!text.trimStart().startsWith("{")) {
    throw bad(
      `expected the JSON header to start with "{", found ${
        JSON.stringify(text.slice(0, 20))
      }`,
    );
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    throw bad(
      `expected a JSON header, found invalid JSON (${(e as Error).message})`,
    );
  }
  // JSON.parse keeps the last of two equal keys: a file that names a tensor
  // twice would be read as whichever came last, silently.
  const twice = duplicateKey(text);
  if (twice) {
    throw bad(
      `the header holds ${JSON.stringify(twice.key)} twice${
        twice.within ? ` in ${JSON.stringify(twice.within)}` : ""
      }; expected each name once`,
    );
  }
  if (header === null || typeof header !== "object" || Array.isArray(header)) {
    throw bad("expected the header to be a JSON object");
  }
  const metadata: Record<string, string> = {};
  const entries: HeaderEntry[] = [];
  for (const [name, info] of Object.entries(header)) {
    if (name === "__metadata__") {
      if (info === null || typeof info !== "object" || Array.isArray(info)) {
        throw bad(`expected "__metadata__" to be an object of strings`);
      }
      for (const [k, v] of Object.entries(info)) {
        if (typeof v !== "string") {
          throw bad(
            `expected "__metadata__" values to be strings, found ${
              JSON.stringify(v)
            } for ${JSON.stringify(k)}`,
          );
        }
        Object.defineProperty(metadata, k, {
          value: v,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      continue;
    }
    const what = `tensor ${JSON.stringify(name)}`;
    if (info === null || typeof info !== "object" || Array.isArray(info)) {
      throw bad(`expected ${what} to be {dtype, shape, data_offsets}`);
    }
    const { dtype, shape, data_offsets } = info as Record<string, unknown>;
    if (typeof dtype !== "string" || !(dtype in FROM_CODE)) {
      throw bad(
        `${what} has dtype ${JSON.stringify(dtype)}; expected one of ${
          Object.keys(FROM_CODE).join(", ")
        }`,
        "tokenlab reads those only; convert the tensor (e.g. to F32) before saving",
      );
    }
    const isSize = (x: unknown): x is number =>
      typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
    if (!Array.isArray(shape) || !shape.every(isSize)) {
      throw bad(
        `expected ${what}'s shape to be a list of non-negative integers, found ${
          JSON.stringify(shape)
        }`,
      );
    }
    if (
      !Array.isArray(data_offsets) || data_offsets.length !== 2 ||
      !data_offsets.every(isSize) || data_offsets[0] > data_offsets[1]
    ) {
      throw bad(
        `expected ${what}'s data_offsets to be [begin, end] with 0 <= begin <= end, found ${
          JSON.stringify(data_offsets)
        }`,
      );
    }
    const rd = FROM_CODE[dtype];
    let count = shape.includes(0) ? 0 : 1;
    for (const d of shape) count *= d;
    if (!Number.isSafeInteger(count)) {
      throw bad(
        `${what}'s shape [${
          shape.join(", ")
        }] has more than 2^53 elements; expected as many as its data_offsets [${
          data_offsets.join(", ")
        }] hold`,
      );
    }
    const need = count * itemSize(rd);
    const [begin, end] = data_offsets as number[];
    if (!Number.isSafeInteger(need) || end - begin !== need) {
      throw bad(
        `${what} of dtype ${dtype} and shape [${
          shape.join(", ")
        }] needs ${need} bytes, found data_offsets [${begin}, ${end}] (${
          end - begin
        } bytes)`,
      );
    }
    entries.push({ name, dtype: rd, shape, begin, end });
  }
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  for (const e of entries) {
    if (e.begin !== at) {
      throw bad(
        e.begin < at
          ? `tensor ${
            JSON.stringify(e.name)
          } at bytes [${e.begin}, ${e.end}] overlaps the tensor before it (which ends at ${at})`
          : `tensor ${
            JSON.stringify(e.name)
          } starts at byte ${e.begin}, expected ${at}: the tensors must cover the data without gaps`,
      );
    }
    at = e.end;
  }
  if (at !== dataLength) {
    throw bad(
      `the tensors cover ${at} bytes of data, found ${dataLength} after the header`,
      at > dataLength
        ? "the file is truncated, fetch it again"
        : "the file has trailing bytes or is damaged",
    );
  }
  return { entries, metadata };
}

/** The tensors of `entries` from `data` (the bytes after the header): views where aligned and `copy` is false, else copies. */
function tensorsOf(
  entries: HeaderEntry[],
  data: Uint8Array,
  copy: boolean,
): Map<string, RawTensor> {
  const base = data.byteOffset;
  const tensors = new Map<string, RawTensor>();
  for (const e of entries) {
    const size = itemSize(e.dtype);
    const length = e.end - e.begin;
    let out: RawData;
    if (!copy && (base + e.begin) % size === 0) {
      out = dataView(e.dtype, data.buffer, base + e.begin, length);
    } else {
      const own = data.slice(e.begin, e.end);
      out = dataView(e.dtype, own.buffer, 0, length);
    }
    tensors.set(e.name, { dtype: e.dtype, shape: e.shape, data: out });
  }
  return tensors;
}

function decodeInto(
  bytes: Uint8Array,
  label: string,
  copy: boolean,
): SafetensorsContents {
  checkHost();
  if (bytes.length < 8) throw tooShort(bytes.length, label);
  const n = headerLength(bytes, bytes.length, label);
  const { entries, metadata } = parseHeader(
    bytes.subarray(8, 8 + n),
    bytes.length - 8 - n,
    label,
  );
  return { tensors: tensorsOf(entries, bytes.subarray(8 + n), copy), metadata };
}

/**
 * Decodes safetensors bytes (validating the header, offsets and sizes); the
 * tensors' data are copies, not views of `bytes`, unless `options.copy` is
 * false.
 *
 * @example
 * ```ts
 * import { decodeSafetensors, encodeSafetensors } from "tokenlab/io/safetensors.ts";
 * const bytes = encodeSafetensors({ w: { dtype: "float32", shape: [2], data: new Float32Array([1, 2]) } });
 * console.log(decodeSafetensors(bytes).tensors.get("w")); // { dtype: "float32", shape: [ 2 ], data: Float32Array(2) [ 1, 2 ] }
 * ```
 */
export function decodeSafetensors(
  bytes: Uint8Array,
  options: DecodeSafetensorsOptions = {},
): SafetensorsContents {
  return decodeInto(
    bytes,
    options.label ?? "safetensors bytes",
    options.copy ?? true,
  );
}

interface Prepared {
  header: Uint8Array;
  order: { name: string; bytes: Uint8Array }[];
  dataLength: number;
}

function prepare(
  tensors: SafetensorsInput,
  options: WriteSafetensorsOptions,
): Prepared {
  checkHost();
  const list = tensors instanceof Map
    ? [...tensors]
    : Object.entries(tensors ?? {});
  if (
    tensors === null || typeof tensors !== "object" || Array.isArray(tensors)
  ) {
    throw new TypeError(
      "expected the tensors as a Map or a record of name to RawTensor",
    );
  }
  const enc = new TextEncoder();
  const items = list.map(([name, t]) => {
    if (typeof name !== "string" || name === "" || name === "__metadata__") {
      throw new TypeError(
        `expected tensor names to be non-empty strings other than "__metadata__", found ${
          JSON.stringify(name)
        }; rename the tensor`,
      );
    }
    checkRawTensor(t, `tensor ${JSON.stringify(name)}`);
    return { name, key: enc.encode(name), t };
  });
  const meta = options.metadata;
  if (meta !== undefined) {
    if (meta === null || typeof meta !== "object" || Array.isArray(meta)) {
      throw new TypeError("expected metadata to be a record of strings");
    }
    for (const [k, v] of Object.entries(meta)) {
      if (typeof v !== "string") {
        throw new TypeError(
          `expected metadata values to be strings, found ${typeof v} for ${
            JSON.stringify(k)
          }; convert it with String() or JSON.stringify()`,
        );
      }
    }
  }
  items.sort((a, b) =>
    WRITE_RANK[a.t.dtype] - WRITE_RANK[b.t.dtype] || compareBytes(a.key, b.key)
  );
  const parts: string[] = [];
  if (meta !== undefined) parts.push(`"__metadata__":${JSON.stringify(meta)}`);
  let offset = 0;
  const order = items.map(({ name, t }) => {
    const bytes = new Uint8Array(
      t.data.buffer,
      t.data.byteOffset,
      t.data.byteLength,
    );
    parts.push(
      `${JSON.stringify(name)}:{"dtype":"${TO_CODE[t.dtype]}","shape":[${
        t.shape.join(",")
      }],"data_offsets":[${offset},${offset + bytes.length}]}`,
    );
    offset += bytes.length;
    return { name, bytes };
  });
  let json = `{${parts.join(",")}}`;
  const jsonBytes = enc.encode(json).length;
  json += " ".repeat((8 - (jsonBytes % 8)) % 8);
  const body = enc.encode(json);
  const header = new Uint8Array(8 + body.length);
  new DataView(header.buffer).setBigUint64(0, BigInt(body.length), true);
  header.set(body, 8);
  return { header, order, dataLength: offset };
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/**
 * Encodes tensors as safetensors bytes, laid out as the reference writer
 * does: tensors by alignment (8-byte types first) then name, the header
 * padded with spaces to a multiple of 8 bytes.
 *
 * @example
 * ```ts
 * import { encodeSafetensors } from "tokenlab/io/safetensors.ts";
 * const bytes = encodeSafetensors(new Map(), { metadata: { format: "pt" } });
 * console.log(new TextDecoder().decode(bytes.subarray(8))); // {"__metadata__":{"format":"pt"}}     (padded)
 * ```
 */
export function encodeSafetensors(
  tensors: SafetensorsInput,
  options: WriteSafetensorsOptions = {},
): Uint8Array {
  const { header, order, dataLength } = prepare(tensors, options);
  const out = new Uint8Array(header.length + dataLength);
  out.set(header, 0);
  let at = header.length;
  for (const { bytes } of order) {
    out.set(bytes, at);
    at += bytes.length;
  }
  return out;
}

function filePath(path: string | URL): string {
  if (path instanceof URL) {
    if (path.protocol !== "file:") {
      throw new TypeError(`expected a file: URL, found ${path.href}`);
    }
    return decodeURIComponent(path.pathname);
  }
  return path;
}

/** Reads exactly `length` bytes at the handle's position (fewer: the file ended). */
async function readFull(
  file: Deno.FsFile,
  length: number,
): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  let got = 0;
  while (got < length) {
    const n = await file.read(out.subarray(got));
    if (n === null) break;
    got += n;
  }
  return got === length ? out : out.subarray(0, got);
}

/**
 * Reads a safetensors file, validating it; each tensor's data is a view of
 * one buffer holding the file's data where aligned, a copy where not.
 *
 * Only a regular file is read (a folder, FIFO or device is refused before
 * it is opened; a link is followed). The header length and the header are
 * read and checked first, through one open handle; only then are the data
 * after them read (as many bytes as the header says the tensors cover), so
 * a file whose header is damaged costs no more than its header.
 *
 * @example
 * ```ts
 * import { readSafetensors, writeSafetensors } from "tokenlab/io/safetensors.ts";
 * const dir = await Deno.makeTempDir();
 * await writeSafetensors(`${dir}/w.safetensors`, { w: { dtype: "int32", shape: [3], data: new Int32Array([1, 2, 3]) } });
 * const { tensors } = await readSafetensors(`${dir}/w.safetensors`);
 * console.log(tensors.get("w")?.data); // Int32Array(3) [ 1, 2, 3 ]
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function readSafetensors(
  path: string | URL,
): Promise<SafetensorsContents> {
  const label = filePath(path);
  checkHost();
  const notFile = (info: Deno.FileInfo) =>
    new CheckpointError(
      `cannot read ${label}: expected a safetensors file, found ${
        info.isDirectory
          ? "a directory; name the file inside it"
          : "something that is not a regular file (a FIFO, socket or device); give the path of a .safetensors file"
      }`,
    );
  try {
    // Before opening: opening a FIFO would wait for a writer.
    const before = await Deno.stat(path);
    if (!before.isFile) throw notFile(before);
    using file = await Deno.open(path, { read: true });
    const info = await file.stat();
    if (!info.isFile) throw notFile(info);
    const head = await readFull(file, 8);
    if (head.length < 8) throw tooShort(head.length, label);
    const n = headerLength(head, info.size, label);
    const headerBytes = await readFull(file, n);
    const dataLength = info.size - 8 - n;
    if (headerBytes.length < n) {
      throw new CheckpointError(
        `cannot read ${label}: expected a header of ${n} bytes, found ${headerBytes.length} (the file shrank while it was read); read it again when it is whole`,
      );
    }
    const { entries, metadata } = parseHeader(headerBytes, dataLength, label);
    const data = await readFull(file, dataLength);
    const more = await file.read(new Uint8Array(1));
    if (data.length !== dataLength || more !== null) {
      throw new CheckpointError(
        `cannot read ${label}: expected ${dataLength} bytes of data after the header, as the file's size said when it was opened, found ${
          more !== null ? "more" : data.length
        } (the file changed while it was read); read it again when it is whole`,
      );
    }
    return { tensors: tensorsOf(entries, data, false), metadata };
  } catch (e) {
    if (e instanceof CheckpointError) throw e;
    throw notAFileError(label, e, "a safetensors file", "file") ?? e;
  }
}

/**
 * Writes tensors to a safetensors file atomically: to a temporary file in the
 * same folder, then renamed over `path`; on any error the temporary file is
 * removed and an existing file at `path` is left as it was.
 *
 * @example
 * ```ts
 * import { writeSafetensors } from "tokenlab/io/safetensors.ts";
 * const dir = await Deno.makeTempDir();
 * await writeSafetensors(`${dir}/m.safetensors`, { b: { dtype: "float32", shape: [1], data: new Float32Array([0.5]) } }, { metadata: { format: "pt" } });
 * console.log((await Deno.stat(`${dir}/m.safetensors`)).size); // 100
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeSafetensors(
  path: string | URL,
  tensors: SafetensorsInput,
  options: WriteSafetensorsOptions = {},
): Promise<void> {
  const { header, order } = prepare(tensors, options);
  // Replacing an existing file is what saving weights again means; the
  // write is atomic, so a failure leaves the old file as it was.
  await writeFileAtomic(path, [header, ...order.map((o) => o.bytes)], {
    overwrite: true,
  });
}
