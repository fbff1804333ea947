/**
 * Batches prepared ahead of the model. A {@linkcode DataLoader} draws an
 * epoch's order from its seed, prepares every sample (decode, augment, pair
 * with its score map) through a {@linkcode SamplePipeline}, and keeps
 * `prefetch` batches in flight, so the model never waits for JavaScript
 * unless the pipeline is slower than the model:
 *
 * - `workers: 0` prepares batches on the calling thread, asynchronously
 *   (decoding in sharp's thread pool and file reads still overlap the
 *   model's work);
 * - `workers: n` prepares them in `n` Deno workers (real parallelism for the
 *   augmentation), each opening the same pipeline from its serialisable
 *   {@linkcode PipelineSpec}.
 *
 * Every random draw of sample `i` in epoch `e` comes from
 * `Rng.derive(seed, e, i)`, and the order of epoch `e` from
 * `Rng.derive(seed, e, -1)`: the same seed gives the same batches whatever the
 * number of workers and however their work interleaves.
 *
 * @module
 */

import { Rng } from "../random.ts";
import type { ScoreMap } from "../labels/score_map.ts";
import { type PipelineSpec, SamplePipeline } from "./pipeline.ts";
import { type BatchBody, type BatchRequest, prepareBatch } from "./_batch.ts";
import { LoaderError } from "./loader_error.ts";
import {
  type LimitSample,
  limitSample,
  seededPermutation,
} from "./limit_sample.ts";

/** One batch: images, labels and (with score maps) the maps and crop boxes. */
export interface Batch {
  /** Epoch the batch belongs to. */
  readonly epoch: number;
  /** Position of the batch in its epoch (0-based). */
  readonly step: number;
  /** Images in the batch (fewer than the batch size at the end of an epoch or after skipped files). */
  readonly size: number;
  /** Image height and width in pixels. */
  readonly height: number;
  /** Image width in pixels. */
  readonly width: number;
  /** NHWC float32 pixels, normalised (`size * height * width * 3` values). */
  readonly images: Float32Array;
  /** Labels (-1 where the dataset has none). */
  readonly labels: Int32Array;
  /** Dataset indices of the images. */
  readonly indices: Int32Array;
  /** Dataset keys of the images. */
  readonly keys: readonly string[];
  /** Score maps moved with their images (flip, RandAugment's spatial ops), when the pipeline has maps. */
  readonly maps?: readonly ScoreMap[];
  /** Crop boxes (top, left, height, width) normalised to the augmented image, `size * 4` values, when the transform crops. */
  readonly boxes?: Float32Array;
  /** Files skipped in this batch (only with `onBadImage: "skip"`). */
  readonly skipped: readonly string[];
  /** Per-channel mean and std the images were normalised with (for display). */
  readonly normalization: { mean: readonly number[]; std: readonly number[] };
  /** Class names of the dataset. */
  readonly classes: readonly string[];
}

/** Options of a {@linkcode DataLoader}. */
export interface LoaderOptions {
  /** Images per batch. */
  batchSize: number;
  /** Shuffle each epoch (default true). */
  shuffle?: boolean;
  /** Seed of the order and of every augmentation draw (default 0). */
  seed?: number;
  /** Drop the last, incomplete batch of an epoch (default false). */
  dropLast?: boolean;
  /** Batches prepared ahead (default 2; at least 1). */
  prefetch?: number;
  /** Worker threads (default 0: prepare on this thread, asynchronously). */
  workers?: number;
  /** Use only `limit` images of the dataset (default all); which ones: `limitSample`. */
  limit?: number;
  /**
   * Which images `limit` keeps: `"first"` (default) the first `limit`;
   * `"stratified"` a sample seeded by `seed`, spread over the classes in
   * proportion to their sizes (see `limit_sample.ts`; datasets whose labels
   * need their images decoded, synthetic scenes, keep the first).
   */
  limitSample?: "first" | "stratified";
}

// Defined apart so that the batch assembly can raise it; still exported
// here.
export { LoaderError } from "./loader_error.ts";
export {
  labelsAreCheap,
  type LimitSample,
  limitSample,
} from "./limit_sample.ts";

function checkOptions(o: LoaderOptions): Required<LoaderOptions> {
  const int = (v: unknown, name: string, min: number) => {
    if (typeof v !== "number" || !Number.isInteger(v) || v < min) {
      throw new LoaderError(
        `DataLoader: expected ${name} to be an integer >= ${min}, found ${
          String(v)
        }`,
      );
    }
    return v;
  };
  return {
    batchSize: int(o.batchSize, "batchSize", 1),
    shuffle: o.shuffle ?? true,
    seed: int(o.seed ?? 0, "seed", 0),
    dropLast: o.dropLast ?? false,
    prefetch: int(o.prefetch ?? 2, "prefetch", 1),
    workers: int(o.workers ?? 0, "workers", 0),
    limit: int(o.limit ?? Number.MAX_SAFE_INTEGER, "limit", 1),
    limitSample: oneOf(
      o.limitSample ?? "first",
      "limitSample",
      [
        "first",
        "stratified",
      ] as const,
    ),
  };
}

