"""Winograd F(2x2, 3x3): the same convolution as oneDNN's direct one up to float rounding, only where it applies,
and the fast path takes it when compiled (or when asked)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convzoo.deploy import optimize_for_inference
from convzoo.winograd import (WINOGRAD_MAX_MAP, WINOGRAD_MIN_CHANNELS, WinogradConv2d, winograd_applies,
                              winograd_conv3x3, winograd_weight)


def relative_error(reference: torch.Tensor, other: torch.Tensor) -> float:
    return ((reference - other).abs().max() / reference.abs().max()).item()


@pytest.mark.parametrize("batch, channels, out_channels, height, width, bias", [
    (1, 1, 1, 2, 2, False),      # one tile
    (2, 3, 5, 4, 6, True),       # tiles of a non-square map, channels that fill no vector
    (3, 16, 8, 10, 8, True),
    (2, 64, 96, 14, 14, True),   # as in a network
])
def test_the_winograd_convolution_equals_the_direct_one(batch, channels, out_channels, height, width, bias):
    generator = torch.Generator().manual_seed(batch * 1000 + channels)
    x = torch.randn(batch, channels, height, width, generator=generator)
    weight = torch.randn(out_channels, channels, 3, 3, generator=generator)
    b = torch.randn(out_channels, generator=generator) if bias else None
    expected = F.conv2d(x, weight, b, padding=1)
    got = winograd_conv3x3(x, winograd_weight(weight), b)
    assert got.shape == expected.shape and got.is_contiguous(memory_format=torch.channels_last)
    # Float rounding of the transforms only: measured 2e-7 to 6e-7 here; a wrong transform is off by O(1).
    assert relative_error(expected, got) < 1e-5


def test_the_transformed_weight_holds_the_filter_at_each_of_the_16_tile_positions():
    weight = torch.zeros(1, 1, 3, 3)
    weight[0, 0, 1, 1] = 1.0  # the identity filter: G g G^T is then the outer product of G's middle column
    transformed = winograd_weight(weight).view(4, 4)
    middle = torch.tensor([0.0, 0.5, -0.5, 0.0])
    assert torch.equal(transformed, torch.outer(middle, middle))
    assert winograd_weight(torch.randn(7, 5, 3, 3)).shape == (16, 5, 7)


def test_an_odd_map_is_refused_with_the_way_out():
    with pytest.raises(ValueError, match="even height and width, got 7x8; use torch.nn.functional.conv2d"):
        winograd_conv3x3(torch.zeros(1, 2, 7, 8), winograd_weight(torch.zeros(2, 2, 3, 3)))


def wide(**kwargs) -> nn.Conv2d:
    options = dict(kernel_size=3, padding=1) | kwargs
    return nn.Conv2d(WINOGRAD_MIN_CHANNELS, WINOGRAD_MIN_CHANNELS, **options)


@pytest.mark.parametrize("conv, applies", [
    (wide(), True),
    (wide(bias=False), True),
    (nn.Conv2d(WINOGRAD_MIN_CHANNELS // 2, WINOGRAD_MIN_CHANNELS, 3, padding=1), False),   # too narrow to pay
    (nn.Conv2d(WINOGRAD_MIN_CHANNELS, WINOGRAD_MIN_CHANNELS // 2, 3, padding=1), False),
    (wide(stride=2), False),
    (wide(padding=2, dilation=2), False),
    (wide(groups=2), False),
    (wide(padding=0), False),
    (wide(padding_mode="reflect"), False),
    (wide(kernel_size=5, padding=2), False),
    (wide().double(), False),
    (nn.Conv1d(WINOGRAD_MIN_CHANNELS, WINOGRAD_MIN_CHANNELS, 3, padding=1), False),
])
def test_winograd_applies_to_wide_float32_3x3_convolutions_with_stride_1_and_padding_1_only(conv, applies):
    assert winograd_applies(conv) is applies
    if not applies:
        with pytest.raises(ValueError, match="WinogradConv2d takes a float32 3x3 convolution"):
            WinogradConv2d(conv)


@pytest.mark.parametrize("size, winograd", [(14, True), (2, True), (7, False), (58, False)])
def test_the_layer_runs_winograd_on_even_maps_up_to_the_largest_and_the_convolution_elsewhere(size, winograd,
                                                                                            monkeypatch):
    assert (size % 2 == 0 and size * size <= WINOGRAD_MAX_MAP) is winograd
    torch.manual_seed(size)
    conv = wide().eval()
    layer = WinogradConv2d(conv)
    calls = []
    monkeypatch.setattr("convzoo.winograd.winograd_conv3x3",
                        lambda *args: calls.append(args) or winograd_conv3x3(*args))
    x = torch.randn(1, WINOGRAD_MIN_CHANNELS, size, size)
    with torch.no_grad():
        expected, got = conv(x), layer(x)
    assert len(calls) == winograd
    if winograd:
        assert relative_error(expected, got) < 1e-5
    else:
        assert torch.equal(expected, got)


class Wide(nn.Module):
    """A 3x3 convolution Winograd takes and one it does not, each with a batch norm to fold."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, WINOGRAD_MIN_CHANNELS, 3, stride=2, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(WINOGRAD_MIN_CHANNELS)
        self.conv = nn.Conv2d(WINOGRAD_MIN_CHANNELS, WINOGRAD_MIN_CHANNELS, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(WINOGRAD_MIN_CHANNELS)

    def forward(self, x):
        return torch.relu(self.bn1(self.conv(torch.relu(self.bn0(self.stem(x))))))


def wide_model() -> nn.Module:
    torch.manual_seed(0)
    model = Wide()
    with torch.no_grad():
        for bn in (model.bn0, model.bn1):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
    return model.eval()


def test_the_fast_path_takes_winograd_when_compiled_and_eagerly_only_when_asked():
    model = wide_model()
    assert optimize_for_inference(model).winograd_convolutions == []
    assert optimize_for_inference(model, compile=True).winograd_convolutions == ["conv"]   # compiles lazily
    assert optimize_for_inference(model, compile=True, winograd=False).winograd_convolutions == []
    fast = optimize_for_inference(model, winograd=True)
    assert fast.winograd_convolutions == ["conv"] and isinstance(fast.conv, WinogradConv2d)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        # The transform takes the weights after the batch norm is folded into them.
        assert relative_error(model(x), fast(x)) < 1e-5
    for wrong in ("yes", 1):
        with pytest.raises(ValueError, match=f"winograd must be True, False or 'auto', got {wrong!r}"):
            optimize_for_inference(model, winograd=wrong)


@pytest.mark.slow
def test_the_compiled_path_runs_winograd_with_the_original_outputs(one_thread, monkeypatch):
    calls = []
    monkeypatch.setattr("convzoo.winograd.winograd_conv3x3",
                        lambda *args: calls.append(args) or winograd_conv3x3(*args))
    model = wide_model()
    x = torch.randn(2, 3, 16, 16)
    fast = optimize_for_inference(model, compile=True)
    with torch.no_grad():
        assert relative_error(model(x), fast(x)) < 1e-5
        fast(x)
    assert fast.winograd_convolutions == ["conv"]
    # dynamo traced through it into the graph (no break) and replays the list's append at each call
    assert len(calls) == 2


def test_the_memory_estimate_holds_the_largest_winograd_workspace_for_the_compiled_path_only():
    from convzoo.bench import _bench_estimator, _configurations
    from convzoo.memory import network_footprint

    # ResNet-50 at 224: the widest that qualify are layer3's 256-channel 3x3 convolutions on 14x14 (layer2's have
    # 128 channels; layer4's maps are 7x7, odd): the padded input, 4x the input and 4x the output, float32.
    per_image = 4 * (16 * 16 * 256 + 4 * 14 * 14 * (256 + 256))
    assert network_footprint("resnet50", (3, 224, 224)).winograd_bytes == per_image
    assert network_footprint("mobilenet_v2", (3, 224, 224)).winograd_bytes == 0
    compiled = _bench_estimator("resnet50", 3, _configurations(["inference"], ["nchw"], ["compile"], True))
    assert compiled(8, (224, 224)).phases["inference"]["Winograd's transformed maps"] == 8 * per_image
    eager = _bench_estimator("resnet50", 3, _configurations(["inference"], ["nchw"], ["eager"], True))
    assert "Winograd's transformed maps" not in eager(8, (224, 224)).phases["inference"]
