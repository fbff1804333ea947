/**
 * Inflating raw deflate data with a bound on the output (not part of the
 * public API): the ZIP reader's defence against entries that declare a few
 * bytes and inflate to gigabytes.
 *
 * @module
 */

/** What {@linkcode inflateBounded} found. */
export type InflateResult =
  /** The data inflated to exactly the expected bytes. */
  | { ok: true; bytes: Uint8Array }
  /** The data inflate to more than expected: stopped once `produced` passed it. */
  | { ok: false; reason: "over"; produced: number }
  /** The data ended after `produced` bytes, fewer than expected. */
  | { ok: false; reason: "short"; produced: number }
  /** The data are not valid deflate. */
  | { ok: false; reason: "invalid"; produced: number; error: unknown };

/**
 * One compressed byte inflates to at most about 1032 (deflate's limit); the
 * input is fed in slices small enough that one slice's output stays near
 * what is still expected, so a bomb is stopped after a few hundred KB.
 */
const MAX_RATIO = 1032;
const MIN_SLICE = 64;
const MAX_SLICE = 1 << 16;

/**
 * Inflates raw deflate `data` that should give exactly `expected` bytes,
 * streaming, and stops (cancelling the stream) as soon as the output passes
 * `expected`: memory stays within `expected` plus one slice's output.
 */
export async function inflateBounded(
  data: Uint8Array,
  expected: number,
): Promise<InflateResult> {
  let fed = 0;
  let produced = 0;
  const source = new ReadableStream<BufferSource>({
    pull(controller) {
      if (fed >= data.length) {
        controller.close();
        return;
      }
      const left = Math.max(0, expected - produced);
      const slice = Math.min(
        MAX_SLICE,
        Math.max(MIN_SLICE, Math.ceil(left / MAX_RATIO)),
      );
      const end = Math.min(data.length, fed + slice);
      controller.enqueue(data.slice(fed, end));
      fed = end;
    },
  }, { highWaterMark: 0 });
  const reader = source.pipeThrough(new DecompressionStream("deflate-raw"))
    .getReader();
  const out = new Uint8Array(expected);
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      if (produced + value.length > expected) {
        produced += value.length;
        await reader.cancel().catch(() => {});
        return { ok: false, reason: "over", produced };
      }
      out.set(value, produced);
      produced += value.length;
    }
  } catch (error) {
    await reader.cancel().catch(() => {});
    return { ok: false, reason: "invalid", produced, error };
  }
  if (produced !== expected) return { ok: false, reason: "short", produced };
  return { ok: true, bytes: out };
}
