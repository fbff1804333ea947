/**
 * A model summary for notebooks and reports: the parameters of each part of
 * an LV-ViT (patch embedding, class token and position embedding, the
 * blocks' attention and MLP, final norm, heads), the output shape of each
 * part, the FLOPs by the official counter, and the config in one line.
 *
 * @module
 */

import {
  gridSize,
  mlpHidden,
  type ModelConfig,
  officialFlops,
  parameterSpec,
  resolveConfig,
} from "../models/config.ts";
import { LvVit } from "../models/lvvit.ts";
import type { TokenModel } from "../models/model.ts";
import { ResNet } from "../models/resnet.ts";
import { modelConfig } from "../models/registry.ts";
import { ResultTable } from "./table.ts";

/** One part of the model in a {@linkcode ModelSummary}. */
export interface SummaryRow {
  /** The part ("patch embedding", "blocks 1–16: attention", "head"...). */
  name: string;
  /** What it is made of, in one line. */
  contents: string;
  /** Trainable parameters of the part (all repeats together). */
  params: number;
  /** How many identical copies the row stands for (the depth for block rows, else 1). */
  repeat: number;
  /** The part's output shape (per image, or with the batch first when a batch is given). */
  outputShape: number[];
}

/** Options of {@linkcode modelSummary}. */
export interface ModelSummaryOptions {
  /** Batch size: shapes get it as their first axis and FLOPs are also given per batch. */
  batch?: number;
}

/** One state entry to count: its official name, its number of values and its kind. */
export interface SummaryEntry {
  /** Official state-dict name (`blocks.3.attn.qkv.weight`). */
  name: string;
  /** Number of values. */
  size: number;
  /** "param" is trained and counted in the rows; "buffer" is counted apart. */
  kind: "param" | "buffer";
}

type _Group =
  | "stem"
  | "tokens"
  | "attn"
  | "mlp"
  | "norm"
  | "head"
  | "aux"
  | `stage${number}`;

function _group(name: string): _Group {
  if (name.startsWith("stem.")) return "stem";
  const stage = /^layers\.(\d+)\./.exec(name);
  if (stage) return `stage${Number(stage[1])}`;
  if (name.startsWith("patch_embed.")) return "stem";
  if (name === "cls_token" || name === "pos_embed") return "tokens";
  const m = /^blocks\.\d+\.(norm1|attn|norm2|mlp)\./.exec(name);
  if (m) return m[1] === "norm1" || m[1] === "attn" ? "attn" : "mlp";
  if (name.startsWith("norm.")) return "norm";
  if (name.startsWith("head.")) return "head";
  if (name.startsWith("aux_head.")) return "aux";
  // A new kind of state entry means this summary no longer covers the model.
  throw new Error(
    `modelSummary does not know where the state entry "${name}" belongs; update lib/report/summary.ts for it`,
  );
}

function _resnetRows(
  c: ModelConfig,
  sums: Map<_Group, number>,
  shape: (s: number[]) => number[],
): SummaryRow[] {
  const widths = c.stageWidths ?? [], blocks = c.stageBlocks ?? [];
  const g = gridSize(c), C = c.numClasses, D = c.embedDim;
  const stemStride = c.patchSize / 2 ** (widths.length - 1);
  const rows: SummaryRow[] = [{
    name: "stem",
    contents: `conv 3×3/${stemStride} ${c.inChans}→${widths[0]} + BN + ReLU`,
    params: sums.get("stem") ?? 0,
    repeat: 1,
    outputShape: shape([
      c.imgSize / stemStride,
      c.imgSize / stemStride,
      widths[0],
    ]),
  }];
  widths.forEach((w, i) => {
    const side = c.imgSize / (stemStride * 2 ** i);
    rows.push({
      name: `stage ${i + 1}`,
      contents: `${blocks[i]} × basic block (2 × conv 3×3 ${w} + BN${
        i > 0 ? ", the first strided 2 with a 1×1 projection" : ""
      })`,
      params: sums.get(`stage${i}`) ?? 0,
      repeat: blocks[i],
      outputShape: shape([side, side, w]),
    });
  });
  return [
    ...rows,
    ..._headRows(c, sums, shape, {
      head: `global average pool, linear ${D}→${C}`,
      aux: `linear ${D}→${C} at every cell of the ${g}×${g} map`,
    }),
  ];
}

