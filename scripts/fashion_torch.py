#!/usr/bin/env python3
"""PyTorch twin of `configs/fashion-single.toml`: the same four-stage small CNN
(3x3 conv + BatchNorm + ReLU, 2x2 max pooling after the first three stages, widths 32/64/128/128,
global average pooling, a linear head), trained end to end on the composite Fashion canvases with
the same recipe (Adam 1e-3 with PyTorch's defaults, batch 64, 10 epochs, no augmentation, inputs
x / 255 standardised with the training rows' mean and std), the epoch kept by the best validation
mAP (sklearn's AP) and its test mAP reported.

The training rows, their labels and the validation rows are read from an mlml run's
`observed-labels.npy` (rows with an observed label are the training rows, the others the
held-out ones; its sidecar lists the row ids), so both frameworks train on the same rows with the
same observed labels. Loss: Cole et al.'s `loss_an` / `loss_bce` (`-ln(p + 1e-5)` forms, mean
over N x C); unobserved entries count as negatives (AN), and with full labels there are none.

Usage: fashion_torch.py RUN_DIR [--seed 0] [--threads 2] [--json out.json]
"""
import argparse
import gzip
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import average_precision_score

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benches"))
from small_cnn_torch import SmallCnn  # noqa: E402  the network the step benchmark times


def load_npy(path):
    data = Path(path).read_bytes()
    if str(path).endswith(".gz"):
        data = gzip.decompress(data)
    return np.load(io.BytesIO(data))


def mean_ap(scores, labels):
    aps = [average_precision_score(labels[:, j], scores[:, j])
           for j in range(labels.shape[1]) if labels[:, j].sum() > 0]
    return 100.0 * float(np.mean(aps))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)

    data = ROOT / "datasets/fashion"
    images = load_npy(data / "train_images.npy.gz").astype(np.float32) / 255.0
    full = load_npy(data / "train_labels.npy.gz").astype(np.float32)
    test_x = load_npy(data / "test_images.npy.gz").astype(np.float32) / 255.0
    test_y = load_npy(data / "test_labels.npy.gz").astype(np.float32)
    observed = np.load(Path(args.run_dir) / "observed-labels.npy").astype(np.float32)
    train_rows = np.flatnonzero((observed != 0).any(axis=1))
    val_rows = np.flatnonzero((observed == 0).all(axis=1))
    targets = (observed[train_rows] == 1).astype(np.float32)
    mean, std = images[train_rows].mean(), images[train_rows].std()

    def tensor(x):
        return torch.from_numpy((x - mean) / std).unsqueeze(1)

    train_x, val_x, test_t = tensor(images[train_rows]), tensor(images[val_rows]), tensor(test_x)
    train_y = torch.from_numpy(targets)
    model = SmallCnn(classes=full.shape[1])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def scores(x):
        model.eval()
        with torch.no_grad():
            return torch.cat([torch.sigmoid(model(x[i:i + 256])) for i in range(0, len(x), 256)]).numpy()

    best = None
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = torch.randperm(len(train_x))
        for i in range(0, len(order), 64):
            batch = order[i:i + 64]
            p = torch.sigmoid(model(train_x[batch]))
            y = train_y[batch]
            loss = -(y * torch.log(p + 1e-5) + (1 - y) * torch.log(1 - p + 1e-5)).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        val_map = mean_ap(scores(val_x), full[val_rows])
        test_map = mean_ap(scores(test_t), test_y)
        print(f"epoch {epoch}: loss {loss.item():.5f} val mAP {val_map:.2f} test mAP {test_map:.2f}", flush=True)
        if best is None or val_map > best["val_map"]:
            best = {"epoch": epoch, "val_map": val_map, "test_map": test_map}
    best["seconds"] = time.perf_counter() - start
    best["torch"] = torch.__version__
    best["seed"] = args.seed
    print(json.dumps(best))
    if args.json:
        Path(args.json).write_text(json.dumps(best, indent=1))


if __name__ == "__main__":
    main()
