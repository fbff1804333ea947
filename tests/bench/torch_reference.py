"""PyTorch's side of the end-to-end jobs of `deno task bench`
(tests/bench/run.ts); tests/bench/e2e_worker.ts is ours, with the same
protocol and definitions.

    /usr/bin/python3 tests/bench/torch_reference.py '<job json>'

The job is one JSON object (see e2e_worker.ts `Job`); the last line on stdout
is one JSON object: {"ips", "peakMiB", "steps", "seconds", "threads",
"detail"} or {"error": "..."}. `{"task": "info"}` answers the torch version,
the BLAS library this process loaded and whether it is Debian's reference
BLAS (libblas3), without timing anything.

- train: the model built from the job's `config` (our ModelConfig JSON: the
  "4_2" conv stem or a linear patchify, class token + position embedding,
  pre-norm blocks with exact GELU, every residual branch divided by skipLam,
  drop path rising linearly from 0 to 0.1, final norm, head on the class
  token, aux_head on the patch tokens); one step = MixToken (the official
  rand_bbox on the token grid, lam ~ Beta(1, 1), partner flip(0)), loss =
  CE(cls, lam' y + (1 - lam') y.flip(0)) + 0.5 x mean token CE(aux, y_tok)
  on fixed random soft targets (softmax of N(0, 2) logits), backward, the
  loss read back (NaN guard), AdamW (lr 1e-3, weight decay 0.05 on matrices
  and kernels, none on biases, norms, pos_embed, cls_token);
- eval: model.eval(), inference_mode, head(cls) + 0.5 x max over tokens of
  aux_head, as our `predict`;
- pool: the official label pooling of `batch` top-k maps (k 5, 15 x 15, 1000
  classes) with torchvision's roi_align to 14 x 14 and 1 x 1, softmax,
  smoothing 0.1 and the smoothed one-hot truth;
- data: Pillow decode + torchvision's RandomResizedCrop(224), flip,
  RandAugment(2, 9), ToTensor, Normalize, RandomErasing(0.25) on every JPEG
  of `dir`, one thread.

Threads: the job's `threads` (0: every core) is put in OMP_NUM_THREADS,
OPENBLAS_NUM_THREADS and MKL_NUM_THREADS before torch loads, and in
torch.set_num_threads.

Device: the job's `device` ("cpu" when absent, or "cuda"). On CUDA the
model, inputs and targets live on the GPU, TF32 is off for matmuls and
convolutions (the fair float32 reference; `"tf32": true` in the job turns
it on), and each timed step ends with torch.cuda.synchronize() so that its
time is the GPU's as well as the host's. Only train and eval run there.
"""

import json
import math
import os
import random
import re
import statistics
import sys
import time


def all_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def status_mib(field):
    """A field of /proc/self/status (VmRSS, VmHWM) in MiB; NaN where absent."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def parse_job(text):
    try:
        job = json.loads(text)
    except ValueError as e:
        raise ValueError(f"the job must be one JSON object argument; found {text[:80]!r} ({e})")
    if not isinstance(job, dict):
        raise ValueError(f"the job must be a JSON object; found {job!r}")
    task = job.get("task")
    if task not in ("train", "eval", "pool", "data", "info"):
        raise ValueError(f"job.task must be one of train, eval, pool, data, info; found {task!r}")
    if task == "info":
        return job
    for k in ("batch", "steps"):
        if not (isinstance(job.get(k), int) and job[k] > 0):
            raise ValueError(f"job.{k} must be a positive integer; found {job.get(k)!r}")
    for k in ("warmup", "threads"):
        if not (isinstance(job.get(k), int) and job[k] >= 0):
            raise ValueError(f"job.{k} must be an integer >= 0; found {job.get(k)!r}")
    if task in ("train", "eval") and not isinstance(job.get("config"), dict):
        raise ValueError(f"a {task} job needs `config`, the model's ModelConfig JSON "
                         "(tests/bench/run.ts adds it); found none")
    if task == "data" and not isinstance(job.get("dir"), str):
        raise ValueError("a data job needs `dir`, the folder of JPEG files; found none")
    return job


JOB = None
try:
    JOB = parse_job(sys.argv[1] if len(sys.argv) == 2 else "")
except ValueError as e:
    print(json.dumps({"error": str(e)}))
    sys.exit(1)

THREADS = JOB.get("threads", 0) or all_cores()
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(THREADS)

import torch  # noqa: E402  (after the thread variables, on purpose)
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(THREADS)

DEVICE = JOB.get("device", "cpu")
if DEVICE not in ("cpu", "cuda"):
    print(json.dumps({"error": f"job.device must be cpu or cuda; found {DEVICE!r}"}))
    sys.exit(1)
if DEVICE == "cuda":
    if not torch.cuda.is_available():
        print(json.dumps({"error": "job.device is cuda but torch sees no CUDA device; run the bench without --gpu"}))
        sys.exit(1)
    TF32 = bool(JOB.get("tf32", False))
    torch.backends.cuda.matmul.allow_tf32 = TF32
    torch.backends.cudnn.allow_tf32 = TF32


def sync():
    """Waits for the GPU's queued work (a no-op on the CPU)."""
    if DEVICE == "cuda":
        torch.cuda.synchronize()


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


