/**
 * Reading `torch.save` files: a whole file as the unpickled object with its
 * tensors loaded ({@linkcode readTorchFile}), the weights of a model or
 * training checkpoint as a flat map of names to tensors
 * ({@linkcode readTorchStateDict}), and the tensors reachable from a value
 * read ({@linkcode tensorsOf}).
 *
 * @module
 */

import type { RawTensor } from "../raw_tensor.ts";
import { CheckpointError } from "../checkpoint_error.ts";
import { internalError } from "./_file.ts";
import type { CheckpointLimitOptions } from "./zip.ts";
import {
  type PickleKey,
  type PickleValue,
  TorchTensor,
} from "./pickle_value.ts";
import { describe } from "./_unpickler.ts";
import { loadTensors, openCheckpoint } from "./_gather.ts";
import { forEachReachable } from "./_walk.ts";

/**
 * Every tensor reachable from a value read by {@linkcode readTorchFile}.
 *
 * @example
 * ```ts
 * import { tensorsOf } from "tokenlab/io/torch/read.ts";
 * console.log(tensorsOf(new Map([["a", 1]])).length); // 0
 * ```
 */
export function tensorsOf(value: PickleValue): TorchTensor[] {
  const out: TorchTensor[] = [];
  forEachReachable(value, false, (v) => {
    if (v instanceof TorchTensor) out.push(v);
  });
  return out;
}

/**
 * Options of {@linkcode readTorchFile}; the limits of
 * {@linkcode CheckpointLimitOptions} (`maxEntryBytes`, `maxInflateRatio`,
 * `maxTotalBytes`)
 * apply.
 */
export interface ReadTorchFileOptions extends CheckpointLimitOptions {
  /**
   * Unpickle only: tensors keep `loaded: false` and empty `data`, with their
   * dtype and shape known (for listing a large checkpoint cheaply).
   */
  metadataOnly?: boolean;
}

/**
 * Reads a whole `torch.save` file: the unpickled object with every tensor's
 * data loaded (as {@linkcode TorchTensor}s, which are {@linkcode RawTensor}s).
 *
 * @example
 * ```ts
 * import { readTorchFile } from "tokenlab/io/torch/read.ts";
 * const url = new URL("../../../tests/fixtures/torch/training_checkpoint.pth.tar", import.meta.url);
 * const ckpt = await readTorchFile(url) as Map<string, unknown>;
 * console.log(ckpt.get("epoch"), ckpt.get("args")); // 3 { lr: 0.001, model: "x" }
 * ```
 */
export async function readTorchFile(
  path: string | URL,
  options: ReadTorchFileOptions = {},
): Promise<PickleValue> {
  const ck = await openCheckpoint(path, options);
  try {
    if (!options.metadataOnly) await loadTensors(ck, ck.tensors);
    return ck.root;
  } catch (e) {
    throw internalError(e, `cannot read ${ck.zip.path}: a tensor`);
  } finally {
    ck.zip.close();
  }
}

/**
 * Options of {@linkcode readTorchStateDict}; the limits of
 * {@linkcode CheckpointLimitOptions} (`maxEntryBytes`, `maxInflateRatio`,
 * `maxTotalBytes`)
 * apply.
 */
export interface ReadTorchStateDictOptions extends CheckpointLimitOptions {
  /**
   * The entry of a checkpoint dict that holds the weights; by default the
   * root if it is a dict of tensors, else the first present of `state_dict`,
   * `model`, `state_dict_ema`, `module`.
   */
  key?: string;
}

const STATE_DICT_KEYS = ["state_dict", "model", "state_dict_ema", "module"];

function hasTensors(v: unknown): v is Map<PickleKey, PickleValue> {
  if (!(v instanceof Map)) return false;
  for (const x of v.values()) if (x instanceof TorchTensor) return true;
  return false;
}

