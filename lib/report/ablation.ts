/**
 * Ablations as data: a grid of arms (configs) x seeds, each cell run once
 * through {@linkcode experiment} (so re-rendering a report does not retrain
 * and full-scale results can be frozen), then shown as one table (mean ± std
 * per arm, the paired difference to the baseline with its 95% interval, the
 * published effect and the verdict), an effect figure, learning curves and a
 * generated verdict paragraph. A report notebook is prose, the grid, one
 * call, and what the returned {@linkcode Ablation} shows.
 *
 * @module
 */

import { formatDuration } from "../_duration.ts";
import { CLASS_PALETTE } from "../view/palette.ts";
import {
  experiment,
  type ExperimentOptions,
  type ExperimentResult,
} from "./cache.ts";
import * as fields from "../io/json_fields.ts";
import { type PairedDifference, pairedDifference } from "./paired.ts";
import { type Plot, plot } from "./plot.ts";
import { type CellValue, meanStd, type ResultTable, table } from "./table.ts";
import { formatEffect, signed, type Verdict, verdictOf } from "./verdict.ts";
import { TokenlabError } from "../errors.ts";
import { experimentKindOf } from "./experiment_kind_tag.ts";
import { PlanPendingError } from "./plan_mode.ts";
import { pendingAblation } from "./pending_result.ts";

/** What the published literature says about one arm. */
export interface PublishedFigure {
  /** The published metric of this arm (e.g. ImageNet top-1), when known. */
  value?: number;
  /**
   * The published effect of this arm against the ablation's baseline, in
   * points. Default: `value` minus the baseline arm's published `value`,
   * when both are known.
   */
  effect?: number;
  /** Where the figure comes from ("LV-ViT paper, Table 6"; "TL-Align README"). */
  source: string;
}

/** One arm of an ablation: a config run over every seed. */
export interface AblationArm<C> {
  /** Short id, part of the experiment's cache name: letters, digits, "-". */
  key: string;
  /** What the table calls it. */
  label: string;
  /** The arm's config: JSON data, handed to `run` and part of the cache key. */
  config: C;
  /** The published figure for this arm, if any (never invent one). */
  published?: PublishedFigure;
  /**
   * The arm this one is compared with (default the ablation's baseline):
   * for grids of pairs, such as each backbone with and without token labels.
   */
  against?: string;
  /** A reference row (another arm's `against`): shown, compared with nothing. */
  reference?: boolean;
}

/** One evaluation point of a learning curve. */
export interface CurvePoint {
  /** Epoch (1-based: after the first epoch is 1). */
  epoch: number;
  /** The metric at that epoch. */
  value: number;
}

/** What one (arm, seed) run returns: JSON data. */
export interface ArmResult {
  /** The final metric (top-1 in percent unless the ablation says otherwise). */
  value: number;
  /** The metric after each evaluated epoch. */
  curve?: CurvePoint[];
  /** Seconds the run took. */
  seconds?: number;
  /** Other numbers worth a column (EMA top-1, the annotator's top-1...). */
  extra?: Record<string, number>;
}

/** The fixed facts of an ablation's protocol, shown with its results. */
export interface AblationSetting {
  /** The dataset ("synthetic scenes, 32 px, 10 classes"; "MNIST (real digits)"). */
  dataset: string;
  /** Whether the images are real (not synthetic). */
  real: boolean;
  /** The model (and its size). */
  model: string;
  /** Training epochs. */
  epochs: number;
  /** The report's scale ("tiny", "smoke", "full"). */
  scale: string;
  /** Training images. */
  trainImages?: number;
  /** Validation images. */
  valImages?: number;
}

