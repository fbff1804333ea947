/**
 * A plain typed tensor record, with no tfjs in it, shared by the checkpoint
 * readers and writers (`torch.ts`, `safetensors.ts`), and the conversions to
 * and from float32 (including float16 and bfloat16 bit patterns).
 *
 * @module
 */

/** The element types a {@linkcode RawTensor} can hold. */
export type RawDType =
  | "float64"
  | "float32"
  | "float16"
  | "bfloat16"
  | "int64"
  | "int32"
  | "int16"
  | "int8"
  | "uint8"
  | "bool";

/** Every {@linkcode RawDType}, in a fixed order. */
export const RAW_DTYPES: readonly RawDType[] = [
  "float64",
  "float32",
  "float16",
  "bfloat16",
  "int64",
  "int32",
  "int16",
  "int8",
  "uint8",
  "bool",
];

/**
 * The typed array that holds a {@linkcode RawTensor}'s elements: float16 and
 * bfloat16 are raw bits in a `Uint16Array`, bool is one byte (0 or 1) each.
 */
export type RawData =
  | Float64Array
  | Float32Array
  | Uint16Array
  | BigInt64Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint8Array;

/** A dense row-major (C order) tensor: element type, shape and elements. */
export interface RawTensor {
  /** Element type. */
  dtype: RawDType;
  /** Sizes of the axes; `[]` for a scalar. */
  shape: number[];
  /** The elements in row-major order; its class depends on `dtype`. */
  data: RawData;
}

/**
 * Bytes per element of a dtype.
 *
 * @example
 * ```ts
 * import { itemSize } from "tokenlab/io/raw_tensor.ts";
 * console.log(itemSize("bfloat16")); // 2
 * ```
 */
export function itemSize(dtype: RawDType): number {
  switch (dtype) {
    case "float64":
    case "int64":
      return 8;
    case "float32":
    case "int32":
      return 4;
    case "float16":
    case "bfloat16":
    case "int16":
      return 2;
    case "int8":
    case "uint8":
    case "bool":
      return 1;
  }
  throw new TypeError(
    `unknown dtype ${JSON.stringify(dtype)}: expected one of ${
      RAW_DTYPES.join(", ")
    }`,
  );
}

/**
 * Whether `dtype` names a {@linkcode RawDType}.
 *
 * @example
 * ```ts
 * import { isRawDType } from "tokenlab/io/raw_tensor.ts";
 * console.log(isRawDType("float16"), isRawDType("complex64")); // true false
 * ```
 */
export function isRawDType(dtype: unknown): dtype is RawDType {
  return typeof dtype === "string" &&
    (RAW_DTYPES as readonly string[]).includes(dtype);
}

/**
 * The typed array class that holds elements of `dtype`.
 *
 * @example
 * ```ts
 * import { dataClass } from "tokenlab/io/raw_tensor.ts";
 * console.log(dataClass("float16").name); // Uint16Array
 * ```
 */
export function dataClass(dtype: RawDType):
  | Float64ArrayConstructor
  | Float32ArrayConstructor
  | Uint16ArrayConstructor
  | BigInt64ArrayConstructor
  | Int32ArrayConstructor
  | Int16ArrayConstructor
  | Int8ArrayConstructor
  | Uint8ArrayConstructor {
  switch (dtype) {
    case "float64":
      return Float64Array;
    case "float32":
      return Float32Array;
    case "float16":
    case "bfloat16":
      return Uint16Array;
    case "int64":
      return BigInt64Array;
    case "int32":
      return Int32Array;
    case "int16":
      return Int16Array;
    case "int8":
      return Int8Array;
    case "uint8":
    case "bool":
      return Uint8Array;
  }
  throw new TypeError(
    `unknown dtype ${JSON.stringify(dtype)}: expected one of ${
      RAW_DTYPES.join(", ")
    }`,
  );
}

/**
 * A typed array for `dtype` over `byteLength` bytes of `buffer` from
 * `byteOffset` (no copy; the offset must be a multiple of the item size).
 *
 * @example
 * ```ts
 * import { dataView } from "tokenlab/io/raw_tensor.ts";
 * const bytes = new Uint8Array(8);
 * console.log(dataView("float32", bytes.buffer, 0, 8).length); // 2
 * ```
 */
export function dataView(
  dtype: RawDType,
  buffer: ArrayBufferLike,
  byteOffset: number,
  byteLength: number,
): RawData {
  const size = itemSize(dtype);
  return new (dataClass(dtype))(
    buffer as ArrayBuffer,
    byteOffset,
    byteLength / size,
  );
}

