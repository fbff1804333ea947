/**
 * Fused multi-head self-attention for the wasm backend: one kernel from the
 * qkv projection to the merged heads, and one for its gradient, written in C
 * with 128-bit SIMD (`lib/kernels/c/attention.c`, built by
 * `lib/kernels/build.ts`) and run on tfjs's own wasm heap.
 *
 * tfjs's wasm backend runs the attention as a transpose, a split, two
 * batched matrix products (its batched `BatchMatMul` is a plain loop, about
 * 1.5 GFLOP/s on the bench-64 shapes, where its unbatched products reach
 * 15), a softmax and another transpose, plus twice as many kernels in the
 * backward pass, each writing a full tensor. The fused kernels read q, k and
 * v where the qkv projection left them ([B, N, 3, H, hd]), write the output
 * with the heads already merged ([B, N, H, hd]), and keep only the
 * probabilities [B, H, N, N] for the backward pass, which writes the
 * gradient of qkv in the same layout: no transposes, no splits, no copies.
 * The WebGPU kernels of the same names (`lib/kernels/webgpu_attention.ts`)
 * take the same inputs and give the same outputs, so
 * {@linkcode fusedAttention} and {@linkcode fusedAttentionAvailable} serve
 * both backends.
 *
 * The module imports tfjs's memory (`WebAssembly.Memory`, plain or shared
 * for the multi-threaded build) and runs single-threaded.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import {
  addressOf,
  heapF32,
  type Info,
  type KernelArgs,
  moduleOn,
  type WasmBackend,
} from "./_wasm_heap.ts";
import { heapGemm, nativeBlasActive } from "./native_blas.ts";
import { kernelsHere, registerMissingKernels } from "./_registered.ts";
import { ATTENTION_KERNEL_NAMES, qkvDims } from "./_attention_layout.ts";

/** Kernel name of the forward pass (outputs: the merged heads, the probabilities), on wasm and WebGPU. */
export const FUSED_ATTENTION = ATTENTION_KERNEL_NAMES.forward;
/** Kernel name of the backward pass (output: the gradient of qkv), on wasm and WebGPU. */
export const FUSED_ATTENTION_GRAD = ATTENTION_KERNEL_NAMES.backward;

/** B, N, H, hd and the scale hd^-0.5: the C kernels' last arguments. */
type Geometry = [B: number, N: number, H: number, hd: number, scale: number];

interface AttentionExports {
  attention_forward(qkv: number, out: number, p: number, ...g: Geometry): void;
  attention_backward(
    dout: number,
    qkv: number,
    p: number,
    dqkv: number,
    row: number,
    ...g: Geometry
  ): void;
  softmax_rows(s: number, rows: number, n: number): void;
  softmax_grad_rows(
    d: number,
    p: number,
    rows: number,
    n: number,
    scale: number,
  ): void;
}

type Attrs = Parameters<ReturnType<typeof tf.engine>["runKernel"]>[2];

/** The C module's exports on this backend's heap. */
const kernels = (backend: WasmBackend) =>
  moduleOn<AttentionExports>(backend, "attention");
const offset = addressOf;

/** [B, N, 3D] and heads -> B, N, H, hd, checked. */
const dims = (qkv: Info, heads: number) =>
  qkvDims(qkv, heads, "fused attention");

/** [B, N, H, hd] -> the C kernels' {@linkcode Geometry}. */
function geometry([B, N, H, hd]: readonly number[]): Geometry {
  return [B, N, H, hd, hd ** -0.5];
}

function forwardKernel(args: KernelArgs): Info[] {
  const backend = args.backend as unknown as WasmBackend;
  const qkv = args.inputs.qkv as Info;
  const { heads } = args.attrs as unknown as { heads: number };
  const d = dims(qkv, heads);
  const [B, N, H, hd] = d;
  const out = backend.makeOutput([B, N, H * hd], "float32");
  const probs = backend.makeOutput([B, H, N, N], "float32");
  if (nativeBlasActive()) {
    nativeForward(backend, d, qkv, out, probs);
    return [out, probs];
  }
  kernels(backend).attention_forward(
    offset(backend, qkv),
    offset(backend, out),
    offset(backend, probs),
    ...geometry(d),
  );
  return [out, probs];
}

function backwardKernel(args: KernelArgs): Info {
  const backend = args.backend as unknown as WasmBackend;
  const { dy, qkv, probs } = args.inputs as Record<string, Info>;
  const { heads } = args.attrs as unknown as { heads: number };
  const d = dims(qkv, heads);
  const [B, N, H, hd] = d;
  const dqkv = backend.makeOutput([B, N, 3 * H * hd], "float32");
  if (nativeBlasActive()) {
    nativeBackward(backend, d, dy, qkv, probs, dqkv);
    return dqkv;
  }
  const row = backend.makeOutput([N], "float32");
  try {
    kernels(backend).attention_backward(
      offset(backend, dy),
      offset(backend, qkv),
      offset(backend, probs),
      offset(backend, dqkv),
      offset(backend, row),
      ...geometry(d),
    );
  } finally {
    backend.disposeData(row.dataId);
  }
  return dqkv;
}

/**
 * The same attention with its products on the native BLAS (when
 * `nativeBlasActive()`): per image and head, S = scale q k^T and O = P v as
 * two products that read q, k and v in place (row stride 3D) and write O
 * into its merged-heads columns (row stride D); the softmax in between is
 * the C module's, over all rows at once.
 */
