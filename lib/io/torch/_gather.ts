/**
 * Gathering a checkpoint's tensors: opening the archive and its pickle,
 * checking every tensor's view (shape, strides, offset) against its storage
 * before anything is read, budgeting the bytes a read may allocate, then
 * reading each storage once and copying strided or byte-swapped views out
 * of it. Private to the torch reader.
 *
 * @module
 */

import { dataView, itemSize } from "../raw_tensor.ts";
import {
  DEFAULT_MAX_TOTAL_BYTES,
  defaultMaxTotalBytes,
  MAX_ENTRY_BYTES_ENV,
  MAX_TOTAL_BYTES_ENV,
  type ReadLimits,
  resolveReadLimits,
} from "../_limits.ts";
import { CheckpointError } from "../checkpoint_error.ts";
import { internalError, pathLabel } from "./_file.ts";
import { type CheckpointLimitOptions, TorchZip } from "./zip.ts";
import { type PickleValue, TorchTensor } from "./pickle_value.ts";
import { Unpickler } from "./_unpickler.ts";

/** A checkpoint opened and unpickled, its tensors checked but not yet loaded. */
export interface OpenCheckpoint {
  zip: TorchZip;
  prefix: string;
  bigEndian: boolean;
  root: PickleValue;
  tensors: TorchTensor[];
  limits: ReadLimits;
}

/** Opens the archive, reads its pickle and checks every tensor's view; the caller closes `zip`. */
export async function openCheckpoint(
  path: string | URL,
  options: CheckpointLimitOptions,
): Promise<OpenCheckpoint> {
  const label = pathLabel(path);
  const limits = resolveReadLimits(
    options,
    (message) => new CheckpointError(`cannot read ${label}: ${message}`),
  );
  const zip = await TorchZip.open(path, {
    expected:
      "a PyTorch checkpoint (the ZIP archive torch.save writes in torch >= 1.6)",
    maxEntryBytes: limits.maxEntryBytes,
    maxInflateRatio: limits.maxInflateRatio,
  });
  try {
    const names = zip.names();
    const pkls = names.filter((n) => /^[^/]+\/data\.pkl$/.test(n));
    let pkl = pkls[0];
    if (pkls.length > 1) {
      const firstFolder = names[0].split("/")[0];
      pkl = pkls.find((n) => n === `${firstFolder}/data.pkl`) ?? pkl;
    }
    if (!pkl) {
      const some = names.slice(0, 10).map((n) => JSON.stringify(n)).join(", ");
      throw new CheckpointError(
        `cannot read ${label}: expected a PyTorch checkpoint, a ZIP archive holding <folder>/data.pkl, found a ZIP archive without one (${names.length} entries${
          some ? ": " + some : ""
        }${
          names.length > 10 ? ", ..." : ""
        }); it was not written by torch.save, re-save the object with torch.save(obj, path)`,
      );
    }
    const prefix = pkl.slice(0, -"data.pkl".length);
    let bigEndian = false;
    if (zip.has(prefix + "byteorder")) {
      const order = new TextDecoder().decode(
        await zip.read(prefix + "byteorder"),
      ).trim();
      if (order !== "little" && order !== "big") {
        throw new CheckpointError(
          `cannot read ${label}: expected "little" or "big" in ${prefix}byteorder, found ${
            JSON.stringify(order)
          }; the archive is damaged, fetch it again`,
        );
      }
      bigEndian = order === "big";
    }
    const unpickler = new Unpickler(await zip.read(pkl), label);
    let root: PickleValue;
    try {
      root = unpickler.load();
    } catch (e) {
      throw internalError(e, `cannot read ${label}: ${pkl}`);
    }
    const ck = {
      zip,
      prefix,
      bigEndian,
      root,
      tensors: unpickler.tensors,
      limits,
    };
    checkTensorViews(ck);
    return ck;
  } catch (e) {
    zip.close();
    throw e;
  }
}

