/**
 * Moved to `lib/io/torch/write.ts` (and the atomic write to
 * `lib/io/atomic_write.ts`); this file re-exports them until every importer
 * has switched, then goes.
 *
 * @module
 */

export * from "./torch/write.ts";
export {
  writeFileAtomic,
  type WriteFileAtomicOptions,
} from "./atomic_write.ts";
