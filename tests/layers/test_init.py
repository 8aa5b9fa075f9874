import math

import torch
from torch import nn

from convzoo.layers.init import init_he_fan_out_


def test_he_fan_out_statistics_and_identity_norms():
    model = nn.Sequential(nn.Conv2d(64, 256, 3, bias=True), nn.BatchNorm2d(256), nn.Flatten(), nn.Linear(512, 300))
    with torch.no_grad():
        model[1].weight.fill_(3.0)
    init_he_fan_out_(model)
    conv = model[0]
    expected_std = math.sqrt(2.0 / (256 * 3 * 3))  # fan-out = out channels x kernel area
    assert abs(conv.weight.std().item() / expected_std - 1) < 0.02
    assert torch.all(conv.bias == 0)
    assert torch.all(model[1].weight == 1) and torch.all(model[1].bias == 0)
    assert abs(model[3].weight.std().item() / 0.01 - 1) < 0.02 and torch.all(model[3].bias == 0)


def test_linear_left_at_pytorch_default_when_asked():
    torch.manual_seed(0)
    linear = nn.Linear(512, 300)
    before = linear.weight.clone()
    init_he_fan_out_(nn.Sequential(linear), linear_std=None)
    assert torch.equal(linear.weight, before)
