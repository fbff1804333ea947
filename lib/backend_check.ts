/**
 * A numeric self-check of the compute backends: the operations the models
 * are built from, computed by each backend and compared with independent
 * float64 loops. It tells a user in seconds whether a machine computes
 * correctly before they trust a report made on it.
 *
 * @module
 */

import { tf } from "./tf.ts";
import {
  availableBackends,
  type BackendName,
  BACKENDS,
  kernelGap,
  withBackend,
} from "./backend.ts";
import { gelu, layerNorm } from "./ops.ts";
import {
  compareClose,
  refConv2d,
  refGelu,
  refLayerNorm,
  refMatMul,
  refSoftmax,
  testValues,
} from "./_reference.ts";

/** One operation checked on one backend. */
export interface OpCheck {
  /** Operation and shape, e.g. "matmul [64x48]x[48x32]". */
  op: string;
  /** Largest absolute difference from the float64 reference. */
  maxAbsError: number;
  /** The tolerance: |diff| <= atol + rtol * |reference| per element. */
  tolerance: string;
  /** Whether every element was within tolerance. */
  ok: boolean;
  /** Why the check could not run (a missing kernel); empty when it ran. */
  skipped: string;
}

/** All checks of one backend. */
export interface BackendCheck {
  /** The backend. */
  backend: BackendName;
  /** Whether it could start here. */
  available: boolean;
  /** Why it is unavailable, or its adapter. */
  detail: string;
  /** The checks (empty when unavailable). */
  checks: OpCheck[];
}

const RTOL = 1e-4;
const ATOL = 1e-5;

type Case = {
  op: string;
  kernels?: string[];
  run: () => { got: tf.Tensor; want: ArrayLike<number> };
};

function cases(): Case[] {
  const a = testValues(64 * 48, 1), b = testValues(48 * 32, 2);
  const logits = testValues(8 * 100, 3, 8);
  const rows = testValues(8 * 96, 4, 3);
  const g = testValues(256, 5, 6);
  const img = testValues(2 * 16 * 16 * 3, 6),
    filt = testValues(7 * 7 * 3 * 8, 7, 0.2);
  return [
    {
      op: "matmul [64x48]x[48x32]",
      run: () => ({
        got: tf.matMul(tf.tensor2d(a, [64, 48]), tf.tensor2d(b, [48, 32])),
        want: refMatMul(a, b, [64, 48, 32]),
      }),
    },
    {
      op: "softmax [8x100], logits in [-8, 8]",
      run: () => ({
        got: tf.softmax(tf.tensor2d(logits, [8, 100])),
        want: refSoftmax(logits, 100),
      }),
    },
    {
      op: "layer norm [8x96]",
      run: () => ({
        got: layerNorm(tf.tensor2d(rows, [8, 96])),
        want: refLayerNorm(rows, 96),
      }),
    },
    {
      op: "GELU (erf) [256], x in [-6, 6]",
      run: () => ({
        got: gelu(tf.tensor1d(g)),
        want: Array.from(g, refGelu),
      }),
    },
    {
      op: "conv 7x7 stride 2 pad 3 [2,16,16,3]->8",
      run: () => ({
        got: tf.conv2d(
          tf.tensor4d(img, [2, 16, 16, 3]),
          tf.tensor4d(filt, [7, 7, 3, 8]),
          2,
          [[0, 0], [3, 3], [3, 3], [0, 0]],
        ),
        want: refConv2d(img, [2, 16, 16, 3], filt, [7, 7, 8], 2, 3).data,
      }),
    },
    {
      op: "gradient of sum((AB)^2) w.r.t. A [64x48]",
      run: () => {
        const bt = tf.tensor2d(b, [48, 32]);
        const grad = tf.grad((x: tf.Tensor) =>
          tf.sum(tf.square(tf.matMul(x as tf.Tensor2D, bt)))
        );
        // d/dA sum((AB)^2) = 2 (AB) B^T
        const ab = refMatMul(a, b, [64, 48, 32]);
        const bT = new Float64Array(32 * 48);
        for (let i = 0; i < 48; i++) {
          for (let j = 0; j < 32; j++) bT[j * 48 + i] = b[i * 32 + j];
        }
        return {
          got: grad(tf.tensor2d(a, [64, 48])),
          want: refMatMul(ab, bT, [64, 32, 48]).map((v) => 2 * v),
        };
      },
    },
    {
      op: "gradient of a stride-2 conv w.r.t. its filter",
      kernels: ["Conv2DBackpropFilter"],
      run: () => {
        const x = tf.tensor4d(img, [2, 16, 16, 3]);
        const grad = tf.grad((f: tf.Tensor) =>
          tf.sum(
            tf.conv2d(x, f as tf.Tensor4D, 2, [[0, 0], [3, 3], [3, 3], [0, 0]]),
          )
        );
        // d/dF sum(conv(x, F)) [ky, kx, c, o] = sum of the input pixels that
        // filter tap (ky, kx, c) touches, for every output o.
        const want = new Float64Array(7 * 7 * 3 * 8);
        for (let ky = 0; ky < 7; ky++) {
          for (let kx = 0; kx < 7; kx++) {
            for (let c = 0; c < 3; c++) {
              const onehot = new Float32Array(7 * 7 * 3);
              onehot[(ky * 7 + kx) * 3 + c] = 1;
              const taps =
                refConv2d(img, [2, 16, 16, 3], onehot, [7, 7, 1], 2, 3).data;
              const s = taps.reduce((p, q) => p + q, 0);
              for (let o = 0; o < 8; o++) {
                want[((ky * 7 + kx) * 3 + c) * 8 + o] = s;
              }
            }
          }
        }
        return { got: grad(tf.tensor4d(filt, [7, 7, 3, 8])), want };
      },
    },
  ];
}

