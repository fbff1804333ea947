/**
 * Checkpoint I/O without tfjs: raw tensors and float16/bfloat16 bits,
 * torch.save files (ZIP reader, restricted unpickler, state dicts) and
 * safetensors. Torch fixtures come from tests/fixtures/make_torch_fixtures.py
 * (torch 1.13), with the expected values beside them in expected.json;
 * pickles and archives that torch would not write are built here by hand.
 */

import {
  assert,
  assertEquals,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "./_assert.ts";
import {
  bfloat16BitsToFloat32,
  checkRawTensor,
  float16BitsToFloat32,
  float32ToBfloat16Bits,
  float32ToFloat16Bits,
  numel,
  RAW_DTYPES,
  rawFromFloat32,
  type RawTensor,
  toFloat32,
} from "tokenlab/io/raw_tensor.ts";
import {
  CheckpointError,
  isTorchTensor,
  pickleState,
  type PickleValue,
  readTorchFile,
  readTorchStateDict,
  tensorsOf,
  TorchZip,
} from "tokenlab/io/torch/mod.ts";
import {
  decodeSafetensors,
  encodeSafetensors,
  readSafetensors,
  writeSafetensors,
} from "tokenlab/io/safetensors.ts";

import {
  buildZip,
  dictPickle,
  P,
  pk,
  rebuildTensorOps,
  torchArchive,
} from "./_helpers.ts";

const FIX = new URL("./fixtures/torch/", import.meta.url);
const ST_FIX = new URL("./fixtures/safetensors/", import.meta.url);
const fx = (name: string) => new URL(name, FIX);

interface Expected {
  dtype: string;
  shape: number[];
  values: (number | string)[];
  bits?: number[];
}

const EXPECTED: Record<string, unknown> = JSON.parse(
  await Deno.readTextFile(fx("expected.json")),
);

function num(v: number | string): number {
  if (v === "nan") return NaN;
  if (v === "inf") return Infinity;
  if (v === "-inf") return -Infinity;
  if (v === "-0") return -0;
  return v as number;
}

/** Compares a tensor with the expected dtype, shape and values, exactly. */
function assertTensor(t: RawTensor, want: Expected, what: string): void {
  assertEquals(t.dtype, want.dtype, `${what} dtype`);
  assertEquals(t.shape, want.shape, `${what} shape`);
  checkRawTensor(t, what);
  if (want.dtype === "int64") {
    assertEquals(
      [...(t.data as BigInt64Array)],
      want.values.map((v) => BigInt(v)),
      `${what} values`,
    );
  } else if (want.bits) {
    assertEquals([...(t.data as Uint16Array)], want.bits, `${what} bits`);
    assertEquals([...toFloat32(t)], want.values.map(num), `${what} values`);
  } else {
    assertEquals(
      [...(t.data as Float32Array)],
      want.values.map(num),
      `${what} values`,
    );
  }
}

async function tempDir(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "tokenlab-io-" });
}

// ---------------------------------------------------------------------------
// Hand-built pickles and ZIP archives, for what torch itself would not write.

const enc = new TextEncoder();

/** A `_rebuild_tensor_v2` call, as torch pickles it (BININT ints). */
const tensorOps = (
  key: string,
  storage: string,
  numel: number,
  offset: number,
  size: number[],
  stride: number[],
) => rebuildTensorOps({ key, storage, numel, offset, size, stride });

/** A ZIP archive of stored entries. */
function storedZip(entries: [string, Uint8Array][]): Uint8Array {
  return buildZip(entries.map(([name, data]) => ({ name, data })));
}

const bytesOf = (a: ArrayBufferView) =>
  new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** Writes bytes to a temp file and returns its path. */
async function tempFile(dir: string, name: string, bytes: Uint8Array) {
  const path = `${dir}/${name}`;
  await Deno.writeFile(path, bytes);
  return path;
}

async function refusal(path: string | URL): Promise<string> {
  const e = await assertRejects(() => readTorchFile(path), CheckpointError);
  return e.message;
}

// ---------------------------------------------------------------------------
// Raw tensors.

Deno.test("numel and dtypes", () => {
  assertEquals(numel([2, 3, 4]), 24);
  assertEquals(numel([]), 1);
  assertEquals(numel([5, 0]), 0);
  assertStringIncludes(
    assertThrows(() => numel([2, -1]), RangeError).message,
    "expected non-negative integer sizes, found -1",
  );
  assertEquals(RAW_DTYPES.length, 10);
});

Deno.test("float16: every bit pattern decodes exactly and encodes back", () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const f = float16BitsToFloat32(all);
  const back = float32ToFloat16Bits(f);
  for (let h = 0; h < 65536; h++) {
    const isNaN = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
    if (isNaN) {
      assert(Number.isNaN(f[h]), `0x${h.toString(16)} should be NaN`);
      assert(
        (back[h] & 0x7c00) === 0x7c00 && (back[h] & 0x3ff) !== 0 &&
          (back[h] & 0x8000) === (h & 0x8000),
        `NaN 0x${h.toString(16)} should stay a NaN of its sign`,
      );
    } else if (back[h] !== h) {
      throw new Error(
        `0x${h.toString(16)} -> ${f[h]} -> 0x${back[h].toString(16)}`,
      );
    }
  }
  // Independent decoding of a few: 1, -2, max, smallest normal, smallest subnormal.
  assertEquals(
    [...float16BitsToFloat32(
      new Uint16Array([0x3c00, 0xc000, 0x7bff, 0x0400, 0x0001]),
    )],
    [1, -2, 65504, 2 ** -14, 2 ** -24],
  );
});

