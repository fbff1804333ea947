/**
 * CIFAR-10 and CIFAR-100 in their binary versions
 * (`cifar-10-binary.tar.gz`, `cifar-100-binary.tar.gz`):
 *
 * - CIFAR-10: `data_batch_1.bin` ... `data_batch_5.bin` (train, in that
 *   order) and `test_batch.bin`; records of 1 label byte + 3072 pixel bytes;
 *   class names from `batches.meta.txt` (built-in names when it is absent);
 * - CIFAR-100: `train.bin`, `test.bin`; records of a coarse label byte, a
 *   fine label byte + 3072 pixel bytes; class names from
 *   `fine_label_names.txt` / `coarse_label_names.txt` (built in otherwise).
 *
 * Pixels are planar: 1024 red bytes, then green, then blue, each a 32 x 32
 * image row by row. Keys are `<class>/<split>_<index>` with the index in the
 * split zero-padded to five digits (`cat/train_00003`). Images are read from
 * disk on demand (the labels once, when opened).
 *
 * @module
 */

import { type ImageDataset, ImageError, type RgbImage } from "./image.ts";
import { checkImageIndex } from "./_read_range.ts";

/** Options of {@linkcode openCifar}. */
export interface CifarOptions {
  /** Which split (default `"train"`). */
  split?: "train" | "test";
  /** Which dataset (default: detected from the files present). */
  variant?: "cifar10" | "cifar100";
  /** CIFAR-100's labels: the 100 fine classes (default) or the 20 coarse ones. */
  label?: "fine" | "coarse";
}

/** A CIFAR split; see {@linkcode openCifar}. */
export interface CifarDataset extends ImageDataset {
  /** Which dataset. */
  readonly variant: "cifar10" | "cifar100";
  /** Which split. */
  readonly split: "train" | "test";
}

const PIXELS = 32 * 32;

const CIFAR10_CLASSES = [
  "airplane",
  "automobile",
  "bird",
  "cat",
  "deer",
  "dog",
  "frog",
  "horse",
  "ship",
  "truck",
];

const CIFAR100_FINE = (
  "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl " +
  "boy bridge bus butterfly camel can castle caterpillar cattle chair " +
  "chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur " +
  "dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard " +
  "lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle " +
  "mountain mouse mushroom oak_tree orange orchid otter palm_tree pear " +
  "pickup_truck pine_tree plain plate poppy porcupine possum rabbit raccoon " +
  "ray road rocket rose sea seal shark shrew skunk skyscraper snail snake " +
  "spider squirrel streetcar sunflower sweet_pepper table tank telephone " +
  "television tiger tractor train trout tulip turtle wardrobe whale " +
  "willow_tree wolf woman worm"
).split(" ");

const CIFAR100_COARSE = (
  "aquatic_mammals fish flowers food_containers fruit_and_vegetables " +
  "household_electrical_devices household_furniture insects " +
  "large_carnivores large_man-made_outdoor_things " +
  "large_natural_outdoor_scenes large_omnivores_and_herbivores " +
  "medium_mammals non-insect_invertebrates people reptiles small_mammals " +
  "trees vehicles_1 vehicles_2"
).split(" ");

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

async function readNames(
  path: string,
  fallback: string[],
): Promise<string[]> {
  if (!(await exists(path))) return fallback;
  const names = (await Deno.readTextFile(path)).split(/\r?\n/).map((l) =>
    l.trim()
  ).filter((l) => l !== "");
  if (names.length !== fallback.length) {
    throw new ImageError(
      `${path}: expected ${fallback.length} class names (one per line), found ${names.length}; restore the file from the dataset archive, or delete it to use the standard names`,
      path,
    );
  }
  return names;
}

interface Part {
  path: string;
  records: number;
}

class Cifar implements CifarDataset {
  readonly size: number;
  readonly description: string;
  readonly classes: readonly string[];
  readonly variant: "cifar10" | "cifar100";
  readonly split: "train" | "test";
  readonly #parts: Part[];
  readonly #labels: Uint8Array;
  readonly #record: number;

