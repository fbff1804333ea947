/**
 * Mutations of valid inputs, for the fuzzing harness: bytes (bit flips,
 * overwrites, truncation, chunks inserted, deleted or duplicated, random
 * bytes, length and count fields set to edge values), JSON documents (keys
 * deleted, renamed or duplicated, values of the wrong type, huge, negative,
 * NaN-like, path-like, very long or deeply nested) and source text.
 *
 * Every mutation draws from the generator it is given, so a case is
 * reproducible from its seed; each returns what it did, in words, for the
 * report.
 *
 * @module
 */

import type { Rng } from "../../lib/random.ts";

/** A little-endian integer field of an input (a length, count or offset) that mutations aim at. */
export interface FieldHint {
  /** Byte offset of the field. */
  offset: number;
  /** Width in bytes. */
  width: 1 | 2 | 4 | 8;
}

/** A mutated input and what was done to it. */
export interface Mutated<T> {
  /** The mutated value. */
  value: T;
  /** The mutations, in words (`"bitflip@17"`). */
  what: string[];
}

/** Options of {@linkcode mutateBytes}. */
export interface MutateBytesOptions {
  /** Fields that are lengths, counts or offsets (half the field mutations aim at them). */
  hints?: readonly FieldHint[];
  /** Mutations stacked (default: 1 to 3, drawn). */
  rounds?: number;
}

/** Picks one element uniformly. */
export function pick<T>(rng: Rng, items: readonly T[]): T {
  return items[rng.int(items.length)];
}

/** Random bytes, `n` of them. */
export function randomBytes(rng: Rng, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 4) {
    const u = rng.uint32();
    for (let b = 0; b < 4 && i + b < n; b++) out[i + b] = (u >>> (8 * b)) & 255;
  }
  return out;
}

/** A length biased towards small values (most bugs need few bytes), up to `max`. */
function smallLength(rng: Rng, max: number): number {
  if (max <= 0) return 0;
  const r = rng.float();
  const n = r < 0.6 ? 1 + rng.int(8) : r < 0.9 ? 1 + rng.int(256) : 1 +
    rng.int(Math.max(1, max));
  return Math.min(n, max);
}

/** The edge values a length, count or offset field is set to. */
function fieldValues(width: number, size: number, old: bigint): bigint[] {
  const bits = BigInt(width * 8);
  const max = (1n << bits) - 1n;
  const s = BigInt(size);
  const all = [
    0n,
    1n,
    max, // -1
    max >> 1n, // the largest signed value
    1n << (bits - 1n), // the smallest signed value
    1n << 31n,
    (1n << 31n) - 1n,
    (1n << 32n) - 1n,
    1n << 32n,
    1n << 40n,
    1n << 53n,
    (1n << 53n) + 1n,
    1n << 63n,
    (1n << 64n) - 1n,
    s - 1n,
    s,
    s + 1n,
    old + 1n,
    old - 1n,
    old * 2n,
    old * 256n,
    old >> 1n,
  ];
  return all.map((v) => ((v % (max + 1n)) + (max + 1n)) % (max + 1n));
}

function readLE(bytes: Uint8Array, at: number, width: number): bigint {
  let v = 0n;
  for (let b = width - 1; b >= 0; b--) v = (v << 8n) | BigInt(bytes[at + b]);
  return v;
}

function writeLE(bytes: Uint8Array, at: number, width: number, v: bigint) {
  for (let b = 0; b < width; b++) {
    bytes[at + b] = Number((v >> BigInt(8 * b)) & 255n);
  }
}

const INTERESTING_BYTES = [0, 1, 0x7f, 0x80, 0xff, 0x0a, 0x22, 0x5c, 0x2e];

