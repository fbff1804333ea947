/**
 * Bytes and documents as base64 data URIs, the way views embed PNG images
 * and SVG documents in SVG, plotly and HTML.
 *
 * @module
 */

/**
 * Base64 of bytes (for data URIs).
 *
 * @example
 * ```ts
 * import { toBase64 } from "tokenlab/view/data_uri.ts";
 * console.log(toBase64(new TextEncoder().encode("hi"))); // aGk=
 * ```
 */
export function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 8192));
  }
  return btoa(binary);
}

/**
 * A base64 data URI of bytes, or of text (encoded as UTF-8), with a MIME
 * type: `data:image/png;base64,...`.
 *
 * @example
 * ```ts
 * import { dataUri } from "tokenlab/view/data_uri.ts";
 * console.log(dataUri("image/svg+xml", "<svg/>")); // data:image/svg+xml;base64,PHN2Zy8+
 * ```
 */
export function dataUri(mime: string, data: Uint8Array | string): string {
  const bytes = typeof data === "string"
    ? new TextEncoder().encode(data)
    : data;
  return `data:${mime};base64,${toBase64(bytes)}`;
}
