/**
 * Independent float64 reference implementations, written as plain loops over
 * row-major arrays, for checking what the tfjs backends compute. Public as
 * `tokenlab/testing/reference.ts`; kept here, below the backends, so that
 * `backend_check.ts` can use them without importing a higher layer.
 *
 * @module
 */

/** C[m, n] = A[m, k] B[k, n], in float64. */
export function refMatMul(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  [m, k, n]: readonly [number, number, number],
): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let p = 0; p < k; p++) {
      const aip = a[i * k + p];
      for (let j = 0; j < n; j++) c[i * n + j] += aip * b[p * n + j];
    }
  }
  return c;
}

/** A [rows, cols] array transposed to [cols, rows]. */
export function refTranspose(
  v: ArrayLike<number>,
  rows: number,
  cols: number,
): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[c * rows + r] = v[r * cols + c];
  }
  return out;
}

/** Softmax over the last axis of a [rows, cols] array. */
export function refSoftmax(x: ArrayLike<number>, cols: number): Float64Array {
  const y = new Float64Array(x.length);
  for (let r = 0; r < x.length / cols; r++) {
    let max = -Infinity;
    for (let j = 0; j < cols; j++) max = Math.max(max, x[r * cols + j]);
    let sum = 0;
    for (let j = 0; j < cols; j++) {
      sum += y[r * cols + j] = Math.exp(x[r * cols + j] - max);
    }
    for (let j = 0; j < cols; j++) y[r * cols + j] /= sum;
  }
  return y;
}

/** LayerNorm over the last axis (biased variance, eps inside the root). */
export function refLayerNorm(
  x: ArrayLike<number>,
  cols: number,
  eps = 1e-5,
): Float64Array {
  const y = new Float64Array(x.length);
  for (let r = 0; r < x.length / cols; r++) {
    let mean = 0;
    for (let j = 0; j < cols; j++) mean += x[r * cols + j];
    mean /= cols;
    let v = 0;
    for (let j = 0; j < cols; j++) v += (x[r * cols + j] - mean) ** 2;
    const inv = 1 / Math.sqrt(v / cols + eps);
    for (let j = 0; j < cols; j++) {
      y[r * cols + j] = (x[r * cols + j] - mean) * inv;
    }
  }
  return y;
}

/**
 * The error function to about 1e-14 absolute: its Maclaurin series for
 * |x| < 2, and beyond, erfc from its continued fraction
 * erfc(x) = exp(-x^2) / sqrt(pi) / (x + (1/2) / (x + 1 / (x + (3/2) / (x + ...)))).
 */
export function refErf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 2) {
    let term = ax, sum = ax;
    for (let n = 1; n < 100; n++) {
      term *= (-ax * ax) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  let f = ax;
  for (let n = 200; n >= 1; n--) f = ax + (n / 2) / f;
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return Math.sign(x) * (1 - erfc);
}

/** Exact GELU: x * Phi(x) = x / 2 * (1 + erf(x / sqrt 2)). */
export function refGelu(x: number): number {
  return 0.5 * x * (1 + refErf(x / Math.SQRT2));
}

/**
 * 2-D convolution, NHWC input [n, h, w, ci], HWIO filter [kh, kw, ci, co],
 * symmetric zero padding, no dilation. Output [n, oh, ow, co].
 */
export function refConv2d(
  x: ArrayLike<number>,
  [n, h, w, ci]: readonly [number, number, number, number],
  f: ArrayLike<number>,
  [kh, kw, co]: readonly [number, number, number],
  stride: number,
  pad: number,
): { data: Float64Array; shape: [number, number, number, number] } {
  const oh = Math.floor((h + 2 * pad - kh) / stride) + 1;
  const ow = Math.floor((w + 2 * pad - kw) / stride) + 1;
  const y = new Float64Array(n * oh * ow * co);
  for (let b = 0; b < n; b++) {
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++) {
        for (let ky = 0; ky < kh; ky++) {
          const iy = oy * stride - pad + ky;
          if (iy < 0 || iy >= h) continue;
          for (let kx = 0; kx < kw; kx++) {
            const ix = ox * stride - pad + kx;
            if (ix < 0 || ix >= w) continue;
            for (let c = 0; c < ci; c++) {
              const xv = x[((b * h + iy) * w + ix) * ci + c];
              const fo = ((ky * kw + kx) * ci + c) * co;
              const yo = ((b * oh + oy) * ow + ox) * co;
              for (let o = 0; o < co; o++) y[yo + o] += xv * f[fo + o];
            }
          }
        }
      }
    }
  }
  return { data: y, shape: [n, oh, ow, co] };
}

/** Geometry of {@linkcode refConv2dAll}: stride, leading pads, output size. */
export interface ConvGeometry {
  /** Stride (both axes). */
  stride: number;
  /** Zero rows above the input (the rest of the padding is implied by oh). */
  padTop: number;
  /** Zero columns left of the input. */
  padLeft: number;
  /** Output rows. */
  oh: number;
  /** Output columns. */
  ow: number;
}

/**
 * A 2-D convolution and both its gradients in float64, NHWC input
 * [n, h, w, ci], HWIO filter [kh, kw, ci, co], any (also uneven) zero
 * padding: y = conv(x, f), and for an output gradient dy [n, oh, ow, co]
 * the input gradient dx and the filter gradient df.
 */
