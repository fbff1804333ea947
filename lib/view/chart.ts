/**
 * Line charts in panels side by side: a chart model (panels of series,
 * each series a line, a dashed line, faint points or a marked line) drawn
 * two ways from the same model, as a plotly figure and as a self-contained
 * SVG with round ticks, a grid, clipped data and a legend under each
 * panel. A domain says what the panels hold; this draws them.
 *
 * @module
 */

import { escapeXml } from "./escape.ts";
import { formatScientific } from "./number_format.ts";
import { plotlyAxisSuffix } from "./plotly.ts";
import {
  svgDocument,
  svgElement,
  svgLine,
  svgPoints,
  svgRect,
  svgText,
} from "./svg.ts";

/** One series of a {@linkcode ChartPanel}. */
export interface ChartSeries {
  /** Legend name. */
  name: string;
  /** x values. */
  x: number[];
  /** y values; null (or a non-finite value) breaks the line. */
  y: (number | null)[];
  /** Colour (hex). */
  color: string;
  /** faint: raw points; line: a line; dash: a dashed line; marked: a line with a marker per point. */
  style: "faint" | "line" | "dash" | "marked" | "marked-dash";
}

/** One panel of a {@linkcode PanelChart}: axes and the series drawn on them. */
export interface ChartPanel {
  /** Title above the panel. */
  title: string;
  /** x axis title. */
  xLabel: string;
  /** y axis title. */
  yLabel: string;
  /** The series, in legend order. */
  series: ChartSeries[];
  /** Data range of x forced to include these values. */
  xSpan?: [number, number];
  /** Ticks on whole numbers only (steps, epochs). */
  xInteger: boolean;
  /** y ticks in scientific notation. */
  yScientific: boolean;
  /** What an empty panel says ("no steps yet"). */
  empty: string;
  /** Index of an earlier panel whose x axis this one shares (plotly: `matches`). */
  matchX?: number;
}

/** A chart: panels side by side under a title. */
export interface PanelChart {
  /** Title above the panels. */
  title: string;
  /** The panels, left to right. */
  panels: readonly ChartPanel[];
  /** Prefix of the SVG's element ids (clip paths), unique per kind of chart. */
  id: string;
}

/** Plotly x-domains of `n` panels: equal widths, 0.1 apart, rounded to hundredths. */
function _domains(n: number): [number, number][] {
  const gap = 0.1, w = (1 - gap * (n - 1)) / n;
  const round = (v: number) => Number(v.toFixed(2));
  return Array.from({ length: n }, (_, i) => {
    const lo = i * (w + gap);
    return [round(lo), round(lo + w)];
  });
}

/**
 * The plotly figure of a chart: one subplot per panel, a trace per series,
 * panel titles and empty-panel notes as annotations.
 *
 * @example
 * ```ts
 * import { chartFigure } from "tokenlab/view/chart.ts";
 * const fig = chartFigure({
 *   title: "loss", id: "demo",
 *   panels: [{ title: "loss", xLabel: "step", yLabel: "loss", xInteger: true, yScientific: false, empty: "no steps",
 *     series: [{ name: "loss", x: [1, 2], y: [2.3, 2.1], color: "#1f77b4", style: "line" }] }],
 * });
 * console.log(fig.data.length); // 1
 * ```
 */
export function chartFigure(
  chart: PanelChart,
): { data: unknown[]; layout: Record<string, unknown> } {
  const { panels } = chart;
  const domains = _domains(panels.length);
  const data: unknown[] = [];
  const layout: Record<string, unknown> = {
    title: { text: chart.title },
    width: 1000,
    height: 420,
    margin: { l: 60, r: 20, t: 70, b: 110 },
    legend: { orientation: "h", x: 0, y: -0.3 },
    hovermode: "closest",
  };
  const annotations: unknown[] = [];
  panels.forEach((p, i) => {
    const n = plotlyAxisSuffix(i);
    for (const s of p.series) {
      const dash = s.style === "dash" || s.style === "marked-dash";
      const trace: Record<string, unknown> = {
        type: "scatter",
        name: s.name,
        x: s.x,
        y: s.y,
        xaxis: `x${n}`,
        yaxis: `y${n}`,
      };
      if (s.style === "faint") {
        trace.mode = "markers";
        trace.marker = { color: s.color, size: 3, opacity: 0.35 };
      } else {
        trace.mode = s.style.startsWith("marked") ? "lines+markers" : "lines";
        trace.line = {
          color: s.color,
          width: 2,
          ...(dash ? { dash: "dash" } : {}),
        };
      }
      data.push(trace);
    }
    const xaxis: Record<string, unknown> = {
      domain: domains[i],
      anchor: `y${n}`,
      title: { text: p.xLabel },
    };
    if (p.xInteger) xaxis.tickformat = "d";
    if (p.matchX !== undefined) {
      xaxis.matches = `x${plotlyAxisSuffix(p.matchX)}`;
    } else if (p.xSpan) {
      const xs = p.series.flatMap((s) => s.x);
      xaxis.range = [
        Math.min(p.xSpan[0], ...xs),
        Math.max(p.xSpan[1], ...xs),
      ];
    }
    layout[`xaxis${n}`] = xaxis;
    layout[`yaxis${n}`] = {
      anchor: `x${n}`,
      title: { text: p.yLabel },
      ...(p.yScientific ? { exponentformat: "e", tickformat: ".1e" } : {}),
    };
    annotations.push({
      text: `<b>${escapeXml(p.title)}</b>`,
      xref: "paper",
      yref: "paper",
      x: (domains[i][0] + domains[i][1]) / 2,
      y: 1.02,
      xanchor: "center",
      yanchor: "bottom",
      showarrow: false,
    });
    if (!p.series.length) {
      annotations.push({
        text: p.empty,
        xref: `x${n} domain`,
        yref: `y${n} domain`,
        x: 0.5,
        y: 0.5,
        showarrow: false,
        font: { color: "#888888" },
      });
    }
  });
  layout.annotations = annotations;
  return { data, layout };
}

