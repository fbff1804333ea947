/**
 * Writing one plain tensor as a `torch.save` file that PyTorch's `torch.load`
 * reads back exactly, in plain TypeScript (no Python).
 *
 * The archive has the layout torch 1.13's writer produces, byte for byte: a
 * ZIP of STORED entries `<name>/data.pkl` (a protocol-2 pickle that calls
 * `torch._utils._rebuild_tensor_v2` on a persistent-id storage),
 * `<name>/data/0` (the storage's bytes, little-endian) and `<name>/version`
 * (`"3\n"`); each entry's data starts on a 64-byte boundary (padding in an
 * `FB` extra field, as torch does), each is followed by a data descriptor, and
 * the archive ends with Zip64 end records. `<name>` is the file name without
 * its last extension, as torch derives it.
 *
 * @module
 */

import {
  checkRawTensor,
  itemSize,
  numel,
  type RawDType,
  type RawTensor,
} from "../raw_tensor.ts";
import { CheckpointError } from "../checkpoint_error.ts";
import { crc32 } from "../crc32.ts";
import { filePath, writeFileAtomic } from "../atomic_write.ts";

/** torch's storage class for each dtype (what `data.pkl` names). */
const STORAGE_CLASS: Record<RawDType, string> = {
  float64: "DoubleStorage",
  float32: "FloatStorage",
  float16: "HalfStorage",
  bfloat16: "BFloat16Storage",
  int64: "LongStorage",
  int32: "IntStorage",
  int16: "ShortStorage",
  int8: "CharStorage",
  uint8: "ByteStorage",
  bool: "BoolStorage",
};

/** Options of {@linkcode encodeTorchTensor}. */
export interface EncodeTorchTensorOptions {
  /**
   * The folder name inside the archive. Default `"archive"` (what torch
   * writes when saving to a buffer); {@linkcode writeTorchTensor} uses the
   * file name without its last extension, as `torch.save(t, path)` does.
   */
  archiveName?: string;
  /**
   * The order of `raw`'s axes in the stored bytes, slowest first (default
   * `[0, 1, ..., n-1]`: contiguous). Another order writes a permuted view,
   * as `torch.save(x.permute(...))` does: e.g. `[0, 2, 3, 1]` for a
   * `[2, k, H, W]` tensor stored as `[2, H, W, k]` (the official score-map
   * files). `torch.load` gives the same tensor either way.
   */
  memoryOrder?: readonly number[];
}

/** Options of {@linkcode writeTorchTensor}. */
export interface WriteTorchTensorOptions extends EncodeTorchTensorOptions {
  /** Replace an existing file at the path (default false: refuse). */
  overwrite?: boolean;
  /**
   * Flush the file to the disk before it is renamed into place (default
   * true). `false` is faster for many small files; a crash of the machine
   * (not of the process) may then leave an empty file.
   */
  sync?: boolean;
}

// ---------------------------------------------------------------------------
// The pickle: exactly what CPython's protocol-2 pickler writes for
// torch.Tensor.__reduce_ex__ in torch 1.13.

