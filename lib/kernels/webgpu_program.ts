/**
 * Runs a WGSL compute shader of our own inside tfjs's WebGPU backend: the
 * one place that reaches into tfjs-webgpu's internals to record a dispatch.
 *
 * tfjs's own programs (`runWebGPUProgram`) write one output and bind every
 * input read-only, with a generated header. The kit's fused kernels
 * (attention, LayerNorm, GELU, the soft-target cross-entropy, AdamW) need
 * several outputs, hand-written layouts and their own workgroup shapes, so
 * {@linkcode runWgsl} records them the way tfjs records its own: into the
 * backend's open command encoder and compute pass, with the uniforms in a
 * pooled buffer, the tensors marked as owned by the queue (so a tensor
 * disposed before the submit keeps its buffer until then), the submit made
 * after `WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE` dispatches, and, under
 * `tf.profile` / `tf.time`, a timestamp query per dispatch like tfjs's.
 *
 * Bindings, in order: the outputs, then the inputs, then (when `uniforms` is
 * given) one uniform buffer. The shader must use every binding (the
 * pipeline layout is derived from the code) and declare its entry point as
 * `main`.
 *
 * This module imports tfjs directly (a kernel module is a leaf).
 *
 * @module
 */

import * as tfjs from "@tensorflow/tfjs";
import { registerMissingKernels } from "./_registered.ts";

/** The tensor handle a kernel function receives and returns. */
export type TensorInfo = tfjs.TensorInfo;

/** The parts of tfjs-webgpu's backend (4.22) that the kit's kernels use. */
export interface WebGpuBackend {
  device: GPUDevice;
  queue: GPUQueue;
  commandEncoder: GPUCommandEncoder | null;
  computePassEncoder: GPUComputePassEncoder | null;
  dispatchCountInPass: number;
  commandQueueOwnedIds: WeakSet<object>;
  uniformPendingDisposal: GPUBuffer[];
  activeTimers: { name: string; query: Promise<number> }[] | null | undefined;
  supportTimestampQuery: boolean;
  querySet: GPUQuerySet | null;
  querySetCount: number;
  bufferManager: {
    acquireBuffer(size: number, usage: number): GPUBuffer;
  };
  tensorMap: {
    get(dataId: object): {
      resource: unknown;
      values: unknown;
      dtype: string;
      shape: number[];
      refCount: number;
    };
    has(dataId: object): boolean;
  };
  makeTensorInfo(shape: number[], dtype: tfjs.DataType): TensorInfo;
  uploadToGPU(dataId: object): void;
  disposeData(dataId: object, force?: boolean): boolean;
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
  getQueryTime(): Promise<number>;
}

/** One dispatch of {@linkcode runWgsl}. */
export interface WgslDispatch {
  /**
   * Names the pipeline in the cache: two calls with the same key must pass
   * the same code (put every constant baked into the code in the key).
   */
  key: string;
  /** The WGSL module, entry point `main`. */
  code: string;
  /** Tensors read (bindings after the outputs). */
  inputs: readonly TensorInfo[];
  /** New tensors written: their shapes and dtypes (bindings first). */
  outputs: readonly { shape: readonly number[]; dtype?: tfjs.DataType }[];
  /** 32-bit words of the uniform struct (last binding); none when omitted. */
  uniforms?: ArrayBuffer;
  /** Workgroups along x, y, z. */
  workgroups: readonly [number, number, number];
}

const pipelines = new WeakMap<GPUDevice, Map<string, GPUComputePipeline>>();

function pipelineFor(
  device: GPUDevice,
  key: string,
  code: string,
): GPUComputePipeline {
  let cache = pipelines.get(device);
  if (cache === undefined) pipelines.set(device, cache = new Map());
  let pipeline = cache.get(key);
  if (pipeline === undefined) {
    pipeline = device.createComputePipeline({
      label: key,
      layout: "auto",
      compute: {
        module: device.createShaderModule({ label: key, code }),
        entryPoint: "main",
      },
    });
    cache.set(key, pipeline);
  }
  return pipeline;
}

