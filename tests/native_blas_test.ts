/**
 * The native BLAS path of the wasm backend (lib/kernels/native_blas.ts):
 * matrix products (every transpose, batched, broadcast, fused with a bias)
 * and convolutions (stride 1 with even and uneven padding, 1 x 1, patchify,
 * and a strided case that stays on tfjs's kernels) with both gradients,
 * against float64 loops on every backend; on wasm once with OpenBLAS and
 * once without, so both the native kernels and the ones underneath are
 * checked. Also: scratch buffers are freed, `TOKENLAB_BLAS=off` and a bad
 * `TOKENLAB_BLAS` behave as documented.
 */

import { assert, assertEquals } from "./_assert.ts";
import { initBackend, tf } from "tokenlab";
import {
  NATIVE_BLAS_ENV,
  nativeBlasInfo,
} from "tokenlab/kernels/native_blas.ts";
import {
  assertClose,
  assertNoLeaks,
  backendTest,
  withEachWasmPath,
} from "tokenlab/testing";
import {
  refConv2dAll,
  refMatMul,
  refTranspose,
  testValues,
} from "tokenlab/testing/reference.ts";

await initBackend({ backend: "cpu" }); // installs the kit's kernels
const info = nativeBlasInfo();

/** Heap buffers alive on the current backend (tensors and scratch). */
function dataIds(): number {
  return (tf.backend() as unknown as { numDataIds(): number }).numDataIds();
}

Deno.test("native BLAS: loaded with the FFI permission when OpenBLAS is here, or says why not", () => {
  assert(info.reason.length > 0, "nativeBlasInfo().reason is empty");
  if (info.active) {
    assert(/OpenBLAS/.test(info.config ?? ""), `config: ${info.config}`);
    assertEquals(info.threads, 1);
    assertEquals(info.kernels, [
      "BatchMatMul",
      "_FusedMatMul",
      "Conv2D",
      "Conv2DBackpropFilter",
      "Conv2DBackpropInput",
    ]);
  } else {
    assertEquals(info.kernels, []);
  }
});

await backendTest(
  "native BLAS: matrix products, every transpose, batched and broadcast",
  async (backend) => {
    const m = 37, k = 53, n = 29;
    const a = testValues(m * k, 1), b = testValues(k * n, 2);
    const a2 = testValues(m * k, 3);
    const want = refMatMul(a, b, [m, k, n]);
    const want2 = refMatMul(a2, b, [m, k, n]);
    const at = refTranspose(a, m, k), bt = refTranspose(b, k, n);
    const tol = { rtol: 1e-4, atol: 1e-5 };
    await withEachWasmPath(backend, async (mode) => {
      const cases: [string, () => tf.Tensor, number[]][] = [
        [
          "plain",
          () => tf.matMul(tf.tensor2d(a, [m, k]), tf.tensor2d(b, [k, n])),
          want as unknown as number[],
        ],
        [
          "a^T",
          () =>
            tf.matMul(
              tf.tensor2d(at, [k, m]),
              tf.tensor2d(b, [k, n]),
              true,
              false,
            ),
          [...want],
        ],
        [
          "b^T",
          () =>
            tf.matMul(
              tf.tensor2d(a, [m, k]),
              tf.tensor2d(bt, [n, k]),
              false,
              true,
            ),
          [...want],
        ],
        [
          "a^T b^T",
          () =>
            tf.matMul(
              tf.tensor2d(at, [k, m]),
              tf.tensor2d(bt, [n, k]),
              true,
              true,
            ),
          [...want],
        ],
        [
          "batched",
          () =>
            tf.matMul(
              tf.tensor3d([...a, ...a2], [2, m, k]),
              tf.tensor3d([...b, ...b], [2, k, n]),
            ),
          [...want, ...want2],
        ],
        [
          "broadcast b",
          () =>
            tf.matMul(
              tf.tensor4d([...a, ...a2], [2, 1, m, k]),
              tf.tensor2d(b, [k, n]),
            ),
          [...want, ...want2],
        ],
        [
          "broadcast a, b^T",
          () =>
            tf.matMul(
              tf.tensor2d(a, [m, k]),
              tf.tensor3d([...bt, ...bt], [2, n, k]),
              false,
              true,
            ),
          [...want, ...want],
        ],
      ];
      for (const [what, f, expected] of cases) {
        const before = dataIds();
        const y = tf.tidy(f);
        await assertClose(y, Float64Array.from(expected), {
          ...tol,
          what: `${what} (${mode})`,
        });
        y.dispose();
        assertEquals(dataIds(), before, `${what}: heap buffers left behind`);
      }
      const empty = tf.tidy(() =>
        tf.matMul(tf.zeros([3, 0]), tf.zeros([0, 4]))
      );
      await assertClose(empty, new Float64Array(12), { what: "K = 0" });
      empty.dispose();
    });
  },
  { wasmPaths: true },
);

