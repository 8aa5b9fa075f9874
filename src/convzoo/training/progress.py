"""What a training run shows while it runs: a progress bar with the loss, the task's running score (top-1
accuracy, mean IoU), images per second and the time left when the output is a terminal; one plain line per
epoch always (what a CI log keeps)."""
from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


class EpochProgress:
    """The progress of one epoch's training steps. Disabled (silent) on processes other than rank 0 and when
    the console is not a terminal."""

    def __init__(self, console: Console, epoch: int, epochs: int, steps: int, enabled: bool) -> None:
        self.console = console
        self.steps = steps
        self.enabled = enabled and console.is_terminal
        self.images = 0
        self.started = time.perf_counter()
        self._progress: Progress | None = None
        self._task = None
        self._description = f"epoch {epoch + 1}/{epochs}"

    def __enter__(self) -> EpochProgress:
        self.started = time.perf_counter()
        if self.enabled:
            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]:.4f}  {task.fields[score]}  "
                           "{task.fields[rate]:.0f} img/s"),
                TimeRemainingColumn(), console=self.console, transient=True)
            self._progress.start()
            self._task = self._progress.add_task(self._description, total=self.steps, loss=0.0,
                                                 score="", rate=0.0)
        return self

    def advance(self, images: int, loss: float, score: str) -> None:
        """One step done: its images, its loss and the task's running score as text (e.g. "acc 97.50%")."""
        self.images += images
        if self._progress is not None:
            self._progress.update(self._task, advance=1, loss=loss, score=score, rate=self.images_per_second)

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started

    @property
    def images_per_second(self) -> float:
        return self.images / max(self.seconds, 1e-9)

    def __exit__(self, *exc_info) -> None:
        if self._progress is not None:
            self._progress.stop()


def epoch_line(row: dict, epochs: int, is_best: bool, metrics_text: str) -> str:
    """The one-line summary of an epoch; `metrics_text` is the task's account of its losses and metrics."""
    return (f"epoch {row['epoch']}/{epochs}  {metrics_text}  "
            f"lr {row['lr']:.3g}  {row['images_per_second']:.0f} img/s  {row['epoch_seconds']:.1f} s"
            + ("  *best" if is_best else ""))
