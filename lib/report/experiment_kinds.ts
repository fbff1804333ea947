/**
 * The registry of experiment kinds: a kind's name and the function that
 * computes an experiment of that kind from its JSON config alone. It is what
 * makes an experiment runnable by key (`tokenlab experiments run KEY`, and
 * so `tokenlab sweep`): a plan record names the kind, the registry gives the
 * code. A name not in the registry is refused; nothing read from a record
 * is ever executed.
 *
 * - `train-arm`: an ablation's arm at one seed, config
 *   `{ common, arm, seed }` as {@linkcode runAblation} keys it; computed by
 *   {@linkcode trainArm} with its run folder under the cache (checkpoints,
 *   so a job that dies resumes).
 *
 * @module
 */

import {
  FieldProblem,
  fieldProblem,
  integerField,
  isPlainObject,
} from "../io/json_fields.ts";
import { ExperimentError } from "./experiment_error.ts";
import { trainArm, type TrainArmSpec } from "./train_arm.ts";

/** What a kind's compute function gets besides the config. */
export interface ExperimentKindContext {
  /** A folder of its own for the experiment's checkpoints (resumed when it holds a run). */
  runDir: string;
}

/** One registered experiment kind. */
export interface ExperimentKind {
  /** What it computes, in a few words. */
  summary: string;
  /** Computes the result from the experiment's config (JSON data). */
  compute: (
    config: unknown,
    context: ExperimentKindContext,
  ) => Promise<unknown>;
  /** A short text of a config, for listings. */
  describe: (config: unknown) => string;
}

/** The config of an ablation's (arm, seed) experiment. */
function ablationConfig(config: unknown): { arm: unknown; seed: number } {
  try {
    if (!isPlainObject(config)) {
      fieldProblem("(config)", "an object { common, arm, seed }", config);
    }
    const seed = integerField(config.seed, "seed", {
      min: Number.MIN_SAFE_INTEGER,
    });
    if (!isPlainObject(config.arm)) {
      fieldProblem("arm", "an object (the arm's config)", config.arm);
    }
    return { arm: config.arm, seed };
  } catch (e) {
    if (!(e instanceof FieldProblem)) throw e;
    throw new ExperimentError(
      `a train-arm experiment's config: ${e.message}; it is { common, arm, seed } as runAblation writes it`,
      { field: e.field },
    );
  }
}

/** Every registered experiment kind, by name. */
export const EXPERIMENT_KINDS: Readonly<Record<string, ExperimentKind>> = {
  "train-arm": {
    summary: "one ablation arm trained at one seed (trainArm)",
    compute: (config, context) => {
      const { arm, seed } = ablationConfig(config);
      return trainArm(arm as unknown as TrainArmSpec, seed, {
        runDir: context.runDir,
      });
    },
    describe: (config) => {
      const { arm, seed } = ablationConfig(config);
      const text = JSON.stringify(arm);
      return `seed ${seed}, ${
        text.length > 100 ? `${text.slice(0, 97)}...` : text
      }`;
    },
  },
};

/**
 * The registered kind named `name`.
 *
 * @throws {ExperimentError} for a name not in the registry
 *
 * @example
 * ```ts
 * import { experimentKind } from "tokenlab/report/experiment_kinds.ts";
 * console.log(experimentKind("train-arm").summary.length > 0); // true
 * ```
 */
export function experimentKind(name: string): ExperimentKind {
  if (!Object.hasOwn(EXPERIMENT_KINDS, name)) {
    throw new ExperimentError(
      `no experiment kind ${
        JSON.stringify(name.slice(0, 80))
      }: expected one of ${
        Object.keys(EXPERIMENT_KINDS).join(", ")
      }. Register the compute function in lib/report/experiment_kinds.ts, or run the experiment in its report.`,
    );
  }
  return EXPERIMENT_KINDS[name];
}
