/**
 * How Deno's WebGPU queue behaves, with raw WebGPU (no tfjs): whether
 * `queue.submit` returns at once or waits for earlier work, how long a
 * `mapAsync` call holds the main thread and how long its promise takes to
 * settle after the work is done, and the cost of many small submits.
 *
 *     deno run -A tests/bench/webgpu_queue_probe.ts [--iterations 200000]
 *
 * On a GPU machine, bundle it with ../shared/gpu/prepare.sh and run the
 * bundle there. Prints one JSON object per line: the adapter, then one line
 * per measurement (milliseconds of the main thread).
 *
 * Seen on lavapipe (2-core machine, Deno 2.9.6): a submit returns in about
 * 0.2 ms when the queue is idle but waits for the previous submission when
 * one is running; a `mapAsync` call blocks until all submitted work is done
 * and its promise settles about 11 ms later, as does `onSubmittedWorkDone`
 * with nothing pending (a 10 ms polling interval): every readback costs
 * about 11 ms of latency on top of the work.
 */

import { parseArgs } from "node:util";

const { values } = parseArgs({
  args: Deno.args,
  options: { iterations: { type: "string", default: "200000" } },
});
const iterations = Number(values.iterations);
if (!(Number.isInteger(iterations) && iterations > 0)) {
  console.error(
    `--iterations must be a positive whole number (the shader's loop length); found ${values.iterations}`,
  );
  Deno.exit(2);
}
const adapter = await navigator.gpu?.requestAdapter({
  powerPreference: "high-performance",
});
if (!adapter) {
  console.error("no WebGPU adapter: nothing to probe");
  Deno.exit(1);
}
const device = await adapter.requestDevice();
console.log(JSON.stringify({ adapter: adapter.info.description || "?" }));

const code = `
@group(0) @binding(0) var<storage, read_write> b: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  var s = b[g.x];
  for (var i = 0u; i < ${iterations}u; i++) { s = s * 1.0000001 + 0.5; }
  b[g.x] = s;
}`;
const pipeline = device.createComputePipeline({
  layout: "auto",
  compute: { module: device.createShaderModule({ code }), entryPoint: "main" },
});
const work = device.createBuffer({
  size: 4 * 64 * 64,
  usage: GPUBufferUsage.STORAGE,
});
const unrelated = device.createBuffer({
  size: 16,
  usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
});
const bindGroup = device.createBindGroup({
  layout: pipeline.getBindGroupLayout(0),
  entries: [{ binding: 0, resource: { buffer: work } }],
});
const commands = () => {
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bindGroup);
  pass.dispatchWorkgroups(64);
  pass.end();
  return encoder.finish();
};
const ms = (t: number) => Number((performance.now() - t).toFixed(2));

for (let round = 0; round < 3; round++) {
  let t = performance.now();
  device.queue.submit([commands()]);
  const firstSubmit = ms(t);
  t = performance.now();
  device.queue.submit([commands()]);
  const secondSubmit = ms(t);
  t = performance.now();
  const mapping = unrelated.mapAsync(GPUMapMode.READ);
  const mapCall = ms(t);
  t = performance.now();
  await mapping;
  const mapSettled = ms(t);
  unrelated.unmap();
  t = performance.now();
  await device.queue.onSubmittedWorkDone();
  const idleDone = ms(t);
  console.log(JSON.stringify({
    round,
    firstSubmit,
    secondSubmit,
    mapCall,
    mapSettled,
    idleDone,
  }));
}
const t = performance.now();
for (let i = 0; i < 50; i++) device.queue.submit([commands()]);
const fiftySubmits = ms(t);
const t2 = performance.now();
await device.queue.onSubmittedWorkDone();
console.log(JSON.stringify({ fiftySubmits, thenDone: ms(t2) }));
device.destroy();