Deno.test("float16 encoding rounds to nearest, ties to even, at every step", () => {
  // Between each pair of neighbouring positive finite halves (and from the
  // largest to the overflow threshold): the midpoint goes to the even one,
  // anything above or below it to the nearer one.
  const mids: number[] = [], below: number[] = [], above: number[] = [];
  const lo: number[] = [];
  const all = float16BitsToFloat32(new Uint16Array(0x7c00).map((_, i) => i));
  for (let h = 0; h < 0x7bff; h++) {
    const a = all[h], b = all[h + 1];
    const m = (a + b) / 2; // exact in float32
    mids.push(m);
    lo.push(h);
    const f32 = new Float32Array([m]);
    const u = new Uint32Array(f32.buffer);
    u[0] -= 1;
    below.push(f32[0]);
    u[0] += 2;
    above.push(f32[0]);
  }
  const em = float32ToFloat16Bits(new Float32Array(mids));
  const eb = float32ToFloat16Bits(new Float32Array(below));
  const ea = float32ToFloat16Bits(new Float32Array(above));
  for (let i = 0; i < lo.length; i++) {
    const h = lo[i];
    const even = h % 2 === 0 ? h : h + 1;
    if (em[i] !== even || eb[i] !== h || ea[i] !== h + 1) {
      throw new Error(
        `between 0x${h.toString(16)} and 0x${(h + 1).toString(16)}: mid ${
          em[i].toString(16)
        }, below ${eb[i].toString(16)}, above ${ea[i].toString(16)}`,
      );
    }
  }
  const special = float32ToFloat16Bits(
    new Float32Array([
      65519.99,
      65520,
      1e6,
      -1e6,
      Infinity,
      -Infinity,
      -0,
      2 ** -25,
      2 ** -25 * 1.0001,
      1e-10,
      NaN,
    ]),
  );
  assertEquals(
    [...special],
    [
      0x7bff,
      0x7c00,
      0x7c00,
      0xfc00,
      0x7c00,
      0xfc00,
      0x8000,
      0x0000,
      0x0001,
      0x0000,
      special[10],
    ],
  );
  assert((special[10] & 0x7c00) === 0x7c00 && (special[10] & 0x3ff) !== 0);
});

Deno.test("bfloat16 encoding and decoding", () => {
  const x = new Float32Array([
    1,
    -3,
    1 + 2 ** -8,
    1 + 3 * 2 ** -8,
    1 + 2 ** -7,
    Infinity,
    NaN,
    -0,
  ]);
  const bits = float32ToBfloat16Bits(x);
  // 1 + 2^-8 is a tie between 1 and 1 + 2^-7: to even (1); 1 + 3*2^-8 to 1 + 2^-6.
  assertEquals([...bits.subarray(0, 6)], [
    0x3f80,
    0xc040,
    0x3f80,
    0x3f82,
    0x3f81,
    0x7f80,
  ]);
  assert(Number.isNaN(bfloat16BitsToFloat32(bits.subarray(6, 7))[0]));
  assertEquals([...bfloat16BitsToFloat32(new Uint16Array([0x3f80, 0x8000]))], [
    1,
    -0,
  ]);
});

Deno.test("toFloat32 and rawFromFloat32 for every dtype", () => {
  for (const dtype of RAW_DTYPES) {
    const want = dtype === "uint8" ? [0, 1, 2, 100] : [0, 1, -2, 100];
    const raw = rawFromFloat32(new Float32Array(want), [2, 2], dtype);
    checkRawTensor(raw, dtype);
    assertEquals(
      [...toFloat32(raw)],
      dtype === "bool" ? [0, 1, 1, 1] : want,
      dtype,
    );
  }
  assertEquals(
    [...toFloat32(rawFromFloat32(new Float32Array([0, 255]), [2], "uint8"))],
    [0, 255],
  );
  const big: RawTensor = {
    dtype: "int64",
    shape: [2],
    data: new BigInt64Array([2n ** 40n, -3n]),
  };
  assertEquals([...toFloat32(big)], [2 ** 40, -3]);
  // toFloat32 copies.
  const f: RawTensor = {
    dtype: "float32",
    shape: [1],
    data: new Float32Array([5]),
  };
  const c = toFloat32(f);
  c[0] = 6;
  assertEquals(f.data[0], 5);
  const e = assertThrows(
    () => rawFromFloat32(new Float32Array([1.5]), [1], "int32"),
    RangeError,
  );
  assertStringIncludes(
    e.message,
    "element 0 is 1.5, which is not an integer in int32's range",
  );
  assertStringIncludes(e.message, "round or clamp");
  assertThrows(
    () => rawFromFloat32(new Float32Array([300]), [1], "int8"),
    RangeError,
  );
  assertStringIncludes(
    assertThrows(() => rawFromFloat32(new Float32Array(3), [2, 2])).message,
    "shape [2, 2] needs 4 elements, found 3",
  );
});

Deno.test("checkRawTensor says what is wrong", () => {
  const e1 = assertThrows(() =>
    checkRawTensor(
      { dtype: "float16", shape: [2], data: new Float32Array(2) },
      "w",
    )
  );
  assertStringIncludes(
    e1.message,
    "w: dtype float16 needs its data in a Uint16Array, found a Float32Array",
  );
  assertStringIncludes(e1.message, "rawFromFloat32");
  const e2 = assertThrows(() =>
    checkRawTensor({
      dtype: "float32",
      shape: [2, 3],
      data: new Float32Array(5),
    })
  );
  assertStringIncludes(e2.message, "shape [2, 3] needs 6 elements, found 5");
  const e3 = assertThrows(() =>
    checkRawTensor(
      {
        dtype: "complex64",
        shape: [1],
        data: new Float32Array(1),
      } as unknown as RawTensor,
    )
  );
  assertStringIncludes(
    e3.message,
    'unknown dtype "complex64"; expected one of float64',
  );
});

// ---------------------------------------------------------------------------
// Torch files written by torch 1.13.

Deno.test("torch state dict: every dtype, views, shared storages, offsets", async () => {
  const sd = await readTorchStateDict(fx("state_dict.pt"));
  const want = EXPECTED["state_dict.pt"] as Record<string, Expected>;
  assertEquals(sd.size, 20);
  assertEquals(new Set(sd.keys()), new Set(Object.keys(want)));
  for (const [k, t] of sd) assertTensor(t, want[k], k);
  // The half values are torch's own conversions: ours agree.
  const half = sd.get("half.weight")!;
  assertEquals(float32ToFloat16Bits(toFloat32(half)), half.data);
  const bf = sd.get("bf16.weight")!;
  assertEquals(float32ToBfloat16Bits(toFloat32(bf)), bf.data);
  // Non-contiguous and offset views come back as their own contiguous copies.
  const t = sd.get("fc.weight");
  assert(isTorchTensor(t));
  assertEquals(t.storage.stride, [1, 4]);
  assertEquals(sd.get("shared.b")!.data.byteOffset, 0);
  assertEquals(
    sd.get("shared.a")!.data.buffer === sd.get("shared.b")!.data.buffer,
    false,
  );
});

