/**
 * Frees memory during tfjs's backward pass as soon as it can be freed.
 *
 * tfjs 4.22 keeps every tensor of a gradient computation alive until the
 * whole backward pass ends: the tensors each tape node saved for its
 * gradient, the gradient flowing into each node (`dy`), and every
 * intermediate a `customGrad` gradient function makes. A training step's
 * peak is then all the saved activations plus all the gradients, where the
 * activations could be dropped one by one as the backward pass walks past
 * them (PyTorch frees each node's saved tensors right after its backward).
 * A bench-64 training step at batch 64 (64 x 64 inputs, a 64-channel conv
 * stem) needed more than the 4 GiB a wasm heap can hold and aborted.
 *
 * {@linkcode installLeanBackprop} wraps each tape node's gradient function
 * (by patching the engine's `addTapeNode`). In a first-order gradient (no
 * outer tape recording), once a node's input gradients are computed:
 * - they are computed eagerly in one `tidy`, so everything else the
 *   gradient function made (including a `customGrad`'s intermediates and the
 *   zeros tfjs makes for outputs without a gradient) is freed at once;
 * - the node's saved tensors (clones kept for this node alone) are freed;
 * - the gradients flowing into the node's outputs are freed: each tensor is
 *   the output of one node, so nothing reads them again. A gradient the
 *   caller passed in (`dy` of `tf.grads`) is never freed, nor one that is
 *   also an input gradient of the same node.
 *
 * Higher-order gradients (a tape still recording during the backward pass)
 * go through tfjs's own path unchanged. Results are bit-identical: only the
 * lifetime of tensors changes.
 *
 * This module imports tfjs directly (a kernel module is a leaf); nothing is
 * patched until {@linkcode installLeanBackprop} runs (`installKernels` of
 * `lib/kernels/mod.ts` calls it).
 *
 * @module
 */

import * as tfjs from "@tensorflow/tfjs";

type Tensor = tfjs.Tensor;

interface TapeNode {
  outputs: Tensor[];
  saved?: Tensor[];
  gradient?: (dys: Tensor[]) => Record<string, () => Tensor>;
}

interface EngineLike {
  state: { activeTape: TapeNode[] | null; gradientDepth: number };
  tidy<T>(f: () => T): T;
  addTapeNode(...args: unknown[]): void;
  gradients(...args: unknown[]): unknown;
}

const INSTALLED = Symbol.for("tokenlab.leanBackprop");

/** Tensors passed by callers as `dy` to gradient computations now running. */
const callerGradients = new Set<number>();

/**
 * One running gradient computation: the clean-up of the node whose gradient
 * ran last, done when the next node's starts (or when the computation ends).
 * A stack, so that a gradient computed inside another's backward pass keeps
 * its own.
 */
const frames: { pending: (() => void) | null }[] = [];

/**
 * Installs the lean backward pass on tfjs's engine (idempotent); returns
 * whether this call installed it.
 *
 * @example
 * ```ts
 * import { installLeanBackprop } from "tokenlab/kernels/lean_backprop.ts";
 * installLeanBackprop();
 * console.assert(installLeanBackprop() === false); // installed once
 * ```
 */
export function installLeanBackprop(): boolean {
  const engine = tfjs.engine() as unknown as EngineLike;
  const proto = Object.getPrototypeOf(engine) as EngineLike & {
    [INSTALLED]?: true;
  };
  if (proto[INSTALLED]) return false;
  const addTapeNode = proto.addTapeNode;
  const gradients = proto.gradients;
  proto.addTapeNode = function (this: EngineLike, ...args: unknown[]) {
    addTapeNode.apply(this, args);
    const tape = this.state.activeTape;
    const node = tape?.[tape.length - 1];
    if (node?.gradient !== undefined) leanGradient(this, node);
  };
  proto.gradients = function (this: EngineLike, ...args: unknown[]) {
    const dy = args[2] as Tensor | null | undefined;
    if (dy instanceof tfjs.Tensor) callerGradients.add(dy.id);
    const frame = { pending: null as (() => void) | null };
    frames.push(frame);
    try {
      return gradients.apply(this, args);
    } finally {
      frames.pop();
      frame.pending?.();
      if (dy instanceof tfjs.Tensor) callerGradients.delete(dy.id);
    }
  };
  proto[INSTALLED] = true;
  return true;
}

/** Wraps one tape node's gradient function (see the module's documentation). */
function leanGradient(
  engine: EngineLike,
  node: TapeNode & { kernelName?: string },
): void {
  const original = node.gradient!;
  // A kernel with a registered gradient computes each input's gradient
  // lazily, and tfjs asks only for the inputs on a path to the sources: keep
  // that. Anything else (a customGrad) made its gradients already.
  const lazy = node.kernelName !== undefined &&
    tfjs.getGradient(node.kernelName) !== undefined;
  node.gradient = (dys: Tensor[]) => {
    const frame = frames.at(-1);
    // A tape recording now means a higher-order gradient: keep tfjs's way.
    if (frame === undefined || engine.state.gradientDepth !== 0) {
      return original(dys);
    }
    frame.pending?.();
    frame.pending = null;
    const made = new Set<number>();
    const release = () => {
      for (const t of node.saved ?? []) if (!made.has(t.id)) t.dispose();
      node.saved = [];
      for (const dy of dys) {
        if (
          dy instanceof tfjs.Tensor && !made.has(dy.id) &&
          !callerGradients.has(dy.id)
        ) {
          dy.dispose();
        }
      }
    };
    if (lazy) {
      const thunks = original(dys);
      const recorded: Record<string, () => Tensor> = {};
      for (const [name, thunk] of Object.entries(thunks)) {
        recorded[name] = () => {
          const g = thunk();
          made.add(g.id);
          return g;
        };
      }
      frame.pending = release;
      return recorded;
    }
    const grads = engine.tidy(() => {
      const thunks = original(dys);
      const seen = new Set<Tensor>();
      return Object.entries(thunks).map(([name, thunk]) => {
        let g = thunk();
        // One tensor answered for two inputs would be freed twice later.
        if (seen.has(g)) g = tfjs.clone(g);
        seen.add(g);
        made.add(g.id);
        return [name, g] as const;
      });
    });
    release();
    return Object.fromEntries(grads.map(([n, g]) => [n, () => g]));
  };
}
