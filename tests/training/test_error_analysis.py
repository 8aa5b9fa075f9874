"""Error analysis: precision and recall, the most-confused pairs, the worst predictions, the worst masks."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from convzoo.training.error_analysis import (classification_errors, image_iou, most_confused, precision_recall)

CONFUSION = [[5, 3, 0],   # rows: true class; columns: predicted
             [1, 4, 0],
             [0, 6, 0]]


def test_precision_recall_and_the_most_confused_pairs_from_a_known_matrix():
    scores = precision_recall(CONFUSION, ["a", "b", "c"])
    assert scores["per_class_precision"] == pytest.approx({"a": 500 / 6, "b": 400 / 13, "c": None})
    assert scores["per_class_recall"] == pytest.approx({"a": 500 / 8, "b": 80.0, "c": 0.0})
    assert most_confused(CONFUSION, ["a", "b", "c"], top=2) == [
        {"true": "c", "predicted": "b", "count": 6}, {"true": "a", "predicted": "b", "count": 3}]


class _Fixed(nn.Module):
    """Logits read from the first pixel of each image: the test knows every loss in advance."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, images):
        return images[:, :2, 0, 0] * self.scale


def test_the_worst_predictions_are_the_highest_losses_and_are_drawn(tmp_path):
    logits = torch.tensor([[4.0, 0.0], [0.0, 1.0], [0.0, 6.0], [2.0, 0.0]])
    images = torch.zeros(4, 2, 3, 3)
    images[:, :, 0, 0] = logits
    labels = torch.tensor([0, 0, 0, 1])  # images 1, 2, 3 are wrong; 2 most confidently
    report = classification_errors(_Fixed(), TensorDataset(images, labels), ["zero", "one"], [0.0, 0.0],
                                   [1.0, 1.0], [[1, 2], [1, 0]], tmp_path / "worst.png", worst=3)
    assert [row["index"] for row in report["worst_predictions"]] == [2, 3, 1]
    assert report["worst_predictions"][0] == pytest.approx(
        {"index": 2, "true": "zero", "predicted": "one", "probability": torch.tensor([0.0, 6.0]).softmax(0)[1].item(),
         "loss": float(nn.functional.cross_entropy(torch.tensor([[0.0, 6.0]]), torch.tensor([0])))})
    assert report["most_confused"][0] == {"true": "zero", "predicted": "one", "count": 2}
    assert (tmp_path / "worst.png").read_bytes()[:4] == b"\x89PNG"


def test_image_iou_averages_the_classes_present_and_ignores_void():
    mask = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 255]])
    predicted = torch.tensor([[0, 0, 0, 1], [0, 0, 1, 2]])
    # class 0: 4 / 5; class 1: 2 / 3; class 2 only under void: not counted
    assert image_iou(predicted, mask, 3) == pytest.approx((4 / 5 + 2 / 3) / 2)
