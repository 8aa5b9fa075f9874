"""A task is what the engine needs to know about a problem: the loss to minimise, the meter that measures
the network on a split, the metric that picks the best epoch, how to read a prediction out of the network's
output, and how to show the numbers (the progress bar, the epoch line, the columns of metrics.csv, the
learning curves). The engine calls only these, so classification and segmentation share one loop."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from ..data.segmentation import SEGMENTATION_KINDS, is_segmentation_source
from ..errors import DataError
from ..protocol import main_output
from .error_analysis import classification_errors, segmentation_errors
from .losses import CEDiceLoss
from .metrics import ClassificationMeter
from .segmentation_metrics import SegmentationMeter

TASKS = ("classification", "segmentation")


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
    row_metrics: tuple[str, ...]  # the metrics of each split that go into metrics.csv, after "loss"
    curve_label: str              # the y label of the primary metric's learning curve
    unit: str                     # of the accuracies: "percent" or "fraction"

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor: ...
    def meter(self) -> Meter: ...
    def probabilities(self, outputs: Tensor) -> Tensor: ...
    def running_score(self, meter: Meter) -> str: ...
    def epoch_text(self, row: dict) -> str: ...
    def test_text(self, metrics: dict) -> str: ...
    def error_analysis(self, network: nn.Module, dataset: Dataset, mean: Sequence[float], std: Sequence[float],
                       metrics: dict, picture: Path) -> dict: ...


@dataclass
class Classification:
    """Softmax cross-entropy (optionally label-smoothed, Szegedy et al. 2016) over `classes`; judged by top-1
    accuracy, as the papers judge networks by top-1/top-5 error."""

    classes: list[str]
    label_smoothing: float = 0.0
    name: str = "classification"
    primary_metric: str = "top1_accuracy"
    higher_is_better: bool = True
    row_metrics: tuple[str, ...] = ("top1_accuracy", "top5_accuracy", "top1_error", "top5_error")
    curve_label: str = "top-1 accuracy (%)"
    unit: str = "percent"

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

    def running_score(self, meter: ClassificationMeter) -> str:
        return f"acc {meter.top1_accuracy:.2f}%"

    def epoch_text(self, row: dict) -> str:
        return (f"train loss {row['train_loss']:.4f} acc {row['train_top1_accuracy']:.2f}%  "
                f"val loss {row['val_loss']:.4f} acc {row['val_top1_accuracy']:.2f}% "
                f"top-5 {row['val_top5_accuracy']:.2f}%")

    def test_text(self, metrics: dict) -> str:
        return (f"top-1 accuracy {metrics['top1_accuracy']:.2f}%, top-5 {metrics['top5_accuracy']:.2f}% "
                f"({metrics['images']} images)")

    def error_analysis(self, network: nn.Module, dataset: Dataset, mean: Sequence[float], std: Sequence[float],
                       metrics: dict, picture: Path) -> dict:
        """Per-class precision and recall, the most-confused pairs, the highest-loss images (a PNG grid)."""
        return classification_errors(network, dataset, self.classes, mean, std, metrics["confusion_matrix"],
                                     picture)


@dataclass
class Segmentation:
    """A class at every pixel: pixel-wise cross-entropy plus soft Dice (the course's sum, losses.py), judged by
    the mean IoU over the split (segmentation_metrics.py). A segmentation network returns {"out"}, with "aux"
    where it has an auxiliary head (PSPNet, torchvision's FCN/DeepLabv3 with aux_loss): its loss is
    loss(out) + aux_weight * loss(aux), and only "out" is scored. A prediction smaller than its mask (U-Net
    with valid convolutions) is scored against the mask's centre, as the losses and the meter crop it."""

    classes: list[str]
    aux_weight: float = 0.0
    name: str = "segmentation"
    primary_metric: str = "miou"
    higher_is_better: bool = True
    row_metrics: tuple[str, ...] = ("miou", "pixel_accuracy", "mean_dice")
    curve_label: str = "mean IoU"
    unit: str = "fraction"

    def __post_init__(self) -> None:
        self._criterion = CEDiceLoss()

    def loss(self, outputs: Tensor | dict[str, Tensor], targets: Tensor) -> Tensor:
        loss = self._criterion(main_output(outputs), targets)
        if isinstance(outputs, dict) and "aux" in outputs:
            loss = loss + self.aux_weight * self._criterion(outputs["aux"], targets)
        return loss

    def meter(self) -> SegmentationMeter:
        return SegmentationMeter(len(self.classes))

    def probabilities(self, outputs: Tensor | dict[str, Tensor]) -> Tensor:
        logits = main_output(outputs)
        return logits.float().softmax(dim=1)

    def running_score(self, meter: SegmentationMeter) -> str:
        miou = meter.miou
        return "mIoU -" if miou is None else f"mIoU {miou:.3f}"

    def epoch_text(self, row: dict) -> str:
        return (f"train loss {row['train_loss']:.4f} mIoU {_fraction(row['train_miou'])}  "
                f"val loss {row['val_loss']:.4f} mIoU {_fraction(row['val_miou'])} "
                f"pixel acc {_fraction(row['val_pixel_accuracy'])}")

    def test_text(self, metrics: dict) -> str:
        return (f"mIoU {_fraction(metrics['miou'])}, pixel accuracy {_fraction(metrics['pixel_accuracy'])} "
                f"({metrics['images']} images, {metrics['pixels']:,} labelled pixels)")

    def error_analysis(self, network: nn.Module, dataset: Dataset, mean: Sequence[float], std: Sequence[float],
                       metrics: dict, picture: Path) -> dict:
        """The images with the lowest IoU (a PNG of image, true and predicted masks)."""
        return segmentation_errors(network, dataset, self.classes, mean, std, picture, self.probabilities)


def _fraction(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def build_task(name: str, classes: Sequence[str], label_smoothing: float = 0.0, aux_weight: float = 0.0) -> Task:
    """The task `name` over `classes`. label_smoothing is classification's; aux_weight (the network's
    `aux_weight`) weighs an auxiliary head's loss in segmentation."""
    if name == "classification":
        return Classification(list(classes), label_smoothing=label_smoothing)
    if name == "segmentation":
        if label_smoothing:
            raise ValueError("label smoothing is a classification setting; segmentation trains on pixel-wise "
                             "cross-entropy + Dice without it: drop --label-smoothing (or use --recipe segmentation)")
        return Segmentation(list(classes), aux_weight=aux_weight)
    raise ValueError(f"unknown task {name!r}; the engine knows: {', '.join(TASKS)}")


def check_data_for_task(task: str, source: str, model: str, kind: str | None = None) -> None:
    """Refuse data of the other task: masks for a classifier, or class-labelled images for a segmentation
    network (it would have no mask to learn from). `kind` is a loaded DataBundle's; without it the source is
    recognised as load_data recognises it, so the check can come before the loading."""
    is_segmentation_data = kind in SEGMENTATION_KINDS if kind is not None else is_segmentation_source(source)
    if task == "segmentation" and not is_segmentation_data:
        raise DataError(f"{model} is a segmentation network but {source!r} is classification data "
                        f"(one label an image); give data with a mask for every image: 'digits-seg', a VOC folder "
                        f"(JPEGImages/, SegmentationClass/, ImageSets/Segmentation/) or images/ + masks/ folders")
    if task == "classification" and is_segmentation_data:
        raise DataError(f"{model} is a classification network but {source!r} is segmentation data ({kind}: a "
                        f"mask for every image); train a segmentation network on it (`convzoo list --task "
                        f"segmentation`) or give classification data such as 'digits'")