await backendTest(
  "native BLAS: fused product with a bias (linear and relu), and its gradient",
  async (backend) => {
    const m = 19, k = 23, n = 11;
    const a = testValues(m * k, 4), b = testValues(k * n, 5);
    const bias = testValues(n, 6), dy = testValues(m * n, 7);
    const prod = refMatMul(a, b, [m, k, n]);
    const linear = prod.map((v, i) => v + bias[i % n]);
    const relu = linear.map((v) => Math.max(v, 0));
    // d/da sum(dy * (a b + bias)) = dy b^T; d/db = a^T dy; d/dbias = sum_rows dy
    const da = refMatMul(dy, refTranspose(b, k, n), [m, n, k]);
    const db = refMatMul(refTranspose(a, m, k), dy, [k, m, n]);
    const dbias = new Float64Array(n);
    dy.forEach((v, i) => (dbias[i % n] += v));
    const tol = { rtol: 1e-4, atol: 1e-5 };
    await withEachWasmPath(backend, async (mode) => {
      await assertNoLeaks(async () => {
        const [ta, tb, tbias, tdy] = [
          tf.tensor2d(a, [m, k]),
          tf.tensor2d(b, [k, n]),
          tf.tensor1d(bias),
          tf.tensor2d(dy, [m, n]),
        ];
        const y = tf.fused.matMul({ a: ta, b: tb, bias: tbias });
        await assertClose(y, linear, {
          ...tol,
          what: `a b + bias (${mode})`,
        });
        const r = tf.fused.matMul({
          a: ta,
          b: tb,
          bias: tbias,
          activation: "relu",
        });
        await assertClose(r, relu, {
          ...tol,
          what: `relu(a b + bias) (${mode})`,
        });
        const g = tf.grads((x: tf.Tensor, w: tf.Tensor, c: tf.Tensor) =>
          tf.sum(
            tf.mul(
              tf.fused.matMul({
                a: x as tf.Tensor2D,
                b: w as tf.Tensor2D,
                bias: c,
              }),
              tdy,
            ),
          )
        )([ta, tb, tbias]);
        await assertClose(g[0], da, { ...tol, what: `d/da (${mode})` });
        await assertClose(g[1], db, { ...tol, what: `d/db (${mode})` });
        await assertClose(g[2], dbias, { ...tol, what: `d/dbias (${mode})` });
        tf.dispose([ta, tb, tbias, tdy, y, r, ...g]);
      }, "fused product");
    });
  },
  { wasmPaths: true },
);

interface ConvCase {
  what: string;
  x: [number, number, number, number];
  f: [number, number, number];
  stride: number;
  pad: "same" | "valid" | number;
}

/** tfjs's padding in explicit numbers: leading pads and output size. */
function geometry(c: ConvCase) {
  const [, h, w] = c.x, [kh, kw] = c.f;
  if (c.pad === "same") {
    const oh = Math.ceil(h / c.stride), ow = Math.ceil(w / c.stride);
    const ph = Math.max((oh - 1) * c.stride + kh - h, 0);
    const pw = Math.max((ow - 1) * c.stride + kw - w, 0);
    return { stride: c.stride, padTop: ph >> 1, padLeft: pw >> 1, oh, ow };
  }
  const p = c.pad === "valid" ? 0 : c.pad;
  return {
    stride: c.stride,
    padTop: p,
    padLeft: p,
    oh: Math.floor((h + 2 * p - kh) / c.stride) + 1,
    ow: Math.floor((w + 2 * p - kw) / c.stride) + 1,
  };
}