Deno.test("torch state dict keeps its _metadata as pickle state", async () => {
  const root = await readTorchFile(fx("state_dict.pt"));
  assert(root instanceof Map);
  const state = pickleState(root);
  assert(state instanceof Map);
  const meta = state.get("_metadata");
  assert(meta instanceof Map);
  assertEquals(meta.get("bn"), new Map([["version", 2]]));
  assertEquals(meta.get(""), new Map([["version", 1]]));
});

Deno.test("timm-like training checkpoint (.pth.tar): every value type", async () => {
  const ck = await readTorchFile(fx("training_checkpoint.pth.tar"));
  assert(ck instanceof Map);
  assertEquals(ck.get("epoch"), 3);
  assertEquals(ck.get("arch"), "x");
  assertEquals(ck.get("args"), { lr: 1e-3, model: "x" });
  assertEquals(ck.get("metric"), 0.5);
  assertEquals(ck.get("big"), 2n ** 70n);
  assertEquals(ck.get("neg"), -5);
  assertEquals(ck.get("raw"), new Uint8Array([0, 255, 97, 98]));
  assertEquals(ck.get("none"), null);
  assertEquals(ck.get("flag"), true);
  assertEquals(ck.get("pair"), [1, "two"]);
  assertEquals(
    ck.get("optimizer"),
    new Map<string, PickleValue>([
      ["state", new Map()],
      ["param_groups", [
        new Map<string, PickleValue>([["lr", 0.001], ["params", [0, 1, 2]]]),
      ]],
    ]),
  );
  const want = EXPECTED["small_state_dict"] as Record<string, Expected>;
  const sd = ck.get("state_dict");
  assert(sd instanceof Map);
  for (const [k, t] of sd) {
    assert(isTorchTensor(t));
    assert(t.loaded);
    assertTensor(t, want[k as string], k as string);
  }
  assertEquals(tensorsOf(ck).length, 3);
});

Deno.test("readTorchStateDict finds the weights and strips module.", async () => {
  const want = EXPECTED["small_state_dict"] as Record<string, Expected>;
  for (
    const name of [
      "training_checkpoint.pth.tar", // under "state_dict"
      "module_prefix.pth", // DataParallel names
      "model_key.pth", // under "model"
      "protocol4.pt", // pickle protocol 4: FRAME, MEMOIZE, STACK_GLOBAL, SHORT_BINUNICODE
      "deflated.pth", // ZIP entries deflated
      "zip64.pth", // Zip64 end records and extra fields
    ]
  ) {
    const sd = await readTorchStateDict(fx(name));
    assertEquals([...sd.keys()], [
      "conv.weight",
      "conv.bias",
      "bn.num_batches_tracked",
    ], name);
    for (const [k, t] of sd) assertTensor(t, want[k], `${name} ${k}`);
  }
  const ema = await readTorchStateDict(fx("model_key.pth"), {
    key: "model_ema",
  });
  assertEquals(ema.size, 3);
});

Deno.test("readTorchStateDict reads only the chosen dict's storages", async () => {
  const ck = await readTorchFile(fx("training_checkpoint.pth.tar"), {
    metadataOnly: true,
  });
  assert(ck instanceof Map);
  const t = (ck.get("state_dict") as Map<string, PickleValue>).get(
    "conv.weight",
  );
  assert(isTorchTensor(t));
  assertEquals(t.loaded, false);
  assertEquals(t.data.length, 0);
  assertEquals([t.dtype, t.shape], ["float32", [3, 2]]);
});

