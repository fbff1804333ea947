/**
 * `tokenlab labels`: what a score map holds, and which labels a crop of it
 * gives the class token and every patch token.
 *
 * @module
 */

import {
  checkBackendOption,
  checkPath,
  numberOption,
  positiveIntOption,
  readingInput,
  UNIT_RATE,
  UsageError,
} from "./_args.ts";
import type { Command } from "./_args.ts";
import { defineCommand } from "./_command.ts";

const USAGE =
  `usage: tokenlab labels MAP [--box TOP,LEFT,HEIGHT,WIDTH] [--flip] [--size S]
                       [--smoothing E] [--num-classes C] [--official-order]
                       [--top N] [--data DATASET] [--json]
       tokenlab labels STORE --agreement [--limit N] [--json]
       tokenlab labels STORE --verify | --upgrade

Shows a score map: its shape, what its channels are, the top class of every
cell; then pools a crop of it into the labels training would use: the class
token's soft label (RoIAlign 1x1) and the S x S token labels (RoIAlign S x S),
softmax and label smoothing, as a grid of top classes.

  MAP               an official per-image file (<root>/<class>/<stem>.pt, a
                    [2, k, H, W] tensor: [0] scores, [1] class ids), or a
                    store entry STORE:KEY or STORE:INDEX
  --box T,L,H,W     the crop, normalised to the image (default 0,0,1,1)
  --flip            the image was flipped horizontally (the map is flipped)
  --size S          token grid side (default 2 for a quick look; 14 at 224)
  --smoothing E     label smoothing (default 0.1, the official value)
  --num-classes C   classes (default: the store's, else the --data
                    dataset's; for an official file without either, inferred
                    as the larger of 1000 and the largest class id + 1, and
                    said so: pass it for your dataset)
  --official-order  pool as the official code does (box axes transposed)
  --top N           classes listed for the class token (default 5)
  --data DATASET    the dataset the map belongs to, for its class names (and
                    class count): an image folder, mnist, synthetic[:...],
                    CIFAR or a .safetensors dataset; a store made by
                    tokenlab annotate records the names itself
  --json            print JSON
  --agreement       compare every map of STORE with its image's label: the
                    share of images whose pooled label (the class token's,
                    whole image) is their class, and of cells whose best
                    class is; check this before training on an annotator's
                    maps (it should be near the annotator's accuracy)
  --limit N         with --agreement, only the first N images
  --verify          read every record of STORE and check every checksum, key
                    hash and the key index; exit 1 and say what is damaged
  --upgrade         rewrite a version-1 STORE (no checksums) as the current
                    version, in place, after checking it`;

function parseBox(text: string): [number, number, number, number] {
  const parts = text.split(",").map((s) => Number(s.trim()));
  if (parts.length !== 4 || parts.some((v) => !Number.isFinite(v))) {
    throw new UsageError(
      `tokenlab labels: --box expects four numbers top,left,height,width (fractions of the image), found "${text}"`,
    );
  }
  return parts as [number, number, number, number];
}

async function isStore(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(`${path}/header.json`)).isFile;
  } catch {
    return false;
  }
}

/** The class names of the dataset `--data` names (a bad spec: exit 2). */
async function datasetClasses(spec: string): Promise<readonly string[]> {
  const { openDataset, parseDataSpec } = await import("../data/datasets.ts");
  const { openTensorDataset, DatasetError } = await import(
    "../data/tensor_dataset.ts"
  );
  const { ImageError } = await import("../data/image.ts");
  // A DataSpecError (no such dataset) is bad input (main.ts).
  const parsed = await parseDataSpec(spec);
  const classes = await readingInput(
    "labels",
    "--data",
    [DatasetError, ImageError],
    async () =>
      parsed.kind === "tensors"
        ? (await openTensorDataset(parsed.path)).classes ?? []
        : (await openDataset(parsed)).classes,
  );
  if (classes.length === 0) {
    console.error(
      `tokenlab labels: note: --data ${spec} has no class names; ids are shown alone`,
    );
  }
  return classes;
}

