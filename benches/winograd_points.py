#!/usr/bin/python3
"""Winograd F(4x4, 3x3): solves for the transforms at a set of interpolation points, exactly
(fractions), and measures their rounding error in f32 against float64's direct correlation.

The matrices of `crates/mlml-ops/src/conv/flex/winograd.rs` (`F4`) are this script's at the
points 0, 1, -1, 1/2, -2 (and infinity); Lavin and Gray's are 0, 1, -1, 2, -2. For each set it
prints B^T, G and A^T and the largest and RMS error of the outputs of 300 random 6x6 tiles
summed over 128 channels of unit normals (as a 128-channel layer sums them).

    /usr/bin/python3 benches/winograd_points.py
"""
from fractions import Fraction as Fr

import numpy as np

M, R = 4, 3
N = M + R - 1


def transforms(points):
    """A^T (M x N), G (N x R) and B^T (N x N) for F(M, R) at `points` and infinity."""
    at = [[Fr(0)] * N for _ in range(M)]
    g = [[Fr(0)] * R for _ in range(N)]
    for j, p in enumerate(points):
        for i in range(M):
            at[i][j] = p**i
        den = Fr(1)
        for q in points:
            if q != p:
                den *= p - q
        for k in range(R):
            g[j][k] = p**k / den
    at[M - 1][N - 1] = Fr(1)
    g[N - 1][R - 1] = Fr(1)
    # B^T column by column: sum_j A^T[i][j] G[j][k] B^T[j][t] = [t == i + k] for every i, k.
    bt = [[None] * N for _ in range(N)]
    for t in range(N):
        rows = [[at[i][j] * g[j][k] for j in range(N)] for i in range(M) for k in range(R)]
        rhs = [Fr(int(t == i + k)) for i in range(M) for k in range(R)]
        normal = [[sum(r[a] * r[b] for r in rows) for b in range(N)] for a in range(N)]
        y = [sum(r[a] * v for r, v in zip(rows, rhs)) for a in range(N)]
        aug = [normal[a] + [y[a]] for a in range(N)]
        for c in range(N):
            pivot = next(i for i in range(c, N) if aug[i][c] != 0)
            aug[c], aug[pivot] = aug[pivot], aug[c]
            aug[c] = [v / aug[c][c] for v in aug[c]]
            for i in range(N):
                if i != c and aug[i][c] != 0:
                    aug[i] = [a - aug[i][c] * b for a, b in zip(aug[i], aug[c])]
        solution = [aug[a][N] for a in range(N)]
        for r, v in zip(rows, rhs):
            assert sum(a * b for a, b in zip(r, solution)) == v, "no exact solution"
        for j in range(N):
            bt[j][t] = solution[j]
    return at, g, bt


def error(at, g, bt, tiles=300, channels=128, seed=1):
    rng = np.random.default_rng(seed)
    f32 = lambda m: np.array([[float(v) for v in row] for row in m], dtype=np.float32)
    at, g, bt = f32(at), f32(g), f32(bt)
    worst, squares = 0.0, 0.0
    for _ in range(tiles):
        d = rng.normal(size=(channels, N, N)).astype(np.float32)
        k = rng.normal(size=(channels, R, R)).astype(np.float32)
        u = np.einsum("ij,cjk,lk->cil", g, k, g).astype(np.float32)
        v = np.einsum("ij,cjk,lk->cil", bt, d, bt).astype(np.float32)
        m = (u * v).sum(0, dtype=np.float32)
        y = (at @ m @ at.T).astype(np.float32)
        exact = np.array(
            [[(d[:, i:i + R, j:j + R].astype(np.float64) * k).sum() for j in range(M)] for i in range(M)]
        )
        worst = max(worst, float(np.abs(y - exact).max()))
        squares += float(((y - exact) ** 2).mean())
    return worst, (squares / tiles) ** 0.5


for name, points in [
    ("Lavin and Gray: 0, 1, -1, 2, -2", [Fr(0), Fr(1), Fr(-1), Fr(2), Fr(-2)]),
    ("mlml's F4: 0, 1, -1, 1/2, -2", [Fr(0), Fr(1), Fr(-1), Fr(1, 2), Fr(-2)]),
]:
    at, g, bt = transforms(points)
    print(f"## {name}")
    for label, matrix in (("B^T", bt), ("G", g), ("A^T", at)):
        print(label)
        for row in matrix:
            print("  ", "  ".join(f"{str(v):>6}" for v in row))
    worst, rms = error(at, g, bt)
    print(f"f32 error over {M * M * 300} outputs, 128 channels: max {worst:.2e}, rms {rms:.2e}\n")
