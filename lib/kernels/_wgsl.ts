/**
 * The WGSL source of the kit's WebGPU kernels: the module around a `main`
 * (its bindings in `runWgsl`'s order and the uniform struct `U`, with
 * {@linkcode uniformWords} packing the host side of `U`), the `main`s of
 * the flat workgroup layout with {@linkcode workgroupsFor} counting their
 * workgroups, and workgroup-wide reductions.
 *
 * The kernel modules import it as a namespace (`wgsl.shader`,
 * `wgsl.rowMain`, ...). Plain text, no tfjs.
 *
 * @module
 */

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
export const FLAT_BUILTINS = `@builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32`;

/** A workgroup's flat index under {@linkcode FLAT_BUILTINS} (WGSL). */
export const WORKGROUP_INDEX = "wid.y * nwg.x + wid.x";

/** `let i = …;`: a thread's item under `workgroupsFor(count, wg)`. */
export function flatIndex(wg: number): string {
  return `let i = (${WORKGROUP_INDEX}) * ${wg}u + lid;`;
}

/**
 * A storage array of {@linkcode shader}: its name (an `array<f32>`),
 * or its name and element type.
 */
export type StorageArray = string | readonly [name: string, element: string];

/**
 * A WGSL module for `runWgsl`: its bindings in runWgsl's order
 * (the struct `U` of the `uniforms` fields, e.g. `"n: u32, eps: f32"`, in
 * {@linkcode uniformWords}' order; each output read-write; each input
 * read-only; the uniforms as `u`), then `decls` (functions, workgroup
 * variables) and `main`.
 */
export function shader(
  { uniforms, outputs, inputs, decls = [], main }: {
    uniforms: string;
    outputs: readonly StorageArray[];
    inputs: readonly StorageArray[];
    decls?: readonly string[];
    main: string;
  },
): string {
  const storage = (a: StorageArray, binding: number, access: string) => {
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
 * {@linkcode workgroupsFor} (the builtins of {@linkcode FLAT_BUILTINS})
 * that runs `body` (WGSL statements).
 */
export function flatMain(size: number, body: string): string {
  return `@compute @workgroup_size(${size})
fn main(${FLAT_BUILTINS}) {
  ${body}
}`;
}

/**
 * A `main` of one thread per item, `size` per workgroup
 * (`workgroupsFor(u.n, size)`): `body` runs with the item `i` for every
 * `i < u.n`.
 */
export function elementwiseMain(size: number, body: string): string {
  return flatMain(
    size,
    `${flatIndex(size)}
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
export function rowMain(size: number, body: string): string {
  return flatMain(
    size,
    `let row = ${WORKGROUP_INDEX};
  if (row >= u.rows) { return; }
  let base = row * u.C;
  ${body}`,
  );
}

/** How {@linkcode workgroupReduce} combines two values. */
export type ReduceOp = "sum" | "max";

/**
 * WGSL for workgroup-wide tree reductions: the workgroup array `red` of
 * `size` values of `type` (default f32; `size` a power of two, the
 * workgroup's size) and, for each entry of `ops`, a function
 * `name(v: type, lid: u32) -> type` that every thread must call.
 */
export function workgroupReduce(
  { size, type = "f32", ops }: {
    size: number;
    type?: string;
    ops: Readonly<Record<string, ReduceOp>>;
  },
): string {
  const combine = (op: ReduceOp, a: string, b: string) =>
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
