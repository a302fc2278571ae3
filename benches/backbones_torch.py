"""PyTorch twin of crates/mlml-models/examples/time_backbones.rs: inference of ResNet-50
(torchvision) and EfficientNet-Lite0 (the fixtures' module) at batch 8, 224 x 224, 2 threads,
the minimum and the median of RUNS batches (8 unless given). On a shared host, whose load
slows some runs and never speeds one up, the minima of the two, alternated, are the figures to
compare:
    /usr/bin/python3 benches/backbones_torch.py [RUNS]
"""
import importlib.util
import sys
import time
from pathlib import Path

import torch
import torchvision

torch.set_num_threads(2)
fixtures = Path(__file__).parent.parent / "crates/mlml-models/tests/fixtures/make_fixtures.py"
spec = importlib.util.spec_from_file_location("fx", fixtures)
fx = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fx)

runs = int(sys.argv[1]) if len(sys.argv) > 1 else 8
x = torch.ones(8, 3, 224, 224)
for name, make in [("resnet50", torchvision.models.resnet50), ("lite0", fx.EfficientNetLite0)]:
    model = make().eval()
    with torch.no_grad():
        model(x)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    print(f"torch {name}: min {times[0]:.1f} median {times[len(times) // 2]:.1f} ms per batch of 8")
