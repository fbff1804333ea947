/**
 * Mixing: the MixToken box law (statistics over many draws against the exact
 * expectation of the official discretisation), its clipping and edge cases,
 * the swap-back of token predictions (by hand and through a real
 * `LvVit.forwardTrain`), the area-corrected lambda, CutMix/MixUp target
 * arithmetic, TL-Align's patch-aligned CutMix source indices, the display,
 * errors, leaks and reproducibility, on every backend.
 */

import {
  assert,
  assertEquals,
  assertStringIncludes,
  assertThrows,
} from "./_assert.ts";
import {
  boxLambda,
  type BoxMode,
  LvVit,
  mixClassTargets,
  MixingError,
  MixToken,
  mixupCutmix,
  patchCutmix,
  Rng,
  sampleBox,
  showMixedBatch,
  swapBox,
  tf,
  type TokenBox,
  type TokenMixer,
} from "tokenlab";
import {
  assertClose,
  assertNoLeaks,
  backendTest,
  checkGradients,
} from "tokenlab/testing";

// ---------------------------------------------------------------------------
// Independent reference: the exact law of lambda' = 1 - area / (h w) for
// alpha = 1. With lambda ~ U(0, 1), r = sqrt(1 - lambda) has density 2r on
// [0, 1]; the cut sides floor(h r), floor(w r) are constant between the
// breakpoints k / h and k / w, and the centres are uniform and independent.

/** Mean clipped length of one side of `cut` cells on an axis of n cells. */
function meanSideLength(n: number, cut: number, mode: BoxMode): number {
  let total = 0;
  for (let c = 0; c < n; c++) {
    const lo = c - Math.floor(cut / 2);
    const hi = mode === "official" ? c + Math.floor(cut / 2) : lo + cut;
    total += Math.max(0, Math.min(n, hi) - Math.max(0, lo));
  }
  return total / n;
}

function expectedLambda(h: number, w: number, mode: BoxMode): number {
  const cuts = new Set<number>([0, 1]);
  for (let k = 1; k < h; k++) cuts.add(k / h);
  for (let k = 1; k < w; k++) cuts.add(k / w);
  const ts = [...cuts].sort((a, b) => a - b);
  let area = 0;
  for (let i = 0; i + 1 < ts.length; i++) {
    const p = ts[i + 1] ** 2 - ts[i] ** 2; // P(r in [t_i, t_i+1))
    const mid = (ts[i] + ts[i + 1]) / 2;
    area += p * meanSideLength(h, Math.floor(h * mid), mode) *
      meanSideLength(w, Math.floor(w * mid), mode);
  }
  return 1 - area / (h * w);
}

function boxArea(b: TokenBox): number {
  return (b.bottom - b.top) * (b.right - b.left);
}

Deno.test("MixToken box: mean area-corrected lambda matches the exact law of the discretisation", () => {
  const draws = 40000;
  for (
    const [h, w, mode] of [
      [14, 14, "official"],
      [14, 14, "described"],
      [7, 5, "official"],
      [7, 5, "described"],
    ] as [number, number, BoxMode][]
  ) {
    const rng = new Rng(h * 100 + w + (mode === "official" ? 0 : 7));
    let sum = 0, sumSq = 0;
    for (let i = 0; i < draws; i++) {
      const { box, lambdaCorrected } = sampleBox([h, w], rng, {
        boxMode: mode,
      });
      assert(
        box.top >= 0 && box.left >= 0 && box.bottom <= h && box.right <= w &&
          box.top <= box.bottom && box.left <= box.right,
        `box ${JSON.stringify(box)} outside the ${h}x${w} grid`,
      );
      assertEquals(lambdaCorrected, 1 - boxArea(box) / (h * w));
      sum += lambdaCorrected;
      sumSq += lambdaCorrected ** 2;
    }
    const mean = sum / draws;
    const se = Math.sqrt((sumSq / draws - mean ** 2) / draws);
    const exact = expectedLambda(h, w, mode);
    assert(
      Math.abs(mean - exact) < 5 * se,
      `${h}x${w} ${mode}: mean lambda' ${mean.toFixed(4)}, exact ${
        exact.toFixed(4)
      } (standard error ${se.toFixed(4)})`,
    );
  }
  // The two discretisations are told apart by this test (odd sides lose a cell).
  const gap = expectedLambda(7, 5, "official") -
    expectedLambda(7, 5, "described");
  assert(gap > 0.03, `official vs described gap ${gap}`);
  // Clipping pulls the area below the unclipped mean 1 - E[lambda] = 1/2.
  assert(expectedLambda(14, 14, "described") > 0.5);
});

