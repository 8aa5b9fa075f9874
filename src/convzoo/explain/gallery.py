"""The explain/ gallery a finished run folder gets: what the best checkpoint sees in a few test images.

    runs/resnet20-digits/explain/
      index.json, feature-maps/, filters/, gradcam/, occlusion/, erf/     (layout: docs/explain.md)

`convzoo train` writes it after the test split is measured (`--no-explain` skips it); `write_gallery` is the
one call the engine makes. The images are the first test (else validation) images of different classes, as
the network saw them. Occlusion uses non-overlapping squares here (stride = window), so the gallery costs a few
dozen forward passes an image whatever the input size.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch.utils.data import Dataset

from . import explain

GALLERY_IMAGES = 4
GALLERY_METHODS = ("feature-maps", "filters", "gradcam", "occlusion", "erf")
FOLDER = "explain"


def gallery_images(dataset: Dataset, count: int = GALLERY_IMAGES) -> tuple[torch.Tensor, list[str]]:
    """The first `count` items of `dataset` whose labels differ (a segmentation item's label: its mask, so simply
    the first items), as a batch and names."""
    chosen, labels = [], set()
    for index in range(len(dataset)):
        image, label = dataset[index]
        key = int(label) if not isinstance(label, torch.Tensor) or label.dim() == 0 else index
        if key not in labels:
            labels.add(key)
            chosen.append((index, image))
        if len(chosen) == count:
            break
    return torch.stack([image for _, image in chosen]), [f"test{index}" for index, _ in chosen]


def write_gallery(run_folder: str | Path, dataset: Dataset, methods: Sequence[str] = GALLERY_METHODS,
                  count: int = GALLERY_IMAGES) -> Path:
    """Explain the run's best checkpoint on `count` images of `dataset` with each of `methods`, into
    RUN/explain/. Returns the folder."""
    out = Path(run_folder) / FOLDER
    batch, names = gallery_images(dataset, count)
    for method in methods:
        options = {}
        if method == "occlusion":
            side = min(batch.shape[-2:])
            window = max(2, side // 7)
            options = {"window": window, "stride": window}
        explain(run_folder, batch if method != "filters" else None, method, out=out, names=names, **options)
    return out
