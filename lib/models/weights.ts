/**
 * Weights in and out of a model: official PyTorch checkpoints (`.pth`,
 * `.pth.tar`, `.pt`: torch zip archives read by a restricted unpickler),
 * safetensors files (what people exchange weights in; ours are written in
 * PyTorch's layout and names, so `safetensors.torch.load_file` plus
 * `load_state_dict` reads them), and the state-dict mapping between them and
 * the model: official names, layouts transposed, BatchNorm statistics
 * included, `head`/`aux_head` dropped when the class count differs, the
 * position embedding resized (bicubic) when the token grid differs.
 *
 * @module
 */

import { describeNonZip, SNIFF_BYTES } from "../io/file_kind.ts";
import { tf } from "../tf.ts";
import { VERSION } from "../version.ts";
import { type RawTensor, toFloat32 } from "../io/raw_tensor.ts";
import { readTorchStateDict } from "../io/torch/mod.ts";
import { readSafetensors, writeSafetensors } from "../io/safetensors.ts";
import {
  gridSize,
  type ModelConfig,
  parameterSpec,
  type ParamSpec,
  resolveConfig,
} from "./config.ts";
import { tfToTorchLayout, torchToTfLayout } from "./_model_state.ts";
import type { TokenModel } from "./model.ts";
import { buildModel, modelConfig } from "./registry.ts";
import { TokenlabError } from "../errors.ts";

/** Raised when weights do not fit a model, or a weights file is unusable. */
export class WeightsError extends TokenlabError {
  /** The options the message quotes (as `` `model: "lvvit_s"` ``), for the CLI to name as flags. */
  readonly fields: readonly "model"[];

  /** Creates the error; `fields` lists the options it quotes. */
  constructor(message: string, fields: readonly "model"[] = []) {
    super(message);
    this.fields = fields;
  }
}

/** Options of {@linkcode loadStateDict}. */
export interface LoadStateDictOptions {
  /**
   * Refuse a state dict with missing or unexpected entries (default true).
   * With false, the entries that fit are loaded and the rest is reported.
   */
  strict?: boolean;
  /** Where the state dict came from, for messages. */
  source?: string;
}

/** What a load did. */
export interface LoadReport {
  /** Entries loaded as they were. */
  loaded: string[];
  /** Entries the model has and the state dict lacks (kept as initialised). */
  missing: string[];
  /** Entries of the state dict the model does not have (ignored). */
  unexpected: string[];
  /** `head`/`aux_head` entries skipped because the class count differs. */
  reinitialized: string[];
  /** Entries resized to the model's shape (the position embedding), with how. */
  resized: string[];
}

/**
 * Bicubic resize of a position embedding's grid part, as timm's
 * `resize_pos_embed` (PyTorch `F.interpolate(mode="bicubic",
 * align_corners=False)`, A = -0.75, edges clamped). `values` is
 * [prefix + from^2, dim] (the class token first); the prefix tokens are kept.
 *
 * @example
 * ```ts
 * import { resizePosEmbed } from "tokenlab";
 * const grid = Float32Array.from({ length: 1 + 4 }, (_, i) => i); // dim 1, 2x2 grid
 * console.log(resizePosEmbed(grid, 2, { to: 4, dim: 1 }).length); // 17
 * ```
 */
export function resizePosEmbed(
  values: Float32Array,
  from: number,
  options: { to: number; dim: number; prefixTokens?: number },
): Float32Array {
  const { to, dim, prefixTokens = 1 } = options;
  if (values.length !== (prefixTokens + from * from) * dim) {
    throw new WeightsError(
      `resizePosEmbed: expected ${prefixTokens} + ${from}x${from} tokens of width ${dim} (${
        (prefixTokens + from * from) * dim
      } values), found ${values.length}`,
    );
  }
  const w = bicubicMatrix(from, to); // [to, from]
  const out = new Float32Array((prefixTokens + to * to) * dim);
  out.set(values.subarray(0, prefixTokens * dim));
  const src = values.subarray(prefixTokens * dim);
  // Separable: rows first into a float64 buffer, then columns.
  const tmp = new Float64Array(to * from * dim); // [to, from, dim]
  for (let r = 0; r < to; r++) {
    for (let i = 0; i < from; i++) {
      const wr = w[r * from + i];
      if (wr === 0) continue;
      for (let c = 0; c < from; c++) {
        const s = (i * from + c) * dim, d = (r * from + c) * dim;
        for (let k = 0; k < dim; k++) tmp[d + k] += wr * src[s + k];
      }
    }
  }
  const base = prefixTokens * dim;
  const acc = new Float64Array(dim);
  for (let r = 0; r < to; r++) {
    for (let c = 0; c < to; c++) {
      acc.fill(0);
      for (let j = 0; j < from; j++) {
        const wc = w[c * from + j];
        if (wc === 0) continue;
        const s = (r * from + j) * dim;
        for (let k = 0; k < dim; k++) acc[k] += wc * tmp[s + k];
      }
      out.set(acc, base + (r * to + c) * dim);
    }
  }
  return out;
}