Deno.test("MixToken box: lambda follows Beta(alpha, alpha)", () => {
  for (const alpha of [0.5, 1, 4]) {
    const rng = new Rng(alpha * 10);
    const n = 20000;
    let sum = 0, sumSq = 0;
    for (let i = 0; i < n; i++) {
      const { lambda } = sampleBox([4, 4], rng, { alpha });
      sum += lambda;
      sumSq += lambda * lambda;
    }
    const mean = sum / n, variance = sumSq / n - mean * mean;
    const expectedVar = 1 / (4 * (2 * alpha + 1));
    assert(Math.abs(mean - 0.5) < 5 * Math.sqrt(expectedVar / n));
    assert(
      Math.abs(variance - expectedVar) < 0.1 * expectedVar,
      `alpha ${alpha}: variance ${variance}, expected ${expectedVar}`,
    );
  }
});

Deno.test("MixToken box: edge cases by hand (lambda 0 and 1, odd sides, clipping)", () => {
  const centre = (seed: number, h: number, w: number) => {
    const r = new Rng(seed);
    return [r.int(h), r.int(w)];
  };
  for (let seed = 0; seed < 50; seed++) {
    // lambda 0: cut = the whole side. Official: [c - 3, c + 3) on 7 rows.
    const [cy, cx] = centre(seed, 7, 6);
    const off = sampleBox([7, 6], new Rng(seed), { lambda: 0 });
    assertEquals(off.box, {
      top: Math.max(0, cy - 3),
      bottom: Math.min(7, cy + 3),
      left: Math.max(0, cx - 3),
      right: Math.min(6, cx + 3),
    });
    assert(off.box.bottom - off.box.top <= 6, "odd side 7 loses a cell");
    const des = sampleBox([7, 6], new Rng(seed), {
      lambda: 0,
      boxMode: "described",
    });
    assertEquals(des.box, {
      top: Math.max(0, cy - 3),
      bottom: Math.min(7, cy + 4),
      left: Math.max(0, cx - 3),
      right: Math.min(6, cx + 3),
    });
    // lambda 1: an empty box, lambda' = 1.
    const one = sampleBox([7, 6], new Rng(seed), { lambda: 1 });
    assertEquals(boxArea(one.box), 0);
    assertEquals(one.lambdaCorrected, 1);
    // Side 1 (1 - lambda in [1/49, 4/49) on 7 rows): official empty, described one cell.
    const small = { lambda: 1 - 2 / 49 };
    assertEquals(boxArea(sampleBox([7, 7], new Rng(seed), small).box), 0);
    assertEquals(
      boxArea(
        sampleBox([7, 7], new Rng(seed), { ...small, boxMode: "described" })
          .box,
      ),
      1,
    );
  }
  // Lambda near 0 with a central centre on an even grid covers it all.
  let full = false;
  for (let seed = 0; seed < 200 && !full; seed++) {
    full = sampleBox([4, 4], new Rng(seed), { lambda: 0 }).lambdaCorrected ===
      0;
  }
  assert(full, "a centred lambda-0 box covers the even grid");
  assertEquals(
    boxLambda({ top: 1, left: 0, bottom: 3, right: 4 }, [4, 4]),
    0.5,
  );
  assertEquals(boxLambda(null, [4, 4]), 1);
});

