"""Where the pixels live: images held in memory (digits, MNIST, CIFAR) or read from files (ImageFolder), and
the Dataset a DataLoader draws from. Both sources hand out float images in [0, 1] with the network's channel
count; the split's transform does the rest."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..errors import CorruptImageError, DataNotFoundError
from .transforms import to_channels

# What Pillow raises on a file it cannot decode: not an image (UnidentifiedImageError is an OSError),
# truncated data (OSError), broken chunks (SyntaxError, struct errors as ValueError), early end (EOFError),
# and a decompression bomb.
_DECODE_ERRORS: tuple[type[BaseException], ...] = (OSError, SyntaxError, ValueError, EOFError)
# In-memory data sets measure their normalisation on a sample of the training images, evenly spread: at most
# this many images, and at most this many pixels in all (CIFAR at 224x224 would otherwise resize 50,000 images
# on every load, ~15 s). A few hundred images pin down a mean and a 3x3 covariance to far better than 1%.
STATISTICS_IMAGES = 5000
STATISTICS_PIXELS = 2**24


class PixelMoments:
    """Running per-channel sums over pixels, enough for the mean, standard deviation and colour covariance
    (AlexNet's PCA lighting) of a whole split without holding it in memory."""

    def __init__(self, channels: int) -> None:
        self.count = 0
        self.total = torch.zeros(channels, dtype=torch.float64)
        self.outer = torch.zeros(channels, channels, dtype=torch.float64)

    def add(self, images: Tensor) -> None:
        """Add images shaped C x h x w or N x C x h x w."""
        pixels = images.movedim(-3, 0).reshape(images.shape[-3], -1).double()
        self.count += pixels.shape[1]
        self.total += pixels.sum(dim=1)
        self.outer += pixels @ pixels.T

    def mean(self) -> Tensor:
        return self.total / max(self.count, 1)

    def covariance(self) -> Tensor:
        mean = self.mean()
        return self.outer / max(self.count, 1) - torch.outer(mean, mean)


def decode_image(path: str | os.PathLike, channels: int, min_shorter_side: int | None = None) -> Tensor:
    """Read an image file as a float C x h x w tensor in [0, 1] with `channels` channels.

    min_shorter_side lets JPEG decode at a reduced scale (Pillow's draft mode) while keeping the shorter side
    at least that long: a 4000-pixel photo for a 224 network decodes at 1/8 of the cost."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"image {str(path)!r} does not exist")
    mode = "RGB" if channels == 3 else "L"
    try:
        with Image.open(path) as img:
            if min_shorter_side is not None and min(img.size) > min_shorter_side:
                scale = min_shorter_side / min(img.size)
                img.draft(mode, (math.ceil(img.size[0] * scale), math.ceil(img.size[1] * scale)))
            pixels = np.array(img.convert(mode))
    except _DECODE_ERRORS + (Image.DecompressionBombError,) as err:
        raise CorruptImageError(str(path), f"{type(err).__name__}: {err}") from err
    image = torch.from_numpy(pixels).float().div_(255)
    image = image[None] if image.dim() == 2 else image.permute(2, 0, 1)
    return to_channels(image, channels)


class ArrayImages:
    """Images held in memory as uint8 (N x S x h x w, S = 1 or 3), scaled to [0, 1] by `max_value`."""

    def __init__(self, images: np.ndarray | Tensor, labels: Sequence[int], max_value: float, channels: int) -> None:
        self.images = torch.as_tensor(images)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.max_value = max_value
        self.channels = channels

    def __len__(self) -> int:
        return len(self.labels)

    def read(self, index: int) -> Tensor:
        return to_channels(self.images[index].float() / self.max_value, self.channels)

    def moments(self, indices: np.ndarray, view: Callable[[Tensor], Tensor], chunk: int = 250) -> PixelMoments:
        """Pixel moments of a sample of the images (see STATISTICS_IMAGES) as the network sees them: `view`
        fits a batch to the network's input."""
        input_pixels = view(to_channels(self.images[:1].float(), self.channels)).shape[-2:].numel()
        sample = max(1, min(STATISTICS_IMAGES, STATISTICS_PIXELS // input_pixels))
        if len(indices) > sample:
            indices = indices[np.linspace(0, len(indices) - 1, sample).round().astype(np.int64)]
        moments = PixelMoments(self.channels)
        for start in range(0, len(indices), chunk):
            batch = self.images[torch.as_tensor(indices[start:start + chunk])].float() / self.max_value
            moments.add(view(to_channels(batch, self.channels)))
        return moments


class ImageFiles:
    """Images read from files on every access. The pixel moments of each file are measured once, when the
    files are checked (see `check`), so the training split's statistics need no second pass. They are kept
    as arrays (a pixel count, C sums and C x C sums of products a file), small even for a million files."""

    def __init__(self, paths: Sequence[str], labels: Sequence[int], channels: int,
                 min_shorter_side: int | None = None) -> None:
        self.paths = list(paths)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.channels = channels
        self.min_shorter_side = min_shorter_side
        self.file_counts = self.file_totals = self.file_outers = None

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, index: int) -> Tensor:
        return decode_image(self.paths[index], self.channels, self.min_shorter_side)

    def check(self, skip_bad: bool, view: Callable[[Tensor], Tensor]) -> list[str]:
        """Decode every file once, so an unreadable one fails now, naming it, instead of mid-training, and
        measure its pixel moments as the network will see it (through `view`).
        With skip_bad the unreadable files are dropped and returned; otherwise the first one raises."""
        good_paths, good_labels, counts, totals, outers, bad = [], [], [], [], [], []
        for path, label in zip(self.paths, self.labels):
            try:
                image = decode_image(path, self.channels, self.min_shorter_side)
            except CorruptImageError:
                if not skip_bad:
                    raise
                bad.append(path)
                continue
            file_moments = PixelMoments(self.channels)
            file_moments.add(view(image))
            good_paths.append(path)
            good_labels.append(label)
            counts.append(file_moments.count)
            totals.append(file_moments.total.numpy())
            outers.append(file_moments.outer.numpy())
        channels = self.channels
        self.paths, self.labels = good_paths, np.asarray(good_labels, dtype=np.int64)
        self.file_counts = np.asarray(counts, dtype=np.int64)
        self.file_totals = np.asarray(totals, dtype=np.float64).reshape(-1, channels)
        self.file_outers = np.asarray(outers, dtype=np.float64).reshape(-1, channels, channels)
        return bad

    def moments(self, indices: np.ndarray, view: Callable[[Tensor], Tensor]) -> PixelMoments:
        """Moments of the given files, as `check` measured them (through the view given there; `view` is
        accepted so both sources are asked the same way)."""
        if self.file_counts is None:
            raise RuntimeError("ImageFiles.check() measures the files; call it before moments()")
        total = PixelMoments(self.channels)
        total.count = int(self.file_counts[indices].sum())
        total.total = torch.from_numpy(self.file_totals[indices].sum(axis=0))
        total.outer = torch.from_numpy(self.file_outers[indices].sum(axis=0))
        return total


ImageSource = ArrayImages | ImageFiles


class ImageDataset(Dataset):
    """One split: a selection of a source's images, each passed through the split's transform.
    Items are (float32 tensor, int label); `labels` gives all labels at once without reading images."""

    def __init__(self, source: ImageSource, indices: Sequence[int] | np.ndarray,
                 transform: Callable[[Tensor], Tensor]) -> None:
        self.source = source
        self.indices = np.asarray(indices, dtype=np.int64)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int) -> tuple[Tensor, int]:
        index = int(self.indices[item])
        return self.transform(self.source.read(index)), int(self.source.labels[index])

    @property
    def labels(self) -> np.ndarray:
        return self.source.labels[self.indices]

    def with_transform(self, transform: Callable[[Tensor], Tensor]) -> ImageDataset:
        """The same images through another transform (e.g. 10-crop testing); the pixels are shared."""
        return ImageDataset(self.source, self.indices, transform)
