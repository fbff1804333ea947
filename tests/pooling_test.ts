/**
 * Label pooling (lib/labels/pooling.ts) on every backend: hand-computed
 * cases (a constant map, left and right halves with and without flip in
 * both box orders, a single hot cell), the spec's worked example of the
 * official box transposition, the independent float64 RoIAlign loop
 * (refRoiAlign) on random maps and boxes (thin and tiny ones included),
 * torchvision's roi_align (tests/fixtures/make_pooling_fixture.py), the
 * smoothing rules, tensor inputs, no leaks, and every bad input.
 *
 * Tolerances: pooled scores against float64 / torchvision |diff| <= 1e-5 +
 * 1e-5 |want| (float32 products of weights that sum to 1); probabilities
 * 1e-6 + 1e-4 |want|.
 */

import {
  assert,
  assertEquals,
  assertRejects,
  assertThrows,
} from "./_assert.ts";
import { ROOT } from "./_helpers.ts";
import { tf } from "tokenlab";
import {
  LabelPoolingError,
  type NormalizedBox,
  officialTargetLayout,
  type PooledLabels,
  poolLabels,
  type PoolLabelsOptions,
  stackScoreMaps,
  type TopKMaps,
} from "tokenlab/labels/pooling.ts";
import { assertClose, assertNoLeaks, backendTest } from "tokenlab/testing";
import {
  refRoiAlign,
  refSoftmax,
  testValues,
} from "tokenlab/testing/reference.ts";

const SCORES = { rtol: 1e-5, atol: 1e-5 };
const PROBS = { rtol: 1e-4, atol: 1e-6 };

/** Reads and disposes pooled labels. */
async function read(out: PooledLabels): Promise<{
  cls: Float32Array;
  tokens: Float32Array;
  truth?: Float32Array;
}> {
  try {
    return {
      cls: await out.cls.data() as Float32Array,
      tokens: await out.tokens.data() as Float32Array,
      truth: out.truth ? await out.truth.data() as Float32Array : undefined,
    };
  } finally {
    tf.dispose(Object.values(out));
  }
}

/** The argmax class of each C-long row. */
function argmaxRows(x: ArrayLike<number>, C: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < x.length / C; r++) {
    let best = 0;
    for (let c = 1; c < C; c++) {
      if (x[r * C + c] > x[r * C + best]) best = c;
    }
    out.push(best);
  }
  return out;
}

/** A dense vector of C values: `at` maps class -> value, 0 elsewhere. */
function dense(C: number, at: Record<number, number>): Float64Array {
  const v = new Float64Array(C);
  for (const [c, x] of Object.entries(at)) v[Number(c)] = x;
  return v;
}

function smooth(p: ArrayLike<number>, eps: number, C: number): Float64Array {
  return Float64Array.from(p, (x) => x * (1 - eps) + eps / C);
}

/** Repeats a row `n` times. */
function rows(row: ArrayLike<number>, n: number): Float64Array {
  const out = new Float64Array(row.length * n);
  for (let i = 0; i < n; i++) out.set(row, i * row.length);
  return out;
}

/** A k = 1 map whose cells hold class `idAt(h, w)` with score `score`. */
function oneRank(
  H: number,
  W: number,
  idAt: (h: number, w: number) => number,
  score: number | ((h: number, w: number) => number),
): TopKMaps {
  const scores = new Float32Array(H * W), ids = new Int32Array(H * W);
  for (let h = 0; h < H; h++) {
    for (let w = 0; w < W; w++) {
      ids[h * W + w] = idAt(h, w);
      scores[h * W + w] = typeof score === "number" ? score : score(h, w);
    }
  }
  return { k: 1, height: H, width: W, scores, ids };
}

// ---------------------------------------------------------------------------
// Hand-computed cases

