"""PyTorch CPU side of benches/models.rs: ResNet-50 (torchvision) and EfficientNet-Lite0 (the
fixture script's module) at batch 8, 224 x 224, forward (no_grad) and forward + backward, in
training mode for the backward as the Rust bench does. Run by hand:
    /usr/bin/python3 crates/mlml-models/benches/models_torch.py
"""
import importlib.util
import statistics
import time
from pathlib import Path

import torch
import torchvision

torch.set_num_threads(2)
spec = importlib.util.spec_from_file_location("fx", Path(__file__).parent.parent / "tests/fixtures/make_fixtures.py")
fx = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fx)

x = torch.ones(8, 3, 224, 224)
for name, model in [("resnet50", torchvision.models.resnet50()), ("efficientnet_lite0", fx.EfficientNetLite0())]:
    model.eval()
    with torch.no_grad():
        model(x)
        runs = []
        for _ in range(5):
            t0 = time.perf_counter()
            model(x)
            runs.append(time.perf_counter() - t0)
    fwd = statistics.median(runs)
    model.train()
    runs = []
    for _ in range(4):
        t0 = time.perf_counter()
        model(x).mean().backward()
        runs.append(time.perf_counter() - t0)
    bwd = statistics.median(runs[1:])
    print(f"{name}: forward {fwd:.3f} s ({8 / fwd:.1f} img/s), forward+backward {bwd:.3f} s ({8 / bwd:.1f} img/s)")
print("torch", torch.__version__, "threads", torch.get_num_threads())
