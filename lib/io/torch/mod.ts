/**
 * PyTorch's `torch.save` files (`.pt`, `.pth`, `.pth.tar`) in plain
 * TypeScript, without Python and without tfjs.
 *
 * A checkpoint written by torch >= 1.6 is a ZIP archive ({@linkcode TorchZip})
 * holding `<folder>/data.pkl` (a pickle of the saved object), one file
 * `<folder>/data/<key>` per tensor storage, and `<folder>/version`. The
 * pickle is read by a restricted unpickler that never runs anything: it knows
 * only the opcodes torch writes for state dicts and training checkpoints, and
 * only an allow-list of globals (`collections.OrderedDict`, the tensor and
 * parameter rebuild functions, the typed storage classes, `argparse.Namespace`
 * and `_codecs.encode` for bytes). Anything else is refused with a
 * {@linkcode CheckpointError} naming what was asked for. Tensors are
 * checked against their storages and gathered within byte budgets
 * ({@linkcode readTorchFile}, {@linkcode readTorchStateDict}); one tensor is
 * written back as torch writes it ({@linkcode writeTorchTensor}).
 *
 * @example
 * ```ts
 * import { readTorchStateDict } from "tokenlab/io/torch/mod.ts";
 * const url = new URL("../../../tests/fixtures/torch/training_checkpoint.pth.tar", import.meta.url);
 * console.log((await readTorchStateDict(url)).size > 0); // true
 * ```
 *
 * @module
 */

export { CheckpointError } from "../checkpoint_error.ts";
export * from "./zip.ts";
export * from "./pickle_value.ts";
export * from "./read.ts";
export * from "./write.ts";