/** The parts one after another, in one new array. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** One byte-level mutation of `b` (a copy is returned; `b` is not changed). */
function byteRound(
  rng: Rng,
  b: Uint8Array,
  hints: readonly FieldHint[],
): { bytes: Uint8Array; what: string } {
  const n = b.length;
  const kinds = n === 0 ? ["insert", "random"] : [
    "bitflip",
    "bitflip",
    "overwrite",
    "truncate",
    "insert",
    "delete",
    "duplicate",
    "field",
    "field",
    "field",
    "random",
  ];
  const kind = pick(rng, kinds);
  const out = b.slice();
  switch (kind) {
    case "bitflip": {
      const flips = 1 + rng.int(8);
      const at: number[] = [];
      for (let f = 0; f < flips; f++) {
        const i = rng.int(n);
        out[i] ^= 1 << rng.int(8);
        at.push(i);
      }
      return { bytes: out, what: `bitflip@${at.join(",")}` };
    }
    case "overwrite": {
      const count = 1 + rng.int(8);
      const at = rng.int(n);
      for (let i = at; i < Math.min(n, at + count); i++) {
        out[i] = rng.float() < 0.5
          ? pick(rng, INTERESTING_BYTES)
          : rng.int(256);
      }
      return { bytes: out, what: `overwrite@${at}+${count}` };
    }
    case "truncate": {
      // Near the end (a cut download) as often as anywhere.
      const keep = rng.float() < 0.5
        ? Math.max(0, n - smallLength(rng, n))
        : rng.int(n);
      return { bytes: b.slice(0, keep), what: `truncate@${keep}` };
    }
    case "insert": {
      const at = rng.int(n + 1);
      const len = smallLength(rng, 4096);
      const chunk = rng.float() < 0.5 || n === 0
        ? randomBytes(rng, len)
        : b.slice(rng.int(n), rng.int(n) + len);
      return {
        bytes: concat(b.subarray(0, at), chunk, b.subarray(at)),
        what: `insert@${at}+${chunk.length}`,
      };
    }
    case "delete": {
      const at = rng.int(n);
      const len = smallLength(rng, n - at);
      return {
        bytes: concat(b.subarray(0, at), b.subarray(at + len)),
        what: `delete@${at}+${len}`,
      };
    }
    case "duplicate": {
      const from = rng.int(n);
      const len = smallLength(rng, n - from);
      const at = rng.int(n + 1);
      return {
        bytes: concat(
          b.subarray(0, at),
          b.subarray(from, from + len),
          b.subarray(at),
        ),
        what: `duplicate ${from}+${len}@${at}`,
      };
    }
    case "field": {
      let hint: FieldHint;
      const usable = hints.filter((h) => h.offset + h.width <= n);
      if (usable.length > 0 && rng.float() < 0.7) hint = pick(rng, usable);
      else {
        const width = pick(rng, [2, 4, 8] as const);
        if (n < width) return { bytes: out, what: "field (too short)" };
        // Aligned positions are where binary formats keep their fields.
        const slots = Math.floor((n - width) / width) + 1;
        const offset = rng.float() < 0.7
          ? rng.int(slots) * width
          : rng.int(n - width + 1);
        hint = { offset, width };
      }
      const old = readLE(out, hint.offset, hint.width);
      const v = pick(rng, fieldValues(hint.width, n, old));
      writeLE(out, hint.offset, hint.width, v);
      return {
        bytes: out,
        what: `field@${hint.offset}/${hint.width}=${v}`,
      };
    }
    default: {
      const len = rng.float() < 0.5 ? rng.int(n * 2 + 1) : rng.int(64);
      return { bytes: randomBytes(rng, len), what: `random ${len} bytes` };
    }
  }
}

/**
 * Mutates bytes: one to three stacked rounds of bit flips, overwrites,
 * truncation, inserted/deleted/duplicated chunks, length fields set to edge
 * values (at `hints` or at aligned positions), or random bytes.
 */
export function mutateBytes(
  rng: Rng,
  bytes: Uint8Array,
  options: MutateBytesOptions = {},
): Mutated<Uint8Array> {
  const rounds = options.rounds ?? 1 + (rng.float() < 0.7 ? 0 : rng.int(3));
  let b = bytes;
  const what: string[] = [];
  for (let r = 0; r < rounds; r++) {
    const m = byteRound(rng, b, options.hints ?? []);
    b = m.bytes;
    what.push(m.what);
  }
  return { value: b, what };
}

// ---------------------------------------------------------------------------
// JSON documents, as a tree that can hold what JSON.parse would collapse:
// duplicate keys and number texts such as 1e999 or -0.

/** A JSON value as a tree of entries (so that keys may repeat). */
type Node =
  | { t: "obj"; entries: [string, Node][] }
  | { t: "arr"; items: Node[] }
  | { t: "raw"; text: string };

