/**
 * Shared test plumbing: running the command line in a child process, and
 * tests that need a browser.
 */

import { fileURLToPath } from "node:url";
import type { Browser, PageCheck } from "../lib/report/browser.ts";
import type { AnnotatorLabels } from "../lib/report/train_arm.ts";
import type { ModelConfig } from "../lib/models/config.ts";
import { lstatOrNull } from "../lib/io/file_checks.ts";

/** The project root. */
export const ROOT: string = fileURLToPath(new URL("../", import.meta.url));

/** Runs `deno run -A lib/cli/main.ts ...args` with extra environment. */
export function runCli(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return runProgram(
    Deno.execPath(),
    ["run", "-A", "lib/cli/main.ts", ...args],
    {
      cwd: ROOT,
      env: { NO_COLOR: "1", ...env },
    },
  );
}

/** Runs `program` with no input and returns its exit code and its output as text. */
export async function runProgram(
  program: string,
  args: string[],
  options: { cwd?: string; env?: Record<string, string> } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(program, {
    args,
    cwd: options.cwd,
    env: options.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return {
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}

/** Whether anything (a link included, whatever it points to) is at `path`. */
export async function exists(path: string): Promise<boolean> {
  return await lstatOrNull(path) !== null;
}

/**
 * The error of class `cls` that `fn` rejects with; `what` names the case in
 * the failure when it rejects with another error or not at all (for a loop
 * over many cases, where assertRejects would not say which one).
 */
export async function rejection<E extends Error>(
  fn: () => Promise<unknown>,
  // deno-lint-ignore no-explicit-any
  cls: new (...args: any[]) => E,
  what: string,
): Promise<E> {
  try {
    await fn();
  } catch (e) {
    if (e instanceof cls) return e;
    throw new Error(`${what}: expected a ${cls.name}, found ${e}`);
  }
  throw new Error(`${what}: accepted, expected a ${cls.name}`);
}

/** Environment under which Deno's WebGPU finds no adapter on Linux. */
export const NO_ADAPTER_ENV: Record<string, string> = {
  DENO_WEBGPU_BACKEND: "metal",
};

/**
 * Why the tests that need Chromium are skipped (none found), or undefined
 * when one is there. A set but wrong TOKENLAB_CHROMIUM throws, failing the
 * file, as it should. Imports the browser module only when called.
 */
export async function chromiumSkip(): Promise<string | undefined> {
  const { findBrowser } = await import("../lib/report/browser.ts");
  return await findBrowser() === null
    ? "no Chromium found; run `npx -y deno@2.9.6 task setup` or set TOKENLAB_CHROMIUM"
    : undefined;
}

/** How {@linkcode browserTest} runs. */
export interface BrowserTestOptions {
  /** Why it is skipped (from {@linkcode chromiumSkip}); the name then says so. */
  skip: string | undefined;
  /** Prefix of the temporary folder under tests/ (`.tmp-browser-`). */
  prefix: string;
}

/**
 * A Deno.test that needs Chromium: it gets a fresh browser and a fresh
 * folder under tests/, both closed and removed after; a skipped one is
 * registered as ignored with the reason in its name, never passed.
 */
export function browserTest(
  name: string,
  fn: (browser: Browser, dir: string) => Promise<void>,
  options: BrowserTestOptions,
): void {
  const { skip, prefix } = options;
  Deno.test({
    name: skip ? `${name} (skipped: ${skip})` : name,
    ignore: skip !== undefined,
    fn: async () => {
      const { Browser } = await import("../lib/report/browser.ts");
      const dir = await Deno.makeTempDir({ dir: `${ROOT}tests`, prefix });
      const browser = await Browser.launch();
      try {
        await fn(browser, dir);
      } finally {
        await browser.close();
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}

/** A page for {@linkcode checkHtml}. */
export interface HtmlPage {
  /** The folder it is written to. */
  dir: string;
  /** Its file name (`alert.html`). */
  name: string;
  /** Its HTML. */
  html: string;
  /** The check's timeout (default the browser's). */
  timeoutMs?: number;
}

/** What {@linkcode checkHtml} found, where, and in how many milliseconds. */
export interface TimedPageCheck {
  /** The page's file. */
  file: string;
  /** The browser's check of it. */
  check: PageCheck;
  /** How long the check took. */
  ms: number;
}

/** Writes a page into its folder and checks it in the browser, timed. */
export async function checkHtml(
  browser: Browser,
  page: HtmlPage,
): Promise<TimedPageCheck> {
  const file = `${page.dir}/${page.name}`;
  await Deno.writeTextFile(file, page.html);
  const t0 = performance.now();
  const check = await browser.checkPage(
    file,
    page.timeoutMs === undefined ? undefined : { timeoutMs: page.timeoutMs },
  );
  return { file, check, ms: performance.now() - t0 };
}

// ---------------------------------------------------------------------------
// Building ZIP archives byte by byte (torch files that torch would not write).

let crcTable: Uint32Array | undefined;
/** CRC-32 (ZIP's), written independently of the reader's. */
export function crc32(bytes: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (const b of bytes) c = crcTable[(c ^ b) & 255] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** Little-endian byte writer (ZIP records, pickle lengths). */
export class Bytes {
  parts: number[] = [];
  u16(n: number): this {
    this.parts.push(n & 255, (n >>> 8) & 255);
    return this;
  }
  u32(n: number): this {
    this.parts.push(
      n & 255,
      (n >>> 8) & 255,
      (n >>> 16) & 255,
      (n >>> 24) & 255,
    );
    return this;
  }
  u64(n: bigint): this {
    for (let i = 0n; i < 8n; i++) {
      this.parts.push(Number((n >> (8n * i)) & 255n));
    }
    return this;
  }
  raw(b: ArrayLike<number>): this {
    for (let i = 0; i < b.length; i++) this.parts.push(b[i]);
    return this;
  }
  get length(): number {
    return this.parts.length;
  }
}

/** One entry of {@linkcode buildZip}. */
export interface ZipEntrySpec {
  name: string;
  /** The bytes stored in the archive (already deflated for method 8). */
  data: Uint8Array;
  /** 0 stored (default), 8 deflate. */
  method?: number;
  /** The uncompressed size to declare (default: data.length). */
  size?: number;
  /** CRC-32 of the uncompressed bytes (default: of data). */
  crc?: number;
  /** Declare these through a Zip64 extra field instead. */
  zip64?: { offset?: bigint };
}

/** The end records of {@linkcode buildZip}, where a test makes them lie. */
export interface ZipSpec {
  /** Append Zip64 end records declaring these. */
  zip64?: { count?: bigint; cdSize?: bigint; cdOffset?: bigint };
  /** Override the plain end record's central directory size/offset. */
  cdSize?: number;
  cdOffset?: number;
}

/**
 * A ZIP archive built byte by byte, written apart from the reader and the
 * writer: stored or deflated entries, with the sizes, CRCs, offsets and
 * Zip64 records a test declares (default: the true ones).
 */
export function buildZip(
  entries: ZipEntrySpec[],
  spec: ZipSpec = {},
): Uint8Array {
  const body = new Bytes();
  const central = new Bytes();
  for (const e of entries) {
    const name = new TextEncoder().encode(e.name);
    const method = e.method ?? 0;
    const size = e.size ?? e.data.length;
    const crc = e.crc ?? crc32(e.data);
    const offset = body.length;
    body.u32(0x04034b50).u16(20).u16(0).u16(method).u16(0).u16(0x21)
      .u32(crc).u32(e.data.length).u32(size).u16(name.length).u16(0)
      .raw(name).raw(e.data);
    const extra = new Bytes();
    if (e.zip64?.offset !== undefined) {
      extra.u16(0x0001).u16(8).u64(e.zip64.offset);
    }
    central.u32(0x02014b50).u16(45).u16(20).u16(0).u16(method).u16(0)
      .u16(0x21).u32(crc).u32(e.data.length).u32(size).u16(name.length)
      .u16(extra.length).u16(0).u16(0).u16(0).u32(0)
      .u32(e.zip64?.offset !== undefined ? 0xffffffff : offset)
      .raw(name).raw(extra.parts);
  }
  const cdOffset = body.length;
  body.raw(central.parts);
  if (spec.zip64) {
    const z64At = body.length;
    body.u32(0x06064b50).u64(44n).u16(45).u16(45).u32(0).u32(0)
      .u64(spec.zip64.count ?? BigInt(entries.length))
      .u64(spec.zip64.count ?? BigInt(entries.length))
      .u64(spec.zip64.cdSize ?? BigInt(central.length))
      .u64(spec.zip64.cdOffset ?? BigInt(cdOffset));
    body.u32(0x07064b50).u32(0).u64(BigInt(z64At)).u32(1);
    body.u32(0x06054b50).u16(0).u16(0).u16(0xffff).u16(0xffff)
      .u32(0xffffffff).u32(0xffffffff).u16(0);
  } else {
    body.u32(0x06054b50).u16(0).u16(0).u16(entries.length)
      .u16(entries.length).u32(spec.cdSize ?? central.length)
      .u32(spec.cdOffset ?? cdOffset).u16(0);
  }
  return new Uint8Array(body.parts);
}

// ---------------------------------------------------------------------------
// Sealed JSON files (stored results, an annotator's result.json), written
// apart from the library's canonicalJson and sha256Hex.

/** JSON with sorted keys. */
export function sortedJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(sortedJson).join(",")}]`;
  if (v !== null && typeof v === "object") {
    const o = v as Record<string, unknown>;
    return `{${
      Object.keys(o).sort().map((k) =>
        `${JSON.stringify(k)}:${sortedJson(o[k])}`
      ).join(",")
    }}`;
  }
  return JSON.stringify(v);
}

/** SHA-256 of text (UTF-8) or bytes, lowercase hex. */
export async function sha256Hex(data: string | Uint8Array): Promise<string> {
  const bytes = typeof data === "string"
    ? new TextEncoder().encode(data)
    : data;
  const d = await crypto.subtle.digest(
    "SHA-256",
    bytes as Uint8Array<ArrayBuffer>,
  );
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0"))
    .join("");
}

/** The digest a sealed file of these fields carries: SHA-256 of the sorted JSON of all but `sha256`. */
export async function sealDigest(
  doc: Record<string, unknown>,
): Promise<string> {
  const { sha256: _, ...rest } = doc;
  return await sha256Hex(sortedJson(rest));
}

/** The doc with its `sha256` made for its other fields, as the writer would, so that only the field checks can catch an edit. */
export async function sealed(
  doc: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  return { ...doc, sha256: await sealDigest(doc) };
}

// ---------------------------------------------------------------------------
// Models small enough to train in a second on the CPU.

/**
 * An annotator label source that trains in about a second on the CPU: one
 * block of width 16 with an aux head, one epoch on synthetic 32 px scenes
 * of 4 classes (`data`), validated on 16 of them.
 */
export function tinyAnnotator(data: string): AnnotatorLabels {
  return {
    kind: "annotator",
    train: {
      model: "lvvit_xs32",
      modelOverrides: { embedDim: 16, depth: 1, numHeads: 1, stemChannels: 4 },
      data,
      valData: "synthetic:size=32,count=16,classes=4,seed=0,split=val",
      batchSize: 16,
      epochs: 1,
      warmupEpochs: 0,
      cooldownEpochs: 0,
      auxHead: true,
      backend: "cpu",
    },
  };
}

/** The width and depth of {@linkcode tinyVit}. */
export interface TinyVitSize {
  /** Embedding width (default 16). */
  embedDim?: number;
  /** Blocks (default 1). */
  depth?: number;
}

/**
 * A ViT config small enough to save, load and annotate with in well under
 * a second: `tiny_vit`, 32 px images, 8 px patches, 2 heads, a linear
 * stem, no aux head.
 */
export function tinyVit(
  numClasses: number,
  size: TinyVitSize = {},
): Partial<ModelConfig> & { numClasses: number } {
  return {
    name: "tiny_vit",
    imgSize: 32,
    patchSize: 8,
    embedDim: size.embedDim ?? 16,
    depth: size.depth ?? 1,
    numHeads: 2,
    numClasses,
    stem: "linear",
    auxHead: false,
  };
}

/** What {@linkcode writeTinyDataset} writes. */
export interface TinyDatasetOptions {
  /** Images. */
  n: number;
  /** Classes: image i has label `i % classes`. */
  classes: number;
}

/**
 * Writes a tensor dataset of `n` 32 x 32 RGB images of fixed pseudo-random
 * pixels, image i labelled `i % classes` and keyed `class<label>/img_<i>`.
 */
export async function writeTinyDataset(
  path: string,
  options: TinyDatasetOptions,
): Promise<void> {
  const { writeTensorDataset } = await import(
    "../lib/data/tensor_dataset.ts"
  );
  const { n, classes } = options;
  const images = new Uint8Array(n * 32 * 32 * 3);
  for (let i = 0; i < images.length; i++) {
    images[i] = (i * 7919 + (i >> 9) * 31) % 256;
  }
  await writeTensorDataset(path, {
    images,
    height: 32,
    width: 32,
    labels: Array.from({ length: n }, (_, i) => i % classes),
    keys: Array.from({ length: n }, (_, i) => `class${i % classes}/img_${i}`),
  });
}

// ---------------------------------------------------------------------------
// Building pickles byte by byte (protocol 2, as torch writes them).

const le32 = (n: number) => [
  n & 255,
  (n >>> 8) & 255,
  (n >>> 16) & 255,
  (n >>> 24) & 255,
];

/** A Python int as LONG1: little-endian two's complement, minimal length (any size). */
export function long1(n: number | bigint): number[] {
  let x = BigInt(n);
  const out: number[] = [];
  while (true) {
    out.push(Number(x & 255n));
    x >>= 8n;
    const sign = out[out.length - 1] & 0x80;
    if ((x === 0n && !sign) || (x === -1n && sign)) break;
  }
  return [0x8a, out.length, ...out];
}

/** Pickle opcodes as byte lists, to be joined with {@linkcode pk}. */
export const P = {
  proto: (v = 2): number[] => [0x80, v],
  str: (s: string): number[] => {
    const b = new TextEncoder().encode(s);
    return [0x58, ...le32(b.length), ...b];
  },
  /** BININT: a 32-bit int (torch's own choice for small ints). */
  int: (n: number): number[] => [0x4a, ...le32(n >>> 0)],
  global: (m: string, n: string): number[] => [
    0x63,
    ...new TextEncoder().encode(`${m}\n${n}\n`),
  ],
  mark: [0x28],
  tuple: [0x74],
  emptyTuple: [0x29],
  emptyDict: [0x7d],
  emptyList: [0x5d],
  setitem: [0x73],
  setitems: [0x75],
  reduce: [0x52],
  persid: [0x51],
  stop: [0x2e],
  false: [0x89],
  none: [0x4e],
};

/** Opcodes and bytes joined into a pickle. */
export function pk(...parts: (number[] | number)[]): Uint8Array {
  return new Uint8Array(parts.flat());
}

/** Where one tensor of {@linkcode rebuildTensorOps} lies in its storage. */
export interface TensorLayout {
  /** The storage's key (its file under `data/`). */
  key: string;
  /** The storage class (`FloatStorage`). */
  storage: string;
  /** The storage's elements. */
  numel: number;
  /** The tensor's offset into it, in elements. */
  offset: number;
  /** The tensor's shape. */
  size: number[];
  /** Its strides. */
  stride: number[];
  /** How the ints are pickled (default BININT; LONG1 takes any size). */
  int?: (n: number) => number[];
}

/** `_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())`, as torch pickles it. */
export function rebuildTensorOps(t: TensorLayout): number[] {
  const int = t.int ?? P.int;
  return [
    ...P.global("torch._utils", "_rebuild_tensor_v2"),
    ...P.mark,
    ...P.mark,
    ...P.str("storage"),
    ...P.global("torch", t.storage),
    ...P.str(t.key),
    ...P.str("cpu"),
    ...int(t.numel),
    ...P.tuple,
    ...P.persid,
    ...int(t.offset),
    ...P.mark,
    ...t.size.flatMap(int),
    ...P.tuple,
    ...P.mark,
    ...t.stride.flatMap(int),
    ...P.tuple,
    ...P.false,
    ...P.global("collections", "OrderedDict"),
    ...P.emptyTuple,
    ...P.reduce,
    ...P.tuple,
    ...P.reduce,
  ];
}

/** `{name: value, ...}` as a pickle (a plain dict), each value given as opcodes. */
export function dictPickle(entries: [string, number[]][]): Uint8Array {
  return pk(
    P.proto(),
    P.emptyDict,
    P.mark,
    ...entries.flatMap(([k, v]) => [P.str(k), v]),
    P.setitems,
    P.stop,
  );
}

/** A torch-shaped archive: `<folder>/data.pkl`, the storages under `<folder>/data/`, `<folder>/version`. */
export function torchArchive(
  pickle: Uint8Array,
  storages: Record<string, Uint8Array> = {},
  folder = "archive",
): Uint8Array {
  return buildZip([
    { name: `${folder}/data.pkl`, data: pickle },
    ...Object.entries(storages).map(([k, data]) => ({
      name: `${folder}/data/${k}`,
      data,
    })),
    { name: `${folder}/version`, data: new TextEncoder().encode("3\n") },
  ]);
}
