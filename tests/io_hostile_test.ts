/**
 * The tensor file readers against hostile files (issue 20): ZIP archives
 * whose counts, sizes and offsets lie, deflate bombs, pickles declaring huge
 * lengths, tensor shapes whose element count or reach is absurd, safetensors
 * headers that lie or name a tensor twice. Every file is built here, in
 * memory; each case asserts the reader's own error class, that the message
 * names the file and the field, and that the reader failed fast without
 * allocating much (time and resident memory around the call).
 */

import {
  assert,
  assertEquals,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "./_assert.ts";
import {
  CheckpointError,
  isTorchTensor,
  readTorchFile,
  readTorchStateDict,
  TorchZip,
} from "tokenlab/io/torch/mod.ts";
import {
  decodeSafetensors,
  encodeSafetensors,
  readSafetensors,
} from "tokenlab/io/safetensors.ts";
import { allocData } from "tokenlab/io/raw_tensor.ts";
import { readOfficialMap, ScoreMapError } from "tokenlab/labels/mod.ts";
import {
  buildZip,
  Bytes,
  crc32,
  dictPickle,
  long1,
  P,
  rebuildTensorOps,
  torchArchive,
} from "./_helpers.ts";

const enc = new TextEncoder();

// ---------------------------------------------------------------------------
// Building ZIP archives byte by byte.

/** Raw deflate of `bytes` (or of `repeat` copies of them), through the platform. */
async function deflate(
  bytes: Uint8Array<ArrayBuffer>,
  repeat = 1,
): Promise<Uint8Array> {
  const cs = new CompressionStream("deflate-raw");
  const writer = cs.writable.getWriter();
  const out = new Response(cs.readable).arrayBuffer();
  for (let i = 0; i < repeat; i++) await writer.write(bytes);
  await writer.close();
  return new Uint8Array(await out);
}

// ---------------------------------------------------------------------------
// Building pickles byte by byte (protocol 2, as torch writes).

/** A `_rebuild_tensor_v2` call with its ints as LONG1, which takes the huge sizes these files declare. */
const rebuild = (
  key: string,
  storage: string,
  numel: number,
  offset: number,
  size: number[],
  stride: number[],
) =>
  rebuildTensorOps({ key, storage, numel, offset, size, stride, int: long1 });

const f32bytes = (values: number[]) =>
  new Uint8Array(new Float32Array(values).buffer);

// ---------------------------------------------------------------------------
// Running a read that must fail fast and small.

async function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "tokenlab-hostile-" });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function put(dir: string, name: string, bytes: Uint8Array) {
  const path = `${dir}/${name}`;
  await Deno.writeFile(path, bytes);
  return path;
}

const MAX_GROWTH = 200 * 2 ** 20;

/**
 * Runs `read`, which must reject with `cls`, in under `ms` and with the
 * resident memory growing by less than 200 MB; returns the message after
 * checking that it holds each of `parts`.
 */
async function refusedFast(
  read: () => Promise<unknown>,
  // deno-lint-ignore no-explicit-any
  cls: new (...args: any[]) => Error,
  parts: string[],
  ms = 3000,
): Promise<string> {
  const rss0 = Deno.memoryUsage().rss;
  const t0 = performance.now();
  const e = await assertRejects(read, cls);
  const took = performance.now() - t0;
  const grew = Deno.memoryUsage().rss - rss0;
  assert(took < ms, `expected the refusal in under ${ms} ms, took ${took}`);
  assert(
    grew < MAX_GROWTH,
    `expected the resident memory to grow by less than 200 MB, grew ${
      grew / 2 ** 20
    } MB`,
  );
  for (const p of parts) assertStringIncludes(e.message, p);
  return e.message;
}

// ---------------------------------------------------------------------------
// ZIP structure.

Deno.test("zip: a Zip64 end record claiming 2^40 entries is refused before allocating", async () => {
  await withDir(async (dir) => {
    const zip = buildZip(
      [{ name: "archive/version", data: enc.encode("3\n") }],
      { zip64: { count: 2n ** 40n } },
    );
    const path = await put(dir, "count.pt", zip);
    const want = [
      "count.pt",
      "the Zip64 end-of-central-directory record declares 1099511627776 entries",
      "holds at most 1 (46 bytes each at least)",
    ];
    await refusedFast(() => TorchZip.open(path), CheckpointError, want);
    await refusedFast(() => readTorchFile(path), CheckpointError, want);
    await refusedFast(() => readTorchStateDict(path), CheckpointError, want);
    // The score-map reader passes the reader's error on, as its own.
    await refusedFast(() => readOfficialMap(path), ScoreMapError, [
      "cannot read the score map",
      "declares 1099511627776 entries",
    ]);
    // A 64-bit field past 2^53 is refused, naming the field.
    const huge = buildZip(
      [{ name: "a", data: new Uint8Array(1) }],
      { zip64: { cdOffset: 2n ** 60n } },
    );
    const p2 = await put(dir, "huge.zip", huge);
    await refusedFast(() => TorchZip.open(p2), CheckpointError, [
      "huge.zip",
      "the Zip64 end-of-central-directory record's central directory offset is 1152921504606846976, beyond 2^53",
    ]);
  });
});

