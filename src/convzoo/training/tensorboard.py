"""TensorBoard event files beside metrics.csv (never instead): `--tensorboard`, the optional extra
`convzoo[tensorboard]`.

Like metrics.csv, the event file is rewritten whole from the run's history after every epoch, through the
atomic writer: a run killed at any moment leaves the previous file, and a resumed run's file holds exactly the
epochs of the checkpoint it continued from. Every number of a metrics.csv row becomes a scalar named
`split/metric` (train/loss, val/top1_accuracy, ...; lr and speed under `run/`), its step the epoch.
`tensorboard --logdir RUN_FOLDER/tensorboard` shows them. Without the `tensorboard` package the run says so
once and goes on.
"""
from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Sequence

from rich.console import Console

from ..io import atomic_write_bytes

EVENT_FILE = "events.out.tfevents.convzoo"


def tensorboard_available(console: Console | None = None) -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        if console is not None:
            console.print("--tensorboard: the tensorboard package is not installed (pip install "
                          "'convzoo[tensorboard]'); skipping the event files, metrics.csv has the same figures",
                          markup=False, highlight=False, soft_wrap=True)
        return False
    return True


def _tag(key: str) -> str:
    for split in ("train", "val"):
        if key.startswith(split + "_"):
            return f"{split}/{key[len(split) + 1:]}"
    return f"run/{key}"


def write_event_file(history: Sequence[dict], folder: str | Path) -> Path:
    """The history as a TensorBoard event file in `folder` (written atomically, whole)."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.record_writer import RecordWriter

    buffer = io.BytesIO()
    records = RecordWriter(buffer)
    now = time.time()
    records.write(Event(wall_time=now, file_version="brain.Event:2").SerializeToString())
    for row in history:
        values = [Summary.Value(tag=_tag(key), simple_value=float(value)) for key, value in row.items()
                  if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool)]
        records.write(Event(wall_time=now, step=int(row["epoch"]), summary=Summary(value=values)).SerializeToString())
    return atomic_write_bytes(Path(folder) / EVENT_FILE, buffer.getvalue())
