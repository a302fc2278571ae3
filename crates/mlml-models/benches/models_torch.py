"""PyTorch CPU side of benches/models.rs, with the same ids: ResNet-50 (torchvision) and
EfficientNet-Lite0 (the fixture script's module) at batch 8, 224 x 224, `infer/` forward
(no_grad, eval mode) and `train/` forward + backward of the mean output (training mode), and
`train/small-cnn-64-b64`: the small CNN twin of benches/small_cnn_torch.py, BCE with logits,
backward and an Adam step, and `train/resnet50-448-b8` (ResNet-50 at 448 x 448). Medians over
the timed runs, 2 threads. Run by hand, with the ids' prefixes to time only those (each network is
built only if one of its ids runs, so `/usr/bin/time -f %M` of a run with one id is that id's
peak memory):
    /usr/bin/python3 crates/mlml-models/benches/models_torch.py [ID_PREFIX ...]
"""
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import torch
import torchvision

torch.set_num_threads(2)
here = Path(__file__).parent


def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fx = load("fx", here.parent / "tests/fixtures/make_fixtures.py")
small = load("small", here.parent.parent.parent / "benches/small_cnn_torch.py")


def median_seconds(step, runs, warmup=1):
    for _ in range(warmup):
        step()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def report(bench_id, seconds, images):
    print(f"{bench_id}: {seconds * 1000:.1f} ms ({images / seconds:.1f} img/s)")


def wanted(bench_id):
    return len(sys.argv) < 2 or any(bench_id.startswith(p) for p in sys.argv[1:])


x = torch.ones(8, 3, 224, 224)
models = [("resnet50", torchvision.models.resnet50), ("lite0", fx.EfficientNetLite0)]
for name, make in models:
    if wanted(f"infer/{name}-224-b8"):
        model = make().eval()
        with torch.no_grad():
            report(f"infer/{name}-224-b8", median_seconds(lambda: model(x), 5), 8)
for name, make, side in [("resnet50", torchvision.models.resnet50, 224),
                         ("resnet50", torchvision.models.resnet50, 448),
                         ("lite0", fx.EfficientNetLite0, 224)]:
    if wanted(f"train/{name}-{side}-b8"):
        model = make().train()
        images = torch.ones(8, 3, side, side)
        report(f"train/{name}-{side}-b8",
               median_seconds(lambda: model(images).mean().backward(), 4), 8)
        del model

if not wanted("train/small-cnn-64-b64"):
    print("torch", torch.__version__, "threads", torch.get_num_threads())
    sys.exit(0)

torch.manual_seed(0)
net = small.SmallCnn()
net.train()
optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
loss_fn = torch.nn.BCEWithLogitsLoss()
grey = torch.rand(64, 1, 64, 64)
targets = (torch.rand(64, 10) < 0.25).float()


def small_step():
    optimizer.zero_grad()
    loss_fn(net(grey), targets).backward()
    optimizer.step()


report("train/small-cnn-64-b64", median_seconds(small_step, 10, warmup=2), 64)
print("torch", torch.__version__, "threads", torch.get_num_threads())
