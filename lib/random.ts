/**
 * The explicit seeded generator every random choice of the kit goes through
 * (weight initialisation, drop path, MixToken boxes, data order). The same
 * seed gives the same sequence on every machine and backend: the numbers are
 * drawn in JavaScript, never from a backend's own random kernels.
 *
 * @module
 */

/**
 * A small, fast, seeded pseudo-random generator (sfc32, seeded through
 * splitmix32), with the distributions the kit needs.
 *
 * @example
 * ```ts
 * import { Rng } from "tokenlab";
 * const a = new Rng(42), b = new Rng(42);
 * console.assert(a.float() === b.float());
 * console.log(a.int(10), a.normal(), a.beta(1, 1));
 * ```
 */
export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;
  #spare: number | null = null;

  /** Starts a generator from an integer seed (any 32-bit value). */
  constructor(seed: number) {
    if (!Number.isFinite(seed)) {
      throw new RangeError(
        `Rng seed must be a finite number, found ${seed}; pass an integer such as 0`,
      );
    }
    let s = Math.trunc(seed) >>> 0;
    const mix = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.#a = mix();
    this.#b = mix();
    this.#c = mix();
    this.#d = mix();
    for (let i = 0; i < 12; i++) this.uint32();
  }

  /**
   * A generator keyed by a seed and a path of integers (for example seed,
   * epoch, sample index): the same key always gives the same stream, and
   * different keys give independent streams. What lets a data pipeline draw
   * each sample's augmentation the same way whichever worker or order it is
   * processed in.
   *
   * @example
   * ```ts
   * import { Rng } from "tokenlab";
   * const a = Rng.derive(7, 0, 12), b = Rng.derive(7, 0, 12);
   * console.assert(a.float() === b.float());
   * ```
   */
  static derive(seed: number, ...path: number[]): Rng {
    let h = new Rng(seed).uint32();
    for (const p of path) {
      if (!Number.isFinite(p)) {
        throw new RangeError(
          `Rng.derive: key parts must be finite integers, found ${p}`,
        );
      }
      // Fold each part in with a full avalanche so that nearby keys
      // (index 1, 2, 3) seed unrelated streams.
      h = new Rng(
        (h ^ Math.imul((Math.trunc(p) >>> 0) + 0x6a09e667, 0x9e3779b1)) >>> 0,
      ).uint32();
    }
    return new Rng(h);
  }

  /** The next 32-bit unsigned integer. */
  uint32(): number {
    const t = (((this.#a + this.#b) >>> 0) + this.#d) >>> 0;
    this.#d = (this.#d + 1) >>> 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) >>> 0;
    this.#c = ((this.#c << 21) | (this.#c >>> 11)) >>> 0;
    this.#c = (this.#c + t) >>> 0;
    return t;
  }

  /** A float uniform in [0, 1) with 53 random bits. */
  float(): number {
    const hi = this.uint32() >>> 5, lo = this.uint32() >>> 6;
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** An integer uniform in [0, n) (n a positive integer below 2^32). */
  int(n: number): number {
    if (!(Number.isInteger(n) && n > 0 && n <= 4294967296)) {
      throw new RangeError(
        `Rng.int needs a positive integer bound up to 2^32, found ${n}`,
      );
    }
    // Rejection sampling: no modulo bias.
    const limit = 4294967296 - (4294967296 % n);
    for (;;) {
      const u = this.uint32();
      if (u < limit) return u % n;
    }
  }

  /** A standard normal draw (Box-Muller, both values used). */
  normal(): number {
    if (this.#spare !== null) {
      const v = this.#spare;
      this.#spare = null;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.float();
    const v = this.float();
    const r = Math.sqrt(-2 * Math.log(u));
    this.#spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /**
   * A draw from N(mean, std^2) conditioned on [lo, hi] (absolute bounds, as
   * timm's `trunc_normal_`, whose defaults are -2 and 2).
   */
  truncNormal(mean: number, std: number, lo = -2, hi = 2): number {
    if (!(lo < hi) || !(mean + 6 * std > lo && mean - 6 * std < hi)) {
      throw new RangeError(
        `truncNormal: the interval [${lo}, ${hi}] holds almost none of N(${mean}, ${std}^2); widen it`,
      );
    }
    for (;;) {
      const v = mean + std * this.normal();
      if (v >= lo && v <= hi) return v;
    }
  }

  /** A Gamma(shape, 1) draw (Marsaglia and Tsang). */
  gamma(shape: number): number {
    if (!(shape > 0)) {
      throw new RangeError(`gamma shape must be > 0, found ${shape}`);
    }
    if (shape < 1) {
      const u = this.float();
      return this.gamma(shape + 1) * Math.pow(u === 0 ? 1e-300 : u, 1 / shape);
    }
    const d = shape - 1 / 3, c = 1 / Math.sqrt(9 * d);
    for (;;) {
      let x: number, v: number;
      do {
        x = this.normal();
        v = 1 + c * x;
      } while (v <= 0);
      v = v * v * v;
      const u = this.float();
      if (u < 1 - 0.0331 * x * x * x * x) return d * v;
      if (Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
    }
  }

  /** A Beta(a, b) draw (Beta(1, 1) is uniform on [0, 1]). */
  beta(a: number, b: number): number {
    const x = this.gamma(a), y = this.gamma(b);
    return x / (x + y);
  }

  /** A new generator seeded from this one (for an independent stream). */
  fork(): Rng {
    return new Rng(this.uint32());
  }
}