await backendTest("constant map: every token gets the same label", async () => {
  // Every cell: class 2 score 3, class 5 score 1, class 0 score 0.5.
  const H = 5, W = 6, C = 8, k = 3, S = 3;
  const cell = { 2: 3, 5: 1, 0: 0.5 };
  const scores = new Float32Array(k * H * W), ids = new Int32Array(k * H * W);
  Object.entries(cell).forEach(([c, s], r) => {
    scores.fill(s, r * H * W, (r + 1) * H * W);
    ids.fill(Number(c), r * H * W, (r + 1) * H * W);
  });
  const boxes: NormalizedBox[] = [
    [0, 0, 1, 1],
    [0.2, 0.3, 0.5, 0.4],
    [0.5, 0.5, 0.01, 0.02], // tiny
    [0.8, 0, 0.2, 1], // the bottom row
  ];
  // (A box whose RoI, widened to one cell, pokes out of the map by more
  // than half a cell is not constant: torchvision counts those samples 0.)
  const B = boxes.length;
  const maps = stackScoreMaps(
    Array.from({ length: B }, () => ({ k, height: H, width: W, scores, ids })),
  );
  const raw = await read(
    await poolLabels(maps, boxes, {
      numClasses: C,
      tokenGrid: S,
      flips: [false, true, false, true],
      output: "scores",
    }),
  );
  const v = dense(C, cell); // RoIAlign of a constant is that constant
  await assertClose(raw.cls, rows(v, B), { ...SCORES, what: "cls scores" });
  await assertClose(raw.tokens, rows(v, B * S * S), {
    ...SCORES,
    what: "token scores",
  });
  const got = await read(
    await poolLabels(maps, boxes, { numClasses: C, tokenGrid: S }),
  );
  const p = smooth(refSoftmax(v, C), 0.1, C);
  await assertClose(got.cls, rows(p, B), { ...PROBS, what: "cls" });
  await assertClose(got.tokens, rows(p, B * S * S), {
    ...PROBS,
    what: "tokens",
  });
});

await backendTest(
  "left and right halves, flips, both box orders (hand-computed)",
  async () => {
    // 4 x 4 map: columns 0-1 class 1, columns 2-3 class 2, score s.
    const s = 4, C = 3;
    const map = oneRank(4, 4, (_h, w) => (w < 2 ? 1 : 2), s);
    const pool = async (
      box: NormalizedBox,
      flip: boolean,
      order: PoolLabelsOptions["boxOrder"],
    ) =>
      await read(
        await poolLabels(map, [box], {
          numClasses: C,
          tokenGrid: 2,
          flips: [flip],
          boxOrder: order,
          output: "scores",
        }),
      );
    const only = (c: number, x = s) => dense(C, { [c]: x });
    const half = dense(C, { 1: s / 2, 2: s / 2 });
    const cat = (...xs: Float64Array[]) =>
      Float64Array.from(xs.flatMap((x) => [...x]));

    // Whole image: box -0.5..3.5, bins of 2 cells, samples at 0, 1 | 2, 3.
    for (const order of ["yx", "official-transposed"] as const) {
      let r = await pool([0, 0, 1, 1], false, order);
      await assertClose(r.cls, half, { ...SCORES, what: `${order} cls` });
      await assertClose(r.tokens, cat(only(1), only(2), only(1), only(2)), {
        ...SCORES,
        what: `${order} tokens`,
      });
      r = await pool([0, 0, 1, 1], true, order);
      await assertClose(r.tokens, cat(only(2), only(1), only(2), only(1)), {
        ...SCORES,
        what: `${order} flipped tokens`,
      });
    }
    // The left half: columns -0.5..1.5, all class 1 ...
    let r = await pool([0, 0, 1, 0.5], false, "yx");
    await assertClose(r.cls, only(1), { ...SCORES, what: "yx left cls" });
    await assertClose(r.tokens, cat(only(1), only(1), only(1), only(1)), {
      ...SCORES,
      what: "yx left tokens",
    });
    // ... flipped: the left half of the flipped map is class 2 ...
    r = await pool([0, 0, 1, 0.5], true, "yx");
    await assertClose(r.tokens, cat(only(2), only(2), only(2), only(2)), {
      ...SCORES,
      what: "yx left tokens, flipped",
    });
    // ... while the official order pools the top half of the rows, every
    // column: class 1 on the left tokens, 2 on the right, half each overall.
    r = await pool([0, 0, 1, 0.5], false, "official-transposed");
    await assertClose(r.cls, half, { ...SCORES, what: "transposed cls" });
    await assertClose(r.tokens, cat(only(1), only(2), only(1), only(2)), {
      ...SCORES,
      what: "transposed tokens",
    });
    r = await pool([0, 0, 1, 0.5], true, "official-transposed");
    await assertClose(r.tokens, cat(only(2), only(1), only(2), only(1)), {
      ...SCORES,
      what: "transposed tokens, flipped",
    });
  },
);

