"""PyTorch's counterpart of tests/bench/train_bench.ts: one full training step
of lvvit_xs32 written in plain PyTorch, with the architecture of
lib/models/lvvit.ts for that registry config.

    /usr/bin/python3 tests/bench/train_torch_bench.py [--batch 32] [--steps 10]
    /usr/bin/python3 tests/bench/train_torch_bench.py --serve   # worker mode

The model: the "4_2" conv stem with 32 channels and total stride 4 (conv 7x7
stride 2 pad 3, then two conv 3x3 pad 1, each without bias and followed by
BatchNorm + ReLU, then a 2x2 stride-2 projection with bias to D), class
token and position embedding, 4 pre-norm blocks (D 128, 4 heads, qkv without
bias, MLP 384 with exact GELU, LayerNorm eps 1e-5, every residual branch
divided by skip_lam 2, drop path rising linearly from 0 to 0.1), the final
norm, `head` on the class token and `aux_head` on every patch token.

Two steps, as the Deno bench:
- "full": MixToken (one official rand_bbox box per batch on the 8x8 token
  grid, partner B-1-i, applied after the patch embedding and undone on the
  aux predictions), loss = CE(cls, lam' y + (1 - lam') y.flip(0)) + mean
  token CE(aux, y_tokens) with fixed random soft targets;
- "plain": no aux head, no MixToken, class-token CE only.
then backward and torch.optim.AdamW(lr 1e-3, weight_decay 0.05 on matrices
and kernels; none on biases, norms, pos_embed, cls_token).

Standalone, it prints images per second for one thread and for every core of
this machine (os.sched_getaffinity). With --serve it answers one line per
command on stdin: "step full" or "step plain" runs one step (with --threads
N threads, 0 for every core) and answers "<seconds> <loss>"; "quit" ends. Its
first line is a JSON greeting: torch version, thread counts, and the BLAS
library loaded (Debian's reference libblas3 makes every matmul about 50x
slower than OpenBLAS: the Deno bench warns about it).
"""

import argparse
import json
import math
import os
import random
import re
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

IMG, PATCH, IN_CHANS, CLASSES = 32, 4, 3, 10
DIM, DEPTH, HEADS, MLP_RATIO, STEM, SKIP_LAM, DROP_PATH = 128, 4, 4, 3, 32, 2.0, 0.1
LR, WEIGHT_DECAY = 1e-3, 0.05
GRID = IMG // PATCH


class PatchEmbed4_2(nn.Module):
    """The official "4_2" stem for a total stride of PATCH (the projection's
    kernel and stride are PATCH // 2 after the stride-2 first conv)."""

    def __init__(self):
        super().__init__()
        k = PATCH // 2
        self.conv1 = nn.Conv2d(IN_CHANS, STEM, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(STEM)
        self.conv2 = nn.Conv2d(STEM, STEM, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(STEM)
        self.conv3 = nn.Conv2d(STEM, STEM, 3, stride=1, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(STEM)
        self.proj = nn.Conv2d(STEM, DIM, k, stride=k)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))  # [B, S, H/2, W/2]
        x = F.relu(self.bn2(self.conv2(x)))
        x = F.relu(self.bn3(self.conv3(x)))
        return self.proj(x)  # [B, D, h, w]


def drop_path(x, rate, training):
    if rate == 0 or not training:
        return x
    keep = 1 - rate
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask / keep


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = (DIM // HEADS) ** -0.5
        self.qkv = nn.Linear(DIM, 3 * DIM, bias=False)
        self.proj = nn.Linear(DIM, DIM)

    def forward(self, x):
        B, N, D = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, HEADS, D // HEADS).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # [B, H, N, hd]
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(-1)  # [B, H, N, N]
        x = (attn @ v).transpose(1, 2).reshape(B, N, D)
        return self.proj(x)


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        hidden = int(DIM * MLP_RATIO)
        self.fc1 = nn.Linear(DIM, hidden)
        self.fc2 = nn.Linear(hidden, DIM)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))  # exact GELU, as lib/ops.ts


class Block(nn.Module):
    def __init__(self, dpr):
        super().__init__()
        self.dpr = dpr
        self.norm1 = nn.LayerNorm(DIM, eps=1e-5)
        self.attn = Attention()
        self.norm2 = nn.LayerNorm(DIM, eps=1e-5)
        self.mlp = Mlp()

    def forward(self, x):
        x = x + drop_path(self.attn(self.norm1(x)), self.dpr, self.training) / SKIP_LAM
        return x + drop_path(self.mlp(self.norm2(x)), self.dpr, self.training) / SKIP_LAM


