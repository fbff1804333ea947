/**
 * A reader that misbehaves on purpose, to check the harness itself: each
 * case draws one of five kinds from its generator (`rng.int(5)`): success
 * (0), its own error (1), a TypeError (2), an endless loop (3), or memory
 * filled until the harness kills it (4). Not fuzzed by default.
 *
 * @module
 */

import type { FuzzReader } from "../_reader.ts";

/** The self-test reader's own error. */
export class SelfTestError extends Error {
  /** Makes the error. */
  constructor(message: string) {
    super(message);
    this.name = "SelfTestError";
  }
}

/** The misbehaving reader. */
export const reader: FuzzReader<null> = {
  own: [SelfTestError],
  prepare: (dir) => Deno.mkdir(dir, { recursive: true }),
  load: () => Promise.resolve(null),
  async make(rng, _seeds, dir) {
    const kind = rng.int(5);
    await Deno.writeTextFile(`${dir}/kind`, String(kind));
    return [`kind ${kind}`];
  },
  async run(dir) {
    const kind = Number(await Deno.readTextFile(`${dir}/kind`));
    if (kind === 1) throw new SelfTestError("refused");
    if (kind === 2) throw new TypeError("a defect");
    if (kind === 3) { for (;;) { /* a hang */ } }
    if (kind === 4) {
      const keep: Uint8Array[] = [];
      for (;;) keep.push(new Uint8Array(64 << 20).fill(1));
    }
  },
};
