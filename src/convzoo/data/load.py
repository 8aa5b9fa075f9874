"""load_data: the one entry point. It recognises the source's task and hands it to the classification loader
(bundle.py) or the segmentation loader (segmentation.py); both build on common.py."""
from __future__ import annotations

from typing import Sequence

from ..errors import DataError
from .bundle import load_classification_data
from .common import DataBundle, DataRequest
from .segmentation import is_segmentation_source, load_segmentation_data
from .transforms import Augment


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
    skip_bad: unreadable image files are skipped instead of raising: those found while loading are listed in
        `skipped`, those found later, when decoded for a batch, in `unreadable()` (a readable image of the
        split takes the place of each).
    mean, std: normalise with these (a checkpoint's) instead of the training split's statistics.
    border: fit the images into the centre of the input, inside this many black pixels (LeNet-5's 32x32 field
        around 28x28 digits: border=2); `describe()` records it for eval and predict.
    Image files are listed and each one's header read (format, size, mode), not decoded, so a folder of any
    size is ready in seconds; the statistics come from an evenly spread sample of the training images
    (recorded in `statistics`). A file that is not an image fails here, naming it; one whose pixels are
    corrupt fails (or is skipped) when a batch decodes it.
    Segmentation sources give (image, mask) items: see data/segmentation.py.
    """
    request = DataRequest(str(source), tuple(input_size), val_split, seed, augment, skip_bad,
                          None if mean is None else tuple(mean), None if std is None else tuple(std), border)
    if is_segmentation_source(source):
        if border:
            raise DataError("border is for classification inputs (LeNet-5); segmentation data takes none")
        return load_segmentation_data(request)
    return load_classification_data(request)
