/**
 * Tensor files without tfjs: PyTorch's `torch.save` archives (read through a
 * restricted unpickler that never runs code; single tensors written back
 * byte for byte as torch does), safetensors (read and write), and the plain
 * typed tensor record they share.
 *
 * @module
 */

export * from "./raw_tensor.ts";
export * from "./safetensors.ts";
export * from "./torch.ts";
export * from "./torch_write.ts";
