"""torchvision's counterpart of tests/bench/data_bench.ts's photo pipeline.

Reads every JPEG under the folder given as the only argument with Pillow and
applies RandomResizedCrop(224) (random bilinear/bicubic is timm's; torchvision
takes one: bilinear here), a horizontal flip, RandAugment(num_ops=2,
magnitude=9), ToTensor, Normalize and RandomErasing(0.25), in one process
with one torch thread, and prints images per second. torchvision's
RandAugment draws a different op set than timm's rand-m9-mstd0.5-inc1, so the
ratio compares pipelines of the same shape, not identical work.

    /usr/bin/python3 tests/bench/data_torch_bench.py <folder of class folders>
"""
import glob
import os
import sys
import time

import torch
from PIL import Image
from torchvision import transforms as T

torch.set_num_threads(1)
torch.manual_seed(0)
files = sorted(glob.glob(os.path.join(sys.argv[1], "*", "*.jpg")))
pipeline = T.Compose([
    T.RandomResizedCrop(224),
    T.RandomHorizontalFlip(),
    T.RandAugment(num_ops=2, magnitude=9),
    T.ToTensor(),
    T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    T.RandomErasing(p=0.25, value="random"),
])


def epoch():
    batch = [pipeline(Image.open(f).convert("RGB")) for f in files]
    return torch.stack(batch)


epoch()  # warm up
n, t0 = 0, time.perf_counter()
while time.perf_counter() - t0 < 5:
    epoch()
    n += len(files)
dt = time.perf_counter() - t0
print(f"torchvision reference (decode + RandomResizedCrop + flip + RandAugment(2, 9) + normalize + erasing, 1 thread): "
      f"{n / dt:.1f} images/s ({1000 * dt / n:.2f} ms per image, {len(files)} JPEGs 500x375 -> 224)")
