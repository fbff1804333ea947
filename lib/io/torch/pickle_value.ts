/**
 * The values the restricted unpickler produces from a checkpoint's
 * `data.pkl`: `None`, numbers, strings, bytes, lists, dicts, records (an
 * `argparse.Namespace`) and {@linkcode TorchTensor}s, which know where their
 * elements lie in the archive until they are loaded; and the state a pickle
 * attached to a value (a state dict's `_metadata`).
 *
 * @module
 */

import { type PickleValue, TorchTensor } from "./pickle_types.ts";
import { pickleStates } from "./_pickle_states.ts";

// Defined in pickle_types.ts, which the unpickler's state table imports
// without a cycle; still exported here.
export {
  type PickleKey,
  type PickleRecord,
  type PickleValue,
  type TorchStorageView,
  TorchTensor,
} from "./pickle_types.ts";

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