/**
 * A zero-filled typed array for `n` elements of `dtype`. Throws a
 * `RangeError` that names the count, the dtype and the bytes when `n` is
 * not a non-negative safe integer or the memory cannot be allocated (the
 * checkpoint readers check declared shapes before they get here).
 *
 * @example
 * ```ts
 * import { allocData } from "tokenlab/io/raw_tensor.ts";
 * console.log(allocData("int64", 3)); // BigInt64Array(3) [ 0n, 0n, 0n ]
 * ```
 */
export function allocData(dtype: RawDType, n: number): RawData {
  const cls = dataClass(dtype);
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new RangeError(
      `allocData: expected a non-negative whole number of ${dtype} elements, found ${n}`,
    );
  }
  try {
    return new cls(n);
  } catch (e) {
    throw new RangeError(
      `allocData: cannot allocate ${n} ${dtype} elements (${
        n * itemSize(dtype)
      } bytes): ${(e as Error).message}`,
      { cause: e },
    );
  }
}

/**
 * The number of elements of a tensor of this shape (1 for `[]`); throws on a
 * size that is not a non-negative integer.
 *
 * @example
 * ```ts
 * import { numel } from "tokenlab/io/raw_tensor.ts";
 * console.log(numel([2, 3, 4]), numel([])); // 24 1
 * ```
 */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new RangeError(
        `bad shape [${
          shape.join(", ")
        }]: expected non-negative integer sizes, found ${d}`,
      );
    }
    n *= d;
  }
  if (!Number.isSafeInteger(n)) {
    throw new RangeError(
      `bad shape [${shape.join(", ")}]: ${n} elements is too many`,
    );
  }
  return n;
}

/**
 * Checks that `raw` is a well-formed {@linkcode RawTensor}: known dtype,
 * matching typed array class and `data.length === numel(shape)`. Throws a
 * `TypeError` naming `what` otherwise.
 *
 * @example
 * ```ts
 * import { checkRawTensor } from "tokenlab/io/raw_tensor.ts";
 * checkRawTensor({ dtype: "float32", shape: [2], data: new Float32Array(2) });
 * ```
 */
export function checkRawTensor(raw: RawTensor, what = "tensor"): void {
  if (raw === null || typeof raw !== "object") {
    throw new TypeError(
      `${what}: expected a RawTensor {dtype, shape, data}, found ${raw}`,
    );
  }
  if (!isRawDType(raw.dtype)) {
    throw new TypeError(
      `${what}: unknown dtype ${JSON.stringify(raw.dtype)}; expected one of ${
        RAW_DTYPES.join(", ")
      }`,
    );
  }
  if (!Array.isArray(raw.shape)) {
    throw new TypeError(
      `${what}: expected shape to be an array of sizes, found ${typeof raw
        .shape}`,
    );
  }
  const n = numel(raw.shape);
  const cls = dataClass(raw.dtype);
  if (!(raw.data instanceof cls)) {
    const found = (raw.data as { constructor?: { name?: string } })
      ?.constructor?.name ?? typeof raw.data;
    throw new TypeError(
      `${what}: dtype ${raw.dtype} needs its data in a ${cls.name}, found a ${found}${
        raw.dtype === "float16" || raw.dtype === "bfloat16"
          ? " (float16/bfloat16 data are raw bits; convert with float32ToFloat16Bits or rawFromFloat32)"
          : ""
      }`,
    );
  }
  if (raw.data.length !== n) {
    throw new TypeError(
      `${what}: shape [${
        raw.shape.join(", ")
      }] needs ${n} elements, found ${raw.data.length} in data`,
    );
  }
}

let halfTable: Float32Array | undefined;

/** All 65536 float16 bit patterns decoded, built once on first use. */
function halfToFloatTable(): Float32Array {
  if (halfTable) return halfTable;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const man = h & 0x3ff;
    let v: number;
    if (exp === 0) v = man * 2 ** -24; // zero and subnormals
    else if (exp === 31) v = man === 0 ? Infinity : NaN;
    else v = (1024 + man) * 2 ** (exp - 25);
    t[h] = sign * v;
  }
  // NaN bit patterns: keep the payload rather than the canonical NaN.
  const u = new Uint32Array(t.buffer);
  for (let h = 0; h < 65536; h++) {
    if ((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0) {
      u[h] = ((h & 0x8000) << 16) | 0x7f800000 | ((h & 0x3ff) << 13);
    }
  }
  halfTable = t;
  return t;
}

