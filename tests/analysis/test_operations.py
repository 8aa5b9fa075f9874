"""Each operation rule against its formula worked out by hand on a one-layer model; the conv_linear
convention; unknown operations reported as uncounted, never dropped; every rule documented."""
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convzoo.analysis import summary
from convzoo.analysis.operations import RULES
from convzoo.layers import LocalResponseNorm


class Fn(nn.Module):
    """A model whose forward is one function of the input (for ops that are not modules). Constant
    tensors are buffers, so the meta copy carries them to the meta device with the model."""

    def __init__(self, fn, **constants):
        super().__init__()
        self.fn = fn
        for name, value in constants.items():
            self.register_buffer(name, value)

    def forward(self, x):
        return self.fn(x, self) if self._buffers else self.fn(x)


def macs(model, input_size, convention="all"):
    return summary(model, input_size, convention=convention).total_macs


def test_conv_with_groups_and_dilation():
    conv = nn.Conv2d(8, 16, 3, padding=2, dilation=2, groups=4)
    # output 16x10x10; each output element reads C_in/groups = 2 channels x 3x3; the bias is free
    assert macs(conv, (8, 10, 10)) == 16 * 10 * 10 * 2 * 9


def test_conv1d_and_strided_conv():
    assert macs(nn.Conv1d(3, 5, 4, stride=2), (3, 20)) == 5 * 9 * 3 * 4
    assert macs(nn.Conv2d(3, 4, 3, stride=2), (3, 9, 9)) == 4 * 4 * 4 * 3 * 9


def test_transposed_conv_counts_per_input_element():
    deconv = nn.ConvTranspose2d(4, 6, 3, stride=2)
    # each of the 4x5x5 input elements is spread by 6 filters of 3x3 (output 6x11x11)
    assert macs(deconv, (4, 5, 5)) == 4 * 5 * 5 * 6 * 9


def test_linear_and_matmul():
    assert macs(nn.Linear(10, 7), (10,)) == 70
    weight = torch.ones(10, 3)
    assert macs(Fn(lambda x, m: x @ m.weight, weight=weight), (4, 10)) == 4 * 3 * 10
    assert macs(Fn(lambda x, m: torch.addmm(m.bias, x, m.weight), weight=weight, bias=torch.zeros(1, 3)),
                (10,)) == 30


def test_batch_norm_is_one_multiply_add_per_element():
    assert macs(nn.BatchNorm2d(4), (4, 5, 5)) == 100


def test_local_response_norm():
    # size 5: the windowed sum of squares (5), k + alpha*sum, the power, the division
    assert macs(LocalResponseNorm(5), (8, 4, 4)) == (5 + 3) * 8 * 16


def test_pooling():
    assert macs(nn.MaxPool2d(3, stride=2), (2, 7, 7)) == 2 * 3 * 3 * (9 - 1)
    assert macs(nn.AvgPool2d(2), (2, 4, 4)) == 2 * 2 * 2 * 4
    assert macs(nn.AdaptiveAvgPool2d(1), (2, 7, 7)) == 2 * 49
    # 7 -> 3: windows [0,2], [2,4], [4,6] along each axis overlap; 9 elements a row of windows
    assert macs(nn.AdaptiveAvgPool2d(3), (2, 7, 7)) == 2 * 9 * 9
    assert macs(nn.AdaptiveMaxPool2d(3), (2, 7, 7)) == 2 * 9 * 9 - 2 * 3 * 3


def test_element_wise_in_every_form():
    n = 2 * 3 * 3
    assert macs(Fn(lambda x: x + x), (2, 3, 3)) == n
    assert macs(Fn(lambda x: torch.add(x, x)), (2, 3, 3)) == n
    assert macs(Fn(lambda x: x.clone().add_(1)), (2, 3, 3)) == n

    def in_place(x):
        y = x.clone()
        y += x
        y *= 2
        return y

    assert macs(Fn(in_place), (2, 3, 3)) == 2 * n
    gate = torch.ones(2, 1, 1)
    assert macs(Fn(lambda x, m: x * m.gate, gate=gate), (2, 3, 3)) == n  # broadcast: one multiply per output element


