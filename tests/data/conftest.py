"""Builders of tiny but real data sets on disk: IDX files with real headers, CIFAR binary records, ImageFolder
trees of PNG/JPEG files written by Pillow."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def write_idx(path: Path, array: np.ndarray) -> Path:
    """The IDX format: two zero bytes, type code 0x08 (unsigned byte), rank, big-endian sizes, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


@pytest.fixture
def idx_writer():
    return write_idx


@pytest.fixture
def mnist_folder(tmp_path):
    """make(folder_name, gz, per_class): an MNIST-style IDX folder whose image i is filled with its label * 20,
    so a test can tell images apart and check labels travel with them."""

    def make(name: str = "mnist", gz: bool = False, train_per_class: int = 10, test_per_class: int = 2) -> Path:
        folder = tmp_path / name
        suffix = ".gz" if gz else ""
        for prefix, per_class in (("train", train_per_class), ("t10k", test_per_class)):
            labels = np.repeat(np.arange(10), per_class).astype(np.uint8)
            images = np.broadcast_to((labels * 20)[:, None, None], (len(labels), 28, 28)).copy()
            write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images)
            write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
        return folder

    return make


def cifar_records(labels: list[int], fine: bool = False) -> bytes:
    """CIFAR binary records; image i has its red plane = 10 * label, green = 100, blue = 200."""
    out = bytearray()
    for label in labels:
        out += bytes([label // 5, label]) if fine else bytes([label])
        out += bytes([10 * label % 256]) * 1024 + bytes([100]) * 1024 + bytes([200]) * 1024
    return bytes(out)


@pytest.fixture
def cifar10_folder(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    for batch in range(1, 6):
        (folder / f"data_batch_{batch}.bin").write_bytes(cifar_records(list(range(10))))
    (folder / "test_batch.bin").write_bytes(cifar_records([3, 7]))
    (folder / "batches.meta.txt").write_text("\n".join(
        ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]) + "\n\n")
    return folder


@pytest.fixture
def cifar100_folder(tmp_path):
    folder = tmp_path / "cifar-100-binary"
    folder.mkdir()
    (folder / "train.bin").write_bytes(cifar_records(list(range(100)) * 2, fine=True))
    (folder / "test.bin").write_bytes(cifar_records([42, 99], fine=True))
    (folder / "fine_label_names.txt").write_text("\n".join(f"fine{i}" for i in range(100)))
    return folder


def save_image(path: Path, value: int, size: tuple[int, int] = (12, 10), mode: str = "RGB") -> Path:
    """A flat image of `value` (grey) or (value, 0, 255 - value) (colour), `size` = (width, height)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    colour = value if mode == "L" else (value, 0, 255 - value)
    Image.new(mode, size, colour).save(path)
    return path


@pytest.fixture
def image_tree(tmp_path):
    """make({"train/cat": 3, "train/dog": 2, ...}): a new tree of PNG files; an image of class k has value 40 * k."""
    trees = []

    def make(counts: dict[str, int], mode: str = "RGB", ext: str = ".png") -> Path:
        root = tmp_path / f"tree{len(trees)}"
        trees.append(root)
        for folder, count in counts.items():
            class_index = sorted({f.rsplit("/", 1)[-1] for f in counts}).index(folder.rsplit("/", 1)[-1])
            (root / folder).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                save_image(root / folder / f"img{i}{ext}", 40 * class_index, mode=mode)
        return root

    return make