  constructor(
    dir: string,
    variant: "cifar10" | "cifar100",
    split: "train" | "test",
    classes: string[],
    parts: Part[],
    labels: Uint8Array,
    record: number,
  ) {
    this.variant = variant;
    this.split = split;
    this.classes = classes;
    this.#parts = parts;
    this.#labels = labels;
    this.#record = record;
    this.size = labels.length;
    this.description = `${
      variant === "cifar10" ? "CIFAR-10" : "CIFAR-100"
    } ${split} (${dir}, ${this.size} images)`;
  }

  key(i: number): string {
    checkImageIndex(this, i);
    return `${this.classes[this.#labels[i]]}/${this.split}_${
      String(i).padStart(5, "0")
    }`;
  }

  label(i: number): number {
    checkImageIndex(this, i);
    return this.#labels[i];
  }

  async image(i: number): Promise<RgbImage> {
    checkImageIndex(this, i);
    let j = i, p = 0;
    while (j >= this.#parts[p].records) j -= this.#parts[p++].records;
    const { path } = this.#parts[p];
    const buf = new Uint8Array(3 * PIXELS);
    const pixelOffset = this.#record - 3 * PIXELS;
    let file: Deno.FsFile | undefined;
    try {
      file = await Deno.open(path);
      await file.seek(j * this.#record + pixelOffset, Deno.SeekMode.Start);
      let done = 0;
      while (done < buf.length) {
        const n = await file.read(buf.subarray(done));
        if (n === null) throw new Error("unexpected end of file");
        done += n;
      }
    } catch (e) {
      throw new ImageError(
        `${path}: cannot read record ${j}: ${
          (e as Error).message
        }; the file changed since it was opened, or is unreadable`,
        path,
      );
    } finally {
      file?.close();
    }
    const data = new Uint8Array(3 * PIXELS);
    for (let k = 0; k < PIXELS; k++) {
      data[3 * k] = buf[k];
      data[3 * k + 1] = buf[PIXELS + k];
      data[3 * k + 2] = buf[2 * PIXELS + k];
    }
    return { width: 32, height: 32, data };
  }
}

/**
 * Opens a split of CIFAR-10 or CIFAR-100 (binary version). `dir` is the
 * folder holding the `.bin` files, or the folder the archive was unpacked
 * into (`cifar-10-batches-bin/` or `cifar-100-binary/` is looked into).
 * Reads the labels now, the images on demand. Throws an
 * {@linkcode ImageError} naming the file for a missing file, a length that
 * is not a whole number of records, or a label out of range.
 *
 * @example
 * ```ts
 * import { openCifar } from "tokenlab/data/cifar.ts";
 * const dir = new URL("../../tests/fixtures/cifar10", import.meta.url).pathname;
 * const ds = await openCifar(dir, { split: "test" });
 * console.log(ds.variant, ds.size, ds.key(1), ds.label(1)); // cifar10 2 truck/test_00001 9
 * console.log((await ds.image(0)).data.slice(0, 3)); // Uint8Array(3) [ 0, 50, 100 ]
 * ```
 */
export async function openCifar(
  dir: string,
  options: CifarOptions = {},
): Promise<CifarDataset> {
  const split = options.split ?? "train";
  if (split !== "train" && split !== "test") {
    throw new ImageError(
      `CIFAR ${dir}: expected split "train" or "test", found ${
        JSON.stringify(split)
      }`,
    );
  }
  dir = dir.replace(/\/+$/, "") || "/";
  if (!(await exists(dir))) {
    throw new ImageError(
      `CIFAR ${dir}: no such folder; expected the folder of the binary version's .bin files`,
      dir,
    );
  }
  const has10 = async (d: string) =>
    await exists(`${d}/data_batch_1.bin`) ||
    await exists(`${d}/test_batch.bin`);
  const has100 = async (d: string) =>
    await exists(`${d}/train.bin`) || await exists(`${d}/test.bin`);
  if (!(await has10(dir)) && !(await has100(dir))) {
    for (const sub of ["cifar-10-batches-bin", "cifar-100-binary"]) {
      if (await exists(`${dir}/${sub}`)) {
        return openCifar(`${dir}/${sub}`, options);
      }
    }
  }
  let variant = options.variant;
  if (variant === undefined) {
    const [a, b] = [await has10(dir), await has100(dir)];
    if (a && b) {
      throw new ImageError(
        `CIFAR ${dir}: holds both CIFAR-10 and CIFAR-100 files; pass variant "cifar10" or "cifar100"`,
        dir,
      );
    }
    if (!a && !b) {
      const python = await exists(`${dir}/data_batch_1`) ||
        await exists(`${dir}/train`);
      throw new ImageError(
        `CIFAR ${dir}: expected data_batch_1.bin ... test_batch.bin (CIFAR-10) or train.bin, test.bin (CIFAR-100), found neither${
          python
            ? "; this looks like the Python (pickle) version: download the binary version (cifar-10-binary.tar.gz / cifar-100-binary.tar.gz)"
            : ""
        }`,
        dir,
      );
    }
    variant = a ? "cifar10" : "cifar100";
  }
  const ten = variant === "cifar10";
  const record = (ten ? 1 : 2) + 3 * PIXELS;
  const names = ten
    ? [
      "data_batch_1",
      "data_batch_2",
      "data_batch_3",
      "data_batch_4",
      "data_batch_5",
    ]
    : ["train"];
  const files = (split === "train" ? names : [ten ? "test_batch" : "test"]).map(
    (n) => `${dir}/${n}.bin`,
  );
  const fine = (options.label ?? "fine") === "fine";
  const classes = ten
    ? await readNames(`${dir}/batches.meta.txt`, CIFAR10_CLASSES)
    : fine
    ? await readNames(`${dir}/fine_label_names.txt`, CIFAR100_FINE)
    : await readNames(`${dir}/coarse_label_names.txt`, CIFAR100_COARSE);
  const labelByte = ten ? 0 : fine ? 1 : 0;
  const parts: Part[] = [];
  const labels: number[] = [];
  for (const path of files) {
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(path);
    } catch (e) {
      throw new ImageError(
        `CIFAR ${dir}: cannot read ${path} (${
          (e as Error).message
        }); the ${split} split of ${ten ? "CIFAR-10" : "CIFAR-100"} needs ${
          files.map((f) => f.slice(dir.length + 1)).join(", ")
        }`,
        path,
      );
    }
    if (bytes.length === 0 || bytes.length % record !== 0) {
      const other = ten ? 3 * PIXELS + 2 : 3 * PIXELS + 1;
      const cause = bytes.length > 0 && bytes.length % other === 0
        ? `its length fits ${
          ten ? "CIFAR-100" : "CIFAR-10"
        } records (${other} bytes): pass variant "${
          ten ? "cifar100" : "cifar10"
        }" or check the folder`
        : "probably a truncated download or copy: download and unpack the archive again";
      throw new ImageError(
        `${path}: ${bytes.length} bytes is not a whole number of ${
          ten ? "CIFAR-10" : "CIFAR-100"
        } records of ${record} bytes (${
          ten ? "1 label byte" : "2 label bytes"
        } + 3072 pixel bytes); ${cause}`,
        path,
      );
    }
    const n = bytes.length / record;
    for (let r = 0; r < n; r++) {
      const l = bytes[r * record + labelByte];
      if (l >= classes.length) {
        throw new ImageError(
          `${path}: record ${r} has label ${l}, expected 0..${
            classes.length - 1
          } (${classes.length} ${
            ten ? "CIFAR-10" : fine ? "fine" : "coarse"
          } classes); the file is not ${
            ten ? "CIFAR-10" : "CIFAR-100"
          } or is corrupt`,
          path,
        );
      }
      labels.push(l);
    }
    parts.push({ path, records: n });
  }
  return new Cifar(
    dir,
    variant,
    split,
    classes,
    parts,
    Uint8Array.from(labels),
    record,
  );
}
