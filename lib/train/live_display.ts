/**
 * A notebook output that a training run updates in place: created on the
 * first update, replaced (throttled) while the run goes, and replaced by
 * the final bundle when it ends.
 *
 * @module
 */

import { liveBundle, type LiveState } from "./live_view.ts";

/** What {@linkcode LiveDisplay} calls to show a bundle (by default `Deno.jupyter.display`). */
export type DisplayFunction = (
  bundle: Record<string, unknown>,
  options: { raw: true; display_id: string; update: boolean },
) => Promise<void>;

/** Options of {@linkcode LiveDisplay}. */
export interface LiveDisplayOptions {
  /** Least milliseconds between two updates that are not forced (default 500). */
  minIntervalMs?: number;
  /** The clock in milliseconds (default `Date.now`). */
  now?: () => number;
  /**
   * Shows a bundle (default: `Deno.jupyter.display` inside a Jupyter
   * kernel; outside one, nothing is shown).
   */
  display?: DisplayFunction;
}

let displayCount = 0;

function _jupyterDisplay(): DisplayFunction | undefined {
  if (!LiveDisplay.available()) return undefined;
  return (bundle, options) => Deno.jupyter.display(bundle, options);
}

/**
 * A notebook output that a training run updates in place: the first
 * {@linkcode LiveDisplay.update} creates it, later ones replace it (at most
 * once every `minIntervalMs`, unless forced or the run is no longer
 * running), and {@linkcode LiveDisplay.finish} replaces it with the final
 * bundle. Outside Jupyter (and without a `display` option) it does nothing.
 *
 * @example
 * ```ts
 * import { liveBundle } from "tokenlab/train/live_view.ts";
 * import { LiveDisplay } from "tokenlab/train/live_display.ts";
 * const shown: boolean[] = [];
 * const live = new LiveDisplay({ display: async (_b, o) => { shown.push(o.update); } });
 * const state = {
 *   title: "demo", epoch: 0, epochs: 1, step: 1, steps: 2, loss: 2.3, lr: 1e-3,
 *   imagesPerSecond: 100, etaSeconds: 1, status: "running" as const,
 * };
 * await live.update(state);
 * await live.finish(liveBundle({ ...state, step: 2, status: "done" }));
 * console.log(live.id, shown); // [false, true]
 * ```
 */
export class LiveDisplay {
  /** The Jupyter display id of the output. */
  readonly id: string;
  readonly #display: DisplayFunction | undefined;
  readonly #now: () => number;
  readonly #minIntervalMs: number;
  #created = false;
  #lastShown = -Infinity;

  /** A live output; nothing is shown until the first update. */
  constructor(options: LiveDisplayOptions = {}) {
    const { minIntervalMs = 500, now = Date.now } = options;
    if (!(minIntervalMs >= 0)) {
      throw new RangeError(
        `LiveDisplay: minIntervalMs must be a number of milliseconds >= 0, found ${minIntervalMs}`,
      );
    }
    this.#minIntervalMs = minIntervalMs;
    this.#now = now;
    this.#display = options.display ?? _jupyterDisplay();
    this.id = `tokenlab-train-${++displayCount}-${
      Math.floor(now()).toString(36)
    }`;
  }

  /**
   * True inside a Jupyter kernel (where `Deno.jupyter.display` exists);
   * never throws elsewhere.
   */
  static available(): boolean {
    try {
      return typeof Deno.jupyter?.display === "function";
    } catch {
      // Outside `deno jupyter`, reading Deno.jupyter throws.
      return false;
    }
  }

  /**
   * Shows the state: creates the output on the first call, replaces it
   * afterwards. A call within `minIntervalMs` of the last one shown is
   * skipped unless `force` is set or the status is not "running".
   */
  async update(state: LiveState, force = false): Promise<void> {
    if (!this.#display) return;
    const now = this.#now();
    if (
      this.#created && !force && state.status === "running" &&
      now - this.#lastShown < this.#minIntervalMs
    ) return;
    await this.#show(liveBundle(state), now);
  }

  /**
   * Replaces the live output with a final bundle (for example the
   * training figure); creates the output when nothing was shown yet.
   */
  async finish(bundle: Record<string, unknown>): Promise<void> {
    if (!this.#display) return;
    await this.#show(bundle, this.#now());
  }

  async #show(bundle: Record<string, unknown>, now: number): Promise<void> {
    const update = this.#created;
    // Marked before the await so that a concurrent call is throttled too.
    this.#created = true;
    this.#lastShown = now;
    await this.#display!(bundle, { raw: true, display_id: this.id, update });
  }
}
