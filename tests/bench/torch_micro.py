"""The micro benchmarks of tests/bench/micro_bench.ts in PyTorch, same ops and
same shapes, for a ratio measured on the same machine in the same session.

    /usr/bin/python3 tests/bench/torch_micro.py --threads 1 [--batch 64]
        [--pool-batch 128] [--quick] [--only SUBSTRING]

Prints one JSON object on the last line of stdout: every bench id (the names
of micro_bench.ts) mapped to calls per second, plus "blas" (the BLAS shared
libraries /proc/self/maps shows after a matmul: which one torch really
loaded), "torch" (its version), "threads", "batch" and "pool_batch".
Each op: warm-up calls, then the median of timed calls (forward-only ops
under torch.no_grad(), fwd+bwd ops with .backward()). An op that fails maps
to null and its error is listed under "errors".

`--batch` is the batch of the bench-64 ops (64 in the model; micro.ts asks
for 8 where our backend is slow) and `--pool-batch` the number of maps of
label pooling (128 at the official shape), so both sides measure the same
shapes. The thread variables are set before torch is imported, and
torch.set_num_threads is called too.
"""

import argparse
import json
import os
import statistics
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--pool-batch", type=int, default=128)
    p.add_argument("--quick", action="store_true", help="fewer repeats")
    p.add_argument("--only", default="", help="run the ids containing this")
    return p.parse_args()


ARGS = parse_args()
for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
            "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)

import torch  # noqa: E402  (after the thread variables, on purpose)
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(ARGS.threads)
try:
    torch.set_num_interop_threads(ARGS.threads)
except RuntimeError:
    pass

# bench-64: the 64 x 64 LV-ViT.
B = ARGS.batch
N, D, HEADS, HIDDEN, CLASSES, GRID = 65, 192, 3, 576, 10, 8
HD = D // HEADS
BOX = (2, 1, 6, 5)  # top, left, bottom, right: 16 of the 64 tokens
WARMUP = 1 if ARGS.quick else 3
REPEATS = 5 if ARGS.quick else 15
BUDGET_S = 3.0 if ARGS.quick else 10.0  # stop repeating after this long

gen = torch.Generator().manual_seed(2024)


def randn(*shape, std=1.0, grad=False):
    t = torch.randn(*shape, generator=gen) * std
    return t.requires_grad_(grad)


def time_op(fn):
    """Calls per second: median of timed calls after the warm-up."""
    for _ in range(WARMUP):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < REPEATS:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if time.perf_counter() - start > BUDGET_S and len(times) >= 2:
            break
    return 1.0 / statistics.median(times)


def forward(f):
    def run():
        with torch.no_grad():
            f()
    return run


def backward(f, inputs, dy=None):
    def run():
        for t in inputs:
            t.grad = None
        y = f()
        if dy is None:
            y.backward()
        else:
            y.backward(dy)
    return run


BENCHES = {}


def bench(name, fn):
    BENCHES[name] = fn


# matmul: the qkv and fc1 linears [B*65, 192] x [192, 576], fc2 [B*65, 576] x [576, 192].
for tag, (k, n) in (("qkv", (D, 3 * D)), ("fc1", (D, HIDDEN)), ("fc2", (HIDDEN, D))):
    a = randn(B * N, k, grad=True)
    b = randn(k, n, std=k ** -0.5, grad=True)
    dy = randn(B * N, n)
    bench(f"matmul bench-64 {tag} fwd", forward(lambda a=a, b=b: a @ b))
    bench(f"matmul bench-64 {tag} fwd+bwd",
          backward(lambda a=a, b=b: a @ b, [a, b], dy))


# attention core: timm's split of qkv [B, N, 3D] into heads, softmax(q k^T / sqrt(hd)) v.
def attention_core(qkv):
    qkv = qkv.reshape(B, N, 3, HEADS, HD).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    attn = (q * HD ** -0.5) @ k.transpose(-2, -1)
    attn = attn.softmax(dim=-1)
    return (attn @ v).transpose(1, 2).reshape(B, N, D)


qkv = randn(B, N, 3 * D, grad=True)
dy_att = randn(B, N, D)
bench("attention bench-64 fwd", forward(lambda: attention_core(qkv)))
bench("attention bench-64 fwd+bwd",
      backward(lambda: attention_core(qkv), [qkv], dy_att))

# layer norm [B, 65, 192] with weight and bias.
x_ln = randn(B, N, D, grad=True)
w_ln = (1 + 0.1 * randn(D)).requires_grad_(True)
b_ln = (0.1 * randn(D)).requires_grad_(True)
dy_ln = randn(B, N, D)
ln = lambda: F.layer_norm(x_ln, (D,), w_ln, b_ln, 1e-5)  # noqa: E731
bench("layernorm bench-64 fwd", forward(ln))
bench("layernorm bench-64 fwd+bwd", backward(ln, [x_ln, w_ln, b_ln], dy_ln))

# exact GELU on the MLP hidden activations [B, 65, 576].
x_gelu = randn(B, N, HIDDEN, grad=True)
dy_gelu = randn(B, N, HIDDEN)
bench("gelu bench-64 fwd", forward(lambda: F.gelu(x_gelu)))
bench("gelu bench-64 fwd+bwd",
      backward(lambda: F.gelu(x_gelu), [x_gelu], dy_gelu))

# conv stem: 7x7/2 pad 3 3->64, ReLU, 3x3 pad 1 64->64, ReLU, 3x3 pad 1, ReLU,
# projection k=s=4 64->192 (no BatchNorm, no bias), NCHW.
x_img = randn(B, 3, 64, 64, grad=True)
w1 = randn(64, 3, 7, 7, std=(2 / 147) ** 0.5, grad=True)
w2 = randn(64, 64, 3, 3, std=(2 / 576) ** 0.5, grad=True)
w3 = randn(64, 64, 3, 3, std=(2 / 576) ** 0.5, grad=True)
w4 = randn(192, 64, 4, 4, std=(1 / 1024) ** 0.5, grad=True)
dy_stem = randn(B, 192, GRID, GRID)


