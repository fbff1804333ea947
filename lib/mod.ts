/**
 * tokenlab: token labeling for vision transformers (LV-ViT, MixToken,
 * TL-Align, score maps) on TensorFlow.js, for Deno notebooks and reports.
 *
 * ```ts
 * import { describeBackend, initBackend, tf } from "tokenlab";
 * const choice = await initBackend(); // webgpu on a GPU, wasm on a CPU
 * console.log(describeBackend(choice));
 * const y = tf.matMul(tf.ones([2, 3]), tf.ones([3, 2]));
 * console.log(await y.array());
 * y.dispose();
 * ```
 *
 * @module
 */

export * from "./annotators/mod.ts";
export * from "./backend.ts";
export * from "./backend_check.ts";
export * from "./ops.ts";
export * from "./data/mod.ts";
export * from "./errors.ts";
export * from "./io/mod.ts";
export * from "./labels/mod.ts";
export * from "./losses/mod.ts";
export * from "./mixing/mod.ts";
export * from "./models/mod.ts";
export * from "./random.ts";
export * from "./report/mod.ts";
export * from "./train/mod.ts";
export * from "./view/mod.ts";
export { tf, TFJS_VERSION } from "./tf.ts";
export { VERSION } from "./version.ts";
