/**
 * The GPU device the WebGPU backend runs on: tfjs-webgpu's own factory,
 * replaced by one that asks the adapter for as many storage buffers per
 * shader stage as it has.
 *
 * tfjs-webgpu 4.22 requests its device with WebGPU's default of 8 storage
 * buffers per stage, which is enough for its own kernels (one output and a
 * few inputs) but lets a kernel of ours touch only one parameter's AdamW
 * step (7 buffers) per dispatch. Adapters have more: lavapipe 32, NVIDIA's
 * Vulkan driver far more. With them, `lib/kernels/webgpu_adamw.ts` steps
 * several parameters per dispatch. Everything else is as tfjs asks for it:
 * the same power preference (`WEBGPU_USE_LOW_POWER_GPU`), the timestamp
 * queries when the adapter has them, the adapter's workgroup, buffer and
 * binding-size limits, and tfjs's `WebGPUBackend` on the device.
 *
 * This module imports tfjs directly (a kernel module is a leaf).
 *
 * @module
 */

import * as tfjs from "@tensorflow/tfjs";
import { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";

/**
 * The most storage buffers per stage the device asks for: a fused AdamW
 * dispatch binds 7 per parameter, and 16 parameters at a time leave little
 * to gain (see `webgpu_adamw.ts`).
 */
export const STORAGE_BUFFERS_WANTED = 7 * 16;

/** tfjs-core's engine, the parts that hold the backends' factories. */
interface BackendRegistry {
  registry: Record<string, unknown>;
  registryFactory: Record<string, { priority: number } | undefined>;
}

/** The device WebGPU's tokenlab backend asks for, given its adapter. */
export function deviceDescriptor(adapter: GPUAdapter): GPUDeviceDescriptor {
  const l = adapter.limits;
  const requiredFeatures: GPUFeatureName[] = [];
  if (adapter.features.has("timestamp-query")) {
    requiredFeatures.push("timestamp-query");
  }
  return {
    requiredFeatures,
    requiredLimits: {
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      maxStorageBuffersPerShaderStage: Math.min(
        l.maxStorageBuffersPerShaderStage,
        STORAGE_BUFFERS_WANTED,
      ),
    },
  };
}

async function createWebGpuBackend(): Promise<WebGPUBackend> {
  const adapter = await navigator.gpu.requestAdapter({
    powerPreference: tfjs.env().get("WEBGPU_USE_LOW_POWER_GPU")
      ? "low-power"
      : "high-performance",
  });
  if (adapter === null) {
    throw new Error(
      "navigator.gpu.requestAdapter() found no WebGPU adapter; use the wasm or cpu backend",
    );
  }
  const device = await adapter.requestDevice(deviceDescriptor(adapter));
  return new WebGPUBackend(device, adapter.info);
}

/**
 * Puts tokenlab's factory in place of tfjs-webgpu's, keeping its priority.
 * Idempotent; does nothing where tfjs registered no WebGPU backend (no
 * `navigator.gpu`) or where the WebGPU backend already started (its device
 * stays as it is). True when tokenlab's factory is the one in place.
 */
export function registerWebGpuDevice(): boolean {
  const engine = tfjs.engine() as unknown as BackendRegistry;
  const factory = engine.registryFactory["webgpu"] as
    | { priority: number; factory?: unknown }
    | undefined;
  if (factory === undefined) return false;
  if (factory.factory === createWebGpuBackend) return true;
  if (engine.registry["webgpu"] !== undefined) return false;
  const { priority } = factory;
  tfjs.removeBackend("webgpu");
  tfjs.registerBackend("webgpu", createWebGpuBackend, priority);
  return true;
}
