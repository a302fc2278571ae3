"""Forward + backward of the PyTorch formulations of every mlml loss at 128 x 80, CPU.

Run by hand (not in CI), with Debian's python3-torch:
    /usr/bin/python3 crates/mlml-losses/benches/losses_torch.py
Each function below follows its reference code as described in mlml-losses' module docs
(same formulas, reductions, detach points); inputs match benches/losses.rs (SplitMix64 seeds,
one positive per row, epoch 3). Prints microseconds per call (median of 7 runs of 200 calls).
"""
import math
import statistics
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(2)
N, C = 128, 80
M64 = (1 << 64) - 1


def splitmix64(x):
    z = (x + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


logits0 = torch.tensor([(splitmix64(k) >> 40) / float(1 << 24) * 12.0 - 6.0 for k in range(N * C)], dtype=torch.float32).reshape(N, C)
labels = torch.zeros(N, C)
for i in range(N):
    labels[i, splitmix64(1_000_000 + i) % C] = 1.0
EPOCH = 3
est_logits = torch.zeros(N, C, requires_grad=True)


def nl(x):
    return -torch.log(x + 1e-5)


def asl(z, y, gn, gp, clip, eps=1e-8, detach=True):
    p = torch.sigmoid(z)
    q = 1 - p
    if clip > 0:
        q = (q + clip).clamp(max=1)
    loss = y * torch.log(p.clamp(min=eps)) + (1 - y) * torch.log(q.clamp(min=eps))
    if gn > 0 or gp > 0:
        if detach:
            torch.set_grad_enabled(False)
        pt = p * y + q * (1 - y)
        w = torch.pow(1 - pt, gp * y + gn * (1 - y))
        if detach:
            torch.set_grad_enabled(True)
        loss = loss * w
    return -loss.sum()


def hill(z, y, lamb=1.5, margin=1.0, gamma=2.0):
    q = torch.sigmoid(z - margin)
    p = torch.sigmoid(z)
    pt = (1 - q) * y + (1 - y)
    los_pos = y * torch.log(q)
    los_neg = (1 - y) * (-(lamb - p) * p ** 2)
    return (-(los_pos + los_neg) * pt ** gamma).sum()


def splc(z, y, tau=0.6, change_epoch=1, margin=1.0, gamma=2.0, epoch=EPOCH - 1):
    z = torch.where(y == 1, z - margin, z)
    if epoch >= change_epoch:
        y = torch.where(torch.sigmoid(z) > tau, torch.tensor(1.0), y)
    p = torch.sigmoid(z)
    pt = (1 - p) * y + p * (1 - y)
    return (-(y * F.logsigmoid(z) + (1 - y) * F.logsigmoid(-z)) * pt ** gamma).sum()


def bce(z, y):
    p = torch.sigmoid(z)
    return torch.where(y == 1, nl(p), nl(1 - p)).mean()


an = bce


def an_ls(z, y, e=0.1):
    p = torch.sigmoid(z)
    return torch.where(y == 1, (1 - e) * nl(p) + e * nl(1 - p), (1 - e) * nl(1 - p) + e * nl(p)).mean()


def wan(z, y):
    p = torch.sigmoid(z)
    return torch.where(y == 1, nl(p), nl(1 - p) / (C - 1)).mean()


def epr(z, y, k=1.5):
    p = torch.sigmoid(z)
    m = torch.where(y == 1, nl(p), torch.zeros_like(p))
    return m.mean() + (p.sum(1).mean() - k) ** 2 / C ** 2


def role(z, y, k=1.5):
    p = torch.sigmoid(z)
    q = torch.sigmoid(est_logits)
    pos1 = torch.where(y == 1, nl(p), torch.zeros_like(p))
    pos2 = torch.where(y == 1, nl(q), torch.zeros_like(q))
    qd, pd = q.detach(), p.detach()
    cross1 = qd * nl(p) + (1 - qd) * nl(1 - p)
    cross2 = pd * nl(q) + (1 - pd) * nl(1 - q)
    m = 0.5 * (pos1 + cross1) + 0.5 * (pos2 + cross2)
    r = 0.5 * ((p.sum(1).mean() - k) ** 2 + (q.sum(1).mean() - k) ** 2) / C ** 2
    return m.mean() + r


def em(z, y, alpha=0.1):
    p = torch.sigmoid(z)
    return torch.where(y == 1, nl(p), -alpha * (p * nl(p) + (1 - p) * nl(1 - p))).mean()


def large_loss(z, y, scheme, delta):
    clean_rate = 1.0
    for _ in range(1, EPOCH):
        clean_rate -= delta
    L = F.binary_cross_entropy_with_logits(z, y, reduction="none")
    if clean_rate == 1.0:
        return L.mean()
    k = math.ceil(N * C * (delta if scheme == "cp" else 1 - clean_rate))
    unobserved = (y == 0).float() * L
    tau = torch.topk(unobserved.flatten(), k).values[-1]
    if scheme == "r":
        F_ = torch.where(unobserved < tau, L, torch.zeros_like(L))
    else:
        Lc = F.binary_cross_entropy_with_logits(z, 1 - y, reduction="none")
        F_ = torch.where(unobserved < tau, L, Lc)
    return F_.mean()


def gr(z, y, epoch=EPOCH):
    T, n = 8, 0
    w = 0 + (2 - 0) * max(epoch - n - 1, 0) / (T - n)
    b = -2.0
    mu = 0.5 + (0.8 - 0.5) * max(epoch - n, 0) / (T - n)
    sigma = 2 + (0.5 - 2) * max(epoch - n, 0) / (T - n)
    p = torch.sigmoid(z)
    pd = p.detach()
    K = 1 / (1 + torch.exp(-(w * pd + b)))
    V = torch.exp(-0.5 * ((pd - mu) / sigma) ** 2)
    L2 = (1 - p ** 0.01) / 0.01
    L3 = 1 - (1 - p)
    return torch.where(y == 1, -torch.log(p + 1e-7), V * (K * L2 + (1 - K) * L3)).mean()


LOSSES = {
    "bce": bce,
    "an": an,
    "an-ls": an_ls,
    "wan": wan,
    "asl-bce": lambda z, y: asl(z, y, 0, 0, 0),
    "focal": lambda z, y: asl(z, y, 2, 2, 0),
    "asl": lambda z, y: asl(z, y, 4, 0, 0.05),
    "hill": hill,
    "splc": splc,
    "ll-r": lambda z, y: large_loss(z, y, "r", 0.005),
    "ll-ct": lambda z, y: large_loss(z, y, "ct", 0.002),
    "ll-cp": lambda z, y: large_loss(z, y, "cp", 0.001),
    "epr": epr,
    "role": role,
    "em": em,
    "em-apl": em,  # no pseudo-label yet: the EM+APL loss is the EM loss
    "gr": gr,
    "boostlu": lambda z, y: large_loss(z, y, "r", 0.005),
}

for name, fn in LOSSES.items():
    def step():
        z = logits0.clone().requires_grad_(True)
        fn(z, labels).backward()
        return z.grad
    for _ in range(20):
        step()
    runs = []
    for _ in range(7):
        t0 = time.perf_counter()
        for _ in range(200):
            step()
        runs.append((time.perf_counter() - t0) / 200 * 1e6)
    print(f"{name:8s} {statistics.median(runs):8.1f} us")