function oneOf<T extends string>(
  v: unknown,
  name: string,
  values: readonly T[],
): T {
  if (!values.includes(v as T)) {
    throw new LoaderError(
      `DataLoader: expected ${name} to be one of ${
        values.map((x) => JSON.stringify(x)).join(", ")
      }, found ${JSON.stringify(v)}`,
    );
  }
  return v as T;
}

type WorkerReply =
  | { id: number; ok: true; body: BatchBody }
  | { id: number; ok: false; message: string; name: string }
  | { ready: true; ok: true }
  | { ready: true; ok: false; message: string };

/** A pool of Deno workers that each open the same pipeline. */
class WorkerPool {
  #workers: Worker[] = [];
  #pending = new Map<
    number,
    { resolve: (b: BatchBody) => void; reject: (e: Error) => void }
  >();
  #next = 0;
  #id = 0;

  static async start(
    spec: PipelineSpec,
    n: number,
    seed: number,
  ): Promise<WorkerPool> {
    const pool = new WorkerPool();
    const url = new URL("./_loader_worker.ts", import.meta.url).href;
    const ready: Promise<void>[] = [];
    for (let w = 0; w < n; w++) {
      const worker = new Worker(url, { type: "module" });
      pool.#workers.push(worker);
      ready.push(
        new Promise<void>((resolve, reject) => {
          worker.onmessage = (ev: MessageEvent<WorkerReply>) => {
            const m = ev.data;
            if ("ready" in m) {
              if (m.ok) resolve();
              else reject(new LoaderError(`loader worker: ${m.message}`));
              return;
            }
            const p = pool.#pending.get(m.id);
            if (!p) return;
            pool.#pending.delete(m.id);
            if (m.ok) p.resolve(m.body);
            else {
              const e = new LoaderError(m.message);
              p.reject(e);
            }
          };
          worker.onerror = (ev) => {
            ev.preventDefault();
            const e = new LoaderError(`loader worker crashed: ${ev.message}`);
            reject(e);
            for (const p of pool.#pending.values()) p.reject(e);
            pool.#pending.clear();
          };
        }),
      );
      worker.postMessage({ init: { spec, seed } });
    }
    try {
      await Promise.all(ready);
    } catch (e) {
      pool.close();
      throw e;
    }
    return pool;
  }

  run(req: BatchRequest): Promise<BatchBody> {
    const id = this.#id++;
    const worker = this.#workers[this.#next];
    this.#next = (this.#next + 1) % this.#workers.length;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      worker.postMessage({ id, req });
    });
  }

  close(): void {
    for (const w of this.#workers) w.terminate();
    this.#workers = [];
    for (const p of this.#pending.values()) {
      p.reject(new LoaderError("the loader was closed"));
    }
    this.#pending.clear();
  }
}

/**
 * Seeded, prefetching batches over a {@linkcode SamplePipeline}.
 *
 * @example
 * ```ts
 * import { DataLoader } from "tokenlab/data/loader.ts";
 * const loader = await DataLoader.open(
 *   { data: { kind: "synthetic", options: { size: 32, count: 12 } }, transform: { kind: "eval", size: 32, cropPct: 1 } },
 *   { batchSize: 4, seed: 1 },
 * );
 * for await (const batch of loader.epoch(0)) console.log(batch.step, batch.size, batch.labels);
 * loader.close();
 * ```
 */
export class DataLoader {
  /** The pipeline (on this thread) that prepares samples. */
  readonly pipeline: SamplePipeline;
  /** The options in force, defaults filled in. */
  readonly options: Readonly<Required<LoaderOptions>>;
  #pool: WorkerPool | null;
  /** The images `limit` keeps (null: the first `size`, or all). */
  readonly limited: LimitSample | null;
  #closed = false;
  #skippedTotal = 0;

  private constructor(
    pipeline: SamplePipeline,
    options: Required<LoaderOptions>,
    pool: WorkerPool | null,
  ) {
    this.pipeline = pipeline;
    this.options = options;
    this.#pool = pool;
    this.limited = options.limitSample === "stratified"
      ? limitSample(pipeline.dataset, options.limit, options.seed)
      : null;
  }

