"""Times sklearn's macro average precision on the matrices benches/map.rs builds.

Run by hand (not in CI): python3 crates/mlml-metrics/benches/map_sklearn.py
It prints the mAP (to check that both sides computed the same thing) and the best of 3 timings.
"""
import time

import numpy as np
from sklearn.metrics import average_precision_score

M = np.uint64(0xFFFFFFFFFFFFFFFF)


def splitmix64(x):
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def problem(n, c):
    k = np.arange(n * c, dtype=np.uint64)
    positive = (splitmix64(k ^ np.uint64(0x5EED)) >> np.uint64(40)) < np.uint64((1 << 24) // 20)
    score = ((splitmix64(k) >> np.uint64(40)).astype(np.float64) / float(1 << 24)).astype(np.float32)
    score = np.where(positive, np.minimum(score + np.float32(0.25), np.float32(1.0)), score)
    return score.reshape(n, c), positive.reshape(n, c).astype(np.int64)


with np.errstate(over="ignore"):
    for n, c in [(40_504, 80), (200_000, 1_000)]:
        scores, targets = problem(n, c)
        times = []
        for _ in range(3 if n * c < 10_000_000 else 1):
            t0 = time.perf_counter()
            m = average_precision_score(targets, scores, average="macro")
            times.append(time.perf_counter() - t0)
        print(f"{n}x{c}: sklearn mAP {100 * m:.6f}  best {min(times):.3f} s")
