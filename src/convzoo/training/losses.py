"""Segmentation losses as the course writes them: pixel-wise cross-entropy, soft Dice, and their sum.

Every loss takes logits (N, C, h, w) straight from the network and a target mask (N, H, W) of class indices
where 255 marks unlabelled pixels. When the network's output is smaller than the target (U-Net with valid
convolutions: 572x572 in, 388x388 out) the target is centre-cropped to the output, as Ronneberger et al. train
it; an output larger than its target is an error. docs/segmentation.md works the definitions through by hand.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.segmentation import IGNORE_INDEX


def center_crop_to(target: Tensor, size: Sequence[int]) -> Tensor:
    """The centre (h, w) of a (..., H, W) target; where H - h is odd the extra row goes to the bottom (and the
    extra column to the right), so the crop starts at ((H - h) // 2, (W - w) // 2)."""
    height, width = int(size[0]), int(size[1])
    full_h, full_w = target.shape[-2:]
    if height > full_h or width > full_w:
        raise ValueError(f"cannot crop a {full_h}x{full_w} target to the larger {height}x{width}")
    top, left = (full_h - height) // 2, (full_w - width) // 2
    return target[..., top:top + height, left:left + width]


def match_target(logits: Tensor, target: Tensor) -> Tensor:
    """The target cropped to the logits' spatial size (a no-op when they agree)."""
    if logits.dim() != 4 or target.dim() != 3 or logits.shape[0] != target.shape[0]:
        raise ValueError(f"expected logits (N, C, h, w) and a target (N, H, W), got {tuple(logits.shape)} and "
                         f"{tuple(target.shape)}")
    if tuple(logits.shape[-2:]) == tuple(target.shape[-2:]):
        return target
    return center_crop_to(target, logits.shape[-2:])


def pixel_cross_entropy(logits: Tensor, target: Tensor, weight: Tensor | Sequence[float] | None = None,
                        ignore_index: int = IGNORE_INDEX) -> Tensor:
    """-sum_classes y_true log(y_pred) at every labelled pixel, averaged over the labelled pixels.

    With class weights w the average is weighted: sum_i w[t_i] * loss_i / sum_i w[t_i] (torch's convention),
    so uniform weights change nothing. Pixels marked `ignore_index` count in neither sum; with no labelled
    pixel at all the loss is 0 (torch's mean would be 0/0, a NaN the engine would take for divergence).
    Computed in float32 (log-sum-exp needs the precision under bf16 autocast)."""
    target = match_target(logits, target)
    if not bool((target != ignore_index).any()):
        return _zero_keeping_graph(logits)
    if weight is not None:
        weight = torch.as_tensor(weight, dtype=torch.float32, device=logits.device)
    return F.cross_entropy(logits.float(), target, weight=weight, ignore_index=ignore_index)


def soft_dice_loss(logits: Tensor, target: Tensor, ignore_index: int = IGNORE_INDEX) -> Tensor:
    """The course's soft Dice loss, averaged over the C classes:

        (1 / C) * sum_c [1 - 2 sum_pixels y_true,c y_pred,c / (sum_pixels y_true,c^2 + sum_pixels y_pred,c^2)]

    y_pred = softmax(logits) over the classes, y_true = the one-hot target. The sums run over every pixel of
    the batch (the batch is one big image), and ignored pixels are left out of all three sums (their y_true
    and y_pred are both set to 0). There is no smoothing term. A class absent from the target has
    sum y_true,c y_pred,c = 0, so its term is exactly 1 whatever the prediction, and adds no gradient: the loss
    of a batch missing k classes cannot fall below k / C. With no labelled pixel at all the loss is 0."""
    target = match_target(logits, target)
    num_classes = logits.shape[1]
    labelled = target != ignore_index
    if not bool(labelled.any()):
        return _zero_keeping_graph(logits)
    probabilities = logits.float().softmax(dim=1) * labelled[:, None]
    one_hot = F.one_hot(torch.where(labelled, target, 0), num_classes).permute(0, 3, 1, 2).float()
    one_hot = one_hot * labelled[:, None]
    sum_dims = (0, 2, 3)
    overlap = (one_hot * probabilities).sum(dim=sum_dims)
    denominator = one_hot.square().sum(dim=sum_dims) + probabilities.square().sum(dim=sum_dims)
    # Softmax probabilities are positive, so every class's denominator is too once one pixel is labelled.
    return (1 - 2 * overlap / denominator).mean()


def _zero_keeping_graph(logits: Tensor) -> Tensor:
    # A zero that depends on the logits, so backward() works (with zero gradients) on an all-ignored batch.
    return logits.float().sum() * 0.0


class CEDiceLoss(nn.Module):
    """Pixel-wise cross-entropy plus soft Dice, unweighted: the sum the course proposes. `weight` (class
    weights) applies to the cross-entropy; both terms skip `ignore_index` pixels."""

    def __init__(self, weight: Sequence[float] | Tensor | None = None, ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.register_buffer("weight", None if weight is None else torch.as_tensor(weight, dtype=torch.float32))

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return (pixel_cross_entropy(logits, target, self.weight, self.ignore_index)
                + soft_dice_loss(logits, target, self.ignore_index))
