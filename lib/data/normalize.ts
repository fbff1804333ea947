/**
 * The normalisation constants of ImageNet-trained models (no tensors here,
 * so data workers can import it without loading TensorFlow.js).
 *
 * @module
 */

/** ImageNet per-channel mean (RGB, pixels in [0, 1]), as the official checkpoints expect. */
export const IMAGENET_MEAN: readonly number[] = [0.485, 0.456, 0.406];
/** ImageNet per-channel standard deviation (RGB, pixels in [0, 1]). */
export const IMAGENET_STD: readonly number[] = [0.229, 0.224, 0.225];
