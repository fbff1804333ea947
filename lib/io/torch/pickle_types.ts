/**
 * The types of the values the restricted unpickler produces, and the
 * {@linkcode TorchTensor} class; exported through `pickle_value.ts`.
 *
 * @module
 */

import {
  dataView,
  type RawData,
  type RawDType,
  type RawTensor,
} from "../raw_tensor.ts";

/** A dict key as read from a pickle. */
export type PickleKey = string | number | bigint | boolean | null;

/** A record built from an `argparse.Namespace` (its attributes). */
export interface PickleRecord {
  /** One attribute. */
  [key: string]: PickleValue;
}

/**
 * A value read from a checkpoint: `null` (None), booleans, numbers (ints
 * beyond 2^53 as bigint), strings, bytes, arrays (lists, tuples and sets),
 * `Map`s (dicts and OrderedDicts), tensors and records (Namespace).
 */
export type PickleValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | TorchTensor
  | PickleValue[]
  | Map<PickleKey, PickleValue>
  | PickleRecord;

/** Where a {@linkcode TorchTensor}'s elements live in the archive. */
export interface TorchStorageView {
  /** The storage's key: its data is the archive entry `<folder>/data/<key>`. */
  key: string;
  /** Elements in the whole storage. */
  storageNumel: number;
  /** Index of the tensor's first element in the storage. */
  offset: number;
  /** Elements to step along each axis (torch's `stride()`). */
  stride: number[];
}

/**
 * A tensor read from a checkpoint: a {@linkcode RawTensor} (contiguous,
 * row-major data) plus what torch recorded about it.
 */
export class TorchTensor implements RawTensor {
  /** Element type (from the storage class). */
  readonly dtype: RawDType;
  /** Sizes of the axes. */
  readonly shape: number[];
  /** The elements in row-major order; empty until loaded (see `loaded`). */
  data: RawData;
  /** Whether `data` holds the elements yet. */
  loaded = false;
  /** torch's `requires_grad`. */
  requiresGrad: boolean;
  /** Whether it was saved as an `nn.Parameter`. */
  isParameter = false;
  /** Where the elements come from in the archive. */
  readonly storage: TorchStorageView;

  /** Makes an unloaded tensor (the unpickler does this). */
  constructor(
    dtype: RawDType,
    shape: number[],
    storage: TorchStorageView,
    requiresGrad: boolean,
  ) {
    this.dtype = dtype;
    this.shape = shape;
    this.storage = storage;
    this.requiresGrad = requiresGrad;
    this.data = dataView(dtype, new ArrayBuffer(0), 0, 0);
  }
}