Deno.test("mixing: clear errors for bad options and shapes", () => {
  assertThrows(() => new MixToken({ alpha: 0 }), MixingError, "alpha");
  assertThrows(() => new MixToken({ alpha: -1 }), MixingError, "> 0");
  assertThrows(() => new MixToken({ prob: 1.5 }), MixingError, "[0, 1]");
  assertThrows(() => new MixToken({ prob: -0.1 }), MixingError, "prob");
  assertThrows(
    () => sampleBox([0, 4], new Rng(0)),
    MixingError,
    "positive integers",
  );
  assertThrows(
    () => sampleBox([4, 4], new Rng(0), { alpha: 0 }),
    MixingError,
    "alpha",
  );
  assertThrows(
    () => boxLambda({ top: 0, left: 0, bottom: 5, right: 2 }, [4, 4]),
    MixingError,
    "does not fit a 4x4 grid",
  );
});

await backendTest("mixing: batch and option errors", () => {
  const images = tf.zeros([4, 8, 8, 3]) as tf.Tensor4D;
  const y3 = tf.zeros([3, 5]) as tf.Tensor2D;
  const y4 = tf.zeros([4, 5]) as tf.Tensor2D;
  const tok = tf.zeros([4, 3, 5]) as tf.Tensor3D;
  try {
    assertThrows(
      () => mixupCutmix({ images, classTargets: y3 }, new Rng(0)),
      MixingError,
      "class targets must be [4, classes] for a batch of 4 images, found shape [3,5]",
    );
    assertThrows(
      () =>
        mixupCutmix({ images, classTargets: y4 }, new Rng(0), {
          mixupAlpha: 0,
          cutmixAlpha: 0,
        }),
      MixingError,
      "both 0",
    );
    assertThrows(
      () => mixupCutmix({ images, classTargets: y4 }, new Rng(0), { prob: 2 }),
      MixingError,
      "prob",
    );
    assertThrows(
      () =>
        mixupCutmix({ images, classTargets: y4 }, new Rng(0), {
          mixupAlpha: -1,
        }),
      MixingError,
      "mixupAlpha",
    );
    assertThrows(
      () =>
        patchCutmix({ images, classTargets: y4 }, new Rng(0), {
          patchSize: 3,
        }),
      MixingError,
      "dividing the image size 8x8",
    );
    assertThrows(
      () =>
        patchCutmix(
          { images, classTargets: y4, tokenTargets: tok },
          new Rng(0),
          {
            patchSize: 4,
          },
        ),
      MixingError,
      "2x2 = 4",
    );
    assertThrows(
      () =>
        patchCutmix({ images, classTargets: y4 }, new Rng(0), {
          patchSize: 4,
          alpha: 0,
        }),
      MixingError,
      "alpha",
    );
    assertThrows(
      () =>
        new MixToken().mix(
          tf.zeros([4, 5]) as unknown as tf.Tensor4D,
          new Rng(0),
        ),
      MixingError,
      "patch tokens",
    );
  } finally {
    tf.dispose([images, y3, y4, tok]);
  }
});

/** Tokens [B, h, w, D] whose every value is the sample's batch index. */
function indexTokens(B: number, h: number, w: number, D: number): tf.Tensor4D {
  const v = new Float32Array(B * h * w * D);
  for (let i = 0; i < v.length; i++) v[i] = Math.floor(i / (h * w * D));
  return tf.tensor4d(v, [B, h, w, D]);
}

await backendTest(
  "MixToken: mix puts the partner inside the box; unmix brings every token back",
  async () => {
    for (const B of [4, 3]) {
      const [h, w, D] = [5, 6, 2];
      const tokens = indexTokens(B, h, w, D);
      await assertNoLeaks(async () => {
        const mixer = new MixToken();
        for (let seed = 0; seed < 4; seed++) {
          const { tokens: mixed, box } = mixer.mix(tokens, new Rng(seed));
          assert(box !== null);
          const m = await mixed.data();
          for (let b = 0; b < B; b++) {
            for (let r = 0; r < h; r++) {
              for (let c = 0; c < w; c++) {
                const inside = r >= box.top && r < box.bottom &&
                  c >= box.left && c < box.right;
                const at = ((b * h + r) * w + c) * D;
                assertEquals(m[at], inside ? B - 1 - b : b);
              }
            }
          }
          // mix -> identity "model" -> unmix: every prediction is its own image's.
          const back = mixer.unmix(mixed, box);
          await assertClose(back, tokens, {
            rtol: 0,
            atol: 0,
            what: "unmixed",
          });
          tf.dispose([mixed, back]);
        }
      }, "mix/unmix");
      tokens.dispose();
    }
  },
);