/** The head row, and the aux head's when the model has one. */
function _headRows(
  c: ModelConfig,
  sums: Map<_Group, number>,
  shape: (s: number[]) => number[],
  contents: { head: string; aux: string },
): SummaryRow[] {
  const C = c.numClasses, g = gridSize(c);
  const rows: SummaryRow[] = [{
    name: "head",
    contents: contents.head,
    params: sums.get("head") ?? 0,
    repeat: 1,
    outputShape: shape([C]),
  }];
  if (c.auxHead) {
    rows.push({
      name: "aux head",
      contents: contents.aux,
      params: sums.get("aux") ?? 0,
      repeat: 1,
      outputShape: shape([g * g, C]),
    });
  }
  return rows;
}

function _fmtCount(n: number, unit: string): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} G${unit}`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M${unit}`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(2)} K${unit}`;
  return `${n} ${unit}`;
}

/**
 * The summary of a model: a row per part with its parameters (counted from
 * the model's own variables, or from the parameter list it would be built
 * from), its share and its output shape; the total; the FLOPs.
 */
export class ModelSummary {
  /** The resolved configuration. */
  readonly config: ModelConfig;
  /** The parts, in forward order. */
  readonly rows: readonly SummaryRow[];
  /** Trainable parameters in all (the sum of the rows). */
  readonly totalParams: number;
  /** Values of the non-trained state (BatchNorm running statistics), not in the rows. */
  readonly bufferValues: number;
  /** FLOPs per image by the official counter's convention ({@linkcode officialFlops}). */
  readonly flops: number;
  /** The batch size the shapes include, when given. */
  readonly batch: number | undefined;
  /** Whether the counts come from a built model's variables (else from its config). */
  readonly fromModel: boolean;
  #table: ResultTable | undefined;

  /**
   * Builds the summary from the config and the state entries to count
   * (`fromModel` says they were read from a built model's variables).
   * {@linkcode modelSummary} is the usual way in.
   */
  constructor(
    config: ModelConfig,
    entries: readonly SummaryEntry[],
    options: ModelSummaryOptions = {},
    fromModel = false,
  ) {
    const { batch } = options;
    if (
      batch !== undefined && !(Number.isInteger(batch) && batch > 0)
    ) {
      throw new RangeError(
        `modelSummary: batch must be a positive whole number, found ${batch}; leave it out for shapes per image`,
      );
    }
    const c = config;
    const sums = new Map<_Group, number>();
    let buffers = 0;
    for (const e of entries) {
      if (e.kind === "buffer") {
        buffers += e.size;
        continue;
      }
      const g = _group(e.name);
      sums.set(g, (sums.get(g) ?? 0) + e.size);
    }
    const D = c.embedDim, g = gridSize(c), N = g * g, C = c.numClasses;
    const H = mlpHidden(c);
    const shape = (s: number[]) => batch === undefined ? s : [batch, ...s];
    const rows: SummaryRow[] = c.family === "resnet"
      ? _resnetRows(c, sums, shape)
      : this.#vitRows(c, sums, shape, D, g, N, C, H);
    this.config = c;
    this.rows = rows;
    this.totalParams = rows.reduce((a, r) => a + r.params, 0);
    this.bufferValues = buffers;
    this.flops = officialFlops(c);
    this.batch = batch;
    this.fromModel = fromModel;
  }

  #vitRows(
    c: ModelConfig,
    sums: Map<_Group, number>,
    shape: (s: number[]) => number[],
    D: number,
    g: number,
    N: number,
    C: number,
    H: number,
  ): SummaryRow[] {
    const blocks = c.depth === 1 ? "block 1" : `blocks 1–${c.depth}`;
    const each = c.depth === 1 ? "" : `${c.depth} × `;
    const residual = c.skipLam === 1 ? "" : `, residual ÷ ${c.skipLam}`;
    const k = c.patchSize / 2, S = c.stemChannels;
    const stem = c.stem === "conv"
      ? `conv 7×7/2 ${c.inChans}→${S}, 2 × conv 3×3 ${S}→${S} (each + BN + ReLU), projection ${k}×${k}/${k} ${S}→${D}`
      : `conv ${c.patchSize}×${c.patchSize}/${c.patchSize} ${c.inChans}→${D} (linear patchify)`;
    const rows: SummaryRow[] = [
      {
        name: "patch embedding",
        contents: stem,
        params: sums.get("stem") ?? 0,
        repeat: 1,
        outputShape: shape([g, g, D]),
      },
      {
        name: "class token + position embedding",
        contents: `class token [1, ${D}], position embedding [${N + 1}, ${D}]`,
        params: sums.get("tokens") ?? 0,
        repeat: 1,
        outputShape: shape([N + 1, D]),
      },
      {
        name: `${blocks}: attention`,
        contents: `${each}(LayerNorm, qkv ${D}→${3 * D}${
          c.qkvBias ? "" : " without bias"
        }, ${c.numHeads} heads × ${
          D / c.numHeads
        }, projection ${D}→${D}${residual})`,
        params: sums.get("attn") ?? 0,
        repeat: c.depth,
        outputShape: shape([N + 1, D]),
      },
      {
        name: `${blocks}: MLP`,
        contents:
          `${each}(LayerNorm, linear ${D}→${H}, GELU, linear ${H}→${D}${residual})`,
        params: sums.get("mlp") ?? 0,
        repeat: c.depth,
        outputShape: shape([N + 1, D]),
      },
      {
        name: "final norm",
        contents: `LayerNorm ${D}`,
        params: sums.get("norm") ?? 0,
        repeat: 1,
        outputShape: shape([N + 1, D]),
      },
    ];
    return [
      ...rows,
      ..._headRows(c, sums, shape, {
        head: `linear ${D}→${C} on the class token`,
        aux: `linear ${D}→${C} on every patch token`,
      }),
    ];
  }

  /** The config in one line: image, tokens, width, depth, heads, MLP ratio. */
  configLine(): string {
    const c = this.config, g = gridSize(c);
    if (c.family === "resnet") {
      return `${c.name}: ${c.imgSize}×${c.imgSize} px, ResNet stages ${
        (c.stageWidths ?? []).join("/")
      } (${
        (c.stageBlocks ?? []).join("/")
      } blocks), total stride ${c.patchSize} → ${g}×${g} = ${
        g * g
      } cells, ${c.numClasses} classes`;
    }
    return `${c.name}: ${c.imgSize}×${c.imgSize} px, ${c.stem} stem, patch ${c.patchSize} → ${g}×${g} = ${
      g * g
    } tokens + class token; embed dim ${c.embedDim}, depth ${c.depth}, ${c.numHeads} heads, MLP ratio ${c.mlpRatio}, skip λ ${c.skipLam}, ${c.numClasses} classes`;
  }

  /** The summary as a {@linkcode ResultTable} (with a total row). */
  toTable(): ResultTable {
    if (this.#table) return this.#table;
    const total = this.totalParams;
    const shapeText = (s: number[]) => `[${s.join(", ")}]`;
    const flops = `${_fmtCount(this.flops, "FLOPs")} per image${
      this.batch === undefined
        ? ""
        : ` (${
          _fmtCount(this.flops * this.batch, "FLOPs")
        } per batch of ${this.batch})`
    } ${
      this.config.family === "resnet"
        ? "counted as the multiply-adds of every convolution (BatchNorm, ReLU, pooling and heads not counted)"
        : "by the official counter (patch embedding and blocks; norm and heads not counted)"
    }`;
    const notes = [
      `${total.toLocaleString("en-US")} trainable parameters (${
        _fmtCount(total, "").trim()
      }); ${flops}.`,
    ];
    if (this.bufferValues > 0) {
      notes.push(
        `Not counted above: ${
          this.bufferValues.toLocaleString("en-US")
        } values of BatchNorm running statistics (buffers, not trained).`,
      );
    }
    notes.push(
      this.fromModel
        ? "Counted from the model's variables."
        : "Counted from the parameter list the model is built from.",
    );
    this.#table = new ResultTable({
      caption: this.configLine(),
      columns: [
        { key: "name", label: "module" },
        { key: "contents", label: "contents" },
        { key: "params", label: "params", digits: 0, thousands: true },
        { key: "share", label: "share", unit: "%", digits: 1 },
        {
          key: "output",
          label: this.batch === undefined ? "output per image" : "output",
          align: "right",
        },
      ],
      rows: [
        ...this.rows.map((r) => ({
          name: r.name,
          contents: r.contents,
          params: r.params,
          share: total ? (100 * r.params) / total : null,
          output: shapeText(r.outputShape),
        })),
        {
          name: "total",
          contents: "",
          params: total,
          share: total ? 100 : null,
          output: "",
        },
      ],
      notes,
    });
    return this.#table;
  }

  /** Markdown (see {@linkcode ResultTable.toMarkdown}). */
  toMarkdown(): string {
    return this.toTable().toMarkdown();
  }

  /** HTML (see {@linkcode ResultTable.toHtml}). */
  toHtml(): string {
    return this.toTable().toHtml();
  }

  /** Machine-readable table (see {@linkcode ResultTable.toJSON}). */
  toJSON(): ReturnType<ResultTable["toJSON"]> {
    return this.toTable().toJSON();
  }

  /** Aligned text. */
  toString(): string {
    return this.toTable().toString();
  }

  /** The Jupyter bundle: Markdown, HTML, the table as JSON, and text. */
  [Symbol.for("Jupyter.display")](): Record<string, unknown> {
    const t = this.toTable();
    return {
      "text/markdown": t.toMarkdown(),
      "text/html": t.toHtml(),
      "application/vnd.tokenlab.table+json": t.toJSON(),
      "text/plain": t.toString(),
    };
  }
}

/**
 * Summarises a model: a built {@linkcode LvVit} (counted from its
 * variables), a config (full or partial, resolved as `LvVit.create` would),
 * or a registry name.
 *
 * @example
 * ```ts
 * import { modelSummary } from "tokenlab/report/summary.ts";
 * const s = modelSummary("lvvit_s");
 * console.log(s.totalParams, (s.flops / 1e9).toFixed(2)); // 26151824 6.57
 * console.log(s.toString());
 * ```
 */
export function modelSummary(
  model: TokenModel | Partial<ModelConfig> | string,
  options: ModelSummaryOptions = {},
): ModelSummary {
  if (model instanceof LvVit || model instanceof ResNet) {
    const kinds = new Map(model.spec.map((p) => [p.name, p.kind]));
    // Sizes come from the variables themselves, so a model whose state
    // drifted from its parameter list would show it.
    const entries = [...model.state].map(([name, v]): SummaryEntry => ({
      name,
      size: v.size,
      kind: kinds.get(name) ?? (v.trainable ? "param" : "buffer"),
    }));
    return new ModelSummary(model.config, entries, options, true);
  }
  let config: ModelConfig;
  if (typeof model === "string") config = modelConfig(model);
  else if (model !== null && typeof model === "object") {
    config = resolveConfig(model as Partial<ModelConfig>);
  } else {
    throw new TypeError(
      `modelSummary needs an LvVit, a model config or a registry name, found ${
        model === null ? "null" : typeof model
      }`,
    );
  }
  const entries = parameterSpec(config).map((p) => ({
    name: p.name,
    size: p.shape.reduce((a, b) => a * b, 1),
    kind: p.kind,
  }));
  return new ModelSummary(config, entries, options);
}
