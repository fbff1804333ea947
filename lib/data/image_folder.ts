/**
 * Image folders as torchvision's `ImageFolder` reads them:
 * `<root>/<split>/<class>/*.{JPEG,jpg,jpeg,png}`, one folder per class.
 *
 * - **Classes** are the sorted folder names (code-point order, as Python's
 *   `sorted`), or come from a class-list file / array (then label `i` is the
 *   `i`-th listed class, whatever the folders' order).
 * - **Images** of a class are found recursively (as torchvision), sorted by
 *   their path relative to the class folder; hidden files and folders (a
 *   leading `.`, e.g. macOS `._x.jpg` resource forks) are ignored, and so are
 *   files with other extensions.
 * - **Keys** are `<class>/<stem>` (the official score-map layout); nested
 *   files give `<class>/<sub>/<stem>`. Two files with one stem (`a.jpg`,
 *   `a.png`) are refused, since their maps could not be told apart.
 * - **Bad images**: with `onBadImage: "stop"` (default) `image(i)` of an
 *   unreadable, truncated or non-image file throws an {@linkcode ImageError}
 *   naming the file. With `"skip"` it throws the same error (a loader drops
 *   the sample from its batch: the tokenlab DataLoader does so when its
 *   pipeline skips), and the dataset also warns once per file and records
 *   it in {@linkcode ImageFolderDataset.badImages}; later reads of a
 *   recorded file fail at once, without reading it again. No substitute
 *   image is returned: it would be trained on, or annotated, under the wrong
 *   key.
 *
 * @module
 */

import { readImage } from "./decode.ts";
import { type ImageDataset, ImageError, type RgbImage } from "./image.ts";
import { checkImageIndex } from "./_read_range.ts";

/** Options of {@linkcode openImageFolder}. */
export interface ImageFolderOptions {
  /**
   * The split folder under the root, e.g. `"train"` or `"val"`. Default:
   * the root itself when it holds class folders with images, else `train`.
   * A root that already is the split folder (`.../train` with split
   * `"train"`) is accepted.
   */
  split?: string;
  /**
   * The classes, in label order: an array, or the path of a text file with
   * one class per line (blank lines and `#` comments skipped; a line like
   * `n01440764 tench, Tinca tinca` names the folder by its first word).
   * Default: the sorted folder names.
   */
  classes?: readonly string[] | string;
  /** A listed class without a folder: `"error"` (default) or `"empty"` (no images). */
  missingClasses?: "error" | "empty";
  /** Allow class folders without images (default false: an error naming them). */
  allowEmptyClasses?: boolean;
  /** An unreadable image: `"stop"` (default) or `"skip"` (see the module doc). */
  onBadImage?: "skip" | "stop";
  /** File extensions taken, case-insensitive (default `.jpeg`, `.jpg`, `.png`). */
  extensions?: readonly string[];
  /** Where warnings go (default `console.warn`). */
  onWarning?: (message: string) => void;
}

/** A dataset read from an image folder; see {@linkcode openImageFolder}. */
export interface ImageFolderDataset extends ImageDataset {
  /** The split folder the classes were read from. */
  readonly dir: string;
  /** What an unreadable image does. */
  readonly onBadImage: "skip" | "stop";
  /** Files found unreadable so far (with `onBadImage: "skip"`). */
  readonly badImages: readonly string[];
  /** The path of image `i`. */
  path(i: number): string;
}

const DEFAULT_EXTENSIONS = [".jpeg", ".jpg", ".png"];

async function isDir(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false;
  }
}

async function listDir(
  path: string,
): Promise<{ name: string; dir: boolean }[]> {
  const out: { name: string; dir: boolean }[] = [];
  for await (const e of Deno.readDir(path)) {
    if (e.name.startsWith(".")) continue;
    let dir = e.isDirectory;
    if (e.isSymlink) dir = await isDir(`${path}/${e.name}`);
    out.push({ name: e.name, dir });
  }
  return out.sort((a, b) => cmp(a.name, b.name));
}

function cmp(a: string, b: string): number {
  // Code-point order (Python's sorted), not UTF-16 order.
  const x = [...a], y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i].codePointAt(0)! - y[i].codePointAt(0)!;
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

function extOf(name: string): string {
  const dot = name.lastIndexOf(".");
  return dot <= 0 ? "" : name.slice(dot).toLowerCase();
}

async function findImages(
  dir: string,
  rel: string,
  exts: Set<string>,
  out: string[],
): Promise<void> {
  for (const e of await listDir(dir)) {
    const r = rel === "" ? e.name : `${rel}/${e.name}`;
    if (e.dir) await findImages(`${dir}/${e.name}`, r, exts, out);
    else if (exts.has(extOf(e.name))) out.push(r);
  }
}

