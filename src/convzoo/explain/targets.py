"""What is being explained in each image: a class, and for a segmentation network the pixels of that class.

A classifier's target is one class an image: the one asked for (`--class`), else the predicted one. A
segmentation network is explained per class: each class asked for, else each class the network predicts
in the image (largest area first, at most `MAX_SEGMENTATION_CLASSES`). Its score for class c is the sum of
the class-c logits over the pixels predicted as c (all pixels when none is), as in Seg-Grad-CAM (Vinogradova
et al. 2020); its probability is the mean class-c probability over those pixels.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from .subject import Subject

MAX_SEGMENTATION_CLASSES = 4


@dataclass(frozen=True)
class Target:
    image: int                 # index in the batch
    cls: int
    region: Tensor | None = None  # segmentation: H x W bool, the pixels the score sums over

    def score(self, output: Tensor) -> Tensor:
        """The scalar explained, from one image's output (K logits, or K x H x W)."""
        if self.region is None:
            return output[self.cls]
        return output[self.cls][self.region].sum()

    def probability(self, output: Tensor) -> Tensor:
        """The target's probability from a batch of outputs (N x K or N x K x H x W): N values."""
        probabilities = output.float().softmax(dim=1)[:, self.cls]
        if self.region is None:
            return probabilities
        return probabilities[:, self.region].mean(dim=1)


def find_targets(subject: Subject, output: Tensor, wanted: int | str | Sequence[int | str] | None = None
                 ) -> list[Target]:
    """The targets of a batch given its outputs (see the module docstring)."""
    if wanted is None:
        chosen = None
    elif isinstance(wanted, (str, int)):
        chosen = [subject.class_index(wanted)]
    else:
        chosen = [subject.class_index(c) for c in wanted]
    output = output.detach()
    if not subject.segmentation:
        predicted = output.argmax(dim=1).tolist()
        return [Target(i, c) for i in range(len(output)) for c in (chosen or [predicted[i]])]
    targets = []
    for i, scores in enumerate(output):
        labels = scores.argmax(dim=0)
        counts = torch.bincount(labels.flatten(), minlength=scores.shape[0])
        classes = chosen or [c for c in counts.argsort(descending=True).tolist() if counts[c] > 0][
            :MAX_SEGMENTATION_CLASSES]
        for c in classes:
            region = labels == c
            targets.append(Target(i, c, region if region.any() else torch.ones_like(region)))
    return targets


def describe(subject: Subject, target: Target, probability: float) -> dict:
    entry = {"image": target.image, "class": subject.classes[target.cls], "class_index": target.cls,
             "probability": probability}
    if target.region is not None:
        entry["region_pixels"] = int(target.region.sum())
    return entry
