"""Mixup and CutMix: the images and the labels are blended in the same proportion."""
from __future__ import annotations

import pytest
import torch

from convzoo.training.mixing import BatchMixing


def test_mixup_blends_each_image_with_the_next_by_the_weight_of_its_labels():
    torch.manual_seed(0)
    images, labels = torch.rand(4, 1, 6, 6), torch.tensor([0, 1, 2, 1])
    mixed, targets = BatchMixing(3, mixup_alpha=0.4)(images, labels)
    lam = float(targets[0, 0])  # image 0 (class 0) is blended with image 3 (class 1)
    assert 0 < lam < 1 and torch.allclose(targets.sum(dim=1), torch.ones(4))
    assert torch.allclose(mixed, lam * images + (1 - lam) * images.roll(1, dims=0))
    assert torch.allclose(targets[1], torch.tensor([1 - lam, lam, 0.0]))


def test_cutmix_pastes_a_box_whose_area_is_the_partners_label_weight():
    torch.manual_seed(3)
    images = torch.stack([torch.full((1, 10, 10), float(i)) for i in range(4)])
    labels = torch.tensor([0, 1, 2, 3])
    for _ in range(5):
        mixed, targets = BatchMixing(4, cutmix_alpha=1.0)(images, labels)
        for i in range(4):
            from_partner = float((mixed[i] == (i - 1) % 4).float().mean())
            assert targets[i, (i - 1) % 4] == torch.tensor(from_partner) or from_partner == 0
            assert float(targets[i, i]) == pytest.approx(1 - from_partner)


def test_without_alphas_the_targets_are_one_hot_and_the_images_untouched():
    images, labels = torch.rand(2, 1, 4, 4), torch.tensor([1, 0])
    mixed, targets = BatchMixing(2)(images, labels)
    assert mixed is images and torch.equal(targets, torch.eye(2)[[1, 0]])