Deno.test("readTorchStateDict errors list what was found", async () => {
  let e = await assertRejects(
    () =>
      readTorchStateDict(fx("training_checkpoint.pth.tar"), { key: "weights" }),
    CheckpointError,
  );
  assertStringIncludes(
    e.message,
    'expected an entry "weights", found only the keys "epoch", "arch", "state_dict"',
  );
  assertStringIncludes(e.message, "pass one of those as key");
  e = await assertRejects(
    () =>
      readTorchStateDict(fx("training_checkpoint.pth.tar"), { key: "args" }),
    CheckpointError,
  );
  assertStringIncludes(
    e.message,
    'expected entry "args" to be a dict of tensors, found an object (Namespace)',
  );
  e = await assertRejects(
    () => readTorchStateDict(fx("single_f16.pt")),
    CheckpointError,
  );
  assertStringIncludes(
    e.message,
    "expected a dict of tensors, found a float16 tensor of shape [2, 5, 3, 3]; read it with readTorchFile",
  );
  const dir = await tempDir();
  try {
    const noWeights = await tempFile(
      dir,
      "no_weights.pt",
      torchArchive(dictPickle([["epoch", P.int(4)], ["arch", P.str("x")]])),
    );
    e = await assertRejects(
      () => readTorchStateDict(noWeights),
      CheckpointError,
    );
    assertStringIncludes(
      e.message,
      "expected a dict of tensors, or a checkpoint dict holding one under state_dict, model, state_dict_ema, module",
    );
    assertStringIncludes(
      e.message,
      'found a dict with the keys "epoch", "arch"',
    );
    assertStringIncludes(e.message, "pass {key}");
    const f32 = bytesOf(new Float32Array([1, 2]));
    const dup = await tempFile(
      dir,
      "dup.pt",
      torchArchive(
        dictPickle([
          ["module.w", tensorOps("0", "FloatStorage", 2, 0, [2], [1])],
          ["w", tensorOps("0", "FloatStorage", 2, 0, [2], [1])],
        ]),
        { "0": f32 },
      ),
    );
    e = await assertRejects(() => readTorchStateDict(dup), CheckpointError);
    assertStringIncludes(e.message, 'two entries map to "w"');
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("single float16 tensor file (score-map format)", async () => {
  const t = await readTorchFile(fx("single_f16.pt"));
  assert(isTorchTensor(t));
  assertEquals([t.dtype, t.shape], ["float16", [2, 5, 3, 3]]);
  const want = Array.from({ length: 90 }, (_, i) => i / 16 - 2);
  assertEquals([...toFloat32(t)], want);
});

// ---------------------------------------------------------------------------
// The ZIP reader on its own.

Deno.test("TorchZip: names, entries, reads, CRC, concurrent reads, close", async () => {
  const zip = await TorchZip.open(fx("state_dict.pt"));
  try {
    const names = zip.names();
    assert(names.includes("state_dict/data.pkl"));
    assert(names.includes("state_dict/version"));
    const e = zip.entry("state_dict/version")!;
    assertEquals([e.method, e.size, e.compressedSize], [0, 2, 2]);
    assertEquals(
      new TextDecoder().decode(
        await zip.read("state_dict/version", { verify: true }),
      ),
      "3\n",
    );
    // Every entry, at once, checked against its CRC.
    const all = await Promise.all(
      names.map((n) => zip.read(n, { verify: true })),
    );
    all.forEach((b, i) => assertEquals(b.length, zip.entry(names[i])!.size));
    assertEquals(all.every((b) => b.byteOffset === 0), true);
    const miss = await assertRejects(
      () => zip.read("state_dict/nope"),
      CheckpointError,
    );
    assertStringIncludes(
      miss.message,
      'expected an entry "state_dict/nope" in the ZIP archive, found none (it has',
    );
    assertEquals(zip.entry("nope"), undefined);
  } finally {
    zip.close();
    zip.close();
  }
  const closed = await assertRejects(
    () => zip.read("state_dict/version"),
    CheckpointError,
  );
  assertStringIncludes(closed.message, "the archive was closed; open it again");

  using z2 = await TorchZip.open(fx("deflated.pth"));
  const d = z2.entry("module_prefix/data.pkl")!;
  assertEquals(d.method, 8);
  assert(d.compressedSize < d.size);
});

Deno.test("TorchZip: damaged archives", async () => {
  const dir = await tempDir();
  try {
    const good = await Deno.readFile(fx("deflated.pth"));
    // Cut off the end records.
    let p = await tempFile(dir, "cut.pth", good.subarray(0, good.length - 30));
    let e = await assertRejects(() => TorchZip.open(p), CheckpointError);
    assertStringIncludes(
      e.message,
      "expected an end-of-central-directory record",
    );
    assertStringIncludes(
      e.message,
      "damaged or truncated, fetch or copy it again",
    );
    // Flip a byte inside deflated data: CRC or inflate fails.
    const z = await TorchZip.open(fx("deflated.pth"));
    const entry = z.entry("module_prefix/data/0")!;
    z.close();
    const bad = good.slice();
    bad[entry.localHeaderOffset + 30 + "module_prefix/data/0".length + 3] ^=
      0x55;
    p = await tempFile(dir, "flip.pth", bad);
    const z3 = await TorchZip.open(p);
    try {
      e = await assertRejects(
        () => z3.read("module_prefix/data/0"),
        CheckpointError,
      );
      assertStringIncludes(
        e.message,
        "the archive is damaged, fetch or copy it again",
      );
    } finally {
      z3.close();
    }
    // A central directory pointing at something that is not a local header.
    const zz = storedZip([["a", new Uint8Array([1, 2, 3])]]);
    const cdStart = zz.length - 22 - (46 + 1);
    new DataView(zz.buffer).setUint32(cdStart + 42, 5, true);
    p = await tempFile(dir, "badlocal.zip", zz);
    const z4 = await TorchZip.open(p);
    try {
      e = await assertRejects(() => z4.read("a"), CheckpointError);
      assertStringIncludes(
        e.message,
        "expected a local file header (PK\\x03\\x04) at byte 5, found other bytes",
      );
    } finally {
      z4.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------
// What must be refused, and files that are not torch checkpoints.

Deno.test("refuses a pickle asking for os.system, naming it", async () => {
  const msg = await refusal(fx("malicious.pt"));
  assertStringIncludes(
    msg,
    'malicious.pt: the pickle asks for global "os.system", which is not a tensor, storage or dict; tokenlab only reads state dicts and never runs code from a checkpoint',
  );
  assertStringIncludes(msg, "torch.save(model.state_dict(), path)");
  const e = await assertRejects(
    () => readTorchStateDict(fx("malicious.pt")),
    CheckpointError,
  );
  assertStringIncludes(e.message, '"os.system"');
});

Deno.test("refuses opcodes outside the allow-list (INST), whole modules, numpy", async () => {
  assertStringIncludes(
    await refusal(fx("malicious_inst.pt")),
    "the pickle uses opcode INST (0x69) at byte 12 of data.pkl, which tokenlab's restricted unpickler does not read",
  );
  assertStringIncludes(
    await refusal(fx("whole_module.pt")),
    'asks for global "torch.nn.modules.linear.Linear"',
  );
  const np = await refusal(fx("numpy_metric.pth"));
  assertStringIncludes(np, 'asks for global "numpy.core.multiarray.scalar"');
  assertStringIncludes(np, "float(x)");
});

Deno.test("hand-built pickles: refusals and damage are named", async () => {
  const dir = await tempDir();
  const f32 = bytesOf(new Float32Array([1, 2, 3, 4]));
  const cases: [string, Uint8Array, Record<string, Uint8Array>, string][] = [
    [
      "builtins_eval",
      pk(
        P.proto(),
        P.global("builtins", "eval"),
        P.str("1"),
        [0x85],
        P.reduce,
        P.stop,
      ),
      {},
      'asks for global "builtins.eval"',
    ],
    [
      "stack_global",
      pk(
        P.proto(4),
        [0x8c, 2, ...enc.encode("os")],
        [0x8c, 6, ...enc.encode("system")],
        [0x93],
        P.stop,
      ),
      {},
      'asks for global "os.system"',
    ],
    [
      "ext",
      pk(P.proto(), [0x82, 1], P.stop),
      {},
      "opcode EXT1 (0x82)",
    ],
    [
      "unknown_op",
      pk(P.proto(), [0xff], P.stop),
      {},
      "an unknown opcode (0xff)",
    ],
    [
      "protocol6",
      pk([0x80, 6], P.none, P.stop),
      {},
      "protocol 6; tokenlab reads protocols 2 to 5",
    ],
    [
      "truncated",
      pk(P.proto(), P.str("abc")).subarray(0, 8),
      {},
      "expected 3 more bytes, found 1 (truncated)",
    ],
    [
      "no_stop",
      pk(P.proto(), P.int(1)),
      {},
      "expected STOP, found the end of the pickle",
    ],
    [
      "memo",
      pk(P.proto(), [0x68, 9], P.stop),
      {},
      "a memo lookup of 9, which was never stored",
    ],
    [
      "complex_storage",
      pk(
        P.proto(),
        tensorOps("0", "ComplexFloatStorage", 2, 0, [2], [1]),
        P.stop,
      ),
      { "0": f32 },
      'asks for global "torch.ComplexFloatStorage"',
    ],
    [
      "persid",
      pk(P.proto(), P.str("not a storage"), P.persid, P.stop),
      {},
      "a persistent object the string \"not a storage\"; tokenlab only resolves torch's ('storage', storage_type, key, location, numel) ids",
    ],
    [
      "out_of_bounds",
      pk(
        P.proto(),
        tensorOps("0", "FloatStorage", 4, 1, [2, 2], [2, 1]),
        P.stop,
      ),
      { "0": f32 },
      "a tensor of shape [2, 2], stride [2, 1] at offset 1 reaches element 4 of a storage of 4",
    ],
    [
      "short_storage",
      pk(P.proto(), tensorOps("0", "FloatStorage", 8, 0, [8], [1]), P.stop),
      { "0": f32 },
      'storage "archive/data/0" should hold 8 float32 elements (32 bytes), found 16 bytes',
    ],
    [
      "tuple_key",
      pk(
        P.proto(),
        P.emptyDict,
        P.int(1),
        P.int(2),
        [0x86],
        P.int(3),
        P.setitem,
        P.stop,
      ),
      {},
      "a dict has a key that is a list/tuple of 2",
    ],
    [
      "codecs_utf8",
      pk(
        P.proto(),
        P.global("_codecs", "encode"),
        P.str("abc"),
        P.str("utf-8"),
        [0x86],
        P.reduce,
        P.stop,
      ),
      {},
      'calls _codecs.encode with the string "abc" and the string "utf-8"',
    ],
    [
      "bare_global",
      pk(
        P.proto(),
        P.emptyList,
        P.global("torch", "FloatStorage"),
        [0x61],
        P.stop,
      ),
      {},
      "the unpickled object holds the global torch.FloatStorage itself",
    ],
    [
      "build_list",
      pk(P.proto(), P.emptyList, P.emptyDict, [0x62], P.stop),
      {},
      "sets the state of a list/tuple of 0 (BUILD)",
    ],
  ];
  try {
    for (const [name, pickle, storages, want] of cases) {
      const path = await tempFile(
        dir,
        `${name}.pt`,
        torchArchive(pickle, storages),
      );
      const msg = await refusal(path);
      assertStringIncludes(msg, want);
      assertStringIncludes(msg, `${name}.pt`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("hand-built pickles: strides, offsets and 8-byte gathers", async () => {
  const dir = await tempDir();
  try {
    const f64 = bytesOf(Float64Array.from({ length: 24 }, (_, i) => i + 0.5));
    const i64 = bytesOf(
      BigInt64Array.from({ length: 24 }, (_, i) => BigInt(i) - 3n + 2n ** 60n),
    );
    const u8 = bytesOf(Uint8Array.from({ length: 24 }, (_, i) => i));
    const path = await tempFile(
      dir,
      "views.pt",
      torchArchive(
        dictPickle([
          // [2, 3, 4] permuted to [4, 2, 3] with an offset of 0.
          [
            "f64.perm",
            tensorOps("0", "DoubleStorage", 24, 0, [4, 2, 3], [1, 12, 4]),
          ],
          ["i64.slice", tensorOps("1", "LongStorage", 24, 5, [2, 3], [6, 2])],
          ["u8.step", tensorOps("2", "ByteStorage", 24, 1, [3, 2], [8, 3])],
          ["u8.bcast", tensorOps("2", "ByteStorage", 24, 7, [2, 2], [0, 1])],
          ["bool.row", tensorOps("3", "BoolStorage", 4, 0, [4], [1])],
        ]),
        { "0": f64, "1": i64, "2": u8, "3": new Uint8Array([1, 0, 0, 1]) },
      ),
    );
    const sd = await readTorchStateDict(path);
    const perm: number[] = [];
    for (let a = 0; a < 4; a++) {
      for (let b = 0; b < 2; b++) {
        for (let c = 0; c < 3; c++) perm.push(a * 1 + b * 12 + c * 4 + 0.5);
      }
    }
    assertEquals([...(sd.get("f64.perm")!.data as Float64Array)], perm);
    assertEquals(
      [...(sd.get("i64.slice")!.data as BigInt64Array)],
      [5, 7, 9, 11, 13, 15].map((i) => BigInt(i) - 3n + 2n ** 60n),
    );
    assertEquals([...(sd.get("u8.step")!.data as Uint8Array)], [
      1,
      4,
      9,
      12,
      17,
      20,
    ]);
    assertEquals([...(sd.get("u8.bcast")!.data as Uint8Array)], [7, 8, 7, 8]);
    assertEquals(sd.get("bool.row")!.dtype, "bool");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("big-endian archives (byteorder) and entries past 64 KiB", async () => {
  const dir = await tempDir();
  try {
    const n = 70_000; // 280 KB: the reader's two-read path
    const values = Float32Array.from({ length: n }, (_, i) => i * 0.5 - 7);
    const big = new Uint8Array(n * 4);
    const dv = new DataView(big.buffer);
    values.forEach((v, i) => dv.setFloat32(4 * i, v, false));
    const i16 = new Uint8Array([0x01, 0x02, 0xff, 0xfe]); // 0x0102, 0xfffe
    const pickle = dictPickle([
      ["w", tensorOps("0", "FloatStorage", n, 0, [n], [1])],
      ["s", tensorOps("1", "ShortStorage", 2, 0, [2], [1])],
    ]);
    const entries: [string, Uint8Array][] = [
      ["archive/data.pkl", pickle],
      ["archive/byteorder", enc.encode("big")],
      ["archive/data/0", big],
      ["archive/data/1", i16],
      ["archive/version", enc.encode("3\n")],
    ];
    const path = await tempFile(dir, "be.pt", storedZip(entries));
    const sd = await readTorchStateDict(path);
    assertEquals(sd.get("w")!.data, values);
    assertEquals([...sd.get("s")!.data as Int16Array], [0x0102, -2]);
    entries[1] = ["archive/byteorder", enc.encode("middle")];
    const bad = await tempFile(dir, "bad_order.pt", storedZip(entries));
    assertStringIncludes(
      await refusal(bad),
      'expected "little" or "big" in archive/byteorder, found "middle"',
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("files that are not torch zip checkpoints get their own errors", async () => {
  const cases: [string | URL, string][] = [
    [
      fx("legacy.pt"),
      "found the legacy PyTorch format (torch < 1.6, or torch.save(..., _use_new_zipfile_serialization=False))",
    ],
    [fx("legacy.pt"), "re-save it as a zip checkpoint with torch >= 1.6"],
    [
      fx("plain.pkl"),
      "found a plain Python pickle, not a torch.save zip archive",
    ],
    [fx("real_tar.pth.tar"), "found a tar archive"],
    [
      fx("real_tar.pth.tar"),
      "extract it, or load it in Python and re-save with torch.save(obj, path) in torch >= 1.6",
    ],
    [
      fx("not_torch.zip"),
      'found a ZIP archive without one (1 entries: "readme.txt")',
    ],
    [
      fx("missing_storage.pt"),
      'expected the storage file "module_prefix/data/0" the pickle refers to, found no such entry',
    ],
    [
      fx("does_not_exist.pt"),
      "expected a file there, found nothing; check the path",
    ],
    [FIX, "expected a file, found a directory"],
  ];
  for (const [path, want] of cases) {
    assertStringIncludes(await refusal(path), want);
  }
  const dir = await tempDir();
  try {
    const made: [string, Uint8Array, string][] = [
      ["empty.pt", new Uint8Array(0), "an empty file (0 bytes)"],
      [
        "gz.pt",
        new Uint8Array([0x1f, 0x8b, 8, 0, 0, 0, 0, 0]),
        "a gzip-compressed file; decompress it first (gunzip)",
      ],
      [
        "lfs.pt",
        enc.encode(
          "version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 9\n",
        ),
        "a Git LFS pointer",
      ],
      [
        "page.pt",
        enc.encode("<!DOCTYPE html><html><body>Sign in</body></html>"),
        "an HTML/XML page (a failed download",
      ],
      [
        "st.pt",
        encodeSafetensors({ a: rawFromFloat32(new Float32Array(1), [1]) }),
        "a safetensors file",
      ],
      [
        "junk.pt",
        new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9]),
        'an unknown format (first bytes 01 02 03 04 05 06 07 08), not a ZIP archive; torch.save (torch >= 1.6) writes ZIP archives starting with "PK"',
      ],
    ];
    for (const [name, bytes, want] of made) {
      const msg = await refusal(await tempFile(dir, name, bytes));
      assertStringIncludes(msg, "expected a PyTorch checkpoint");
      assertStringIncludes(msg, want);
    }
    // TorchZip alone says the same, without torch's framing.
    const e = await assertRejects(
      () => TorchZip.open(fx("plain.pkl")),
      CheckpointError,
    );
    assertStringIncludes(
      e.message,
      "expected a ZIP archive, found a plain Python pickle",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------
// safetensors.

interface HandJson {
  metadata: Record<string, string>;
  tensors: Record<
    string,
    { dtype: string; shape: number[]; values: (number | string)[] }
  >;
}

const ST_DTYPES: Record<string, RawTensor["dtype"]> = {
  F64: "float64",
  F32: "float32",
  F16: "float16",
  BF16: "bfloat16",
  I64: "int64",
  I32: "int32",
  I16: "int16",
  I8: "int8",
  U8: "uint8",
  BOOL: "bool",
};

function handTensors(hand: HandJson): Map<string, RawTensor> {
  const out = new Map<string, RawTensor>();
  for (const [name, { dtype, shape, values }] of Object.entries(hand.tensors)) {
    const d = ST_DTYPES[dtype];
    if (d === "int64") {
      out.set(name, {
        dtype: d,
        shape,
        data: BigInt64Array.from(values.map((v) => BigInt(v))),
      });
    } else if (d === "float16" || d === "bfloat16" || d === "float32") {
      out.set(
        name,
        rawFromFloat32(Float32Array.from(values as number[]), shape, d),
      );
    } else {
      const Cls = {
        float64: Float64Array,
        int32: Int32Array,
        int16: Int16Array,
        int8: Int8Array,
        uint8: Uint8Array,
        bool: Uint8Array,
      }[d as "float64"];
      out.set(name, { dtype: d, shape, data: Cls.from(values as number[]) });
    }
  }
  return out;
}

Deno.test("safetensors: reads a file built by hand in Python (struct + json)", async () => {
  const hand: HandJson = JSON.parse(
    await Deno.readTextFile(new URL("hand.json", ST_FIX)),
  );
  const { tensors, metadata } = await readSafetensors(
    new URL("hand.safetensors", ST_FIX),
  );
  assertEquals(metadata, hand.metadata);
  const want = handTensors(hand);
  assertEquals(new Set(tensors.keys()), new Set(want.keys()));
  for (const [name, t] of tensors) {
    const w = want.get(name)!;
    assertEquals([t.dtype, t.shape], [w.dtype, w.shape], name);
    assertEquals(t.data, w.data, name);
  }
});

Deno.test("safetensors: our bytes equal the independent Python writer's", async () => {
  const hand: HandJson = JSON.parse(
    await Deno.readTextFile(new URL("hand.json", ST_FIX)),
  );
  const file = await Deno.readFile(new URL("hand.safetensors", ST_FIX));
  // Same tensors, given in a different order: the layout does not depend on it.
  const tensors = new Map([...handTensors(hand)].reverse());
  const ours = encodeSafetensors(tensors, { metadata: hand.metadata });
  assertEquals(ours, file);
  const dir = await tempDir();
  try {
    await writeSafetensors(`${dir}/ours.safetensors`, tensors, {
      metadata: hand.metadata,
    });
    assertEquals(await Deno.readFile(`${dir}/ours.safetensors`), file);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("safetensors: the reference writer's layouts", () => {
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  const len = (b: Uint8Array) =>
    Number(new DataView(b.buffer).getBigUint64(0, true));
  // No tensors: "{}" padded to 8 bytes with spaces.
  let b = encodeSafetensors({});
  assertEquals([len(b), text(b.subarray(8))], [8, "{}      "]);
  b = encodeSafetensors({}, { metadata: { framework: "pt" } });
  assertEquals([len(b), text(b.subarray(8))], [
    40,
    '{"__metadata__":{"framework":"pt"}}     ',
  ]);
  // One tensor: header exactly 64 bytes, no padding, then the data.
  const six = new Float32Array([0, 1, 2, 3, 4, 5]);
  b = encodeSafetensors({ "attn.0": rawFromFloat32(six, [1, 2, 3]) });
  assertEquals(len(b), 64);
  assertEquals(
    text(b.subarray(8, 72)),
    '{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}',
  );
  assertEquals(b.subarray(72), bytesOf(six));
  // One byte shorter a name: padded with 7 spaces to keep the data aligned.
  b = encodeSafetensors({ attn0: rawFromFloat32(six, [1, 1, 2, 3]) });
  assertEquals(len(b), 72);
  assert(text(b.subarray(8, 80)).endsWith("}}       "));
});

Deno.test("safetensors: round trip of every dtype, including odd sizes", async () => {
  const t: Record<string, RawTensor> = {
    f64: {
      dtype: "float64",
      shape: [2],
      data: new Float64Array([Math.PI, -0]),
    },
    f32: {
      dtype: "float32",
      shape: [3],
      data: new Float32Array([1.5, NaN, -Infinity]),
    },
    f16: {
      dtype: "float16",
      shape: [2, 2],
      data: new Uint16Array([0x7e01, 0x0001, 0xfbff, 0x8000]),
    },
    bf16: { dtype: "bfloat16", shape: [1], data: new Uint16Array([0x3f80]) },
    i64: {
      dtype: "int64",
      shape: [2],
      data: new BigInt64Array([-(2n ** 63n), 2n ** 63n - 1n]),
    },
    i32: { dtype: "int32", shape: [1], data: new Int32Array([-5]) },
    i16: { dtype: "int16", shape: [3], data: new Int16Array([1, -2, 3]) },
    i8: { dtype: "int8", shape: [1], data: new Int8Array([-128]) },
    u8: { dtype: "uint8", shape: [3], data: new Uint8Array([0, 7, 255]) },
    flags: { dtype: "bool", shape: [1, 3], data: new Uint8Array([1, 0, 1]) },
    empty: { dtype: "float32", shape: [0], data: new Float32Array(0) },
    scalar: { dtype: "float32", shape: [], data: new Float32Array([3]) },
  };
  const back = decodeSafetensors(
    encodeSafetensors(t, { metadata: { a: "b" } }),
  );
  assertEquals(back.metadata, { a: "b" });
  assertEquals(new Set(back.tensors.keys()), new Set(Object.keys(t)));
  for (const [k, v] of back.tensors) {
    assertEquals(v.dtype, t[k].dtype, k);
    assertEquals(v.shape, t[k].shape, k);
    assertEquals(bytesOf(v.data), bytesOf(t[k].data), k); // NaN bits too
  }
  const dir = await tempDir();
  try {
    const path = new URL(`file://${dir}/all.safetensors`);
    await writeSafetensors(path, new Map(Object.entries(t)));
    const read = await readSafetensors(path);
    for (const [k, v] of read.tensors) {
      assertEquals(bytesOf(v.data), bytesOf(t[k].data), k);
    }
    assertEquals(read.metadata, {});
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** A safetensors file from a header object and data, for the bad cases. */
function rawSafetensors(
  header: unknown,
  data: Uint8Array,
  lenOverride?: bigint,
): Uint8Array {
  const h = enc.encode(
    typeof header === "string" ? header : JSON.stringify(header),
  );
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(
    0,
    lenOverride ?? BigInt(h.length),
    true,
  );
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

Deno.test("safetensors: reads files whose tensors are not aligned (older writers)", () => {
  const bytes = rawSafetensors(
    {
      a: { dtype: "U8", shape: [3], data_offsets: [0, 3] },
      b: { dtype: "F32", shape: [2], data_offsets: [3, 11] },
    },
    new Uint8Array([1, 2, 3, ...bytesOf(new Float32Array([0.5, -2]))]),
  );
  const { tensors } = decodeSafetensors(bytes);
  assertEquals([...tensors.get("b")!.data as Float32Array], [0.5, -2]);
  assertEquals([...tensors.keys()], ["a", "b"]);
});

Deno.test("safetensors: every malformed header is named", () => {
  const f4 = new Uint8Array(4);
  const t = (dtype: string, shape: unknown, offs: unknown) => ({
    dtype,
    shape,
    data_offsets: offs,
  });
  const cases: [Uint8Array, string][] = [
    [
      new Uint8Array(5),
      "expected at least 8 bytes (the header length), found 5",
    ],
    [
      rawSafetensors("{}", f4, 200_000_000n),
      "expected a header length of at most 100000000 bytes, found 200000000",
    ],
    [
      rawSafetensors("{}", f4, 64n),
      "the header length 64 runs past the end (14 bytes in all)",
    ],
    [
      rawSafetensors("[1]", new Uint8Array()),
      'expected the JSON header to start with "{", found "[1]"',
    ],
    [
      rawSafetensors("{nope", new Uint8Array()),
      "expected a JSON header, found invalid JSON",
    ],
    [
      rawSafetensors({ x: 1 }, new Uint8Array()),
      'expected tensor "x" to be {dtype, shape, data_offsets}',
    ],
    [
      rawSafetensors({ x: t("F8_E4M3", [4], [0, 4]) }, f4),
      'tensor "x" has dtype "F8_E4M3"; expected one of F64, F32',
    ],
    [
      rawSafetensors({ x: t("U32", [1], [0, 4]) }, f4),
      "convert the tensor (e.g. to F32) before saving",
    ],
    [
      rawSafetensors({ x: t("F32", [-1], [0, 4]) }, f4),
      'expected tensor "x"\'s shape to be a list of non-negative integers, found [-1]',
    ],
    [
      rawSafetensors({ x: t("F32", [1], [4, 0]) }, f4),
      'expected tensor "x"\'s data_offsets to be [begin, end] with 0 <= begin <= end, found [4,0]',
    ],
    [
      rawSafetensors({ x: t("F32", [2], [0, 4]) }, f4),
      'tensor "x" of dtype F32 and shape [2] needs 8 bytes, found data_offsets [0, 4] (4 bytes)',
    ],
    [
      rawSafetensors({ x: t("U8", [2], [2, 4]) }, f4),
      'tensor "x" starts at byte 2, expected 0: the tensors must cover the data without gaps',
    ],
    [
      rawSafetensors({ x: t("U8", [4], [0, 4]), y: t("U8", [2], [2, 4]) }, f4),
      'tensor "y" at bytes [2, 4] overlaps the tensor before it (which ends at 4)',
    ],
    [
      rawSafetensors({ x: t("U8", [2], [0, 2]) }, f4),
      "the tensors cover 2 bytes of data, found 4 after the header",
    ],
    [
      rawSafetensors({ x: t("U8", [8], [0, 8]) }, f4),
      "the file is truncated, fetch it again",
    ],
    [
      rawSafetensors({ __metadata__: { a: 1 } }, new Uint8Array()),
      'expected "__metadata__" values to be strings, found 1 for "a"',
    ],
    [
      rawSafetensors({ __metadata__: [] }, new Uint8Array()),
      'expected "__metadata__" to be an object of strings',
    ],
  ];
  const bad = new Uint8Array([...rawSafetensors("{}  ", new Uint8Array())]);
  bad[9] = 0xff;
  cases.push([
    bad,
    "expected a UTF-8 JSON header, found bytes that are not UTF-8",
  ]);
  for (const [bytes, want] of cases) {
    const e = assertThrows(
      () => decodeSafetensors(bytes, { label: "bad.safetensors" }),
      CheckpointError,
    );
    assertStringIncludes(e.message, "cannot read bad.safetensors: ");
    assertStringIncludes(e.message, want);
  }
});

Deno.test("safetensors: bad tensors are refused before anything is written", async () => {
  const dir = await tempDir();
  const path = `${dir}/model.safetensors`;
  try {
    await Deno.writeTextFile(path, "old contents");
    const bad: [
      Record<string, RawTensor>,
      Record<string, string> | undefined,
      string,
    ][] = [
      [
        { w: { dtype: "float32", shape: [3], data: new Float32Array(2) } },
        undefined,
        'tensor "w": shape [3] needs 3 elements, found 2',
      ],
      [
        { w: { dtype: "float16", shape: [1], data: new Float32Array(1) } },
        undefined,
        "needs its data in a Uint16Array, found a Float32Array",
      ],
      [
        { __metadata__: rawFromFloat32(new Float32Array(1), [1]) },
        undefined,
        'other than "__metadata__"',
      ],
      [
        { "": rawFromFloat32(new Float32Array(1), [1]) },
        undefined,
        "non-empty strings",
      ],
      [
        {},
        { n: 3 as unknown as string },
        'expected metadata values to be strings, found number for "n"',
      ],
    ];
    for (const [tensors, metadata, want] of bad) {
      const e = await assertRejects(
        () => writeSafetensors(path, tensors, { metadata }),
        TypeError,
      );
      assertStringIncludes(e.message, want);
      assertEquals(await Deno.readTextFile(path), "old contents");
    }
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), [
      "model.safetensors",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("safetensors: a failed write leaves the old file and no temporary file", async () => {
  const dir = await tempDir();
  try {
    const t = { w: rawFromFloat32(new Float32Array([1, 2]), [2]) };
    // The target is a folder: the temporary file is written, the rename fails.
    await Deno.mkdir(`${dir}/taken`);
    await Deno.writeTextFile(`${dir}/taken/inside.txt`, "keep");
    let e = await assertRejects(
      () => writeSafetensors(`${dir}/taken`, t),
      CheckpointError,
    );
    assertStringIncludes(e.message, `cannot write ${dir}/taken: `);
    assertStringIncludes(
      e.message,
      "nothing was changed there (the temporary file was removed)",
    );
    assertEquals(await Deno.readTextFile(`${dir}/taken/inside.txt`), "keep");
    assertEquals([...Deno.readDirSync(dir)].map((x) => x.name), ["taken"]);
    // A folder that does not exist.
    e = await assertRejects(
      () => writeSafetensors(`${dir}/nope/m.safetensors`, t),
      CheckpointError,
    );
    assertStringIncludes(
      e.message,
      "Check that the folder exists and is writable",
    );
    // A good write replaces the old file whole.
    await Deno.writeTextFile(`${dir}/m.safetensors`, "old");
    await writeSafetensors(`${dir}/m.safetensors`, t);
    assertEquals(
      (await readSafetensors(`${dir}/m.safetensors`)).tensors.get("w")!.data,
      new Float32Array([1, 2]),
    );
    assertEquals(
      new Set([...Deno.readDirSync(dir)].map((x) => x.name)),
      new Set(["taken", "m.safetensors"]),
    );
    e = await assertRejects(
      () => readSafetensors(`${dir}/missing.safetensors`),
      CheckpointError,
    );
    assertStringIncludes(e.message, "expected a file there, found nothing");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
