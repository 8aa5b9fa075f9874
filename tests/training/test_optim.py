from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from convzoo.training.optim import LRSchedule, build_optimizer


def _optimizer(lr=0.1):
    return torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=lr)


def _lrs(schedule: LRSchedule, steps) -> list[float]:
    out = []
    for step in steps:
        schedule.set_step(step)
        out.append(schedule.lr)
    return out


def test_step_and_multistep_cut_at_epoch_boundaries():
    step = LRSchedule(_optimizer(), "step", epochs=10, steps_per_epoch=5, step_size=3, gamma=0.1)
    assert _lrs(step, [0, 14, 15, 29, 30]) == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001])
    multi = LRSchedule(_optimizer(), "multistep", epochs=10, steps_per_epoch=5, milestones=[2, 5], gamma=0.5)
    assert _lrs(multi, [9, 10, 24, 25]) == pytest.approx([0.1, 0.05, 0.05, 0.025])


def test_cosine_with_linear_warmup():
    cosine = LRSchedule(_optimizer(), "cosine", epochs=5, steps_per_epoch=10, warmup_epochs=1, warmup_decay=0.01,
                        min_lr=0.001)
    warm = _lrs(cosine, [0, 5])
    assert warm == pytest.approx([0.1 * 0.01, 0.1 * (0.01 + 0.99 * 0.5)])
    middle = 10 + 20  # half-way through the 40 steps after the warm-up
    assert _lrs(cosine, [10, middle, 49]) == pytest.approx(
        [0.1, 0.001 + (0.1 - 0.001) * 0.5, 0.001 + (0.1 - 0.001) * 0.5 * (1 + math.cos(math.pi * 39 / 40))])


def test_reduce_on_plateau_after_patience_and_state_round_trip():
    schedule = LRSchedule(_optimizer(), "plateau", epochs=20, steps_per_epoch=1, patience=2, gamma=0.1)
    cuts = [schedule.end_epoch(metric) for metric in (50, 60, 60, 59, 58, 61)]
    assert cuts == [False, False, False, False, True, False]  # 3 epochs without improvement > patience 2
    assert _lrs(schedule, [6]) == pytest.approx([0.01])
    restored = LRSchedule(_optimizer(), "plateau", epochs=20, steps_per_epoch=1, patience=2, gamma=0.1)
    restored.load_state_dict(schedule.state_dict())
    assert _lrs(restored, [6]) == pytest.approx([0.01])
    assert [restored.end_epoch(m) for m in (61, 61, 61)] == [schedule.end_epoch(m) for m in (61, 61, 61)]


def test_reduce_on_plateau_for_a_metric_to_minimise():
    schedule = LRSchedule(_optimizer(), "plateau", epochs=5, steps_per_epoch=1, patience=0, higher_is_better=False)
    assert [schedule.end_epoch(loss) for loss in (1.0, 0.5, 0.7)] == [False, False, True]


def test_optimizers():
    params = list(nn.Linear(2, 2).parameters())
    nesterov = build_optimizer(params, "sgd_nesterov", lr=0.1, momentum=0.9, weight_decay=1e-4)
    assert nesterov.defaults["nesterov"] and nesterov.defaults["weight_decay"] == 1e-4
    assert not build_optimizer(params, "sgd", lr=0.1).defaults["nesterov"]
    assert isinstance(build_optimizer(params, "adamw", lr=1e-3, weight_decay=0.05), torch.optim.AdamW)
    assert build_optimizer(params, "rmsprop", lr=0.045).defaults["alpha"] == 0.9
    with pytest.raises(ValueError, match="unknown optimizer 'adam'"):
        build_optimizer(params, "adam", lr=1e-3)
    with pytest.raises(ValueError, match="unknown learning-rate schedule"):
        LRSchedule(_optimizer(), "linear", epochs=1, steps_per_epoch=1)