function toNode(v: unknown): Node {
  if (Array.isArray(v)) return { t: "arr", items: v.map(toNode) };
  if (v !== null && typeof v === "object") {
    return {
      t: "obj",
      entries: Object.entries(v).map(([k, x]) => [k, toNode(x)]),
    };
  }
  return { t: "raw", text: JSON.stringify(v) ?? "null" };
}

function write(n: Node, indent: string | null, depth: string, out: string[]) {
  if (n.t === "raw") {
    out.push(n.text);
    return;
  }
  const open = n.t === "obj" ? "{" : "[";
  const close = n.t === "obj" ? "}" : "]";
  const count = n.t === "obj" ? n.entries.length : n.items.length;
  if (count === 0) {
    out.push(open, close);
    return;
  }
  const inner = indent === null ? "" : depth + indent;
  out.push(open);
  for (let i = 0; i < count; i++) {
    if (i > 0) out.push(",");
    if (indent !== null) out.push("\n", inner);
    if (n.t === "obj") {
      const [k, v] = n.entries[i];
      out.push(JSON.stringify(k), indent === null ? ":" : ": ");
      write(v, indent, inner, out);
    } else write(n.items[i], indent, inner, out);
  }
  if (indent !== null) out.push("\n", depth);
  out.push(close);
}

/** The JSON text of a tree (compact, or indented by `indent`). */
function serialize(n: Node, indent: string | null): string {
  const out: string[] = [];
  write(n, indent, "", out);
  return out.join("");
}

/** Every node with the place that holds it, in document order (at most `limit`). */
function nodesOf(root: Node, limit: number) {
  const found: {
    node: Node;
    parent: Node | null;
    index: number;
    path: string;
  }[] = [];
  const walk = (
    node: Node,
    parent: Node | null,
    index: number,
    path: string,
  ) => {
    if (found.length >= limit) return;
    found.push({ node, parent, index, path });
    if (node.t === "obj") {
      node.entries.forEach(([k, v], i) => walk(v, node, i, `${path}.${k}`));
    } else if (node.t === "arr") {
      node.items.forEach((v, i) => walk(v, node, i, `${path}[${i}]`));
    }
  };
  walk(root, null, 0, "$");
  return found;
}

const raw = (text: string): Node => ({ t: "raw", text });

