"""Readers for each kind of data set convzoo understands. Each returns a `RawData`: the class names and the
images of the train split, and of the val and test splits where the data set defines them.

    "digits"          scikit-learn's handwritten digits (1797 grey 8x8 images), embedded in the package
    MNIST IDX folder  train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-... (raw or .gz); Fashion-MNIST
                      has the same file names and is recognised by "fashion" in its path
    CIFAR folder      the binary version: data_batch_1..5.bin + test_batch.bin (CIFAR-10) or
                      train.bin + test.bin (CIFAR-100, fine labels)
    ImageFolder       one folder per class, either directly or under train/ (+ val/, test/)
"""
from __future__ import annotations

import gzip
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import DataError, DataNotFoundError
from .datasets import ArrayImages, ImageFiles, ImageSource

DIGITS_CLASSES = [str(d) for d in range(10)]
# load_digits stores pixel counts 0..16: each 8x8 pixel counts the set pixels of a 4x4 block of a 32x32 bitmap.
DIGITS_MAX_VALUE = 16
# Every fifth image of each class is the digits test split: fixed (like MNIST's official test set, it does
# not move with the seed, so results stay comparable), stratified, and independent of any RNG.
DIGITS_TEST_EVERY = 5

FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR_IMAGE_BYTES = 3 * 32 * 32

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                              ".pgm", ".pbm"})

_IDX_NAME = re.compile(r"^(train|t10k)-(images|labels)[-.]idx[13]-ubyte(\.gz)?$")
_IDX_UNSIGNED_BYTE = 0x08


@dataclass
class RawData:
    kind: str
    classes: list[str]
    train: ImageSource
    val: ImageSource | None = None
    test: ImageSource | None = None


def read_source(source: str, channels: int, min_shorter_side: int) -> RawData:
    """Recognise `source` ("digits" or a folder) and read it. Image files are listed, not yet decoded."""
    if source == "digits":
        return read_digits(channels)
    path = Path(source).expanduser()
    if not path.exists():
        raise DataNotFoundError(f"data path {source!r} does not exist; give 'digits' or a folder holding an "
                                f"ImageFolder tree, MNIST IDX files or CIFAR binary files")
    if not path.is_dir():
        raise DataNotFoundError(f"data path {source!r} is a file; give the folder that holds the data set")
    for folder in (path, path / "raw", path / "cifar-10-batches-bin", path / "cifar-100-binary"):
        if (folder / "data_batch_1.bin").is_file():
            return read_cifar10(folder, channels)
        if (folder / "train.bin").is_file() and (folder / "test.bin").is_file():
            return read_cifar100(folder, channels)
        if _idx_files(folder):
            return read_idx_folder(folder, channels)
    return read_image_folder(path, channels, min_shorter_side)


def read_digits(channels: int) -> RawData:
    with resources.files("convzoo.data").joinpath("digits.npz").open("rb") as f:
        with np.load(f) as stored:
            images, labels = stored["images"], stored["labels"].astype(np.int64)
    is_test = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        is_test[members[DIGITS_TEST_EVERY - 1::DIGITS_TEST_EVERY]] = True
    grey = images[:, None]  # N x 1 x 8 x 8

    def split(mask: np.ndarray) -> ArrayImages:
        return ArrayImages(grey[mask], labels[mask], DIGITS_MAX_VALUE, channels)

    return RawData("digits", DIGITS_CLASSES, train=split(~is_test), test=split(is_test))


def _idx_files(folder: Path) -> dict[tuple[str, str], Path]:
    """{("train"|"t10k", "images"|"labels"): path} for the IDX files in `folder`."""
    if not folder.is_dir():
        return {}
    found = {}
    for path in folder.iterdir():
        match = _IDX_NAME.match(path.name)
        if match and path.is_file():
            found[(match.group(1), match.group(2))] = path
    return found