await backendTest(
  "MixToken: prob 0 never mixes; the same seed gives the same box",
  async () => {
    const tokens = indexTokens(2, 4, 4, 1);
    const off = new MixToken({ prob: 0 }).mix(tokens, new Rng(0));
    assertEquals(off.box, null);
    assert(off.tokens === tokens);
    const half = new MixToken({ prob: 0.5 });
    let nulls = 0;
    for (let s = 0; s < 200; s++) {
      if (half.sample([4, 4], new Rng(s)) === null) nulls++;
    }
    assert(nulls > 70 && nulls < 130, `prob 0.5: ${nulls} of 200 not mixed`);
    const a = new MixToken().mix(tokens, new Rng(9));
    const b = new MixToken().mix(tokens, new Rng(9));
    assertEquals(a.box, b.box);
    await assertClose(a.tokens, b.tokens, { rtol: 0, atol: 0 });
    tf.dispose([tokens, a.tokens, b.tokens]);
  },
);

await backendTest(
  "MixToken: class targets mixed with the area-corrected lambda",
  async () => {
    const y = tf.tensor2d([[1, 0, 0], [0, 1, 0], [0, 0, 1]]);
    await assertNoLeaks(async () => {
      const box = { top: 0, left: 1, bottom: 2, right: 4 }; // 6 of 16 tokens
      const m = mixClassTargets(y, box, { grid: [4, 4] });
      const l = 1 - 6 / 16;
      await assertClose(m, [l, 0, 1 - l, 0, 1, 0, 1 - l, 0, l], {
        rtol: 1e-6,
        what: "mixed class targets",
      });
      const same = mixClassTargets(y, null, { grid: [4, 4] });
      await assertClose(same, y, { rtol: 0, atol: 0 });
      const empty = mixClassTargets(
        y,
        { top: 2, left: 2, bottom: 2, right: 3 },
        {
          grid: [4, 4],
        },
      );
      await assertClose(empty, y, { rtol: 0, atol: 0 });
      tf.dispose([m, same, empty]);
    });
    assertThrows(
      () =>
        mixClassTargets(y, { top: 0, left: 0, bottom: 5, right: 1 }, {
          grid: [4, 4],
        }),
      MixingError,
      "4x4",
    );
    y.dispose();
  },
);

/** Wraps a mixer so that its unmix is the identity (to show the check has power). */
class NoUnmix implements TokenMixer {
  constructor(readonly inner: TokenMixer) {}
  mix(tokens: tf.Tensor4D, rng: Rng) {
    return this.inner.mix(tokens, rng);
  }
  unmix(predictions: tf.Tensor4D): tf.Tensor4D {
    return tf.clone(predictions);
  }
}

await backendTest(
  "MixToken in LvVit.forwardTrain: token predictions come back to their own images",
  async () => {
    // With the attention projection zeroed every block is token-wise, so a
    // token's aux prediction depends on that token alone: after unmix the
    // mixed forward must give the un-mixed forward's aux logits everywhere,
    // while skipping unmix leaves the partner's predictions inside the box.
    const model = LvVit.create({
      imgSize: 16,
      patchSize: 4,
      embedDim: 8,
      depth: 1,
      numHeads: 2,
      stemChannels: 4,
      numClasses: 3,
      dropPathRate: 0,
    }, { seed: 1 });
    for (
      const name of ["blocks.0.attn.proj.weight", "blocks.0.attn.proj.bias"]
    ) {
      const v = model.state.get(name)!;
      v.assign(tf.zerosLike(v));
    }
    const x = tf.randomNormal([3, 16, 16, 3], 0, 1, "float32", 5);
    const opts = { updateStats: false };
    await assertNoLeaks(async () => {
      const plain = model.forwardTrain(x, { ...opts, rng: new Rng(0) });
      let seen = 0;
      for (let seed = 0; seed < 6 && seen < 2; seed++) {
        const mixer = new MixToken();
        const mixed = model.forwardTrain(x, {
          ...opts,
          mixer,
          rng: new Rng(seed),
        });
        const expectedBox = mixer.sample([4, 4], new Rng(seed));
        assertEquals(mixed.box, expectedBox);
        await assertClose(mixed.aux!, plain.aux!, {
          rtol: 1e-4,
          atol: 1e-5,
          what: "unmixed aux logits",
        });
        const raw = model.forwardTrain(x, {
          ...opts,
          mixer: new NoUnmix(mixer),
          rng: new Rng(seed),
        });
        if (boxArea(mixed.box!) > 0) {
          seen++;
          let differs = false;
          try {
            await assertClose(raw.aux!, plain.aux!, { rtol: 1e-4, atol: 1e-5 });
          } catch {
            differs = true;
          }
          assert(
            differs,
            "without unmix the box holds the partner's predictions",
          );
        }
        tf.dispose([mixed.cls, mixed.aux!, raw.cls, raw.aux!]);
      }
      assert(seen > 0, "no seed drew a non-empty box");
      tf.dispose([plain.cls, plain.aux!]);
    }, "forwardTrain with MixToken");
    x.dispose();
    model.dispose();
  },
);

