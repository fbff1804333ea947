/**
 * SHA-256 digests as tokenlab stores them: lowercase hex, and a file's
 * size with its digest (what `state.json` and an annotator's `result.json`
 * record of the files beside them).
 *
 * @module
 */

/**
 * SHA-256 of text (UTF-8) or bytes, as lowercase hex.
 *
 * @example
 * ```ts
 * import { sha256Hex } from "tokenlab";
 * console.log((await sha256Hex("abc")).slice(0, 8)); // ba7816bf
 * ```
 */
export async function sha256Hex(data: string | Uint8Array): Promise<string> {
  const bytes = typeof data === "string"
    ? new TextEncoder().encode(data)
    : data;
  const digest = await crypto.subtle.digest(
    "SHA-256",
    bytes as Uint8Array<ArrayBuffer>,
  );
  return Array.from(
    new Uint8Array(digest),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

/** The size and SHA-256 of a file's bytes, as stored beside it. */
export interface SizedDigest {
  /** Size in bytes. */
  bytes: number;
  /** SHA-256, lowercase hex. */
  sha256: string;
}

/** The size and SHA-256 of bytes (internal: not exported by `lib/mod.ts`). */
export async function sizedDigest(data: Uint8Array): Promise<SizedDigest> {
  return { bytes: data.length, sha256: await sha256Hex(data) };
}
