/**
 * Data: image sources the kit reads.
 *
 * @module
 */

export * from "./tensor_dataset.ts";
export * from "./image.ts";