interface _Scale {
  lo: number;
  hi: number;
  ticks: number[];
  step: number;
}

/** A range widened to round tick values (1, 2 or 5 times a power of ten). */
function _scale(
  values: readonly number[],
  integer: boolean,
  count = 4,
): _Scale {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) {
    if (Number.isFinite(v)) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
  }
  if (lo > hi) [lo, hi] = [0, 1];
  if (lo === hi) {
    const pad = Math.abs(lo) * 0.1 || 1;
    [lo, hi] = [lo - pad, hi + pad];
  }
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  let step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ??
    10 * mag;
  if (integer) step = Math.max(1, Math.round(step));
  const first = Math.floor(lo / step + 1e-9) * step;
  const last = Math.ceil(hi / step - 1e-9) * step;
  const ticks: number[] = [];
  for (let k = 0; first + k * step <= last + step * 1e-9; k++) {
    // Rounded so that 0.1 + 0.2 shows as 0.3.
    ticks.push(Number((first + k * step).toPrecision(12)));
  }
  return { lo: first, hi: last, ticks, step };
}

function _tick(v: number, s: _Scale, scientific: boolean): string {
  if (scientific) return v === 0 ? "0" : formatScientific(v);
  const decimals = Math.max(0, -Math.floor(Math.log10(s.step) + 1e-9));
  return v.toFixed(decimals);
}

/**
 * Polyline points in pixels; a break (null or a non-finite value) starts a
 * new line. Long series keep, per pixel column, the first, lowest, highest
 * and last point, so the drawing keeps its envelope at a bounded size.
 */
function _lines(
  s: ChartSeries,
  px: (x: number) => number,
  py: (y: number) => number,
): string[] {
  const runs: [number, number][][] = [[]];
  for (let i = 0; i < s.x.length; i++) {
    const y = s.y[i];
    if (y === null || !Number.isFinite(y) || !Number.isFinite(s.x[i])) {
      if (runs[runs.length - 1].length) runs.push([]);
      continue;
    }
    runs[runs.length - 1].push([px(s.x[i]), py(y)]);
  }
  return runs.filter((r) => r.length).map((run) => {
    const kept: [number, number][] = [];
    let col: [number, number][] = [];
    const flush = () => {
      if (!col.length) return;
      let lo = col[0], hi = col[0];
      for (const p of col) {
        if (p[1] < lo[1]) lo = p;
        if (p[1] > hi[1]) hi = p;
      }
      const picks = new Set([col[0], lo, hi, col[col.length - 1]]);
      kept.push(...col.filter((p) => picks.has(p)));
      col = [];
    };
    for (const p of run) {
      if (col.length && Math.round(p[0]) !== Math.round(col[0][0])) flush();
      col.push(p);
    }
    flush();
    return svgPoints(kept);
  });
}

const PANEL_W = 320, PLOT_L = 62, PLOT_R = 14;
const TOP = 58, PLOT_H = 200, LEGEND_LINE = 15;
const FRAME = { fill: "none", stroke: "#999999" };

function _dashed(s: ChartSeries): string | undefined {
  return s.style === "dash" || s.style === "marked-dash" ? "5,3" : undefined;
}

