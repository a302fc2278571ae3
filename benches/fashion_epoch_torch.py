#!/usr/bin/env python3
"""PyTorch side of the end-to-end epoch benchmark (`benches/fashion_epoch_interleaved.sh`): one
epoch of `configs/fashion-single.toml` as a PyTorch user writes it, timed as a whole process does
it. Reads the canvases (`datasets/fashion/*.npy.gz`), builds a `Dataset` that standardises each
uint8 canvas with the training rows' mean and std, trains the small CNN (the twin of
benches/small_cnn_torch.py) for one epoch through a `DataLoader` (batch 64, shuffled; AN's
`-ln(p + 1e-5)` loss, Adam 1e-3), then scores the validation rows and the test split with the
model in eval mode, as `mlml train` does after its epoch.

The training and validation rows and their observed labels come from an mlml run's
`observed-labels.npy`, so both sides train on the same rows. Prints one JSON line with the
process's wall time from start to the end of the test scoring (`seconds`, imports included, as
`mlml train`'s wall time includes its start-up) and the time of each phase.

Usage: fashion_epoch_torch.py RUN_DIR [--workers 0] [--threads 2]
Needs /usr/bin/python3 with torch and numpy (Debian's python3-torch).
"""
import time

START = time.perf_counter()

import argparse  # noqa: E402
import gzip  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benches"))
from small_cnn_torch import SmallCnn  # noqa: E402


def load_npy(path):
    return np.load(io.BytesIO(gzip.decompress(Path(path).read_bytes())))


class Canvases(Dataset):
    """uint8 canvases, standardised one at a time as a transform would."""

    def __init__(self, images, targets, mean, std):
        self.images, self.targets, self.mean, self.std = images, targets, mean, std

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        x = torch.from_numpy(self.images[i].astype(np.float32) / 255.0)
        return ((x - self.mean) / self.std).unsqueeze(0), self.targets[i]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    data = ROOT / "datasets/fashion"
    images = load_npy(data / "train_images.npy.gz")
    test_x = load_npy(data / "test_images.npy.gz")
    test_y = load_npy(data / "test_labels.npy.gz").astype(np.float32)
    observed = np.load(Path(args.run_dir) / "observed-labels.npy").astype(np.float32)
    train_rows = np.flatnonzero((observed != 0).any(axis=1))
    val_rows = np.flatnonzero((observed == 0).all(axis=1))
    targets = (observed == 1).astype(np.float32)
    scaled = images[train_rows].astype(np.float32) / 255.0
    mean, std = float(scaled.mean()), float(scaled.std())
    loaded = time.perf_counter()

    def loader(rows_images, rows_targets, shuffle):
        return DataLoader(Canvases(rows_images, rows_targets, mean, std), batch_size=64,
                          shuffle=shuffle, num_workers=args.workers,
                          persistent_workers=False)

    model = SmallCnn(classes=targets.shape[1])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for x, y in loader(images[train_rows], targets[train_rows], True):
        p = torch.sigmoid(model(x))
        loss = -(y * torch.log(p + 1e-5) + (1 - y) * torch.log(1 - p + 1e-5)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    trained = time.perf_counter()

    def scores(rows_images, rows_targets):
        model.eval()
        with torch.no_grad():
            return torch.cat([torch.sigmoid(model(x))
                              for x, _ in loader(rows_images, rows_targets, False)])

    val = scores(images[val_rows], targets[val_rows])
    test = scores(test_x, test_y)
    end = time.perf_counter()
    print(json.dumps({
        "seconds": end - START, "load": loaded - START, "train": trained - loaded,
        "score": end - trained, "train_rows": len(train_rows), "val_rows": len(val_rows),
        "test_rows": len(test), "scored": int(val.shape[0]) + int(test.shape[0]),
        "workers": args.workers, "threads": torch.get_num_threads(), "torch": torch.__version__,
        "loss": float(loss),
    }))


if __name__ == "__main__":
    main()
