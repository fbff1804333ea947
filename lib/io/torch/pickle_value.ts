/**
 * The values the restricted unpickler produces from a checkpoint's
 * `data.pkl`: `None`, numbers, strings, bytes, lists, dicts, records (an
 * `argparse.Namespace`) and {@linkcode TorchTensor}s, which know where their
 * elements lie in the archive until they are loaded; and the state a pickle
 * attached to a value (a state dict's `_metadata`).
 *
 * @module
 */

import {
  dataView,
  type RawData,
  type RawDType,
  type RawTensor,
} from "../raw_tensor.ts";
import { pickleStates } from "./_pickle_states.ts";

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

/**
 * Whether a value read from a checkpoint is a tensor.
 *
 * @example
 * ```ts
 * import { isTorchTensor } from "tokenlab/io/torch/pickle_value.ts";
 * console.log(isTorchTensor(3)); // false
 * ```
 */
export function isTorchTensor(value: unknown): value is TorchTensor {
  return value instanceof TorchTensor;
}

/**
 * The state a pickle attached to a value with BUILD, if any: for a state dict
 * saved by `nn.Module.state_dict()` a dict holding `_metadata` (per-module
 * `version`s, e.g. BatchNorm's).
 *
 * @example
 * ```ts
 * import { pickleState } from "tokenlab/io/torch/pickle_value.ts";
 * console.log(pickleState(new Map())); // undefined
 * ```
 */
export function pickleState(value: object): PickleValue | undefined {
  return pickleStates.get(value);
}