/**
 * The self-check of every backend, as a value that shows itself as a table
 * in a notebook.
 */
export class BackendCheckReport {
  /** One entry per backend. */
  readonly results: BackendCheck[];

  /** Wraps the results. */
  constructor(results: BackendCheck[]) {
    this.results = results;
  }

  /** True when every check that ran on an available backend passed. */
  get ok(): boolean {
    return this.results.every((r) => r.checks.every((c) => c.ok || c.skipped));
  }

  /** The results as a Markdown table. */
  toMarkdown(): string {
    const head =
      "| backend | operation | max abs error | tolerance | result |\n" +
      "|---|---|---:|---|---|";
    const lines = this.results.flatMap((r) =>
      r.available
        ? r.checks.map((c) =>
          `| ${r.backend} | ${c.op} | ${
            c.skipped ? "" : c.maxAbsError.toExponential(2)
          } | ${c.tolerance} | ${
            c.skipped ? `skipped: ${c.skipped}` : c.ok ? "ok" : "**FAILED**"
          } |`
        )
        : [`| ${r.backend} | (all) | | | unavailable: ${r.detail} |`]
    );
    return [head, ...lines].join("\n");
  }

  /** Plain text, one line per check. */
  toString(): string {
    return this.results.flatMap((r) =>
      r.available
        ? r.checks.map((c) =>
          `${r.backend.padEnd(6)} ${c.op.padEnd(46)} ${
            c.skipped
              ? `skipped: ${c.skipped}`
              : `${c.ok ? "ok    " : "FAILED"} max abs error ${
                c.maxAbsError.toExponential(2)
              }`
          }`
        )
        : [`${r.backend.padEnd(6)} unavailable: ${r.detail}`]
    ).join("\n");
  }

  /** Jupyter display bundle. */
  [Symbol.for("Jupyter.display")](): Record<string, string> {
    return {
      "text/markdown": this.toMarkdown(),
      "text/plain": this.toString(),
    };
  }
}

/** Options of {@linkcode checkBackends}. */
export interface CheckBackendsOptions {
  /** Backends to check (default: all). */
  backends?: readonly BackendName[];
}

/**
 * Runs the self-check on each backend and restores the backend that was
 * running before. Leaks no tensors.
 *
 * @example
 * ```ts
 * import { checkBackends } from "tokenlab";
 * const report = await checkBackends({ backends: ["cpu"] });
 * console.assert(report.ok);
 * ```
 */
export async function checkBackends(
  options: CheckBackendsOptions = {},
): Promise<BackendCheckReport> {
  const all = await availableBackends();
  const results: BackendCheck[] = [];
  for (const backend of options.backends ?? BACKENDS) {
    const state = all.find((b) => b.name === backend)!;
    const result: BackendCheck = {
      backend,
      available: state.available,
      detail: state.detail,
      checks: [],
    };
    results.push(result);
    if (!state.available) continue;
    await withBackend(backend, () => runCases(backend, result.checks));
  }
  return new BackendCheckReport(results);
}

async function runCases(
  backend: BackendName,
  checks: OpCheck[],
): Promise<void> {
  for (const c of cases()) {
    const tolerance = `rtol ${RTOL}, atol ${ATOL}`;
    const gap = kernelGap(backend, c.kernels ?? []);
    if (gap !== "") {
      checks.push({
        op: c.op,
        maxAbsError: NaN,
        tolerance,
        ok: false,
        skipped: gap,
      });
      continue;
    }
    const start = tf.memory().numTensors;
    let want: ArrayLike<number> = [];
    const got = tf.tidy(() => {
      const r = c.run();
      want = r.want;
      return r.got;
    });
    const data = await got.data();
    got.dispose();
    if (tf.memory().numTensors !== start) {
      throw new Error(`self-check of ${c.op} on ${backend} leaked tensors`);
    }
    const cmp = compareClose(data, want, RTOL, ATOL);
    checks.push({
      op: c.op,
      maxAbsError: cmp.maxAbsError,
      tolerance,
      ok: cmp.worst < 0,
      skipped: "",
    });
  }
}
