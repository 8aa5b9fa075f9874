"""Where the pixels live, and the Dataset a DataLoader draws from.

Sources: images held in memory (digits, MNIST, CIFAR: `ArrayImages`) or read from files (`ImageFiles`). Both
answer the same questions (`ImageSource`): how many images, their labels, one image through a transform
(`load`), one image as a float tensor in [0, 1] (`read`), the pixel statistics of a sample (`moments`), and
which files turned out unreadable. A file source is ready as soon as its files are listed and each file's
header is read (format, size, mode: no pixels decoded), so a folder of a million images starts in seconds;
a file whose pixels turn out corrupt later, when a DataLoader decodes it, is named then (see `SplitDataset`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..errors import CorruptImageError, DataError, DataNotFoundError
from .transforms import decode_region, to_channels

# What Pillow raises on a file it cannot decode: not an image (UnidentifiedImageError is an OSError),
# truncated data (OSError), broken chunks (SyntaxError, struct errors as ValueError), early end (EOFError).
_DECODE_ERRORS: tuple[type[BaseException], ...] = (OSError, SyntaxError, ValueError, EOFError)
# Normalisation is measured on a sample of the training images, evenly spread over the split (classes are
# stored one after another, so every class is in it): in memory at most this many images and this many pixels
# in all (CIFAR at 224x224 would otherwise resize 50,000 images on every load, ~15 s), from files at most
# STATISTICS_FILES (each one decoded). A few hundred images pin down a mean and a 3x3 covariance to far
# better than 1%.
STATISTICS_IMAGES = 5000
STATISTICS_PIXELS = 2**24
STATISTICS_FILES = 1000
# The formats of sources.IMAGE_EXTENSIONS: Pillow tries only these (a quarter less time a header).
IMAGE_FORMATS = ("JPEG", "PNG", "BMP", "GIF", "TIFF", "WEBP", "PPM")
# Sampled file images are summed in batches of about this many pixels (a channel).
_MOMENTS_BATCH_PIXELS = 2**20
# Header checks of at least this many files run on one process a core, in chunks of _HEADER_CHUNK files.
_PARALLEL_HEADERS = 20_000
_HEADER_CHUNK = 2_000


def decode_errors() -> tuple[type[BaseException], ...]:
    from PIL import Image

    return _DECODE_ERRORS + (Image.DecompressionBombError,)


class PixelMoments:
    """Running per-channel sums over pixels, enough for the mean, standard deviation and colour covariance
    (AlexNet's PCA lighting) of a whole split without holding it in memory. `images` counts the images added."""

    def __init__(self, channels: int) -> None:
        self.count = 0
        self.images = 0
        self.total = torch.zeros(channels, dtype=torch.float64)
        self.outer = torch.zeros(channels, channels, dtype=torch.float64)

    def add(self, images: Tensor) -> None:
        """Add images shaped C x h x w or N x C x h x w."""
        pixels = images.movedim(-3, 0).reshape(images.shape[-3], -1).double()
        self.images += 1 if images.dim() == 3 else images.shape[0]
        self.count += pixels.shape[1]
        self.total += pixels.sum(dim=1)
        self.outer += pixels @ pixels.T

    def mean(self) -> Tensor:
        return self.total / max(self.count, 1)

    def covariance(self) -> Tensor:
        mean = self.mean()
        return self.outer / max(self.count, 1) - torch.outer(mean, mean)


def evenly_spread(indices: np.ndarray, count: int) -> np.ndarray:
    """At most `count` of `indices`, evenly spaced from the first to the last."""
    if len(indices) <= count:
        return indices
    return indices[np.linspace(0, len(indices) - 1, count).round().astype(np.int64)]


def open_image(path: str | os.PathLike):
    """Open an image file, reading its header only (Pillow is lazy: no pixel is decoded until asked)."""
    from PIL import Image

    try:
        return Image.open(path, formats=IMAGE_FORMATS)
    except FileNotFoundError as err:
        raise DataNotFoundError(f"image {str(path)!r} does not exist") from err
    except decode_errors() as err:
        raise CorruptImageError(str(path), f"{type(err).__name__}: {err}") from err


def decode_image(path: str | os.PathLike, channels: int, min_shorter_side: int | None = None) -> Tensor:
    """Read a whole image file as a float C x h x w tensor in [0, 1] with `channels` channels.

    min_shorter_side lets JPEG decode at a reduced scale (Pillow's draft mode) while keeping the shorter side
    at least that long: a 4000-pixel photo for a 224 network decodes at 1/8 of the cost."""
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"image {str(path)!r} does not exist")
    mode = "RGB" if channels == 3 else "L"
    try:
        with open_image(path) as img:
            if min_shorter_side is not None and min(img.size) > min_shorter_side:
                scale = min_shorter_side / min(img.size)
                img.draft(mode, (int(np.ceil(img.size[0] * scale)), int(np.ceil(img.size[1] * scale))))
            pixels = np.array(img.convert(mode))
    except decode_errors() as err:
        raise CorruptImageError(str(path), f"{type(err).__name__}: {err}") from err
    image = torch.from_numpy(pixels).float().div_(255)
    image = image[None] if image.dim() == 2 else image.permute(2, 0, 1)
    return to_channels(image, channels)