/**
 * Decodes float16 bit patterns into float32 values (exact: every float16 is a
 * float32; NaN payloads kept).
 *
 * @example
 * ```ts
 * import { float16BitsToFloat32 } from "tokenlab/io/raw_tensor.ts";
 * console.log(float16BitsToFloat32(new Uint16Array([0x3c00, 0xc000, 0x7c00])));
 * // Float32Array(3) [ 1, -2, Infinity ]
 * ```
 */
export function float16BitsToFloat32(bits: Uint16Array): Float32Array {
  const t = halfToFloatTable();
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = t[bits[i]];
  return out;
}

/**
 * Encodes float32 values as float16 bit patterns, rounding to nearest with
 * ties to even; values past the float16 range become infinities, tiny values
 * subnormals or signed zeros, NaN stays NaN.
 *
 * @example
 * ```ts
 * import { float32ToFloat16Bits } from "tokenlab/io/raw_tensor.ts";
 * const bits = float32ToFloat16Bits(new Float32Array([1, 65504, 1e6]));
 * console.log([...bits].map((b) => b.toString(16))); // [ "3c00", "7bff", "7c00" ]
 * ```
 */
export function float32ToFloat16Bits(x: Float32Array): Uint16Array {
  const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const out = new Uint16Array(x.length);
  for (let i = 0; i < u.length; i++) {
    const f = u[i];
    const sign = (f >>> 16) & 0x8000;
    const exp = (f >>> 23) & 0xff;
    const man = f & 0x7fffff;
    if (exp === 0xff) {
      // Infinity, or NaN (quiet, keeping the top payload bits).
      out[i] = man === 0 ? sign | 0x7c00 : sign | 0x7e00 | (man >>> 13);
      continue;
    }
    const e = exp - 112; // rebias 127 -> 15
    if (e >= 31) {
      out[i] = sign | 0x7c00;
    } else if (e <= 0) {
      if (e < -10) {
        out[i] = sign; // below half the smallest subnormal: signed zero
        continue;
      }
      const m = man | 0x800000;
      const shift = 14 - e;
      let h = m >>> shift;
      const rem = m & ((1 << shift) - 1);
      const half = 1 << (shift - 1);
      if (rem > half || (rem === half && (h & 1))) h++;
      out[i] = sign | h; // h may carry into the smallest normal: correct
    } else {
      let h = (e << 10) | (man >>> 13);
      const rem = man & 0x1fff;
      if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++;
      out[i] = sign | h; // a carry out of the largest finite gives infinity
    }
  }
  return out;
}

/**
 * Encodes float32 values as bfloat16 bit patterns (the top 16 bits), rounding
 * to nearest with ties to even; NaN stays NaN.
 *
 * @example
 * ```ts
 * import { float32ToBfloat16Bits } from "tokenlab/io/raw_tensor.ts";
 * console.log(float32ToBfloat16Bits(new Float32Array([1, -2]))); // Uint16Array(2) [ 16256, 49152 ]
 * ```
 */
export function float32ToBfloat16Bits(x: Float32Array): Uint16Array {
  const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const out = new Uint16Array(x.length);
  for (let i = 0; i < u.length; i++) {
    const f = u[i];
    if ((f & 0x7f800000) === 0x7f800000 && (f & 0x7fffff) !== 0) {
      out[i] = (f >>> 16) | 0x40; // quiet NaN
    } else {
      out[i] = (f + 0x7fff + ((f >>> 16) & 1)) >>> 16;
    }
  }
  return out;
}

/**
 * Decodes bfloat16 bit patterns into float32 values (exact).
 *
 * @example
 * ```ts
 * import { bfloat16BitsToFloat32 } from "tokenlab/io/raw_tensor.ts";
 * console.log(bfloat16BitsToFloat32(new Uint16Array([0x3f80]))); // Float32Array(1) [ 1 ]
 * ```
 */
export function bfloat16BitsToFloat32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  const u = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) u[i] = bits[i] << 16;
  return out;
}

/**
 * The elements of `raw` as a new Float32Array: exact for float32, float16,
 * bfloat16, bool and the integer types up to 2^24 in magnitude; float64 and
 * larger integers round to the nearest float32 (int64 through `Number`).
 *
 * @example
 * ```ts
 * import { toFloat32 } from "tokenlab/io/raw_tensor.ts";
 * const raw = { dtype: "float16" as const, shape: [2], data: new Uint16Array([0x3c00, 0x3800]) };
 * console.log(toFloat32(raw)); // Float32Array(2) [ 1, 0.5 ]
 * ```
 */
