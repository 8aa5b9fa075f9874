"""Mixup and CutMix: train on blends of two images with the blend of their labels.

Mixup (Zhang et al. 2018, arXiv:1710.09412): x = lam x_i + (1 - lam) x_j, y = lam y_i + (1 - lam) y_j, lam ~
Beta(alpha, alpha). CutMix (Yun et al. 2019, arXiv:1905.04899): a box of x_j pasted into x_i, its area a
fraction 1 - lam of the image (lam ~ Beta(alpha, alpha), then corrected for the part of the box clipped at the
border), y mixed by the areas. The partner of each image is the next one in the batch (the batch rolled by
one), as torchvision's reference scripts do; with both on, each batch gets one of the two at random (1/2
each). The targets become class probabilities, which the classification loss takes as they are (label
smoothing still applies). Randomness comes from torch's global generator (re-seeded every epoch).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


class BatchMixing:
    def __init__(self, num_classes: int, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0) -> None:
        if mixup_alpha < 0 or cutmix_alpha < 0:
            raise ValueError(f"mixup and cutmix alphas must be >= 0, got {mixup_alpha} and {cutmix_alpha}")
        self.num_classes = num_classes
        self.mixup_alpha = mixup_alpha
        self.cutmix_alpha = cutmix_alpha

    @property
    def enabled(self) -> bool:
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0

    def __call__(self, images: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """(mixed images, N x classes target probabilities)."""
        one_hot = F.one_hot(targets, self.num_classes).to(images.dtype)
        if not self.enabled or len(images) < 2:
            return images, one_hot
        use_cutmix = self.cutmix_alpha > 0 and (self.mixup_alpha == 0 or bool(torch.rand(()) < 0.5))
        alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
        lam = float(torch.distributions.Beta(alpha, alpha).sample())
        partner_images, partner_targets = images.roll(1, dims=0), one_hot.roll(1, dims=0)
        if use_cutmix:
            images, lam = _paste_box(images, partner_images, lam)
        else:
            images = lam * images + (1 - lam) * partner_images
        return images, lam * one_hot + (1 - lam) * partner_targets


def _paste_box(images: Tensor, partner: Tensor, lam: float) -> tuple[Tensor, float]:
    height, width = images.shape[-2:]
    cut = (1 - lam) ** 0.5
    box_h, box_w = int(height * cut), int(width * cut)
    centre_y, centre_x = int(torch.randint(height, ())), int(torch.randint(width, ()))
    top, bottom = max(centre_y - box_h // 2, 0), min(centre_y + box_h // 2, height)
    left, right = max(centre_x - box_w // 2, 0), min(centre_x + box_w // 2, width)
    images = images.clone()
    images[..., top:bottom, left:right] = partner[..., top:bottom, left:right]
    return images, 1 - (bottom - top) * (right - left) / (height * width)
