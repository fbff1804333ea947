/**
 * A display for any plotly figure built in a notebook: the plotly MIME
 * bundle for Jupyter front ends, an HTML fallback (the SVG as an image when
 * one is given, else a line saying the figure needs plotly), the SVG, and a
 * text summary of the traces.
 *
 * The figure is copied into plain JSON when the plot is made: typed arrays
 * (what `await tensor.data()` gives) become plain arrays, dates become ISO
 * strings, and `undefined` inside an array becomes null (a gap, as
 * `JSON.stringify` does). What JSON cannot carry faithfully (NaN, ±Infinity,
 * functions, Maps, tensors, cycles) is an error naming its path, instead of
 * silently becoming null or `{}` in the saved notebook.
 *
 * @module
 */

import { figureBundle, plotlyBundle } from "../view/bundle.ts";
import { escapeXml } from "../view/escape.ts";
import { TokenlabError } from "../errors.ts";

/** A plotly figure: traces, layout and config. */
export interface PlotlyFigure {
  /** The traces. */
  data: unknown[];
  /** The layout. */
  layout: Record<string, unknown>;
  /** The plotly config (display options), when given. */
  config?: Record<string, unknown>;
}

/** Options of {@linkcode plot}. */
export interface PlotOptions {
  /** Alt text of the image fallback (default: the caption, the title, or "plotly figure"). */
  alt?: string;
  /** A self-contained SVG of the same picture, for the HTML and image fallbacks. */
  svg?: string;
  /** A caption shown under the figure in the fallbacks and as the text's first line. */
  caption?: string;
  /** Width in pixels (set in the layout). */
  width?: number;
  /** Height in pixels (set in the layout). */
  height?: number;
}

/** Raised for a figure that cannot be shown or saved. */
export class PlotError extends TokenlabError {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
  }
}

const TYPED_HINT =
  "; give numbers, strings, booleans, null, plain arrays and plain objects";

/** A plain-JSON copy of `v`; `path` names `v` in error messages. */
function _json(v: unknown, path: string, seen: Set<object>): unknown {
  if (v === null || typeof v === "string" || typeof v === "boolean") return v;
  if (typeof v === "number") {
    if (!Number.isFinite(v)) {
      throw new PlotError(
        `the figure holds ${v} at ${path}; JSON cannot carry it (it would become null); use null for a gap in a trace`,
      );
    }
    return v;
  }
  if (
    typeof v === "function" || typeof v === "symbol" || typeof v === "bigint"
  ) {
    throw new PlotError(
      `the figure holds a ${typeof v} at ${path}, which JSON cannot carry${TYPED_HINT}`,
    );
  }
  if (v === undefined) {
    throw new PlotError(`the figure holds undefined at ${path}${TYPED_HINT}`);
  }
  const o = v as object;
  if (ArrayBuffer.isView(o)) {
    if (o instanceof DataView) {
      throw new PlotError(
        `the figure holds a DataView at ${path}; give the values as an array`,
      );
    }
    if (o instanceof BigInt64Array || o instanceof BigUint64Array) {
      throw new PlotError(
        `the figure holds a ${o.constructor.name} at ${path}; convert it to numbers (Array.from(x, Number))`,
      );
    }
    // Typed arrays are what tensors read into; copying them is the usual need.
    return Array.from(
      o as unknown as ArrayLike<number>,
      (x, i) => _json(x, `${path}[${i}]`, seen),
    );
  }
  if (o instanceof Date) {
    if (Number.isNaN(o.getTime())) {
      throw new PlotError(`the figure holds an invalid Date at ${path}`);
    }
    return o.toISOString();
  }
  if (seen.has(o)) {
    throw new PlotError(
      `the figure refers to itself at ${path}; JSON cannot carry a cycle`,
    );
  }
  seen.add(o);
  try {
    if (Array.isArray(o)) {
      return Array.from(
        o,
        (x, i) => x === undefined ? null : _json(x, `${path}[${i}]`, seen),
      );
    }
    const proto = Object.getPrototypeOf(o);
    if (proto !== Object.prototype && proto !== null) {
      const name = o.constructor?.name ?? "object";
      throw new PlotError(
        `the figure holds a ${name} at ${path}, which JSON cannot carry faithfully${
          name === "Tensor" || name === "Variable"
            ? "; read its values first (await t.array())"
            : TYPED_HINT
        }`,
      );
    }
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(o)) {
      // An absent field and an undefined one mean the same to plotly.
      if (x === undefined) continue;
      out[k] = _json(
        x,
        /^[A-Za-z_$][\w$]*$/.test(k)
          ? `${path}.${k}`
          : `${path}[${JSON.stringify(k)}]`,
        seen,
      );
    }
    return out;
  } finally {
    seen.delete(o);
  }
}

function _positive(name: string, v: number | undefined): void {
  if (v !== undefined && !(typeof v === "number" && v > 0 && isFinite(v))) {
    throw new PlotError(
      `plot: ${name} must be a positive number of pixels, found ${v}`,
    );
  }
}

/** The title text of a layout (plotly takes a string or `{ text }`). */
function _title(layout: Record<string, unknown>): string | undefined {
  const t = layout.title;
  if (typeof t === "string") return t;
  if (t !== null && typeof t === "object") {
    const text = (t as Record<string, unknown>).text;
    if (typeof text === "string") return text;
  }
  return undefined;
}

const POINT_FIELDS = ["x", "y", "values", "labels", "r", "theta", "lat", "lon"];