/** Options of {@linkcode runAblation}. */
export interface AblationOptions<C> {
  /** The ablation's name: the prefix of its experiments' cache names. */
  name: string;
  /** The arms, in display order. */
  arms: readonly AblationArm<C>[];
  /** The key of the arm every other arm is compared with. */
  baseline: string;
  /** Seeds: every arm runs every seed (the same seeds pair the runs). */
  seeds: readonly number[];
  /** Runs one arm at one seed (called only when no stored result exists). */
  run: (config: C, seed: number, context: ArmRunContext) => Promise<ArmResult>;
  /**
   * The registered experiment kind of `run` (lib/report/experiment_kinds.ts),
   * so that `tokenlab experiments run KEY` and `tokenlab sweep` can compute
   * its experiments by key. Default: the kind `run` is tagged with
   * (`run: trainArm` is "train-arm"); a closure has none, and its
   * experiments run only in the report.
   */
  kind?: string;
  /** Config shared by every arm (data, epochs, model): part of every cache key. */
  common?: unknown;
  /** The protocol, for the table notes and the setting line. */
  setting: AblationSetting;
  /** The metric's name (default "top-1") and unit (default "%"). */
  metric?: { label: string; unit: string };
  /** Extra columns from `ArmResult.extra`, by key, with their labels. */
  extraColumns?: readonly { key: string; label: string; unit?: string }[];
  /**
   * Where results are cached and frozen, and refresh/freeze (default: the
   * report's). A stored result is first checked to be an
   * {@linkcode ArmResult} (a bad one is damage: a cache entry is recomputed,
   * a frozen one refused); a `check` given here runs after that.
   */
  experimentOptions?: ExperimentOptions;
  /** Called before each (arm, seed) is looked up or run. */
  onProgress?: (arm: string, seed: number, done: number, total: number) => void;
}

/** What `run` gets besides the arm's config and the seed. */
export interface ArmRunContext {
  /** A folder of the run's own under the results cache, for checkpoints (resumed when it holds a run). */
  runDir: string;
}

/** One arm's results over the seeds. */
export interface ArmOutcome<C> {
  /** The arm as given. */
  arm: AblationArm<C>;
  /** The result of each seed, by seed. */
  bySeed: Map<number, ArmResult>;
  /** Where each seed's result came from (computed, cache, frozen). */
  sources: Map<number, ExperimentResult<ArmResult>>;
}

/** Where an {@linkcode AblationError} was found, when it is one file's field or one result's. */
export interface AblationErrorOptions {
  /** The file (its path): an annotator's `result.json` or weights. */
  file?: string;
  /** The field of that file, or of an arm's result (`curve[2].value`). */
  field?: string;
}

/**
 * Raised for an ablation definition that cannot run, an arm's result that
 * is not an {@linkcode ArmResult}, or a damaged annotator; `file` and
 * `field` say where, when it is one field of one file or result.
 *
 * @example
 * ```ts
 * import { AblationError } from "tokenlab";
 * const e = new AblationError("arm \"tl\" at seed 1: field value: ...", {
 *   field: "value",
 * });
 * console.log(e.file, e.field); // undefined value
 * ```
 */
export class AblationError extends TokenlabError {
  /** The file at fault, when one is. */
  readonly file?: string;
  /** Its field at fault (or the result's), when one is. */
  readonly field?: string;
  /** Creates the error with its message and where it was found. */
  constructor(message: string, options: AblationErrorOptions = {}) {
    super(message);
    this.file = options.file;
    this.field = options.field;
  }
}

const KEY = /^[A-Za-z0-9][A-Za-z0-9-]{0,39}$/;

function checkOptions<C>(o: AblationOptions<C>): void {
  if (!Array.isArray(o.arms) || o.arms.length === 0) {
    throw new AblationError(
      `an ablation needs at least one arm, found ${
        Array.isArray(o.arms) ? "none" : typeof o.arms
      }; give arms as [{ key, label, config }, ...]`,
    );
  }
  const seen = new Set<string>();
  for (const a of o.arms) {
    if (!KEY.test(a.key)) {
      throw new AblationError(
        `arm key ${
          JSON.stringify(a.key)
        } is not usable in a cache name: expected letters, digits and "-" (at most 40)`,
      );
    }
    if (a.against !== undefined && !o.arms.some((b) => b.key === a.against)) {
      throw new AblationError(
        `arm "${a.key}" is compared against "${a.against}", which is not an arm; expected one of ${
          o.arms.map((b) => b.key).join(", ")
        }`,
      );
    }
    if (seen.has(a.key)) {
      throw new AblationError(
        `arm key "${a.key}" is used twice; each arm needs its own key`,
      );
    }
    seen.add(a.key);
  }
  if (!seen.has(o.baseline)) {
    throw new AblationError(
      `the baseline "${o.baseline}" is not an arm; expected one of ${
        [...seen].join(", ")
      }`,
    );
  }
  if (
    !Array.isArray(o.seeds) || o.seeds.length === 0 ||
    o.seeds.some((s) => !Number.isInteger(s)) ||
    new Set(o.seeds).size !== o.seeds.length
  ) {
    throw new AblationError(
      `seeds must be distinct whole numbers, found ${
        JSON.stringify(o.seeds)
      }; give at least 3 for a reported result`,
    );
  }
}

