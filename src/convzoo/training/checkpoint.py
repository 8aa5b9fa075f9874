"""The run folder and the checkpoints in it.

    runs/lenet5-digits/
      config.json          everything needed to repeat the run: the resolved settings, the data, the versions
      metrics.csv          one row per epoch: learning rate, train and validation loss / top-1 / top-5
      results.json         the best checkpoint's metrics on the test split (top1_accuracy, top5_accuracy, ...)
      last.safetensors     the weights after the latest epoch
      best.safetensors     the weights of the epoch with the best validation metric
      resume.pt            model, optimizer and schedule state after the latest epoch, for --resume
      curves.png           learning curves;  confusion_matrix.png: the test split's confusion matrix
      worst_predictions.png  the test images with the highest loss (segmentation: the lowest IoU)
      lr_find.json/.png    the learning-rate finder's sweep and suggestion (--lr auto)
      tensorboard/         TensorBoard event file (--tensorboard), the same figures as metrics.csv

Every file is written atomically (temp file, fsync, rename), so a run killed at any moment leaves the previous
version of each file intact. resume.pt holds the model weights too: it is the one file --resume reads, so it
can never pair weights from one epoch with an optimizer state from another.

The safetensors checkpoints describe themselves: their metadata entry "convzoo" holds the network's name and
arguments, the class names, the input size, the normalisation and the border, so eval, predict and export
need nothing else.
"""
from __future__ import annotations

import csv
import io
import json
import math
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..errors import RunFolderError, WeightsError, WeightsFileNotFoundError
from ..io import atomic_write_bytes, atomic_write_text, read_json
from ..weights import read_state_dict, save_weights
from .tasks import Task, build_task

CHECKPOINT_FORMAT = 1
METADATA_KEY = "convzoo"


class RunFolder:
    """The files of one training run, by name."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.config = self.path / "config.json"
        self.metrics = self.path / "metrics.csv"
        self.results = self.path / "results.json"
        self.last = self.path / "last.safetensors"
        self.best = self.path / "best.safetensors"
        self.resume = self.path / "resume.pt"
        self.curves = self.path / "curves.png"
        self.confusion = self.path / "confusion_matrix.png"
        self.worst = self.path / "worst_predictions.png"
        self.lr_find_json = self.path / "lr_find.json"
        self.lr_find_png = self.path / "lr_find.png"
        self.tensorboard = self.path / "tensorboard"

    def holds_run(self) -> bool:
        return self.resume.is_file() or self.config.is_file()

    def write_config(self, config: dict) -> None:
        atomic_write_text(self.config, json.dumps(config, indent=2) + "\n")

    def read_config(self) -> dict:
        if not self.config.is_file():
            raise RunFolderError(f"{str(self.path)!r} holds no config.json: it is not a convzoo run folder")
        return read_json(self.config, fix="restore it from a copy, or train anew into another --out")

    def write_metrics(self, history: Sequence[dict]) -> None:
        """The whole table each time (a few hundred rows at most): after a resume it holds exactly the epochs of
        the checkpoint it continued from, never rows of epochs that were run again."""
        if not history:
            return
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=list(history[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(history)
        atomic_write_text(self.metrics, text.getvalue())

    def write_results(self, results: dict) -> None:
        atomic_write_text(self.results, json.dumps(results, indent=2) + "\n")

    def save_resume_state(self, state: dict) -> None:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        atomic_write_bytes(self.resume, buffer.getvalue())

    def load_resume_state(self) -> dict:
        if not self.resume.is_file():
            raise RunFolderError(
                f"nothing to resume in {str(self.path)!r}: it has no resume.pt (the run stopped before its first "
                f"epoch ended, or this is not a run folder)")
        try:
            # weights_only: tensors and plain containers only, so a tampered file cannot run code.
            state = torch.load(self.resume, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            raise RunFolderError(f"refusing {str(self.resume)!r}: it holds objects other than tensors and plain "
                                 f"values, and unpickling them could run code") from err
        except Exception as err:  # truncated, not a zip, random bytes
            raise RunFolderError(f"{str(self.resume)!r} is not readable (truncated or corrupt?): {err}") from err
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise RunFolderError(f"{str(self.resume)!r} is not a convzoo resume state (format {CHECKPOINT_FORMAT})")
        return state


def save_checkpoint(model: nn.Module, path: str | Path, description: dict) -> Path:
    """Save the weights with `description` (see `describe_checkpoint`) as the file's "convzoo" metadata."""
    return save_weights(model, path, {METADATA_KEY: json.dumps(description, allow_nan=True)})