/** A class id with its name when one is known: `3 cat`. */
function named(id: number, names: readonly string[] | undefined): string {
  const name = names?.[id];
  return name === undefined || name === String(id) ? `${id}` : `${id} ${name}`;
}

/** `--agreement`: how often a store's maps agree with its images' labels. */
async function agreement(
  target: string,
  options: { limit?: number; json?: boolean; backend?: string },
): Promise<number> {
  const { ScoreMapError } = await import("../labels/score_map.ts");
  const { ScoreMapStore } = await import("../labels/store/mod.ts");
  const { scoreMapAgreement } = await import("../labels/agreement.ts");
  const { initBackend } = await import("../backend.ts");
  using store = await readingInput(
    "labels",
    `--agreement ${target}`,
    [ScoreMapError],
    () => ScoreMapStore.open(target),
  );
  const h = store.header;
  if (!h.labels) {
    throw new UsageError(
      `tokenlab labels: --agreement ${target}: the store holds no ground-truth labels (made from an unlabelled dataset), so there is nothing to compare its maps with; expected a store made by tokenlab annotate from a labelled dataset, or tokenlab maps convert (which stores the folder labels)`,
    );
  }
  await initBackend({ backend: options.backend });
  const a = await scoreMapAgreement(store, { limit: options.limit });
  const pct = (n: number, d: number) =>
    d === 0 ? "n/a" : `${(100 * n / d).toFixed(1)}%`;
  const names = h.classNames;
  const perClass = [...a.perClass.entries()].sort((x, y) => x[0] - y[0]);
  if (options.json) {
    console.log(JSON.stringify(
      {
        store: target,
        annotator: h.annotator,
        annotatorHead: h.annotatorHead ?? null,
        images: a.images,
        imagesAgreeing: a.imagesAgreeing,
        imageAgreement: a.images === 0 ? null : a.imagesAgreeing / a.images,
        cells: a.cells,
        cellsAgreeing: a.cellsAgreeing,
        cellAgreement: a.cells === 0 ? null : a.cellsAgreeing / a.cells,
        perClass: perClass.map(([id, c]) => ({
          id,
          ...(names?.[id] !== undefined ? { name: names[id] } : {}),
          images: c.images,
          agreeing: c.agreeing,
        })),
      },
      null,
      2,
    ));
    return 0;
  }
  console.log([
    `${target}: ${a.images} maps by ${h.annotator}${
      h.annotatorHead !== undefined ? ` (${h.annotatorHead})` : ""
    }${a.images < h.count ? ` (the first ${a.images} of ${h.count})` : ""}`,
    `  pooled label (class token, whole image) agrees with the image's label: ${a.imagesAgreeing} of ${a.images} (${
      pct(a.imagesAgreeing, a.images)
    })`,
    `  best class of a cell agrees with the image's label: ${
      pct(a.cellsAgreeing, a.cells)
    } of ${a.cells} cells`,
    `  per class (images agreeing / images):`,
    ...perClass.map(([id, c]) =>
      `    ${named(id, names)}: ${c.agreeing}/${c.images} (${
        pct(c.agreeing, c.images)
      })`
    ),
    "  (close to the annotator's accuracy is good; far below it means the wrong head, preprocessing or weights: see tokenlab annotate --help)",
  ].join("\n"));
  return 0;
}

/**
 * `--verify` and `--upgrade`: a whole store checked, or a version-1 store
 * rewritten with checksums. A store that cannot be opened is bad input
 * (exit 2); damage found by the full check is a failure (exit 1).
 */
