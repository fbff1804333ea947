/**
 * Data: image sources the kit reads.
 *
 * @module
 */

export * from "./tensor_dataset.ts";
export * from "./image.ts";
export * from "./resize.ts";
export * from "./synthetic.ts";
export * from "./decode.ts";
export * from "./image_folder.ts";
export * from "./cifar.ts";
export * from "./paired.ts";
export * from "./image_ops.ts";
export * from "./rand_augment.ts";
export * from "./transforms.ts";