/**
 * A name for each tensor reachable from `root`, for messages: the dict keys
 * and list indices that lead to it (`state_dict.conv.weight`, `[0]`), the
 * first path found breadth first (none for a tensor deeper than 200
 * characters of path, or not reachable from the root).
 */
function tensorPaths(root: PickleValue): Map<TorchTensor, string> {
  const out = new Map<TorchTensor, string>();
  const seen = new Set<object>();
  const todo: [unknown, string][] = [[root, ""]];
  for (let i = 0; i < todo.length; i++) {
    const [v, at] = todo[i];
    if (v === null || typeof v !== "object" || seen.has(v)) continue;
    seen.add(v);
    if (v instanceof TorchTensor) out.set(v, at);
    // Deep nesting would make the paths' total length quadratic: names of
    // more than 200 characters are not followed further.
    else if (v instanceof Uint8Array || at.length > 200) continue;
    else if (Array.isArray(v)) {
      v.forEach((x, j) => todo.push([x, `${at}[${j}]`]));
    } else if (v instanceof Map) {
      for (const [k, x] of v) {
        todo.push([x, at ? `${at}.${String(k)}` : String(k)]);
      }
    } else {
      for (const [k, x] of Object.entries(v)) {
        todo.push([x, at ? `${at}.${k}` : k]);
      }
    }
  }
  return out;
}

/** How messages name a tensor: by its path from the root, when it has one. */
function tensorLabel(t: TorchTensor, paths: Map<TorchTensor, string>): string {
  const at = paths.get(t);
  return at === undefined
    ? `a tensor of shape [${t.shape.join(", ")}]`
    : at === ""
    ? "the tensor at the root"
    : `tensor ${JSON.stringify(at)}`;
}

/**
 * The number of elements of a shape whose sizes are non-negative safe
 * integers: 0 when one size is 0, Infinity when the product passes 2^53.
 */
function elementCount(shape: readonly number[]): number {
  if (shape.includes(0)) return 0;
  let n = 1;
  for (const d of shape) {
    n *= d;
    if (n > Number.MAX_SAFE_INTEGER) return Infinity;
  }
  return n;
}

/**
 * Checks every tensor's view against its storage before anything is read:
 * the element count a safe integer, the last element the view reaches
 * inside the storage, the storage no larger than its archive entry says.
 */
function checkTensorViews(ck: OpenCheckpoint): void {
  let paths: Map<TorchTensor, string> | undefined;
  const named = (t: TorchTensor) =>
    tensorLabel(t, paths ??= tensorPaths(ck.root));
  const bad = (t: TorchTensor, what: string) =>
    new CheckpointError(
      `cannot read ${ck.zip.path}: ${
        named(t)
      } (storage "${ck.prefix}data/${t.storage.key}"): ${what}; the checkpoint is damaged or was not written by torch.save, fetch it again`,
    );
  for (const t of ck.tensors) {
    const { offset, stride, storageNumel, key } = t.storage;
    const n = elementCount(t.shape);
    if (n === Infinity) {
      throw bad(
        t,
        `its shape (size) [${
          t.shape.join(", ")
        }] has more than 2^53 elements; expected at most as many as its storage of ${storageNumel} can give`,
      );
    }
    if (n > 0) {
      let last = offset;
      for (let i = 0; i < t.shape.length; i++) {
        last += (t.shape[i] - 1) * stride[i];
      }
      if (!(last < storageNumel)) {
        throw bad(
          t,
          `a tensor of shape [${t.shape.join(", ")}], stride [${
            stride.join(", ")
          }] at offset ${offset} reaches element ${
            Number.isSafeInteger(last) ? last : "beyond 2^53"
          } of a storage of ${storageNumel}`,
        );
      }
    }
    const entry = ck.zip.entry(`${ck.prefix}data/${key}`);
    const need = storageNumel * itemSize(t.dtype);
    if (entry && entry.size < need) {
      throw new CheckpointError(
        `cannot read ${ck.zip.path}: storage "${entry.name}" should hold ${storageNumel} ${t.dtype} elements (${need} bytes), found ${entry.size} bytes (for ${
          named(t)
        }); the archive is damaged, fetch it again`,
      );
    }
  }
}