  /** Opens the pipeline described by `spec` (and `workers` copies of it in workers). */
  static async open(
    spec: PipelineSpec,
    options: LoaderOptions,
  ): Promise<DataLoader> {
    const o = checkOptions(options);
    const pipeline = await SamplePipeline.open(spec);
    let pool: WorkerPool | null = null;
    if (o.workers > 0) {
      try {
        pool = await WorkerPool.start(spec, o.workers, o.seed);
      } catch (e) {
        pipeline.close();
        throw e;
      }
    }
    return new DataLoader(pipeline, o, pool);
  }

  /**
   * A loader over a pipeline already open on this thread (a dataset object
   * the caller built). Such a pipeline cannot be sent to workers: `workers`
   * must be 0 (open from a {@linkcode PipelineSpec} for workers).
   */
  static fromPipeline(
    pipeline: SamplePipeline,
    options: LoaderOptions,
  ): DataLoader {
    const o = checkOptions(options);
    if (o.workers > 0) {
      throw new LoaderError(
        `DataLoader.fromPipeline: workers ${o.workers} needs a pipeline that can be reopened in a worker; open the loader with DataLoader.open(spec, ...) instead, or set workers: 0`,
      );
    }
    return new DataLoader(pipeline, o, null);
  }

  /** Images used per epoch (the dataset size, or `limit`). */
  get size(): number {
    return Math.min(this.pipeline.size, this.options.limit);
  }

  /** Batches per epoch. */
  get stepsPerEpoch(): number {
    const { batchSize, dropLast } = this.options;
    return dropLast
      ? Math.floor(this.size / batchSize)
      : Math.ceil(this.size / batchSize);
  }

  /** Files skipped so far (with `onBadImage: "skip"`). */
  get skippedCount(): number {
    return this.#skippedTotal;
  }

  /** The dataset indices of epoch `epoch`, in the order they are served. */
  order(epoch: number): Int32Array {
    const n = this.size;
    const order = this.options.shuffle
      ? seededPermutation(n, Rng.derive(this.options.seed, epoch, -1))
      : Int32Array.from({ length: n }, (_, i) => i);
    // The kept images in that order: Fisher-Yates swaps positions alike
    // whatever they hold, so this is the kept list shuffled by the same draws.
    const kept = this.limited?.indices;
    return kept === undefined ? order : order.map((i) => kept[i]);
  }

  #requests(epoch: number, fromStep: number): BatchRequest[] {
    const order = this.order(epoch);
    const { batchSize } = this.options;
    const out: BatchRequest[] = [];
    for (let step = fromStep; step < this.stepsPerEpoch; step++) {
      const idx = Array.from(
        order.subarray(step * batchSize, (step + 1) * batchSize),
      );
      out.push({ epoch, step, indices: idx });
    }
    return out;
  }

  #run(req: BatchRequest): Promise<BatchBody> {
    return this.#pool
      ? this.#pool.run(req)
      : prepareBatch(this.pipeline, req, this.options.seed);
  }

  /**
   * The batches of epoch `epoch` (from `fromStep`, to resume mid-epoch),
   * `prefetch` of them in preparation while the caller works on the current
   * one.
   */
  async *epoch(epoch: number, fromStep = 0): AsyncGenerator<Batch> {
    if (this.#closed) throw new LoaderError("the loader is closed");
    if (!Number.isInteger(epoch) || epoch < 0) {
      throw new LoaderError(
        `expected epoch to be an integer >= 0, found ${epoch}`,
      );
    }
    const reqs = this.#requests(epoch, fromStep);
    const inFlight: Promise<BatchBody>[] = [];
    // Settled promises that nobody awaits must not surface as unhandled.
    const track = (p: Promise<BatchBody>) => {
      p.catch(() => {});
      return p;
    };
    let next = 0;
    const { prefetch } = this.options;
    const norm = this.pipeline.normalization;
    try {
      while (next < reqs.length && inFlight.length < prefetch) {
        inFlight.push(track(this.#run(reqs[next++])));
      }
      for (let s = 0; s < reqs.length; s++) {
        const body = await inFlight.shift()!;
        if (next < reqs.length) inFlight.push(track(this.#run(reqs[next++])));
        if (body.skipped.length > 0) {
          this.#skippedTotal += body.skipped.length;
          for (const f of body.skipped) {
            console.warn(
              `warning: skipped an unreadable image: ${f} (${this.#skippedTotal} skipped so far)`,
            );
          }
        }
        yield {
          ...body,
          epoch,
          step: reqs[s].step,
          normalization: norm,
          classes: this.pipeline.dataset.classes,
        };
      }
    } finally {
      // Let abandoned batches finish quietly (their errors are tracked).
      await Promise.allSettled(inFlight);
    }
  }

  /** Stops the workers and closes the score-map store. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#pool?.close();
    this.#pool = null;
    this.pipeline.close();
  }

  /** `using loader = ...` support. */
  [Symbol.dispose](): void {
    this.close();
  }
}
