"""TensorBoard event files: the same figures as metrics.csv, or a message when tensorboard is missing."""
from __future__ import annotations

import builtins
import io

import pytest
from rich.console import Console

from convzoo.training.tensorboard import tensorboard_available, write_event_file

HISTORY = [{"epoch": 1, "lr": 0.1, "train_loss": 2.0, "val_top1_accuracy": 40.0, "better_weights": "raw"},
           {"epoch": 2, "lr": 0.05, "train_loss": 1.5, "val_top1_accuracy": 55.0, "better_weights": "ema"}]


def test_the_event_file_holds_every_number_of_the_history(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    path = write_event_file(HISTORY, tmp_path / "tb")
    events = EventAccumulator(str(path.parent))
    events.Reload()
    assert sorted(events.Tags()["scalars"]) == ["run/lr", "train/loss", "val/top1_accuracy"]
    assert [(e.step, e.value) for e in events.Scalars("val/top1_accuracy")] == [(1, 40.0), (2, 55.0)]
    write_event_file(HISTORY[:1], tmp_path / "tb")  # rewritten whole: a resumed run's epochs only
    events = EventAccumulator(str(path.parent))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [1]


def test_without_tensorboard_the_run_says_so_and_goes_on(monkeypatch):
    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name == "tensorboard" or name.startswith("tensorboard."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    console = Console(file=io.StringIO(), width=300)
    assert not tensorboard_available(console)
    assert "pip install 'convzoo[tensorboard]'" in console.file.getvalue()
