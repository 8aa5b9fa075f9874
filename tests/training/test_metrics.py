from __future__ import annotations

import math

import pytest
import torch

from convzoo.training.metrics import ClassificationMeter, plot_confusion_matrix, plot_learning_curves

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _logits(rankings: list[list[int]], num_classes: int) -> torch.Tensor:
    """Logits whose classes rank in the given order (first = most probable)."""
    logits = torch.zeros(len(rankings), num_classes)
    for row, ranking in enumerate(rankings):
        for place, cls in enumerate(ranking):
            logits[row, cls] = float(num_classes - place)
    return logits


def test_top1_top5_errors_and_confusion_matrix():
    rankings = [
        [0, 1, 2, 3, 4, 5],   # true 0: top-1 hit
        [2, 1, 0, 3, 4, 5],   # true 1: second -> top-5 hit only
        [5, 4, 3, 0, 1, 2],   # true 2: sixth -> miss in both
        [3, 0, 1, 2, 4, 5],   # true 3: top-1 hit
    ]
    meter = ClassificationMeter(num_classes=6)
    meter.update(_logits(rankings[:2], 6), torch.tensor([0, 1]))  # two batches add up
    meter.update(_logits(rankings[2:], 6), torch.tensor([2, 3]))
    m = meter.compute(["a", "b", "c", "d", "e", "f"])
    assert m["images"] == 4
    assert m["top1_accuracy"] == 50.0 and m["top1_error"] == 50.0
    assert m["top5_accuracy"] == 75.0 and m["top5_error"] == 25.0
    assert m["confusion_matrix"][1][2] == 1 and m["confusion_matrix"][2][5] == 1
    assert m["per_class_accuracy"] == {"a": 100.0, "b": 0.0, "c": 0.0, "d": 100.0, "e": None, "f": None}
    expected_loss = torch.nn.functional.cross_entropy(_logits(rankings, 6), torch.tensor([0, 1, 2, 3])).item()
    assert m["loss"] == pytest.approx(expected_loss)


def test_fewer_classes_than_five_makes_top5_every_image():
    meter = ClassificationMeter(num_classes=3)
    meter.update(torch.randn(7, 3), torch.randint(0, 3, (7,)))
    assert meter.compute()["top5_accuracy"] == 100.0


def test_sum_across_processes_gives_the_whole_split():
    logits, targets = torch.randn(10, 8), torch.randint(0, 8, (10,))
    whole = ClassificationMeter(8)
    whole.update(logits, targets)
    halves = [ClassificationMeter(8), ClassificationMeter(8)]
    halves[0].update(logits[:6], targets[:6])
    halves[1].update(logits[6:], targets[6:])
    packed = []
    for half in halves:  # what all_reduce(SUM) does, done by hand
        half.sum_across(lambda t: packed.append(t) or t)
    total = packed[0] + packed[1]
    halves[0].sum_across(lambda t: total)
    a, b = whole.compute(), halves[0].compute()
    assert a["confusion_matrix"] == b["confusion_matrix"]
    assert a["top5_accuracy"] == b["top5_accuracy"] and math.isclose(a["loss"], b["loss"], rel_tol=1e-6)


def test_plots_are_png_files(tmp_path):
    history = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "train_top1_accuracy": 50 + e,
                "val_top1_accuracy": 48 + e} for e in (1, 2, 3)]
    curves = plot_learning_curves(history, tmp_path / "curves.png")
    confusion = plot_confusion_matrix([[5, 1], [0, 7]], ["cat", "dog"], tmp_path / "confusion.png")
    for path in (curves, confusion):
        assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["confusion.png", "curves.png"]  # no temp files left