Deno.test("zip: a central directory past the end, entries outside the file", async () => {
  await withDir(async (dir) => {
    const entries = [{ name: "a", data: enc.encode("hello") }];
    const good = buildZip(entries);
    const past = await put(
      dir,
      "past.zip",
      buildZip(entries, { cdOffset: good.length + 1000 }),
    );
    await refusedFast(() => TorchZip.open(past), CheckpointError, [
      "past.zip",
      "the central directory (",
      "from the end-of-central-directory record) runs past the end of the file",
    ]);
    const long = await put(
      dir,
      "long.zip",
      buildZip(entries, { cdSize: 0x7fffffff }),
    );
    await refusedFast(() => readTorchFile(long), CheckpointError, [
      "long.zip",
      "(2147483647 bytes at byte",
      "runs past the end of the file",
    ]);
    // A Zip64 central directory larger than the file.
    const z64 = await put(
      dir,
      "z64.zip",
      buildZip(entries, { zip64: { cdSize: 2n ** 40n } }),
    );
    await refusedFast(() => TorchZip.open(z64), CheckpointError, [
      "z64.zip",
      "(1099511627776 bytes at byte",
      "from the Zip64 end-of-central-directory record) runs past the end",
    ]);
    // An entry whose local header lies past the end (through Zip64).
    const off = await put(
      dir,
      "offset.zip",
      buildZip([{ ...entries[0], zip64: { offset: 2n ** 40n } }]),
    );
    await refusedFast(() => TorchZip.open(off), CheckpointError, [
      "offset.zip",
      'entry "a" declares 5 compressed bytes at byte 1099511627776 (its local header offset), past the end of the file',
    ]);
    // A stored entry whose two sizes disagree (a reader would allocate one).
    const stored = await put(
      dir,
      "stored.zip",
      buildZip([{ ...entries[0], size: 2 ** 31 }]),
    );
    await refusedFast(() => TorchZip.open(stored), CheckpointError, [
      "stored.zip",
      'entry "a" is stored (not compressed) but declares 5 bytes in the archive and 2147483648 once read',
    ]);
    // The good archive still reads.
    using zip = await TorchZip.open(await put(dir, "good.zip", good));
    assertEquals(new TextDecoder().decode(await zip.read("a")), "hello");
  });
});

Deno.test("zip: a deflate bomb declaring 100 bytes stops at once", async () => {
  // 512 MiB of zeros deflate to about 520 KB.
  const bomb = await deflate(new Uint8Array(1 << 20), 512);
  assert(bomb.length > 400_000 && bomb.length < 700_000, `${bomb.length}`);
  await withDir(async (dir) => {
    const path = await put(
      dir,
      "bomb.pt",
      buildZip([
        { name: "archive/data.pkl", data: bomb, method: 8, size: 100, crc: 0 },
        { name: "archive/version", data: enc.encode("3\n") },
      ]),
    );
    const msg = await refusedFast(
      () => readTorchFile(path),
      CheckpointError,
      [
        "bomb.pt",
        'entry "archive/data.pkl" inflates to more than the 100 bytes it declares',
        `of its ${bomb.length} compressed bytes' output`,
      ],
      500,
    );
    // It stopped within a few slices of output, not after 512 MiB.
    const produced = Number(/stopped after (\d+)/.exec(msg)![1]);
    assert(produced > 100 && produced < 2 ** 20, `stopped after ${produced}`);
    using zip = await TorchZip.open(path);
    await refusedFast(() => zip.read("archive/data.pkl"), CheckpointError, [
      "bomb.pt",
      "inflates to more than the 100 bytes",
    ], 500);
  });
});

