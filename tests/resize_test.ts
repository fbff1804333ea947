/**
 * resizeImage against Pillow 9.4: every case of tests/fixtures/resize_pil.json
 * (made by tests/fixtures/make_image_fixtures.py) must come out byte for
 * byte identical: the three filters, up- and downscaling by non-integer
 * factors, fractional boxes, single-pass cases, and photo-sized images.
 */

import { assert, assertEquals, assertThrows } from "./_assert.ts";
import { type ResizeFilter, resizeImage } from "tokenlab/data/resize.ts";
import type { RgbImage } from "tokenlab/data/image.ts";

interface Case {
  source: string;
  width: number;
  height: number;
  filter: ResizeFilter;
  box?: [number, number, number, number];
  sha256: string;
  data?: string;
}

const fixture = JSON.parse(
  await Deno.readTextFile(
    new URL("./fixtures/resize_pil.json", import.meta.url),
  ),
) as {
  sources: Record<
    string,
    { width: number; height: number; seed: number; sha256: string }
  >;
  cases: Case[];
};

/** The fixture script's `source()`: integers only, so both sides agree. */
function source(w: number, h: number, seed: number): RgbImage {
  let s = seed;
  const data = new Uint8Array(w * h * 3);
  let i = 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const region = (Math.floor(x / 5) + Math.floor(y / 4)) % 4;
      for (let c = 0; c < 3; c++) {
        s = (Math.imul(s, 1103515245) + 12345) & 0x7fffffff;
        let v: number;
        if (region === 0) v = (x + y) & 1 ? 255 : 0;
        else if (region === 1) v = (s >> 16) & 255;
        else {
          v = (Math.floor((x * 255) / Math.max(w - 1, 1)) + y * 3 + c * 40) %
            256;
        }
        data[i++] = v;
      }
    }
  }
  return { width: w, height: h, data };
}

const sources = new Map<string, RgbImage>(
  Object.entries(fixture.sources).map((
    [k, v],
  ) => [k, source(v.width, v.height, v.seed)]),
);

async function sha256(bytes: Uint8Array): Promise<string> {
  const d = new Uint8Array(
    await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>),
  );
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}

function describe(c: Case): string {
  return `${c.source} -> ${c.width}x${c.height} ${c.filter}${
    c.box ? ` box [${c.box}]` : ""
  }`;
}

Deno.test("resizeImage matches Pillow byte for byte on every fixture case", async () => {
  const failures: string[] = [];
  for (const c of fixture.cases) {
    const out = resizeImage(sources.get(c.source)!, c.width, c.height, {
      filter: c.filter,
      box: c.box,
    });
    assertEquals([out.width, out.height], [c.width, c.height]);
    assertEquals(out.data.length, c.width * c.height * 3);
    if (c.data !== undefined) {
      const want = Uint8Array.from(atob(c.data), (ch) => ch.charCodeAt(0));
      let maxDiff = 0, nDiff = 0;
      for (let i = 0; i < want.length; i++) {
        const d = Math.abs(want[i] - out.data[i]);
        if (d > 0) nDiff++;
        maxDiff = Math.max(maxDiff, d);
      }
      if (nDiff > 0) {
        failures.push(
          `${describe(c)}: ${nDiff} bytes differ, max ${maxDiff}`,
        );
        continue;
      }
    }
    if ((await sha256(out.data)) !== c.sha256) {
      failures.push(`${describe(c)}: SHA-256 differs`);
    }
  }
  assert(fixture.cases.length > 300, "the fixture should hold > 300 cases");
  assertEquals(failures, []);
});

Deno.test("resizeImage: the test's source images are the fixture script's", async () => {
  // Guards the test itself: a drift in source() would fail every case above
  // for a reason unrelated to resizing.
  for (const [name, { sha256: want }] of Object.entries(fixture.sources)) {
    assertEquals(await sha256(sources.get(name)!.data), want, name);
  }
});

Deno.test("resizeImage: identity, crop shortcut, input untouched", () => {
  const img = sources.get("small")!;
  const before = img.data.slice();
  const same = resizeImage(img, img.width, img.height);
  assertEquals(same.data, img.data);
  assert(same.data !== img.data, "expected a copy, not the input's buffer");
  const crop = resizeImage(img, 2, 1, { box: [3, 4, 5, 5] });
  assertEquals(
    crop.data,
    img.data.slice((4 * img.width + 3) * 3, (4 * img.width + 5) * 3),
  );
  assertEquals(img.data, before);
});

Deno.test("resizeImage: bad arguments say what was expected", () => {
  const img = sources.get("small")!;
  assertThrows(() => resizeImage(img, 0, 5), RangeError, "positive integer");
  assertThrows(() => resizeImage(img, 2.5, 5), RangeError, "positive integer");
  assertThrows(
    () => resizeImage(img, 5, 5, { box: [0, 0, 30, 23] }),
    RangeError,
    "x1 <= 29",
  );
  assertThrows(
    () => resizeImage(img, 5, 5, { box: [4, 0, 3, 23] }),
    RangeError,
    "found [4,0,3,23]",
  );
  assertThrows(
    () =>
      resizeImage(img, 5, 5, { filter: "lanczos" as unknown as ResizeFilter }),
    RangeError,
    '"nearest", "bilinear" or "bicubic"',
  );
  assertThrows(
    () => resizeImage({ width: 2, height: 2, data: new Uint8Array(5) }, 1, 1),
    RangeError,
    "width * height * 3",
  );
});

Deno.test("resizeImage: speed of 500x375 -> 224 (bicubic)", () => {
  const img = sources.get("photo")!;
  const time = (f: () => void) => {
    f();
    const reps = 20;
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) f();
    return (performance.now() - t0) / reps;
  };
  const crop = time(() =>
    resizeImage(img, 224, 224, { box: [37.6, 12.25, 311.9, 290] })
  );
  const short = time(() => resizeImage(img, 299, 224));
  const squash = time(() => resizeImage(img, 224, 224));
  console.log(
    `resizeImage bicubic 500x375: RandomResizedCrop-like box -> 224x224 ${
      crop.toFixed(2)
    } ms, short side -> 299x224 ${short.toFixed(2)} ms, squash -> 224x224 ${
      squash.toFixed(2)
    } ms`,
  );
  // Generous bound (slow CI machines); typical is a few ms.
  assert(short < 100, `resizing took ${short} ms`);
});