/** Interpolation weights [out, in] of PyTorch's 1-D bicubic resize. */
function bicubicMatrix(inSize: number, outSize: number): Float64Array {
  const A = -0.75;
  const near = (t: number) => ((A + 2) * t - (A + 3)) * t * t + 1; // |t| <= 1
  const far = (t: number) => ((A * t - 5 * A) * t + 8 * A) * t - 4 * A; // 1 < |t| < 2
  const m = new Float64Array(outSize * inSize);
  const scale = inSize / outSize;
  for (let o = 0; o < outSize; o++) {
    // align_corners=False; cubic source indices are not clamped at 0.
    const src = (o + 0.5) * scale - 0.5;
    const i0 = Math.floor(src), t = src - i0;
    const ws = [far(t + 1), near(t), near(1 - t), far(2 - t)];
    for (let k = 0; k < 4; k++) {
      const idx = Math.min(Math.max(i0 - 1 + k, 0), inSize - 1);
      m[o * inSize + idx] += ws[k];
    }
  }
  return m;
}

function shapeText(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** A planned assignment: values in PyTorch layout for one spec entry. */
interface Planned {
  spec: ParamSpec;
  values: Float32Array;
}

/**
 * Loads a state dict (official names, PyTorch layouts) into a model. Every
 * entry is checked before anything is written, so a refused load leaves the
 * model as it was.
 *
 * @example
 * ```ts
 * import { createModel, initBackend, loadStateDict, stateDict } from "tokenlab";
 * await initBackend();
 * const a = createModel("lvvit_xs32", {}, { seed: 1 });
 * const b = createModel("lvvit_xs32", {}, { seed: 2 });
 * const report = loadStateDict(b, await stateDict(a));
 * console.log(report.loaded.length, report.missing); // 72 []
 * a.dispose();
 * b.dispose();
 * ```
 */
export function loadStateDict(
  model: TokenModel,
  dict: ReadonlyMap<string, RawTensor>,
  options: LoadStateDictOptions = {},
): LoadReport {
  const { strict = true, source = "the state dict" } = options;
  const c = model.config;
  const report: LoadReport = {
    loaded: [],
    missing: [],
    unexpected: [],
    reinitialized: [],
    resized: [],
  };
  const known = new Set(model.spec.map((p) => p.name));
  for (const name of dict.keys()) {
    if (!known.has(name)) report.unexpected.push(name);
  }
  const mismatches: string[] = [];
  const plan: Planned[] = [];
  for (const spec of model.spec) {
    const raw = dict.get(spec.name);
    if (raw === undefined) {
      // BatchNorm states saved before PyTorch 0.4.1 lack the counter; PyTorch
      // itself fills it in, so do we.
      if (!spec.name.endsWith("num_batches_tracked")) {
        report.missing.push(spec.name);
      }
      continue;
    }
    if (sameShape(raw.shape, spec.shape)) {
      plan.push({ spec, values: toFloat32(raw) });
      report.loaded.push(spec.name);
      continue;
    }
    const isHead = /^(head|aux_head)\.(weight|bias)$/.test(spec.name);
    if (
      isHead && raw.shape.length === spec.shape.length &&
      raw.shape.slice(1).every((v, i) => v === spec.shape[i + 1])
    ) {
      report.reinitialized.push(
        `${spec.name}: ${
          raw.shape[0]
        } classes in ${source}, the model has ${c.numClasses}`,
      );
      continue;
    }
    if (spec.name === "pos_embed" && raw.shape.length === 3) {
      const [one, tokens, dim] = raw.shape;
      const from = Math.round(Math.sqrt(tokens - 1));
      if (one === 1 && dim === c.embedDim && from * from === tokens - 1) {
        const to = gridSize(c);
        plan.push({
          spec,
          values: resizePosEmbed(toFloat32(raw), from, { to, dim }),
        });
        report.resized.push(
          `pos_embed: ${from}x${from} grid in ${source} resized (bicubic) to ${to}x${to}`,
        );
        continue;
      }
    }
    mismatches.push(
      `${spec.name}: ${source} has ${shapeText(raw.shape)}, the model needs ${
        shapeText(spec.shape)
      }`,
    );
  }
  if (mismatches.length > 0) {
    throw new WeightsError(
      `shape mismatch loading ${source} into ${c.name} (nothing was loaded):\n  ${
        mismatches.join("\n  ")
      }\nCheck that the model variant and its config (family; embedDim, depth, stem, mlpRatio, qkvBias; a ResNet's stageWidths, stageBlocks) match the checkpoint.`,
    );
  }
  if (strict && (report.missing.length > 0 || report.unexpected.length > 0)) {
    const parts: string[] = [];
    if (report.missing.length > 0) {
      parts.push(
        `missing (${report.missing.length}): ${listNames(report.missing)}`,
      );
    }
    if (report.unexpected.length > 0) {
      parts.push(
        `unexpected (${report.unexpected.length}): ${
          listNames(report.unexpected)
        }`,
      );
    }
    throw new WeightsError(
      `${source} does not match ${c.name} (nothing was loaded):\n  ${
        parts.join("\n  ")
      }\nPick the model variant the checkpoint was trained as, or pass { strict: false } to load the entries that fit and keep the rest as initialised.`,
    );
  }
  tf.tidy(() => {
    for (const { spec, values } of plan) {
      const { shape, values: v } = torchToTfLayout(
        spec.layout,
        spec.shape,
        values,
      );
      model.state.get(spec.name)!.assign(tf.tensor(v, shape, "float32"));
    }
  });
  return report;
}

function listNames(names: string[]): string {
  const shown = names.slice(0, 12).join(", ");
  return names.length > 12
    ? `${shown}, ... (${names.length - 12} more)`
    : shown;
}

/**
 * The model's state dict: official names, PyTorch layouts and dtypes
 * (`num_batches_tracked` int64), in the official order.
 */
export async function stateDict(
  model: TokenModel,
): Promise<Map<string, RawTensor>> {
  const out = new Map<string, RawTensor>();
  for (const spec of model.spec) {
    const v = model.state.get(spec.name)!;
    const values = tfToTorchLayout(
      spec.layout,
      spec.shape,
      Float32Array.from(await v.data() as Float32Array),
    );
    if (spec.dtype === "int64") {
      out.set(spec.name, {
        dtype: "int64",
        shape: [...spec.shape],
        data: BigInt64Array.from(values, (x) => BigInt(Math.round(x))),
      });
    } else {
      out.set(spec.name, {
        dtype: "float32",
        shape: [...spec.shape],
        data: values,
      });
    }
  }
  return out;
}

const CONFIG_KEY = "tokenlab.config";

/**
 * Saves the model as safetensors: official names, PyTorch layouts, the
 * config in the metadata. Written atomically: an existing file at `path` is
 * replaced only once the new one is complete.
 *
 * @example
 * ```ts
 * import { createModel, initBackend, loadModel, saveWeights } from "tokenlab";
 * await initBackend();
 * const dir = await Deno.makeTempDir();
 * const model = createModel("vit_xs32");
 * await saveWeights(model, `${dir}/vit.safetensors`);
 * const { model: again, report } = await loadModel(`${dir}/vit.safetensors`);
 * console.log(again.config.name, report.missing); // vit_xs32 []
 * model.dispose();
 * again.dispose();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function saveWeights(
  model: TokenModel,
  path: string,
): Promise<void> {
  await writeSafetensors(path, await stateDict(model), {
    metadata: {
      format: "pt",
      [CONFIG_KEY]: JSON.stringify(model.config),
      "tokenlab.version": VERSION,
    },
  });
}

/** Options of {@linkcode readWeights} and {@linkcode loadWeights}. */
export interface ReadWeightsOptions {
  /**
   * For a training checkpoint holding several state dicts: which one
   * (`state_dict`, `state_dict_ema`, `model`...). Default: the first present.
   */
  key?: string;
}

/** A weights file's state dict, and the tokenlab config if it carries one. */
export interface WeightsFile {
  /** Official names to tensors in PyTorch layout. */
  tensors: Map<string, RawTensor>;
  /** The config saved by {@linkcode saveWeights}; null for other files. */
  config: ModelConfig | null;
  /** "torch" (zip checkpoint) or "safetensors". */
  format: "torch" | "safetensors";
}

/**
 * Reads a weights file of either format; the format is told by its first
 * bytes (a torch checkpoint is a zip archive, whatever its extension).
 */
export async function readWeights(
  path: string,
  options: ReadWeightsOptions = {},
): Promise<WeightsFile> {
  let head: Uint8Array;
  let size: number;
  try {
    using file = await Deno.open(path, { read: true });
    // A folder opens like a file but fails on read with a bare OS error.
    if (!(await file.stat()).isFile) {
      throw new WeightsError(
        `weights file ${path}: expected a regular file, found a folder or other special file; give the path of a .pth, .pth.tar, .pt or .safetensors file`,
      );
    }
    head = new Uint8Array(SNIFF_BYTES);
    let n = 0;
    while (n < head.length) {
      const got = await file.read(head.subarray(n));
      if (got === null || got === 0) break;
      n += got;
    }
    head = head.subarray(0, n);
    size = (await file.stat()).size;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new WeightsError(
        `weights file not found: ${path}; check the path (a .pth, .pth.tar, .pt or .safetensors file)`,
      );
    }
    throw e;
  }
  if (head[0] === 0x50 && head[1] === 0x4b) {
    const tensors = await readTorchStateDict(path, { key: options.key });
    return {
      tensors: stripModulePrefix(tensors),
      config: null,
      format: "torch",
    };
  }
  // A safetensors header is JSON and opens with "{" right after its 8-byte
  // length; anything else is named for what it is (an image, a tar, ...).
  if (size < 10 || head[8] !== 0x7b) {
    throw new WeightsError(
      `weights file ${path}: expected a .safetensors file (an 8-byte header length, then a JSON header) or a PyTorch checkpoint (.pth, .pth.tar, .pt: a zip starting with "PK"), found ${
        describeNonZip(head, size)
      }`,
    );
  }
  const { tensors, metadata } = await readSafetensors(path);
  let config: ModelConfig | null = null;
  if (metadata[CONFIG_KEY] !== undefined) {
    try {
      const parsed = JSON.parse(metadata[CONFIG_KEY]);
      // A string or a list would be spread into one field per character.
      if (
        parsed === null || typeof parsed !== "object" || Array.isArray(parsed)
      ) {
        throw new Error(
          `expected a JSON object of config fields, found ${
            Array.isArray(parsed)
              ? "a list"
              : parsed === null
              ? "null"
              : `a ${typeof parsed}`
          }`,
        );
      }
      config = resolveConfig(parsed);
    } catch (e) {
      throw new WeightsError(
        `${path}: its tokenlab config metadata is unreadable (${
          (e as Error).message
        }); load it into a model you build yourself with loadWeights(model, path)`,
      );
    }
  }
  return { tensors: stripModulePrefix(tensors), config, format: "safetensors" };
}