/**
 * Runs (or reads back) every arm at every seed and returns the
 * {@linkcode Ablation}. Each (arm, seed) is one experiment named
 * `<name>-<arm key>`, keyed by `{ common, arm config, seed }` and the code's
 * version; `--refresh` recomputes, `--freeze` stores it for CI.
 *
 * @example
 * ```ts
 * import { runAblation } from "tokenlab";
 * const dir = await Deno.makeTempDir();
 * const ab = await runAblation({
 *   name: "doc-example",
 *   arms: [
 *     { key: "base", label: "baseline", config: { gain: 0 } },
 *     { key: "better", label: "better", config: { gain: 2 }, published: { effect: 1.5, source: "a paper" } },
 *   ],
 *   baseline: "base",
 *   seeds: [1, 2, 3],
 *   run: (c, seed) => Promise.resolve({ value: 60 + c.gain + (seed % 2) * 0.3 * c.gain }),
 *   setting: { dataset: "none", real: false, model: "none", epochs: 0, scale: "tiny" },
 *   experimentOptions: { cacheDir: dir, frozenDir: dir },
 * });
 * console.log(ab.verdict("better").kind); // reproduced
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function runAblation<C>(
  options: AblationOptions<C>,
): Promise<Ablation<C>> {
  checkOptions(options);
  // A stored result that is no ArmResult is damage, like a file that fails
  // its own checks; a check the caller gives runs after it.
  const own = options.experimentOptions?.check;
  const check = (v: unknown) => {
    checkArmResult(v);
    own?.(v);
  };
  const outcomes: ArmOutcome<C>[] = [];
  const kind = options.kind ?? experimentKindOf(options.run);
  const pending: PlanPendingError[] = [];
  const total = options.arms.length * options.seeds.length;
  let done = 0;
  // Seed-major order: a partial (interrupted) run has every arm at the
  // first seeds, which is what a paired comparison needs.
  const byKey = new Map<string, ArmOutcome<C>>();
  for (const arm of options.arms) {
    const o = { arm, bySeed: new Map(), sources: new Map() };
    outcomes.push(o);
    byKey.set(arm.key, o);
  }
  for (const seed of options.seeds) {
    for (const arm of options.arms) {
      options.onProgress?.(arm.key, seed, done, total);
      let r: ExperimentResult<ArmResult>;
      try {
        r = await experiment<ArmResult>(
          `${options.name}-${arm.key}`,
          { common: options.common ?? null, arm: arm.config, seed },
          ({ runDir }) => options.run(arm.config, seed, { runDir }),
          { kind, ...options.experimentOptions, check },
        );
      } catch (e) {
        // Plan mode: every arm x seed is listed before any value is needed.
        if (!(e instanceof PlanPendingError)) throw e;
        pending.push(e);
        done++;
        continue;
      }
      checkResult(r.value, arm.key, seed);
      const o = byKey.get(arm.key)!;
      o.bySeed.set(seed, r.value);
      o.sources.set(seed, r);
      done++;
    }
  }
  if (pending.length > 0) return pendingAblation<Ablation<C>>(pending);
  return new Ablation(options, outcomes);
}

/**
 * Checks that a value is an {@linkcode ArmResult}: a finite `value`; a
 * `curve` of `{ epoch, value }` points (an integer epoch >= 0, a finite
 * value), `seconds` a finite number >= 0 and `extra` an object of finite
 * numbers, when present. Other fields are left as they are.
 *
 * @throws {FieldProblem} naming the first field that is not
 */
function checkArmResult(r: unknown): ArmResult {
  if (!fields.isPlainObject(r)) {
    fields.fieldProblem(
      "(result)",
      "an object { value, curve?, seconds?, extra? }",
      r,
    );
  }
  fields.finiteField(r.value, "value");
  if (r.curve !== undefined) {
    if (!Array.isArray(r.curve)) {
      fields.fieldProblem(
        "curve",
        "an array of { epoch, value } points",
        r.curve,
      );
    }
    r.curve.forEach((p, i) => {
      const at = `curve[${i}]`;
      const o = fields.objectFields(p, at, {
        required: ["epoch", "value"],
        expected: "a point { epoch, value }",
      });
      fields.integerField(o.epoch, `${at}.epoch`, { min: 0 });
      fields.finiteField(o.value, `${at}.value`);
    });
  }
  if (r.seconds !== undefined) {
    fields.finiteField(r.seconds, "seconds", { min: 0 });
  }
  if (r.extra !== undefined) {
    if (!fields.isPlainObject(r.extra)) {
      fields.fieldProblem("extra", "an object of numbers", r.extra);
    }
    for (const [k, x] of Object.entries(r.extra)) {
      fields.finiteField(x, fields.fieldName("extra", k));
    }
  }
  return r as unknown as ArmResult;
}

