"""What every data set shares, whatever its task: the checks of a request, the split into train and val, the
normalisation statistics, the worker count, and the DataBundle the loaders return. Classification
(bundle.py) and segmentation (segmentation.py) each read their own sources and build on this; neither imports
the other, and load.py picks between them."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
from torch.utils.data import Dataset

from ..errors import DataError
from .datasets import PixelMoments
from .transforms import Augment, EvalTransform

# A channel that never varies (a constant border, a blank data set) would divide by zero.
MIN_STD = 1e-6
# DataLoader workers for file sources at most (more only adds memory; decoding scales to about this).
MAX_WORKERS = 8


@dataclass
class DataBundle:
    """The splits of one data set, prepared for one input size. Classification items are (float32 tensor
    C x H x W normalised with `mean`/`std`, int label); segmentation items (image, int64 mask H x W).

    skipped: files found unreadable while loading (their headers); `unreadable()` adds those found when a
    DataLoader decoded them. statistics: how `mean`/`std` were measured (how many training images sampled)."""

    train: Dataset
    val: Dataset
    test: Dataset | None
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str
    input_size: tuple[int, int, int]
    skipped: list[str] = field(default_factory=list)
    kind: str = ""
    val_split: float = 0.1
    seed: int = 0
    augment: Augment | None = None
    border: int = 0
    statistics: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def from_files(self) -> bool:
        """Whether the images are decoded from files on every access (so DataLoader workers pay off)."""
        return bool(self.train.source.from_files)

    def unreadable(self) -> list[str]:
        """Every file skipped as unreadable so far: at loading, and since, when decoded (with skip_bad)."""
        found = list(self.skipped)
        for split in (self.train, self.val, self.test):
            if split is not None:
                found += [path for path in split.source.unreadable_paths() if path not in found]
        return found

    def describe(self) -> dict:
        """Everything needed to load the same data again, and what it holds (JSON-able)."""
        return {
            "source": self.source,
            "kind": self.kind,
            "input_size": list(self.input_size),
            "classes": list(self.classes),
            "mean": list(self.mean),
            "std": list(self.std),
            "statistics": dict(self.statistics),
            "val_split": self.val_split,
            "seed": self.seed,
            "augment": None if self.augment is None else asdict(self.augment),
            "border": self.border,
            "sizes": {"train": len(self.train), "val": len(self.val),
                      "test": None if self.test is None else len(self.test)},
            "skipped": list(self.skipped),
        }

    def check_classes(self, expected: Sequence[str]) -> None:
        """Refuse data whose classes differ from a checkpoint's: its outputs would be read as other classes."""
        if list(expected) != list(self.classes):
            missing = [c for c in expected if c not in self.classes]
            extra = [c for c in self.classes if c not in expected]
            detail = (f"missing {missing}, unexpected {extra}" if missing or extra
                      else "the same names in another order")
            raise DataError(f"the classes of {self.source!r} do not match the checkpoint's ({detail}); "
                            f"the checkpoint knows {list(expected)}")

    def multi_crop(self, split: str = "test", crops: int = 10, resize: int | None = None) -> Dataset:
        """A val or test split whose items are crops x C x H x W stacks (the papers' 10-crop testing: four
        corners and the centre of an image resized to 256/224 of the input, and their mirror images)."""
        dataset = {"val": self.val, "test": self.test}.get(split)
        if dataset is None:
            raise DataError(f"{self.source!r} has no {split!r} split to crop")
        return dataset.with_transform(EvalTransform(self.input_size, self.mean, self.std, crops, resize, self.border))


@dataclass(frozen=True)
class DataRequest:
    """What load_data was asked for (its arguments, see load.py), checked once for both tasks."""

    source: str
    input_size: tuple[int, int, int]
    val_split: float = 0.1
    seed: int = 0
    augment: Augment | None = None
    skip_bad: bool = False
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    border: int = 0

    def __post_init__(self) -> None:
        size = self.input_size
        if len(size) != 3 or not all(isinstance(n, (int, np.integer)) and n > 0 for n in size):
            raise DataError(f"input_size must be (channels, height, width) of positive integers, got {size!r}")
        object.__setattr__(self, "input_size", tuple(int(n) for n in size))
        if not 0 <= self.val_split < 1:
            raise DataError(f"val_split is a fraction of the training images, in [0, 1); got {self.val_split}")
        if (self.mean is None) != (self.std is None):
            raise DataError("give both mean and std, or neither")
        channels = self.input_size[0]
        if self.mean is not None and (len(self.mean) != channels or len(self.std) != channels):
            raise DataError(f"mean and std need {channels} values (one a channel), got {len(self.mean)} and "
                            f"{len(self.std)}")

    @property
    def channels(self) -> int:
        return self.input_size[0]

    def bundle(self, **splits_and_findings) -> DataBundle:
        """The DataBundle of this request: its settings, and the splits, classes, statistics etc. found."""
        return DataBundle(source=str(self.source), input_size=self.input_size, val_split=self.val_split,
                          seed=self.seed, augment=self.augment, border=self.border, **splits_and_findings)


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Hold out round(fraction * n) images of each class at random (seeded); every class keeps at least one
    training image. Returns (kept, held_out) indices, each sorted."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    held = []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        held.append(members[:min(round(fraction * len(members)), len(members) - 1)])
    held_out = np.sort(np.concatenate(held)) if held else np.zeros(0, dtype=np.int64)
    kept = np.setdiff1d(np.arange(len(labels)), held_out)
    return kept, held_out


def split_train_val(train, val, val_split: float, seed: int, labels: np.ndarray | None = None):
    """(train indices, val source, val indices). A data set with a val split of its own (`val` not None) uses
    it whole; otherwise a seeded hold-out of the train source, stratified by `labels` (None: one class for all,
    as segmentation pairs)."""
    if val is not None:
        return np.arange(len(train)), val, np.arange(len(val))
    labels = np.zeros(len(train), dtype=np.int64) if labels is None else labels
    train_indices, val_indices = stratified_split(labels, val_split, seed)
    return train_indices, train, val_indices


def normalisation(moments: PixelMoments | None, mean: Sequence[float] | None, std: Sequence[float] | None,
                  train_size: int) -> tuple[tuple[float, ...], tuple[float, ...], dict]:
    """The given mean and std (a checkpoint's), or the measured ones; and how they were obtained."""
    if mean is None:
        mean = moments.mean().tolist()
        std = [max(s, MIN_STD) for s in moments.covariance().diagonal().clamp(min=0).sqrt().tolist()]
        how = {"measured_on": "an evenly spread sample of the training split", "images": moments.images,
               "of": train_size}
    else:
        how = {"measured_on": "given"}
    return tuple(float(m) for m in mean), tuple(float(s) for s in std), how


def default_workers(bundle: DataBundle, requested: int | None = None) -> int:
    """DataLoader worker processes: as requested, else none for images in memory (reading one is a copy;
    a worker would cost more than it saves), and for files one fewer than this process's cores (the training
    step keeps one busy), at least 1 and at most MAX_WORKERS."""
    if requested is not None:
        if requested < 0:
            raise DataError(f"workers must be >= 0, got {requested}")
        return requested
    if not bundle.from_files:
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(MAX_WORKERS, cores - 1))