export function refConv2dAll(
  x: ArrayLike<number>,
  [n, h, w, ci]: readonly [number, number, number, number],
  f: ArrayLike<number>,
  [kh, kw, co]: readonly [number, number, number],
  dy: ArrayLike<number>,
  g: ConvGeometry,
): { y: Float64Array; dx: Float64Array; df: Float64Array } {
  const y = new Float64Array(n * g.oh * g.ow * co);
  const dx = new Float64Array(n * h * w * ci);
  const df = new Float64Array(kh * kw * ci * co);
  for (let b = 0; b < n; b++) {
    for (let oy = 0; oy < g.oh; oy++) {
      for (let ox = 0; ox < g.ow; ox++) {
        const yo = ((b * g.oh + oy) * g.ow + ox) * co;
        for (let ky = 0; ky < kh; ky++) {
          const iy = oy * g.stride - g.padTop + ky;
          if (iy < 0 || iy >= h) continue;
          for (let kx = 0; kx < kw; kx++) {
            const ix = ox * g.stride - g.padLeft + kx;
            if (ix < 0 || ix >= w) continue;
            for (let c = 0; c < ci; c++) {
              const xi = ((b * h + iy) * w + ix) * ci + c;
              const fo = ((ky * kw + kx) * ci + c) * co;
              let acc = 0;
              for (let o = 0; o < co; o++) {
                y[yo + o] += x[xi] * f[fo + o];
                df[fo + o] += x[xi] * dy[yo + o];
                acc += dy[yo + o] * f[fo + o];
              }
              dx[xi] += acc;
            }
          }
        }
      }
    }
  }
  return { y, dx, df };
}

/**
 * A small deterministic generator (mulberry32) for test inputs, so reference
 * and backend see the same numbers without touching tfjs's own RNG.
 */
export function testValues(
  count: number,
  seed: number,
  scale = 1,
): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const u = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    out[i] = (2 * u - 1) * scale;
  }
  return out;
}

/** Elementwise comparison of two equally long arrays. */
export interface Comparison {
  /** Largest |actual - expected|. */
  maxAbsError: number;
  /** Index of the element that exceeds its tolerance most, or -1 if none. */
  worst: number;
}

/**
 * Compares `actual` with `expected` under |a - e| <= atol + rtol * |e|; a NaN
 * in `actual` always fails.
 */
export function compareClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  rtol: number,
  atol: number,
): Comparison {
  let worst = -1, worstExcess = 0, maxAbsError = 0;
  for (let i = 0; i < expected.length; i++) {
    const diff = Math.abs(actual[i] - expected[i]);
    maxAbsError = Math.max(maxAbsError, Number.isNaN(diff) ? Infinity : diff);
    const excess = diff - (atol + rtol * Math.abs(expected[i]));
    if (!(excess <= 0) && (worst < 0 || !(excess <= worstExcess))) {
      worst = i;
      worstExcess = Number.isNaN(excess) ? Infinity : excess;
    }
  }
  return { maxAbsError, worst };
}

/**
 * RoIAlign of one box over a [c, h, w] map as torchvision's `roi_align` with
 * `aligned=False` and adaptive sampling (`sampling_ratio=-1`), written as the
 * plain loop over output cells and their sample points, in float64. The box
 * is (x1, y1, x2, y2) in map pixels; the output is [c, outH, outW].
 *
 * Per output cell: the box (each side at least 1 pixel) is cut into outH x
 * outW bins; a bin averages ceil(box height / outH) x ceil(box width / outW)
 * points placed at the centres of an even sub-grid; a point outside
 * [-1, h] x [-1, w] counts as 0, any other is clamped into the map and
 * interpolated bilinearly.
 *
 * @example
 * ```ts
 * import { refRoiAlign } from "tokenlab/testing/reference.ts";
 * // A 1-channel 2 x 2 map, the whole map (pixel centres at 0 and 1) to 1 x 1.
 * const y = refRoiAlign([1, 2, 3, 4], [1, 2, 2], [-0.5, -0.5, 1.5, 1.5], [1, 1]);
 * console.assert(y[0] === 2.5);
 * ```
 */
export function refRoiAlign(
  input: ArrayLike<number>,
  [c, h, w]: readonly [number, number, number],
  [x1, y1, x2, y2]: readonly [number, number, number, number],
  [outH, outW]: readonly [number, number],
): Float64Array {
  const out = new Float64Array(c * outH * outW);
  const boxH = Math.max(y2 - y1, 1), boxW = Math.max(x2 - x1, 1);
  const binH = boxH / outH, binW = boxW / outW;
  const gridH = Math.ceil(boxH / outH), gridW = Math.ceil(boxW / outW);
  const at = (ch: number, y: number, x: number): number =>
    input[(ch * h + y) * w + x];
  for (let ch = 0; ch < c; ch++) {
    for (let oy = 0; oy < outH; oy++) {
      for (let ox = 0; ox < outW; ox++) {
        let sum = 0;
        for (let iy = 0; iy < gridH; iy++) {
          for (let ix = 0; ix < gridW; ix++) {
            let y = y1 + oy * binH + ((iy + 0.5) * binH) / gridH;
            let x = x1 + ox * binW + ((ix + 0.5) * binW) / gridW;
            if (y < -1 || y > h || x < -1 || x > w) continue;
            y = Math.min(Math.max(y, 0), h - 1);
            x = Math.min(Math.max(x, 0), w - 1);
            const y0 = Math.floor(y), x0 = Math.floor(x);
            const yb = Math.min(y0 + 1, h - 1), xb = Math.min(x0 + 1, w - 1);
            const dy = y - y0, dx = x - x0;
            sum += (1 - dy) * (1 - dx) * at(ch, y0, x0) +
              (1 - dy) * dx * at(ch, y0, xb) +
              dy * (1 - dx) * at(ch, yb, x0) +
              dy * dx * at(ch, yb, xb);
          }
        }
        out[(ch * outH + oy) * outW + ox] = sum / (gridH * gridW);
      }
    }
  }
  return out;
}
