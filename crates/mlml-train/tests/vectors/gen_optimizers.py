"""Replays AdamW under a per-step cosine schedule and SGD (momentum, Nesterov, weight decay)
with PyTorch's own optimizers, for `tests/optimizers.rs`.

It takes the parameters' shapes, initial values and deterministic gradients from
`train_recipes.json` (the same five tensors and the same gradient formula), runs in float64,
and writes `optimizers.json` beside it: every learning rate of the cosine schedule and the
parameters after each replayed step.

Run with Debian's python3-torch: /usr/bin/python3 gen_optimizers.py
"""

import json
import math
import os

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
RECIPES = json.load(open(os.path.join(HERE, "train_recipes.json")))
NAMES = list(RECIPES["shapes"].keys())
STEPS = 60


def parameters():
    params = {}
    for name in NAMES:
        values = torch.tensor(RECIPES["init"][name], dtype=torch.float64)
        params[name] = torch.nn.Parameter(values.reshape(RECIPES["shapes"][name]))
    return params


def gradient(name, t):
    """The file's `gradient` field: scale * sin(0.37 t (i+1) + k) (0.5 + 0.5 cos(0.11 t + i))."""
    shape = RECIPES["shapes"][name]
    n = math.prod(shape)
    k = sum(map(ord, name)) % 97 + 1
    scale = RECIPES["gradient_scale"][name]
    values = [
        scale * math.sin(0.37 * t * (i + 1) + k) * (0.5 + 0.5 * math.cos(0.11 * t + i))
        for i in range(n)
    ]
    return torch.tensor(values, dtype=torch.float64).reshape(shape)


def snapshot(params):
    return {name: p.detach().reshape(-1).tolist() for name, p in params.items()}


def replay(params, optimizer, scheduler=None, total_steps=STEPS):
    lrs, after = [], []
    for t in range(1, total_steps + 1):
        lrs.append(optimizer.param_groups[0]["lr"])
        if t <= STEPS:
            for name, p in params.items():
                p.grad = gradient(name, t)
            optimizer.step()
            after.append(snapshot(params))
        if scheduler is not None:
            scheduler.step()
    return lrs, after


def adamw_cosine():
    params = parameters()
    decayed = [p for p in params.values() if p.dim() >= 2]
    rest = [p for p in params.values() if p.dim() < 2]
    lr, weight_decay, eta_min, total = 1e-3, 0.05, 1e-5, 80
    optimizer = torch.optim.AdamW(
        [
            {"params": decayed, "weight_decay": weight_decay},
            {"params": rest, "weight_decay": 0.0},
        ],
        lr=lr,
        betas=(0.9, 0.999),
        eps=1e-8,
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total, eta_min=eta_min)
    lrs, after = replay(params, optimizer, scheduler, total)
    return {
        "recipe": "torch.optim.AdamW, weight decay on >= 2-D parameters only, "
        "CosineAnnealingLR(T_max=total_steps) stepped after every optimizer step",
        "lr": lr,
        "weight_decay": weight_decay,
        "eps": 1e-8,
        "min_lr": eta_min,
        "total_steps": total,
        "lr_before_step": lrs,
        "params_after_step": after,
    }


def sgd(momentum, nesterov, weight_decay):
    params = parameters()
    lr = 5e-3
    optimizer = torch.optim.SGD(
        params.values(), lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay
    )
    _, after = replay(params, optimizer)
    return {
        "recipe": "torch.optim.SGD on every parameter (one group), constant lr",
        "lr": lr,
        "momentum": momentum,
        "nesterov": nesterov,
        "weight_decay": weight_decay,
        "params_after_step": after,
    }


def main():
    out = {
        "generator": "gen_optimizers.py (PyTorch's own AdamW, SGD, CosineAnnealingLR)",
        "torch_version": torch.__version__,
        "dtype": "float64",
        "inputs": "shapes, init and gradient of train_recipes.json",
        "replayed_steps": STEPS,
        "adamw_cosine": adamw_cosine(),
        "sgd_momentum": sgd(0.9, False, 1e-3),
        "sgd_nesterov": sgd(0.9, True, 0.0),
    }
    with open(os.path.join(HERE, "optimizers.json"), "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
