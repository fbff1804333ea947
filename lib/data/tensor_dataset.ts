/**
 * A dataset held in one safetensors file: `images` uint8 [N, H, W, 3] (or
 * float32 in [0, 1]), optional `labels` int [N], optional metadata `keys`
 * (a JSON array of N image keys) and `classes` (a JSON array of class
 * names). The simplest way to hand the kit a small dataset, and what the
 * annotator reads until the image-folder and CIFAR loaders land.
 *
 * @module
 */

import { readSafetensors } from "../io/safetensors.ts";
import type { ScoreMapPreprocessing } from "../labels/store/format.ts";
import {
  numel,
  type RawTensor,
  toFloat32,
  writeSafetensors,
} from "../io/mod.ts";
import { TokenlabError } from "../errors.ts";

/** Images with keys and optional labels, readable in slices. */
export interface ImageSource {
  /** Number of images. */
  readonly size: number;
  /** Image height in pixels (every image has the same size). */
  readonly height: number;
  /** Image width in pixels. */
  readonly width: number;
  /** Where the images come from, for messages and store headers. */
  readonly description: string;
  /** Class names, when the source has them. */
  readonly classes?: readonly string[];
  /**
   * The resize and crop already applied to every image, when the source
   * did it (the images are then the annotator's input size, and a score-map
   * store records this instead of a preprocessing of its own).
   */
  readonly preprocessing?: ScoreMapPreprocessing;
  /** The key of image `i` (unique; e.g. `n01440764/img_12`). */
  key(i: number): string;
  /** The integer label of image `i`, or undefined without labels. */
  label(i: number): number | undefined;
  /** Images [start, start + count) as NHWC float32 values in [0, 1]. */
  read(start: number, count: number): Promise<Float32Array>;
}

/** Raised for a dataset file that cannot be used. */
export class DatasetError extends TokenlabError {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
  }
}

/**
 * Opens a safetensors image dataset.
 *
 * @example
 * ```ts
 * import { openTensorDataset, writeTensorDataset } from "tokenlab";
 * const dir = await Deno.makeTempDir();
 * await writeTensorDataset(`${dir}/tiny.safetensors`, {
 *   images: new Uint8Array(2 * 4 * 4 * 3), height: 4, width: 4, labels: [0, 1],
 * });
 * const ds = await openTensorDataset(`${dir}/tiny.safetensors`);
 * console.log(ds.size, ds.key(1), ds.label(1)); // 2 "000001" 1
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function openTensorDataset(path: string): Promise<ImageSource> {
  const { tensors, metadata } = await readSafetensors(path);
  const images = tensors.get("images");
  if (images === undefined) {
    throw new DatasetError(
      `${path}: expected a tensor named "images" [N, H, W, 3], found ${
        [...tensors.keys()].join(", ") || "no tensors"
      }; write one with writeTensorDataset`,
    );
  }
  if (
    images.shape.length !== 4 || images.shape[3] !== 3 ||
    (images.dtype !== "uint8" && images.dtype !== "float32")
  ) {
    throw new DatasetError(
      `${path}: expected "images" as uint8 or float32 [N, H, W, 3], found ${images.dtype} [${images.shape}]`,
    );
  }
  const [n, height, width] = images.shape;
  const labelsRaw = tensors.get("labels");
  let labels: Int32Array | null = null;
  if (labelsRaw !== undefined) {
    if (labelsRaw.shape.length !== 1 || labelsRaw.shape[0] !== n) {
      throw new DatasetError(
        `${path}: expected "labels" of shape [${n}] (one per image), found [${labelsRaw.shape}]`,
      );
    }
    labels = Int32Array.from(toFloat32(labelsRaw));
  }
  let keys: string[] | null = null;
  if (metadata.keys !== undefined) {
    const parsed = JSON.parse(metadata.keys);
    if (
      !Array.isArray(parsed) || parsed.length !== n ||
      new Set(parsed).size !== n
    ) {
      throw new DatasetError(
        `${path}: metadata "keys" must be a JSON array of ${n} distinct strings`,
      );
    }
    keys = parsed.map(String);
  }
  let classes: string[] | undefined;
  if (metadata.classes !== undefined) {
    const parsed = JSON.parse(metadata.classes);
    if (!Array.isArray(parsed)) {
      throw new DatasetError(
        `${path}: metadata "classes" must be a JSON array of class names`,
      );
    }
    classes = parsed.map(String);
  }
  const digits = Math.max(6, String(n - 1).length);
  const pixels = height * width * 3;
  return {
    size: n,
    height,
    width,
    description: path,
    classes,
    key: (i) => keys?.[i] ?? String(i).padStart(digits, "0"),
    label: (i) => labels?.[i],
    read: (start, count) => {
      if (start < 0 || count < 0 || start + count > n) {
        return Promise.reject(
          new RangeError(
            `${path}: images [${start}, ${
              start + count
            }) requested, the dataset has ${n}`,
          ),
        );
      }
      const out = new Float32Array(count * pixels);
      const src = images.data as Uint8Array | Float32Array;
      const scale = images.dtype === "uint8" ? 1 / 255 : 1;
      const base = start * pixels;
      for (let i = 0; i < out.length; i++) out[i] = src[base + i] * scale;
      return Promise.resolve(out);
    },
  };
}

/** What {@linkcode writeTensorDataset} writes. */
export interface TensorDatasetContents {
  /** NHWC pixels, uint8 (0-255) or float32 (0-1), N * height * width * 3 values. */
  images: Uint8Array | Float32Array;
  /** Image height. */
  height: number;
  /** Image width. */
  width: number;
  /** Integer labels, one per image. */
  labels?: ArrayLike<number>;
  /** Image keys, one per image (default: zero-padded indices). */
  keys?: string[];
  /** Class names. */
  classes?: string[];
}

/** Writes a safetensors image dataset (atomically). */
export async function writeTensorDataset(
  path: string,
  contents: TensorDatasetContents,
): Promise<void> {
  const { images, height, width } = contents;
  const n = images.length / (height * width * 3);
  if (!Number.isInteger(n)) {
    throw new DatasetError(
      `writeTensorDataset: ${images.length} values are not a whole number of ${height}x${width}x3 images`,
    );
  }
  const tensors: Record<string, RawTensor> = {
    images: {
      dtype: images instanceof Uint8Array ? "uint8" : "float32",
      shape: [n, height, width, 3],
      data: images,
    },
  };
  if (contents.labels !== undefined) {
    tensors.labels = {
      dtype: "int64",
      shape: [n],
      data: BigInt64Array.from(Array.from(contents.labels, (v) => BigInt(v))),
    };
  }
  const metadata: Record<string, string> = {};
  if (contents.keys) metadata.keys = JSON.stringify(contents.keys);
  if (contents.classes) metadata.classes = JSON.stringify(contents.classes);
  if (numel(tensors.images.shape) !== images.length) {
    throw new DatasetError("writeTensorDataset: image count mismatch");
  }
  await writeSafetensors(path, tensors, { metadata });
}
