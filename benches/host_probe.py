"""Says whether the host gives this VM both of its cores right now: the time of a 192 x 192
f32 matmul on 2 threads (numpy), which stays in cache. On the 2-core EPYC of issue 31's
rounds it takes about 85 us with both cores and about 140 us in the host's slow mode, where
the two vCPUs share one core's time (one thread alone takes 140 us in either mode). The
interleaved bench scripts print it before each part, so that a ratio taken across a change
of mode can be told from one taken within a mode:
    /usr/bin/python3 benches/host_probe.py
"""
import time

import numpy as np

SLOW_MODE_US = 115.0

m = np.random.default_rng(0).random((192, 192), dtype=np.float32)
m @ m
runs = 2000
start = time.perf_counter()
for _ in range(runs):
    m @ m
us = (time.perf_counter() - start) / runs * 1e6
mode = "slow mode" if us > SLOW_MODE_US else "both cores"
print(f"host probe {time.strftime('%H:%M:%S')}: matmul192 {us:.1f} us ({mode})")