class PickleBytes {
  #parts: number[] = [];
  #memo = 0;
  get bytes(): Uint8Array {
    return Uint8Array.from(this.#parts);
  }
  op(code: number): void {
    this.#parts.push(code);
  }
  u16(v: number): void {
    this.#parts.push(v & 0xff, (v >>> 8) & 0xff);
  }
  u32(v: number): void {
    this.#parts.push(
      v & 0xff,
      (v >>> 8) & 0xff,
      (v >>> 16) & 0xff,
      (v >>> 24) & 0xff,
    );
  }
  ascii(s: string): void {
    for (let i = 0; i < s.length; i++) this.#parts.push(s.charCodeAt(i));
  }
  /** BINPUT / LONG_BINPUT: the pickler memoizes every string and tuple. */
  memoize(): void {
    const i = this.#memo++;
    if (i < 256) this.#parts.push(0x71, i); // BINPUT
    else this.op(0x72), this.u32(i); // LONG_BINPUT
  }
  global(module: string, name: string): void {
    this.op(0x63); // GLOBAL
    this.ascii(`${module}\n${name}\n`);
    this.memoize();
  }
  str(s: string): void {
    const b = new TextEncoder().encode(s);
    this.op(0x58); // BINUNICODE
    this.u32(b.length);
    for (const x of b) this.#parts.push(x);
    this.memoize();
  }
  int(v: number): void {
    if (v >= 0 && v <= 0xff) this.#parts.push(0x4b, v); // BININT1
    else if (v >= 0 && v <= 0xffff) this.op(0x4d), this.u16(v); // BININT2
    else if (v >= -0x80000000 && v <= 0x7fffffff) this.op(0x4a), this.u32(v); // BININT
    else {
      // LONG1: little-endian two's complement, (bit_length >> 3) + 1 bytes.
      let x = BigInt(v);
      const bitLength = (x < 0n ? -x : x).toString(2).length;
      let n = (bitLength >> 3) + 1;
      const out: number[] = [];
      for (let i = 0; i < n; i++) out.push(Number(x & 0xffn)), x >>= 8n;
      if (v < 0 && n > 1 && out[n - 1] === 0xff && (out[n - 2] & 0x80)) {
        out.pop();
        n--;
      }
      this.#parts.push(0x8a, n, ...out);
    }
  }
  tuple(items: readonly number[]): void {
    if (items.length === 0) {
      this.op(0x29); // EMPTY_TUPLE (never memoized)
      return;
    }
    if (items.length > 3) this.op(0x28); // MARK
    for (const v of items) this.int(v);
    this.op(items.length > 3 ? 0x74 : 0x84 + items.length); // TUPLE / TUPLE1-3
    this.memoize();
  }
}

function encodePickle(
  dtype: RawDType,
  shape: readonly number[],
  stride: readonly number[],
  storageNumel: number,
): Uint8Array {
  const p = new PickleBytes();
  p.op(0x80), p.op(2); // PROTO 2
  p.global("torch._utils", "_rebuild_tensor_v2");
  p.op(0x28); // MARK: the arguments
  p.op(0x28); // MARK: the persistent id
  p.str("storage");
  p.global("torch", STORAGE_CLASS[dtype]);
  p.str("0");
  p.str("cpu");
  p.int(storageNumel);
  p.op(0x74), p.memoize(); // TUPLE
  p.op(0x51); // BINPERSID
  p.int(0); // storage offset
  p.tuple(shape);
  p.tuple(stride);
  p.op(0x89); // NEWFALSE: requires_grad
  p.global("collections", "OrderedDict");
  p.op(0x29), p.op(0x52), p.memoize(); // EMPTY_TUPLE REDUCE: OrderedDict()
  p.op(0x74), p.memoize(); // TUPLE: the arguments
  p.op(0x52), p.memoize(); // REDUCE
  p.op(0x2e); // STOP
  return p.bytes;
}

// ---------------------------------------------------------------------------
// The ZIP archive, as PyTorch's miniz-based writer lays it out.

const ALIGN = 64;
const UTF8 = 0x0800; // names are UTF-8
const DESCRIPTOR = 0x0008; // sizes and CRC follow the data (not for empty entries)