/** A value to put where a valid one was: wrong type, edge number, odd string, huge, nested. */
function hostileValue(rng: Rng, old: Node): { node: Node; what: string } {
  const choice = rng.int(14);
  switch (choice) {
    case 0:
      return { node: raw("null"), what: "null" };
    case 1: {
      const text = pick(rng, [
        "0",
        "-1",
        "1.5",
        "-0",
        "2147483648",
        "4294967296",
        "9007199254740993",
        "18446744073709551616",
        "-9223372036854775808",
        "1e308",
        "1e999",
        "-1e999",
        "5e-324",
        "true",
        "false",
      ]);
      return { node: raw(text), what: text };
    }
    case 2: {
      const s = pick(rng, [
        "",
        "NaN",
        "Infinity",
        "-Infinity",
        "-1",
        "1e999",
        "0x10",
        "../../x",
        "/etc/passwd",
        "..",
        "a/../../b",
        "\u0000",
        "null",
        "true",
        " ",
        "C:\\x",
        "${x}",
        "<script>",
      ]);
      return { node: raw(JSON.stringify(s)), what: `string ${s}` };
    }
    case 3:
      return { node: raw('"\\ud800"'), what: "lone surrogate" };
    case 4: {
      const n = pick(rng, [1_000, 100_000, 2_000_000]);
      return { node: raw(JSON.stringify("x".repeat(n))), what: `string*${n}` };
    }
    case 5: {
      const n = pick(rng, [10, 1_000, 100_000]);
      return {
        node: raw("[".repeat(n) + "]".repeat(n)),
        what: `nested arrays*${n}`,
      };
    }
    case 6: {
      const n = pick(rng, [10, 1_000, 100_000]);
      return {
        node: raw('{"a":'.repeat(n) + "1" + "}".repeat(n)),
        what: `nested objects*${n}`,
      };
    }
    case 7: {
      const n = pick(rng, [1_000, 200_000]);
      return {
        node: raw("[" + Array(n).fill("0").join(",") + "]"),
        what: `array*${n}`,
      };
    }
    case 8:
      return { node: raw("[]"), what: "[]" };
    case 9:
      return { node: raw("{}"), what: "{}" };
    case 10:
      return { node: { t: "arr", items: [old] }, what: "wrapped in a list" };
    case 11:
      return {
        node: { t: "obj", entries: [["value", old]] },
        what: "wrapped in an object",
      };
    case 12: {
      // Type swaps keep the content: a number as a string, and back.
      if (old.t === "raw") {
        // a raw text may hold a nested list made by an earlier round: only
        // strings and numbers are converted, anything else becomes its text
        const v = JSON.parse(old.text);
        if (v !== null && typeof v === "object") {
          return {
            node: raw(JSON.stringify(old.text.slice(0, 1000))),
            what: "value as its text",
          };
        }
        if (typeof v === "string") {
          const text = /^-?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(v)
            ? v
            : String(v.length);
          return { node: raw(text), what: `string as number ${text}` };
        }
        return {
          node: raw(JSON.stringify(String(v))),
          what: "value as string",
        };
      }
      if (old.t === "arr") {
        return {
          node: {
            t: "obj",
            entries: old.items.map((x, i) => [String(i), x] as [string, Node]),
          },
          what: "list as object",
        };
      }
      return {
        node: { t: "arr", items: old.entries.map(([, x]) => x) },
        what: "object as list",
      };
    }
    default: {
      // Numbers nudged: off by one, negated, scaled, halved.
      if (old.t === "raw") {
        const parsed = JSON.parse(old.text);
        const v = typeof parsed === "number" ? parsed : NaN;
        if (Number.isFinite(v)) {
          const x = pick(rng, [
            v + 1,
            v - 1,
            -v,
            v * 1024,
            v * 2 ** 32,
            v / 2,
            v + 0.5,
          ]);
          return { node: raw(JSON.stringify(x)), what: `number ${x}` };
        }
      }
      return { node: raw("-1"), what: "-1" };
    }
  }
}

function keyVariant(rng: Rng, key: string): string {
  return pick(rng, [
    "",
    "__proto__",
    "constructor",
    key + "x",
    key.toUpperCase(),
    key.slice(1),
    "k".repeat(10_000),
    "../" + key,
  ]);
}

/** One JSON mutation of a tree, in place. */
function jsonRound(rng: Rng, root: Node): { root: Node; what: string } {
  const nodes = nodesOf(root, 50_000);
  const { node, parent, index, path } = pick(rng, nodes);
  const kind = rng.int(10);
  if (kind <= 1 && parent !== null) {
    if (parent.t === "obj") parent.entries.splice(index, 1);
    else if (parent.t === "arr") parent.items.splice(index, 1);
    return { root, what: `delete ${path}` };
  }
  if (kind === 2 && parent?.t === "obj") {
    // The same key twice: JSON.parse keeps the last.
    const [k, v] = parent.entries[index];
    const other = hostileValue(rng, v);
    const first = rng.float() < 0.5;
    parent.entries.splice(first ? index : index + 1, 0, [k, other.node]);
    return {
      root,
      what: `duplicate key ${path} (${first ? "first" : "last"} ${other.what})`,
    };
  }
  if (kind === 3 && parent?.t === "obj") {
    const k = keyVariant(rng, parent.entries[index][0]);
    parent.entries[index][0] = k;
    return {
      root,
      what: `rename ${path} to ${JSON.stringify(k.slice(0, 20))}`,
    };
  }
  if (kind === 4 && node.t === "obj") {
    const k = pick(rng, ["__proto__", "constructor", "extra", ""]);
    const v = hostileValue(rng, raw("1"));
    node.entries.push([k, v.node]);
    return { root, what: `add ${path}.${k} = ${v.what}` };
  }
  if (kind === 5 && node.t === "arr" && node.items.length > 0) {
    const i = rng.int(node.items.length);
    node.items.splice(i, 0, node.items[rng.int(node.items.length)]);
    return { root, what: `duplicate element ${path}[${i}]` };
  }
  const v = hostileValue(rng, node);
  if (parent === null) return { root: v.node, what: `root = ${v.what}` };
  if (parent.t === "obj") parent.entries[index][1] = v.node;
  else if (parent.t === "arr") parent.items[index] = v.node;
  return { root, what: `${path} = ${v.what}` };
}