function swapBytes(bytes: Uint8Array, size: number): void {
  for (let i = 0; i + size <= bytes.length; i += size) {
    for (let a = i, b = i + size - 1; a < b; a++, b--) {
      const t = bytes[a];
      bytes[a] = bytes[b];
      bytes[b] = t;
    }
  }
}

/** Copies a strided view of `src` into `dst` in row-major order (words = elements, or 2 per element). */
function gather(
  src: Uint8Array | Uint16Array | Uint32Array,
  dst: Uint8Array | Uint16Array | Uint32Array,
  words: 1 | 2,
  shape: number[],
  stride: number[],
  offset: number,
): void {
  const n = dst.length / words;
  if (n === 0) return;
  if (shape.length === 0) {
    for (let w = 0; w < words; w++) dst[w] = src[offset * words + w];
    return;
  }
  const last = shape.length - 1;
  const nLast = shape[last], sLast = stride[last];
  const idx = new Array<number>(shape.length).fill(0);
  let base = offset;
  let o = 0;
  const rows = n / nLast;
  for (let r = 0; r < rows; r++) {
    let p = base;
    if (words === 1) {
      for (let j = 0; j < nLast; j++, p += sLast) dst[o++] = src[p];
    } else {
      for (let j = 0; j < nLast; j++, p += sLast) {
        dst[o++] = src[2 * p];
        dst[o++] = src[2 * p + 1];
      }
    }
    for (let ax = last - 1; ax >= 0; ax--) {
      idx[ax]++;
      base += stride[ax];
      if (idx[ax] < shape[ax]) break;
      base -= stride[ax] * shape[ax];
      idx[ax] = 0;
    }
  }
}

function isContiguous(shape: number[], stride: number[]): boolean {
  let expect = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && stride[i] !== expect) return false;
    expect *= shape[i];
  }
  return true;
}

/** Whether a tensor is its whole storage, in order (its data can share the storage's bytes). */
function sharesStorage(t: TorchTensor): boolean {
  return t.storage.offset === 0 &&
    elementCount(t.shape) === t.storage.storageNumel &&
    isContiguous(t.shape, t.storage.stride);
}

/**
 * Before any storage is read: checks that each view of `byKey` expands to
 * at most `maxEntryBytes`, and that the storages plus the views copied out
 * of them come to at most the total limit, so that a small file declaring
 * many large views fails at once instead of after allocating them.
 */
