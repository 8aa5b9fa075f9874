"""Segmentation metrics from one confusion matrix accumulated over a whole split (not averaged over images or
batches): pixel accuracy, per-class IoU, mean IoU and Dice. Pixels whose target is 255 are not counted.

With M the confusion matrix (M[t, p] = pixels of true class t predicted as p), TP_c = M[c, c],
FP_c = sum_t M[t, c] - TP_c, FN_c = sum_p M[c, p] - TP_c:
    pixel accuracy = sum_c TP_c / sum M
    IoU_c          = TP_c / (TP_c + FP_c + FN_c)
    Dice_c         = 2 TP_c / (2 TP_c + FP_c + FN_c)
    mIoU, mean Dice: the mean over the classes that occur in the target or the prediction (TP+FP+FN > 0);
                     a class found in neither has no IoU (None), rather than 0 or 1.
All values are fractions in [0, 1]. docs/segmentation.md compares the mIoU convention with torchvision's and
mmsegmentation's.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.segmentation import IGNORE_INDEX
from ..protocol import main_output
from .losses import match_target


def confusion_matrix(prediction: Tensor, target: Tensor, num_classes: int,
                     ignore_index: int = IGNORE_INDEX) -> Tensor:
    """num_classes x num_classes int64 counts, rows the true class and columns the predicted one, of every pixel
    (or item) whose target is not `ignore_index`. A target outside 0..num_classes-1 is an error."""
    prediction, target = prediction.reshape(-1).long(), target.reshape(-1).long()
    if prediction.shape != target.shape:
        raise ValueError(f"prediction and target differ in size: {prediction.numel()} and {target.numel()}")
    keep = target != ignore_index
    prediction, target = prediction[keep], target[keep]
    if target.numel() and (int(target.min()) < 0 or int(target.max()) >= num_classes):
        bad = int(target.max()) if int(target.max()) >= num_classes else int(target.min())
        raise ValueError(f"target class {bad} is outside 0..{num_classes - 1} (and is not the ignore index "
                         f"{ignore_index})")
    counts = torch.bincount(target * num_classes + prediction, minlength=num_classes * num_classes)
    return counts.view(num_classes, num_classes)


def segmentation_scores(confusion: Tensor) -> dict[str, object]:
    """Pixel accuracy, per-class IoU and Dice (None for a class in neither target nor prediction), their means
    over the classes that have one, from a confusion matrix (see the module's docstring)."""
    matrix = confusion.double()
    true_positive = matrix.diagonal()
    false_positive = matrix.sum(dim=0) - true_positive
    false_negative = matrix.sum(dim=1) - true_positive
    union = true_positive + false_positive + false_negative
    occurs = union > 0
    iou = torch.where(occurs, true_positive / union.clamp(min=1), torch.nan)
    dice = torch.where(occurs, 2 * true_positive / (union + true_positive).clamp(min=1), torch.nan)
    total = float(matrix.sum())
    return {
        "pixel_accuracy": float(true_positive.sum()) / total if total else None,
        "miou": float(iou[occurs].mean()) if bool(occurs.any()) else None,
        "mean_dice": float(dice[occurs].mean()) if bool(occurs.any()) else None,
        "iou": [float(v) if ok else None for v, ok in zip(iou.tolist(), occurs.tolist())],
        "dice": [float(v) if ok else None for v, ok in zip(dice.tolist(), occurs.tolist())],
    }


class SegmentationMeter:
    """Accumulates over batches the confusion matrix of the per-pixel argmax and the summed pixel-wise
    cross-entropy, so the counts of several batches or processes sum to those of the whole split.

    update() takes the network's output (logits (N, C, h, w), or torchvision's {"out": ..., "aux": ...} of
    which only "out" is scored) and the target masks (N, H, W); a target larger than the output (U-Net with
    valid convolutions) is centre-cropped to it, as the losses do."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.loss_sum = torch.zeros((), dtype=torch.float64)
        self.images = 0
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    @torch.no_grad()
    def update(self, outputs: Tensor | dict[str, Tensor], targets: Tensor) -> None:
        logits = main_output(outputs)
        logits = logits.detach().float().cpu()
        targets = match_target(logits, targets.detach().cpu())
        self.loss_sum += F.cross_entropy(logits, targets, ignore_index=self.ignore_index, reduction="sum").double()
        self.confusion += confusion_matrix(logits.argmax(dim=1), targets, self.num_classes, self.ignore_index)
        self.images += logits.shape[0]

    def sum_across(self, reduce_sum: Callable[[Tensor], Tensor]) -> None:
        """Replace the counts with their sum over processes; `reduce_sum` sums a tensor across them."""
        packed = reduce_sum(torch.cat([self.loss_sum.view(1), torch.tensor([float(self.images)], dtype=torch.float64),
                                       self.confusion.double().flatten()]))
        self.loss_sum = packed[0]
        self.images = int(packed[1].round())
        self.confusion = packed[2:].round().long().view(self.num_classes, self.num_classes)

    @property
    def count(self) -> int:
        """Images seen (the engine's progress counts images, whatever the task)."""
        return self.images

    @property
    def pixels(self) -> int:
        """Labelled pixels seen (those the metrics and the mean loss count)."""
        return int(self.confusion.sum())

    @property
    def mean_loss(self) -> float:
        return float(self.loss_sum) / max(self.pixels, 1)

    @property
    def miou(self) -> float | None:
        return segmentation_scores(self.confusion)["miou"]

    def compute(self, class_names: Sequence[str] | None = None) -> dict:
        """loss (mean pixel-wise cross-entropy over labelled pixels), pixel_accuracy, miou, mean_dice,
        per-class IoU and Dice by class name (None for a class in neither target nor prediction), the counts
        and the confusion matrix, as plain Python values (JSON-able)."""
        names = list(class_names) if class_names is not None else [str(i) for i in range(self.num_classes)]
        if len(names) != self.num_classes:
            raise ValueError(f"{len(names)} class names for {self.num_classes} classes")
        scores = segmentation_scores(self.confusion)
        return {
            "loss": self.mean_loss,
            "pixel_accuracy": scores["pixel_accuracy"],
            "miou": scores["miou"],
            "mean_dice": scores["mean_dice"],
            "per_class_iou": dict(zip(names, scores["iou"])),
            "per_class_dice": dict(zip(names, scores["dice"])),
            "images": self.images,
            "pixels": self.pixels,
            "confusion_matrix": self.confusion.tolist(),
        }