/** {@linkcode checkArmResult} for a result `run` returned: its problem as an {@linkcode AblationError}. */
function checkResult(r: unknown, arm: string, seed: number): void {
  try {
    checkArmResult(r);
  } catch (e) {
    if (!(e instanceof fields.FieldProblem)) throw e;
    throw new AblationError(
      `arm "${arm}" at seed ${seed} returned a result whose ${e.message}; run must return { value: number, curve?: { epoch, value }[], seconds?: number, extra?: Record<string, number> }`,
      { field: e.field },
    );
  }
}

// Arm colours: the first arm (the reference) grey, then the class palette's
// first ten colours in their order, cyan before olive.
const PALETTE = [7, 0, 1, 2, 3, 4, 5, 6, 9, 8].map((i) => CLASS_PALETTE[i]);

/** The results of an ablation: table, figures, verdicts, headline. */
export class Ablation<C> {
  /** Every arm's outcome, in display order. */
  readonly outcomes: readonly ArmOutcome<C>[];
  readonly #o: AblationOptions<C>;

  /** Wraps the outcomes (made by {@linkcode runAblation}). */
  constructor(
    options: AblationOptions<C>,
    outcomes: readonly ArmOutcome<C>[],
  ) {
    this.#o = options;
    this.outcomes = outcomes;
  }

  /** The ablation's options. */
  get options(): AblationOptions<C> {
    return this.#o;
  }

  /** The seeds. */
  get seeds(): readonly number[] {
    return this.#o.seeds;
  }

