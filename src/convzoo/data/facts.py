"""What can be known about a data source without loading it: its number of classes (when fixed), the size of its
segmentation images, and the bytes it will hold in memory. The training engine reads these before anything is
loaded: to choose a segmentation network's input size (the data's own) and to estimate the run's memory."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .datasets import read_headers
from .segmentation import DIGITS_SEG_CANVAS, DIGITS_SEG_CLASSES, IMAGE_EXTENSIONS, _pair_roots, _read_ids, _voc_root
from .sources import DIGITS_CLASSES

# digits-seg: about 1,800 source digits, each on 3 canvases of 2-4 digits; an image and a mask byte a pixel.
_DIGITS_SEG_CANVASES = 1800 * 3 // 3
# A gzipped IDX file holds about this many times its size once read.
_GZIP_RATIO = 8


@dataclass(frozen=True)
class SourceFacts:
    num_classes: int | None             # None: known only once the data is read (folders)
    image_size: tuple[int, int] | None  # segmentation sources: the largest training image (H, W)
    memory_bytes: int                   # the raw images held in memory (file-backed folders: none)


def source_facts(source: str) -> SourceFacts:
    """Facts about `source` ("digits", "digits-seg" or a folder) from names and file headers only."""
    from .segmentation import is_segmentation_source

    if source == "digits":
        return SourceFacts(len(DIGITS_CLASSES), None, 1797 * 8 * 8 * 8)
    if source == "digits-seg":
        side = DIGITS_SEG_CANVAS
        return SourceFacts(len(DIGITS_SEG_CLASSES), (side, side), _DIGITS_SEG_CANVASES * side * side * 2)
    path = Path(source).expanduser()
    if not path.is_dir():
        return SourceFacts(None, None, 0)  # load_data names the problem
    if is_segmentation_source(source):
        return SourceFacts(None, segmentation_image_size(path), 0)
    return SourceFacts(None, None, _array_file_bytes(path))


def segmentation_image_size(path: Path) -> tuple[int, int] | None:
    """The largest height and width among a segmentation folder's training images (from their headers)."""
    voc = _voc_root(path)
    if voc is not None:
        listed = voc / "ImageSets" / "Segmentation" / "train.txt"
        images = [voc / "JPEGImages" / f"{i}.jpg" for i in _read_ids(listed)] if listed.is_file() else []
    else:
        roots = _pair_roots(path) or {}
        folder = roots["train"] / "images" if "train" in roots else None
        images = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS] if folder else []
    # Unreadable headers are load_data's to name; the size comes from the readable ones.
    headers = read_headers([str(p) for p in images if p.is_file()])
    sizes = np.array([header for header in headers if not isinstance(header, str)], dtype=np.int64)
    if not len(sizes):
        return None
    return int(sizes[:, 0].max()), int(sizes[:, 1].max())


def _array_file_bytes(path: Path) -> int:
    """Bytes of the array files (MNIST IDX, CIFAR binaries) where read_source looks for them: read whole into
    memory. Image files are decoded one at a time and hold nothing."""
    total = 0
    for folder in (path, path / "raw", path / "cifar-10-batches-bin", path / "cifar-100-binary"):
        try:
            entries = list(folder.iterdir()) if folder.is_dir() else []
        except OSError:
            continue
        for entry in entries:
            if entry.is_file() and entry.suffix.lower() not in IMAGE_EXTENSIONS and (
                    "idx" in entry.name or entry.suffix == ".bin"):
                total += entry.stat().st_size * (_GZIP_RATIO if entry.suffix == ".gz" else 1)
    return total