function stripModulePrefix(
  tensors: Map<string, RawTensor>,
): Map<string, RawTensor> {
  const keys = [...tensors.keys()];
  if (keys.length === 0 || !keys.every((k) => k.startsWith("module."))) {
    return tensors;
  }
  return new Map(keys.map((k) => [k.slice(7), tensors.get(k)!]));
}

/** Options of {@linkcode loadWeights}. */
export interface LoadWeightsOptions
  extends ReadWeightsOptions, LoadStateDictOptions {}

/**
 * Loads a weights file (official `.pth`/`.pth.tar`, or safetensors) into an
 * existing model, with the checks of {@linkcode loadStateDict}.
 */
export async function loadWeights(
  model: TokenModel,
  path: string,
  options: LoadWeightsOptions = {},
): Promise<LoadReport> {
  const file = await readWeights(path, options);
  return loadStateDict(model, file.tensors, {
    strict: options.strict,
    source: options.source ?? path,
  });
}

/** A model built from a weights file, and what the load did. */
export interface LoadedModel {
  /** The model, weights loaded. */
  model: TokenModel;
  /** Loaded, missing, unexpected, re-initialised and resized entries. */
  report: LoadReport;
}

/** Options of {@linkcode loadModel}. */
export interface LoadModelOptions extends LoadWeightsOptions {
  /**
   * The variant for a file without a tokenlab config (official checkpoints):
   * a registry name (`lvvit_s`) or a full config.
   */
  model?: string | Partial<ModelConfig>;
  /** Overrides of the config (e.g. `imgSize: 384`, `numClasses: 10`). */
  overrides?: Partial<ModelConfig>;
}