Deno.test("zip: declared sizes beyond the ratio or size limits, and raising them", async () => {
  const MiB = new Uint8Array(1 << 20).fill(7);
  const packed = await deflate(MiB); // about 1 KB: a real ratio near 1000:1
  const ratio = MiB.length / packed.length;
  assert(ratio > 500 && ratio < 1100, `ratio ${ratio}`);
  await withDir(async (dir) => {
    const real = await put(
      dir,
      "real.zip",
      buildZip([{
        name: "m",
        data: packed,
        method: 8,
        size: MiB.length,
        crc: crc32(MiB),
      }]),
    );
    // Accepted at the default ratio (1100), and read back exactly.
    {
      using zip = await TorchZip.open(real);
      assertEquals(await zip.read("m"), MiB);
    }
    // Refused under a lower ratio, before inflating...
    {
      using zip = await TorchZip.open(real, { maxInflateRatio: 500 });
      await refusedFast(() => zip.read("m"), CheckpointError, [
        "real.zip",
        `entry "m" declares 1048576 bytes once inflated from ${packed.length} compressed bytes`,
        "beyond the limit of 500:1 (maxInflateRatio",
        "raise the maxInflateRatio option or the TOKENLAB_MAX_INFLATE_RATIO environment variable",
      ]);
    }
    // ... and accepted when the limit is raised again.
    {
      using zip = await TorchZip.open(real, { maxInflateRatio: 2000 });
      assertEquals((await zip.read("m")).length, MiB.length);
    }
    // A declared size that is a lie (2000:1): refused at the default ratio;
    // with the ratio raised, inflating finds the real size and refuses too.
    const lie = await put(
      dir,
      "lie.zip",
      buildZip([{
        name: "m",
        data: packed,
        method: 8,
        size: packed.length * 2000,
      }]),
    );
    {
      using zip = await TorchZip.open(lie);
      await refusedFast(() => zip.read("m"), CheckpointError, [
        "lie.zip",
        `declares ${
          packed.length * 2000
        } bytes once inflated from ${packed.length} compressed bytes, a ratio of 2000:1 beyond the limit of 1100:1`,
      ]);
    }
    {
      using zip = await TorchZip.open(lie, { maxInflateRatio: 4000 });
      await refusedFast(() => zip.read("m"), CheckpointError, [
        `entry "m" should hold ${
          packed.length * 2000
        } bytes, found 1048576 once inflated`,
      ]);
    }
    // The absolute limit: by option, by environment variable, option first.
    {
      using zip = await TorchZip.open(real, { maxEntryBytes: 1000 });
      await refusedFast(() => zip.read("m"), CheckpointError, [
        "real.zip",
        'entry "m" declares 1048576 bytes, more than the limit of 1000 (maxEntryBytes)',
        "TOKENLAB_MAX_ENTRY_BYTES",
      ]);
    }
    const before = Deno.env.get("TOKENLAB_MAX_ENTRY_BYTES");
    try {
      Deno.env.set("TOKENLAB_MAX_ENTRY_BYTES", "512 KiB");
      {
        using zip = await TorchZip.open(real);
        await refusedFast(() => zip.read("m"), CheckpointError, [
          "more than the limit of 524288",
        ]);
      }
      {
        using zip = await TorchZip.open(real, { maxEntryBytes: 2 ** 21 });
        assertEquals((await zip.read("m")).length, MiB.length);
      }
      Deno.env.set("TOKENLAB_MAX_ENTRY_BYTES", "lots");
      await refusedFast(() => TorchZip.open(real), CheckpointError, [
        "real.zip",
        'expected TOKENLAB_MAX_ENTRY_BYTES to be a positive number of bytes (e.g. 8589934592 or "8 GiB"), found "lots"; fix or unset it',
      ]);
    } finally {
      if (before === undefined) Deno.env.delete("TOKENLAB_MAX_ENTRY_BYTES");
      else Deno.env.set("TOKENLAB_MAX_ENTRY_BYTES", before);
    }
    const ratioBefore = Deno.env.get("TOKENLAB_MAX_INFLATE_RATIO");
    try {
      Deno.env.set("TOKENLAB_MAX_INFLATE_RATIO", "500");
      {
        using zip = await TorchZip.open(real);
        await refusedFast(() => zip.read("m"), CheckpointError, [
          "beyond the limit of 500:1",
        ]);
      }
      {
        using zip = await TorchZip.open(real, { maxInflateRatio: 1100 });
        assertEquals((await zip.read("m")).length, MiB.length);
      }
      Deno.env.set("TOKENLAB_MAX_INFLATE_RATIO", "-3");
      await refusedFast(() => readTorchFile(real), CheckpointError, [
        "real.zip",
        'expected TOKENLAB_MAX_INFLATE_RATIO to be a number of at least 1 (e.g. 2000), found "-3"',
      ]);
    } finally {
      if (ratioBefore === undefined) {
        Deno.env.delete("TOKENLAB_MAX_INFLATE_RATIO");
      } else Deno.env.set("TOKENLAB_MAX_INFLATE_RATIO", ratioBefore);
    }
    await refusedFast(
      () => TorchZip.open(real, { maxEntryBytes: -1 }),
      CheckpointError,
      ["expected maxEntryBytes to be a positive whole number of bytes, found -1"],
    );
  });
});

Deno.test("torch: a deflated storage is read, and the limits reach it through readTorchFile", async () => {
  const values = [1.5, -2, 0, 4];
  const storage = f32bytes(values);
  const pickle = dictPickle([
    ["w", rebuild("0", "FloatStorage", 4, 0, [2, 2], [2, 1])],
  ]);
  await withDir(async (dir) => {
    const path = await put(
      dir,
      "deflated.pt",
      buildZip([
        { name: "archive/data.pkl", data: pickle },
        {
          name: "archive/data/0",
          data: await deflate(storage),
          method: 8,
          size: storage.length,
          crc: crc32(storage),
        },
        { name: "archive/version", data: enc.encode("3\n") },
      ]),
    );
    const sd = await readTorchStateDict(path);
    assertEquals([...sd.get("w")!.data as Float32Array], values);
    await refusedFast(
      () => readTorchFile(path, { maxEntryBytes: 8 }),
      CheckpointError,
      ["deflated.pt", "more than the limit of 8 (maxEntryBytes)"],
    );
  });
});

// ---------------------------------------------------------------------------
// Tensor shapes and views.