function zipArchive(entries: { name: string; data: Uint8Array }[]): Uint8Array {
  const enc = new TextEncoder();
  const names = entries.map((e) => enc.encode(e.name));
  const pads: number[] = [];
  let size = 0;
  for (let i = 0; i < entries.length; i++) {
    const start = size + 30 + names[i].length + 4;
    const pad = (ALIGN - (start % ALIGN)) % ALIGN;
    pads.push(pad);
    const n = entries[i].data.length;
    size = start + pad + n + (n > 0 ? 16 : 0);
  }
  const cdOffset = size;
  for (const n of names) size += 46 + n.length;
  const cdSize = size - cdOffset;
  size += 56 + 20 + 22;
  if (size > 0xfffffffe) {
    throw new CheckpointError(
      `cannot write a torch file of ${size} bytes: this writer handles archives below 4 GiB; save large tensors with writeSafetensors instead`,
    );
  }
  const out = new Uint8Array(size);
  const v = new DataView(out.buffer);
  const crcs: number[] = [];
  const offsets: number[] = [];
  let p = 0;
  for (let i = 0; i < entries.length; i++) {
    const data = entries[i].data, name = names[i], pad = pads[i];
    const crc = crc32(data);
    crcs.push(crc);
    offsets.push(p);
    v.setUint32(p, 0x04034b50, true); // local file header
    v.setUint16(p + 6, data.length > 0 ? UTF8 | DESCRIPTOR : UTF8, true);
    v.setUint16(p + 26, name.length, true);
    v.setUint16(p + 28, pad + 4, true);
    out.set(name, p + 30);
    p += 30 + name.length;
    out[p] = 0x46, out[p + 1] = 0x42; // "FB": torch's padding field
    v.setUint16(p + 2, pad, true);
    out.fill(0x5a, p + 4, p + 4 + pad); // "Z"
    p += 4 + pad;
    out.set(data, p);
    p += data.length;
    if (data.length > 0) {
      v.setUint32(p, 0x08074b50, true); // data descriptor
      v.setUint32(p + 4, crc, true);
      v.setUint32(p + 8, data.length, true);
      v.setUint32(p + 12, data.length, true);
      p += 16;
    }
  }
  for (let i = 0; i < entries.length; i++) {
    const name = names[i], n = entries[i].data.length;
    v.setUint32(p, 0x02014b50, true); // central directory header
    v.setUint16(p + 8, n > 0 ? UTF8 | DESCRIPTOR : UTF8, true);
    v.setUint32(p + 16, crcs[i], true);
    v.setUint32(p + 20, n, true);
    v.setUint32(p + 24, n, true);
    v.setUint16(p + 28, name.length, true);
    v.setUint32(p + 42, offsets[i], true);
    out.set(name, p + 46);
    p += 46 + name.length;
  }
  const z64 = p;
  v.setUint32(p, 0x06064b50, true); // Zip64 end of central directory
  v.setBigUint64(p + 4, 44n, true);
  v.setUint16(p + 12, 0x031e, true);
  v.setUint16(p + 14, 0x002d, true);
  v.setBigUint64(p + 24, BigInt(entries.length), true);
  v.setBigUint64(p + 32, BigInt(entries.length), true);
  v.setBigUint64(p + 40, BigInt(cdSize), true);
  v.setBigUint64(p + 48, BigInt(cdOffset), true);
  p += 56;
  v.setUint32(p, 0x07064b50, true); // Zip64 locator
  v.setBigUint64(p + 8, BigInt(z64), true);
  v.setUint32(p + 16, 1, true);
  p += 20;
  v.setUint32(p, 0x06054b50, true); // end of central directory
  v.setUint16(p + 8, entries.length, true);
  v.setUint16(p + 10, entries.length, true);
  v.setUint32(p + 12, cdSize, true);
  v.setUint32(p + 16, cdOffset, true);
  return out;
}

// ---------------------------------------------------------------------------
// The tensor's storage bytes.

function checkOrder(order: readonly number[], rank: number): void {
  const seen = new Set<number>();
  for (const a of order) {
    if (!Number.isInteger(a) || a < 0 || a >= rank || seen.has(a)) break;
    seen.add(a);
  }
  if (order.length !== rank || seen.size !== rank) {
    throw new RangeError(
      `memoryOrder [${
        order.join(", ")
      }]: expected a permutation of the ${rank} axes 0..${
        rank - 1
      }, slowest first; found something else`,
    );
  }
}