def describe_checkpoint(model_args: dict, task: str, data: dict, epoch: int, metrics: dict) -> dict:
    """What a checkpoint needs to say so it can be used alone: the network (name and arguments), the task, the
    class names, the input size and normalisation it was trained with, and where it stands."""
    return {
        "format": CHECKPOINT_FORMAT,
        "model": model_args,
        "task": task,
        "classes": data["classes"],
        "input_size": data["input_size"],
        "mean": data["mean"],
        "std": data["std"],
        "border": data.get("border", 0),
        "data": {"source": data["source"], "kind": data.get("kind"), "val_split": data.get("val_split"),
                 "seed": data.get("seed", 0)},
        "epoch": epoch,
        "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)},
    }


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or a run folder (its best checkpoint)."""
    path = Path(path)
    if path.is_dir():
        run = RunFolder(path)
        if run.best.is_file():
            return run.best
        raise WeightsFileNotFoundError(
            f"{str(path)!r} is a folder without best.safetensors; give a checkpoint file or a finished run folder")
    if not path.exists():
        raise WeightsFileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    return path


def read_checkpoint_description(path: str | Path) -> dict:
    """The "convzoo" metadata of a checkpoint written by `convzoo train`. Reads the header only."""
    from safetensors import SafetensorError, safe_open

    path = resolve_checkpoint(path)
    with open(path, "rb") as f:
        head = f.read(9)
    # A safetensors file opens with the 8-byte length of a JSON header; anything else (a pickle, a zip of a
    # torch.save file) is refused here, before any loader could unpickle it.
    if len(head) < 9 or head[8:9] != b"{":
        raise WeightsError(f"{str(path)!r} is not a safetensors checkpoint; eval and predict read only checkpoints "
                           f"written by `convzoo train` (best.safetensors / last.safetensors)")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise WeightsError(f"{str(path)!r} is not a readable safetensors file (truncated or corrupt?): {err}") from err
    try:
        description = json.loads(metadata[METADATA_KEY])
    except (KeyError, json.JSONDecodeError):
        description = {}
    missing = [key for key in ("model", "classes", "input_size", "mean", "std") if key not in description]
    if missing:
        raise WeightsError(f"{str(path)!r} does not describe itself (no {', '.join(missing)} in its metadata): it "
                           f"was not written by `convzoo train`. Load bare weights with convzoo.load_weights.")
    return description


@dataclass
class Checkpoint:
    """A trained network with what it was trained on."""

    model: nn.Module
    path: Path
    description: dict

    @property
    def classes(self) -> list[str]:
        return list(self.description["classes"])

    @property
    def input_size(self) -> tuple[int, int, int]:
        return tuple(self.description["input_size"])

    @property
    def mean(self) -> tuple[float, ...]:
        return tuple(self.description["mean"])

    @property
    def std(self) -> tuple[float, ...]:
        return tuple(self.description["std"])

    @property
    def border(self) -> int:
        return int(self.description.get("border", 0))

    @property
    def name(self) -> str:
        return str(self.description["model"].get("name", "?"))

    @property
    def task(self) -> Task:
        return build_task(self.description.get("task", "classification"), self.classes)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> Checkpoint:
    """Build the network a checkpoint describes and load its weights into it, in eval mode.

    `path` is a .safetensors file written by `convzoo train`, or a run folder (its best.safetensors). A file
    that is not such a checkpoint, is truncated, or whose weights do not fit the network it names raises
    WeightsError, before any layer runs."""
    from ..registry import create_model

    path = resolve_checkpoint(path)
    description = read_checkpoint_description(path)
    model_args = dict(description["model"])
    name = model_args.pop("name", None)
    if not isinstance(name, str):
        raise WeightsError(f"{str(path)!r} does not name its network in its metadata")
    try:
        model = create_model(name, **model_args)
    except TypeError as err:
        raise WeightsError(f"{str(path)!r} describes {name} with arguments it does not take: {err}") from err
    num_classes = len(description["classes"])
    if model_args.get("num_classes", num_classes) != num_classes:
        raise WeightsError(f"{str(path)!r} is inconsistent: {num_classes} class names for a network with "
                           f"{model_args['num_classes']} outputs")
    # The file was saved from exactly this network, so every key and shape must match: no classifier dropped,
    # no first conv adapted (what load_weights does for other people's files), and no search for another
    # network, since the file names its own.
    state = read_state_dict(path)
    expected = model.state_dict()
    problems = {
        "missing keys": [key for key in expected if key not in state],
        "unexpected keys": [key for key in state if key not in expected],
        "mis-shaped keys": [f"{key} {tuple(tensor.shape)} in the file vs {tuple(expected[key].shape)} in {name}"
                            for key, tensor in state.items()
                            if key in expected and tensor.shape != expected[key].shape],
    }
    if any(problems.values()):
        listed = "; ".join(f"{kind} ({len(keys)}): {', '.join(keys[:4])}" + (", ..." if len(keys) > 4 else "")
                           for kind, keys in problems.items() if keys)
        raise WeightsError(f"the weights in {str(path)!r} do not fit {name} as its metadata describes it: {listed}")
    model.load_state_dict(state, strict=True)
    return Checkpoint(model=model.to(device).eval(), path=path, description=description)


def finite_or_none(value: Any) -> Any:
    """JSON has no NaN: a metric that is not a finite number is written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