async function maintainStore(
  target: string,
  action: "verify" | "upgrade" | "agreement",
  options: { limit?: number; json?: boolean; backend?: string } = {},
): Promise<number> {
  if (!await isStore(target)) {
    throw new UsageError(
      `tokenlab labels: --${action} expects a score-map store (a folder with header.json), found ${
        JSON.stringify(target)
      }; name the store folder itself, not an entry`,
    );
  }
  const { ScoreMapError } = await import("../labels/score_map.ts");
  const { ScoreMapStore, upgradeScoreMapStore } = await import(
    "../labels/store/mod.ts"
  );
  if (action === "agreement") {
    return await agreement(target, options);
  }
  if (action === "upgrade") {
    const done = await readingInput(
      "labels",
      `--upgrade ${target}`,
      [ScoreMapError],
      () => upgradeScoreMapStore(target),
    );
    console.log(
      done.from === done.to
        ? `${target}: already format version ${done.to} (${done.count} maps); nothing to do`
        : `${target}: upgraded from format version ${done.from} to ${done.to} (${done.count} maps checked and rewritten)`,
    );
    return 0;
  }
  using store = await readingInput(
    "labels",
    `--verify ${target}`,
    [ScoreMapError],
    () => ScoreMapStore.open(target, { onWarning: () => {} }),
  );
  await store.verify();
  const v = store.header.version;
  console.log(
    `${target}: ${store.size} maps, format version ${v}: ${
      v === 1
        ? "every record reads and the key index agrees with keys.txt (version 1 has no checksums; tokenlab labels --upgrade adds them)"
        : "every checksum, key hash and index entry is sound"
    }`,
  );
  return 0;
}