/**
 * Checks that the tokenlab config a weights file carries describes the
 * file's own tensors (every entry, its shape) before a model is built from
 * it: the config is read from the file, so a damaged or edited one could
 * otherwise ask for a model of any size.
 *
 * @throws {WeightsError} naming the file and the first entries that differ
 */
function checkFileConfig(
  config: ModelConfig,
  tensors: ReadonlyMap<string, RawTensor>,
  path: string,
): void {
  // The spec lists entries per block: bound the blocks by the file first.
  const blocks = config.family === "resnet"
    ? config.stageBlocks.reduce((a, b) => a + b, 0)
    : config.depth;
  const wrong: string[] = [];
  if (!(blocks <= tensors.size)) {
    wrong.push(
      `${blocks} blocks, but the file holds ${tensors.size} tensors in all`,
    );
  } else {
    for (const spec of parameterSpec(config)) {
      const raw = tensors.get(spec.name);
      if (raw === undefined) {
        if (!spec.name.endsWith("num_batches_tracked")) {
          wrong.push(`${spec.name}: not in the file`);
        }
      } else if (!sameShape(raw.shape, spec.shape)) {
        wrong.push(
          `${spec.name}: the file has ${
            shapeText(raw.shape)
          }, the config needs ${shapeText(spec.shape)}`,
        );
      }
    }
  }
  if (wrong.length > 0) {
    throw new WeightsError(
      `${path}: its tokenlab config metadata does not describe its tensors (${config.name}):\n  ${
        listNames(wrong)
      }\nThe file was damaged or edited; load it into a model you build yourself with loadModel(path, { model: "<variant>" }), or save the weights again`,
    );
  }
}

