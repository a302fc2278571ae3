#!/usr/bin/env python3
"""np.sum of float64 arrays of every length 1..1000 and of lengths across NumPy's 8192-element
reduction blocks, for the pairwise-summation test.

The inputs are recomputed by the Rust test from the same formula (integer hashing, one IEEE
division and a multiplication by a literal, so both sides get the same bits). Run with
Debian's python3-numpy: /usr/bin/python3 make_numpy_sums.py > numpy_sums.json
"""
import json
import sys

import numpy as np

PRIME = 4294967291
SCALES = [1e-3, 1e-2, 1e-1, 1.0, 1e1, 1e2, 1e3]


def values(length):
    out = []
    for k in range(length):
        h = (k * 2654435761 + length * 40503) % PRIME
        out.append((h / PRIME) * SCALES[(k * 5 + length) % 7])
    return out


LENGTHS = list(range(1, 1001)) + [8191, 8192, 8193, 16384, 16385, 20000, 24577, 40504, 82081]

sums = []
for length in LENGTHS:
    a = np.array(values(length), dtype=np.float64)
    sums.append(float(np.sum(a)))
json.dump(
    {
        "numpy_version": np.__version__,
        "description": "np.sum(values(L)) for each L of lengths; values() as in make_numpy_sums.py",
        "lengths": LENGTHS,
        "sums": [repr(s) for s in sums],
    },
    sys.stdout,
    indent=0,
)