await backendTest("a single hot cell (hand-computed)", async () => {
  // 3 x 3 map, class 4 score 6 in the centre, class 0 score 0 elsewhere.
  const C = 5;
  const map = oneRank(
    3,
    3,
    (h, w) => (h === 1 && w === 1 ? 4 : 0),
    (h, w) => (h === 1 && w === 1 ? 6 : 0),
  );
  // Whole image, S = 3: box -0.5..2.5, one sample per bin at the centres.
  const raw = await read(
    await poolLabels(map, [[0, 0, 1, 1]], {
      numClasses: C,
      tokenGrid: 3,
      output: "scores",
    }),
  );
  const zero = new Float64Array(C), hot = dense(C, { 4: 6 });
  await assertClose(
    raw.tokens,
    Float64Array.from(
      [0, 0, 0, 0, 1, 0, 0, 0, 0].flatMap((t) => t ? [...hot] : [...zero]),
    ),
    { ...SCORES, what: "tokens" },
  );
  // 1 x 1: 3 x 3 samples at the cell centres, one of them hot.
  await assertClose(raw.cls, dense(C, { 4: 6 / 9 }), {
    ...SCORES,
    what: "cls",
  });
  // Probabilities and the ground truth, eps 0.2.
  const eps = 0.2;
  const got = await read(
    await poolLabels(map, [[0, 0, 1, 1]], {
      numClasses: C,
      tokenGrid: 3,
      smoothing: eps,
      labels: [4],
    }),
  );
  const e = Math.exp(6);
  const pHot = [1, 1, 1, 1, e].map((x) => x / (4 + e));
  await assertClose(
    got.tokens.subarray(4 * C, 5 * C),
    smooth(pHot, eps, C),
    { ...PROBS, what: "hot token" },
  );
  await assertClose(got.tokens.subarray(0, C), new Float64Array(C).fill(0.2), {
    ...PROBS,
    what: "cold token (uniform)",
  });
  await assertClose(
    got.truth!,
    [0.04, 0.04, 0.04, 0.04, 0.84],
    { ...PROBS, what: "truth" },
  );
});

await backendTest(
  "spec section 4: official-transposed pools the transposed region",
  async () => {
    // 15 x 15 map, columns 0-5 class 3, columns 6-14 class 7; crop the left 40 %.
    const map = oneRank(15, 15, (_h, w) => (w <= 5 ? 3 : 7), 10);
    const want = {
      "yx": { cls: [3], tokens: [3, 3, 3, 3] },
      "official-transposed": { cls: [7], tokens: [3, 7, 3, 7] },
    };
    for (const order of ["yx", "official-transposed"] as const) {
      const got = await read(
        await poolLabels(map, [[0, 0, 1, 0.4]], {
          numClasses: 10,
          tokenGrid: 2,
          boxOrder: order,
        }),
      );
      assertEquals(argmaxRows(got.cls, 10), want[order].cls, `${order} cls`);
      assertEquals(
        argmaxRows(got.tokens, 10),
        want[order].tokens,
        `${order} tokens`,
      );
    }
  },
);

// ---------------------------------------------------------------------------
// Against the float64 reference loop and torchvision