/**
 * Builds a model and loads a weights file into it. The config comes from
 * `options.model`, else from the file's tokenlab metadata; `overrides` change
 * it (a different `imgSize` resizes the position embedding, a different
 * `numClasses` re-initialises the heads).
 *
 * @example
 * ```ts ignore
 * import { initBackend, loadModel } from "tokenlab";
 * await initBackend();
 * // The official LV-ViT-S checkpoint, fine-tuned at 384 for 10 classes:
 * const { model, report } = await loadModel("lvvit_s-26M-224-83.3.pth.tar", {
 *   model: "lvvit_s", overrides: { imgSize: 384, numClasses: 10 },
 * });
 * console.log(report.resized, report.reinitialized);
 * ```
 */
export async function loadModel(
  path: string,
  options: LoadModelOptions = {},
): Promise<LoadedModel> {
  const file = await readWeights(path, options);
  let config: ModelConfig;
  const overrides = options.overrides ?? {};
  if (typeof options.model === "string") {
    config = modelConfig(options.model, overrides);
  } else if (options.model !== undefined) {
    config = resolveConfig({ ...options.model, ...overrides });
  } else if (file.config !== null) {
    checkFileConfig(file.config, file.tensors, path);
    config = resolveConfig({ ...file.config, ...overrides });
  } else {
    throw new WeightsError(
      `${path} holds weights but no tokenlab config; say which variant it is, e.g. loadModel(path, { model: "lvvit_s" }): the option \`model: "lvvit_s"\``,
      ["model"],
    );
  }
  const model = buildModel(config);
  try {
    const report = loadStateDict(model, file.tensors, {
      strict: options.strict,
      source: options.source ?? path,
    });
    return { model, report };
  } catch (e) {
    model.dispose();
    throw e;
  }
}