Deno.test("torch: a shape of [2^32, 2^32] with zero strides is refused, naming the tensor", async () => {
  const big = 2 ** 32;
  await withDir(async (dir) => {
    const path = await put(
      dir,
      "shape.pt",
      torchArchive(
        dictPickle([
          ["ok", rebuild("1", "FloatStorage", 1, 0, [1], [1])],
          ["w", rebuild("0", "FloatStorage", 1, 0, [big, big], [0, 0])],
        ]),
        { "0": f32bytes([2.5]), "1": f32bytes([1]) },
      ),
    );
    const want = [
      "shape.pt",
      'tensor "w" (storage "archive/data/0")',
      "its shape (size) [4294967296, 4294967296] has more than 2^53 elements",
    ];
    await refusedFast(() => readTorchFile(path), CheckpointError, want);
    await refusedFast(
      () => readTorchFile(path, { metadataOnly: true }),
      CheckpointError,
      want,
    );
    await refusedFast(() => readTorchStateDict(path), CheckpointError, want);
  });
});

Deno.test("torch: views that repeat elements are bounded by maxEntryBytes", async () => {
  await withDir(async (dir) => {
    // [2^20, 2^20] zero strides: 2^40 elements of one float, 4 TiB expanded.
    const side = 2 ** 20;
    const path = await put(
      dir,
      "expand.pt",
      torchArchive(
        dictPickle([
          ["w", rebuild("0", "FloatStorage", 1, 0, [side, side], [0, 0])],
        ]),
        { "0": f32bytes([2.5]) },
      ),
    );
    // Its shape can be listed...
    const meta = await readTorchFile(path, { metadataOnly: true }) as Map<
      string,
      unknown
    >;
    const t = meta.get("w");
    assert(isTorchTensor(t));
    assertEquals(t.shape, [side, side]);
    // ... but not expanded.
    await refusedFast(() => readTorchFile(path), CheckpointError, [
      "expand.pt",
      'tensor "w", of shape [1048576, 1048576] and stride [0, 0], repeats the 1 elements of storage "archive/data/0" into 1099511627776 float32 elements (4398046511104 bytes), more than the limit of 4294967296 bytes (maxEntryBytes)',
    ]);
    // Overlapping strides: [2^16, 2^16] stride [1, 1] reaches only 2^17 - 1
    // elements, but expands to 2^32 (16 GiB).
    const n = 2 ** 17;
    const overlap = await put(
      dir,
      "overlap.pt",
      torchArchive(
        dictPickle([
          ["v", rebuild("0", "FloatStorage", n, 0, [2 ** 16, 2 ** 16], [1, 1])],
        ]),
        { "0": new Uint8Array(4 * n) },
      ),
    );
    await refusedFast(() => readTorchStateDict(overlap), CheckpointError, [
      "overlap.pt",
      'tensor "v", of shape [65536, 65536] and stride [1, 1], repeats',
      "(17179869184 bytes), more than the limit",
    ]);
    // A small broadcast reads, with every element the one stored value.
    const small = await put(
      dir,
      "small.pt",
      torchArchive(
        dictPickle([
          ["b", rebuild("0", "FloatStorage", 1, 0, [300, 300], [0, 0])],
        ]),
        { "0": f32bytes([2.5]) },
      ),
    );
    const sd = await readTorchStateDict(small);
    const data = sd.get("b")!.data as Float32Array;
    assertEquals(data.length, 90_000);
    assert(data.every((x) => x === 2.5));
    await refusedFast(
      () => readTorchStateDict(small, { maxEntryBytes: 1000 }),
      CheckpointError,
      ['tensor "b"', "(360000 bytes), more than the limit of 1000 bytes"],
    );
  });
});

Deno.test("torch: a view reaching past its storage, or a storage larger than its entry", async () => {
  await withDir(async (dir) => {
    const reach = await put(
      dir,
      "reach.pt",
      torchArchive(
        dictPickle([
          ["x", rebuild("0", "FloatStorage", 4, 0, [2, 2 ** 40], [1, 2 ** 20])],
        ]),
        { "0": f32bytes([1, 2, 3, 4]) },
      ),
    );
    await refusedFast(() => readTorchFile(reach), CheckpointError, [
      "reach.pt",
      'tensor "x" (storage "archive/data/0"): a tensor of shape [2, 1099511627776], stride [1, 1048576] at offset 0 reaches element beyond 2^53 of a storage of 4',
    ]);
    const numel = await put(
      dir,
      "numel.pt",
      torchArchive(
        dictPickle([
          ["y", rebuild("0", "FloatStorage", 2 ** 40, 0, [4], [1])],
        ]),
        { "0": f32bytes([1, 2, 3, 4]) },
      ),
    );
    await refusedFast(
      () => readTorchFile(numel, { metadataOnly: true }),
      CheckpointError,
      [
        "numel.pt",
        'storage "archive/data/0" should hold 1099511627776 float32 elements (4398046511104 bytes), found 16 bytes (for tensor "y")',
      ],
    );
  });
});

