/**
 * The one CRC-32: known check values, a bitwise reference (no table) on
 * every length around the eight-byte steps, continuing a sum from a seed,
 * and zlib's CRC-32 on the same bytes.
 */

import { assertEquals } from "./_assert.ts";
import { crc32 } from "tokenlab/io/crc32.ts";
import { crc32 as zlibCrc32 } from "node:zlib";

/** CRC-32 one bit at a time, written from the definition. */
function bitwise(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

function pseudoRandom(n: number): Uint8Array {
  const out = new Uint8Array(n);
  let s = 12345;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    out[i] = s >>> 24;
  }
  return out;
}

Deno.test("crc32: published check values", () => {
  const text = (s: string) => new TextEncoder().encode(s);
  assertEquals(crc32(text("123456789")), 0xcbf43926);
  assertEquals(crc32(new Uint8Array(0)), 0);
  assertEquals(crc32(text("a")), 0xe8b7be43);
  assertEquals(
    crc32(text("The quick brown fox jumps over the lazy dog")),
    0x414fa339,
  );
  assertEquals(crc32(new Uint8Array(32)), 0x190a55ad);
  assertEquals(crc32(new Uint8Array(32).fill(0xff)), 0xff6cab0b);
});

Deno.test("crc32: equals a bitwise CRC-32 on every length up to 70 and at offsets", () => {
  const bytes = pseudoRandom(4200);
  for (let n = 0; n <= 70; n++) {
    for (const at of [0, 1, 3, 7]) {
      const b = bytes.subarray(at, at + n);
      assertEquals(crc32(b), bitwise(b), `length ${n} at ${at}`);
    }
  }
  assertEquals(crc32(bytes), bitwise(bytes));
});

Deno.test("crc32: a seed continues the sum, as zlib's crc32(data, value)", () => {
  const bytes = pseudoRandom(10_000);
  const whole = crc32(bytes);
  for (const cut of [0, 1, 5, 8, 4096, 9999, 10_000]) {
    const first = crc32(bytes.subarray(0, cut));
    assertEquals(crc32(bytes.subarray(cut), first), whole, `cut at ${cut}`);
  }
  assertEquals(crc32(bytes, 0xdeadbeef), zlibCrc32(bytes, 0xdeadbeef) >>> 0);
  assertEquals(whole, zlibCrc32(bytes) >>> 0);
});