export function toFloat32(raw: RawTensor): Float32Array {
  const d = raw.data;
  switch (raw.dtype) {
    case "float16":
      return float16BitsToFloat32(d as Uint16Array);
    case "bfloat16":
      return bfloat16BitsToFloat32(d as Uint16Array);
    case "int64": {
      const b = d as BigInt64Array;
      const out = new Float32Array(b.length);
      for (let i = 0; i < b.length; i++) out[i] = Number(b[i]);
      return out;
    }
    case "bool": {
      const b = d as Uint8Array;
      const out = new Float32Array(b.length);
      for (let i = 0; i < b.length; i++) out[i] = b[i] ? 1 : 0;
      return out;
    }
    case "float32":
      return (d as Float32Array).slice();
    default:
      return Float32Array.from(d as Exclude<RawData, BigInt64Array>);
  }
}

/**
 * A {@linkcode RawTensor} of `dtype` (float32 by default) from float32
 * values: float16/bfloat16 round to nearest even, integer dtypes need
 * integral values in range (throws otherwise), bool is `x !== 0`.
 *
 * @example
 * ```ts
 * import { rawFromFloat32 } from "tokenlab/io/raw_tensor.ts";
 * const raw = rawFromFloat32(new Float32Array([1, 2, 3, 4]), [2, 2], "float16");
 * console.log(raw.dtype, raw.shape, raw.data); // float16 [ 2, 2 ] Uint16Array(4) [ 15360, 16384, 16896, 17408 ]
 * ```
 */
export function rawFromFloat32(
  data: Float32Array,
  shape: number[],
  dtype: RawDType = "float32",
): RawTensor {
  const n = numel(shape);
  if (!(data instanceof Float32Array)) {
    throw new TypeError(
      `rawFromFloat32: expected the data in a Float32Array, found ${
        (data as { constructor?: { name?: string } })?.constructor?.name ??
          typeof data
      }`,
    );
  }
  if (data.length !== n) {
    throw new RangeError(
      `rawFromFloat32: shape [${
        shape.join(", ")
      }] needs ${n} elements, found ${data.length}`,
    );
  }
  const out = { dtype, shape: [...shape] };
  switch (dtype) {
    case "float32":
      return { ...out, data: data.slice() };
    case "float64":
      return { ...out, data: Float64Array.from(data) };
    case "float16":
      return { ...out, data: float32ToFloat16Bits(data) };
    case "bfloat16":
      return { ...out, data: float32ToBfloat16Bits(data) };
    case "bool": {
      const b = new Uint8Array(n);
      for (let i = 0; i < n; i++) b[i] = data[i] !== 0 ? 1 : 0;
      return { ...out, data: b };
    }
    case "int64": {
      const b = new BigInt64Array(n);
      for (let i = 0; i < n; i++) {
        checkIntegral(data, i, -(2 ** 63), 2 ** 63, dtype);
        b[i] = BigInt(data[i]);
      }
      return { ...out, data: b };
    }
    case "int32":
    case "int16":
    case "int8":
    case "uint8": {
      const b = allocData(dtype, n) as Int32Array | Int16Array | Int8Array;
      const bits = dtype === "int32" ? 32 : dtype === "int16" ? 16 : 8;
      const lo = dtype === "uint8" ? 0 : -(2 ** (bits - 1));
      const hi = dtype === "uint8" ? 256 : 2 ** (bits - 1);
      for (let i = 0; i < n; i++) {
        checkIntegral(data, i, lo, hi, dtype);
        b[i] = data[i];
      }
      return { ...out, data: b };
    }
  }
  throw new TypeError(
    `rawFromFloat32: unknown dtype ${JSON.stringify(dtype)}; expected one of ${
      RAW_DTYPES.join(", ")
    }`,
  );
}

function checkIntegral(
  data: Float32Array,
  i: number,
  lo: number,
  hiExclusive: number,
  dtype: RawDType,
): void {
  const v = data[i];
  if (!Number.isInteger(v) || v < lo || v >= hiExclusive) {
    throw new RangeError(
      `rawFromFloat32: element ${i} is ${v}, which is not an integer in ${dtype}'s range [${lo}, ${hiExclusive}); round or clamp the values first`,
    );
  }
}