function allTensors(v: unknown): v is Map<PickleKey, PickleValue> {
  if (!(v instanceof Map) || v.size === 0) return false;
  for (const x of v.values()) if (!(x instanceof TorchTensor)) return false;
  return true;
}

function listKeys(m: Map<PickleKey, PickleValue>): string {
  const keys = [...m.keys()].slice(0, 20).map((k) => JSON.stringify(k));
  return keys.join(", ") + (m.size > 20 ? `, ... (${m.size} in all)` : "");
}

/**
 * Reads the state dict (parameter name to tensor) of a `torch.save` file:
 * a plain state dict, or the one inside a training checkpoint (`state_dict`,
 * `model`, `state_dict_ema`, `module`, or `options.key`). Only the tensors
 * of that dict are read from disk; a leading `module.` (DataParallel) is
 * stripped from every name; entries that are not tensors are dropped.
 *
 * @example
 * ```ts
 * import { readTorchStateDict } from "tokenlab/io/torch/read.ts";
 * const url = new URL("../../../tests/fixtures/torch/training_checkpoint.pth.tar", import.meta.url);
 * const sd = await readTorchStateDict(url);
 * console.log([...sd.keys()].slice(0, 2)); // [ "conv.weight", "conv.bias" ]
 * ```
 */
export async function readTorchStateDict(
  path: string | URL,
  options: ReadTorchStateDictOptions = {},
): Promise<Map<string, RawTensor>> {
  const ck = await openCheckpoint(path, options);
  try {
    const label = ck.zip.path;
    const root = ck.root;
    let dict: Map<PickleKey, PickleValue> | undefined;
    if (options.key !== undefined) {
      if (!(root instanceof Map)) {
        throw new CheckpointError(
          `cannot read a state dict from ${label}: expected a dict with an entry "${options.key}", found ${
            describe(root)
          }; read it with readTorchFile`,
        );
      }
      if (!root.has(options.key)) {
        throw new CheckpointError(
          `cannot read a state dict from ${label}: expected an entry "${options.key}", found only the keys ${
            listKeys(root)
          }; pass one of those as key`,
        );
      }
      const v = root.get(options.key);
      if (!hasTensors(v)) {
        throw new CheckpointError(
          `cannot read a state dict from ${label}: expected entry "${options.key}" to be a dict of tensors, found ${
            describe(v)
          }; pass the key of the entry holding the weights`,
        );
      }
      dict = v;
    } else if (allTensors(root)) {
      dict = root;
    } else if (root instanceof Map) {
      for (const k of STATE_DICT_KEYS) {
        const v = root.get(k);
        if (hasTensors(v)) {
          dict = v;
          break;
        }
      }
      if (!dict && hasTensors(root)) dict = root;
      if (!dict) {
        throw new CheckpointError(
          `cannot read a state dict from ${label}: expected a dict of tensors, or a checkpoint dict holding one under ${
            STATE_DICT_KEYS.join(", ")
          }; found a dict with the keys ${
            listKeys(root)
          }; pass {key} naming the entry that holds the weights`,
        );
      }
    } else {
      throw new CheckpointError(
        `cannot read a state dict from ${label}: expected a dict of tensors, found ${
          describe(root)
        }; read it with readTorchFile`,
      );
    }
    const out = new Map<string, TorchTensor>();
    for (const [k, v] of dict) {
      if (!(v instanceof TorchTensor)) continue;
      const name = String(k).startsWith("module.")
        ? String(k).slice("module.".length)
        : String(k);
      if (out.has(name)) {
        throw new CheckpointError(
          `cannot read a state dict from ${label}: two entries map to "${name}" once the DataParallel prefix "module." is stripped; expected unique names, re-save the state dict of the unwrapped model (model.module.state_dict())`,
        );
      }
      out.set(name, v);
    }
    try {
      await loadTensors(ck, out.values());
    } catch (e) {
      throw internalError(e, `cannot read ${label}: a tensor`);
    }
    return out;
  } finally {
    ck.zip.close();
  }
}