def load_file(path: str | os.PathLike, transform: ImageTransform, channels: int,
              size: tuple[int, int] | None = None, reduced_scale: bool = True) -> Tensor:
    """One image file through `transform`, decoding only the region its geometry takes (transforms.py).
    size: the file's (height, width) when already known from its header."""
    try:
        with open_image(path) as opened:
            height, width = size if size is not None else (opened.size[1], opened.size[0])
            pixels = decode_region(opened, transform.geometry(height, width), channels, reduced_scale)
    except (DataNotFoundError, CorruptImageError):
        raise
    except decode_errors() as err:
        raise CorruptImageError(str(path), f"{type(err).__name__}: {err}") from err
    return transform.finish(pixels)


class ImageTransform(Protocol):
    """What a split's transform offers (transforms.py): the geometry from an image's size, the rest on the
    working image, or both in one call."""

    def geometry(self, height: int, width: int): ...

    def finish(self, image: Tensor) -> Tensor: ...

    def __call__(self, image: Tensor) -> Tensor: ...


class ImageSource(Protocol):
    """What a split reads its images from (ArrayImages, ImageFiles; segmentation's pairs answer the same)."""

    labels: np.ndarray
    from_files: bool

    def __len__(self) -> int: ...

    def load(self, index: int, transform: Callable) -> object: ...

    def is_unreadable(self, index: int) -> bool: ...

    def mark_unreadable(self, index: int, error: CorruptImageError) -> None: ...

    def unreadable_paths(self) -> list[str]: ...


