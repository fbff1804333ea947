/**
 * `tokenlab maps convert`: official per-image score maps (a folder of
 * `<class>/<stem>.pt` files) into a score-map store, the form training
 * reads, with the library's `officialToStore`.
 *
 * @module
 */

import { exists } from "../_fs.ts";
import type { Command } from "./_args.ts";
import {
  checkNewStore,
  checkPath,
  choiceOption,
  FRACTION,
  numberOption,
  positiveIntOption,
  readingInput,
  UsageError,
} from "./_args.ts";
import { type CommandLine, defineCommand, defineGroup } from "./_command.ts";
import { stopOnSigint } from "./_interrupt.ts";

const CONVERT_USAGE =
  `usage: tokenlab maps convert MAPS_FOLDER --out STORE [options]

Converts official per-image score maps (TokenLabeling's generate_label.py,
or ReLabel's: MAPS_FOLDER/<class>/<stem>.pt, each a [2, k, H, W] tensor of
scores and class ids) into a score-map store, the form tokenlab train
--token-label-data reads. Every map is checked. The store is written as
STORE.partial and renamed to STORE when complete: nothing is ever
half-written at STORE. Interrupted (Ctrl-C, a bad file), the maps converted
so far stay in STORE.partial: --resume continues there.

  MAPS_FOLDER         the folder of class folders of .pt files
  --out STORE         the store folder to write (never replaced unless
                      --overwrite)
  --num-classes C     classes of the dataset (default: the class folders
                      under MAPS_FOLDER, as ImageFolder counts them)
  --annotator NAME    the model that made the maps, for the header (default
                      "official per-image maps")
  --img-size N        the annotator's input size (default 576: the official
                      TokenLabeling maps, NFNet-F6 at 576 px; ReLabel: 475)
  --mode MODE         resize-center-crop (default, the official label
                      generation) or squash (ReLabel)
  --crop-pct F        centre crop fraction for resize-center-crop (default 1)
  --scores KIND       logits (default, official TokenLabeling), probabilities
                      or unknown (ReLabel)
  --no-labels         store no ground-truth labels (default: the index of
                      each map's class folder, as ImageFolder)
  --allow-inexact-ids accept float16 class ids of 2048 and above as stored
  --resume            continue an interrupted conversion (STORE.partial)
  --overwrite         replace an existing STORE / start an interrupted
                      conversion over`;

const USAGE = `usage: tokenlab maps convert MAPS_FOLDER --out STORE [options]

Score maps on disk. Subcommands:
  convert   official per-image .pt maps into a score-map store
            (tokenlab maps convert --help)

Make maps with an annotator of your own with tokenlab annotate; show one,
or check a store, with tokenlab labels.`;

const CONVERT_OPTIONS = {
  out: { type: "string" },
  "num-classes": { type: "string" },
  annotator: { type: "string" },
  "img-size": { type: "string" },
  mode: { type: "string" },
  "crop-pct": { type: "string" },
  scores: { type: "string" },
  "no-labels": { type: "boolean", default: false },
  "allow-inexact-ids": { type: "boolean", default: false },
  resume: { type: "boolean", default: false },
  overwrite: { type: "boolean", default: false },
} as const;