function planTensorBytes(
  ck: OpenCheckpoint,
  byKey: Map<string, Set<TorchTensor>>,
): void {
  const { maxEntryBytes } = ck.limits;
  const set = ck.limits.maxTotalBytes;
  const limit = set ?? defaultMaxTotalBytes(ck.zip.fileSize);
  const named = (t: TorchTensor) => tensorLabel(t, tensorPaths(ck.root));
  let total = 0;
  for (const [key, views] of byKey) {
    const name = `${ck.prefix}data/${key}`;
    const entry = ck.zip.entry(name);
    if (entry === undefined) {
      throw new CheckpointError(
        `cannot read ${ck.zip.path}: expected the storage file "${name}" the pickle refers to, found no such entry; the archive is incomplete, fetch it again`,
      );
    }
    total += entry.size;
    for (const t of views) {
      // checkTensorViews made the count finite and the view fit the storage;
      // a view that repeats elements (zero or overlapping strides) can still
      // expand past the storage, up to the entry limit.
      const n = elementCount(t.shape);
      const bytesOut = n * itemSize(t.dtype);
      if (bytesOut > maxEntryBytes) {
        throw new CheckpointError(
          `cannot read ${ck.zip.path}: ${named(t)}, of shape [${
            t.shape.join(", ")
          }] and stride [${
            t.storage.stride.join(", ")
          }], repeats the ${t.storage.storageNumel} elements of storage "${name}" into ${n} ${t.dtype} elements (${bytesOut} bytes), more than the limit of ${maxEntryBytes} bytes (maxEntryBytes); if the checkpoint is genuine, raise the maxEntryBytes option or the ${MAX_ENTRY_BYTES_ENV} environment variable`,
        );
      }
      if (n > 0 && !sharesStorage(t)) total += bytesOut;
      if (total > limit) {
        throw new CheckpointError(
          `cannot read ${ck.zip.path}: its tensors need more than ${limit} bytes in all, the limit (maxTotalBytes${
            set === null
              ? `: by default ${DEFAULT_MAX_TOTAL_BYTES} or twice the file's ${ck.zip.fileSize} bytes, whichever is more`
              : ""
          }); the storages read plus the views copied out of them reach ${total} bytes at ${
            named(t)
          } (storage "${name}"). The file is hostile or damaged; if it is genuine, raise the maxTotalBytes option or the ${MAX_TOTAL_BYTES_ENV} environment variable`,
        );
      }
    }
  }
}

/** Reads the storages of `tensors` (each once) and fills their data. */
export async function loadTensors(
  ck: OpenCheckpoint,
  tensors: Iterable<TorchTensor>,
): Promise<void> {
  // Sets, not lists: a pickle can make millions of views of one storage,
  // and a membership test per view would be quadratic.
  const byKey = new Map<string, Set<TorchTensor>>();
  for (const t of tensors) {
    if (t.loaded) continue;
    const set = byKey.get(t.storage.key);
    if (set) set.add(t);
    else byKey.set(t.storage.key, new Set([t]));
  }
  planTensorBytes(ck, byKey);
  for (const [key, set] of byKey) {
    const list = [...set];
    const name = `${ck.prefix}data/${key}`;
    const dtype = list[0].dtype;
    const size = itemSize(dtype);
    const storageNumel = list[0].storage.storageNumel;
    const bytes = await ck.zip.read(name);
    if (bytes.length < storageNumel * size) {
      throw new CheckpointError(
        `cannot read ${ck.zip.path}: storage "${name}" should hold ${storageNumel} ${dtype} elements (${
          storageNumel * size
        } bytes), found ${bytes.length} bytes; the archive is damaged, fetch it again`,
      );
    }
    if (ck.bigEndian && size > 1) swapBytes(bytes, size);
    const words: 1 | 2 = size === 8 ? 2 : 1;
    const wordSize = size === 8 ? 4 : size;
    const wordClass = wordSize === 4
      ? Uint32Array
      : wordSize === 2
      ? Uint16Array
      : Uint8Array;
    const src = new wordClass(
      bytes.buffer as ArrayBuffer,
      0,
      Math.floor(bytes.length / wordSize),
    );
    for (const t of list) {
      // planTensorBytes checked each view's size and the total.
      const n = elementCount(t.shape);
      const { offset, stride } = t.storage;
      const bytesOut = n * size;
      if (n === 0) {
        t.data = dataView(dtype, new ArrayBuffer(0), 0, 0);
      } else if (isContiguous(t.shape, stride)) {
        if (sharesStorage(t)) {
          // The whole storage: shared, as torch shares it between the views.
          t.data = dataView(dtype, bytes.buffer, 0, n * size);
        } else {
          const copy = bytes.slice(offset * size, (offset + n) * size);
          t.data = dataView(dtype, copy.buffer, 0, n * size);
        }
      } else {
        let out: ArrayBuffer;
        try {
          out = new ArrayBuffer(bytesOut);
        } catch (e) {
          throw new CheckpointError(
            `cannot read ${ck.zip.path}: ${
              tensorLabel(t, tensorPaths(ck.root))
            } needs ${bytesOut} bytes, which could not be allocated (${
              (e as Error).message
            }); free memory, or lower maxEntryBytes to refuse such tensors`,
            { cause: e },
          );
        }
        gather(
          src,
          new wordClass(out),
          words,
          t.shape,
          stride,
          offset,
        );
        t.data = dataView(dtype, out, 0, n * size);
      }
      t.loaded = true;
    }
  }
}
