/**
 * Pickle structure for the fuzzer: the opcodes of a pickle (where each starts
 * and where its length or integer argument lies), and mutations that keep
 * the stream well formed enough to reach the unpickler's logic: integers
 * replaced by edge values, strings replaced with their lengths kept right,
 * opcodes inserted, deleted or duplicated, deep nesting.
 *
 * @module
 */

import type { Rng } from "../../lib/random.ts";
import { concat, type FieldHint, type Mutated, pick } from "./mutate.ts";

type Arg =
  | "none"
  | "u1"
  | "u2"
  | "i4"
  | "u8"
  | "f8"
  | "len1"
  | "len4"
  | "len8"
  | "lines2";

// Binary opcodes torch writes (protocol 2 to 5), by argument layout.
const ARGS: Record<number, Arg> = {};
for (
  const c
    of "(.012}d]l)ta esuN\x88\x89Rb\x81\x92Q\x93\x85\x86\x87\x8f\x91\x90\x94"
) {
  if (c !== " ") ARGS[c.charCodeAt(0)] = "none";
}
for (const c of "qhK\x80") ARGS[c.charCodeAt(0)] = "u1";
ARGS["M".charCodeAt(0)] = "u2";
for (const c of "rjJ") ARGS[c.charCodeAt(0)] = "i4";
ARGS[0x95] = "u8";
ARGS["G".charCodeAt(0)] = "f8";
for (const c of "\x8cC\x8a") ARGS[c.charCodeAt(0)] = "len1";
for (const c of "XB\x8b") ARGS[c.charCodeAt(0)] = "len4";
for (const c of "\x8d\x8e\x96") ARGS[c.charCodeAt(0)] = "len8";
ARGS["c".charCodeAt(0)] = "lines2";

/** One opcode of a pickle. */
export interface PickleOp {
  /** Where the opcode byte is. */
  at: number;
  /** Where it ends (the next opcode starts). */
  end: number;
  /** The opcode. */
  op: number;
  /** Its argument's layout. */
  arg: Arg;
}

/** The opcodes of a pickle, as far as they can be read (stops at STOP or at an unknown opcode). */
export function pickleOps(b: Uint8Array): PickleOp[] {
  const ops: PickleOp[] = [];
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let p = 0;
  while (p < b.length) {
    const op = b[p];
    const arg = ARGS[op];
    if (arg === undefined) break;
    let end = p + 1;
    const need = (n: number) => end + n <= b.length;
    switch (arg) {
      case "none":
        break;
      case "u1":
        end += 1;
        break;
      case "u2":
        end += 2;
        break;
      case "i4":
        end += 4;
        break;
      case "u8":
      case "f8":
        end += 8;
        break;
      case "len1":
        if (!need(1)) return ops;
        end += 1 + b[end];
        break;
      case "len4":
        if (!need(4)) return ops;
        end += 4 + v.getUint32(end, true);
        break;
      case "len8":
        if (!need(8)) return ops;
        end += 8 + Number(v.getBigUint64(end, true));
        break;
      case "lines2": {
        const a = b.indexOf(10, end);
        const c = a < 0 ? -1 : b.indexOf(10, a + 1);
        if (c < 0) return ops;
        end = c + 1;
        break;
      }
    }
    if (end > b.length) return ops;
    ops.push({ at: p, end, op, arg });
    p = end;
    if (op === 0x2e) break;
  }
  return ops;
}

/** The length, memo-index and integer fields of a pickle's opcodes. */
export function pickleHints(b: Uint8Array): FieldHint[] {
  const hints: FieldHint[] = [];
  for (const o of pickleOps(b)) {
    const w: Partial<Record<Arg, 1 | 2 | 4 | 8>> = {
      u1: 1,
      u2: 2,
      i4: 4,
      u8: 8,
      len1: 1,
      len4: 4,
      len8: 8,
    };
    const width = w[o.arg];
    if (width !== undefined) hints.push({ offset: o.at + 1, width });
  }
  return hints;
}

const enc = new TextEncoder();

function bytesOf(...parts: (string | number[] | Uint8Array)[]): Uint8Array {
  return concat(
    ...parts.map((p) =>
      typeof p === "string"
        ? Uint8Array.from([...p].map((c) => c.charCodeAt(0) & 255))
        : Uint8Array.from(p)
    ),
  );
}

function u32(n: number): number[] {
  return [n & 255, (n >>> 8) & 255, (n >>> 16) & 255, (n >>> 24) & 255];
}

/** An integer opcode holding `v` (BININT1/2/BININT, or LONG1 for anything else). */
function intOp(v: bigint): Uint8Array {
  if (v >= 0n && v < 256n) return bytesOf("K", [Number(v)]);
  if (v >= 0n && v < 65536n) {
    return bytesOf("M", [Number(v) & 255, Number(v) >> 8]);
  }
  if (v >= -(2n ** 31n) && v < 2n ** 31n) return bytesOf("J", u32(Number(v)));
  // LONG1: two's complement little-endian, as short as it goes
  const out: number[] = [];
  let x = v;
  for (;;) {
    out.push(Number(x & 255n));
    x >>= 8n;
    const sign = (out[out.length - 1] & 0x80) !== 0;
    if ((x === 0n && !sign) || (x === -1n && sign)) break;
  }
  return bytesOf([0x8a, out.length], out);
}

const EDGE_INTS = [
  0n,
  1n,
  -1n,
  2n,
  7n,
  255n,
  65536n,
  2n ** 31n - 1n,
  2n ** 31n,
  -(2n ** 31n),
  2n ** 32n,
  2n ** 53n + 1n,
  2n ** 63n - 1n,
  -(2n ** 63n),
  2n ** 64n,
  10n ** 30n,
];