/** Images whose every pixel holds its batch index; one-hot class targets. */
function indexBatch(B: number, H: number, W: number, C: number) {
  const v = new Float32Array(B * H * W * 3);
  for (let i = 0; i < v.length; i++) v[i] = Math.floor(i / (H * W * 3));
  const images = tf.tensor4d(v, [B, H, W, 3]);
  const labels = Array.from({ length: B }, (_, i) => i % C);
  const classTargets = tf.tidy(() =>
    tf.cast(tf.oneHot(tf.tensor1d(labels, "int32"), C), "float32")
  ) as tf.Tensor2D;
  return { images, classTargets, labels };
}

function blendRef(
  y: Float32Array | number[],
  B: number,
  C: number,
  lam: number,
): number[] {
  const out: number[] = [];
  for (let b = 0; b < B; b++) {
    for (let c = 0; c < C; c++) {
      out.push(lam * y[b * C + c] + (1 - lam) * y[(B - 1 - b) * C + c]);
    }
  }
  return out;
}

await backendTest(
  "CutMix on pixels: box, area-corrected lambda, global-lambda targets",
  async () => {
    const [B, H, W, C, N] = [4, 10, 10, 5, 4];
    const { images, classTargets } = indexBatch(B, H, W, C);
    const tokV = new Float32Array(B * N * C).map((_, i) => (i * 7) % 11 / 11);
    const tokenTargets = tf.tensor3d(tokV, [B, N, C]);
    await assertNoLeaks(async () => {
      for (let seed = 0; seed < 5; seed++) {
        const mixed = mixupCutmix(
          { images, classTargets, tokenTargets },
          new Rng(seed),
          { mixupAlpha: 0, cutmixAlpha: 1 },
        );
        // The same draws by hand: lambda, then the box with that lambda.
        const ref = new Rng(seed);
        const lam0 = ref.beta(1, 1);
        const { box } = sampleBox([H, W], ref, { lambda: lam0 });
        assertEquals(mixed.mode, "cutmix");
        assertEquals(mixed.box, box);
        const lam = 1 - boxArea(box) / (H * W);
        assertEquals(mixed.lambda, lam);
        const px = await mixed.images.data();
        for (let b = 0; b < B; b++) {
          for (let r = 0; r < H; r++) {
            for (let c = 0; c < W; c++) {
              const inside = r >= box.top && r < box.bottom && c >= box.left &&
                c < box.right;
              assertEquals(
                px[((b * H + r) * W + c) * 3],
                inside ? B - 1 - b : b,
              );
            }
          }
        }
        const y = await classTargets.data() as Float32Array;
        await assertClose(mixed.classTargets, blendRef(y, B, C, lam), {
          rtol: 1e-5,
          what: "class targets",
        });
        // Token targets: one global lambda for every token (not spatial).
        const ref3: number[] = [];
        for (let b = 0; b < B; b++) {
          for (let i = 0; i < N * C; i++) {
            ref3.push(
              lam * tokV[b * N * C + i] +
                (1 - lam) * tokV[(B - 1 - b) * N * C + i],
            );
          }
        }
        await assertClose(mixed.tokenTargets!, ref3, {
          rtol: 1e-5,
          what: "token targets",
        });
        mixed.dispose();
      }
    }, "cutmix");
    tf.dispose([images, classTargets, tokenTargets]);
  },
);