Deno.test("safetensors: a shape of [2^32, 2^32] is refused, naming the tensor", async () => {
  const header = enc.encode(JSON.stringify({
    w: { dtype: "F32", shape: [2 ** 32, 2 ** 32], data_offsets: [0, 4] },
  }));
  const bytes = new Uint8Array(8 + header.length + 4);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(header.length), true);
  bytes.set(header, 8);
  const want = [
    `tensor "w"'s shape [4294967296, 4294967296] has more than 2^53 elements`,
  ];
  const e = assertThrows(
    () => decodeSafetensors(bytes, { label: "shape.safetensors" }),
    CheckpointError,
  );
  for (const w of want) assertStringIncludes(e.message, w);
  assertStringIncludes(e.message, "cannot read shape.safetensors");
  await withDir(async (dir) => {
    const path = await put(dir, "shape.safetensors", bytes);
    await refusedFast(() => readSafetensors(path), CheckpointError, [
      "shape.safetensors",
      ...want,
    ]);
  });
});

Deno.test("safetensors: a key held twice, at the top or inside a tensor, is refused", () => {
  const t = '{"dtype":"U8","shape":[2],"data_offsets":[0,2]}';
  const cases: [string, string][] = [
    [
      `{"w":${t},"w":${t}}`,
      'the header holds "w" twice; expected each name once',
    ],
    [
      `{"w":${t}, "w" :{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}`,
      'the header holds "w" twice',
    ],
    // Escapes spell the same key differently.
    [`{"w":${t},"\\u0077":${t}}`, 'the header holds "w" twice'],
    [
      '{"w":{"dtype":"U8","dtype":"F32","shape":[2],"data_offsets":[0,2]}}',
      'the header holds "dtype" twice in "w"',
    ],
    [
      `{"__metadata__":{"a":"1","a":"2"},"w":${t}}`,
      'the header holds "a" twice in "__metadata__"',
    ],
  ];
  for (const [json, want] of cases) {
    const h = enc.encode(json);
    const bytes = new Uint8Array(8 + h.length + 2);
    new DataView(bytes.buffer).setBigUint64(0, BigInt(h.length), true);
    bytes.set(h, 8);
    const e = assertThrows(
      () => decodeSafetensors(bytes, { label: "dup.safetensors" }),
      CheckpointError,
    );
    assertStringIncludes(e.message, "cannot read dup.safetensors: ");
    assertStringIncludes(e.message, want);
  }
  // Keys that only look alike, and strings holding quotes, colons and
  // braces, are not duplicates.
  const fine = `{"__metadata__":{"note":"a \\"w\\": {x} [y]"},"w":${t},"w2":${
    t.replace("[0,2]", "[2,4]")
  }}`;
  const h = enc.encode(fine);
  const bytes = new Uint8Array(8 + h.length + 4);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(h.length), true);
  bytes.set(h, 8);
  const { tensors, metadata } = decodeSafetensors(bytes);
  assertEquals([...tensors.keys()], ["w", "w2"]);
  assertEquals(metadata.note, 'a "w": {x} [y]');
});

Deno.test("safetensors: a header length of 2^63 is refused before the file is read", async () => {
  await withDir(async (dir) => {
    const bytes = new Uint8Array(16);
    new DataView(bytes.buffer).setBigUint64(0, 2n ** 63n, true);
    const path = await put(dir, "len.safetensors", bytes);
    await refusedFast(() => readSafetensors(path), CheckpointError, [
      "cannot read ",
      "len.safetensors: expected a header length of at most 100000000 bytes, found 9223372036854775808",
    ]);
    // Within the format's limit but past the file's end.
    new DataView(bytes.buffer).setBigUint64(0, 1000n, true);
    const past = await put(dir, "past.safetensors", bytes);
    await refusedFast(() => readSafetensors(past), CheckpointError, [
      "past.safetensors: the header length 1000 runs past the end (16 bytes in all)",
    ]);
  });
});

// ---------------------------------------------------------------------------
// Pickles declaring more than they hold.

Deno.test("pickle: declared lengths are bounded by the bytes left", async () => {
  const u32 = (n: number) => new Bytes().u32(n).parts;
  const u64 = (n: bigint) => new Bytes().u64(n).parts;
  const cases: [string, number[], string][] = [
    [
      "binunicode",
      [...P.proto(), 0x58, ...u32(2 ** 31), ...enc.encode("abc"), ...P.stop],
      "BINUNICODE string: expected 2147483648 more bytes, found 4 (truncated)",
    ],
    [
      "binbytes",
      [...P.proto(), 0x42, ...u32(0xffffffff), ...P.stop],
      "BINBYTES: expected 4294967295 more bytes, found 1 (truncated)",
    ],
    [
      "binunicode8",
      [...P.proto(), 0x8d, ...u64(2n ** 62n), ...P.stop],
      "a length of 4611686018427387904 bytes, beyond the pickle's size",
    ],
    [
      "long4",
      [...P.proto(), 0x8b, ...u32(0x7fffffff), 0, ...P.stop],
      "LONG4: expected 2147483647 more bytes, found 2 (truncated)",
    ],
    [
      "long4_negative",
      [...P.proto(), 0x8b, ...u32(0xffffffff), ...P.stop],
      "LONG4: expected -1 more bytes",
    ],
    [
      "frame",
      [0x80, 4, 0x95, ...u64(2n ** 40n), 0x4e, ...P.stop],
      "a FRAME of 1099511627776 bytes, with only 2 bytes left in the pickle",
    ],
  ];
  await withDir(async (dir) => {
    for (const [name, ops, want] of cases) {
      const path = await put(
        dir,
        `${name}.pt`,
        torchArchive(new Uint8Array(ops)),
      );
      await refusedFast(() => readTorchFile(path), CheckpointError, [
        `${name}.pt`,
        want,
        "in data.pkl at byte",
      ]);
    }
  });
});