await backendTest(
  "native BLAS: convolutions and both gradients against float64",
  async (backend) => {
    const cases: ConvCase[] = [
      { what: "3x3 pad 1", x: [2, 9, 7, 5], f: [3, 3, 6], stride: 1, pad: 1 },
      {
        what: "5x5 valid",
        x: [1, 8, 8, 3],
        f: [5, 5, 4],
        stride: 1,
        pad: "valid",
      },
      { what: "3x3 pad 2", x: [2, 6, 6, 4], f: [3, 3, 3], stride: 1, pad: 2 },
      {
        what: "2x4 same (uneven pads)",
        x: [2, 5, 6, 3],
        f: [2, 4, 5],
        stride: 1,
        pad: "same",
      },
      { what: "1x1", x: [3, 4, 5, 6], f: [1, 1, 7], stride: 1, pad: 0 },
      {
        what: "patchify 4",
        x: [2, 8, 12, 3],
        f: [4, 4, 7],
        stride: 4,
        pad: "valid",
      },
      { what: "patchify 2", x: [1, 6, 4, 5], f: [2, 2, 3], stride: 2, pad: 0 },
      {
        what: "7x7/2 (tfjs's kernels)",
        x: [1, 11, 11, 3],
        f: [7, 7, 5],
        stride: 2,
        pad: 3,
      },
    ];
    await withEachWasmPath(backend, async (mode) => {
      for (const c of cases) {
        const [kh, kw, co] = c.f, ci = c.x[3];
        const g = geometry(c);
        const xv = testValues(c.x.reduce((p, v) => p * v), 11);
        const fv = testValues(kh * kw * ci * co, 12);
        const dyv = testValues(c.x[0] * g.oh * g.ow * co, 13);
        const want = refConv2dAll(xv, c.x, fv, c.f, dyv, g);
        const tol = { rtol: 1e-4, atol: 1e-4 };
        const what = `${c.what}, ${mode}`;
        const before = dataIds();
        await assertNoLeaks(async () => {
          const x = tf.tensor4d(xv, c.x);
          const f = tf.tensor4d(fv, [kh, kw, ci, co]);
          const dy = tf.tensor4d(dyv, [c.x[0], g.oh, g.ow, co]);
          const conv = (a: tf.Tensor, b: tf.Tensor) =>
            tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.stride, c.pad);
          const y = conv(x, f);
          await assertClose(y, want.y, { ...tol, what: `y (${what})` });
          const [dx, df] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
            tf.sum(tf.mul(conv(a, b), dy))
          )([x, f]);
          await assertClose(dx, want.dx, { ...tol, what: `dx (${what})` });
          await assertClose(df, want.df, { ...tol, what: `df (${what})` });
          tf.dispose([x, f, dy, y, dx, df]);
        }, what);
        assertEquals(dataIds(), before, `${what}: heap buffers left behind`);
      }
    });
  },
  { wasmPaths: true },
);

/** Runs a snippet in a child Deno with `env`; returns its exit and output. */
async function child(code: string, env: Record<string, string>) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=ts", code],
    cwd: new URL("..", import.meta.url),
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) +
    new TextDecoder().decode(out.stderr);
  return { code: out.code, text };
}

Deno.test(`native BLAS: ${NATIVE_BLAS_ENV}=off keeps tfjs's kernels, a bad path is refused clearly by initBackend`, async () => {
  const snippet =
    `import { nativeBlasInfo } from "tokenlab/kernels/native_blas.ts";
    import { BackendError, initBackend } from "tokenlab";
    try {
      await initBackend({ backend: "wasm" });
    } catch (e) {
      console.log(e instanceof BackendError ? "BackendError" : "other error");
      throw e;
    }
    console.log(JSON.stringify(nativeBlasInfo()));`;
  const off = await child(snippet, { [NATIVE_BLAS_ENV]: "off" });
  assertEquals(off.code, 0, off.text);
  const seen = JSON.parse(off.text.trim().split("\n").at(-1)!);
  assertEquals(seen.active, false);
  assertEquals(seen.kernels, []);
  assert(seen.reason.includes(`${NATIVE_BLAS_ENV}=off`), seen.reason);
  const bad = await child(snippet, {
    [NATIVE_BLAS_ENV]: "/nonexistent/libopenblas.so.0",
  });
  assert(
    bad.code !== 0,
    "a library that cannot be loaded must stop initBackend",
  );
  for (
    const part of [
      "BackendError",
      `${NATIVE_BLAS_ENV}=/nonexistent/libopenblas.so.0`,
      "could not be loaded",
      `unset ${NATIVE_BLAS_ENV}`,
    ]
  ) assert(bad.text.includes(part), `missing "${part}" in: ${bad.text}`);
});
