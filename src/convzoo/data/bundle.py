"""Classification data: from a source name or folder to train/val/test ImageDatasets ready for a network of a
given input size, with the normalisation measured on a sample of the training split. The readers of each
kind of source are in sources.py; what classification shares with segmentation is in common.py."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError
from .common import DataBundle, DataRequest, normalisation, split_train_val
from .datasets import ImageDataset, ImageSource, load_file
from .sources import read_source
from .transforms import MULTI_CROP_RESIZE_RATIO, EvalTransform, TrainTransform, content_size


def load_classification_data(request: DataRequest) -> DataBundle:
    """What `load_data` does for a classification source (call that; its docstring has the arguments)."""
    source, input_size, augment, skip_bad, border = (request.source, request.input_size, request.augment,
                                                      request.skip_bad, request.border)
    channels = request.channels
    content = content_size(input_size, border)
    if augment is not None:
        augment.check_fits(*content)
    # Whole-image decodes (statistics, segmentation) may use JPEG's reduced scales down to what the largest
    # transform needs; the training split's own reads decode just their region (transforms.decode_region).
    largest_scale = augment.random_resized_scale[1] if augment and augment.random_resized_scale else 0
    min_shorter_side = max(math.ceil(max(content) * MULTI_CROP_RESIZE_RATIO), largest_scale)
    raw = read_source(str(source), channels, min_shorter_side)

    skipped: list[str] = []
    for split_source in (raw.train, raw.val, raw.test):
        if split_source is not None and split_source.from_files:
            skipped += split_source.check(skip_bad)
    if skipped:
        _check_no_empty_class(raw.train, raw.classes, source, len(skipped))

    train_indices, val_source, val_indices = split_train_val(raw.train, raw.val, request.val_split, request.seed,
                                                             raw.train.labels)
    # Statistics are measured on the images as the network sees them (resized, bordered), not normalised.
    network_view = EvalTransform(input_size, [0.0] * channels, [1.0] * channels, border=border)
    pca_lighting = augment is not None and augment.pca_lighting > 0
    needs_moments = request.mean is None or pca_lighting
    moments = raw.train.moments(train_indices, network_view, skip_bad) if needs_moments else None
    mean, std, statistics = normalisation(moments, request.mean, request.std, len(train_indices))

    eval_tf = EvalTransform(input_size, mean, std, border=border)
    train_tf = eval_tf
    if augment is not None:
        eigenvalues = eigenvectors = None
        if pca_lighting:
            eigenvalues, eigenvectors = torch.linalg.eigh(moments.covariance())
            eigenvalues, eigenvectors = eigenvalues.clamp(min=0).float(), eigenvectors.float()
        train_tf = TrainTransform(input_size, mean, std, augment, eigenvalues, eigenvectors, border)
    return request.bundle(
        train=ImageDataset(raw.train, train_indices, train_tf, skip_bad),
        val=ImageDataset(val_source, val_indices, eval_tf, skip_bad),
        test=None if raw.test is None else ImageDataset(raw.test, np.arange(len(raw.test)), eval_tf, skip_bad),
        classes=list(raw.classes), mean=mean, std=std, skipped=skipped, kind=raw.kind, statistics=statistics)


def load_image(path: str | Path, input_size: Sequence[int], mean: Sequence[float], std: Sequence[float],
               crops: int = 1, border: int = 0) -> Tensor:
    """One image file as the network sees it at test time (for `predict`): C x H x W, or crops x C x H x W.
    Give the mean, std and border the network was trained with (a checkpoint's data description)."""
    channels = DataRequest(str(path), tuple(input_size), mean=tuple(mean), std=tuple(std), border=border).channels
    return load_file(path, EvalTransform(input_size, mean, std, crops, border=border), channels)


def _check_no_empty_class(train: ImageSource, classes: list[str], source: str, skipped: int) -> None:
    # Reading already refused empty class folders; skipping unreadable files can empty one again.
    counts = np.bincount(train.labels, minlength=len(classes))
    empty = [name for name, count in zip(classes, counts) if count == 0]
    if empty:
        raise DataError(f"classes {empty} of {source!r} have no readable training images "
                        f"after skipping {skipped} unreadable files")
