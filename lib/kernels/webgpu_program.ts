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
 * `main`. `_wgsl.ts` writes such modules.
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
  /**
   * The WGSL module, entry point `main`; or a function that writes it, called
   * only when the pipeline of `key` is compiled (not on every dispatch).
   */
  code: string | (() => string);
  /** Tensors read (bindings after the outputs). */
  inputs: readonly TensorInfo[];
  /** New tensors written: their shapes and dtypes (bindings first). */
  outputs: readonly { shape: readonly number[]; dtype?: tfjs.DataType }[];
  /**
   * 32-bit words of the uniform struct (last binding; `uniformWords` of
   * `_wgsl.ts` packs them); none when omitted.
   */
  uniforms?: ArrayBuffer;
  /** Workgroups along x, y, z. */
  workgroups: readonly [number, number, number];
}

const pipelines = new WeakMap<GPUDevice, Map<string, GPUComputePipeline>>();

/**
 * Kernels whose pipeline the device refused, with its message. WebGPU
 * reports the refusal asynchronously and runs the dispatch as a no-op, so a
 * shader that one driver rejects (and lavapipe took) would otherwise give
 * wrong numbers in silence: the refusal is printed when it arrives, and
 * every later dispatch of that kernel throws it.
 */
const refused = new WeakMap<GPUDevice, Map<string, string>>();

function pipelineFor(
  device: GPUDevice,
  key: string,
  code: string | (() => string),
): GPUComputePipeline {
  let cache = pipelines.get(device);
  if (cache === undefined) pipelines.set(device, cache = new Map());
  const why = refused.get(device)?.get(key);
  if (why !== undefined) {
    throw new Error(
      `the WebGPU device refused the kit's WGSL kernel ${key}: ${why}. Use the wasm backend, or report the adapter and this message`,
    );
  }
  let pipeline = cache.get(key);
  if (pipeline === undefined) {
    device.pushErrorScope("validation");
    pipeline = device.createComputePipeline({
      label: key,
      layout: "auto",
      compute: {
        module: device.createShaderModule({
          label: key,
          code: typeof code === "string" ? code : code(),
        }),
        entryPoint: "main",
      },
    });
    device.popErrorScope().then((error) => {
      if (error === null) return;
      let map = refused.get(device);
      if (map === undefined) refused.set(device, map = new Map());
      map.set(key, error.message);
      console.error(
        `tokenlab: the WebGPU device refused the WGSL kernel ${key}; its results so far are wrong: ${error.message}`,
      );
    });
    cache.set(key, pipeline);
  }
  return pipeline;
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

/**
 * The arguments tfjs passes a kernel function of the WebGPU backend (the
 * parts the kit reads).
 */
export interface KernelArgs {
  inputs: Record<string, TensorInfo>;
  backend: WebGpuBackend;
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