function _svgPanel(
  p: ChartPanel,
  index: number,
  legendTop: number,
  clipId: string,
): string {
  const x0 = index * PANEL_W + PLOT_L, x1 = (index + 1) * PANEL_W - PLOT_R;
  const y0 = TOP, y1 = TOP + PLOT_H;
  const xs = p.series.flatMap((s) => s.x);
  if (p.xSpan) xs.push(...p.xSpan);
  const sx = _scale(xs, p.xInteger);
  const sy = _scale(
    p.series.flatMap((s) => s.y.filter((v): v is number => v !== null)),
    false,
  );
  const px = (x: number) => x0 + ((x - sx.lo) / (sx.hi - sx.lo)) * (x1 - x0);
  const py = (y: number) => y1 - ((y - sy.lo) / (sy.hi - sy.lo)) * (y1 - y0);
  const out: string[] = [];
  out.push(
    svgText(p.title, {
      x: (x0 + x1) / 2,
      y: TOP - 8,
      "text-anchor": "middle",
      "font-weight": "bold",
    }),
  );
  if (!p.series.length) {
    out.push(
      svgRect(x0, y0, x1 - x0, y1 - y0, FRAME),
      svgText(p.empty, {
        x: (x0 + x1) / 2,
        y: (y0 + y1) / 2,
        "text-anchor": "middle",
        fill: "#888888",
      }),
    );
    return out.join("");
  }
  // Grid and tick labels.
  const small = { "font-size": 10 };
  for (const t of sy.ticks) {
    const y = py(t).toFixed(1);
    out.push(
      svgLine(x0, y, x1, y, { stroke: "#e5e5e5" }),
      svgText(_tick(t, sy, p.yScientific), {
        x: x0 - 4,
        y,
        "text-anchor": "end",
        "dominant-baseline": "middle",
        ...small,
      }),
    );
  }
  for (const t of sx.ticks) {
    const x = px(t).toFixed(1);
    out.push(
      svgLine(x, y0, x, y1, { stroke: "#e5e5e5" }),
      svgText(_tick(t, sx, false), {
        x,
        y: y1 + 13,
        "text-anchor": "middle",
        ...small,
      }),
    );
  }
  out.push(
    svgRect(x0, y0, x1 - x0, y1 - y0, FRAME),
    svgText(p.xLabel, {
      x: (x0 + x1) / 2,
      y: y1 + 28,
      "text-anchor": "middle",
      "font-size": 11,
    }),
    svgText(p.yLabel, {
      transform: `translate(${index * PANEL_W + 12},${
        (y0 + y1) / 2
      }) rotate(-90)`,
      "text-anchor": "middle",
      "font-size": 11,
    }),
  );
  // The data, clipped to the plot box.
  const data: string[] = [];
  for (const s of p.series) {
    const stroke = s.style === "faint"
      ? { stroke: s.color, "stroke-opacity": "0.3", "stroke-width": 1 }
      : {
        stroke: s.color,
        "stroke-width": 1.8,
        "stroke-dasharray": _dashed(s),
      };
    for (const points of _lines(s, px, py)) {
      data.push(
        svgElement("polyline", {
          fill: "none",
          ...stroke,
          "stroke-linejoin": "round",
          points,
        }),
      );
    }
    if (s.style.startsWith("marked")) {
      s.x.forEach((x, i) => {
        const y = s.y[i];
        if (y === null || !Number.isFinite(y)) return;
        data.push(
          svgElement("circle", {
            cx: px(x).toFixed(1),
            cy: py(y).toFixed(1),
            r: 2.5,
            fill: s.color,
          }),
        );
      });
    }
  }
  out.push(
    svgElement("g", { "clip-path": `url(#${clipId})` }, data.join("")),
  );
  // Legend under the panel, one entry per line.
  p.series.forEach((s, i) => {
    const y = legendTop + i * LEGEND_LINE;
    out.push(
      svgLine(x0, y, x0 + 22, y, {
        stroke: s.color,
        "stroke-width": 2,
        "stroke-dasharray": _dashed(s),
        "stroke-opacity": s.style === "faint" ? "0.35" : undefined,
      }),
      svgText(s.name, {
        x: x0 + 28,
        y,
        "dominant-baseline": "middle",
        "font-size": 11,
      }),
    );
  });
  return out.join("");
}

/**
 * A self-contained SVG of a chart: the title, then each panel with round
 * ticks, a light grid, its series clipped to the plot box (long series
 * thinned to their envelope per pixel column), and a legend under it.
 *
 * @example
 * ```ts
 * import { chartSvg } from "tokenlab/view/chart.ts";
 * const svg = chartSvg({
 *   title: "loss", id: "demo",
 *   panels: [{ title: "loss", xLabel: "step", yLabel: "loss", xInteger: true, yScientific: false, empty: "no steps",
 *     series: [{ name: "loss", x: [1, 2], y: [2.3, 2.1], color: "#1f77b4", style: "line" }] }],
 * });
 * console.log(svg.startsWith("<svg"));
 * ```
 */
export function chartSvg(chart: PanelChart): string {
  const { panels } = chart;
  const width = panels.length * PANEL_W;
  const legendTop = TOP + PLOT_H + 48;
  const lines = Math.max(1, ...panels.map((p) => p.series.length));
  const height = legendTop + lines * LEGEND_LINE + 4;
  const clipId = (i: number) => `${chart.id}-clip-${i}`;
  const clips = panels.map((_, i) =>
    svgElement(
      "clipPath",
      { id: clipId(i) },
      svgRect(i * PANEL_W + PLOT_L, TOP, PANEL_W - PLOT_L - PLOT_R, PLOT_H),
    )
  ).join("");
  return svgDocument(
    width,
    height,
    `<defs>${clips}</defs>${
      svgElement("rect", { width, height, fill: "white" })
    }${
      svgText(chart.title, {
        x: width / 2,
        y: 22,
        "text-anchor": "middle",
        "font-size": 15,
        "font-weight": "bold",
      })
    }${panels.map((p, i) => _svgPanel(p, i, legendTop, clipId(i))).join("")}`,
    { "font-family": "sans-serif", "font-size": 12 },
  );
}
