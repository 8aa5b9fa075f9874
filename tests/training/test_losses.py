"""Pixel-wise cross-entropy, soft Dice (the course's formula) and their sum, checked against numbers worked out
by hand (docs/segmentation.md repeats the Dice example)."""
from __future__ import annotations

import math

import pytest
import torch

from convzoo.training.losses import CEDiceLoss, center_crop_to, pixel_cross_entropy, soft_dice_loss


def _logits_for(probabilities: list[list[float]]) -> torch.Tensor:
    """Logits (1, C, 1, P) whose softmax over C is the given per-pixel probabilities (P pixels x C classes)."""
    return torch.tensor(probabilities).log().T[None, :, None, :].contiguous()


def test_cross_entropy_is_the_mean_negative_log_probability_of_the_labelled_pixels():
    logits = _logits_for([[0.8, 0.2], [0.4, 0.6], [0.5, 0.5]])
    target = torch.tensor([[[0, 1, 255]]])
    expected = -(math.log(0.8) + math.log(0.6)) / 2
    assert pixel_cross_entropy(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_class_weights_weight_the_average():
    logits = _logits_for([[0.8, 0.2], [0.4, 0.6], [0.3, 0.7]])
    target = torch.tensor([[[0, 1, 1]]])
    weights = [3.0, 1.0]
    expected = -(3 * math.log(0.8) + math.log(0.6) + math.log(0.7)) / (3 + 1 + 1)
    assert pixel_cross_entropy(logits, target, weights).item() == pytest.approx(expected, rel=1e-6)
    assert pixel_cross_entropy(logits, target, [2.0, 2.0]).item() == pytest.approx(
        pixel_cross_entropy(logits, target).item(), rel=1e-6)


def test_soft_dice_matches_the_course_formula_worked_by_hand():
    # Pixel 1: p = (0.8, 0.2), class 0; pixel 2: p = (0.4, 0.6), class 1.
    # class 0: 1 - 2 * 0.8 / (1 + 0.8^2 + 0.4^2) = 1 - 1.6 / 1.8
    # class 1: 1 - 2 * 0.6 / (1 + 0.2^2 + 0.6^2) = 1 - 1.2 / 1.4
    logits = _logits_for([[0.8, 0.2], [0.4, 0.6]])
    target = torch.tensor([[[0, 1]]])
    expected = ((1 - 1.6 / 1.8) + (1 - 1.2 / 1.4)) / 2
    assert soft_dice_loss(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_soft_dice_sums_over_the_whole_batch_not_per_image():
    # The same two pixels as above, split into two images of one pixel each: the batch is one big image.
    logits = torch.cat([_logits_for([[0.8, 0.2]]), _logits_for([[0.4, 0.6]])])
    target = torch.tensor([[[0]], [[1]]])
    assert soft_dice_loss(logits, target).item() == pytest.approx(((1 - 1.6 / 1.8) + (1 - 1.2 / 1.4)) / 2, rel=1e-6)


def test_ignored_pixels_change_neither_loss_nor_get_a_gradient():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 5, 6, requires_grad=True)
    target = torch.randint(0, 4, (2, 5, 6))
    target[0, :2] = 255
    for loss_fn in (pixel_cross_entropy, soft_dice_loss):
        loss = loss_fn(logits, target)
        changed = logits.detach().clone()
        changed[0, :, :2] = torch.randn(4, 2, 6) * 10  # anything at the ignored pixels
        assert loss_fn(changed, target).item() == pytest.approx(loss.item(), rel=1e-6)
        grad, = torch.autograd.grad(loss, logits)
        assert grad[0, :, :2].abs().max() == 0
        assert grad[1].abs().max() > 0


def test_dice_reaches_zero_for_a_perfect_prediction_and_an_absent_class_costs_exactly_one():
    target = torch.tensor([[[0, 1], [1, 0]]])
    perfect = torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2).float() * 50
    # Classes 0 and 1 are predicted perfectly; class 2 is absent from the target, so its term is 1 - 0 = 1.
    assert soft_dice_loss(perfect, target).item() == pytest.approx(1 / 3, abs=1e-6)
    assert soft_dice_loss(perfect[:, :2], target).item() == pytest.approx(0.0, abs=1e-6)


def test_an_all_ignored_batch_gives_zero_not_nan_and_still_backpropagates():
    logits = torch.randn(1, 3, 2, 2, requires_grad=True)
    target = torch.full((1, 2, 2), 255)
    loss = CEDiceLoss()(logits, target)
    assert loss.item() == 0  # torch's own mean cross-entropy over no pixels is 0/0 = NaN
    loss.backward()
    assert logits.grad is not None and logits.grad.abs().max() == 0


def test_ce_dice_is_the_sum_and_weights_reach_the_cross_entropy():
    torch.manual_seed(1)
    logits = torch.randn(2, 3, 4, 4)
    target = torch.randint(0, 3, (2, 4, 4))
    weights = [1.0, 2.0, 0.5]
    combined = CEDiceLoss(weight=weights)(logits, target)
    assert combined.item() == pytest.approx(
        (pixel_cross_entropy(logits, target, weights) + soft_dice_loss(logits, target)).item(), rel=1e-6)


def test_center_crop_to_takes_unets_388_centre_of_572():
    target = torch.arange(572 * 572).view(1, 572, 572)
    cropped = center_crop_to(target, (388, 388))
    assert cropped.shape == (1, 388, 388)
    assert cropped[0, 0, 0].item() == 92 * 572 + 92  # (572 - 388) / 2 = 92 on each side
    # An odd difference leaves the extra row and column at the bottom and right.
    assert center_crop_to(torch.arange(25).view(5, 5), (2, 2)).tolist() == [[6, 7], [11, 12]]
    with pytest.raises(ValueError, match="larger"):
        center_crop_to(target, (600, 388))


def test_losses_crop_the_target_to_a_smaller_output():
    torch.manual_seed(2)
    logits = torch.randn(2, 3, 4, 4)
    target = torch.randint(0, 3, (2, 8, 8))
    inner = target[:, 2:6, 2:6]
    for loss_fn in (pixel_cross_entropy, soft_dice_loss):
        assert loss_fn(logits, target).item() == pytest.approx(loss_fn(logits, inner).item(), rel=1e-6)
    with pytest.raises(ValueError, match="larger"):
        pixel_cross_entropy(torch.randn(2, 3, 9, 9), target)
