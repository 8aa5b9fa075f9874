"""The shared conv helpers: ConvBnAct's layout, padding and activation; DepthwiseSeparableConv's per-channel
depthwise step and its saving in multiply-accumulates against a full 3x3 conv (MobileNet v1, section 3.1)."""
import pytest
import torch
from fvcore.nn import FlopCountAnalysis
from torch import nn

from convzoo.layers.conv import ConvBnAct, DepthwiseSeparableConv, conv1x1, conv3x3


def _conv_macs(module: nn.Module, x: torch.Tensor) -> int:
    counter = FlopCountAnalysis(module.eval(), x)
    counter.unsupported_ops_warnings(False)
    return counter.by_operator()["conv"]


def test_conv_helpers_have_no_bias_and_keep_the_size_at_stride_one():
    x = torch.randn(2, 8, 11, 11)
    assert conv3x3(8, 16)(x).shape == (2, 16, 11, 11) and conv3x3(8, 16).bias is None
    assert conv3x3(8, 16, stride=2)(x).shape == (2, 16, 6, 6)
    assert conv3x3(8, 16, dilation=2)(x).shape == (2, 16, 11, 11)
    assert conv3x3(8, 8, groups=8).weight.shape == (8, 1, 3, 3)
    assert conv1x1(8, 4)(x).shape == (2, 4, 11, 11) and conv1x1(8, 4).bias is None


def test_conv_bn_act_keys_are_torchvisions_conv2d_norm_activation():
    block = ConvBnAct(3, 32, 3, stride=2)
    assert [type(m) for m in block] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU]
    assert set(block.state_dict()) == {"0.weight", "1.weight", "1.bias", "1.running_mean", "1.running_var",
                                       "1.num_batches_tracked"}
    assert block.out_chans == 32


@pytest.mark.parametrize("kernel_size, dilation", [(1, 1), (3, 1), (5, 1), (7, 1), (3, 2), (3, 4)])
def test_conv_bn_act_pads_to_keep_the_size(kernel_size, dilation):
    block = ConvBnAct(4, 6, kernel_size, dilation=dilation)
    assert block(torch.randn(2, 4, 13, 9)).shape == (2, 6, 13, 9)
    assert ConvBnAct(4, 6, kernel_size, stride=2, dilation=dilation)(torch.randn(2, 4, 13, 9)).shape == (2, 6, 7, 5)


def test_conv_bn_act_activation_choice():
    x = 50 * torch.randn(2, 4, 6, 6)
    linear = ConvBnAct(4, 4, act=None).eval()
    assert len(linear) == 2 and (linear(x) < 0).any()
    relu6 = ConvBnAct(4, 4, act=nn.ReLU6).eval()
    out = relu6(x)
    assert out.min() == 0 and out.max() == 6
    assert isinstance(ConvBnAct(4, 4, act=nn.SiLU)[2], nn.SiLU)


def test_depthwise_separable_layout():
    block = DepthwiseSeparableConv(32, 64, stride=2)
    depthwise, pointwise = block
    assert depthwise[0].weight.shape == (32, 1, 3, 3) and depthwise[0].groups == 32
    assert depthwise[0].stride == (2, 2)
    assert pointwise[0].weight.shape == (64, 32, 1, 1) and pointwise[0].groups == 1
    assert isinstance(depthwise[2], nn.ReLU) and isinstance(pointwise[2], nn.ReLU)  # BN-ReLU after each (Fig. 3)
    assert block(torch.randn(2, 32, 14, 14)).shape == (2, 64, 7, 7)


def test_depthwise_step_filters_each_channel_on_its_own():
    depthwise = DepthwiseSeparableConv(6, 10)[0].eval()
    x = torch.randn(2, 6, 8, 8)
    changed = x.clone()
    changed[:, 3] += torch.randn(2, 8, 8)
    diff = (depthwise(changed) - depthwise(x)).abs().sum(dim=(0, 2, 3))
    assert diff[3] > 0
    assert torch.equal(diff[[0, 1, 2, 4, 5]], torch.zeros(5))


@pytest.mark.parametrize("in_chans, out_chans, size", [(32, 64, 112), (512, 512, 14), (1024, 1024, 7)])
def test_depthwise_separable_saves_macs_as_the_paper_says(in_chans, out_chans, size):
    # Paper eq. 5: D_K^2 M D_F^2 + M N D_F^2 against D_K^2 M N D_F^2 for a standard conv; ratio 1/N + 1/D_K^2.
    x = torch.randn(1, in_chans, size, size)
    separable = _conv_macs(DepthwiseSeparableConv(in_chans, out_chans), x)
    standard = _conv_macs(conv3x3(in_chans, out_chans), x)
    assert separable == size * size * in_chans * (9 + out_chans)
    assert standard == size * size * in_chans * out_chans * 9
    assert separable / standard == pytest.approx(1 / out_chans + 1 / 9)
    # "8 to 9 times less computation than standard convolutions" for 3x3 kernels and wide layers.
    assert standard / separable < 9
    if out_chans >= 512:
        assert standard / separable > 8


def test_depthwise_separable_has_far_fewer_weights():
    separable = sum(m.weight.numel() for m in DepthwiseSeparableConv(512, 512).modules() if isinstance(m, nn.Conv2d))
    assert separable == 512 * 9 + 512 * 512
    assert conv3x3(512, 512).weight.numel() / separable > 8
