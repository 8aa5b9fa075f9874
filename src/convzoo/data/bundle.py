"""load_data: from a source name or folder to train/val/test Datasets ready for a network of a given input
size, with the normalisation measured on the training split."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError
from .datasets import ImageDataset, ImageFiles, ImageSource, decode_image
from .sources import read_source
from .transforms import MULTI_CROP_RESIZE_RATIO, Augment, EvalTransform, TrainTransform, content_size

# A channel that never varies (a constant border, a blank data set) would divide by zero.
_MIN_STD = 1e-6


@dataclass
class DataBundle:
    """The splits of one data set, prepared for one input size. Items of every split are
    (float32 tensor C x H x W normalised with `mean`/`std`, int label)."""

    train: ImageDataset
    val: ImageDataset
    test: ImageDataset | None
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

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def describe(self) -> dict:
        """Everything needed to load the same data again, and what it holds (JSON-able)."""
        return {
            "source": self.source,
            "kind": self.kind,
            "input_size": list(self.input_size),
            "classes": list(self.classes),
            "mean": list(self.mean),
            "std": list(self.std),
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

    def multi_crop(self, split: str = "test", crops: int = 10, resize: int | None = None) -> ImageDataset:
        """A val or test split whose items are crops x C x H x W stacks (the papers' 10-crop testing: four
        corners and the centre of an image resized to 256/224 of the input, and their mirror images)."""
        dataset = {"val": self.val, "test": self.test}.get(split)
        if dataset is None:
            raise DataError(f"{self.source!r} has no {split!r} split to crop")
        return dataset.with_transform(EvalTransform(self.input_size, self.mean, self.std, crops, resize, self.border))


def load_data(
    source: str,
    input_size: Sequence[int],
    val_split: float = 0.1,
    seed: int = 0,
    augment: Augment | None = None,
    skip_bad: bool = False,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    border: int = 0,
) -> DataBundle:
    """Load a data set for a network taking `input_size` = (C, H, W) images.

    source: "digits", "digits-seg", or a folder: ImageFolder tree, MNIST/Fashion-MNIST IDX files, CIFAR-10/100
        binaries, VOC-style or images/ + masks/ segmentation folders.
    val_split: the fraction of the training images held out for validation (stratified, deterministic for a
        seed) when the data set has no validation split of its own (an ImageFolder val/ folder).
    augment: training-time augmentation; validation and test images are never augmented.
    skip_bad: unreadable image files are skipped and listed in `skipped` instead of raising.
    mean, std: normalise with these (a checkpoint's) instead of the training split's statistics.
    border: fit the images into the centre of the input, inside this many black pixels (LeNet-5's 32x32 field
        around 28x28 digits: border=2); `describe()` records it for eval and predict.
    Every image file is decoded once here, so a corrupt file or an empty class fails before training starts.
    Segmentation sources ("digits-seg", VOC-style or images/ + masks/ folders) give (image, mask) items: see
    data/segmentation.py.
    """
    # segmentation.py builds on this module (DataBundle, stratified_split), so it is imported here, not above.
    from .segmentation import is_segmentation_source, load_segmentation_data

    if is_segmentation_source(source):
        if border:
            raise DataError("border is for classification inputs (LeNet-5); segmentation data takes none")
        return load_segmentation_data(source, input_size, val_split, seed, augment, skip_bad, mean=mean, std=std)
    channels, height, width = _check_input_size(input_size)
    if not 0 <= val_split < 1:
        raise DataError(f"val_split is a fraction of the training images, in [0, 1); got {val_split}")
    if (mean is None) != (std is None):
        raise DataError("give both mean and std, or neither")
    if mean is not None and (len(mean) != channels or len(std) != channels):
        raise DataError(f"mean and std need {channels} values (one a channel), got {len(mean)} and {len(std)}")
    content = content_size(input_size, border)
    if augment is not None:
        augment.check_fits(*content)
    # JPEGs may decode at a reduced scale as long as they still cover the largest size any transform needs.
    largest_scale = augment.random_resized_scale[1] if augment and augment.random_resized_scale else 0
    min_shorter_side = max(math.ceil(max(content) * MULTI_CROP_RESIZE_RATIO), largest_scale)
    raw = read_source(str(source), channels, min_shorter_side)

    # Statistics are measured on the images as the network sees them (resized, bordered), not normalised.
    network_view = EvalTransform(input_size, [0.0] * channels, [1.0] * channels, border=border)
    skipped: list[str] = []
    for split_source in (raw.train, raw.val, raw.test):
        if isinstance(split_source, ImageFiles):
            skipped += split_source.check(skip_bad, network_view)
    if skipped:
        _check_no_empty_class(raw.train, raw.classes, source, len(skipped))

    if raw.val is not None:
        train_indices, val_source, val_indices = np.arange(len(raw.train)), raw.val, np.arange(len(raw.val))
    else:
        train_indices, val_indices = stratified_split(raw.train.labels, val_split, seed)
        val_source = raw.train
    pca_lighting = augment is not None and augment.pca_lighting > 0
    if mean is None or pca_lighting:
        moments = raw.train.moments(train_indices, network_view)
    if mean is None:
        mean = moments.mean().tolist()
        std = [max(s, _MIN_STD) for s in moments.covariance().diagonal().clamp(min=0).sqrt().tolist()]
    mean, std = tuple(float(m) for m in mean), tuple(float(s) for s in std)

    eval_tf = EvalTransform(input_size, mean, std, border=border)
    train_tf = eval_tf
    if augment is not None:
        eigenvalues = eigenvectors = None
        if pca_lighting:
            eigenvalues, eigenvectors = torch.linalg.eigh(moments.covariance())
            eigenvalues, eigenvectors = eigenvalues.clamp(min=0).float(), eigenvectors.float()
        train_tf = TrainTransform(input_size, mean, std, augment, eigenvalues, eigenvectors, border)
    return DataBundle(
        train=ImageDataset(raw.train, train_indices, train_tf),
        val=ImageDataset(val_source, val_indices, eval_tf),
        test=None if raw.test is None else ImageDataset(raw.test, np.arange(len(raw.test)), eval_tf),
        classes=list(raw.classes), mean=mean, std=std, source=str(source),
        input_size=(channels, height, width), skipped=skipped, kind=raw.kind,
        val_split=val_split, seed=seed, augment=augment, border=border,
    )


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


def load_image(path: str | Path, input_size: Sequence[int], mean: Sequence[float], std: Sequence[float],
               crops: int = 1, border: int = 0) -> Tensor:
    """One image file as the network sees it at test time (for `predict`): C x H x W, or crops x C x H x W.
    Give the mean, std and border the network was trained with (a checkpoint's data description)."""
    channels, _, _ = _check_input_size(input_size)
    transform = EvalTransform(input_size, mean, std, crops, border=border)
    return transform(decode_image(path, channels, transform.resize or max(transform.size)))


def _check_input_size(input_size: Sequence[int]) -> tuple[int, int, int]:
    if len(input_size) != 3 or not all(isinstance(n, (int, np.integer)) and n > 0 for n in input_size):
        raise DataError(f"input_size must be (channels, height, width) of positive integers, got {input_size!r}")
    channels, height, width = (int(n) for n in input_size)
    return channels, height, width


def _check_no_empty_class(train: ImageSource, classes: list[str], source: str, skipped: int) -> None:
    # Reading already refused empty class folders; skipping unreadable files can empty one again.
    counts = np.bincount(train.labels, minlength=len(classes))
    empty = [name for name, count in zip(classes, counts) if count == 0]
    if empty:
        raise DataError(f"classes {empty} of {source!r} have no readable training images "
                        f"after skipping {skipped} unreadable files")
