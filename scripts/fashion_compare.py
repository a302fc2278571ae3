#!/usr/bin/env python3
"""The small CNN on Fashion, mlml against its PyTorch twin, over seeds: a markdown table.

Usage: fashion_compare.py DIR ROW:MLML_RUN_PREFIX:TORCH_JSON_PREFIX... --seeds 0 1 2

For each row and seed, reads MLML_RUN_PREFIX{seed}/report.json (best epoch, val and test mAP,
seconds) and TORCH_JSON_PREFIX{seed}.json (what scripts/fashion_torch.py wrote), and prints the
mean and sample standard deviation of each framework's figures.
"""
import argparse
import json
import statistics
from pathlib import Path


def mean_std(values):
    if len(values) < 2:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("dir")
    parser.add_argument("rows", nargs="+")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    args = parser.parse_args()
    root = Path(args.dir)
    print("| row | framework | seeds | val mAP | test mAP | best epochs | seconds per run |")
    print("|---|---|---:|---:|---:|---|---:|")
    for spec in args.rows:
        name, mlml_prefix, torch_prefix = spec.split(":")
        ours = [json.loads((root / f"{mlml_prefix}{s}" / "report.json").read_text()) for s in args.seeds]
        theirs = [json.loads((root / f"{torch_prefix}{s}.json").read_text()) for s in args.seeds]
        print(f"| {name} | mlml | {len(ours)} | {mean_std([r['val']['map'] for r in ours])} | "
              f"{mean_std([r['test']['map'] for r in ours])} | "
              f"{', '.join(str(r['best_epoch']) for r in ours)} | "
              f"{mean_std([r['seconds'] for r in ours])} |")
        print(f"| {name} | PyTorch {theirs[0]['torch']} | {len(theirs)} | "
              f"{mean_std([r['val_map'] for r in theirs])} | {mean_std([r['test_map'] for r in theirs])} | "
              f"{', '.join(str(r['epoch']) for r in theirs)} | "
              f"{mean_std([r['seconds'] for r in theirs])} |")


if __name__ == "__main__":
    main()
