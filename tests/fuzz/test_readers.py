"""Every file reader against random bytes and random mutations of a valid file (flipped bytes, a cut, an
insertion): it loads, or raises a named convzoo error; never another exception, never a hang."""
from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

import convzoo
from convzoo.data.datasets import decode_image
from convzoo.data.segmentation import load_mask, voc_palette
from convzoo.data.sources import read_idx, read_source
from convzoo.errors import ConvzooError
from convzoo.models.classification.nas import EXAMPLE_SPEC, load_spec
from convzoo.training import load_checkpoint
from convzoo.training.checkpoint import RunFolder, describe_checkpoint
from convzoo.training.engine import resumed_config

from .conftest import fuzz_settings, time_limit


def _png(array: np.ndarray, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image = Image.fromarray(array)
    if kwargs.pop("palette", False):
        image = image.convert("P")
        image.putpalette(voc_palette().flatten().tolist())
    image.save(buffer, format=kwargs.pop("format", "PNG"), **kwargs)
    return buffer.getvalue()


def _valid_files() -> dict[str, bytes]:
    """One small valid file of each kind a reader takes (made here, seeded)."""
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    from safetensors.torch import save as save_safetensors

    model = convzoo.create_model("lenet5")
    weights = save_safetensors({k: v.contiguous() for k, v in model.state_dict().items()},
                               metadata={"convzoo": json.dumps(describe_checkpoint(
                                   {"name": "lenet5", "num_classes": 10, "in_chans": 1}, "classification",
                                   {"classes": [str(i) for i in range(10)], "input_size": [1, 32, 32],
                                    "mean": [0.5], "std": [0.5], "source": "digits"}, epoch=1, metrics={}))})
    resume = io.BytesIO()
    torch.save({"format": 1, "epoch": 1, "model": {"w": torch.ones(3)}, "history": [{"epoch": 1}]}, resume)
    config = {"config": {"model": "lenet5", "data": "digits", "epochs": 2, "lr": 0.01, "batch_size": 16},
              "data": {"classes": [str(i) for i in range(10)]}}
    spec = {**EXAMPLE_SPEC, "layers": [{**layer, "num_filters": 2} for layer in EXAMPLE_SPEC["layers"]]}
    images = rng.integers(0, 256, (3, 8, 8), dtype=np.uint8)
    idx = bytes([0, 0, 8, 3]) + np.array(images.shape, dtype=">u4").tobytes() + images.tobytes()
    cifar = (np.concatenate([rng.integers(0, 10, (2, 1)), rng.integers(0, 256, (2, 3072))], axis=1)
             .astype(np.uint8).tobytes())
    return {"safetensors": weights, "resume": resume.getvalue(), "config": json.dumps(config).encode(),
            "spec": json.dumps(spec).encode(), "idx": idx, "idx.gz": gzip.compress(idx, mtime=0), "cifar": cifar,
            "png": _png(rng.integers(0, 256, (9, 7, 3), dtype=np.uint8)),
            "jpeg": _png(rng.integers(0, 256, (9, 7, 3), dtype=np.uint8), format="JPEG"),
            "mask": _png(rng.integers(0, 3, (6, 5), dtype=np.uint8), palette=True)}


VALID = _valid_files()


def _read(kind: str, data: bytes, folder: Path) -> None:
    """Write `data` where the reader of `kind` looks and read it."""
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "safetensors":
        (folder / "w.safetensors").write_bytes(data)
        convzoo.load_weights(convzoo.create_model("lenet5"), folder / "w.safetensors")
        load_checkpoint(folder / "w.safetensors")
    elif kind == "resume":
        (folder / "resume.pt").write_bytes(data)
        RunFolder(folder).load_resume_state()
    elif kind == "config":
        (folder / "config.json").write_bytes(data)
        resumed_config(folder)
    elif kind == "spec":
        (folder / "spec.json").write_bytes(data)
        load_spec(folder / "spec.json")  # validation only: a mutated spec may ask for a huge network
    elif kind.startswith("idx"):
        suffix = ".gz" if kind.endswith(".gz") else ""
        (folder / f"x{suffix}").write_bytes(data)
        read_idx(folder / f"x{suffix}")
    elif kind == "cifar":
        for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
            (folder / name).write_bytes(data)
        read_source(str(folder), channels=3, min_shorter_side=1)
    elif kind in ("png", "jpeg"):
        (folder / f"image.{kind}").write_bytes(data)
        decode_image(folder / f"image.{kind}", channels=3)
    elif kind == "mask":
        (folder / "mask.png").write_bytes(data)
        load_mask(folder / "mask.png")


def test_every_valid_file_reads(tmp_path):
    """The mutations below start from files the readers accept."""
    for kind, data in VALID.items():
        _read(kind, data, tmp_path / kind)


@st.composite
def mutated(draw, kind: str) -> bytes:
    data = bytearray(VALID[kind])
    for _ in range(draw(st.integers(1, 4))):
        how = draw(st.sampled_from(["flip", "cut", "insert", "zero-run"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if how == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif how == "cut":
            del data[at:at + draw(st.integers(1, max(len(data) - at, 1)))]
        elif how == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:
            data[at:at + 8] = bytes(8) if draw(st.booleans()) else b"\xff" * 8
    return bytes(data)


def _loads_or_names_the_problem(kind: str, data: bytes, folder: Path) -> None:
    with time_limit(10):
        try:
            _read(kind, data, folder)
        except ConvzooError:
            pass


@pytest.mark.parametrize("kind", sorted(VALID))
@fuzz_settings(examples=40)
@given(data=st.data())
def test_a_mutated_file_loads_or_raises_a_named_error(kind, data, tmp_path_factory):
    folder = tmp_path_factory.mktemp(kind.replace(".", "_"))
    _loads_or_names_the_problem(kind, data.draw(mutated(kind)), folder)


@pytest.mark.parametrize("kind", sorted(VALID))
@fuzz_settings(examples=15)
@given(noise=st.binary(max_size=600))
def test_random_bytes_raise_a_named_error(kind, noise, tmp_path_factory):
    folder = tmp_path_factory.mktemp(kind.replace(".", "_"))
    _loads_or_names_the_problem(kind, noise, folder)