await backendTest(
  "MixUp on pixels and the switch: blended images and targets",
  async () => {
    const [B, H, W, C] = [2, 4, 4, 3];
    const { images, classTargets } = indexBatch(B, H, W, C);
    await assertNoLeaks(async () => {
      const mixed = mixupCutmix({ images, classTargets }, new Rng(3), {
        mixupAlpha: 0.8,
        cutmixAlpha: 0,
      });
      const lam = new Rng(3).beta(0.8, 0.8);
      assertEquals(mixed.mode, "mixup");
      assertEquals(mixed.box, null);
      assertEquals(mixed.lambda, lam);
      const px = await mixed.images.data();
      await assertClose(px[0], 1 - lam, { rtol: 1e-5, what: "image 0 pixel" });
      await assertClose(px[px.length - 1], lam, { rtol: 1e-5 });
      const y = await classTargets.data() as Float32Array;
      await assertClose(mixed.classTargets, blendRef(y, B, C, lam), {
        rtol: 1e-5,
      });
      mixed.dispose();
      // prob 0: nothing mixes, copies come back.
      const none = mixupCutmix({ images, classTargets }, new Rng(3), {
        prob: 0,
      });
      assertEquals(none.mode, "none");
      assertEquals(none.lambda, 1);
      await assertClose(none.images, images, { rtol: 0, atol: 0 });
      none.dispose();
      // Both on: the switch picks each about half of the time.
      let cut = 0;
      for (let s = 0; s < 100; s++) {
        const m = mixupCutmix({ images, classTargets }, new Rng(s));
        if (m.mode === "cutmix") cut++;
        m.dispose();
      }
      assert(cut > 30 && cut < 70, `cutmix chosen ${cut} of 100 times`);
    }, "mixup");
    tf.dispose([images, classTargets]);
  },
);

await backendTest(
  "TL-Align patch CutMix: box on the patch grid, source indices, lambda",
  async () => {
    const [B, H, W, C, p] = [4, 12, 12, 4, 3];
    const [h, w] = [H / p, W / p];
    const { images, classTargets, labels } = indexBatch(B, H, W, C);
    // Token targets: the one-hot label of the token's own image.
    const tokenTargets = tf.tidy(() =>
      tf.tile(tf.expandDims(classTargets, 1), [1, h * w, 1])
    ) as tf.Tensor3D;
    await assertNoLeaks(async () => {
      for (let seed = 0; seed < 8; seed++) {
        const mixed = patchCutmix(
          { images, classTargets, tokenTargets },
          new Rng(seed),
          { patchSize: p },
        );
        const box = mixed.box!;
        for (const v of [box.top, box.left, box.bottom, box.right]) {
          assertEquals(v % p, 0, "box edges on the patch grid");
        }
        // Square before clipping: side int(h sqrt(1 - lambda)) from the same draw.
        const ref = new Rng(seed);
        let lam0 = 1;
        while (lam0 === 1) lam0 = ref.beta(1, 1);
        const side = Math.floor(h * Math.sqrt(1 - lam0));
        const [cy, cx] = [ref.int(h), ref.int(w)];
        const lo = (c: number) => Math.max(0, c - Math.floor(side / 2));
        const hi = (c: number, n: number) =>
          Math.min(n, c - Math.floor(side / 2) + side);
        assertEquals(box, {
          top: lo(cy) * p,
          bottom: hi(cy, h) * p,
          left: lo(cx) * p,
          right: hi(cx, w) * p,
        });
        const lam = 1 - boxArea(box) / (H * W);
        assertEquals(mixed.lambda, lam);
        // Every pixel of every patch comes from the image sourceIndex names.
        const px = await mixed.images.data();
        const src = mixed.sourceIndex!;
        for (let b = 0; b < B; b++) {
          for (let y = 0; y < H; y++) {
            for (let x = 0; x < W; x++) {
              const t = (b * h + Math.floor(y / p)) * w + Math.floor(x / p);
              assertEquals(px[((b * H + y) * W + x) * 3], src[t]);
            }
          }
        }
        // Token targets follow their pixels; class targets take lambda.
        const tt = await mixed.tokenTargets!.data();
        for (let t = 0; t < B * h * w; t++) {
          for (let c = 0; c < C; c++) {
            assertEquals(tt[t * C + c], labels[src[t]] === c ? 1 : 0);
          }
        }
        const y = await classTargets.data() as Float32Array;
        await assertClose(mixed.classTargets, blendRef(y, B, C, lam), {
          rtol: 1e-5,
        });
        mixed.dispose();
      }
    }, "patch cutmix");
    tf.dispose([images, classTargets, tokenTargets]);
  },
);

