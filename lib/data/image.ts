/**
 * The image types every data module shares: an 8-bit RGB image as decoded,
 * a per-pixel class map, and a dataset of variable-size images with keys and
 * labels (image folders, CIFAR, synthetic scenes).
 *
 * @module
 */

import { TokenlabError } from "../errors.ts";

/** An 8-bit RGB image, rows top to bottom, pixels interleaved (HWC). */
export interface RgbImage {
  /** Width in pixels. */
  readonly width: number;
  /** Height in pixels. */
  readonly height: number;
  /** `height * width * 3` bytes: R, G, B of pixel (0, 0), then (0, 1)... */
  readonly data: Uint8Array;
}

/** A per-pixel class map: the class id of every pixel, -1 for background. */
export interface ClassMap {
  /** Width in pixels. */
  readonly width: number;
  /** Height in pixels. */
  readonly height: number;
  /** `height * width` class ids, row-major; -1 where no object is. */
  readonly data: Int16Array;
}

/**
 * A dataset of images with keys, labels and class names, read one image at
 * a time (images may differ in size). Image folders, CIFAR files and the
 * synthetic scenes implement it.
 */
export interface ImageDataset {
  /** Number of images. */
  readonly size: number;
  /** Where the images come from, for messages and store headers. */
  readonly description: string;
  /** Class names; the label of an image indexes this list. */
  readonly classes: readonly string[];
  /** The key of image `i`, unique, `<class>/<stem>` for folder datasets. */
  key(i: number): string;
  /** The label of image `i` (undefined for an unlabelled dataset). */
  label(i: number): number | undefined;
  /** Image `i`, decoded. */
  image(i: number): Promise<RgbImage>;
}

/** Raised for an image or dataset that cannot be read; names the file. */
export class ImageError extends TokenlabError {
  /** The file concerned, when there is one. */
  readonly file?: string;
  /** Creates the error. */
  constructor(message: string, file?: string) {
    super(message);
    this.file = file;
  }
}

/** Checks that `image` is a well-formed RGB image; throws saying what is wrong. */
export function checkRgbImage(image: RgbImage, where = "image"): void {
  const { width, height, data } = image;
  if (
    !Number.isInteger(width) || !Number.isInteger(height) || width < 1 ||
    height < 1
  ) {
    throw new ImageError(
      `${where}: expected a positive integer width and height, found ${width} x ${height}`,
    );
  }
  if (!(data instanceof Uint8Array) || data.length !== width * height * 3) {
    throw new ImageError(
      `${where}: expected ${
        width * height * 3
      } bytes (${height} x ${width} x 3 RGB), found ${
        data instanceof Uint8Array ? data.length : typeof data
      }`,
    );
  }
}