/** The pooled scores refRoiAlign gives: cls [B, C], tokens [B, S*S, C]. */
function reference(
  maps: {
    k: number;
    height: number;
    width: number;
    scores: ArrayLike<number>;
    ids: ArrayLike<number>;
  },
  boxes: readonly NormalizedBox[],
  flips: readonly boolean[],
  C: number,
  S: number,
  order: "yx" | "official-transposed",
): { cls: Float64Array; tokens: Float64Array } {
  const { k, height: H, width: W } = maps;
  const B = boxes.length;
  const cls = new Float64Array(B * C), tokens = new Float64Array(B * S * S * C);
  for (let b = 0; b < B; b++) {
    const map = new Float64Array(C * H * W); // [C, H, W], flipped if asked
    for (let r = 0; r < k; r++) {
      for (let h = 0; h < H; h++) {
        for (let w = 0; w < W; w++) {
          const i = ((b * k + r) * H + h) * W + w;
          const col = flips[b] ? W - 1 - w : w;
          map[(maps.ids[i] * H + h) * W + col] += maps.scores[i];
        }
      }
    }
    // Corners as the official code computes them, in float32 (boxes stored
    // as floats, (top, left) + (height, width), times the size, - 0.5): a box
    // side that is a whole number of cells in exact arithmetic may be a
    // float32 ulp longer, and then takes one sample more per bin.
    const f = Math.fround;
    const [t, l] = [f(boxes[b][0]), f(boxes[b][1])];
    const [bottom, right] = [f(t + f(boxes[b][2])), f(l + f(boxes[b][3]))];
    const at = (v: number, size: number) => f(f(v * size) - 0.5);
    const corners: [number, number, number, number] = order === "yx"
      ? [at(l, W), at(t, H), at(right, W), at(bottom, H)]
      : [at(t, W), at(l, W), at(bottom, W), at(right, W)];
    const one = refRoiAlign(map, [C, H, W], corners, [1, 1]); // [C, 1, 1]
    cls.set(one, b * C);
    const grid = refRoiAlign(map, [C, H, W], corners, [S, S]); // [C, S, S]
    for (let c = 0; c < C; c++) {
      for (let p = 0; p < S * S; p++) {
        tokens[(b * S * S + p) * C + c] = grid[c * S * S + p];
      }
    }
  }
  return { cls, tokens };
}

/** Random maps with distinct ids per cell, from a seed. */
function randomMaps(
  B: number,
  k: number,
  H: number,
  W: number,
  C: number,
  seed: number,
): TopKMaps & { scores: Float32Array; ids: Int32Array } {
  const scores = testValues(B * k * H * W, seed, 4);
  const u = testValues(B * H * W * C, seed + 1);
  const ids = new Int32Array(B * k * H * W);
  for (let b = 0; b < B; b++) {
    for (let p = 0; p < H * W; p++) {
      // the k classes with the largest u in this cell: distinct
      const order = Array.from({ length: C }, (_, c) => c)
        .sort((x, y) =>
          u[(b * H * W + p) * C + y] - u[(b * H * W + p) * C + x]
        );
      for (let r = 0; r < k; r++) ids[(b * k + r) * H * W + p] = order[r];
    }
  }
  return { k, height: H, width: W, scores, ids };
}

function randomBoxes(n: number, seed: number): NormalizedBox[] {
  const u = testValues(4 * n, seed);
  const out: NormalizedBox[] = [];
  for (let i = 0; i < n; i++) {
    const h = 0.05 + 0.95 * Math.abs(u[4 * i]),
      w = 0.05 + 0.95 * Math.abs(u[4 * i + 1]);
    const t = (1 - h) * Math.abs(u[4 * i + 2]),
      l = (1 - w) * Math.abs(u[4 * i + 3]);
    out.push([t, l, h, w]);
  }
  return out;
}

const EDGE_BOXES: NormalizedBox[] = [
  [0, 0, 1, 1],
  [0.3, 0.1, 0.02, 0.8], // thin
  [0.55, 0.42, 0.01, 0.013], // tiny
  [0.99, 0, 0.01, 1], // the bottom edge
  // Ends at the right edge. (Not [0, 0.6, 1, 0.4]: transposed on the 7 x 9
  // map one of its sample points lands on row 7.0 in float32, the edge where
  // RoIAlign stops counting samples, and float64 puts it an ulp beyond; the
  // torchvision fixture has that box and agrees with the float32 value.)
  [0, 0.55, 1, 0.45],
];