await backendTest(
  "mixing: reproducible from the seed; the display shows images, box and targets",
  async () => {
    const { images, classTargets } = indexBatch(2, 8, 8, 3);
    const a = patchCutmix({ images, classTargets }, new Rng(11), {
      patchSize: 2,
    });
    const b = patchCutmix({ images, classTargets }, new Rng(11), {
      patchSize: 2,
    });
    assertEquals(a.box, b.box);
    assertEquals(a.sourceIndex, b.sourceIndex);
    await assertClose(a.images, b.images, { rtol: 0, atol: 0 });
    const view = await assertNoLeaks(
      () => showMixedBatch(a, { classNames: ["cat", "dog", "fox"] }),
      "display",
    );
    const bundle =
      (view as unknown as Record<symbol, () => Record<string, unknown>>)[
        Symbol.for("Jupyter.display")
      ]();
    for (
      const k of [
        "application/vnd.plotly.v1+json",
        "text/html",
        "image/svg+xml",
        "text/plain",
      ]
    ) {
      assert(k in bundle, `display bundle lacks ${k}`);
    }
    const text = bundle["text/plain"] as string;
    assertStringIncludes(text, "cutmix, lambda");
    assertStringIncludes(text, "image 0: cat");
    assertStringIncludes(bundle["image/svg+xml"] as string, 'stroke="red"');
    assertStringIncludes(bundle["text/html"] as string, "data:image/svg+xml");
    tf.dispose([images, classTargets]);
    a.dispose();
    b.dispose();
  },
);

Deno.test("swapBox refuses a box outside the tensor", () => {
  const x = tf.zeros([2, 3, 3, 1]) as tf.Tensor4D;
  assertThrows(
    () => swapBox(x, { top: 0, left: 0, bottom: 4, right: 1 }),
    MixingError,
    "3x3",
  );
  x.dispose();
});

await backendTest(
  "MixToken: gradients flow through the swap; a training step leaks nothing",
  async () => {
    const x = tf.randomNormal([3, 2, 3, 2], 0, 1, "float32", 2) as tf.Tensor4D;
    const weights = tf.randomNormal([3, 2, 3, 2], 0, 1, "float32", 3);
    const box = { top: 0, left: 1, bottom: 2, right: 3 };
    await checkGradients(
      (t) => tf.sum(tf.mul(swapBox(t as tf.Tensor4D, box), weights)),
      [x],
      { what: "swapBox gradient" },
    );
    tf.dispose([x, weights]);
    const model = LvVit.create({
      imgSize: 8,
      patchSize: 4,
      embedDim: 8,
      depth: 1,
      numHeads: 2,
      stemChannels: 4,
      numClasses: 3,
    }, { seed: 2 });
    const images = tf.randomNormal([2, 8, 8, 3], 0, 1, "float32", 4);
    const mixer = new MixToken();
    await assertNoLeaks(async () => {
      const { value, grads } = tf.variableGrads(() => {
        const out = model.forwardTrain(images, { mixer, rng: new Rng(1) });
        return tf.add(tf.mean(out.cls), tf.mean(out.aux!)) as tf.Scalar;
      });
      const g = grads["pos_embed"] ?? Object.values(grads)[0];
      const size = tf.tidy(() => tf.sum(tf.abs(g)));
      assert((await size.data())[0] > 0, "non-zero gradient");
      tf.dispose([size, value, ...Object.values(grads)]);
    }, "training step with MixToken");
    images.dispose();
    model.dispose();
  },
);