def stem():
    y = F.relu(F.conv2d(x_img, w1, stride=2, padding=3))
    y = F.relu(F.conv2d(y, w2, padding=1))
    y = F.relu(F.conv2d(y, w3, padding=1))
    return F.conv2d(y, w4, stride=4)


bench("conv stem bench-64 fwd", forward(stem))
bench("conv stem bench-64 fwd+bwd",
      backward(stem, [x_img, w1, w2, w3, w4], dy_stem))

# label pooling at the official shape (as tests/bench/pooling_torch_bench.py):
# densify the top-k maps, flip, roi_align to 14x14 and 1x1, softmax, smoothing.
P, K, MH, MW, C, S, EPS = ARGS.pool_batch, 5, 15, 15, 1000, 14, 0.1
p_scores = 12 - 2 * torch.arange(K).view(1, K, 1, 1) + torch.randn(P, K, MH, MW, generator=gen)
p_ids = (torch.randint(0, C, (P, 1, MH, MW), generator=gen)
         + 37 * torch.arange(K).view(1, K, 1, 1)) % C
p_flips = torch.rand(P, generator=gen) < 0.5
p_side = torch.sqrt(torch.rand(P, generator=gen) * 0.92 + 0.08)
p_top = torch.rand(P, generator=gen) * (1 - p_side)
p_left = torch.rand(P, generator=gen) * (1 - p_side)
p_labels = torch.randint(0, C, (P,), generator=gen)


def pool_labels():
    from torchvision.ops import roi_align
    dense = torch.zeros(P, C, MH, MW)
    dense.scatter_(1, p_ids, p_scores)
    dense[p_flips] = dense[p_flips].flip(-1)
    rois = torch.cat([
        torch.arange(P, dtype=torch.float32).view(P, 1),
        torch.stack([p_left * MW, p_top * MH, (p_left + p_side) * MW,
                     (p_top + p_side) * MH], 1) - 0.5,
    ], 1)
    tokens = roi_align(dense, rois, output_size=(S, S))
    cls = roi_align(dense, rois, output_size=(1, 1))
    tokens = torch.softmax(tokens.view(P, C, S * S), 1) * (1 - EPS) + EPS / C
    cls = torch.softmax(cls.view(P, C), 1) * (1 - EPS) + EPS / C
    truth = torch.full((P, C), EPS / C).scatter_(1, p_labels.view(P, 1), 1 - EPS + EPS / C)
    return cls, tokens, truth


bench("label pooling official fwd", forward(pool_labels))

# MixToken: swap the box with the reversed batch on [B, 8, 8, 192] (NHWC, as ours).
x_mix = randn(B, GRID, GRID, D, grad=True)
dy_mix = randn(B, GRID, GRID, D)


def swap_box():
    t, l, b, r = BOX
    y = x_mix.clone()
    y[:, t:b, l:r, :] = x_mix.flip(0)[:, t:b, l:r, :]
    return y


bench("mixtoken bench-64 swapBox fwd", forward(swap_box))
bench("mixtoken bench-64 swapBox fwd+bwd", backward(swap_box, [x_mix], dy_mix))

# token labeling loss: soft-target CE of the class token (target blended with
# the reversed batch by lam = 1 - box area / 64) + 0.5 * mean token soft CE.
cls_logits = randn(B, CLASSES, grad=True)
aux_logits = randn(B, GRID * GRID, CLASSES, grad=True)
y_cls = torch.softmax(2 * torch.randn(B, CLASSES, generator=gen), -1)
y_tok = torch.softmax(2 * torch.randn(B, GRID * GRID, CLASSES, generator=gen), -1)
LAM = 1 - (BOX[2] - BOX[0]) * (BOX[3] - BOX[1]) / (GRID * GRID)


def token_loss():
    target = LAM * y_cls + (1 - LAM) * y_cls.flip(0)
    ce_cls = torch.sum(-target * F.log_softmax(cls_logits, -1), -1).mean()
    ce_tok = torch.sum(-y_tok * F.log_softmax(aux_logits, -1), -1).mean()
    return ce_cls + 0.5 * ce_tok


bench("loss bench-64 token labeling fwd", forward(token_loss))
bench("loss bench-64 token labeling fwd+bwd",
      backward(token_loss, [cls_logits, aux_logits]))


def loaded_blas():
    """The BLAS libraries this process maps (after a matmul has run)."""
    a = torch.ones(64, 64)
    (a @ a).sum().item()
    found = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1] if len(line.split()) >= 6 else ""
            name = os.path.basename(path).lower()
            if ("blas" in name or "mkl_" in name or "blis" in name) and path not in found:
                found.append(path)
    return ", ".join(found) if found else "none found (statically linked?)"


def main():
    out = {}
    errors = {}
    for name, fn in BENCHES.items():
        if ARGS.only and ARGS.only not in name:
            continue
        try:
            out[name] = time_op(fn)
        except Exception as e:  # one op failing must not lose the others
            out[name] = None
            errors[name] = f"{type(e).__name__}: {e}"
        print(f"{name}: {out[name]}", file=sys.stderr, flush=True)
    out["blas"] = loaded_blas()
    out["torch"] = torch.__version__
    out["threads"] = torch.get_num_threads()
    out["batch"] = B
    out["pool_batch"] = P
    if errors:
        out["errors"] = errors
    print(json.dumps(out))


if __name__ == "__main__":
    main()