def read_idx(path: Path) -> np.ndarray:
    """An IDX array (the MNIST format: big-endian header of magic and sizes, then the bytes), raw or gzipped."""
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as f:
            data = bytearray(f.read())  # writable, so the tensors made from it own ordinary memory
    except (OSError, EOFError) as err:
        raise DataError(f"cannot read IDX file {str(path)!r}: {err}") from err
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != _IDX_UNSIGNED_BYTE:
        raise DataError(f"{str(path)!r} is not an IDX file of unsigned bytes (bad magic number {data[:4].hex()})")
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = tuple(int(n) for n in np.frombuffer(data[4:header], dtype=">u4"))
    if len(shape) != ndim or len(data) != header + int(np.prod(shape)):
        raise DataError(f"IDX file {str(path)!r} is truncated or has extra bytes: its header says {shape}, "
                        f"that is {header + int(np.prod(shape))} bytes, the file has {len(data)}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def read_idx_folder(folder: Path, channels: int) -> RawData:
    files = _idx_files(folder)
    arrays = {}
    for split in ("train", "t10k"):
        for part in ("images", "labels"):
            if (split, part) not in files:
                raise DataNotFoundError(f"{str(folder)!r} holds MNIST IDX files but not {split}-{part}-idx"
                                        f"{3 if part == 'images' else 1}-ubyte (raw or .gz)")
            arrays[split, part] = read_idx(files[split, part])
    for split in ("train", "t10k"):
        images, labels = arrays[split, "images"], arrays[split, "labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(f"{str(files[split, 'images'])!r} ({images.shape}) and {str(files[split, 'labels'])!r} "
                            f"({labels.shape}) do not form a set of grey images and their labels")
    fashion = any("fashion" in part.lower() for part in folder.resolve().parts)
    classes = FASHION_MNIST_CLASSES if fashion else DIGITS_CLASSES
    _check_labels(np.concatenate([arrays["train", "labels"], arrays["t10k", "labels"]]), classes, folder)

    def source(split: str) -> ArrayImages:
        return ArrayImages(arrays[split, "images"][:, None], arrays[split, "labels"].astype(np.int64), 255, channels)

    return RawData("fashion-mnist" if fashion else "mnist", classes, train=source("train"), test=source("t10k"))


def _read_cifar_records(paths: list[Path], label_offset: int, record_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for path in paths:
        data = np.fromfile(path, dtype=np.uint8)
        if data.size == 0 or data.size % record_bytes:
            raise DataError(f"CIFAR file {str(path)!r} is truncated: {data.size} bytes is not a whole number "
                            f"of {record_bytes}-byte records")
        records = data.reshape(-1, record_bytes)
        labels.append(records[:, label_offset].astype(np.int64))
        images.append(records[:, record_bytes - CIFAR_IMAGE_BYTES:].reshape(-1, 3, 32, 32))
    return np.concatenate(images), np.concatenate(labels)


def _class_names(path: Path, default: list[str]) -> list[str]:
    if not path.is_file():
        return default
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return names if len(names) == len(default) else default


def read_cifar10(folder: Path, channels: int) -> RawData:
    train_files = [folder / f"data_batch_{i}.bin" for i in range(1, 6)]
    missing = [p.name for p in train_files + [folder / "test_batch.bin"] if not p.is_file()]
    if missing:
        raise DataNotFoundError(f"{str(folder)!r} looks like CIFAR-10 but lacks {', '.join(missing)}")
    # Record: 1 label byte, then 3072 bytes of red, green and blue 32x32 planes.
    classes = _class_names(folder / "batches.meta.txt", CIFAR10_CLASSES)
    return _cifar("cifar10", classes, folder, train_files, [folder / "test_batch.bin"], 0, 1 + CIFAR_IMAGE_BYTES,
                  channels)


def read_cifar100(folder: Path, channels: int) -> RawData:
    # Record: coarse label byte, fine label byte, 3072 image bytes; the 100 fine labels are the classes.
    classes = _class_names(folder / "fine_label_names.txt", [str(i) for i in range(100)])
    return _cifar("cifar100", classes, folder, [folder / "train.bin"], [folder / "test.bin"], 1,
                  2 + CIFAR_IMAGE_BYTES, channels)


def _cifar(kind: str, classes: list[str], folder: Path, train_files: list[Path], test_files: list[Path],
           label_offset: int, record_bytes: int, channels: int) -> RawData:
    train_images, train_labels = _read_cifar_records(train_files, label_offset, record_bytes)
    test_images, test_labels = _read_cifar_records(test_files, label_offset, record_bytes)
    _check_labels(np.concatenate([train_labels, test_labels]), classes, folder)
    return RawData(kind, classes, train=ArrayImages(train_images, train_labels, 255, channels),
                   test=ArrayImages(test_images, test_labels, 255, channels))


def _check_labels(labels: np.ndarray, classes: list[str], where: Path) -> None:
    if labels.size and labels.max() >= len(classes):
        raise DataError(f"{str(where)!r} has label {labels.max()} but the data set has {len(classes)} classes")


def read_image_folder(root: Path, channels: int, min_shorter_side: int) -> RawData:
    """root/<class>/... or root/train/<class>/... with optional root/val/ and root/test/ (same classes)."""
    split_roots = {name: root / name for name in ("train", "val", "test") if (root / name).is_dir()}
    if "train" not in split_roots:
        if split_roots:
            raise DataError(f"{str(root)!r} has {' and '.join(n + '/' for n in split_roots)} but no train/ folder")
        split_roots = {"train": root}
    classes = _class_folders(split_roots["train"])
    sources = {}
    for split, split_root in split_roots.items():
        if split != "train" and _class_folders(split_root) != classes:
            raise DataError(
                f"the classes of {str(split_root)!r} ({', '.join(_class_folders(split_root))}) differ from "
                f"those of {str(split_roots['train'])!r} ({', '.join(classes)}); every split needs the same "
                f"class folders")
        paths, labels = [], []
        for label, name in enumerate(classes):
            files = _image_files(split_root / name)
            if not files:
                raise DataError(f"class folder {str(split_root / name)!r} holds no images (looked for "
                                f"{', '.join(sorted(IMAGE_EXTENSIONS))}); add images or remove the folder")
            paths += files
            labels += [label] * len(files)
        sources[split] = ImageFiles(paths, labels, channels, min_shorter_side)
    return RawData("imagefolder", classes, train=sources["train"], val=sources.get("val"), test=sources.get("test"))


def _class_folders(root: Path) -> list[str]:
    # Sorted by name, as torchvision's ImageFolder does, so class indices agree with it.
    names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not names:
        raise DataNotFoundError(
            f"no data set found in {str(root)!r}: expected one folder per class (an ImageFolder tree, optionally "
            f"under train/ and val/), MNIST IDX files, or CIFAR binary files")
    return names


def _image_files(folder: Path) -> list[str]:
    # os.walk lists each directory once (scandir: no stat a file), which matters at a million files.
    found = []
    for directory, _, names in os.walk(folder):
        found += [os.path.join(directory, name) for name in names
                  if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS]
    return sorted(found)