for (
  const [H, W, S, k, C] of [
    [7, 9, 3, 3, 11],
    [15, 15, 14, 5, 13],
    [4, 3, 6, 2, 5], // more bins than cells
    [6, 6, 1, 2, 7], // S = 1: ReLabel's LabelPooling
  ]
) {
  await backendTest(
    `RoIAlign vs the float64 loop: ${H}x${W} map, S=${S}, k=${k}, C=${C}`,
    async () => {
      const boxes = [...EDGE_BOXES, ...randomBoxes(3, H * 100 + W)];
      const B = boxes.length;
      const maps = randomMaps(B, k, H, W, C, 7 * H + S);
      const flips = boxes.map((_, b) => b % 2 === 1);
      for (const order of ["yx", "official-transposed"] as const) {
        const want = reference(maps, boxes, flips, C, S, order);
        const got = await read(
          await poolLabels(maps, boxes, {
            numClasses: C,
            tokenGrid: S,
            flips,
            boxOrder: order,
            output: "scores",
          }),
        );
        await assertClose(got.cls, want.cls, {
          ...SCORES,
          what: `${order} cls`,
        });
        await assertClose(got.tokens, want.tokens, {
          ...SCORES,
          what: `${order} tokens`,
        });
      }
      // Probabilities: softmax and both smoothing rules on top.
      const want = reference(maps, boxes, flips, C, S, "yx");
      for (const rule of ["normalized", "official"] as const) {
        const eps = 0.1;
        const got = await read(
          await poolLabels(maps, boxes, {
            numClasses: C,
            tokenGrid: S,
            flips,
            smoothingRule: rule,
          }),
        );
        const on = rule === "official" ? 1 - eps + eps / C : 1 - eps;
        const apply = (x: Float64Array) =>
          refSoftmax(x, C).map((p) => p * on + eps / C);
        await assertClose(got.cls, apply(want.cls), {
          ...PROBS,
          what: `${rule} cls`,
        });
        await assertClose(got.tokens, apply(want.tokens), {
          ...PROBS,
          what: `${rule} tokens`,
        });
      }
    },
  );
}

interface FixtureCase {
  name: string;
  B: number;
  k: number;
  H: number;
  W: number;
  C: number;
  S: number;
  boxes: NormalizedBox[];
  flips: boolean[];
  scores: number[];
  ids: number[];
  expected: Record<string, { cls: number[]; tokens: number[] }>;
}

const FIXTURE: { cases: FixtureCase[] } = JSON.parse(
  await Deno.readTextFile(`${ROOT}tests/fixtures/pooling_roi_align.json`),
);

await backendTest(
  "RoIAlign vs torchvision.ops.roi_align (fixture)",
  async () => {
    for (const c of FIXTURE.cases) {
      const maps: TopKMaps = {
        k: c.k,
        height: c.H,
        width: c.W,
        scores: Float32Array.from(c.scores),
        ids: Int32Array.from(c.ids),
      };
      for (const order of ["yx", "official-transposed"] as const) {
        const got = await read(
          await poolLabels(maps, c.boxes, {
            numClasses: c.C,
            tokenGrid: c.S,
            flips: c.flips,
            boxOrder: order,
            output: "scores",
          }),
        );
        const what = `${c.name}, ${order}`;
        await assertClose(got.cls, c.expected[order].cls, {
          ...SCORES,
          what: `${what}: cls`,
        });
        await assertClose(got.tokens, c.expected[order].tokens, {
          ...SCORES,
          what: `${what}: tokens`,
        });
      }
    }
  },
);

// ---------------------------------------------------------------------------
// Smoothing, layout, inputs, leaks