/** "name (type): what it holds" for one trace. */
function _traceLine(trace: Record<string, unknown>, i: number): string {
  const name = typeof trace.name === "string" && trace.name !== ""
    ? trace.name
    : `trace ${i}`;
  const type = typeof trace.type === "string" ? trace.type : "scatter";
  const z = trace.z;
  if (Array.isArray(z) && z.length && Array.isArray(z[0])) {
    return `${name} (${type}): ${z.length}×${(z[0] as unknown[]).length} grid`;
  }
  const lengths = [...POINT_FIELDS, "z"].map((k) => trace[k]).filter(
    Array.isArray,
  ).map((a) => a.length);
  const n = lengths.length ? Math.max(...lengths) : 0;
  return `${name} (${type}): ${n} point${n === 1 ? "" : "s"}`;
}

/**
 * A plotly figure that shows itself: the plotly MIME bundle, the SVG when
 * given (and an HTML image of it), and a text summary of its traces.
 */
export class Plot {
  /** The figure as plain JSON (width and height set in the layout when given). */
  readonly figure: PlotlyFigure;
  /** The SVG fallback, when given. */
  readonly svg?: string;
  /** The caption, when given. */
  readonly caption?: string;
  /** The alt text of the image fallback. */
  readonly alt: string;

  /** Checks and copies the figure (see {@linkcode plot}). */
  constructor(
    figure: {
      data: unknown[];
      layout?: Record<string, unknown>;
      config?: Record<string, unknown>;
    },
    options: PlotOptions = {},
  ) {
    if (figure === null || typeof figure !== "object") {
      throw new PlotError(
        `plot needs a plotly figure { data, layout }, found ${
          figure === null ? "null" : typeof figure
        }`,
      );
    }
    const { data, layout = {}, config } = figure;
    if (!Array.isArray(data)) {
      throw new PlotError(
        `a plotly figure's data must be an array of traces (objects such as { x, y, type: "scatter" }), found ${
          data === null ? "null" : typeof data
        }`,
      );
    }
    data.forEach((t, i) => {
      if (t === null || typeof t !== "object" || Array.isArray(t)) {
        throw new PlotError(
          `data[${i}] must be a trace object such as { x: [...], y: [...], type: "scatter" }, found ${
            Array.isArray(t) ? "an array" : t === null ? "null" : typeof t
          }`,
        );
      }
    });
    for (const [name, v] of [["layout", layout], ["config", config]] as const) {
      if (
        v !== undefined &&
        (v === null || typeof v !== "object" || Array.isArray(v))
      ) {
        throw new PlotError(
          `a plotly figure's ${name} must be an object, found ${
            v === null ? "null" : Array.isArray(v) ? "an array" : typeof v
          }`,
        );
      }
    }
    const { svg, caption, width, height } = options;
    _positive("width", width);
    _positive("height", height);
    if (
      svg !== undefined && (typeof svg !== "string" || !svg.includes("<svg"))
    ) {
      throw new PlotError(
        `plot: the svg option must be SVG markup ("<svg ...>...</svg>"), found ${
          typeof svg === "string"
            ? JSON.stringify(svg.slice(0, 40))
            : typeof svg
        }`,
      );
    }
    const seen = new Set<object>();
    const json = {
      data: _json(data, "data", seen) as unknown[],
      layout: {
        ...(_json(layout, "layout", seen) as Record<string, unknown>),
        ...(width === undefined ? {} : { width }),
        ...(height === undefined ? {} : { height }),
      },
      ...(config === undefined
        ? {}
        : { config: _json(config, "config", seen) as Record<string, unknown> }),
    };
    this.figure = json;
    if (svg !== undefined) this.svg = svg;
    if (caption !== undefined) this.caption = caption;
    this.alt = options.alt ?? caption ?? _title(json.layout) ?? "plotly figure";
  }

  /** Text: the caption (or alt text), then a line per trace with its point count. */
  toString(): string {
    const lines = this.figure.data.map((t, i) =>
      `  ${_traceLine(t as Record<string, unknown>, i)}`
    );
    const head = this.caption ?? this.alt;
    return [
      `${head} (${lines.length} trace${lines.length === 1 ? "" : "s"})`,
      ...lines,
    ].join("\n");
  }

  /**
   * The Jupyter bundle: plotly; HTML (the SVG as an image when given, else a
   * note that the interactive figure needs plotly) with the caption; the
   * SVG when given; text.
   */
  [Symbol.for("Jupyter.display")](): Record<string, unknown> {
    const captionHtml = this.caption === undefined
      ? ""
      : `<p class="tokenlab-plot-caption">${escapeXml(this.caption)}</p>`;
    if (this.svg !== undefined) {
      return figureBundle({
        plotly: this.figure,
        svg: this.svg,
        text: this.toString(),
        alt: this.alt,
        htmlAfter: captionHtml,
      });
    }
    return plotlyBundle({
      plotly: this.figure,
      html: `<p class="tokenlab-plot-fallback">${
        escapeXml(this.alt)
      }: this interactive figure is drawn by plotly (the HTML report and Jupyter front ends with plotly show it).</p>${captionHtml}`,
      text: this.toString(),
    });
  }
}

/**
 * Wraps a plotly figure for display (see {@linkcode Plot}).
 *
 * @example
 * ```ts
 * import { plot } from "tokenlab/report/plot.ts";
 * const p = plot({
 *   data: [{ type: "scatter", name: "loss", x: [1, 2, 3], y: new Float32Array([2.3, 1.9, 1.7]) }],
 *   layout: { title: { text: "training loss" } },
 * }, { caption: "loss by step", height: 300 });
 * console.log(p.toString()); // loss by step (1 trace)\n  loss (scatter): 3 points
 * ```
 */
export function plot(
  figure: {
    data: unknown[];
    layout?: Record<string, unknown>;
    config?: Record<string, unknown>;
  },
  options: PlotOptions = {},
): Plot {
  return new Plot(figure, options);
}