/**
 * Packs uniform fields (each one 32-bit word) into a buffer padded to 16
 * bytes: `u` unsigned, `i` signed, `f` float32. The WGSL struct must declare
 * the same fields in the same order, each a u32, i32 or f32.
 */
export function uniformWords(
  fields: readonly (readonly ["u" | "i" | "f", number])[],
): ArrayBuffer {
  const bytes = Math.max(16, Math.ceil(fields.length * 4 / 16) * 16);
  const buffer = new ArrayBuffer(bytes);
  const view = new DataView(buffer);
  fields.forEach(([kind, value], i) => {
    if (kind === "f") view.setFloat32(i * 4, value, true);
    else if (kind === "i") view.setInt32(i * 4, value, true);
    else view.setUint32(i * 4, value, true);
  });
  return buffer;
}

/** Largest workgroup count along one dimension WebGPU guarantees. */
export const MAX_WORKGROUPS = 65535;

/**
 * Workgroups for `count` independent items, `size` per workgroup, spread
 * over x and y when x alone would pass the 65535 limit. In the shader the
 * item is `(wid.y * nwg.x + wid.x) * size + lid.x` (builtins
 * `workgroup_id`, `num_workgroups`, `local_invocation_index`); items past
 * `count` must return.
 */
export function workgroupsFor(
  count: number,
  size: number,
): [number, number, number] {
  const groups = Math.max(1, Math.ceil(count / size));
  if (groups <= MAX_WORKGROUPS) return [groups, 1, 1];
  const y = Math.ceil(groups / MAX_WORKGROUPS);
  return [Math.ceil(groups / y), y, 1];
}

/**
 * The builtins parameter list of a `main` laid out by
 * {@linkcode workgroupsFor}: `wid`, `nwg` and `lid`.
 */
export const WGSL_FLAT_BUILTINS = `@builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32`;

/** A workgroup's flat index under {@linkcode WGSL_FLAT_BUILTINS} (WGSL). */
export const WGSL_WORKGROUP_INDEX = "wid.y * nwg.x + wid.x";

/** `let i = …;`: a thread's item under `workgroupsFor(count, wg)`. */
export function wgslFlatIndex(wg: number): string {
  return `let i = (${WGSL_WORKGROUP_INDEX}) * ${wg}u + lid;`;
}

/**
 * A storage array of {@linkcode wgslShader}: its name (an `array<f32>`),
 * or its name and element type.
 */
export type WgslArray = string | readonly [name: string, element: string];

/**
 * A WGSL module for {@linkcode runWgsl}: its bindings in runWgsl's order
 * (the struct `U` of the `uniforms` fields, e.g. `"n: u32, eps: f32"`, in
 * {@linkcode uniformWords}' order; each output read-write; each input
 * read-only; the uniforms as `u`), then `decls` (functions, workgroup
 * variables) and `main`.
 */
export function wgslShader(
  { uniforms, outputs, inputs, decls = [], main }: {
    uniforms: string;
    outputs: readonly WgslArray[];
    inputs: readonly WgslArray[];
    decls?: readonly string[];
    main: string;
  },
): string {
  const storage = (a: WgslArray, binding: number, access: string) => {
    const [name, element] = typeof a === "string" ? [a, "f32"] : a;
    return `@group(0) @binding(${binding}) var<storage, ${access}> ${name}: array<${element}>;`;
  };
  const uniform = outputs.length + inputs.length;
  return [
    "",
    `struct U { ${uniforms} }`,
    ...outputs.map((a, i) => storage(a, i, "read_write")),
    ...inputs.map((a, i) => storage(a, outputs.length + i, "read")),
    `@group(0) @binding(${uniform}) var<uniform> u: U;`,
    ...decls,
    main,
  ].join("\n");
}

/**
 * A `main` of `size` threads per workgroup laid out by
 * {@linkcode workgroupsFor} (the builtins of {@linkcode WGSL_FLAT_BUILTINS})
 * that runs `body` (WGSL statements).
 */