const SNIPPETS: (string | Uint8Array)[] = [
  "(",
  "0",
  "1",
  "2",
  "t",
  "l",
  "d",
  "a",
  "e",
  "s",
  "u",
  "R",
  "b",
  "Q",
  "\x85",
  "\x86",
  "\x87",
  "N",
  "}",
  "]",
  ")",
  "\x88",
  "\x89",
  "\x8f",
  "\x90",
  "\x91",
  "\x93",
  "\x81",
  "\x92",
  "\x94",
  ".",
  "h\x00",
  "h\xff",
  "j\xff\xff\xff\xff",
  "q\x00",
  "r\xff\xff\xff\x7f",
  "\x80\x09",
  "\x95\xff\xff\xff\xff\xff\xff\xff\x7f",
  "G\x7f\xf8\x00\x00\x00\x00\x00\x00",
  "\x8a\x00",
  "\x8b\xff\xff\xff\xff",
  "X\xff\xff\xff\x7fab",
  "\x8d\xff\xff\xff\xff\xff\xff\xff\xff",
  "\x8c\x05hello",
  "C\x03abc",
  "cos\nsystem\n",
  "c__builtin__\neval\n",
  "ctorch._utils\n_rebuild_tensor_v2\n",
  "ctorch._utils\n_rebuild_parameter\n",
  "ccollections\nOrderedDict\n",
  "ctorch\nFloatStorage\n",
  "c_codecs\nencode\n",
  "cargparse\nNamespace\n",
  "\x8c\x07storage",
  "\x8c\x01x\x8c\x01y\x93",
  "(\x8c\x07storagectorch\nFloatStorage\n\x8c\x010\x8c\x03cpuK\x04tQ",
  "(\x8c\x07storagectorch\nFloatStorage\n\x8c\x0299\x8c\x03cpuJ\xff\xff\xff\x7ftQ",
  "(\x8c\x07storagectorch\nFloatStorage\n\x8c\x04../0\x8c\x03cpuK\x01tQ",
];

const STRINGS = [
  "",
  "0",
  "1",
  "99",
  "../0",
  "/etc/passwd",
  "data/0",
  "cpu",
  "cuda:0",
  "HalfStorage",
  "FloatStorage",
  "LongStorage",
  "EvilStorage",
  "storage",
  "state_dict",
  "model",
  "module.x",
  "latin1",
  "x".repeat(70_000),
];

/**
 * One to three structural mutations of a pickle: an integer replaced by an
 * edge value, a string replaced (lengths kept right), an opcode or a
 * snippet inserted, an opcode deleted or duplicated, deep nesting.
 * Pickles that cannot be scanned get a snippet inserted at a random byte.
 */
export function mutatePickle(rng: Rng, b: Uint8Array): Mutated<Uint8Array> {
  let cur = b;
  const what: string[] = [];
  const rounds = 1 + (rng.float() < 0.7 ? 0 : rng.int(3));
  for (let r = 0; r < rounds; r++) {
    const ops = pickleOps(cur);
    const splice = (at: number, end: number, insert: Uint8Array) =>
      bytesOf(cur.subarray(0, at), insert, cur.subarray(end));
    const boundary = ops.length > 0
      ? pick(rng, ops).at
      : rng.int(cur.length + 1);
    const kind = rng.int(8);
    const ints = ops.filter((o) =>
      "KMJ\x8a".includes(String.fromCharCode(o.op))
    );
    const strs = ops.filter((o) => o.op === 0x8c || o.op === 0x58);
    if (kind <= 1 && ints.length > 0) {
      const o = pick(rng, ints);
      const v = pick(rng, EDGE_INTS);
      cur = splice(o.at, o.end, intOp(v));
      what.push(`int@${o.at}=${v}`);
    } else if (kind === 2 && strs.length > 0) {
      const o = pick(rng, strs);
      const s = enc.encode(pick(rng, STRINGS));
      const op = s.length < 256 && rng.float() < 0.7
        ? bytesOf([0x8c, s.length], s)
        : bytesOf("X", u32(s.length), s);
      cur = splice(o.at, o.end, op);
      what.push(`string@${o.at}=${s.length} bytes`);
    } else if (kind === 3 && ops.length > 0) {
      const o = pick(rng, ops);
      cur = splice(o.at, o.end, new Uint8Array());
      what.push(`delete op@${o.at}`);
    } else if (kind === 4 && ops.length > 0) {
      const o = pick(rng, ops);
      cur = splice(boundary, boundary, cur.slice(o.at, o.end));
      what.push(`duplicate op@${o.at} to ${boundary}`);
    } else if (kind === 5) {
      const n = pick(rng, [100, 10_000, 200_000]);
      const [open, close] = pick(rng, [
        ["]", "a"],
        ["}", ""],
        ["(", "t"],
        ["(", "l"],
        ["N\x85", ""],
      ]);
      const text = open.repeat(n) + close.repeat(Math.max(0, n - 1));
      cur = splice(boundary, boundary, bytesOf(text));
      what.push(`nest ${JSON.stringify(open)}*${n}@${boundary}`);
    } else {
      const s = pick(rng, SNIPPETS);
      cur = splice(boundary, boundary, typeof s === "string" ? bytesOf(s) : s);
      what.push(`insert ${JSON.stringify(String(s).slice(0, 24))}@${boundary}`);
    }
  }
  return { value: cur, what };
}
