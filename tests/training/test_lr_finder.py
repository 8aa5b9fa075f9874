"""The learning-rate range test on a problem whose good rates are known."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from convzoo.training.lr_finder import centred_average, lr_sweep, plot_lr_find, suggest


def test_the_suggestion_is_the_minimum_of_the_centred_curve_and_the_steepest_descent_comes_before_it():
    lrs = [10 ** (-6 + i * 0.1) for i in range(61)]  # 1e-6 .. 1
    # flat, then falling fastest at 1e-3, lowest at 1e-2, then rising
    smoothed = [2 - math.tanh((math.log10(lr) + 3) * 2) + (max(0, math.log10(lr) + 2) * 5) ** 2 for lr in lrs]
    at_minimum, steepest = suggest(lrs, smoothed)
    assert math.isclose(math.log10(steepest), -3, abs_tol=0.11)
    assert at_minimum == lrs[min(range(len(lrs)), key=smoothed.__getitem__)]
    assert math.isclose(math.log10(at_minimum), -2, abs_tol=0.11)


def test_the_centred_average_does_not_lag():
    ramp = [float(abs(i - 20)) for i in range(41)]  # a V with its bottom at 20
    smoothed = centred_average(ramp, fraction=0.2)
    assert min(range(41), key=smoothed.__getitem__) == 20 and smoothed[20] > 0 and smoothed[10] == 10.0


def test_the_sweep_on_a_linear_classifier_stops_when_the_loss_diverges_and_leaves_the_network_alone(tmp_path):
    torch.manual_seed(0)
    features = torch.randn(256, 8)
    labels = (features[:, 0] > 0).long()
    loader = DataLoader(TensorDataset(features, labels), batch_size=32, shuffle=True)
    network = nn.Linear(8, 2)
    before = network.weight.clone()
    result = lr_sweep(network, F.cross_entropy, loader, lambda net, lr: torch.optim.SGD(net.parameters(), lr=lr),
                      start=1e-4, end=1e4, steps=80)
    assert torch.equal(network.weight, before)
    assert result.diverged and len(result.lrs) < 80  # plain SGD on a linear model diverges long before 1e4
    assert result.lrs[0] == 1e-4 and all(b > a for a, b in zip(result.lrs, result.lrs[1:]))
    assert 1e-2 <= result.suggestion <= 1e2  # where this problem trains (checked by hand: 0.1-10 all learn)
    picture = plot_lr_find(result, tmp_path / "lr.png")
    assert picture.read_bytes()[:4] == b"\x89PNG"