export function wgslFlatMain(size: number, body: string): string {
  return `@compute @workgroup_size(${size})
fn main(${WGSL_FLAT_BUILTINS}) {
  ${body}
}`;
}

/**
 * A `main` of one thread per item, `size` per workgroup
 * (`workgroupsFor(u.n, size)`): `body` runs with the item `i` for every
 * `i < u.n`.
 */
export function wgslElementwiseMain(size: number, body: string): string {
  return wgslFlatMain(
    size,
    `${wgslFlatIndex(size)}
  if (i >= u.n) { return; }
  ${body}`,
  );
}

/**
 * A `main` of one workgroup of `size` threads per row of `u.C` values
 * (`workgroupsFor(u.rows, 1)`): `body` runs with the row `row`, its first
 * element `base` and the thread `lid`. The rows past `u.rows` return as a
 * whole workgroup, so `body` may use barriers.
 */
export function wgslRowMain(size: number, body: string): string {
  return wgslFlatMain(
    size,
    `let row = ${WGSL_WORKGROUP_INDEX};
  if (row >= u.rows) { return; }
  let base = row * u.C;
  ${body}`,
  );
}

/** How {@linkcode wgslWorkgroupReduce} combines two values. */
export type WgslReduceOp = "sum" | "max";

/**
 * WGSL for workgroup-wide tree reductions: the workgroup array `red` of
 * `size` values of `type` (default f32; `size` a power of two, the
 * workgroup's size) and, for each entry of `ops`, a function
 * `name(v: type, lid: u32) -> type` that every thread must call.
 */
export function wgslWorkgroupReduce(
  { size, type = "f32", ops }: {
    size: number;
    type?: string;
    ops: Readonly<Record<string, WgslReduceOp>>;
  },
): string {
  const combine = (op: WgslReduceOp, a: string, b: string) =>
    op === "max" ? `max(${a}, ${b})` : `${a} + ${b}`;
  const fns = Object.entries(ops).map(([name, op]) => `
fn ${name}(v: ${type}, lid: u32) -> ${type} {
  red[lid] = v;
  workgroupBarrier();
  for (var s = ${size / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) { red[lid] = ${combine(op, "red[lid]", "red[lid + s]")}; }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier();
  return total;
}`);
  return `
var<workgroup> red: array<${type}, ${size}>;${fns.join("")}`;
}

/**
 * Records one dispatch of a WGSL shader on the WebGPU backend and returns
 * its new outputs (the caller makes tensors of them, or returns them from a
 * kernel function).
 */