async function hasImageFolders(root: string, exts: Set<string>) {
  for (const e of await listDir(root)) {
    if (!e.dir) continue;
    for (const f of await listDir(`${root}/${e.name}`)) {
      if (!f.dir && exts.has(extOf(f.name))) return true;
    }
  }
  return false;
}

async function resolveDir(
  root: string,
  split: string | undefined,
  exts: Set<string>,
): Promise<string> {
  if (!(await isDir(root))) {
    throw new ImageError(
      `image folder ${root}: no such folder; expected <root>/<split>/<class>/<image> (e.g. imagenet/train/n01440764/x.JPEG)`,
      root,
    );
  }
  const base = root.replace(/\/+$/, "").split("/").pop();
  if (split !== undefined) {
    if (await isDir(`${root}/${split}`)) return `${root}/${split}`;
    if (base === split) return root;
    const have = (await listDir(root)).filter((e) => e.dir).map((e) => e.name);
    throw new ImageError(
      `image folder ${root}: expected a split folder ${root}/${split} holding one folder per class, found no such folder; ${root} holds ${
        have.length
          ? `the folders ${have.slice(0, 8).join(", ")}`
          : "no folders"
      }: pass the split that exists, or the split folder itself as the root`,
      `${root}/${split}`,
    );
  }
  if (await hasImageFolders(root, exts)) return root;
  if (await isDir(`${root}/train`)) return `${root}/train`;
  throw new ImageError(
    `image folder ${root}: expected class folders with images (<root>/<class>/x.jpg) or a train split (<root>/train/<class>/x.jpg), found neither; pass split, or point at the folder that holds the class folders`,
    root,
  );
}

async function readClassList(path: string): Promise<string[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new ImageError(
      `class list ${path}: cannot read it (${
        (e as Error).message
      }); expected a text file with one class (folder name) per line`,
      path,
    );
  }
  const out: string[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    out.push(line.split(/\s+/)[0]);
  }
  if (out.length === 0) {
    throw new ImageError(
      `class list ${path}: no classes in it; expected one class (folder name) per line`,
      path,
    );
  }
  return out;
}

class Folder implements ImageFolderDataset {
  readonly size: number;
  readonly description: string;
  readonly classes: readonly string[];
  readonly dir: string;
  readonly onBadImage: "skip" | "stop";
  readonly #files: string[];
  readonly #keys: string[];
  readonly #labels: Int32Array;
  readonly #bad = new Map<string, ImageError>();
  readonly #warn: (m: string) => void;

  constructor(
    dir: string,
    classes: string[],
    files: string[],
    keys: string[],
    labels: Int32Array,
    onBadImage: "skip" | "stop",
    warn: (m: string) => void,
  ) {
    this.dir = dir;
    this.classes = classes;
    this.#files = files;
    this.#keys = keys;
    this.#labels = labels;
    this.size = files.length;
    this.description =
      `image folder ${dir} (${files.length} images, ${classes.length} classes)`;
    this.onBadImage = onBadImage;
    this.#warn = warn;
  }

  get badImages(): readonly string[] {
    return [...this.#bad.keys()];
  }

  path(i: number): string {
    checkImageIndex(this, i);
    return `${this.dir}/${this.#files[i]}`;
  }

  key(i: number): string {
    checkImageIndex(this, i);
    return this.#keys[i];
  }

  label(i: number): number {
    checkImageIndex(this, i);
    return this.#labels[i];
  }

  async image(i: number): Promise<RgbImage> {
    const path = this.path(i);
    const known = this.#bad.get(path);
    if (known) throw known;
    try {
      return await readImage(path);
    } catch (e) {
      if (!(e instanceof ImageError) || this.onBadImage === "stop") throw e;
      this.#bad.set(path, e);
      this.#warn(
        `warning: skipping an unreadable image (${this.#bad.size} in ${this.dir} so far): ${e.message}`,
      );
      throw e;
    }
  }
}