  #outcome(key: string): ArmOutcome<C> {
    const o = this.outcomes.find((x) => x.arm.key === key);
    if (!o) {
      throw new AblationError(
        `no arm "${key}"; the arms are ${
          this.outcomes.map((x) => x.arm.key).join(", ")
        }`,
      );
    }
    return o;
  }

  /** One arm's final metric per seed, in seed order. */
  values(key: string): number[] {
    const o = this.#outcome(key);
    return this.#o.seeds.map((s) => o.bySeed.get(s)!.value);
  }

  /** Mean and sample std of one arm over the seeds. */
  stats(key: string): { mean: number; std: number; n: number } {
    return meanStd(this.values(key));
  }

  /** The arm an arm is compared with: its `against`, else the baseline. */
  reference(key: string): string {
    return this.#outcome(key).arm.against ?? this.#o.baseline;
  }

  /** Whether an arm is compared with another (false for the baseline and `reference` rows). */
  isCompared(key: string): boolean {
    const arm = this.#outcome(key).arm;
    return !arm.reference && this.reference(key) !== key;
  }

  /** The paired difference of an arm against `against` (default its reference). */
  difference(
    key: string,
    against: string = this.reference(key),
  ): PairedDifference {
    const m = (k: string) =>
      new Map([...this.#outcome(k).bySeed].map(([s, r]) => [s, r.value]));
    return pairedDifference(m(key), m(against));
  }

  /** The published effect of an arm against its reference, or null. */
  publishedEffect(key: string): number | null {
    const p = this.#outcome(key).arm.published;
    if (p?.effect !== undefined) return p.effect;
    const b = this.#outcome(this.reference(key)).arm.published;
    if (p?.value !== undefined && b?.value !== undefined) {
      return Math.round((p.value - b.value) * 1e6) / 1e6;
    }
    return null;
  }

  /** The verdict of an arm against its reference (a reference arm has none). */
  verdict(key: string): Verdict {
    return verdictOf(this.difference(key), this.publishedEffect(key));
  }

  /** Summed compute seconds of every run (from their provenance), and how many were computed now. */
  compute(): {
    seconds: number;
    computed: number;
    cached: number;
    frozen: number;
  } {
    let seconds = 0, computed = 0, cached = 0, frozen = 0;
    for (const o of this.outcomes) {
      for (const r of o.sources.values()) {
        seconds += r.provenance.seconds;
        if (r.source === "computed") computed++;
        else if (r.source === "cache") cached++;
        else frozen++;
      }
    }
    return { seconds, computed, cached, frozen };
  }

  /** "B" when compared with the baseline, else "B vs A". */
  #comparedLabel(key: string): string {
    const ref = this.reference(key);
    const label = this.#outcome(key).arm.label;
    const pairs = this.outcomes.some((o) => o.arm.against !== undefined);
    return ref === this.#o.baseline && !pairs
      ? label
      : `${label} vs ${this.#outcome(ref).arm.label}`;
  }

  /** One line: dataset, model, epochs, seeds, scale. */
  settingLine(): string {
    const s = this.#o.setting;
    const sizes = [
      s.trainImages !== undefined ? `${s.trainImages} training images` : null,
      s.valImages !== undefined ? `${s.valImages} validation images` : null,
    ].filter(Boolean).join(", ");
    return `${s.dataset} (${s.real ? "real images" : "synthetic images"}${
      sizes ? `; ${sizes}` : ""
    }); ${s.model}; ${s.epochs} epoch${s.epochs === 1 ? "" : "s"}; seeds ${
      this.#o.seeds.join(", ")
    }; ${s.scale} scale`;
  }

  /** The results table: mean ± std per arm, paired Δ with its interval, published figures, verdict. */
  table(caption?: string): ResultTable {
    const metric = this.#o.metric ?? { label: "top-1", unit: "%" };
    const base = this.#o.baseline;
    const extras = this.#o.extraColumns ?? [];
    const paired = this.outcomes.some((o) => o.arm.against !== undefined);
    const anyPublishedValue = this.outcomes.some((o) =>
      o.arm.published?.value !== undefined
    );
    const rows = this.outcomes.map((o) => {
      const row: Record<string, CellValue> = {
        arm: o.arm.label,
        value: this.values(o.arm.key),
      };
      for (const e of extras) {
        const xs = this.#o.seeds.map((s) => o.bySeed.get(s)!.extra?.[e.key]);
        row[e.key] = xs.every((x) => typeof x === "number")
          ? xs as number[]
          : null;
      }
      if (!this.isCompared(o.arm.key)) {
        row.delta = "reference";
        row.pubDelta = null;
        row.verdict = "";
      } else {
        const v = this.verdict(o.arm.key);
        if (paired) {
          row.vs = this.#outcome(this.reference(o.arm.key)).arm.label;
        }
        row.delta = formatEffect(v.measured);
        row.pubDelta = v.published === null ? "–" : signed(v.published, 1);
        row.verdict = v.kind;
      }
      if (anyPublishedValue) row.pubValue = o.arm.published?.value ?? null;
      return row;
    });
    const setting = this.#o.setting;
    const sources = [
      ...new Set(
        this.outcomes.map((o) => o.arm.published?.source).filter((
          x,
        ): x is string => !!x),
      ),
    ];
    return table({
      caption: caption ??
        `${metric.label} on ${setting.dataset}, ${setting.scale} scale, ${this.#o.seeds.length} seeds`,
      columns: [
        { key: "arm", label: "arm" },
        { key: "value", label: metric.label, unit: metric.unit },
        ...extras.map((e) => ({ key: e.key, label: e.label, unit: e.unit })),
        ...(paired ? [{ key: "vs", label: "compared with" }] : []),
        { key: "delta", label: `Δ [95% CI]`, align: "right" },
        ...(anyPublishedValue
          ? [{ key: "pubValue", label: "published", unit: metric.unit }]
          : []),
        { key: "pubDelta", label: "published Δ", align: "right" },
        { key: "verdict", label: "verdict" },
      ],
      rows,
      notes: [
        `Ours: ${this.settingLine()}. Mean ± sample std over seeds; Δ is the mean of the per-seed differences to ${
          paired
            ? 'the arm in "compared with"'
            : `"${this.outcomes.find((o) => o.arm.key === base)!.arm.label}"`
        }, with a Student-t 95% interval.`,
        sources.length
          ? `Published figures: ${
            sources.join("; ")
          } (ImageNet-scale training; only the direction and size of effects are comparable with ours). "–": nobody published this effect.`
          : "No published figure exists for these arms: the measured effects stand alone.",
      ],
    });
  }

  /** The effect of each arm against the baseline: our per-seed differences, mean and 95% interval, and the published effect. */
  effectFigure(title = "effect against the baseline"): Plot {
    const arms = this.outcomes.filter((o) => this.isCompared(o.arm.key));
    const labels = arms.map((o) => this.#comparedLabel(o.arm.key));
    const diffs = arms.map((o) => this.difference(o.arm.key));
    const traces: unknown[] = [
      {
        type: "scatter",
        mode: "markers",
        name: "ours: mean and 95% interval",
        x: diffs.map((d) => d.mean),
        y: labels,
        error_x: {
          type: "data",
          symmetric: false,
          array: diffs.map((d) => d.hi === null ? 0 : d.hi - d.mean),
          arrayminus: diffs.map((d) => d.lo === null ? 0 : d.mean - d.lo),
        },
        marker: { size: 10, color: "#1f77b4" },
      },
      {
        type: "scatter",
        mode: "markers",
        name: "ours: each seed",
        x: diffs.flatMap((d) => d.differences),
        y: diffs.flatMap((d, i) => d.differences.map(() => labels[i])),
        marker: { size: 6, color: "rgba(31,119,180,0.35)" },
      },
    ];
    const pub = arms.map((o) => this.publishedEffect(o.arm.key));
    if (pub.some((p) => p !== null)) {
      traces.push({
        type: "scatter",
        mode: "markers",
        name: "published (ImageNet)",
        x: pub.filter((p) => p !== null),
        y: labels.filter((_, i) => pub[i] !== null),
        marker: { size: 11, symbol: "diamond", color: "#d62728" },
      });
    }
    return plot({
      data: traces,
      layout: {
        title: { text: title },
        xaxis: {
          title: { text: `Δ ${(this.#o.metric?.label ?? "top-1")} (points)` },
          zeroline: true,
          zerolinewidth: 2,
        },
        yaxis: { automargin: true, autorange: "reversed" },
        height: 120 + 40 * arms.length,
        margin: { t: 60 },
        legend: { orientation: "h", y: -0.25 },
      },
    }, {
      caption:
        `Paired difference of each arm to its reference (${this.#o.seeds.length} seeds).`,
    });
  }

  /** Validation metric per epoch: each arm's mean over seeds. */
  curvesFigure(title = "validation accuracy per epoch"): Plot | null {
    const traces: unknown[] = [];
    this.outcomes.forEach((o, i) => {
      const perEpoch = new Map<number, number[]>();
      for (const r of o.bySeed.values()) {
        for (const p of r.curve ?? []) {
          perEpoch.set(p.epoch, [...(perEpoch.get(p.epoch) ?? []), p.value]);
        }
      }
      const epochs = [...perEpoch.keys()].sort((a, b) => a - b);
      if (epochs.length === 0) return;
      traces.push({
        type: "scatter",
        mode: "lines+markers",
        name: o.arm.label,
        x: epochs,
        y: epochs.map((e) => meanStd(perEpoch.get(e)!).mean),
        line: { color: PALETTE[i % PALETTE.length] },
      });
    });
    if (traces.length === 0) return null;
    return plot({
      data: traces,
      layout: {
        title: { text: title },
        xaxis: { title: { text: "epoch" } },
        yaxis: {
          title: {
            text: `${this.#o.metric?.label ?? "top-1"} (${
              this.#o.metric?.unit ?? "%"
            })`,
          },
        },
        height: 380,
        margin: { t: 60 },
      },
    }, { caption: `Mean over ${this.#o.seeds.length} seeds per epoch.` });
  }

  /**
   * One short line for a headline: `MixToken + token labels: reproduced
   * (+1.20 [+0.40, +2.00]; published +0.9)`.
   */
  summary(key: string): string {
    const v = this.verdict(key);
    const pub = v.published === null
      ? "none published"
      : `published ${signed(v.published, 1)}`;
    return `${this.#comparedLabel(key)}: ${v.kind} (${
      formatEffect(v.measured, 1)
    }; ${pub})`;
  }

  /** The verdict paragraph (Markdown): one line per arm, computed from the results. */
  verdictText(): string {
    const lines = this.outcomes
      .filter((o) => this.isCompared(o.arm.key))
      .map((o) =>
        `- **${this.#comparedLabel(o.arm.key)}**: ${
          this.verdict(o.arm.key).text
        }`
      );
    const c = this.compute();
    return [
      ...lines,
      "",
      `Setting: ${this.settingLine()}. Compute: ${
        formatDuration(c.seconds)
      } of training over ${
        c.computed + c.cached + c.frozen
      } runs (${c.computed} run now, ${c.cached} from the cache, ${c.frozen} frozen).`,
    ].join("\n");
  }

  /** Jupyter: the table (a notebook shows figures and verdicts with their own calls). */
  [Symbol.for("Jupyter.display")](): Record<string, unknown> {
    const t = this.table() as unknown as Record<
      symbol,
      () => Record<string, unknown>
    >;
    return t[Symbol.for("Jupyter.display")]();
  }
}
