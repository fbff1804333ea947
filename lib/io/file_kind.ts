/**
 * What a file is, from its first bytes: the signatures of the formats a
 * weights or checkpoint path is mistaken for (a legacy torch pickle, a tar,
 * gzip, NumPy, HDF5, safetensors, images, a Git LFS pointer, an HTML page),
 * each with what to do about it, for the readers' error messages.
 *
 * @module
 */

/** How many first bytes {@linkcode describeNonZip} looks at (a tar's magic is at 257). */
export const SNIFF_BYTES = 512;

const LEGACY_MAGIC = [
  0x8a,
  0x0a,
  0x6c,
  0xfc,
  0x9c,
  0x46,
  0xf9,
  0x20,
  0x6a,
  0xa8,
  0x50,
  0x19,
];

function startsWith(head: Uint8Array, bytes: number[], at = 0): boolean {
  if (head.length < at + bytes.length) return false;
  for (let i = 0; i < bytes.length; i++) {
    if (head[at + i] !== bytes[i]) return false;
  }
  return true;
}

function ascii(head: Uint8Array, from: number, to: number): string {
  let s = "";
  for (let i = from; i < Math.min(to, head.length); i++) {
    s += String.fromCharCode(head[i]);
  }
  return s;
}

/** Whether the first bytes are those of a ZIP archive. */
export function isZipHead(head: Uint8Array): boolean {
  return startsWith(head, [0x50, 0x4b, 0x03, 0x04]) ||
    startsWith(head, [0x50, 0x4b, 0x05, 0x06]) ||
    startsWith(head, [0x50, 0x4b, 0x07, 0x08]);
}

/**
 * Says what a file that is not a ZIP archive is, from its first bytes, and
 * what to do about it (for error messages).
 */
export function describeNonZip(head: Uint8Array, size: number): string {
  if (size === 0) return "an empty file (0 bytes); fetch or copy it again";
  if (
    head[0] === 0x80 && head[1] >= 1 && head[1] <= 5 &&
    startsWith(head, LEGACY_MAGIC, 2)
  ) {
    return "the legacy PyTorch format (torch < 1.6, or torch.save(..., _use_new_zipfile_serialization=False)), a chain of raw pickles that tokenlab does not read; re-save it as a zip checkpoint with torch >= 1.6: torch.save(torch.load(old_path, map_location='cpu'), new_path)";
  }
  if (head[0] === 0x80 && head[1] >= 1 && head[1] <= 5) {
    return "a plain Python pickle, not a torch.save zip archive; tokenlab only reads the zip checkpoints torch >= 1.6 writes: save the tensors with torch.save(obj, path)";
  }
  if (ascii(head, 257, 262) === "ustar") {
    return "a tar archive (the format of torch < 0.4, or a .tar of several files; a .pth.tar written by torch >= 1.6 is a zip despite its name); extract it, or load it in Python and re-save with torch.save(obj, path) in torch >= 1.6";
  }
  if (head[0] === 0x1f && head[1] === 0x8b) {
    return "a gzip-compressed file; decompress it first (gunzip) and read the result";
  }
  if (startsWith(head, [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59])) {
    return "a NumPy .npy file, not a torch checkpoint";
  }
  if (startsWith(head, [0x89, 0x48, 0x44, 0x46])) {
    return "an HDF5 file (e.g. a Keras .h5), not a torch checkpoint";
  }
  const image = imageKind(head);
  if (image !== null) {
    return `${image}, not a checkpoint or weights file; give the weights (a .safetensors file, or a .pth/.pth.tar/.pt checkpoint)`;
  }
  const text = ascii(head, 0, 64);
  if (text.startsWith("version https://git-lfs")) {
    return "a Git LFS pointer, not the checkpoint itself; fetch the real file (git lfs pull)";
  }
  if (/^\s*<(!doctype|html|\?xml)/i.test(text)) {
    return "an HTML/XML page (a failed download, e.g. a login or error page?); download the checkpoint again";
  }
  if (size >= 10 && head[8] === 0x7b) {
    return "a safetensors file (8-byte header length, then a JSON header); read it with readSafetensors from tokenlab/io/safetensors.ts";
  }
  const hex = [...head.subarray(0, 8)].map((b) =>
    b.toString(16).padStart(2, "0")
  ).join(" ");
  return `an unknown format (first bytes ${hex}), not a ZIP archive; torch.save (torch >= 1.6) writes ZIP archives starting with "PK"`;
}

/** The kind of image the first bytes open, or null. */
export function imageKind(head: Uint8Array): string | null {
  if (startsWith(head, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) {
    return "a PNG image";
  }
  if (startsWith(head, [0xff, 0xd8, 0xff])) return "a JPEG image";
  if (ascii(head, 0, 4) === "GIF8") return "a GIF image";
  if (ascii(head, 0, 4) === "RIFF" && ascii(head, 8, 12) === "WEBP") {
    return "a WebP image";
  }
  return null;
}
