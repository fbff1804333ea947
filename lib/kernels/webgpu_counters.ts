/**
 * Counts what a stretch of WebGPU work asks of the device: dispatches,
 * queue submits, uploads, readbacks, buffer and bind-group creations,
 * pipeline compilations, with the main thread's time spent inside each
 * call. It works the same on lavapipe as on a real GPU, so the overhead of
 * a training step (its calls, not its arithmetic) is visible on any
 * machine.
 *
 * It wraps the methods of the WebGPU classes' prototypes (`GPUDevice`,
 * `GPUQueue`, `GPUBuffer`, `GPUCommandEncoder`, `GPUComputePassEncoder`)
 * while {@linkcode countWebGpu} runs, and restores them after: whichever
 * code makes the calls (tfjs's programs or the kit's WGSL kernels), they
 * are counted.
 *
 * This module imports nothing from tfjs: it sees only the WebGPU API.
 *
 * @module
 */

/** What one stretch of WebGPU work asked of the device. */
export interface WebGpuCounts {
  /** Compute dispatches (`dispatchWorkgroups`). */
  dispatches: number;
  /** `queue.submit` calls. */
  submits: number;
  /** Host-to-device copies: buffers created mapped for writing (tfjs's uploads) and `writeBuffer` calls other than uniforms. */
  uploads: number;
  /** Uniform writes (`writeBuffer` into uniform buffers, one per tfjs dispatch). */
  uniformWrites: number;
  /** Device-to-host reads (`mapAsync` for reading). */
  readbacks: number;
  /** `createBuffer` calls. */
  buffersCreated: number;
  /** `createBindGroup` calls. */
  bindGroups: number;
  /** Compute pipelines compiled (`createComputePipeline`, sync or async). */
  pipelines: number;
  /** Buffer-to-buffer copies recorded. */
  copies: number;
  /** Main-thread milliseconds inside `queue.submit`. */
  submitMs: number;
  /** Main-thread milliseconds inside every other counted call. */
  callMs: number;
  /** Milliseconds from a readback's request to its data (summed; they may overlap). */
  readbackWaitMs: number;
}

/** Counts of zero. */
export function zeroCounts(): WebGpuCounts {
  return {
    dispatches: 0,
    submits: 0,
    uploads: 0,
    uniformWrites: 0,
    readbacks: 0,
    buffersCreated: 0,
    bindGroups: 0,
    pipelines: 0,
    copies: 0,
    submitMs: 0,
    callMs: 0,
    readbackWaitMs: 0,
  };
}

type Method = (this: unknown, ...args: unknown[]) => unknown;

// GPUBufferUsage flags (the WebGPU spec's values), so that this module
// needs no WebGPU globals when it is only imported.
const MAP_READ = 0x0001, MAP_WRITE = 0x0002, UNIFORM = 0x0040;

let active: WebGpuCounts | null = null;

function wrapAll(counts: WebGpuCounts): () => void {
  const restore: (() => void)[] = [];
  const g = globalThis as unknown as Record<
    string,
    { prototype: Record<string, Method> } | undefined
  >;
  const wrap = (
    cls: string,
    name: string,
    count: (args: unknown[], self: unknown) => void,
    into: "submitMs" | "callMs" = "callMs",
  ) => {
    const proto = g[cls]?.prototype;
    const original = proto?.[name];
    if (proto === undefined || typeof original !== "function") return;
    proto[name] = function (this: unknown, ...args: unknown[]) {
      const t0 = performance.now();
      try {
        return original.apply(this, args);
      } finally {
        counts[into] += performance.now() - t0;
        count(args, this);
      }
    };
    restore.push(() => {
      proto[name] = original;
    });
  };
  wrap("GPUComputePassEncoder", "dispatchWorkgroups", () => {
    counts.dispatches++;
  });
  wrap("GPUQueue", "submit", () => {
    counts.submits++;
  }, "submitMs");
  wrap("GPUQueue", "writeBuffer", (args) => {
    const usage = (args[0] as { usage?: number })?.usage ?? 0;
    if (usage & UNIFORM) counts.uniformWrites++;
    else counts.uploads++;
  });
  wrap("GPUDevice", "createBuffer", (args) => {
    counts.buffersCreated++;
    const d = args[0] as { mappedAtCreation?: boolean; usage?: number };
    if (d?.mappedAtCreation && !((d.usage ?? 0) & MAP_READ)) counts.uploads++;
  });
  wrap("GPUDevice", "createBindGroup", () => {
    counts.bindGroups++;
  });
  wrap("GPUDevice", "createComputePipeline", () => {
    counts.pipelines++;
  });
  wrap("GPUDevice", "createComputePipelineAsync", () => {
    counts.pipelines++;
  });
  wrap("GPUCommandEncoder", "copyBufferToBuffer", () => {
    counts.copies++;
  });
  // A readback: time from the request until the data is mapped.
  const bufferProto = g.GPUBuffer?.prototype;
  const mapAsync = bufferProto?.mapAsync;
  if (bufferProto !== undefined && typeof mapAsync === "function") {
    bufferProto.mapAsync = function (this: unknown, ...args: unknown[]) {
      const reading = ((args[0] as number) & MAP_READ) !== 0 &&
        ((args[0] as number) & MAP_WRITE) === 0;
      if (reading) counts.readbacks++;
      const t0 = performance.now();
      const p = mapAsync.apply(this, args) as Promise<void>;
      return reading
        ? p.finally(() => {
          counts.readbackWaitMs += performance.now() - t0;
        })
        : p;
    };
    restore.push(() => {
      bufferProto.mapAsync = mapAsync;
    });
  }
  return () => restore.reverse().forEach((r) => r());
}

/**
 * Runs `body` and counts the WebGPU calls it makes (until its promise
 * settles). Counting does not nest: a second call while one runs throws.
 *
 * @example
 * ```ts
 * import { countWebGpu } from "tokenlab/kernels/webgpu_counters.ts";
 * const { counts } = await countWebGpu(async () => {});
 * console.log(counts.dispatches); // 0: nothing ran
 * ```
 */
export async function countWebGpu<T>(
  body: () => Promise<T> | T,
): Promise<{ result: T; counts: WebGpuCounts }> {
  if (active !== null) {
    throw new Error(
      "countWebGpu is already counting; counts do not nest: count the outer stretch only",
    );
  }
  const counts = zeroCounts();
  active = counts;
  const restore = wrapAll(counts);
  try {
    const result = await body();
    return { result, counts };
  } finally {
    restore();
    active = null;
  }
}