/** `tokenlab maps convert ...`, on its parsed line. */
async function convert(
  { values, positionals }: CommandLine<typeof CONVERT_OPTIONS>,
): Promise<number> {
  if (positionals.length !== 1) {
    throw new UsageError(
      `tokenlab maps convert: expected one MAPS_FOLDER (a folder of <class>/<stem>.pt files), found ${
        positionals.length === 0
          ? "none"
          : `${positionals.length}: ${positionals.join(" ")}`
      }\n\n${CONVERT_USAGE}`,
    );
  }
  const src = positionals[0].replace(/\/+$/, "") || "/";
  if (values.out === undefined) {
    throw new UsageError(
      `tokenlab maps convert: --out is required: the store folder to write\n\n${CONVERT_USAGE}`,
    );
  }
  const out = values.out.replace(/\/+$/, "");
  if (out === "") {
    throw new UsageError(
      `tokenlab maps convert: --out expects a folder name for the store, found ${
        JSON.stringify(values.out)
      }`,
    );
  }
  const mode = choiceOption("maps convert", "--mode", values.mode, [
    "resize-center-crop",
    "squash",
  ]);
  const scores = choiceOption("maps convert", "--scores", values.scores, [
    "logits",
    "probabilities",
    "unknown",
  ]);
  if (values.resume && values.overwrite) {
    throw new UsageError(
      "tokenlab maps convert: --resume continues an interrupted conversion and --overwrite starts over; expected one of them, found both",
    );
  }
  const cropPct =
    numberOption("maps convert", "--crop-pct", values["crop-pct"], FRACTION) ??
      1;
  const imgSize =
    positiveIntOption("maps convert", "--img-size", values["img-size"]) ??
      576;
  const givenClasses = positiveIntOption(
    "maps convert",
    "--num-classes",
    values["num-classes"],
  );
  const annotator = values.annotator ?? "official per-image maps";
  if (annotator.trim() === "") {
    throw new UsageError(
      `tokenlab maps convert: --annotator expects the name of the model that made the maps, found an empty name`,
    );
  }
  await checkPath("maps convert", "MAPS_FOLDER", src, {
    kind: "folder",
    what: "a folder of official per-image maps (<class>/<stem>.pt)",
  });
  if (await exists(`${src}/header.json`)) {
    throw new UsageError(
      `tokenlab maps convert: MAPS_FOLDER ${src} is already a score-map store (it holds header.json), not a folder of official .pt maps; use it as it is (tokenlab train --token-label-data ${src})`,
    );
  }
  await checkNewStore("maps convert", out, values.overwrite);

  const { ScoreMapError } = await import("../labels/score_map.ts");
  const { listOfficialMaps, officialMapClassNames } = await import(
    "../labels/official_map.ts"
  );
  const { officialToStore } = await import("../labels/store/mod.ts");
  const { ProgressReports } = await import("./_progress.ts");

  const keys = await readingInput(
    "maps convert",
    "MAPS_FOLDER",
    [ScoreMapError],
    () => listOfficialMaps(src),
  );
  if (keys.length === 0) {
    throw new UsageError(
      `tokenlab maps convert: MAPS_FOLDER ${src} holds no official maps: expected class folders of .pt files (<class>/<stem>.pt), found none; check the path`,
    );
  }
  const folders = officialMapClassNames(keys);
  const numClasses = givenClasses ?? folders.length;
  if (givenClasses === undefined) {
    console.error(
      `tokenlab maps convert: ${numClasses} classes: the class folders under ${src}; pass --num-classes C if the dataset has more`,
    );
  }
  if (!values["no-labels"] && folders.length > numClasses) {
    throw new UsageError(
      `tokenlab maps convert: ${src} has ${folders.length} class folders, more than the ${numClasses} classes of --num-classes; expected at most one folder per class: pass --num-classes ${folders.length} or more, or --no-labels`,
    );
  }
  const preprocessing = { mode, size: imgSize, cropPct };
  const partial = `${out}.partial`;
  const hadPartial = await exists(partial);
  if (values.resume && !hadPartial) {
    console.error(
      `tokenlab maps convert: no interrupted conversion at ${partial}; starting a new one`,
    );
  }
  const stop = stopOnSigint("chunk");
  // Until the first chunk is written (the first report comes after it), a
  // refusal is about the input or the store at --out (exit 2); after it, a
  // failure while running (exit 1).
  const progress = new ProgressReports("maps convert", "maps", "after-work");
  try {
    const result = await officialToStore(src, out, {
      numClasses,
      annotator,
      preprocessing,
      scores,
      labels: values["no-labels"] ? "none" : folders,
      classNames: folders.length === numClasses ? folders : undefined,
      overwrite: values.overwrite,
      resume: values.resume,
      allowInexactIds: values["allow-inexact-ids"],
      signal: stop.signal,
      onProgress: progress.report,
    });
    progress.finish();
    if (result.interrupted) {
      console.error(
        `stopped after ${result.count} of ${keys.length} maps; nothing is at ${out} yet: run the same command with --resume to continue`,
      );
      return 130;
    }
    console.error(
      `${out}: ${result.count} score maps from ${src} (${numClasses} classes${
        values["no-labels"] ? ", no labels" : ", labels from the class folders"
      })${result.skipped > 0 ? `, resumed after ${result.skipped}` : ""}`,
    );
    return 0;
  } catch (e) {
    if (!(e instanceof ScoreMapError)) throw e;
    const kept = await exists(partial);
    if (!progress.started) {
      // Refused before any map was written: the maps (their first file,
      // the class ids against --num-classes) or the store at --out.
      const storeRefused = e.option === "overwrite";
      throw new UsageError(
        `tokenlab maps convert: ${e.message}${
          storeRefused
            ? `\non the command line: pass --resume to continue the interrupted conversion at ${partial}, or --overwrite to start over`
            : givenClasses === undefined
            ? `\non the command line: the ${numClasses} classes were counted from the class folders under ${src}; pass --num-classes C with the dataset's class count (1000 for ImageNet)`
            : ""
        }`,
        { cause: e },
      );
    }
    if (givenClasses === undefined && /out of range/.test(e.message)) {
      e.message +=
        `\nthe ${numClasses} classes were counted from the class folders under ${src}; pass --num-classes C with the dataset's class count`;
    }
    e.message += kept
      ? `\nnothing was written at ${out}; the maps converted so far are kept in ${partial}: fix or remove the file named above and run the same command with --resume, or with --overwrite to start over`
      : `\nnothing was written at ${out}`;
    throw e;
  } finally {
    stop.remove();
  }
}

const convertCommand: Command = defineCommand({
  name: "maps convert",
  summary: "official per-image .pt maps into a score-map store",
  usage: CONVERT_USAGE,
  options: CONVERT_OPTIONS,
  positionals: true,
  run: convert,
});

/** The `maps` command. */
export const mapsCommand: Command = defineGroup(
  "maps",
  "score maps on disk: convert official per-image .pt maps to a store",
  USAGE,
  { convert: convertCommand },
);