Deno.test("pickle: long LONG4 integers and long lists are read in linear time", async () => {
  // 300 KB of LONG4 (quadratic when built byte by byte as a BigInt), and a
  // list of 300 000 items (too many for spread arguments).
  const n = 300_000;
  const digits = new Uint8Array(n).fill(0x11);
  digits[n - 1] = 0x01; // positive
  const long4 = [0x8b, ...new Bytes().u32(n).parts, ...digits];
  const list = [0x5d, 0x28, ...new Array(n).fill(0x4e), 0x65];
  const pickle = new Uint8Array([
    ...P.proto(),
    ...P.emptyDict,
    ...P.mark,
    ...P.str("big"),
    ...long4,
    ...P.str("list"),
    ...list,
    ...P.setitems,
    ...P.stop,
  ]);
  await withDir(async (dir) => {
    const path = await put(dir, "long.pt", torchArchive(pickle));
    const t0 = performance.now();
    const root = await readTorchFile(path) as Map<string, unknown>;
    assert(performance.now() - t0 < 5000, "expected a linear-time read");
    const big = root.get("big") as bigint;
    assertEquals(typeof big, "bigint");
    assertEquals(big & 0xffffn, 0x1111n);
    assertEquals(big >> BigInt(8 * (n - 1)), 1n);
    assertEquals((root.get("list") as unknown[]).length, n);
  });
});

Deno.test("pickle: storage keys that are paths, and code, are refused", async () => {
  const cases: [string, Uint8Array, string][] = [
    [
      "traversal",
      dictPickle([
        ["w", rebuild("../../etc/passwd", "FloatStorage", 1, 0, [1], [1])],
      ]),
      'a storage key "../../etc/passwd" that is not a file name',
    ],
    [
      "dotdot",
      dictPickle([["w", rebuild("..", "FloatStorage", 1, 0, [1], [1])]]),
      'a storage key ".." that is not a file name',
    ],
    [
      "absolute",
      dictPickle([[
        "w",
        rebuild("/etc/passwd", "FloatStorage", 1, 0, [1], [1]),
      ]]),
      'a storage key "/etc/passwd" that is not a file name',
    ],
    [
      "os_system",
      new Uint8Array([
        ...P.proto(),
        ...P.global("os", "system"),
        ...P.str("echo owned"),
        0x85,
        ...P.reduce,
        ...P.stop,
      ]),
      'the pickle asks for global "os.system"',
    ],
    [
      "numel_float",
      dictPickle([["w", [
        ...P.global("torch._utils", "_rebuild_tensor_v2"),
        ...P.mark,
        ...P.mark,
        ...P.str("storage"),
        ...P.global("torch", "FloatStorage"),
        ...P.str("0"),
        ...P.str("cpu"),
        0x47,
        ...new Uint8Array(new Float64Array([1e300]).buffer).reverse(),
        ...P.tuple,
        ...P.persid,
      ]]]),
      'storage "0" declares 1e+300 elements (its numel); expected a non-negative whole number',
    ],
  ];
  await withDir(async (dir) => {
    for (const [name, pickle, want] of cases) {
      const path = await put(dir, `${name}.pt`, torchArchive(pickle));
      await refusedFast(() => readTorchFile(path), CheckpointError, [
        `${name}.pt`,
        want,
      ]);
    }
    // Entry names are only keys: an archive whose entries climb out of the
    // folder is not a checkpoint, and reading it writes nothing anywhere.
    const climb = await put(
      dir,
      "climb.pt",
      buildZip([{
        name: "../../escape/data.pkl",
        data: new Uint8Array([0x2e]),
      }]),
    );
    await refusedFast(() => readTorchFile(climb), CheckpointError, [
      'found a ZIP archive without one (1 entries: "../../escape/data.pkl")',
    ]);
    const listed = [];
    for await (const e of Deno.readDir(dir)) listed.push(e.name);
    assertEquals(
      listed.sort(),
      [...cases.map(([n]) => `${n}.pt`), "climb.pt"].sort(),
    );
  });
});

Deno.test("allocData names the count it cannot allocate", () => {
  assertStringIncludes(
    assertThrows(() => allocData("float32", 2 ** 50), RangeError).message,
    "allocData: cannot allocate 1125899906842624 float32 elements",
  );
  assertStringIncludes(
    assertThrows(() => allocData("int8", -1), RangeError).message,
    "allocData: expected a non-negative whole number of int8 elements, found -1",
  );
});

