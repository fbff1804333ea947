// Reading images [start, start + count) as NHWC float32 values in [0, 1]:
// shared by the synthetic scenes and their cache; and the index check of the
// file datasets (CIFAR, image folders). Not part of the public API.

/** Refuses anything but an image index of `ds`: an integer in [0, size). */
export function checkImageIndex(
  ds: { size: number; description: string },
  i: number,
): void {
  if (!Number.isInteger(i) || i < 0 || i >= ds.size) {
    throw new RangeError(
      `${ds.description}: image ${i} requested, expected an index in [0, ${ds.size})`,
    );
  }
}

/** Images [start, start + count) of `ds`, each from `pixels`, scaled to [0, 1]. */
export function readRange(
  ds: { size: number; height: number; width: number; description: string },
  start: number,
  count: number,
  pixels: (i: number) => Uint8Array,
): Float32Array {
  if (
    !Number.isInteger(start) || !Number.isInteger(count) || start < 0 ||
    count < 0 || start + count > ds.size
  ) {
    throw new RangeError(
      `${ds.description}: images [${start}, ${
        start + count
      }) requested, the dataset has ${ds.size}`,
    );
  }
  const per = ds.height * ds.width * 3;
  const out = new Float32Array(count * per);
  for (let b = 0; b < count; b++) {
    const px = pixels(start + b);
    for (let j = 0; j < per; j++) out[b * per + j] = px[j] / 255;
  }
  return out;
}
