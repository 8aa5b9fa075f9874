"""Segmentation metrics from one confusion matrix over the whole split, checked against counts done by hand
(docs/segmentation.md works the same example)."""
from __future__ import annotations

import pytest
import torch

from convzoo.training.losses import pixel_cross_entropy
from convzoo.training.segmentation_metrics import SegmentationMeter, confusion_matrix, segmentation_scores


def _one_hot_logits(prediction: torch.Tensor, num_classes: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(prediction, num_classes).permute(0, 3, 1, 2).float()


def test_confusion_matrix_counts_true_rows_predicted_columns_and_skips_255():
    target = torch.tensor([0, 0, 0, 1, 1, 2, 255, 255])
    prediction = torch.tensor([0, 0, 1, 1, 0, 2, 2, 0])
    assert confusion_matrix(prediction, target, 3).tolist() == [[2, 1, 0], [1, 1, 0], [0, 0, 1]]


def test_confusion_matrix_refuses_a_target_outside_the_classes():
    with pytest.raises(ValueError, match="target class 7"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 7]), 3)


def test_scores_by_hand():
    # Class 0: TP 3, FP 1, FN 1; class 1: TP 2, FP 1, FN 1; class 2 occurs nowhere.
    scores = segmentation_scores(torch.tensor([[3, 1, 0], [1, 2, 0], [0, 0, 0]]))
    assert scores["pixel_accuracy"] == pytest.approx(5 / 7)
    assert scores["iou"] == [pytest.approx(3 / 5), pytest.approx(2 / 4), None]
    assert scores["dice"] == [pytest.approx(6 / 8), pytest.approx(4 / 6), None]
    assert scores["miou"] == pytest.approx((3 / 5 + 2 / 4) / 2)  # the absent class is left out, not counted 0
    assert scores["mean_dice"] == pytest.approx((6 / 8 + 4 / 6) / 2)


def test_a_class_only_predicted_counts_with_iou_zero():
    # Class 2 never occurs in the target but is predicted once: IoU 0, and it pulls the mean down.
    scores = segmentation_scores(torch.tensor([[3, 0, 1], [0, 2, 0], [0, 0, 0]]))
    assert scores["iou"] == [pytest.approx(3 / 4), pytest.approx(1.0), 0.0]
    assert scores["miou"] == pytest.approx((3 / 4 + 1 + 0) / 3)


def test_meter_accumulates_over_the_whole_split_not_the_mean_of_batches():
    meter = SegmentationMeter(2)
    # Batch 1: 8 pixels of class 0, all right. Batch 2: one pixel of each class, class 1 predicted as 0.
    meter.update(_one_hot_logits(torch.zeros(1, 2, 4, dtype=torch.long), 2), torch.zeros(1, 2, 4, dtype=torch.long))
    meter.update(_one_hot_logits(torch.tensor([[[0, 0]]]), 2), torch.tensor([[[0, 1]]]))
    result = meter.compute(["background", "thing"])
    # Over the split: class 0 TP 9, FP 1 -> IoU 0.9; class 1 TP 0, FN 1 -> 0. Per-batch means would give (1 + 0.25) / 2.
    assert result["per_class_iou"] == {"background": pytest.approx(0.9), "thing": 0.0}
    assert result["miou"] == pytest.approx(0.45)
    assert result["pixel_accuracy"] == pytest.approx(9 / 10)
    assert result["images"] == 2 and result["pixels"] == 10
    assert result["confusion_matrix"] == [[9, 0], [1, 0]]


def test_meter_loss_is_the_mean_cross_entropy_of_the_labelled_pixels():
    torch.manual_seed(0)
    logits = torch.randn(3, 4, 5, 5)
    target = torch.randint(0, 4, (3, 5, 5))
    target[0, 0] = 255
    meter = SegmentationMeter(4)
    meter.update(logits[:2], target[:2])
    meter.update(logits[2:], target[2:])
    assert meter.compute()["loss"] == pytest.approx(pixel_cross_entropy(logits, target).item(), rel=1e-6)
    assert meter.pixels == 3 * 25 - 5


def test_meter_scores_out_of_a_dict_and_crops_the_target_to_a_smaller_output():
    target = torch.full((1, 6, 6), 255)
    target[0, 1:5, 1:5] = 1
    logits = _one_hot_logits(torch.ones(1, 4, 4, dtype=torch.long), 2)
    meter = SegmentationMeter(2)
    meter.update({"out": logits, "aux": -logits}, target)
    assert meter.compute()["miou"] == pytest.approx(1.0) and meter.pixels == 16


def test_sum_across_processes_keeps_the_ratios():
    meter = SegmentationMeter(3)
    meter.update(_one_hot_logits(torch.tensor([[[0, 1, 2, 2]]]), 3), torch.tensor([[[0, 1, 1, 2]]]))
    before = meter.compute()
    meter.sum_across(lambda packed: packed * 2)  # two processes that saw the same images
    after = meter.compute()
    assert after["images"] == 2 and after["pixels"] == 8
    for key in ("miou", "pixel_accuracy", "mean_dice", "loss"):
        assert after[key] == pytest.approx(before[key])
