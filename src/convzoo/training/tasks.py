"""A task is what the engine needs to know about a problem: the loss to minimise, the meter that measures
the network on a split, the metric that picks the best epoch, and how to read a prediction out of the
network's output. Classification is the one task today; segmentation plugs in with its own loss, metric
(mean IoU) and per-pixel prediction, and the engine does not change."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import torch.nn.functional as F
from torch import Tensor

from .metrics import ClassificationMeter


class Meter(Protocol):
    count: int

    def update(self, outputs: Tensor, targets: Tensor) -> None: ...
    def sum_across(self, reduce_sum) -> None: ...
    def compute(self, class_names: Sequence[str] | None = None) -> dict: ...


class Task(Protocol):
    name: str
    classes: list[str]
    primary_metric: str     # the metric that picks the best checkpoint and drives reduce-on-plateau
    higher_is_better: bool

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor: ...
    def meter(self) -> Meter: ...
    def probabilities(self, outputs: Tensor) -> Tensor: ...


@dataclass
class Classification:
    """Softmax cross-entropy (optionally label-smoothed, Szegedy et al. 2016) over `classes`; judged by top-1
    accuracy, as the papers judge networks by top-1/top-5 error."""

    classes: list[str]
    label_smoothing: float = 0.0
    name: str = "classification"
    primary_metric: str = "top1_accuracy"
    higher_is_better: bool = True

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        # In float32 even under bf16 autocast: the log-sum-exp of a large logit range needs the precision.
        return F.cross_entropy(outputs.float(), targets, label_smoothing=self.label_smoothing)

    def meter(self) -> ClassificationMeter:
        return ClassificationMeter(len(self.classes))

    def probabilities(self, outputs: Tensor) -> Tensor:
        return outputs.float().softmax(dim=-1)

    def top(self, probabilities: Tensor, k: int) -> list[list[tuple[str, float]]]:
        """The k most probable classes of each image, as (class name, probability) pairs, most probable first."""
        values, indices = probabilities.topk(min(k, len(self.classes)), dim=-1)
        return [[(self.classes[i], float(p)) for p, i in zip(row_p.tolist(), row_i.tolist())]
                for row_p, row_i in zip(values, indices)]


def build_task(name: str, classes: Sequence[str], label_smoothing: float = 0.0) -> Task:
    if name == "classification":
        return Classification(list(classes), label_smoothing=label_smoothing)
    raise ValueError(f"unknown task {name!r}; the engine knows: classification")

