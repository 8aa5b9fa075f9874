"""InvertedResidual on its own: expansion to in * t channels, depthwise middle, linear bottleneck (nothing after
the projection's BN), and the residual only when stride 1 and in == out. Layout as torchvision's MobileNetV2
block (torchvision/models/mobilenetv2.py, InvertedResidual)."""
import pytest
import torch
from torch import nn

from convzoo.layers.conv import ConvBnAct
from convzoo.layers.inverted_residual import InvertedResidual


def _silence_projection(block: InvertedResidual) -> None:
    """Zero the projection's BN so the residual branch outputs exactly 0 (in eval mode)."""
    projection_bn = block.conv[-1]
    nn.init.zeros_(projection_bn.weight)
    nn.init.zeros_(projection_bn.bias)


@pytest.mark.parametrize("in_chans, out_chans, stride, t", [(16, 24, 2, 6), (24, 24, 1, 6), (32, 16, 1, 1),
                                                            (10, 12, 1, 2.5)])
def test_shapes_and_expansion(in_chans, out_chans, stride, t):
    block = InvertedResidual(in_chans, out_chans, stride, t)
    out = block(torch.randn(2, in_chans, 9, 9))
    assert out.shape == (2, out_chans, 5 if stride == 2 else 9, 5 if stride == 2 else 9)
    hidden = round(in_chans * t)
    depthwise = block.conv[0] if t == 1 else block.conv[1]
    assert depthwise[0].weight.shape == (hidden, 1, 3, 3) and depthwise[0].groups == hidden
    assert depthwise[0].stride == (stride, stride)
    assert block.conv[-2].weight.shape == (out_chans, hidden, 1, 1)
    if t != 1:
        assert block.conv[0][0].weight.shape == (hidden, in_chans, 1, 1)


def test_expand_ratio_one_has_no_expansion_conv():
    block = InvertedResidual(32, 16, 1, expand_ratio=1)
    assert len(block.conv) == 3  # depthwise ConvBnAct, projection conv, its BN
    assert isinstance(block.conv[0], ConvBnAct) and block.conv[0][0].groups == 32
    assert len(InvertedResidual(16, 24, 1, expand_ratio=6).conv) == 4


def test_torchvision_key_names():
    keys = set(InvertedResidual(16, 24, 2, 6).state_dict())
    assert {"conv.0.0.weight", "conv.0.1.running_var", "conv.1.0.weight", "conv.1.1.weight", "conv.2.weight",
            "conv.3.weight", "conv.3.bias", "conv.3.num_batches_tracked"} <= keys
    assert "conv.2.bias" not in keys


def test_projection_is_linear():
    # No activation after the projection: a non-residual block's output takes negative values, which a
    # ReLU/ReLU6 at the end would make impossible.
    block = InvertedResidual(8, 16, 2, 6).train()
    out = block(torch.randn(4, 8, 8, 8))
    assert (out < 0).any()
    assert isinstance(block.conv[-1], nn.BatchNorm2d)
    assert not any(isinstance(m, (nn.ReLU, nn.ReLU6)) for m in block.conv[-2:])


def test_hidden_activations_are_relu6():
    block = InvertedResidual(8, 8, 1, 6).eval()
    seen = []
    block.conv[0].register_forward_hook(lambda module, args, out: seen.append(out))
    block.conv[1].register_forward_hook(lambda module, args, out: seen.append(out))
    block(100 * torch.randn(2, 8, 6, 6))
    for hidden in seen:
        assert hidden.min() >= 0 and hidden.max() == 6  # clipped at 6, not just rectified


@pytest.mark.parametrize("in_chans, out_chans, stride, residual", [(24, 24, 1, True), (24, 32, 1, False),
                                                                   (24, 24, 2, False), (16, 24, 2, False)])
def test_residual_only_when_stride_one_and_same_width(in_chans, out_chans, stride, residual):
    block = InvertedResidual(in_chans, out_chans, stride, 6)
    assert block.use_residual is residual
    _silence_projection(block)
    block.eval()
    x = torch.randn(2, in_chans, 8, 8)
    out = block(x)
    if residual:
        assert torch.equal(out, x)  # branch is exactly zero: what is left is the identity shortcut
    else:
        assert torch.equal(out, torch.zeros_like(out))


def test_residual_block_gradient_reaches_the_input_through_the_shortcut():
    block = InvertedResidual(8, 8, 1, 6)
    _silence_projection(block)
    x = torch.randn(2, 8, 5, 5, requires_grad=True)
    block(x).sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def test_bad_stride_is_refused():
    with pytest.raises(ValueError, match="stride must be 1 or 2"):
        InvertedResidual(8, 8, 3, 6)