/** The storage bytes of `raw` laid out in `order`, and the view's strides. */
function storageBytes(
  raw: RawTensor,
  order: readonly number[],
): { bytes: Uint8Array; stride: number[] } {
  const shape = raw.shape;
  const rank = shape.length;
  const stride = new Array<number>(rank).fill(0);
  let s = 1;
  for (let j = rank - 1; j >= 0; j--) {
    stride[order[j]] = s;
    s *= shape[order[j]];
  }
  const d = raw.data;
  const src = new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
  const identity = order.every((a, i) => a === i);
  if (identity) return { bytes: src, stride };
  // Permute: walk the source in row-major order, writing at the strides.
  const size = itemSize(raw.dtype);
  const words = size === 8 ? 2 : 1;
  const wordSize = size === 8 ? 4 : size;
  const Cls = wordSize === 4
    ? Uint32Array
    : wordSize === 2
    ? Uint16Array
    : Uint8Array;
  const aligned = src.slice(); // aligned copy for the word view
  const from = new Cls(aligned.buffer, 0, aligned.length / wordSize);
  const to = new Cls(from.length);
  const n = numel(shape);
  const idx = new Array<number>(rank).fill(0);
  let dst = 0;
  for (let i = 0; i < n; i++) {
    for (let w = 0; w < words; w++) to[dst * words + w] = from[i * words + w];
    for (let ax = rank - 1; ax >= 0; ax--) {
      idx[ax]++;
      dst += stride[ax];
      if (idx[ax] < shape[ax]) break;
      dst -= stride[ax] * shape[ax];
      idx[ax] = 0;
    }
  }
  return { bytes: new Uint8Array(to.buffer), stride };
}

/**
 * Encodes one tensor as the bytes of a `torch.save` file (a torch 1.13 ZIP
 * archive; see the module doc). `torch.load` gives back the same dtype,
 * shape and elements.
 *
 * @example
 * ```ts
 * import { encodeTorchTensor } from "tokenlab/io/torch/write.ts";
 * const bytes = encodeTorchTensor({ dtype: "float32", shape: [2], data: new Float32Array([1, 2]) });
 * console.log(bytes[0] === 0x50 && bytes[1] === 0x4b); // true (a ZIP archive)
 * ```
 */
export function encodeTorchTensor(
  raw: RawTensor,
  options: EncodeTorchTensorOptions = {},
): Uint8Array {
  checkRawTensor(raw, "encodeTorchTensor");
  const name = options.archiveName ?? "archive";
  if (name.includes("/") || name.includes("\\")) {
    throw new RangeError(
      `encodeTorchTensor: archiveName ${
        JSON.stringify(name)
      } must not contain a slash; give a plain folder name`,
    );
  }
  const rank = raw.shape.length;
  const order = options.memoryOrder ?? raw.shape.map((_, i) => i);
  checkOrder(order, rank);
  const n = numel(raw.shape);
  const { bytes, stride } = storageBytes(raw, order);
  const pkl = encodePickle(raw.dtype, raw.shape, stride, n);
  return zipArchive([
    { name: `${name}/data.pkl`, data: pkl },
    { name: `${name}/data/0`, data: bytes },
    { name: `${name}/version`, data: new TextEncoder().encode("3\n") },
  ]);
}

/** The archive folder torch derives from a path: the base name without its last extension. */
function torchArchiveName(base: string): string {
  const dot = base.lastIndexOf(".");
  return dot > 0 ? base.slice(0, dot) : base;
}

/**
 * Writes one tensor as a `torch.save` file (what `torch.save(t, path)` writes
 * with torch 1.13), atomically: to a temporary file in the same folder, then
 * moved into place. An existing file is never replaced unless
 * `overwrite: true`.
 *
 * @example
 * ```ts
 * import { writeTorchTensor } from "tokenlab/io/torch/write.ts";
 * import { readTorchFile } from "tokenlab/io/torch/read.ts";
 * const dir = await Deno.makeTempDir();
 * await writeTorchTensor(`${dir}/t.pt`, { dtype: "int64", shape: [3], data: new BigInt64Array([1n, 2n, 3n]) });
 * console.log((await readTorchFile(`${dir}/t.pt`) as { data: unknown }).data); // BigInt64Array(3) [ 1n, 2n, 3n ]
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeTorchTensor(
  path: string | URL,
  raw: RawTensor,
  options: WriteTorchTensorOptions = {},
): Promise<void> {
  const target = filePath(path);
  const slash = Math.max(target.lastIndexOf("/"), target.lastIndexOf("\\"));
  const bytes = encodeTorchTensor(raw, {
    archiveName: options.archiveName ??
      torchArchiveName(target.slice(slash + 1)),
    memoryOrder: options.memoryOrder,
  });
  await writeFileAtomic(target, bytes, options);
}
