"""Precision of `mlml suggest`'s top-k suggestions against the full training labels.

Usage: suggestion_precision.py SUGGESTIONS.tsv FULL_LABELS.npy[.gz] CLASSES.txt K...

A suggestion (row, class) is right when the full labels have that class for that row. Prints
one line per k: the precision of ranks 1..k.
"""
import gzip
import io
import sys

import numpy as np


def load_npy(path):
    data = open(path, "rb").read()
    if path.endswith(".gz"):
        data = gzip.decompress(data)
    return np.load(io.BytesIO(data))


def main():
    tsv, labels_path, classes_path, *ks = sys.argv[1:]
    labels = load_npy(labels_path)
    classes = [c.strip() for c in open(classes_path) if c.strip()]
    lines = open(tsv).read().splitlines()
    assert lines[0] == "row\timage\tclass\tscore\trank", lines[0]
    right = []
    for line in lines[1:]:
        row, _image, name, _score, _rank = line.split("\t")
        right.append(labels[int(row), classes.index(name)] == 1)
    for k in map(int, ks):
        top = right[:k]
        print(f"top {k}: precision {100.0 * sum(top) / len(top):.1f} % ({sum(top)} of {len(top)})")


if __name__ == "__main__":
    main()
