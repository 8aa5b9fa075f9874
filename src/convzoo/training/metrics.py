"""Classification metrics as the papers report them: top-1 and top-5 accuracy and error (in percent), the
loss, per-class accuracy and the confusion matrix; and the two pictures of a run (learning curves,
confusion matrix).

A meter only adds counts, so the counts of several processes (distributed training) or several batches sum
to the counts of the whole split; every ratio is taken once, at the end.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..io import atomic_write_bytes

TOP_K = 5


class ClassificationMeter:
    """Accumulates, over batches, the summed cross-entropy, the top-1 and top-k hits and the confusion matrix
    (rows: true class, columns: predicted class)."""

    def __init__(self, num_classes: int, top_k: int = TOP_K) -> None:
        self.num_classes = num_classes
        # With fewer classes than k, every image is a top-k hit: top-k over all classes.
        self.top_k = min(top_k, num_classes)
        self.loss_sum = torch.zeros((), dtype=torch.float64)
        self.top_k_hits = torch.zeros((), dtype=torch.int64)
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    @torch.no_grad()
    def update(self, logits: Tensor, targets: Tensor) -> None:
        """Add a batch: logits N x classes (from the network), targets N class indices. The loss counted is
        plain cross-entropy (no label smoothing), so training and validation losses compare."""
        logits, targets = logits.detach().float().cpu(), targets.detach().cpu()
        self.loss_sum += F.cross_entropy(logits, targets, reduction="sum").double()
        top = logits.topk(self.top_k, dim=1).indices
        self.top_k_hits += (top == targets[:, None]).any(dim=1).sum()
        self.confusion += torch.bincount(targets * self.num_classes + top[:, 0],
                                         minlength=self.num_classes ** 2).view(self.num_classes, self.num_classes)

    def sum_across(self, reduce_sum: Callable[[Tensor], Tensor]) -> None:
        """Replace the counts with their sum over processes; `reduce_sum` sums a tensor across them."""
        packed = torch.cat([self.loss_sum.view(1), self.top_k_hits.double().view(1),
                            self.confusion.double().flatten()])
        packed = reduce_sum(packed)
        self.loss_sum = packed[0]
        self.top_k_hits = packed[1].round().long()
        self.confusion = packed[2:].round().long().view(self.num_classes, self.num_classes)

    @property
    def count(self) -> int:
        return int(self.confusion.sum())

    @property
    def mean_loss(self) -> float:
        return float(self.loss_sum) / max(self.count, 1)

    @property
    def top1_accuracy(self) -> float:
        return 100.0 * int(self.confusion.diagonal().sum()) / max(self.count, 1)

    def compute(self, class_names: Sequence[str] | None = None) -> dict:
        """Loss, accuracies and errors in percent, per-class accuracy (percent; None for a class with no
        images) and the confusion matrix, as plain Python values (JSON-able)."""
        count = max(self.count, 1)
        top1 = self.top1_accuracy
        top5 = 100.0 * int(self.top_k_hits) / count
        names = list(class_names) if class_names is not None else [str(i) for i in range(self.num_classes)]
        per_class_total = self.confusion.sum(dim=1)
        per_class = {
            name: (100.0 * int(self.confusion[i, i]) / int(per_class_total[i]) if per_class_total[i] else None)
            for i, name in enumerate(names)
        }
        return {
            "loss": self.mean_loss,
            "top1_accuracy": top1,
            "top5_accuracy": top5,
            "top1_error": 100.0 - top1,
            "top5_error": 100.0 - top5,
            "images": self.count,
            "per_class_accuracy": per_class,
            "confusion_matrix": self.confusion.tolist(),
        }


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed (CI, servers)
    import matplotlib.pyplot as plt

    return plt


def plot_confusion_matrix(confusion: Sequence[Sequence[int]], class_names: Sequence[str], path: str | Path,
                          title: str = "confusion matrix") -> Path:
    """Draw the confusion matrix (rows: true class, columns: predicted) with its counts, to a PNG."""
    plt = _pyplot()
    matrix = torch.as_tensor(confusion)
    size = max(4.0, 0.45 * len(class_names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix.numpy(), cmap="Blues")
    ticks = range(len(class_names))
    ax.set_xticks(ticks, labels=class_names, rotation=90)
    ax.set_yticks(ticks, labels=class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    if len(class_names) <= 30:  # beyond that the numbers no longer fit their cells
        peak = int(matrix.max()) if matrix.numel() else 0
        for i in ticks:
            for j in ticks:
                value = int(matrix[i, j])
                if value:
                    ax.text(j, i, str(value), ha="center", va="center", fontsize=8,
                            color="white" if value > peak / 2 else "black")
    fig.tight_layout()
    return _save_figure(fig, path)


def plot_learning_curves(history: Sequence[dict], path: str | Path, title: str = "",
                         metric: str = "top1_accuracy", metric_label: str = "top-1 accuracy (%)") -> Path:
    """Loss and `metric` (a task's primary metric) of the training and validation splits against the epoch,
    to a PNG."""
    plt = _pyplot()
    epochs = [row["epoch"] for row in history]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for split, style in (("train", "-o"), ("val", "-s")):
        loss_ax.plot(epochs, [row[f"{split}_loss"] for row in history], style, label=split, markersize=3)
        # A metric no class defined (None: mIoU of an empty split) is a gap in the curve.
        values = [float("nan") if row[f"{split}_{metric}"] is None else row[f"{split}_{metric}"] for row in history]
        acc_ax.plot(epochs, values, style, label=split, markersize=3)
    loss_ax.set_ylabel("cross-entropy loss")
    acc_ax.set_ylabel(metric_label)
    for ax in (loss_ax, acc_ax):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save_figure(fig, path)


def _save_figure(fig, path: str | Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    _pyplot().close(fig)
    return atomic_write_bytes(path, buffer.getvalue())
