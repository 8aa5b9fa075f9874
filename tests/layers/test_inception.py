"""The Inception module: the course's naive and bottleneck examples, each branch's receptive field, and the
two convolution layouts (the paper's conv + bias + ReLU, torchvision's BasicConv2d)."""
import pytest
import torch
from torch import nn

from convzoo.layers.inception import BasicConv2d, ConvReLU, Inception


def conv_macs(module: nn.Module, x: torch.Tensor) -> int:
    """Multiply-adds of every convolution in `module` on input `x` (batch of one)."""
    total = 0

    def count(conv, _, out):
        nonlocal total
        total += out[0].numel() * conv.in_channels // conv.groups * conv.kernel_size[0] * conv.kernel_size[1]

    hooks = [m.register_forward_hook(count) for m in module.modules() if isinstance(m, nn.Conv2d)]
    module(x)
    for hook in hooks:
        hook.remove()
    return total


def linear_conv(in_chans: int, out_chans: int, kernel_size: int) -> nn.Conv2d:
    # No ReLU: a dead unit would hide part of a receptive field from the gradient.
    return nn.Conv2d(in_chans, out_chans, kernel_size, padding=kernel_size // 2)


def test_course_naive_module_on_28x28x256_gives_672_channels():
    with torch.device("meta"):
        module = Inception.naive(256, 128, 192, 96)
        x = torch.empty(1, 256, 28, 28)
    assert tuple(module(x).shape) == (1, 128 + 192 + 96 + 256, 28, 28) == (1, 672, 28, 28)
    assert module.out_chans == 672
    # The course: 28x28x128x1x1x256 + 28x28x192x3x3x256 + 28x28x96x5x5x256 = 854M ops.
    assert conv_macs(module, x) == 854_196_224


def test_course_bottleneck_module_is_shallower_and_cheaper():
    # 1x1 64 before the 3x3, 1x1 64 before the 5x5, 1x1 64 after the pool.
    with torch.device("meta"):
        module = Inception(256, 128, 64, 192, 64, 96, 64)
        x = torch.empty(1, 256, 28, 28)
    assert tuple(module(x).shape) == (1, 128 + 192 + 96 + 64, 28, 28)
    assert module.out_chans == 480
    # The six terms of the course's slide: 28x28x(64x256 + 64x256 + 128x256 + 192x9x64 + 96x25x64 + 64x256).
    # They add up to 271M; the slide's "358M" total is an addition slip.
    assert conv_macs(module, x) == 28 * 28 * (64 * 256 * 2 + 128 * 256 + 192 * 9 * 64 + 96 * 25 * 64 + 64 * 256)
    assert conv_macs(module, x) == 271_351_808


def test_googlenet_3a_widths_give_256_channels():
    module = Inception(192, 64, 96, 128, 16, 32, 32)
    assert module(torch.randn(2, 192, 14, 14)).shape == (2, 256, 14, 14)


def receptive_extent(branch: nn.Module, in_chans: int = 16, size: int = 11) -> tuple[int, int]:
    """Height and width of the input region that the branch's output at the centre pixel depends on."""
    x = torch.randn(1, in_chans, size, size, requires_grad=True)
    branch(x)[0, :, size // 2, size // 2].sum().backward()
    rows, cols = torch.nonzero(x.grad.abs().sum(dim=(0, 1)), as_tuple=True)
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


@pytest.mark.parametrize("build", [
    lambda: Inception.naive(16, 4, 4, 4, conv_block=linear_conv),
    lambda: Inception(16, 4, 3, 4, 3, 4, 4, conv_block=linear_conv),
], ids=["naive", "bottleneck"])
def test_each_branch_sees_its_kernel(build):
    module = build()
    assert receptive_extent(module.branch1) == (1, 1)
    assert receptive_extent(module.branch2) == (3, 3)
    assert receptive_extent(module.branch3) == (5, 5)
    assert receptive_extent(module.branch4) == (3, 3)


def test_torchvision_branch3_is_3x3():
    module = Inception(16, 4, 3, 4, 3, 4, 4, conv_block=linear_conv, branch3_kernel_size=3)
    assert receptive_extent(module.branch3) == (3, 3)


def test_naive_pool_branch_is_the_pool_alone():
    module = Inception.naive(8, 2, 2, 2)
    x = torch.randn(1, 8, 9, 9)
    pooled = module(x)[:, 6:]
    torch.testing.assert_close(pooled, nn.functional.max_pool2d(x, 3, stride=1, padding=1))


def test_torchvision_layout_key_names():
    # torchvision/models/googlenet.py: Inception.branch1 is a BasicConv2d, branch2/branch3 are
    # Sequential(BasicConv2d 1x1, BasicConv2d kxk), branch4 is Sequential(MaxPool2d, BasicConv2d 1x1);
    # BasicConv2d has `conv` (no bias) and `bn` (eps 0.001).
    module = Inception(192, 64, 96, 128, 16, 32, 32, conv_block=BasicConv2d, branch3_kernel_size=3)
    shapes = {k: tuple(v.shape) for k, v in module.state_dict().items() if k.endswith("conv.weight")}
    assert shapes == {
        "branch1.conv.weight": (64, 192, 1, 1),
        "branch2.0.conv.weight": (96, 192, 1, 1),
        "branch2.1.conv.weight": (128, 96, 3, 3),
        "branch3.0.conv.weight": (16, 192, 1, 1),
        "branch3.1.conv.weight": (32, 16, 3, 3),
        "branch4.1.conv.weight": (32, 192, 1, 1),
    }
    bn_keys = {k.removeprefix("branch1.bn.") for k in module.state_dict() if k.startswith("branch1.bn.")}
    assert bn_keys == {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}
    convs = [m for m in module.modules() if isinstance(m, BasicConv2d)]
    assert all(c.conv.bias is None and c.bn.eps == 0.001 for c in convs)


def test_paper_layout_has_biases_and_no_batch_norm():
    module = Inception(192, 64, 96, 128, 16, 32, 32)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in module.modules())
    convs = [m for m in module.modules() if isinstance(m, ConvReLU)]
    assert len(convs) == 6 and all(c.conv.bias is not None for c in convs)
    assert module.branch3[1].conv.kernel_size == (5, 5)
    # Every branch ends in a ReLU.
    assert (module(torch.randn(1, 192, 7, 7)) >= 0).all()
