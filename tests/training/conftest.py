"""A tiny real data set for training tests: an ImageFolder tree of PNG files with three classes of 12x12 grey
patterns (horizontal bar, vertical bar, cross) at random places and with noise, a train/ and a test/ split.
Small enough that a few epochs of LeNet-5 take well under a second, easy enough that it learns them."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

CLASSES = ("cross", "hbar", "vbar")


def pattern(kind: str, rng: np.random.Generator, size: int = 12) -> np.ndarray:
    image = rng.integers(0, 40, (size, size)).astype(np.uint8)
    row, col = rng.integers(3, size - 3, 2)
    if kind in ("hbar", "cross"):
        image[row - 1:row + 1, 1:size - 1] = 255
    if kind in ("vbar", "cross"):
        image[1:size - 1, col - 1:col + 1] = 255
    return image


def write_shapes(root: Path, per_class: dict[str, int], seed: int = 0) -> Path:
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, count in per_class.items():
        for kind in CLASSES:
            folder = root / split / kind
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                Image.fromarray(pattern(kind, rng)).save(folder / f"{i:03d}.png")
    return root


@pytest.fixture(scope="session")
def shapes(tmp_path_factory) -> Path:
    return write_shapes(tmp_path_factory.mktemp("shapes"), {"train": 24, "test": 8})


@pytest.fixture
def shapes_writer():
    return write_shapes


@pytest.fixture
def quiet() -> Console:
    """A console whose output goes nowhere (progress and epoch lines)."""
    return Console(file=io.StringIO(), width=200)


@pytest.fixture(scope="session")
def trained_run(shapes, tmp_path_factory) -> Path:
    """A finished run folder: LeNet-5, 4 epochs on the shapes (no explain/ gallery: tests/explain checks it)."""
    from convzoo.training import make_config, train

    out = tmp_path_factory.mktemp("trained") / "run"
    train(make_config("lenet5", data=str(shapes), out=str(out), epochs=4, batch_size=16, threads=1,
                      explain=False),
          console=Console(file=io.StringIO()))
    return out