def rand_bbox(h, w, lam, rng):
    """The official rand_bbox on an h x w grid: rows [top, bottom), columns
    [left, right)."""
    r = math.sqrt(1 - lam)
    cut_h, cut_w = int(h * r), int(w * r)
    cy, cx = rng.randrange(h), rng.randrange(w)
    top, bottom = min(max(cy - cut_h // 2, 0), h), min(max(cy + cut_h // 2, 0), h)
    left, right = min(max(cx - cut_w // 2, 0), w), min(max(cx + cut_w // 2, 0), w)
    return top, left, bottom, right


class LvVit(nn.Module):
    def __init__(self, aux_head=True):
        super().__init__()
        self.patch_embed = PatchEmbed4_2()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, DIM))
        self.pos_embed = nn.Parameter(torch.zeros(1, GRID * GRID + 1, DIM))
        dpr = [DROP_PATH * i / (DEPTH - 1) for i in range(DEPTH)]
        self.blocks = nn.ModuleList([Block(d) for d in dpr])
        self.norm = nn.LayerNorm(DIM, eps=1e-5)
        self.head = nn.Linear(DIM, CLASSES)
        self.aux_head = nn.Linear(DIM, CLASSES) if aux_head else None
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x, box=None):
        x = self.patch_embed(x)  # [B, D, h, w]
        B, _, h, w = x.shape
        if box is not None:
            t, l, b, r = box
            x = x.clone()
            x[:, :, t:b, l:r] = x.flip(0)[:, :, t:b, l:r]
        x = x.flatten(2).transpose(1, 2)  # [B, N, D]
        x = torch.cat([self.cls_token.expand(B, -1, -1), x], 1) + self.pos_embed  # [B, N+1, D]
        for blk in self.blocks:
            x = blk(x)
        x = self.norm(x)
        cls = self.head(x[:, 0])  # [B, C]
        if self.aux_head is None:
            return cls, None
        aux = self.aux_head(x[:, 1:])  # [B, N, C]
        if box is not None:
            t, l, b, r = box
            aux = aux.reshape(B, h, w, -1).clone()
            aux[:, t:b, l:r] = aux.flip(0)[:, t:b, l:r]
            aux = aux.reshape(B, h * w, -1)
        return cls, aux


def soft_ce(logits, targets):
    return torch.sum(-targets * F.log_softmax(logits, -1), -1).mean()


class Trainer:
    """One model, its AdamW and fixed random inputs and soft targets."""

    def __init__(self, variant, batch, seed=0):
        torch.manual_seed(seed)
        self.full = variant == "full"
        self.model = LvVit(aux_head=self.full).train()
        decay, plain = [], []
        for name, p in self.model.named_parameters():
            no_decay = p.ndim <= 1 or name in ("pos_embed", "cls_token")
            (plain if no_decay else decay).append(p)
        self.opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": WEIGHT_DECAY},
             {"params": plain, "weight_decay": 0.0}], lr=LR)
        self.images = torch.randn(batch, IN_CHANS, IMG, IMG)
        self.y_cls = torch.softmax(2 * torch.randn(batch, CLASSES), -1)
        self.y_tok = torch.softmax(2 * torch.randn(batch, GRID * GRID, CLASSES), -1)
        self.rng = random.Random(seed)

    def step(self):
        box, lam = None, 1.0
        if self.full:
            box = rand_bbox(GRID, GRID, self.rng.betavariate(1, 1), self.rng)
            t, l, b, r = box
            lam = 1 - (b - t) * (r - l) / (GRID * GRID)
        cls, aux = self.model(self.images, box)
        y = self.y_cls if lam == 1 else lam * self.y_cls + (1 - lam) * self.y_cls.flip(0)
        loss = soft_ce(cls, y)
        if aux is not None:
            loss = loss + soft_ce(aux, self.y_tok)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss.item()


def all_threads():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def blas_library():
    """The BLAS shared libraries this process loaded, and whether one is
    Debian's reference BLAS (libblas3: a few GFLOP/s, no threads)."""
    torch.randn(8, 8) @ torch.randn(8, 8)  # make sure the BLAS is loaded
    try:
        with open("/proc/self/maps") as f:
            libs = {line.split()[-1] for line in f if ".so" in line}
    except OSError:
        return "unknown", False
    hits = sorted(p for p in libs if re.search(r"blas|mkl|blis", os.path.basename(p)))
    reference = any(re.search(r"/blas/libblas\.so", p) for p in hits)
    return ", ".join(hits) or "built into torch", reference


def serve(batch, threads):
    default = torch.get_num_threads()
    torch.set_num_threads(threads if threads > 0 else all_threads())
    blas, reference = blas_library()
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(),
                      "default_threads": default, "all_threads": all_threads(),
                      "blas": blas, "reference_blas": reference}), flush=True)
    trainers = {}
    for line in sys.stdin:
        parts = line.split()
        if not parts or parts[0] == "quit":
            break
        if parts[0] != "step" or len(parts) != 2 or parts[1] not in ("full", "plain"):
            print(f"error: expected 'step full', 'step plain' or 'quit', found {line.strip()!r}",
                  flush=True)
            continue
        if parts[1] not in trainers:
            trainers[parts[1]] = Trainer(parts[1], batch)
        t0 = time.perf_counter()
        loss = trainers[parts[1]].step()
        print(f"{time.perf_counter() - t0:.6f} {loss:.6f}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--serve", action="store_true", help="answer step commands on stdin")
    ap.add_argument("--threads", type=int, default=0,
                    help="with --serve: torch threads (0: every core)")
    args = ap.parse_args()
    if args.serve:
        serve(args.batch, args.threads)
        return
    default = torch.get_num_threads()
    blas, reference = blas_library()
    print(f"torch {torch.__version__}: default {default} thread(s), {all_threads()} core(s), BLAS {blas}"
          + (" (Debian's reference BLAS: slow matmuls; install libopenblas0-pthread)" if reference else ""))
    for variant in ("full", "plain"):
        for threads in sorted({1, all_threads()}):
            torch.set_num_threads(threads)
            trainer = Trainer(variant, args.batch)
            for _ in range(args.warmup):
                trainer.step()
            times = []
            for _ in range(args.steps):
                t0 = time.perf_counter()
                trainer.step()
                times.append(time.perf_counter() - t0)
            med = statistics.median(times)
            print(f"torch {torch.__version__} ({threads} threads; default {default}): lvvit_xs32 "
                  f"train step '{variant}' B={args.batch}: median {med * 1000:.0f} ms, "
                  f"{args.batch / med:.1f} img/s")


if __name__ == "__main__":
    main()
