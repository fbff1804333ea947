"""Times the official label pooling in PyTorch on this machine, for
comparison with tests/bench/pooling_bench.ts (run both in the same session).

    /usr/bin/python3 tests/bench/pooling_torch_bench.py [batch] [threads]

The same shapes as the Deno bench (a batch of maps, k 5, 15 x 15, 1000
classes, 14 x 14 tokens) and the official steps: densify the top-k maps
(scatter_ into [B, C, H, W]), flip the flagged maps, torchvision's
roi_align to 14 x 14 and to 1 x 1, softmax over the classes, smoothing, and
the one-hot ground truth. Prints the median and the best of the timed runs.
"""

import statistics
import sys
import time

import torch
from torchvision.ops import roi_align

B = int(sys.argv[1]) if len(sys.argv) > 1 else 128
if len(sys.argv) > 2:
    torch.set_num_threads(int(sys.argv[2]))
K, H, W, C, S, EPS = 5, 15, 15, 1000, 14, 0.1

g = torch.Generator().manual_seed(2024)
scores = 12 - 2 * torch.arange(K).view(1, K, 1, 1) + torch.randn(B, K, H, W, generator=g)
first = torch.randint(0, C, (B, 1, H, W), generator=g)
ids = (first + 37 * torch.arange(K).view(1, K, 1, 1)) % C
flips = torch.rand(B, generator=g) < 0.5
side = torch.sqrt(torch.rand(B, generator=g) * 0.92 + 0.08)
top = torch.rand(B, generator=g) * (1 - side)
left = torch.rand(B, generator=g) * (1 - side)
coords = torch.stack([top, left, side, side], 1)  # (top, left, height, width)
labels = torch.randint(0, C, (B,), generator=g)


def pool():
    dense = torch.zeros(B, C, H, W)
    dense.scatter_(1, ids, scores)
    dense[flips] = dense[flips].flip(-1)
    rois = torch.cat([
        torch.arange(B, dtype=torch.float32).view(B, 1),
        torch.stack([coords[:, 1] * W, coords[:, 0] * H,
                     (coords[:, 1] + coords[:, 3]) * W,
                     (coords[:, 0] + coords[:, 2]) * H], 1) - 0.5,
    ], 1)
    tokens = roi_align(dense, rois, output_size=(S, S))  # [B, C, S, S]
    cls = roi_align(dense, rois, output_size=(1, 1))  # [B, C, 1, 1]
    tokens = torch.softmax(tokens.view(B, C, S * S), 1) * (1 - EPS) + EPS / C
    cls = torch.softmax(cls.view(B, C), 1) * (1 - EPS) + EPS / C
    truth = torch.full((B, C), EPS / C).scatter_(1, labels.view(B, 1), 1 - EPS + EPS / C)
    return cls, tokens, truth


with torch.no_grad():
    for _ in range(2):
        pool()  # warm-up
    times = []
    for _ in range(10):
        t0 = time.perf_counter()
        pool()
        times.append(time.perf_counter() - t0)
print(
    f"torch {torch.__version__} ({torch.get_num_threads()} threads): label pooling "
    f"B={B} k={K} {H}x{W} C={C} S={S}: median {statistics.median(times) * 1000:.0f} ms, "
    f"best {min(times) * 1000:.0f} ms"
)