export function runWgsl(
  backend: WebGpuBackend,
  dispatch: WgslDispatch,
): TensorInfo[] {
  const { device } = backend;
  for (const t of dispatch.inputs) backend.uploadToGPU(t.dataId);
  const outputs = dispatch.outputs.map((o) => {
    const info = backend.makeTensorInfo([...o.shape], o.dtype ?? "float32");
    backend.uploadToGPU(info.dataId); // acquires the output's buffer
    return info;
  });
  const buffers = [...outputs, ...dispatch.inputs].map((t) => {
    const resource = backend.tensorMap.get(t.dataId).resource;
    if (!(resource instanceof GPUBuffer)) {
      throw new Error(
        `${dispatch.key}: expected every tensor in a GPU buffer, found ${
          resource === null ? "none" : "a texture"
        } (shape [${t.shape}])`,
      );
    }
    return resource;
  });
  const entries: GPUBindGroupEntry[] = buffers.map((buffer, binding) => ({
    binding,
    resource: { buffer },
  }));
  if (dispatch.uniforms !== undefined) {
    const size = dispatch.uniforms.byteLength;
    const uniform = backend.bufferManager.acquireBuffer(
      size,
      GPUBufferUsage.COPY_DST | GPUBufferUsage.UNIFORM,
    );
    backend.queue.writeBuffer(uniform, 0, dispatch.uniforms, 0, size);
    backend.uniformPendingDisposal.push(uniform);
    entries.push({
      binding: entries.length,
      resource: { buffer: uniform, offset: 0, size },
    });
  }
  for (const t of [...outputs, ...dispatch.inputs]) {
    backend.commandQueueOwnedIds.add(t.dataId);
  }
  const pipeline = pipelineFor(device, dispatch.key, dispatch.code);
  const bindGroup = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries,
  });
  backend.ensureCommandEncoderReady();
  const timed = backend.activeTimers != null;
  if (timed && backend.supportTimestampQuery) {
    // As tfjs does under tf.profile: a pass of its own with timestamps.
    backend.endComputePassEncoder();
    if (backend.querySet == null) {
      backend.querySet = device.createQuerySet({
        type: "timestamp",
        count: backend.querySetCount,
      });
    }
    backend.computePassEncoder = backend.commandEncoder!.beginComputePass({
      timestampWrites: {
        querySet: backend.querySet,
        beginningOfPassWriteIndex: 0,
        endOfPassWriteIndex: 1,
      },
    });
  } else if (backend.computePassEncoder === null) {
    backend.computePassEncoder = backend.commandEncoder!.beginComputePass({});
  }
  const pass = backend.computePassEncoder!;
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bindGroup);
  const [x, y, z] = dispatch.workgroups;
  pass.dispatchWorkgroups(x, y, z);
  backend.dispatchCountInPass++;
  if (
    timed ||
    (tfjs.env().get("WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE") as number) <=
      backend.dispatchCountInPass
  ) {
    backend.endComputePassEncoder();
    if (timed) {
      backend.activeTimers!.push({
        name: dispatch.key,
        query: backend.getQueryTime(),
      });
    } else {
      backend.submitQueue();
    }
  }
  return outputs;
}

/** The kernel-function type of `tf.registerKernel`. */
export type KernelFunc = Parameters<typeof tfjs.registerKernel>[0][
  "kernelFunc"
];

/**
 * Registers kernels for the WebGPU backend (idempotent: a name already
 * registered there is left alone) and returns their names.
 */
export function registerWebGpuKernels(
  kernels: readonly (readonly [
    string,
    (args: KernelArgs) => TensorInfo | TensorInfo[],
  ])[],
): string[] {
  return registerMissingKernels("webgpu", kernels);
}

/** The arguments tfjs passes a kernel function (the parts the kit reads). */
export interface KernelArgs {
  inputs: Record<string, TensorInfo>;
  backend: unknown;
  attrs?: Record<string, unknown>;
}

/** The number of elements of a tensor or a shape. */
export function sizeOf(
  t: { readonly shape: readonly number[] } | readonly number[],
): number {
  const shape = "shape" in t ? t.shape : t as readonly number[];
  return shape.reduce((p, v) => p * v, 1);
}

/**
 * Replaces the WebGPU backend's kernel `name` by `handler`, keeping tfjs's
 * kernel for the calls where `handler` returns null (idempotent per kernel
 * name). False when the WebGPU backend's kernels are not loaded (nothing to
 * replace).
 */
export function replaceWebGpuKernel(
  name: string,
  handler: (args: KernelArgs) => TensorInfo | null,
): boolean {
  const original = tfjs.getKernel(name, "webgpu");
  if (original === undefined) return false;
  const replaced = Symbol.for(`tokenlab.webgpuReplacement.${name}`);
  type Marked = { [replaced]?: true };
  if ((original.kernelFunc as Marked)[replaced]) return true;
  const fallback = original.kernelFunc as unknown as (
    a: KernelArgs,
  ) => TensorInfo;
  const replacement =
    ((args: KernelArgs) =>
      handler(args) ?? fallback(args)) as unknown as KernelFunc;
  (replacement as Marked)[replaced] = true;
  tfjs.unregisterKernel(name, "webgpu");
  tfjs.registerKernel({ ...original, kernelFunc: replacement });
  return true;
}