/** Options of {@linkcode mutateJson}. */
export interface MutateJsonOptions {
  /** Mutations stacked (default: 1 to 3, drawn). */
  rounds?: number;
  /** Indentation of the output (default: compact or one space, drawn). */
  indent?: string | null;
}

/**
 * Mutates a valid JSON document structurally: keys deleted, renamed,
 * added or duplicated; values replaced by null, the wrong type, edge or
 * huge numbers (1e999, 2^64), NaN-like or path-like strings ("../../x"),
 * very long strings, deeply nested or huge arrays.
 */
export function mutateJson(
  rng: Rng,
  text: string,
  options: MutateJsonOptions = {},
): Mutated<string> {
  let root = toNode(JSON.parse(text));
  const rounds = options.rounds ?? 1 + (rng.float() < 0.7 ? 0 : rng.int(3));
  const what: string[] = [];
  for (let r = 0; r < rounds; r++) {
    const m = jsonRound(rng, root);
    root = m.root;
    what.push(m.what);
  }
  const indent = options.indent !== undefined
    ? options.indent
    : pick(rng, [null, " "]);
  return { value: serialize(root, indent), what };
}

// ---------------------------------------------------------------------------
// Source text (a parameters cell).

const TEXT_PIECES = [
  '"',
  "'",
  "`",
  "\\",
  "{",
  "}",
  "[",
  "]",
  "(",
  ")",
  "/*",
  "*/",
  "//",
  ":",
  ";",
  ",",
  "=",
  "|",
  "<",
  ">",
  "-",
  "+",
  ".",
  "0x",
  "_",
  "$",
  "${",
  "n",
  "e",
  "\n",
  "\r",
  "\r\n",
  "\u2028",
  "\ud800",
  "\udc00",
  "\\u{",
  "\\x",
  "const ",
  "let ",
  "as const",
  "null",
  "undefined",
  "1e999",
  "0b2",
  "1__0",
];

/** Mutates source text: pieces of syntax inserted, characters deleted or replaced, slices duplicated, cut, or nested deeply. */
export function mutateText(rng: Rng, text: string): Mutated<string> {
  const rounds = 1 + (rng.float() < 0.6 ? 0 : rng.int(4));
  let s = text;
  const what: string[] = [];
  for (let r = 0; r < rounds; r++) {
    const at = rng.int(s.length + 1);
    const kind = rng.int(7);
    if (kind === 0 || kind === 1) {
      const piece = pick(rng, TEXT_PIECES);
      s = s.slice(0, at) + piece + s.slice(at);
      what.push(`insert ${JSON.stringify(piece)}@${at}`);
    } else if (kind === 2 && s.length > 0) {
      const len = smallLength(rng, s.length - at);
      s = s.slice(0, at) + s.slice(at + len);
      what.push(`delete@${at}+${len}`);
    } else if (kind === 3) {
      const from = rng.int(s.length + 1);
      const len = smallLength(rng, s.length - from);
      s = s.slice(0, at) + s.slice(from, from + len) + s.slice(at);
      what.push(`duplicate ${from}+${len}@${at}`);
    } else if (kind === 4) {
      s = s.slice(0, at);
      what.push(`truncate@${at}`);
    } else if (kind === 5) {
      const n = pick(rng, [100, 10_000, 200_000]);
      const open = pick(rng, ["[", "{a:", "-", "("]);
      s = s.slice(0, at) + open.repeat(n) + s.slice(at);
      what.push(`nest ${JSON.stringify(open)}*${n}@${at}`);
    } else {
      const n = pick(rng, [1_000, 1_000_000]);
      const piece = pick(rng, ["9", "a", " ", "\n", "/**/", "'x',"]);
      s = s.slice(0, at) + piece.repeat(n) + s.slice(at);
      what.push(`repeat ${JSON.stringify(piece)}*${n}@${at}`);
    }
  }
  return { value: s, what };
}