# ---- the model, built from our ModelConfig ----


class ConvStem(nn.Module):
    """The official "4_2" stem: conv 7x7/2 pad 3, then two conv 3x3 pad 1,
    each without bias and followed by BatchNorm + ReLU, then a projection with
    kernel = stride = patchSize / 2 and bias."""

    def __init__(self, c):
        super().__init__()
        s, eps, mom = c["stemChannels"], c["bnEps"], c["bnMomentum"]
        self.conv1 = nn.Conv2d(c["inChans"], s, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(s, eps=eps, momentum=mom)
        self.conv2 = nn.Conv2d(s, s, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(s, eps=eps, momentum=mom)
        self.conv3 = nn.Conv2d(s, s, 3, stride=1, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(s, eps=eps, momentum=mom)
        k = c["patchSize"] // 2
        self.proj = nn.Conv2d(s, c["embedDim"], k, stride=k)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = F.relu(self.bn3(self.conv3(x)))
        return self.proj(x)  # [B, D, h, w]


class LinearStem(nn.Module):
    """ViT patchify: one conv with kernel = stride = patchSize."""

    def __init__(self, c):
        super().__init__()
        p = c["patchSize"]
        self.proj = nn.Conv2d(c["inChans"], c["embedDim"], p, stride=p)

    def forward(self, x):
        return self.proj(x)


def drop_path(x, rate, training):
    if rate == 0 or not training:
        return x
    keep = 1 - rate
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask / keep


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, self.heads = c["embedDim"], c["numHeads"]
        self.scale = (d // self.heads) ** -0.5
        self.qkv = nn.Linear(d, 3 * d, bias=c["qkvBias"])
        self.attn_drop = nn.Dropout(c["attnDropRate"])
        self.proj = nn.Linear(d, d)
        self.proj_drop = nn.Dropout(c["dropRate"])

    def forward(self, x):
        B, N, D = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # [B, H, N, hd]
        attn = self.attn_drop(((q * self.scale) @ k.transpose(-2, -1)).softmax(-1))
        x = (attn @ v).transpose(1, 2).reshape(B, N, D)
        return self.proj_drop(self.proj(x))


class Mlp(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["embedDim"]
        hidden = int(d * c["mlpRatio"])
        self.fc1 = nn.Linear(d, hidden)
        self.fc2 = nn.Linear(hidden, d)
        self.drop = nn.Dropout(c["dropRate"])

    def forward(self, x):
        return self.drop(self.fc2(self.drop(F.gelu(self.fc1(x)))))  # exact GELU


class Block(nn.Module):
    def __init__(self, c, dpr):
        super().__init__()
        self.dpr, self.skip_lam = dpr, c["skipLam"]
        self.norm1 = nn.LayerNorm(c["embedDim"], eps=c["normEps"])
        self.attn = Attention(c)
        self.norm2 = nn.LayerNorm(c["embedDim"], eps=c["normEps"])
        self.mlp = Mlp(c)

    def forward(self, x):
        x = x + drop_path(self.attn(self.norm1(x)), self.dpr, self.training) / self.skip_lam
        return x + drop_path(self.mlp(self.norm2(x)), self.dpr, self.training) / self.skip_lam


class LvVit(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, depth = c["embedDim"], c["depth"]
        self.grid = c["imgSize"] // c["patchSize"]
        self.patch_embed = ConvStem(c) if c["stem"] == "conv" else LinearStem(c)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid * self.grid + 1, d))
        self.pos_drop = nn.Dropout(c["dropRate"])
        rate = c["dropPathRate"]
        dpr = [0.0 if depth == 1 else rate * i / (depth - 1) for i in range(depth)]
        self.blocks = nn.ModuleList([Block(c, r) for r in dpr])
        self.norm = nn.LayerNorm(d, eps=c["normEps"])
        self.head = nn.Linear(d, c["numClasses"])
        self.aux_head = nn.Linear(d, c["numClasses"]) if c["auxHead"] else None
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def tokens(self, x, box=None):
        x = self.patch_embed(x)  # [B, D, h, w]
        B, _, h, w = x.shape
        if box is not None:
            t, l, b, r = box
            x = x.clone()
            x[:, :, t:b, l:r] = x.flip(0)[:, :, t:b, l:r]
        x = x.flatten(2).transpose(1, 2)  # [B, N, D]
        x = torch.cat([self.cls_token.expand(B, -1, -1), x], 1) + self.pos_embed
        x = self.pos_drop(x)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x), h, w  # [B, N+1, D]

    def forward_train(self, x, box):
        x, h, w = self.tokens(x, box)
        B = x.shape[0]
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

    def predict(self, x):
        x, _, _ = self.tokens(x)
        cls = self.head(x[:, 0])
        if self.aux_head is None:
            return cls
        return cls + 0.5 * self.aux_head(x[:, 1:]).max(1)[0]


def rand_bbox(h, w, lam, rng):
    """The official rand_bbox on an h x w grid: rows [top, bottom), columns
    [left, right)."""
    r = math.sqrt(1 - lam)
    cut_h, cut_w = int(h * r), int(w * r)
    cy, cx = rng.randrange(h), rng.randrange(w)
    top, bottom = min(max(cy - cut_h // 2, 0), h), min(max(cy + cut_h // 2, 0), h)
    left, right = min(max(cx - cut_w // 2, 0), w), min(max(cx + cut_w // 2, 0), w)
    return top, left, bottom, right


def soft_ce(logits, targets):
    return torch.sum(-targets * F.log_softmax(logits, -1), -1).mean()


LR, WEIGHT_DECAY, DROP_PATH, CLS_WEIGHT, DENSE_WEIGHT = 1e-3, 0.05, 0.1, 1.0, 0.5


def train_step(job):
    c = dict(job["config"], dropPathRate=DROP_PATH, auxHead=True)
    torch.manual_seed(0)
    model = LvVit(c).train().to(DEVICE)
    decay, plain = [], []
    for name, p in model.named_parameters():
        (plain if p.ndim <= 1 or name in ("pos_embed", "cls_token") else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                             {"params": plain, "weight_decay": 0.0}], lr=LR)
    B, S, C, g = job["batch"], c["imgSize"], c["numClasses"], model.grid
    images = torch.randn(B, c["inChans"], S, S).to(DEVICE)
    y_cls = torch.softmax(2 * torch.randn(B, C), -1).to(DEVICE)
    y_tok = torch.softmax(2 * torch.randn(B, g * g, C), -1).to(DEVICE)
    rng = random.Random(0)

    def step(i):
        box = rand_bbox(g, g, rng.betavariate(1, 1), rng)
        t, l, b, r = box
        lam = 1 - (b - t) * (r - l) / (g * g)
        cls, aux = model.forward_train(images, box)
        y = lam * y_cls + (1 - lam) * y_cls.flip(0)
        loss = CLS_WEIGHT * soft_ce(cls, y) + DENSE_WEIGHT * soft_ce(aux, y_tok)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        value = loss.item()
        if not math.isfinite(value):
            raise ValueError(f"the training loss is {value} at step {i}")
        opt.step()

    return B, step


def eval_step(job):
    c = dict(job["config"], dropPathRate=DROP_PATH, auxHead=True)
    torch.manual_seed(0)
    model = LvVit(c).eval().to(DEVICE)
    B, S = job["batch"], c["imgSize"]
    images = torch.randn(B, c["inChans"], S, S).to(DEVICE)

    def step(i):
        with torch.inference_mode():
            model.predict(images).cpu().numpy()

    return B, step


def pool_step(job):
    from torchvision.ops import roi_align

    B, K, H, W, C, S, EPS = job["batch"], 5, 15, 15, 1000, 14, 0.1
    g = torch.Generator().manual_seed(2024)
    scores = 12 - 2 * torch.arange(K).view(1, K, 1, 1) + torch.randn(B, K, H, W, generator=g)
    first = torch.randint(0, C, (B, 1, H, W), generator=g)
    ids = (first + 37 * torch.arange(K).view(1, K, 1, 1)) % C
    flips = torch.rand(B, generator=g) < 0.5
    side = torch.sqrt(torch.rand(B, generator=g) * 0.92 + 0.08)
    top = torch.rand(B, generator=g) * (1 - side)
    left = torch.rand(B, generator=g) * (1 - side)
    labels = torch.randint(0, C, (B,), generator=g)

    def step(i):
        with torch.no_grad():
            dense = torch.zeros(B, C, H, W)
            dense.scatter_(1, ids, scores)
            dense[flips] = dense[flips].flip(-1)
            rois = torch.cat([
                torch.arange(B, dtype=torch.float32).view(B, 1),
                torch.stack([left * W, top * H, (left + side) * W, (top + side) * H], 1) - 0.5,
            ], 1)
            tokens = roi_align(dense, rois, output_size=(S, S))  # [B, C, S, S]
            cls = roi_align(dense, rois, output_size=(1, 1))  # [B, C, 1, 1]
            torch.softmax(tokens.view(B, C, S * S), 1) * (1 - EPS) + EPS / C
            torch.softmax(cls.view(B, C), 1) * (1 - EPS) + EPS / C
            torch.full((B, C), EPS / C).scatter_(1, labels.view(B, 1), 1 - EPS + EPS / C)

    return B, step


def data_step(job):
    from PIL import Image
    from torchvision import transforms as T

    folder = job["dir"]
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder)
                   if f.lower().endswith((".jpg", ".jpeg")))
    if not files:
        raise ValueError(f"the data job found no .jpg file in {folder}")
    raw = []
    for f in files:
        with open(f, "rb") as fh:
            raw.append(fh.read())
    torch.manual_seed(0)
    pipeline = T.Compose([
        T.RandomResizedCrop(224),
        T.RandomHorizontalFlip(),
        T.RandAugment(num_ops=2, magnitude=9),
        T.ToTensor(),
        T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        T.RandomErasing(p=0.25, value="random"),
    ])
    import io
    B = job["batch"]

    def step(i):
        for j in range(B):
            pipeline(Image.open(io.BytesIO(raw[j % len(raw)])).convert("RGB"))

    return B, step


def run(job):
    blas, reference = blas_library()
    if job["task"] == "info":
        info = {"torch": torch.__version__, "blas": blas, "reference_blas": reference,
                "threads": torch.get_num_threads(), "cores": all_cores()}
        if DEVICE == "cuda":
            info["cuda"] = torch.cuda.get_device_name()
        return info
    if DEVICE == "cuda" and job["task"] not in ("train", "eval"):
        raise ValueError(f"a {job['task']} job runs on the CPU only; job.device cuda is for train and eval")
    rss_before = status_mib("VmRSS")
    items, step = {"train": train_step, "eval": eval_step, "pool": pool_step,
                   "data": data_step}[job["task"]](job)
    seconds = []
    for i in range(job["warmup"] + job["steps"]):
        sync()
        t0 = time.perf_counter()
        step(i)
        sync()
        dt = time.perf_counter() - t0
        if i >= job["warmup"]:
            seconds.append(dt)
    peak = status_mib("VmHWM") - rss_before
    return {"ips": items / statistics.median(seconds), "peakMiB": peak, "steps": len(seconds),
            "seconds": seconds, "threads": torch.get_num_threads(),
            "detail": f"torch {torch.__version__}; " + (
                f"CUDA {torch.cuda.get_device_name()}, TF32 {'on' if TF32 else 'off'}"
                if DEVICE == "cuda" else f"BLAS {blas}")}


if __name__ == "__main__":
    try:
        result = run(JOB)
    except Exception as e:  # any failure becomes the error line
        result = {"error": f"{type(e).__name__}: {e}"}
    print(json.dumps(result))
    sys.exit(0 if "error" not in result else 1)
