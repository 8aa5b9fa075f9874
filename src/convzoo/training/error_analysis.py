"""Where a trained network fails, measured at the end of every run on the test split.

Classification: the images with the highest loss as a grid with their true and predicted labels
(worst_predictions.png), the most-confused class pairs (the largest off-diagonal counts of the confusion
matrix), and each class's precision (of the images predicted as the class, the fraction that are) and recall
(of the images of the class, the fraction found), into results.json.
Segmentation: the images with the lowest IoU (the mean over the classes present in the mask or the
prediction), as image / true mask / predicted mask rows (worst_predictions.png).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from .losses import center_crop_to
from .metrics import _pyplot, _save_figure

WORST = 16
CONFUSED_PAIRS = 5
IGNORE_INDEX = 255


def precision_recall(confusion: Sequence[Sequence[int]], classes: Sequence[str]) -> dict:
    """Per-class precision and recall in percent (None where the class was never predicted / never occurs)."""
    matrix = torch.as_tensor(confusion, dtype=torch.float64)
    hits, predicted, actual = matrix.diagonal(), matrix.sum(dim=0), matrix.sum(dim=1)
    return {
        "per_class_precision": {name: (100.0 * float(hits[i] / predicted[i]) if predicted[i] else None)
                                for i, name in enumerate(classes)},
        "per_class_recall": {name: (100.0 * float(hits[i] / actual[i]) if actual[i] else None)
                             for i, name in enumerate(classes)},
    }


def most_confused(confusion: Sequence[Sequence[int]], classes: Sequence[str], top: int = CONFUSED_PAIRS) -> list[dict]:
    """The `top` (true, predicted) pairs of different classes with the most images, most first."""
    matrix = torch.as_tensor(confusion).clone()
    matrix.fill_diagonal_(0)
    counts, flat = matrix.flatten().sort(descending=True, stable=True)
    n = len(classes)
    return [{"true": classes[int(i) // n], "predicted": classes[int(i) % n], "count": int(c)}
            for c, i in zip(counts[:top], flat[:top]) if c > 0]


def _images_of(dataset: Dataset, indices: Sequence[int], mean: Sequence[float], std: Sequence[float]) -> list:
    """The items' images un-normalised to [0, 1], H x W x 3 (colour) or H x W (any other count: the first
    channel), for drawing."""
    mean_t, std_t = torch.tensor(mean).view(-1, 1, 1), torch.tensor(std).view(-1, 1, 1)
    pictures = []
    for index in indices:
        image = (dataset[index][0] * std_t + mean_t).clamp(0, 1)
        pictures.append(image.permute(1, 2, 0).numpy() if image.shape[0] == 3 else image[0].numpy())
    return pictures


@torch.no_grad()
def classification_errors(network: nn.Module, dataset: Dataset, classes: Sequence[str], mean: Sequence[float],
                          std: Sequence[float], confusion: Sequence[Sequence[int]], picture: str | Path,
                          batch_size: int = 64, worst: int = WORST) -> dict:
    device = next(network.parameters()).device
    network.eval()
    losses, predictions, confidences, labels = [], [], [], []
    for images, targets in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        logits = network(images.to(device)).float().cpu()
        losses.append(F.cross_entropy(logits, targets, reduction="none"))
        probabilities = logits.softmax(dim=1)
        confidence, predicted = probabilities.max(dim=1)
        predictions.append(predicted)
        confidences.append(confidence)
        labels.append(targets)
    losses, predictions = torch.cat(losses), torch.cat(predictions)
    confidences, labels = torch.cat(confidences), torch.cat(labels)
    order = losses.argsort(descending=True, stable=True)[:worst].tolist()
    rows = [{"index": i, "true": classes[int(labels[i])], "predicted": classes[int(predictions[i])],
             "probability": float(confidences[i]), "loss": float(losses[i])} for i in order]
    titles = [f"true {r['true']}\npred {r['predicted']} ({r['probability']:.0%})" for r in rows]
    _grid(_images_of(dataset, order, mean, std), titles, picture,
          f"the {len(rows)} test images with the highest loss")
    return {**precision_recall(confusion, classes), "most_confused": most_confused(confusion, classes),
            "worst_predictions": rows}


def image_iou(predicted: Tensor, mask: Tensor, num_classes: int) -> float | None:
    """The mean IoU of one image over the classes in its mask or its prediction (labelled pixels only)."""
    keep = mask != IGNORE_INDEX
    predicted, mask = predicted[keep], mask[keep]
    ious = []
    for c in range(num_classes):
        union = int(((predicted == c) | (mask == c)).sum())
        if union:
            ious.append(int(((predicted == c) & (mask == c)).sum()) / union)
    return sum(ious) / len(ious) if ious else None


@torch.no_grad()
def segmentation_errors(network: nn.Module, dataset: Dataset, classes: Sequence[str], mean: Sequence[float],
                        std: Sequence[float], picture: str | Path, probabilities, batch_size: int = 16,
                        worst: int = WORST // 2) -> dict:
    """`probabilities` is the task's (reads a dict output's "out")."""
    device = next(network.parameters()).device
    network.eval()
    scores: list[tuple[float, int]] = []
    predictions: dict[int, Tensor] = {}
    index = 0
    for images, masks in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        predicted = probabilities(network(images.to(device))).argmax(dim=1).cpu()
        masks = center_crop_to(masks, predicted.shape[-2:])
        for p, m in zip(predicted, masks):
            iou = image_iou(p, m, len(classes))
            if iou is not None:
                scores.append((iou, index))
                predictions[index] = p
            index += 1
    scores.sort()
    chosen = scores[:worst]
    rows = [{"index": i, "iou": iou} for iou, i in chosen]
    pictures = _images_of(dataset, [i for _, i in chosen], mean, std)
    masks = [center_crop_to(dataset[i][1], predictions[i].shape[-2:]) for _, i in chosen]
    _mask_rows(pictures, masks, [predictions[i] for _, i in chosen], [iou for iou, _ in chosen], len(classes),
               picture)
    return {"worst_images": rows}


def _grid(pictures: list, titles: list[str], path: str | Path, title: str) -> None:
    """The pictures side by side in one image (one matplotlib axes: fast), each titled above."""
    import numpy as np

    plt = _pyplot()
    count = max(len(pictures), 1)
    columns = min(8, count)
    rows = math.ceil(count / columns)
    colour = any(p.ndim == 3 for p in pictures)
    height = max((p.shape[0] for p in pictures), default=1)
    width = max((p.shape[1] for p in pictures), default=1)
    gap = max(2, height // 8)
    pitch = height + max(gap, round(height * 0.5))  # room for two lines of title above each picture
    mosaic = np.ones((rows * pitch, columns * (width + gap), 3 if colour else 1))
    for k, picture in enumerate(pictures):
        top, left = (k // columns) * pitch + pitch - height, (k % columns) * (width + gap)
        block = picture if picture.ndim == 3 else picture[..., None]
        mosaic[top:top + block.shape[0], left:left + block.shape[1]] = block
    fig, ax = plt.subplots(figsize=(1.5 * columns, 1.75 * rows + 0.5))
    ax.imshow(mosaic if colour else mosaic[..., 0], cmap=None if colour else "gray", vmin=0, vmax=1,
              interpolation="nearest")
    for k, text in enumerate(titles):
        ax.text((k % columns) * (width + gap) + width / 2, (k // columns) * pitch + pitch - height - 1, text,
                ha="center", va="bottom", fontsize=7)
    ax.axis("off")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    _save_figure(fig, path)


def _mask_rows(pictures: list, masks: list[Tensor], predictions: list[Tensor], ious: list[float],
               num_classes: int, path: str | Path) -> None:
    from ..data.segmentation import voc_palette

    plt = _pyplot()
    palette = voc_palette()
    rows = max(len(pictures), 1)
    fig, axes = plt.subplots(rows, 3, figsize=(5.4, 1.8 * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for row, (picture, mask, predicted, iou) in enumerate(zip(pictures, masks, predictions, ious)):
        axes[row, 0].imshow(picture, cmap="gray" if picture.ndim == 2 else None, vmin=0, vmax=1)
        axes[row, 1].imshow(palette[mask.numpy()])
        axes[row, 2].imshow(palette[predicted.numpy()])
        axes[row, 0].set_title("image", fontsize=7)
        axes[row, 1].set_title("true mask", fontsize=7)
        axes[row, 2].set_title(f"predicted (IoU {iou:.2f})", fontsize=7)
    fig.suptitle("the test images with the lowest IoU", fontsize=9)
    fig.tight_layout()
    _save_figure(fig, path)
