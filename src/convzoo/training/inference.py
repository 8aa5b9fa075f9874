"""Using trained checkpoints: evaluate one or several (and their ensemble) on a data set, with the papers'
single-crop or 10-crop testing; predict the classes of image files.

A checkpoint brings its own network, class names, input size, normalisation and border (see checkpoint.py),
so the data is prepared exactly as the network saw it in training, whatever data set it is evaluated on.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ..errors import DataError
from .checkpoint import Checkpoint, load_checkpoint
from .metrics import ClassificationMeter
from .tasks import Task

# log(0) would make one confident wrong answer an infinite loss in an ensemble's averaged probabilities.
_SMALLEST_PROBABILITY = 1e-12


@dataclass
class EvalResult:
    name: str     # the checkpoint path, or "ensemble"
    metrics: dict


@torch.no_grad()
def class_probabilities(model: torch.nn.Module, dataset: Dataset, task: Task,
                        batch_size: int = 64) -> tuple[Tensor, Tensor]:
    """Softmax probabilities (N x classes) of every item and the labels (N). Items that are stacks of crops
    (crops x C x H x W) get the mean of their crops' probabilities, as in AlexNet's and ResNet's 10-crop test."""
    device = next(model.parameters()).device
    model.eval()
    probabilities, labels = [], []
    for images, targets in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        if images.dim() == 5:
            batch, crops = images.shape[:2]
            crop_probs = task.probabilities(model(images.flatten(0, 1).to(device)))
            probabilities.append(crop_probs.view(batch, crops, -1).mean(dim=1).cpu())
        else:
            probabilities.append(task.probabilities(model(images.to(device))).cpu())
        labels.append(torch.as_tensor(targets))
    return torch.cat(probabilities), torch.cat(labels)


def metrics_from_probabilities(probabilities: Tensor, labels: Tensor, classes: Sequence[str]) -> dict:
    """Top-1/top-5 accuracy and error, loss (the mean negative log-probability of the true class), per-class
    accuracy and the confusion matrix of predicted probabilities."""
    meter = ClassificationMeter(len(classes))
    # softmax(log p) = p, so log-probabilities behave as logits and the meter's cross-entropy is -log p_true.
    meter.update(probabilities.clamp_min(_SMALLEST_PROBABILITY).log(), labels)
    return meter.compute(classes)


def evaluate_checkpoints(checkpoints: Sequence[str | Path], data: str, split: str | None = None, crops: int = 1,
                         batch_size: int = 64, device: str | torch.device = "cpu",
                         skip_bad: bool = False) -> list[EvalResult]:
    """Each checkpoint's metrics on `split` ("test", or "val"; default: test when the data has one) of `data`,
    and, with several checkpoints, the metrics of their ensemble: the average of their softmax outputs (how
    AlexNet's seven networks took the top-5 error from 18.2% to 15.4%)."""
    from ..data import load_data

    if crops not in (1, 10):
        raise ValueError(f"crops must be 1 or 10, got {crops}")
    if not checkpoints:
        raise ValueError("give at least one checkpoint")
    loaded: list[Checkpoint] = [load_checkpoint(path, device) for path in checkpoints]
    first = loaded[0]
    for other in loaded[1:]:
        if other.classes != first.classes:
            raise DataError(f"an ensemble needs the same classes in the same order: {first.path} has "
                            f"{first.classes}, {other.path} has {other.classes}")

    results, ensemble_sum, ensemble_labels = [], None, None
    bundles: dict[tuple, object] = {}
    for checkpoint in loaded:
        trained_on = checkpoint.description.get("data", {})
        # The same input size, normalisation and border as in training; the same val split (seed, fraction).
        key = (checkpoint.input_size, checkpoint.mean, checkpoint.std, checkpoint.border,
               trained_on.get("val_split"), trained_on.get("seed", 0))
        if key not in bundles:
            bundles[key] = load_data(data, checkpoint.input_size, val_split=trained_on.get("val_split") or 0.1,
                                     seed=trained_on.get("seed", 0), skip_bad=skip_bad, mean=checkpoint.mean,
                                     std=checkpoint.std, border=checkpoint.border)
        bundle = bundles[key]
        bundle.check_classes(checkpoint.classes)
        chosen = split or ("test" if bundle.test is not None else "val")
        if chosen not in ("val", "test"):
            raise DataError(f"split must be 'val' or 'test', got {chosen!r}")
        if chosen == "test" and bundle.test is None:
            raise DataError(f"{data!r} has no test split; evaluate on --split val")
        dataset = bundle.multi_crop(chosen, crops) if crops == 10 else getattr(bundle, chosen)
        probabilities, labels = class_probabilities(checkpoint.model, dataset, checkpoint.task, batch_size)
        metrics = metrics_from_probabilities(probabilities, labels, checkpoint.classes)
        results.append(EvalResult(str(checkpoint.path), {"split": chosen, "crops": crops, **metrics}))
        if ensemble_labels is not None and not torch.equal(labels, ensemble_labels):
            raise DataError(f"{checkpoint.path} was validated on another split of {data!r} (another seed or "
                            f"val_split) than {first.path}: ensemble them on the test split")
        ensemble_sum = probabilities if ensemble_sum is None else ensemble_sum + probabilities
        ensemble_labels = labels
    if len(loaded) > 1:
        metrics = metrics_from_probabilities(ensemble_sum / len(loaded), ensemble_labels, first.classes)
        results.append(EvalResult("ensemble", {"split": results[0].metrics["split"], "crops": crops,
                                               "members": len(loaded), **metrics}))
    return results


@torch.no_grad()
def predict_images(checkpoint: str | Path | Checkpoint, images: Sequence[str | Path], top: int = 5,
                   crops: int = 1, device: str | torch.device = "cpu") -> list[dict]:
    """The `top` most probable classes of each image file, with their probabilities."""
    from ..data import load_image

    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    checkpoint = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint, device)
    model = checkpoint.model
    device = next(model.parameters()).device
    predictions = []
    for path in images:
        image = load_image(path, checkpoint.input_size, checkpoint.mean, checkpoint.std, crops=crops,
                           border=checkpoint.border)
        batch = image if image.dim() == 4 else image[None]
        probabilities = checkpoint.task.probabilities(model(batch.to(device))).mean(dim=0, keepdim=True).cpu()
        predictions.append({
            "image": str(path),
            "predictions": [{"class": name, "probability": p}
                            for name, p in checkpoint.task.top(probabilities, top)[0]],
        })
    return predictions
