"""PyTorch twin of crates/mlml-ops/examples/time_resnet50_convs.rs: every convolution shape of
ResNet-50's training step (batch 8, 224 px unless a side is given), forward, input gradient and
weight gradient (aten::convolution_backward with one output each), medians of 5 runs in ms, on
2 threads:
    /usr/bin/python3 benches/resnet50_convs_torch.py [SIDE]
"""
import statistics
import sys
import time

import torch

torch.set_num_threads(2)
side = int(sys.argv[1]) if len(sys.argv) > 1 else 224
batch = 8


def median_ms(step):
    step()
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def resnet50_convs(side):
    convs = [(3, 64, side, 7, 2, 1)]
    size, channels = side // 4, 64
    for stage, (width, blocks) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)]):
        out = width * 4
        stride = 1 if stage == 0 else 2
        after = size // stride
        convs += [(channels, width, size, 1, 1, 1), (width, width, size, 3, stride, 1),
                  (width, out, after, 1, 1, 1), (channels, out, size, 1, stride, 1),
                  (out, width, after, 1, 1, blocks - 1), (width, width, after, 3, 1, blocks - 1),
                  (width, out, after, 1, 1, blocks - 1)]
        channels, size = out, after
    return convs


print("| conv | layers | forward | input grad | weight grad | total x layers |")
print("|---|---|---|---|---|---|")
totals = [0.0, 0.0, 0.0]
with torch.no_grad():
    for c, o, size, k, s, layers in resnet50_convs(side):
        x = torch.rand(batch, c, size, size)
        w = torch.rand(o, c, k, k)
        pad = k // 2
        y = torch.nn.functional.conv2d(x, w, stride=s, padding=pad)
        dy = torch.rand_like(y)

        def backward(mask):
            return torch.ops.aten.convolution_backward(
                dy, x, w, None, [s, s], [pad, pad], [1, 1], False, [0, 0], 1, mask)

        forward = median_ms(lambda: torch.nn.functional.conv2d(x, w, stride=s, padding=pad))
        input_grad = 0.0 if c == 3 else median_ms(lambda: backward([True, False, False]))
        weight_grad = median_ms(lambda: backward([False, True, False]))
        parts = [forward, input_grad, weight_grad]
        totals = [t + p * layers for t, p in zip(totals, parts)]
        print(f"| {k}x{k}/{s} {c}->{o} @{size} | {layers} | {forward:.1f} | {input_grad:.1f} "
              f"| {weight_grad:.1f} | {sum(parts) * layers:.1f} |")
print(f"| total | | {totals[0]:.0f} | {totals[1]:.0f} | {totals[2]:.0f} | {sum(totals):.0f} |")
print("torch", torch.__version__, "threads", torch.get_num_threads())