Deno.test("torch: many views of one storage are read in linear time", async () => {
  // One rebuild call memoized, then called again 400 000 times (5 bytes
  // each): a list of 400 000 tensors over one storage.
  const n = 400_000;
  const call = rebuild("0", "FloatStorage", 2, 1, [1], [1]);
  // Memoize the function (BINPUT 0) and the argument tuple (BINPUT 1):
  // `rebuild` ends with [..., args TUPLE, REDUCE]; split before REDUCE.
  const fn = P.global("torch._utils", "_rebuild_tensor_v2");
  const args = call.slice(fn.length, -1);
  const pickle = new Uint8Array([
    ...P.proto(),
    0x5d, // EMPTY_LIST
    ...P.mark,
    ...fn,
    0x71,
    0, // BINPUT 0
    ...args,
    0x71,
    1, // BINPUT 1
    ...P.reduce,
    ...new Array(n - 1).fill([0x68, 0, 0x68, 1, ...P.reduce]).flat(),
    0x65, // APPENDS
    ...P.stop,
  ]);
  await withDir(async (dir) => {
    const path = await put(
      dir,
      "views.pt",
      torchArchive(pickle, { "0": f32bytes([1, 7.5]) }),
    );
    const t0 = performance.now();
    const list = await readTorchFile(path) as unknown[];
    const took = performance.now() - t0;
    assertEquals(list.length, n);
    assert(list.every((t) => isTorchTensor(t) && t.data[0] === 7.5));
    // A quadratic read of 400 000 views would take hours; the bound only
    // separates the two, with room for a loaded machine.
    assert(took < 60_000, `expected a linear-time read, took ${took} ms`);
  });
});

Deno.test("pickle: a large value built again and again from the memo is refused", async () => {
  // _codecs.encode(<100 KB string>, "latin1") once, then 100 000 more
  // times through the memo (5 bytes each): 10 GB of bytes from 600 KB.
  const fn = P.global("_codecs", "encode");
  const pickle = new Uint8Array([
    ...P.proto(),
    ...P.mark,
    ...fn,
    0x71,
    0, // BINPUT 0
    ...P.str("x".repeat(100_000)),
    ...P.str("latin1"),
    0x86, // TUPLE2
    0x71,
    1, // BINPUT 1
    ...P.reduce,
    ...new Array(100_000).fill([0x68, 0, 0x68, 1, ...P.reduce]).flat(),
    0x6c, // LIST
    ...P.stop,
  ]);
  await withDir(async (dir) => {
    const path = await put(dir, "amplify.pt", torchArchive(pickle));
    await refusedFast(() => readTorchFile(path), CheckpointError, [
      "amplify.pt",
      `_codecs.encode makes the pickle build more than ${
        4 * pickle.length + 4096
      } items from its ${pickle.length} bytes`,
      "in data.pkl at byte",
    ]);
  });
});

/**
 * A pickle of a list of `n` tensors made by one `_rebuild_tensor_v2` call,
 * memoized and made again (5 bytes each): many views of one storage.
 */
function viewsPickle(call: Uint8Array | number[], n: number): Uint8Array {
  const fn = P.global("torch._utils", "_rebuild_tensor_v2");
  // `call` ends with [..., args TUPLE, REDUCE]: split before REDUCE.
  const args = [...call].slice(fn.length, -1);
  return new Uint8Array([
    ...P.proto(),
    0x5d, // EMPTY_LIST
    ...P.mark,
    ...fn,
    0x71,
    0, // BINPUT 0
    ...args,
    0x71,
    1, // BINPUT 1
    ...P.reduce,
    ...new Array(n - 1).fill([0x68, 0, 0x68, 1, ...P.reduce]).flat(),
    0x65, // APPENDS
    ...P.stop,
  ]);
}