await backendTest(
  "smoothing rules, ground truth and the official layout",
  async () => {
    const C = 6, S = 2, B = 3, eps = 0.1;
    const maps = randomMaps(B, 2, 5, 5, C, 91);
    const boxes = randomBoxes(B, 92);
    const labels = [5, 0, 2];
    for (const rule of ["normalized", "official"] as const) {
      const got = await read(
        await poolLabels(maps, boxes, {
          numClasses: C,
          tokenGrid: S,
          smoothingRule: rule,
          labels,
        }),
      );
      const sums = (x: Float32Array) => {
        const out: number[] = [];
        for (let r = 0; r < x.length / C; r++) {
          out.push(x.subarray(r * C, (r + 1) * C).reduce((a, b) => a + b, 0));
        }
        return out;
      };
      // normalized: every label sums to 1; official: to 1 + eps / C (its defect).
      const total = rule === "official" ? 1 + eps / C : 1;
      await assertClose(sums(got.cls), new Array(B).fill(total), {
        rtol: 1e-5,
        what: `${rule} cls sums`,
      });
      await assertClose(sums(got.tokens), new Array(B * S * S).fill(total), {
        rtol: 1e-5,
        what: `${rule} token sums`,
      });
      // The ground truth is timm's one_hot(on = 1 - eps + eps/C, off = eps/C) either way.
      const truth = labels.flatMap((y) =>
        Array.from(
          { length: C },
          (_, c) => (c === y ? 1 - eps + eps / C : eps / C),
        )
      );
      await assertClose(got.truth!, truth, { ...PROBS, what: `${rule} truth` });
    }
    // [B, C, 2 + S*S]: truth, cls, then the tokens, per class.
    const pooled = await poolLabels(maps, boxes, {
      numClasses: C,
      tokenGrid: S,
      labels,
    });
    const target = officialTargetLayout(pooled);
    try {
      assertEquals(target.shape, [B, C, 2 + S * S]);
      const t = await target.data();
      const p = await read(pooled);
      for (let b = 0; b < B; b++) {
        for (let c = 0; c < C; c++) {
          const at = (j: number) => t[(b * C + c) * (2 + S * S) + j];
          assertEquals(at(0), p.truth![b * C + c]);
          assertEquals(at(1), p.cls[b * C + c]);
          for (let j = 0; j < S * S; j++) {
            assertEquals(at(2 + j), p.tokens[(b * S * S + j) * C + c]);
          }
        }
      }
    } finally {
      target.dispose();
    }
    // Without smoothing the labels are the plain softmax.
    const plain = await read(
      await poolLabels(maps, boxes, {
        numClasses: C,
        tokenGrid: S,
        smoothing: 0,
      }),
    );
    const raw = await read(
      await poolLabels(maps, boxes, {
        numClasses: C,
        tokenGrid: S,
        output: "scores",
      }),
    );
    await assertClose(plain.cls, refSoftmax(raw.cls, C), PROBS);
  },
);

await backendTest(
  "tensor inputs give what arrays give; batch of one",
  async () => {
    const C = 9, B = 4;
    const maps = randomMaps(B, 3, 6, 5, C, 33);
    const boxes = randomBoxes(B, 34);
    const options = {
      numClasses: C,
      tokenGrid: 3,
      flips: [true, false, false, true],
    };
    const want = await read(await poolLabels(maps, boxes, options));
    const scores = tf.tensor4d(maps.scores, [B, 3, 6, 5]);
    const ids = tf.tensor4d(maps.ids, [B, 3, 6, 5], "int32");
    const idsAsFloat = tf.cast(ids, "float32"); // as official files store them
    try {
      for (const idT of [ids, idsAsFloat]) {
        const got = await read(
          await poolLabels(
            { ...maps, scores, ids: idT },
            boxes.flat(),
            options,
          ),
        );
        // Same computation; webgpu's atomic scatter-add may sum in another order.
        const same = { rtol: 1e-6, atol: 1e-7 };
        await assertClose(got.cls, want.cls, same);
        await assertClose(got.tokens, want.tokens, same);
      }
    } finally {
      tf.dispose([scores, ids, idsAsFloat]);
    }
    // The official code fails on a batch of one (a squeeze drops the batch axis).
    const one = randomMaps(1, 2, 4, 4, C, 35);
    const got = await poolLabels(one, [[0.1, 0.2, 0.5, 0.6]], {
      numClasses: C,
      tokenGrid: 2,
      labels: [1],
    });
    assertEquals(got.cls.shape, [1, C]);
    assertEquals(got.tokens.shape, [1, 4, C]);
    assertEquals(got.truth!.shape, [1, C]);
    tf.dispose(Object.values(got));
  },
);

