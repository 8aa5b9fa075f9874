"""Per-image loading of a training split, convzoo against torchvision's ImageFolder pipeline, on the same files.

    python benchmarks/bench_data.py [--images 300] [--size 500x375] [--rounds 5] [--workers N]

The files: synthetic photo-like JPEGs (smooth colour gradients, shapes and noise, quality 90) in an ImageFolder
tree of 10 classes under /tmp, deleted at the end. The augmentation: RandomResizedCrop(224) (area 0.08..1,
aspect 3/4..4/3) + horizontal flip + ToTensor + Normalize with ImageNet's mean and std.

Columns, timed round-robin in one process (each round: every image once per column, the columns taking turns
every 10 images, single process, so all see the same machine load; the load average is printed before and
after):
  reference   torchvision's own sequence of Pillow and torch operations, written out here because torchvision
              cannot be installed beside this torch (checked by hand against torchvision/datasets/folder.py
              `pil_loader`, torchvision/transforms/transforms.py `RandomResizedCrop.get_params` and
              `RandomHorizontalFlip`, functional.py `resized_crop`, `to_tensor`, `normalize`):
              open the file, Image.open, convert("RGB") (a full decode, and a copy when already RGB), draw the
              crop, crop, resize to 224x224 (bilinear), flip with probability 1/2 (transpose), np.array copy ->
              tensor, permute HWC -> CHW, contiguous, to float, divide by 255, clone, subtract mean, divide std.
  convzoo     `load_data(folder, (3, 224, 224), augment=Augment(random_resized_crop=(0.08, 1), hflip=True))`,
              then train[i]: the crop is drawn from the header's size, the JPEG decodes at 1/2..1/8 scale when the
              crop allows (draft), one Pillow resample takes just the crop to 224x224, the flip and everything
              else stay uint8 until one fused scale-and-shift to float.
  no-draft    the same with reduced-scale decoding off (shows what draft contributes).

Equivalence: both draw the crop and the flip with the same torch calls in the same order, so for one seed they
crop the same region and flip alike. The pixels then differ (reported as mean and max |difference| in 0..255
levels): without draft only at the crop's edge pixels (convzoo's resample reads the source pixels just outside
the crop where the reference, having cropped first, repeats the edge); with draft the JPEG's own scaled IDCT
replaces part of the downscaling (a different, also antialiased, filter), so every pixel may move by a few
levels. A DataLoader with --workers N adds a second table (both columns with N workers, batch 32).
"""
from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CHUNK = 10


def make_photos(root: Path, count: int, size: tuple[int, int], seed: int = 0, classes: int = 10,
                quality: int = 90) -> list[Path]:
    """`count` photo-like JPEGs of `size` = (width, height) in root/class_k/, k = i % classes."""
    rng = np.random.default_rng(seed)
    width, height = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    paths = []
    for i in range(count):
        a, b, c = rng.uniform(0.002, 0.02, 3)
        phase = rng.uniform(0, 6.28, 3)
        image = np.stack([127 + 100 * np.sin(a * x + b * y + phase[k] + c * k * x) for k in range(3)], axis=-1)
        for _ in range(4):  # a few flat shapes with sharp edges, as objects
            cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(10, min(size) / 3)
            image[(x - cx) ** 2 + (y - cy) ** 2 < r * r] = rng.uniform(0, 255, 3)
        image += rng.normal(0, 6, image.shape)
        path = root / f"class_{i % classes}" / f"img_{i:06d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.clip(0, 255).astype(np.uint8)).save(path, quality=quality)
        paths.append(path)
    return paths


# --- the reference: torchvision's ImageFolder + RandomResizedCrop(224) + flip + ToTensor + Normalize ----------

