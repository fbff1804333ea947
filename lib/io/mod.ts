/**
 * Tensor files without tfjs: PyTorch's `torch.save` archives (read through a
 * restricted unpickler that never runs code; single tensors written back
 * byte for byte as torch does), safetensors (read and write), and the plain
 * typed tensor record they share.
 *
 * The readers treat every file as possibly hostile: each count, size, offset
 * and shape a file declares is checked against the bytes it holds before
 * anything is allocated for it, and a failure is a `CheckpointError` naming
 * the file and the field. What one archive entry or expanded tensor may
 * take is bounded by `CheckpointLimitOptions` (`maxEntryBytes`,
 * `maxInflateRatio`, or the `TOKENLAB_MAX_ENTRY_BYTES` and
 * `TOKENLAB_MAX_INFLATE_RATIO` environment variables).
 *
 * @module
 */

export * from "./checkpoint_error.ts";
export {
  writeFileAtomic,
  type WriteFileAtomicOptions,
} from "./atomic_write.ts";
export * from "./raw_tensor.ts";
export * from "./safetensors.ts";
export * from "./torch/mod.ts";