Deno.test("torch: many large views of one storage are bounded in total (maxTotalBytes)", async () => {
  await withDir(async (dir) => {
    // 100 stride-0 views of one float, each 2^30 - 1 elements (just under
    // the 4 GiB entry limit): 400 GiB from a file of about 1 KB.
    const expand = await put(
      dir,
      "expand100.pt",
      torchArchive(
        viewsPickle(
          rebuild("0", "FloatStorage", 1, 0, [2 ** 30 - 1], [0]),
          100,
        ),
        { "0": f32bytes([2.5]) },
      ),
    );
    const msg = await refusedFast(
      () => readTorchFile(expand),
      CheckpointError,
      [
        "expand100.pt",
        `its tensors need more than ${
          2 ** 34
        } bytes in all, the limit (maxTotalBytes: by default ${
          2 ** 34
        } or twice the file's`,
        "raise the maxTotalBytes option or the TOKENLAB_MAX_TOTAL_BYTES environment variable",
      ],
    );
    // Refused at the fifth view: 4 + 5 * (2^32 - 4) bytes.
    assertStringIncludes(msg, `reach ${4 + 5 * (2 ** 32 - 4)} bytes at`);

    // 100 contiguous views of all but the first element of a storage of
    // 1025 floats: each a copy of 4096 bytes, 4100 + 409 600 in all.
    const values = Array.from({ length: 1025 }, (_, i) => i / 4);
    const storage = f32bytes(values);
    const tail = await put(
      dir,
      "tail100.pt",
      torchArchive(
        viewsPickle(rebuild("0", "FloatStorage", 1025, 1, [1024], [1]), 100),
        { "0": storage },
      ),
    );
    const all = await readTorchFile(tail) as unknown[];
    assertEquals(all.length, 100);
    const first = all[0];
    assert(isTorchTensor(first));
    assertEquals([...first.data as Float32Array], values.slice(1));
    await refusedFast(
      () => readTorchFile(tail, { maxTotalBytes: 100_000 }),
      CheckpointError,
      [
        "tail100.pt",
        "need more than 100000 bytes in all, the limit (maxTotalBytes);",
        `reach ${4100 + 24 * 4096} bytes at`,
      ],
    );
    // Exactly the total needed is enough.
    assertEquals(
      (await readTorchFile(tail, { maxTotalBytes: 4100 + 100 * 4096 }) as [])
        .length,
      100,
    );
    // 100 views that are the whole storage share its bytes: no copies, so
    // the same low limit reads them.
    const whole = await put(
      dir,
      "whole100.pt",
      torchArchive(
        viewsPickle(rebuild("0", "FloatStorage", 1025, 0, [1025], [1]), 100),
        { "0": storage },
      ),
    );
    const shared = await readTorchFile(whole, { maxTotalBytes: 5000 }) as {
      data: Float32Array;
    }[];
    assertEquals(shared.length, 100);
    for (const t of shared) {
      assert(isTorchTensor(t));
      assertEquals((t.data as Float32Array)[1024], 256);
    }
    assert(shared[0].data.buffer === shared[99].data.buffer);
    // The environment variable, and a bad value of it.
    const before = Deno.env.get("TOKENLAB_MAX_TOTAL_BYTES");
    try {
      Deno.env.set("TOKENLAB_MAX_TOTAL_BYTES", "64 KiB");
      await refusedFast(() => readTorchFile(tail), CheckpointError, [
        "need more than 65536 bytes in all",
      ]);
      assertEquals(
        (await readTorchFile(tail, { maxTotalBytes: 2 ** 20 }) as []).length,
        100,
      );
      Deno.env.set("TOKENLAB_MAX_TOTAL_BYTES", "-1");
      await refusedFast(() => readTorchFile(tail), CheckpointError, [
        'expected TOKENLAB_MAX_TOTAL_BYTES to be a positive number of bytes (e.g. 8589934592 or "8 GiB"), found "-1"',
      ]);
    } finally {
      if (before === undefined) Deno.env.delete("TOKENLAB_MAX_TOTAL_BYTES");
      else Deno.env.set("TOKENLAB_MAX_TOTAL_BYTES", before);
    }
    await refusedFast(
      () => readTorchFile(tail, { maxTotalBytes: 0.5 }),
      CheckpointError,
      ["expected maxTotalBytes to be a positive whole number of bytes, found 0.5"],
    );
  });
  // A real checkpoint reads under the default limit, and under one just
  // above its own storages.
  const real = new URL(
    "./fixtures/torch/training_checkpoint.pth.tar",
    import.meta.url,
  );
  const sd = await readTorchStateDict(real);
  assert(sd.size > 0);
  let bytes = 0;
  for (const t of sd.values()) bytes += t.data.byteLength;
  const again = await readTorchStateDict(real, { maxTotalBytes: 4 * bytes });
  assertEquals([...again.keys()], [...sd.keys()]);
});

Deno.test("safetensors: a FIFO or a device is refused before it is opened; a bad header costs only the header", async () => {
  await withDir(async (dir) => {
    const fifo = `${dir}/w.safetensors`;
    const mk = await new Deno.Command("mkfifo", { args: [fifo] }).output();
    assert(mk.success, "mkfifo failed");
    await refusedFast(() => readSafetensors(fifo), CheckpointError, [
      `cannot read ${fifo}: expected a safetensors file, found something that is not a regular file (a FIFO, socket or device)`,
    ]);
    await refusedFast(() => readSafetensors("/dev/zero"), CheckpointError, [
      "/dev/zero: expected a safetensors file, found something that is not a regular file",
    ]);
    // A 1 GiB sparse file whose header is not JSON: refused after reading
    // its 8 + 16 header bytes, not the gigabyte after them.
    const bytes = new Uint8Array(24);
    new DataView(bytes.buffer).setBigUint64(0, 16n, true);
    bytes.set(enc.encode("not a header...."), 8);
    const big = await put(dir, "big.safetensors", bytes);
    await Deno.truncate(big, 2 ** 30);
    await refusedFast(() => readSafetensors(big), CheckpointError, [
      "big.safetensors: expected the JSON header to start with",
    ], 500);
    // A header that covers exactly the data, read whole.
    const good = await put(
      dir,
      "good.safetensors",
      new Uint8Array(
        encodeSafetensors({
          w: { dtype: "float32", shape: [2], data: new Float32Array([1, 2]) },
        }),
      ),
    );
    const { tensors } = await readSafetensors(good);
    assertEquals([...tensors.get("w")!.data as Float32Array], [1, 2]);
  });
});