/**
 * Opens an image folder (see the module doc for the layout, order, keys and
 * bad images). Lists the files only; images are decoded by `image(i)`.
 * Throws an {@linkcode ImageError} naming the path for a missing folder, a
 * class folder without images (unless allowed), no images at all, a listed
 * class without a folder (unless `missingClasses: "empty"`), or two files
 * with one key.
 *
 * @example
 * ```ts
 * import { openImageFolder } from "tokenlab/data/image_folder.ts";
 * const root = new URL("../../tests/fixtures/image_folder", import.meta.url).pathname;
 * const ds = await openImageFolder(root, { split: "train" });
 * console.log(ds.size, ds.classes, ds.key(2), ds.label(2)); // 3 [ "cat", "dog" ] dog/c 1
 * console.log((await ds.image(0)).width); // 6
 * const listed = await openImageFolder(root, { split: "val", classes: `${root}/classes.txt` });
 * console.log(listed.classes, listed.key(0), listed.label(0)); // [ "dog", "cat" ] cat/d 1
 * ```
 */
export async function openImageFolder(
  root: string,
  options: ImageFolderOptions = {},
): Promise<ImageFolderDataset> {
  const exts = new Set(
    (options.extensions ?? DEFAULT_EXTENSIONS).map((e) =>
      (e.startsWith(".") ? e : `.${e}`).toLowerCase()
    ),
  );
  const warn = options.onWarning ?? ((m: string) => console.warn(m));
  const dir = await resolveDir(root, options.split, exts);
  const folders = (await listDir(dir)).filter((e) => e.dir).map((e) => e.name);
  const folderSet = new Set(folders);
  let classes: string[];
  if (options.classes === undefined) {
    classes = folders;
  } else {
    classes = typeof options.classes === "string"
      ? await readClassList(options.classes)
      : [...options.classes];
    const where = typeof options.classes === "string"
      ? `the class list ${options.classes}`
      : "the classes given";
    const dup = classes.find((c, i) => classes.indexOf(c) !== i);
    if (dup !== undefined) {
      throw new ImageError(
        `${where} names ${JSON.stringify(dup)} twice; expected each class once`,
      );
    }
    const missing = classes.filter((c) => !folderSet.has(c));
    if (missing.length > 0 && (options.missingClasses ?? "error") === "error") {
      throw new ImageError(
        `${dir}: ${missing.length} of the ${classes.length} classes of ${where} have no folder (${
          missing.slice(0, 5).join(", ")
        }${
          missing.length > 5 ? ", ..." : ""
        }); expected ${dir}/<class>/ for each; use the class list of this dataset, or pass missingClasses: "empty" to keep them without images`,
        dir,
      );
    }
    const listed = new Set(classes);
    const extra = folders.filter((f) => !listed.has(f));
    if (extra.length > 0) {
      warn(
        `warning: ${dir}: ${extra.length} folders are not in ${where} and are ignored (${
          extra.slice(0, 5).join(", ")
        }${extra.length > 5 ? ", ..." : ""})`,
      );
    }
  }
  if (classes.length === 0) {
    throw new ImageError(
      `${dir}: no class folders found; expected ${dir}/<class>/<image> (one folder per class)`,
      dir,
    );
  }
  const files: string[] = [], keys: string[] = [], labels: number[] = [];
  const empty: string[] = [];
  const seen = new Map<string, string>();
  for (let c = 0; c < classes.length; c++) {
    const cls = classes[c];
    const found: string[] = [];
    if (folderSet.has(cls)) await findImages(`${dir}/${cls}`, "", exts, found);
    if (found.length === 0 && folderSet.has(cls)) empty.push(cls);
    for (const rel of found) {
      const file = `${cls}/${rel}`;
      const key = file.slice(0, file.length - extOf(rel).length);
      const other = seen.get(key);
      if (other !== undefined) {
        throw new ImageError(
          `${dir}: ${other} and ${file} have the same key ${
            JSON.stringify(key)
          } (<class>/<stem>), so their score maps could not be told apart; rename or remove one`,
          `${dir}/${file}`,
        );
      }
      seen.set(key, file);
      files.push(file);
      keys.push(key);
      labels.push(c);
    }
  }
  if (files.length === 0) {
    throw new ImageError(
      `${dir}: no images found in its ${classes.length} class folders; expected files ending ${
        [...exts].join(", ")
      } (case-insensitive) in ${dir}/<class>/; pass extensions for other kinds`,
      dir,
    );
  }
  if (empty.length > 0 && !options.allowEmptyClasses) {
    throw new ImageError(
      `${dir}: ${empty.length} class folders hold no images (${
        empty.slice(0, 5).map((c) => `${dir}/${c}`).join(", ")
      }${empty.length > 5 ? ", ..." : ""}); expected files ending ${
        [...exts].join(", ")
      }; fill or remove them, or pass allowEmptyClasses: true`,
      `${dir}/${empty[0]}`,
    );
  }
  return new Folder(
    dir,
    classes,
    files,
    keys,
    Int32Array.from(labels),
    options.onBadImage ?? "stop",
    warn,
  );
}