def reference_crop_params(width: int, height: int, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
    """RandomResizedCrop.get_params: 10 tries of (area, log-uniform aspect) with torch's generator, then the
    position; else the centre crop clamped to the aspect range. Returns (top, left, h, w)."""
    area = height * width
    log_ratio = torch.log(torch.tensor(ratio))
    for _ in range(10):
        target_area = area * torch.empty(1).uniform_(scale[0], scale[1]).item()
        aspect_ratio = torch.exp(torch.empty(1).uniform_(log_ratio[0], log_ratio[1])).item()
        w = int(round(math.sqrt(target_area * aspect_ratio)))
        h = int(round(math.sqrt(target_area / aspect_ratio)))
        if 0 < w <= width and 0 < h <= height:
            i = torch.randint(0, height - h + 1, size=(1,)).item()
            j = torch.randint(0, width - w + 1, size=(1,)).item()
            return i, j, h, w
    in_ratio = float(width) / float(height)
    if in_ratio < min(ratio):
        w = width
        h = int(round(w / min(ratio)))
    elif in_ratio > max(ratio):
        h = height
        w = int(round(h * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


class ReferenceFolder(Dataset):
    def __init__(self, paths: list[Path], labels: list[int]) -> None:
        self.paths, self.labels = paths, labels
        self.mean, self.std = torch.tensor(MEAN), torch.tensor(STD)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        with open(self.paths[index], "rb") as f:  # folder.py pil_loader
            img = Image.open(f)
            img = img.convert("RGB")
        top, left, h, w = reference_crop_params(*img.size)  # RandomResizedCrop
        img = img.crop((left, top, left + w, top + h)).resize((224, 224), Image.BILINEAR)  # F.resized_crop
        if torch.rand(1) < 0.5:  # RandomHorizontalFlip
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        tensor = torch.from_numpy(np.array(img, np.uint8, copy=True))  # to_tensor
        tensor = tensor.view(img.size[1], img.size[0], len(img.getbands())).permute((2, 0, 1)).contiguous()
        tensor = tensor.to(dtype=torch.get_default_dtype()).div(255)
        tensor = tensor.clone()  # normalize (not in place)
        tensor.sub_(self.mean[:, None, None]).div_(self.std[:, None, None])
        return tensor, self.labels[index]


def convzoo_train_split(root: Path, reduced_scale: bool = True):
    from convzoo.data import Augment, load_data

    bundle = load_data(str(root), (3, 224, 224), val_split=0, augment=Augment(random_resized_crop=(0.08, 1.0),
                       hflip=True), mean=MEAN, std=STD)
    bundle.train.source.reduced_scale = reduced_scale
    return bundle.train


def chunk_seconds(dataset, items: range) -> tuple[float, float]:
    """(wall, CPU) seconds of reading `items`; the CPU time (this process's) is the steadier on a busy machine."""
    start, cpu_start = time.perf_counter(), time.process_time()
    for i in items:
        dataset[i]
    return time.perf_counter() - start, time.process_time() - cpu_start


def loader_pass(dataset, workers: int) -> float:
    loader = DataLoader(dataset, batch_size=32, shuffle=False, num_workers=workers)
    start = time.perf_counter()
    count = sum(len(images) for images, _ in loader)
    return count / (time.perf_counter() - start)


def equivalence(reference: Dataset, ours, no_draft, count: int = 50) -> dict:
    """Mean and max |difference| in 0..255 levels of each convzoo column against the reference, same seeds."""
    levels = torch.tensor(STD).view(3, 1, 1) * 255
    found = {"convzoo": [], "no-draft": []}
    for i in range(min(count, len(reference))):
        torch.manual_seed(i)
        expected = reference[i][0]
        for name, dataset in (("convzoo", ours), ("no-draft", no_draft)):
            torch.manual_seed(i)
            found[name].append(((dataset[i][0] - expected) * levels).abs())
    return {name: (float(torch.stack(d).mean()), float(torch.stack(d).max())) for name, d in found.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--size", default="500x375", help="WIDTHxHEIGHT of the JPEGs")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=None, help="also time DataLoaders with N workers")
    args = parser.parse_args()
    torch.set_num_threads(1)
    size = tuple(int(n) for n in args.size.split("x"))
    root = Path(tempfile.mkdtemp(prefix="convzoo-bench-data-"))
    try:
        paths = make_photos(root, args.images, size)
        paths = sorted(paths)
        labels = [int(p.parent.name.split("_")[1]) for p in paths]
        # Sorted like ImageFolder: class folders by name, files by name.
        order = sorted(range(len(paths)), key=lambda i: (f"class_{labels[i]}", paths[i].name))
        reference = ReferenceFolder([paths[i] for i in order], [labels[i] for i in order])
        ours, no_draft = convzoo_train_split(root), convzoo_train_split(root, reduced_scale=False)
        columns = {"reference": reference, "convzoo": ours, "no-draft": no_draft}
        kilobytes = sum(p.stat().st_size for p in paths) / len(paths) / 1e3
        print(f"{args.images} JPEGs of {size[0]}x{size[1]}, {kilobytes:.0f}"
              f" kB each; one process, torch threads 1; load average before: {os.getloadavg()}", flush=True)
        for dataset in columns.values():  # warm the page cache and the code paths
            for i in range(min(20, len(dataset))):
                dataset[i]
        rates = {name: [] for name in columns}
        cpu_rates = {name: [] for name in columns}
        for round_index in range(args.rounds):
            seconds = {name: [0.0, 0.0] for name in columns}
            for start in range(0, len(reference), CHUNK):  # alternate every CHUNK images: load drifts slowly
                for name, dataset in columns.items():
                    torch.manual_seed(round_index * 100_000 + start)
                    wall, cpu = chunk_seconds(dataset, range(start, min(start + CHUNK, len(dataset))))
                    seconds[name][0] += wall
                    seconds[name][1] += cpu
            for name in columns:
                rates[name].append(len(reference) / seconds[name][0])
                cpu_rates[name].append(len(reference) / seconds[name][1])
            print(f"round {round_index + 1}: " + ", ".join(f"{n} {r[-1]:.0f}/s" for n, r in rates.items()), flush=True)
        print(f"load average after: {os.getloadavg()}")
        ratios = [o / r for o, r in zip(rates["convzoo"], rates["reference"])]
        print(f"\n{'column':10} {'images/s (median)':>18} {'vs reference':>13} {'images/CPU-s':>13} "
              f"{'vs reference':>13}")
        for name in columns:
            wall, cpu = rates[name], cpu_rates[name]
            print(f"{name:10} {statistics.median(wall):18.0f} "
                  f"{statistics.median(v / r for v, r in zip(wall, rates['reference'])):12.2f}x "
                  f"{statistics.median(cpu):13.0f} "
                  f"{statistics.median(v / r for v, r in zip(cpu, cpu_rates['reference'])):12.2f}x")
        print(f"convzoo/reference per round (wall): {', '.join(f'{r:.2f}' for r in ratios)}")
        for name, (mean, largest) in equivalence(reference, ours, no_draft).items():
            print(f"{name} vs reference, same seeds: mean |diff| {mean:.2f} levels, max {largest:.0f} (of 255)")
        if args.workers is not None:
            print(f"\nDataLoader, batch 32, {args.workers} workers (load average {os.getloadavg()[0]:.2f}):")
            loaded = {name: [] for name in ("reference", "convzoo")}
            for _ in range(max(2, args.rounds // 2)):
                for name in loaded:
                    loaded[name].append(loader_pass(columns[name], args.workers))
            for name, values in loaded.items():
                print(f"{name:10} {statistics.median(values):8.0f} images/s")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