await backendTest("pooling leaks no tensors", async () => {
  const maps = randomMaps(3, 2, 5, 5, 7, 51);
  const boxes = randomBoxes(3, 52);
  await assertNoLeaks(async () => {
    const out = await poolLabels(maps, boxes, {
      numClasses: 7,
      tokenGrid: 2,
      labels: [0, 1, 2],
    });
    const target = officialTargetLayout(out);
    await target.data();
    tf.dispose([target, ...Object.values(out)]);
  }, "poolLabels + officialTargetLayout");
  await assertNoLeaks(async () => {
    await assertRejects(
      () =>
        poolLabels(maps, [[0, 0, 2, 1], ...boxes.slice(1)], { numClasses: 7 }),
      LabelPoolingError,
    );
  }, "a rejected call");
});

// ---------------------------------------------------------------------------
// Bad inputs

Deno.test("bad inputs are refused with the image and the problem", async () => {
  const C = 5;
  const good = () => randomMaps(3, 2, 4, 4, C, 61);
  const boxes: NormalizedBox[] = [[0, 0, 1, 1], [0.1, 0.1, 0.5, 0.5], [
    0.5,
    0.5,
    0.5,
    0.5,
  ]];
  const opts = { numClasses: C, tokenGrid: 2 };
  const refuses = async (
    maps: TopKMaps,
    b: readonly NormalizedBox[] | ArrayLike<number>,
    o: PoolLabelsOptions,
    includes: string,
  ) => {
    await assertRejects(
      () => poolLabels(maps, b, o),
      LabelPoolingError,
      includes,
    );
  };
  // Boxes.
  const withBox = (box: NormalizedBox) => [boxes[0], box, boxes[2]];
  await refuses(good(), withBox([-0.1, 0, 0.5, 0.5]), opts, "image 1");
  await refuses(
    good(),
    withBox([0, 1.2, 0.5, 0.5]),
    opts,
    "top and left must lie in [0, 1]",
  );
  await refuses(
    good(),
    withBox([0, 0, 0, 0.5]),
    opts,
    "height and width must be positive",
  );
  await refuses(
    good(),
    withBox([0, 0, 0.5, -0.2]),
    opts,
    "height and width must be positive",
  );
  await refuses(
    good(),
    withBox([0.6, 0, 0.5, 0.5]),
    opts,
    "ends below the image",
  );
  await refuses(
    good(),
    withBox([0, 0.7, 0.5, 0.4]),
    opts,
    "ends right of the image",
  );
  await refuses(good(), withBox([0, 0, NaN, 0.5]), opts, "finite");
  await refuses(good(), withBox([0, 0, 1.5, 0.5]), opts, "at most 1");
  await refuses(
    good(),
    boxes.slice(0, 2),
    opts,
    "one (top, left, height, width) box per image (3), found 2",
  );
  await refuses(good(), [0, 0, 1, 1], opts, "12 numbers for 3 images, found 4");
  await refuses(
    good(),
    [boxes[0], [0, 0, 1] as unknown as NormalizedBox, boxes[2]],
    opts,
    "should be 4 numbers",
  );
  // A box ending at 1 up to float error is fine.
  const ok = await poolLabels(
    good(),
    withBox([0.3, 0.7, 0.7 + 1e-9, 0.3]),
    opts,
  );
  tf.dispose(Object.values(ok));
  // Shapes.
  await refuses(
    { ...good(), k: 0 },
    boxes,
    opts,
    "maps.k must be a positive integer",
  );
  await refuses({ ...good(), height: 2.5 }, boxes, opts, "maps.height");
  await refuses({ ...good(), width: 5 }, boxes, opts, "B x 2 x 4 x 5");
  const m = good();
  await refuses(
    { ...m, ids: m.ids.subarray(1) },
    boxes,
    opts,
    "ids should hold as many values",
  );
  const t = tf.tensor(m.scores, [3, 2, 2, 8]);
  try {
    await refuses(
      { ...m, scores: t },
      boxes,
      opts,
      "scores tensor should have shape [3, 2, 4, 4]",
    );
  } finally {
    t.dispose();
  }
  // Ids and scores.
  const badId = good();
  badId.ids[1 * 32 + 16 + 5] = 7; // image 1, rank 1, cell (1, 1)
  await refuses(
    badId,
    boxes,
    opts,
    "image 1 (batch index 1) names class 7 at rank 1, cell (1, 1), but the dataset has 5 classes",
  );
  const negative = good();
  negative.ids[2 * 32 + 3] = -1;
  await refuses(
    negative,
    boxes,
    opts,
    "image 2 (batch index 2) names class -1",
  );
  const twice = good();
  twice.ids[16 + 6] = twice.ids[6]; // image 0, ranks 0 and 1, cell (1, 2)
  await refuses(
    twice,
    boxes,
    opts,
    "names class " + twice.ids[6] + " twice in cell (1, 2)",
  );
  const nan = good();
  nan.scores[32 + 4] = NaN;
  await refuses(
    nan,
    boxes,
    opts,
    "image 1 (batch index 1) has score NaN at rank 0, cell (1, 0)",
  );
  const inf = good();
  inf.scores[2 * 32] = Infinity;
  await refuses(inf, boxes, opts, "image 2 (batch index 2) has score Infinity");
  const fractional = tf.tensor4d(
    Float32Array.from(good().ids, (x) => x + 0.5),
    [3, 2, 4, 4],
  );
  try {
    await refuses(
      { ...good(), ids: fractional },
      boxes,
      opts,
      "image 0 (batch index 0) names class",
    );
  } finally {
    fractional.dispose();
  }
  // Too large for the index arithmetic: refused before anything is computed.
  const small = {
    k: 1,
    height: 1,
    width: 1,
    scores: new Float32Array(1),
    ids: new Int32Array(1),
  };
  await refuses(
    small,
    [[0, 0, 1, 1]],
    { numClasses: 3000, tokenGrid: 1000 },
    "pool the batch in parts",
  );
  await refuses(
    small,
    [[0, 0, 1, 1]],
    { numClasses: 1, tokenGrid: 5000 },
    "too large for one call",
  );
  // Options.
  await refuses(
    good(),
    boxes,
    { numClasses: 0 },
    "numClasses must be a positive integer",
  );
  await refuses(
    good(),
    boxes,
    { numClasses: 1 },
    "k must be at most numClasses",
  );
  await refuses(
    good(),
    boxes,
    { ...opts, tokenGrid: 0 },
    "tokenGrid must be a positive integer",
  );
  await refuses(
    good(),
    boxes,
    { ...opts, smoothing: 1 },
    "smoothing must lie in [0, 1)",
  );
  await refuses(
    good(),
    boxes,
    { ...opts, smoothing: -0.1 },
    "smoothing must lie in [0, 1)",
  );
  await refuses(
    good(),
    boxes,
    { ...opts, flips: [true] },
    "flips should hold one flag per image (3), found 1",
  );
  await refuses(
    good(),
    boxes,
    { ...opts, labels: [0, 1] },
    "labels should hold one class per image (3), found 2",
  );
  await refuses(
    good(),
    boxes,
    { ...opts, labels: [0, 5, 1] },
    "label of image 1 (batch index 1) is 5",
  );
  await refuses(
    good(),
    boxes,
    { ...opts, boxOrder: "xy" as "yx" },
    'boxOrder must be "yx" or "official-transposed"',
  );
  // The official layout needs the ground truth.
  const noTruth = await poolLabels(good(), boxes, opts);
  try {
    assertThrows(
      () => officialTargetLayout(noTruth),
      LabelPoolingError,
      "pass `labels`",
    );
  } finally {
    tf.dispose(Object.values(noTruth));
  }
  // Stacking.
  const a = {
    k: 1,
    height: 2,
    width: 2,
    scores: new Float32Array(4),
    ids: new Int32Array(4),
  };
  assertThrows(() => stackScoreMaps([]), LabelPoolingError, "at least one map");
  assertThrows(
    () =>
      stackScoreMaps([a, {
        ...a,
        width: 3,
        scores: new Float32Array(6),
        ids: new Int32Array(6),
      }]),
    LabelPoolingError,
    "map 1 has k 1 and 2 x 3 cells, but map 0 has k 1 and 2 x 2",
  );
  assertThrows(
    () => stackScoreMaps([a, { ...a, ids: new Int32Array(3) }]),
    LabelPoolingError,
    "map 1 should hold 4 scores and ids",
  );
  const stacked = stackScoreMaps([a, a]);
  assertEquals([stacked.size, stacked.scores.length], [2, 8]);
  assert(stacked.ids instanceof Int32Array);
});
