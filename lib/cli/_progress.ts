/**
 * A progress line for long commands: a bar with items per second and the
 * time left, redrawn in place on a terminal, printed every few seconds as
 * plain lines elsewhere (CI logs).
 *
 * @module
 */

import { formatDuration } from "../_duration.ts";

/** Options of {@linkcode Progress}. */
export interface ProgressOptions {
  /** What is counted ("images"). */
  unit?: string;
  /** Where to write (default stderr). */
  write?: (text: string) => void;
  /** Redraw in place (default: stderr is a terminal). */
  inPlace?: boolean;
  /** Seconds between plain lines when not in place (default 5). */
  every?: number;
  /** Clock in milliseconds (tests). */
  now?: () => number;
}

/** Counts work done against a total and reports the rate. */
export class Progress {
  #label: string;
  #total: number;
  #done: number;
  #startDone: number;
  #start: number;
  #lastPrint = -Infinity;
  #opts: Required<Omit<ProgressOptions, "write">> & {
    write: (t: string) => void;
  };

  /** Starts counting; `done` is what was finished before (a resumed run). */
  constructor(
    label: string,
    total: number,
    done = 0,
    options: ProgressOptions = {},
  ) {
    const enc = new TextEncoder();
    this.#label = label;
    this.#total = total;
    this.#done = done;
    this.#startDone = done;
    this.#opts = {
      unit: options.unit ?? "items",
      write: options.write ??
        ((t: string) => Deno.stderr.writeSync(enc.encode(t))),
      inPlace: options.inPlace ?? Deno.stderr.isTerminal(),
      every: options.every ?? 5,
      now: options.now ?? (() => performance.now()),
    };
    this.#start = this.#opts.now();
  }

  /** Items per second since this run started (resumed items not counted). */
  get rate(): number {
    const dt = (this.#opts.now() - this.#start) / 1000;
    return dt > 0 ? (this.#done - this.#startDone) / dt : 0;
  }

  /** The current line. */
  line(): string {
    const frac = this.#total > 0 ? this.#done / this.#total : 1;
    const width = 24, full = Math.round(frac * width);
    const bar = "=".repeat(Math.max(0, full - 1)) + (full > 0 ? ">" : "") +
      " ".repeat(width - full);
    const rate = this.rate;
    const left = rate > 0 ? (this.#total - this.#done) / rate : Infinity;
    return `${this.#label} [${bar}] ${this.#done}/${this.#total} ${
      (frac * 100).toFixed(1)
    }% ${rate.toFixed(1)} ${this.#opts.unit}/s, ${formatDuration(left)} left`;
  }

  /** Adds finished items and redraws when due. */
  advance(n: number): void {
    this.#done += n;
    const t = this.#opts.now();
    if (this.#opts.inPlace) {
      this.#opts.write(`\r${this.line()}\x1b[K`);
    } else if (t - this.#lastPrint >= this.#opts.every * 1000) {
      this.#lastPrint = t;
      this.#opts.write(`${this.line()}\n`);
    }
  }

  /** Prints the final line. */
  finish(): void {
    const line = this.line();
    this.#opts.write(this.#opts.inPlace ? `\r${line}\x1b[K\n` : `${line}\n`);
  }
}

/**
 * The `onProgress(done, total)` reports of a library call, drawn as a
 * {@linkcode Progress} from the first report on. `firstReport` says what
 * the first report's `done` is: `"before-work"`, what was finished before
 * this run (the bar starts there, and its rate leaves it out), or
 * `"after-work"`, work of this run (the bar starts at 0).
 */
export class ProgressReports {
  /** Whether a report has come: the library call has started its work. */
  started = false;
  #progress: Progress | null = null;
  #last = 0;
  #label: string;
  #unit: string;
  #firstReport: "before-work" | "after-work";

  /** Draws nothing until the first report. */
  constructor(
    label: string,
    unit: string,
    firstReport: "before-work" | "after-work",
  ) {
    this.#label = label;
    this.#unit = unit;
    this.#firstReport = firstReport;
  }

  /** The callback to give the library call. */
  readonly report = (done: number, total: number): void => {
    this.started = true;
    if (this.#progress === null) {
      if (this.#firstReport === "before-work") this.#last = done;
      this.#progress = new Progress(this.#label, total, this.#last, {
        unit: this.#unit,
      });
    }
    this.#progress.advance(done - this.#last);
    this.#last = done;
  };

  /** Prints the final line, when a report came. */
  finish(): void {
    this.#progress?.finish();
  }
}