def test_activations_softmax_and_free_ops():
    assert macs(nn.ReLU(), (2, 3, 3)) == 18
    assert macs(nn.Sigmoid(), (2, 3, 3)) == 18
    assert macs(nn.Softmax(dim=1), (10,)) == 30
    assert macs(Fn(lambda x: torch.cat([x, x], 1)), (2, 3, 3)) == 0
    assert macs(Fn(lambda x: x.view(1, -1).flatten(1)), (2, 3, 3)) == 0
    assert macs(nn.Dropout(), (5,)) == 0


def test_interpolation():
    assert macs(nn.Upsample(scale_factor=2, mode="nearest"), (1, 3, 3)) == 0
    assert macs(nn.Upsample(scale_factor=2, mode="bilinear"), (1, 3, 3)) == 4 * 36
    assert macs(nn.Upsample(scale_factor=2, mode="bicubic"), (2, 3, 3)) == 16 * 2 * 36
    assert macs(nn.Upsample(scale_factor=3, mode="linear"), (2, 4)) == 2 * 2 * 12
    assert macs(nn.Upsample(scale_factor=2, mode="trilinear"), (1, 2, 2, 2)) == 8 * 64


@pytest.mark.parametrize("size", [(2, 2), (3, 3), (12, 12)])
def test_area_interpolation_sums_each_input_element_once(size):
    # area is an adaptive average: down (6 -> 2, 6 -> 3) or up (6 -> 12), every input element enters one sum
    assert macs(Fn(lambda x: F.interpolate(x, size=size, mode="area")), (3, 6, 6)) == 3 * 36


@pytest.mark.parametrize("reduce", [
    lambda x: x.mean((2, 3)), lambda x: torch.mean(x, dim=1), lambda x: x.sum(), lambda x: torch.sum(x, (1, 3)),
    lambda x: x.amax(dim=(2, 3), keepdim=True), lambda x: torch.amax(x, 1)])
def test_reductions_cost_one_per_input_element_whatever_they_keep(reduce):
    assert macs(Fn(reduce), (4, 3, 5)) == 4 * 3 * 5


def test_normalisations_cost_three_per_element():
    assert macs(nn.LayerNorm([3, 4]), (2, 3, 4)) == 3 * 24
    assert macs(nn.GroupNorm(2, 4), (4, 3, 3)) == 3 * 36
    assert macs(nn.InstanceNorm2d(4), (4, 3, 3)) == 3 * 36
    assert macs(nn.LogSoftmax(dim=1), (7,)) == 3 * 7


def test_unary_math_and_clamps_cost_one_per_element():
    for fn in (torch.exp, torch.abs, torch.sqrt, lambda x: x ** 2, lambda x: x.clamp(0, 1), torch.neg):
        assert macs(Fn(fn), (2, 3, 3)) == 18
    assert macs(Fn(lambda x: F.pad(x, (1, 1, 1, 1))), (2, 3, 3)) == 0


def test_conv_linear_keeps_only_convolutions_and_linear_layers():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(4 * 4 * 4, 5), nn.Softmax(dim=1))
    conv, linear = 4 * 8 * 8 * 27, 64 * 5
    assert macs(model, (3, 8, 8), "conv_linear") == conv + linear
    assert macs(model, (3, 8, 8), "all") == conv + 256 + 256 + 64 * 3 + linear + 15


def test_an_operation_without_a_rule_is_listed_not_dropped():
    report = summary(Fn(lambda x: torch.cumsum(x, dim=1) + x), (2, 3, 3))
    assert report.total_macs == 18  # the add; the cumsum has no rule
    assert report.uncounted == {"torch.cumsum": (1, 18)}
    assert "torch.cumsum x1 (18 output elements)" in report.to_markdown()
    assert report.to_dict()["uncounted_ops"] == {"torch.cumsum": {"calls": 1, "output_elements": 18}}


def test_every_rule_is_named_in_the_docs():
    """docs/analysis.md has a row for each rule (that each rule counts right is what the exact counts above
    check, rule by rule)."""
    doc = (Path(__file__).parents[2] / "docs" / "analysis.md").read_text()
    for rule in set(RULES.values()):
        assert f"`{rule.name}`" in doc, rule.name


@pytest.mark.parametrize("functional", [F.max_pool2d, F.avg_pool2d])
def test_pool_stride_defaults_to_the_kernel(functional):
    model = Fn(lambda x: functional(x, 2))
    assert summary(model, (1, 8, 8)).rows[0].output_shape == (1, 4, 4)
    assert summary(model, (1, 8, 8)).rows[0].jump == (2, 2)