/** The `labels` command. */
export const labelsCommand: Command = defineCommand({
  name: "labels",
  summary: "show a score map and the token labels a crop of it gives",
  usage: USAGE,
  options: {
    box: { type: "string" },
    flip: { type: "boolean", default: false },
    size: { type: "string" },
    smoothing: { type: "string" },
    "num-classes": { type: "string" },
    "official-order": { type: "boolean", default: false },
    top: { type: "string" },
    json: { type: "boolean", default: false },
    verify: { type: "boolean", default: false },
    upgrade: { type: "boolean", default: false },
    agreement: { type: "boolean", default: false },
    limit: { type: "string" },
    data: { type: "string" },
    backend: { type: "string" },
  },
  positionals: true,
  async run({ values, positionals }) {
    if (positionals.length !== 1) {
      throw new UsageError(
        `tokenlab labels: expected one map (a .pt file or STORE:KEY), found ${positionals.length}\n\n${USAGE}`,
      );
    }
    const target = positionals[0];
    const actions = (["verify", "upgrade", "agreement"] as const).filter((a) =>
      values[a]
    );
    if (actions.length > 1) {
      throw new UsageError(
        `tokenlab labels: --${actions[0]} and --${
          actions[1]
        } are separate jobs; expected one of --verify, --upgrade, --agreement: run them one after the other`,
      );
    }
    const limit = positiveIntOption("labels", "--limit", values.limit);
    if (limit !== undefined && !values.agreement) {
      throw new UsageError(
        `tokenlab labels: --limit counts the images of --agreement, found it without --agreement; add --agreement or drop --limit`,
      );
    }
    if (actions.length === 1) {
      await checkBackendOption("labels", values.backend);
      return await maintainStore(target, actions[0], {
        limit,
        json: values.json,
        backend: values.backend,
      });
    }
    const box = values.box === undefined
      ? [0, 0, 1, 1] as const
      : parseBox(values.box);
    const S = positiveIntOption("labels", "--size", values.size) ?? 2;
    const smoothing =
      numberOption("labels", "--smoothing", values.smoothing, UNIT_RATE) ??
        0.1;
    const topN = positiveIntOption("labels", "--top", values.top) ?? 5;
    const givenClasses = positiveIntOption(
      "labels",
      "--num-classes",
      values["num-classes"],
    );
    await checkBackendOption("labels", values.backend);

    const { ScoreMapError } = await import("../labels/score_map.ts");
    const { readOfficialMap } = await import("../labels/official_map.ts");
    const { ScoreMapStore } = await import("../labels/store/mod.ts");
    const { CheckpointError } = await import("../io/checkpoint_error.ts");
    const { LabelPoolingError, poolLabels } = await import(
      "../labels/pooling.ts"
    );
    // The map is the input: what its readers refuse is bad input (exit 2).
    const readers = [ScoreMapError, CheckpointError];
    const { initBackend } = await import("../backend.ts");
    const { tf } = await import("../tf.ts");

    // The dataset's class names (and count), when --data names it.
    let dataClasses: readonly string[] | undefined;
    if (values.data !== undefined) {
      dataClasses = await datasetClasses(values.data);
    }

    // Resolve the map: a store entry or an official file.
    let map, numClasses: number | undefined, source: string, what: string;
    let classNames: readonly string[] | undefined;
    let numClassesFrom = "";
    const colon = target.lastIndexOf(":");
    if (colon > 0 && await isStore(target.slice(0, colon))) {
      const path = target.slice(0, colon), entry = target.slice(colon + 1);
      using store = await readingInput(
        "labels",
        `MAP ${target}`,
        readers,
        () => ScoreMapStore.open(path),
      );
      const index = /^\d+$/.test(entry) && await store.indexOf(entry) < 0
        ? Number(entry)
        : entry;
      if (typeof index === "number" && index >= store.size) {
        throw new UsageError(
          `tokenlab labels: MAP ${target}: the store holds ${store.size} maps (entries 0 to ${
            store.size - 1
          }), found entry ${index}; name an entry by its number or its key`,
        );
      }
      map = await readingInput(
        "labels",
        `MAP ${target}`,
        readers,
        () => store.read(index),
      );
      numClasses = store.header.numClasses;
      numClassesFrom = "the store's header";
      classNames = store.header.classNames;
      source = `${path} entry ${
        typeof index === "number"
          ? `#${index} (${await store.keyAt(index)})`
          : index
      }`;
      const w = store.header.annotatorWeights;
      what = `store of ${store.size} maps by ${store.header.annotator}${
        store.header.annotatorHead !== undefined
          ? ` (${store.header.annotatorHead})`
          : ""
      }${
        w !== undefined
          ? `, weights ${w.file} (sha256 ${w.sha256.slice(0, 12)}...)`
          : ""
      }; scores are ${store.header.scores}; preprocessing ${
        JSON.stringify(store.header.preprocessing)
      }`;
    } else {
      if (await isStore(target)) {
        throw new UsageError(
          `tokenlab labels: ${target} is a store; name an entry as ${target}:KEY or ${target}:INDEX`,
        );
      }
      await checkPath("labels", "MAP", target, {
        kind: "file",
        what:
          "an official per-image map file (<root>/<class>/<stem>.pt) or a store entry STORE:KEY",
      });
      map = await readingInput(
        "labels",
        `MAP ${target}`,
        readers,
        () => readOfficialMap(target),
      );
      source = target;
      what =
        "official per-image file: a [2, k, H, W] tensor, [0] = top-k scores (raw logits), [1] = their class ids";
    }
    classNames ??= dataClasses !== undefined && dataClasses.length > 0
      ? dataClasses
      : undefined;
    const maxId = map.ids.reduce((m, v) => Math.max(m, v), 0);
    if (givenClasses !== undefined) {
      numClasses = givenClasses;
      numClassesFrom = "--num-classes";
    } else if (numClasses === undefined && dataClasses?.length) {
      numClasses = dataClasses.length;
      numClassesFrom = `the classes of --data ${values.data}`;
    } else if (numClasses === undefined) {
      // An official file does not say how many classes its dataset has:
      // never guess silently.
      numClasses = Math.max(1000, maxId + 1);
      numClassesFrom = maxId + 1 > 1000
        ? `inferred: the largest class id in the map is ${maxId}, so at least ${
          maxId + 1
        } classes; the map alone cannot say how many your dataset has, pass --num-classes C (or --data DATASET)`
        : `assumed: ImageNet's 1000 (the largest class id in the map is ${maxId}); the map alone cannot say how many your dataset has, pass --num-classes C (or --data DATASET)`;
      console.error(
        `tokenlab labels: note: ${numClasses} classes, ${numClassesFrom}`,
      );
    }
    const name = (id: number) => named(id, classNames);

    await initBackend({ backend: values.backend });
    let pooled;
    try {
      pooled = await poolLabels(map, [box], {
        numClasses,
        tokenGrid: S,
        flips: [values.flip],
        smoothing,
        boxOrder: values["official-order"] ? "official-transposed" : "yx",
      });
    } catch (e) {
      // Every pooling setting comes from the command line (--box, --size,
      // --num-classes against the map's k): a refusal is bad input.
      if (!(e instanceof LabelPoolingError)) throw e;
      throw new UsageError(`tokenlab labels: ${e.message}`, { cause: e });
    }
    const cls = Float32Array.from(await pooled.cls.data() as Float32Array);
    const tokens = Float32Array.from(
      await pooled.tokens.data() as Float32Array,
    );
    tf.dispose(Object.values(pooled));

    const topOf = (row: Float32Array, n: number) =>
      Array.from(row.keys()).sort((a, b) => row[b] - row[a]).slice(0, n).map((
        id,
      ) => ({ id, p: row[id] }));
    const clsTop = topOf(cls, topN);
    const tokenTop = Array.from(
      { length: S * S },
      (_, t) =>
        topOf(tokens.subarray(t * numClasses!, (t + 1) * numClasses!), 1)[0],
    );
    const { k, height: H, width: W } = map;
    const cells = Array.from(
      { length: H },
      (_, r) => Array.from({ length: W }, (_, c) => map.ids[r * W + c]),
    );

    const withName = (e: { id: number; p: number }) =>
      classNames?.[e.id] !== undefined ? { ...e, name: classNames[e.id] } : e;
    if (values.json) {
      console.log(JSON.stringify(
        {
          source,
          format: what,
          k,
          height: H,
          width: W,
          numClasses,
          numClassesFrom,
          ...(classNames !== undefined ? { classNames } : {}),
          topClassPerCell: cells,
          crop: {
            box,
            flip: values.flip,
            tokenGrid: S,
            smoothing,
            boxOrder: values["official-order"] ? "official-transposed" : "yx",
          },
          classToken: clsTop.map(withName),
          tokens: Array.from(
            { length: S },
            (_, r) => tokenTop.slice(r * S, (r + 1) * S).map(withName),
          ),
        },
        null,
        2,
      ));
      return 0;
    }
    const w = Math.max(...cells.flat().map((v) => String(v).length));
    const seen = [...new Set(cells.flat())].sort((a, b) => a - b);
    const legend = classNames === undefined
      ? []
      : [`  classes in the map: ${seen.map(name).join(", ")}`];
    const lines = [
      `${source}`,
      `  ${what}`,
      `  k ${k}, ${H}x${W} cells, ${numClasses} classes (${numClassesFrom}); top class of each cell (rank 0):`,
      ...cells.map((row) =>
        "    " + row.map((v) => String(v).padStart(w)).join(" ")
      ),
      ...legend,
      "",
      `crop: top ${box[0]}, left ${box[1]}, height ${box[2]}, width ${box[3]}${
        values.flip ? ", flipped" : ""
      }; ${S}x${S} tokens; smoothing ${smoothing}${
        values["official-order"] ? "; official (transposed) box order" : ""
      }`,
      `  class token: ${
        clsTop.map((e) => `${name(e.id)} (${e.p.toFixed(3)})`).join(", ")
      }`,
      `  tokens (top class, probability):`,
      ...Array.from(
        { length: S },
        (_, r) =>
          "    " +
          tokenTop.slice(r * S, (r + 1) * S).map((e) =>
            `${name(e.id)} (${e.p.toFixed(3)})`
          ).join("  "),
      ),
    ];
    console.log(lines.join("\n"));
    return 0;
  },
});
