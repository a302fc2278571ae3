"""PyTorch twin of crates/mlml-ops/examples/time_conv_layer.rs: one convolution with a bias and
a ReLU, no_grad, batch 8, 2 threads, the minimum and the median of RUNS calls.
    /usr/bin/python3 benches/conv_layer_torch.py IN OUT SIDE KERNEL STRIDE RUNS
"""
import sys
import time

import torch

torch.set_num_threads(2)
channels, out_channels, side, kernel, stride, runs = map(int, sys.argv[1:7])
x = torch.rand(8, channels, side, side)
weight = torch.rand(out_channels, channels, kernel, kernel)
bias = torch.rand(out_channels)
times = []
with torch.no_grad():
    for _ in range(max(runs, 1)):
        start = time.perf_counter()
        torch.relu(torch.nn.functional.conv2d(x, weight, bias, stride, kernel // 2))
        times.append((time.perf_counter() - start) * 1e3)
times.sort()
print(f"{channels}->{out_channels} @{side} k{kernel} s{stride}: "
      f"min {times[0]:.2f} median {times[len(times) // 2]:.2f} ms")
