/**
 * Moved to `lib/io/torch/` (one file per concept, `mod.ts` the entry); this
 * file re-exports it until every importer has switched, then goes.
 *
 * @module
 */

export * from "./torch/mod.ts";
