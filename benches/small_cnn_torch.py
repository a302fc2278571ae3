#!/usr/bin/env python3
"""PyTorch twin of mlml's small CNN (mlml-models `SmallCnn` + GAP + linear head): one training
step (forward, BCE-with-logits, backward, Adam) at batch 64, 64 x 64 grey images, 10 classes, on
the CPU with 2 threads. Prints images per second over timed steps after warm-up.

Run: /usr/bin/python3 benches/small_cnn_torch.py [--steps 10] [--threads 2]
Its Rust side: cargo run --release -p mlml-train --example time_train_step
"""
import argparse
import time

import torch
import torch.nn as nn


class SmallCnn(nn.Module):
    def __init__(self, widths=(32, 64, 128, 128), classes=10):
        super().__init__()
        layers, cin = [], 1
        for i, w in enumerate(widths):
            layers += [nn.Conv2d(cin, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU()]
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            cin = w
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(cin, classes)

    def forward(self, x):
        return self.head(self.features(x).mean(dim=(2, 3)))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = SmallCnn()
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.BCEWithLogitsLoss()
    x = torch.rand(args.batch, 1, 64, 64)
    y = (torch.rand(args.batch, 10) < 0.25).float()

    def step():
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()

    for _ in range(2):
        step()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds = (time.perf_counter() - start) / args.steps
    print(f"pytorch {torch.__version__} small-cnn-64-b{args.batch} train step: "
          f"{seconds * 1000:.1f} ms, {args.batch / seconds:.1f} img/s ({args.threads} threads)")


if __name__ == "__main__":
    main()