class ArrayImages:
    """Images held in memory as uint8 (N x S x h x w, S = 1 or 3), scaled to [0, 1] by `max_value`."""

    from_files = False

    def __init__(self, images: np.ndarray | Tensor, labels: Sequence[int], max_value: float, channels: int) -> None:
        self.images = torch.as_tensor(images)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.max_value = max_value
        self.channels = channels

    def __len__(self) -> int:
        return len(self.labels)

    def read(self, index: int) -> Tensor:
        return to_channels(self.images[index].float() / self.max_value, self.channels)

    def load(self, index: int, transform: Callable[[Tensor], Tensor]) -> Tensor:
        return transform(self.read(index))

    def is_unreadable(self, index: int) -> bool:
        return False

    def mark_unreadable(self, index: int, error: CorruptImageError) -> None:
        raise RuntimeError("images in memory are always readable")

    def unreadable_paths(self) -> list[str]:
        return []

    def moments(self, indices: np.ndarray, view: Callable[[Tensor], Tensor], skip_bad: bool = False,
                chunk: int = 250) -> PixelMoments:
        """Pixel moments of an evenly spread sample of the images (see STATISTICS_IMAGES) as the network sees
        them: `view` fits a batch to the network's input."""
        input_pixels = view(to_channels(self.images[:1].float(), self.channels)).shape[-2:].numel()
        indices = evenly_spread(indices, max(1, min(STATISTICS_IMAGES, STATISTICS_PIXELS // input_pixels)))
        moments = PixelMoments(self.channels)
        for start in range(0, len(indices), chunk):
            batch = self.images[torch.as_tensor(indices[start:start + chunk])].float() / self.max_value
            moments.add(view(to_channels(batch, self.channels)))
        return moments


class ImageFiles:
    """Images read from files on every access. `check` reads each file's header once (format, size, mode);
    `sizes` keeps (height, width) a file, so a transform's geometry is decided before a file is decoded.

    A file that fails when decoded is marked in `unreadable`, one byte a file in shared memory, so DataLoader
    workers (forked or spawned) and the main process see the same marks."""

    from_files = True

    def __init__(self, paths: Sequence[str], labels: Sequence[int], channels: int,
                 min_shorter_side: int | None = None, reduced_scale: bool = True) -> None:
        self.paths = list(paths)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.channels = channels
        self.min_shorter_side = min_shorter_side
        self.reduced_scale = reduced_scale
        self.sizes = np.zeros((len(self.paths), 2), dtype=np.int64)
        self.unreadable = _shared_flags(len(self.paths))

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, index: int) -> Tensor:
        return decode_image(self.paths[index], self.channels, self.min_shorter_side)

    def load(self, index: int, transform: ImageTransform) -> Tensor:
        """The file through `transform`, decoding only the region its geometry takes (transforms.py)."""
        return load_file(self.paths[index], transform, self.channels, tuple(int(n) for n in self.sizes[index]),
                         self.reduced_scale)

    def is_unreadable(self, index: int) -> bool:
        return bool(self.unreadable[index])

    def mark_unreadable(self, index: int, error: CorruptImageError) -> None:
        self.unreadable[index] = True

    def unreadable_paths(self) -> list[str]:
        return [self.paths[i] for i in torch.nonzero(self.unreadable).flatten().tolist()]

    def check(self, skip_bad: bool) -> list[str]:
        """Read every file's header (format, size, mode; no pixels), so a file that is not an image fails now,
        naming it. With skip_bad such files are dropped and returned; otherwise the first one raises. A file
        whose header reads but whose pixels do not is found when it is decoded (`SplitDataset`).
        Many files are read by several processes at once (one a core), in chunks, with a progress bar."""
        headers = read_headers(self.paths)
        keep, bad = [], []
        for position, (path, header) in enumerate(zip(self.paths, headers)):
            if isinstance(header, str):
                if not skip_bad:
                    raise CorruptImageError(path, header)
                bad.append(path)
                continue
            self.sizes[position] = header
            keep.append(position)
        if bad:
            self.keep(keep)
        return bad

    def keep(self, positions: Sequence[int]) -> None:
        """Keep only the files at these positions (after skipping unreadable ones)."""
        index = np.asarray(positions, dtype=np.int64)
        self.paths = [self.paths[i] for i in positions]
        self.labels, self.sizes = self.labels[index], self.sizes[index]
        self.unreadable = _shared_flags(len(self.paths))

    def moments(self, indices: np.ndarray, view: Callable[[Tensor], Tensor], skip_bad: bool = False) -> PixelMoments:
        """Pixel moments of an evenly spread sample of the files (at most STATISTICS_FILES, each decoded) as the
        network sees them (through `view`). A corrupt file met here is marked and skipped under skip_bad, or
        raises."""
        moments, batch, batch_pixels = PixelMoments(self.channels), [], 0
        for index in evenly_spread(np.asarray(indices), STATISTICS_FILES).tolist():
            try:
                image = view(self.read(index))
            except CorruptImageError as err:
                if not skip_bad:
                    raise
                self.mark_unreadable(index, err)
                continue
            # Summed a batch at a time: one small matmul an image costs more in thread start-ups than in sums.
            batch.append(image)
            batch_pixels += image[0].numel()
            if batch_pixels >= _MOMENTS_BATCH_PIXELS:
                moments.add(torch.stack(batch))
                batch, batch_pixels = [], 0
        if batch:
            moments.add(torch.stack(batch))
        if moments.images == 0 and len(indices):
            raise DataError(f"none of the {len(indices)} training images sampled for the statistics is readable")
        return moments


def read_header(path: str) -> tuple[int, int] | str:
    """(height, width) from an image file's header, or why it cannot be read (no pixels are decoded)."""
    try:
        with open_image(path) as img:
            width, height = img.size
            if width < 1 or height < 1 or not img.mode:
                return f"its header says {width}x{height}, mode {img.mode!r}"
            return height, width
    except CorruptImageError as err:
        return err.reason
    except DataNotFoundError:
        return "the file disappeared while the data set was loading"


def _read_header_chunk(paths: list[str]) -> list[tuple[int, int] | str]:
    return [read_header(path) for path in paths]


def read_headers(paths: Sequence[str]) -> list[tuple[int, int] | str]:
    """read_header of every path, in order: in this process for a few thousand files, else in chunks on one
    process a core (forked: they only open files with Pillow) behind a progress bar."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if len(paths) < _PARALLEL_HEADERS or cores < 2:
        return _read_header_chunk(list(paths))
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from rich.progress import Progress

    chunks = [list(paths[start:start + _HEADER_CHUNK]) for start in range(0, len(paths), _HEADER_CHUNK)]
    headers: list[tuple[int, int] | str] = []
    with Progress(transient=True) as progress, ProcessPoolExecutor(
            cores, mp_context=multiprocessing.get_context("fork")) as pool:
        task = progress.add_task(f"reading {len(paths):,} image headers", total=len(paths))
        for chunk_headers in pool.map(_read_header_chunk, chunks):
            headers += chunk_headers
            progress.advance(task, len(chunk_headers))
    return headers


def _shared_flags(count: int) -> Tensor:
    flags = torch.zeros(count, dtype=torch.bool)
    return flags.share_memory_() if count else flags


class SplitDataset(Dataset):
    """One split: a selection of a source's items, each through the split's transform. The one reading path
    of classification and segmentation (ImageDataset, SegmentationDataset).

    An item whose file turns out unreadable when decoded raises CorruptImageError naming it, or, with
    skip_bad, is marked in the source (so it is never decoded again, in any process) and the split's next
    readable item is given in its place: a batch keeps its size, and the source lists what was skipped."""

    def __init__(self, source: ImageSource, indices: Sequence[int] | np.ndarray, transform: Callable,
                 skip_bad: bool = False) -> None:
        self.source = source
        self.indices = np.asarray(indices, dtype=np.int64)
        self.transform = transform
        self.skip_bad = skip_bad

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int):
        count = len(self.indices)
        if not -count <= item < count:
            # The sequence protocol: `for image, label in split` and list(split) stop here (the skip_bad
            # wrap-around below must not turn an index past the end into an endless iteration).
            raise IndexError(f"image {item} of a split of {count}")
        item %= count
        for step in range(count):
            index = int(self.indices[(item + step) % count])
            if self.source.is_unreadable(index):
                continue
            try:
                return self.item(index)
            except CorruptImageError as err:
                if not self.skip_bad:
                    raise
                self.source.mark_unreadable(index, err)
        raise DataError(f"all {count} images of this split are unreadable: {self.source.unreadable_paths()[:3]}...")

    def item(self, index: int):
        """The item of the source's image `index` (a subclass says what an item is)."""
        return self.source.load(index, self.transform)

    def with_transform(self, transform: Callable) -> SplitDataset:
        """The same images through another transform (e.g. 10-crop testing); the pixels are shared."""
        return type(self)(self.source, self.indices, transform, self.skip_bad)


class ImageDataset(SplitDataset):
    """A classification split. Items are (float32 tensor, int label); `labels` gives all labels at once
    without reading images."""

    def item(self, index: int) -> tuple[Tensor, int]:
        return self.source.load(index, self.transform), int(self.source.labels[index])

    @property
    def labels(self) -> np.ndarray:
        return self.source.labels[self.indices]