function nativeForward(
  backend: WasmBackend,
  [B, N, H, hd]: [number, number, number, number],
  qkv: Info,
  out: Info,
  probs: Info,
): void {
  const D = H * hd, scale = hd ** -0.5;
  const heap = heapF32(backend);
  const x = offset(backend, qkv) >> 2, o = offset(backend, out) >> 2;
  const p = offset(backend, probs) >> 2;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const q = x + b * N * 3 * D + h * hd, ph = p + (b * H + h) * N * N;
      heapGemm(
        heap,
        false,
        true,
        N,
        N,
        hd,
        q,
        3 * D,
        q + D,
        3 * D,
        0,
        ph,
        N,
        scale,
      );
    }
  }
  kernels(backend).softmax_rows(p * 4, B * H * N, N);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const v = x + b * N * 3 * D + 2 * D + h * hd;
      const ph = p + (b * H + h) * N * N;
      heapGemm(
        heap,
        false,
        false,
        N,
        hd,
        N,
        ph,
        N,
        v,
        3 * D,
        0,
        o + b * N * D + h * hd,
        D,
      );
    }
  }
}

/**
 * The backward pass on the native BLAS: per image and head dP = dO v^T and
 * dV = P^T dO, then (C module, all rows) dS = scale P (dP - rowsum(P dP)),
 * then dQ = dS k and dK = dS^T q, each written in place into dqkv.
 */
function nativeBackward(
  backend: WasmBackend,
  [B, N, H, hd]: [number, number, number, number],
  dy: Info,
  qkv: Info,
  probs: Info,
  dqkv: Info,
): void {
  const D = H * hd, scale = hd ** -0.5;
  const ds = backend.makeOutput([B * H * N * N], "float32");
  try {
    const heap = heapF32(backend);
    const x = offset(backend, qkv) >> 2, g = offset(backend, dy) >> 2;
    const p = offset(backend, probs) >> 2, dx = offset(backend, dqkv) >> 2;
    const d = offset(backend, ds) >> 2;
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        const v = x + b * N * 3 * D + 2 * D + h * hd;
        const dO = g + b * N * D + h * hd, hp = (b * H + h) * N * N;
        heapGemm(heap, false, true, N, N, hd, dO, D, v, 3 * D, 0, d + hp, N);
        const dv = dx + b * N * 3 * D + 2 * D + h * hd;
        heapGemm(heap, true, false, N, hd, N, p + hp, N, dO, D, 0, dv, 3 * D);
      }
    }
    kernels(backend).softmax_grad_rows(d * 4, p * 4, B * H * N, N, scale);
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        const q = x + b * N * 3 * D + h * hd, hp = (b * H + h) * N * N;
        const dq = dx + b * N * 3 * D + h * hd;
        heapGemm(
          heap,
          false,
          false,
          N,
          hd,
          N,
          d + hp,
          N,
          q + D,
          3 * D,
          0,
          dq,
          3 * D,
        );
        heapGemm(
          heap,
          true,
          false,
          N,
          hd,
          N,
          d + hp,
          N,
          q,
          3 * D,
          0,
          dq + D,
          3 * D,
        );
      }
    }
  } finally {
    backend.disposeData(ds.dataId);
  }
}

/**
 * Registers both kernels for the wasm backend (idempotent) and returns
 * their names.
 */
export function registerFusedAttention(): string[] {
  return registerMissingKernels("wasm", [
    [FUSED_ATTENTION, forwardKernel],
    [FUSED_ATTENTION_GRAD, backwardKernel],
  ]);
}

/**
 * Whether the fused attention runs on the current backend: its kernel is
 * registered there (wasm by {@linkcode registerFusedAttention}, WebGPU by
 * `registerWebGpuAttention` of `lib/kernels/webgpu_attention.ts`).
 */
export function fusedAttentionAvailable(): boolean {
  return kernelsHere(FUSED_ATTENTION);
}

/**
 * The fused attention core (see `attentionCore` in `lib/ops.ts`, which
 * calls it on wasm and WebGPU): qkv [B, N, 3D] -> [B, N, D], differentiable
 * in qkv; it runs whichever backend's kernels are registered.
 * `onProbs` receives the probabilities [B, heads, N, N] (not to be disposed).
 */
export function fusedAttention(
  qkv: tf.Tensor3D,
  heads: number,
  onProbs?: (probs: tf.Tensor4D) => void,
): tf.Tensor3D {
  const op = tf.customGrad(
    ((x: tf.Tensor, save: tf.GradSaveFunc) => {
      const [out, probs] = tf.engine().runKernel(FUSED_ATTENTION, { qkv: x }, {
        heads,
      } as unknown as Attrs) as tf.Tensor[];
      save([x, probs]);
      onProbs?.(probs as tf.Tensor4D);
      return {
        value: out,
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
          tf.engine().runKernel(FUSED_ATTENTION_GRAD, {
            dy,
            qkv: saved[0],
            probs: saved[1],
          }, { heads } as unknown as Attrs) as tf.Tensor,
      };
    }) as unknown as Parameters<typeof tf.customGrad>[0],
  ) as unknown as (x: tf.Tensor) => tf.Tensor;
  return op(qkv) as tf.Tensor3D;
}
