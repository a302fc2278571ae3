"""PIL + torchvision + DataLoader on the same JPEGs as `cargo bench -p mlml-data --bench pipeline`.

The transforms of the single-positive recipe at 448 (Resize((448, 448)), RandomHorizontalFlip,
ToTensor, Normalize), of the ASL recipe at 224 (Resize((224, 224)), CutoutPIL(0.5), the PyPI
`randaugment` 1.0.2 package's RandAugment(), ToTensor; only when that package is importable)
and an evaluation Resize((224, 224)) + ToTensor, through
DataLoader(num_workers=2, batch_size=32, shuffle=True), one epoch per timing, the mean of 10 after
one warm-up epoch (criterion's estimate on the Rust side is a mean per epoch too, each epoch
with its own draws; the best epoch is printed beside it).

Images: the .jpg files of the folder given as the first argument, or of $MLML_BENCH_IMAGES.
For a side-by-side run on the same files, make a folder once with `--generate DIR` (64
photo-like JPEGs at 640 x 480 and 500 x 375, quality 90) and give both sides that folder:

  /usr/bin/python3 benches/pipeline_torchvision.py --generate /tmp/bench-jpegs
  MLML_BENCH_IMAGES=/tmp/bench-jpegs cargo bench -p mlml-data --bench pipeline
Needs python3-torch, python3-torchvision, python3-pil (Debian). CI does not run it.
"""

import os
import sys
import time

import numpy as np
import torch
import torchvision
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms


class Files(Dataset):
    def __init__(self, paths, transform):
        self.paths, self.transform = paths, transform

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        return self.transform(Image.open(self.paths[i]).convert("RGB")), i


class CutoutPIL:
    """The ASL recipe's cutout, as its reference describes it: one box of half the side around
    a uniform centre, clipped, corners inclusive, one random colour."""

    def __init__(self, factor):
        self.factor = factor

    def __call__(self, img):
        from PIL import ImageDraw

        w, h = img.size
        hc, wc = int(self.factor * w + 0.5), int(self.factor * h + 0.5)
        yc, xc = np.random.randint(w), np.random.randint(h)
        y1, y2 = np.clip(yc - hc // 2, 0, w), np.clip(yc + hc // 2, 0, w)
        x1, x2 = np.clip(xc - wc // 2, 0, h), np.clip(xc + wc // 2, 0, h)
        colour = tuple(int(v) for v in np.random.randint(0, 256, 3))
        ImageDraw.Draw(img).rectangle([x1, y1, x2, y2], fill=colour)
        return img


def generate(folder, n=64):
    os.makedirs(folder, exist_ok=True)
    rng = np.random.RandomState(0)
    for i in range(n):
        w, h = (640, 480) if i % 2 == 0 else (500, 375)
        x = np.linspace(0, 255, w)[None, :].repeat(h, 0)
        y = np.linspace(0, 255, h)[:, None].repeat(w, 1)
        img = np.stack([x, y, (x + y) / 2], -1)
        for _ in range(12):
            bx, by = rng.randint(w), rng.randint(h)
            img[max(0, by - 30) : by + 30, max(0, bx - 40) : bx + 40] = rng.randint(0, 256, 3)
        img = np.clip(img + rng.randint(0, 16, img.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(os.path.join(folder, f"{i:03}.jpg"), quality=90)


def main():
    args = sys.argv[1:]
    if args and args[0] == "--generate":
        generate(args[1])
        args = args[1:]
    folder = args[0] if args else os.environ.get("MLML_BENCH_IMAGES")
    if not folder:
        sys.exit("give a folder of .jpg files (or --generate DIR)")
    paths = sorted(
        os.path.join(folder, f) for f in os.listdir(folder) if f.lower().endswith((".jpg", ".jpeg"))
    )
    torch.set_num_threads(1)
    normalize = transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    settings = {}
    try:
        if not hasattr(np, "int"):
            np.int = int  # randaugment 1.0.2 still uses np.int, gone from NumPy 1.24
        from randaugment import RandAugment

        settings["asl-224"] = transforms.Compose(
            [transforms.Resize((224, 224)), CutoutPIL(0.5), RandAugment(), transforms.ToTensor()]
        )
    except ImportError:
        print("randaugment not importable (pip install randaugment==1.0.2): asl-224 left out")
    settings |= {
        "spml-448": transforms.Compose(
            [transforms.Resize((448, 448)), transforms.RandomHorizontalFlip(), transforms.ToTensor(), normalize]
        ),
        "eval-224": transforms.Compose([transforms.Resize((224, 224)), transforms.ToTensor()]),
    }
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, {len(paths)} images")
    for name, transform in settings.items():
        loader = DataLoader(
            Files(paths, transform), batch_size=32, shuffle=True, num_workers=2, persistent_workers=True
        )
        times = []
        for epoch in range(11):
            start = time.perf_counter()
            for batch, _ in loader:
                pass
            if epoch > 0:
                times.append(time.perf_counter() - start)
        # The mean is what criterion reports on the Rust side; the best epoch alone favours
        # RandAugment's cheap draws (its ops are drawn anew every epoch, unseeded).
        mean, best = sum(times) / len(times), min(times)
        print(
            f"pipeline/{name}: {len(paths) / mean:.1f} images/s (mean of {len(times)} epochs, "
            f"{mean * 1e3:.0f} ms; best {len(paths) / best:.1f} images/s)"
        )


if __name__ == "__main__":
    main()
