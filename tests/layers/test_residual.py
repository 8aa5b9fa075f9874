"""Residual blocks: basic, bottleneck and their pre-activation forms; the parameter-free shortcut."""
import pytest
import torch
from torch import nn

from convzoo.layers.drop_path import DropPath
from convzoo.layers.residual import BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck, ZeroPadShortcut

BLOCKS = [BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck]


def projected(block, in_chans, planes, stride=2, **kwargs):
    return block(in_chans, planes, stride, block.projection(in_chans, planes * block.expansion, stride), **kwargs)


@pytest.mark.parametrize("block", BLOCKS)
def test_shapes_with_and_without_downsampling(block):
    x = torch.randn(2, 32, 9, 9)
    same = block(32 * block.expansion, 32)
    assert same(torch.randn(2, 32 * block.expansion, 9, 9)).shape == (2, 32 * block.expansion, 9, 9)
    down = projected(block, 32, 16)
    # A 3x3 conv with stride 2 and padding 1 gives ceil(9 / 2) = 5.
    assert down(x).shape == (2, 16 * block.expansion, 5, 5)


def test_torchvision_attribute_names():
    # torchvision/models/resnet.py (pytorch/vision): BasicBlock conv1/bn1/conv2/bn2, Bottleneck adds conv3/bn3,
    # the projection is downsample.0 (1x1 conv) and downsample.1 (BN).
    def keys(block):
        return {k for k in block.state_dict() if not k.endswith("num_batches_tracked")}

    def bn(name):
        return {f"{name}.{t}" for t in ("weight", "bias", "running_mean", "running_var")}

    basic = keys(projected(BasicBlock, 64, 128))
    assert basic == {"conv1.weight", "conv2.weight", "downsample.0.weight"} | bn("bn1") | bn("bn2") | bn("downsample.1")
    assert keys(projected(Bottleneck, 64, 64)) == basic | {"conv3.weight"} | bn("bn3")


def test_post_activation_ends_in_relu_pre_activation_does_not():
    x = torch.randn(4, 16, 6, 6)
    assert (BasicBlock(16, 16)(x) >= 0).all()
    assert (PreActBasicBlock(16, 16)(x) < 0).any()


def test_stride_placement_in_the_bottleneck():
    torchvision_style = projected(Bottleneck, 64, 32)
    assert (torchvision_style.conv1.stride, torchvision_style.conv2.stride) == ((1, 1), (2, 2))
    paper_style = projected(Bottleneck, 64, 32, stride_in_1x1=True)
    assert (paper_style.conv1.stride, paper_style.conv2.stride) == ((2, 2), (1, 1))
    x = torch.randn(1, 64, 8, 8)
    assert paper_style(x).shape == torchvision_style(x).shape == (1, 128, 4, 4)


@pytest.mark.parametrize("block", [Bottleneck, PreActBottleneck])
def test_groups_and_base_width_set_the_grouped_3x3(block):
    # ResNeXt 32x4d in the first stage: planes 64 -> width 64 * 4/64 * 32 = 128, each group 4 channels.
    resnext = block(256, 64, groups=32, base_width=4)
    assert resnext.conv2.weight.shape == (128, 4, 3, 3)
    assert resnext.conv2.groups == 32
    # Wide ResNet-50-2: base width 128 doubles the inner width.
    assert block(256, 64, base_width=128).conv2.weight.shape == (128, 128, 3, 3)


def test_basic_block_groups_apply_to_both_convs():
    block = BasicBlock(64, 64, groups=4, base_width=16)
    assert block.conv1.weight.shape == (64, 16, 3, 3) and block.conv2.weight.shape == (64, 16, 3, 3)
    assert block(torch.randn(1, 64, 5, 5)).shape == (1, 64, 5, 5)


@pytest.mark.parametrize("block", BLOCKS)
def test_dilation_keeps_the_size(block):
    b = block(16 * block.expansion, 16, dilation=2)
    convs3x3 = [m for m in b.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert convs3x3 and all(c.dilation == (2, 2) and c.padding == (2, 2) for c in convs3x3)
    x = torch.randn(1, 16 * block.expansion, 7, 7)
    assert b(x).shape == x.shape


@pytest.mark.parametrize("block", BLOCKS)
def test_attention_is_named_se_and_gates_the_branch_before_the_add(block):
    seen = []

    class Recorder(nn.Module):
        def __init__(self, channels):
            super().__init__()
            self.channels = channels

        def forward(self, branch):
            seen.append(branch.shape)
            return branch * 0.0  # gate closed: only the shortcut is left

    b = block(8 * block.expansion, 8, attn_layer=Recorder).eval()
    assert isinstance(b.se, Recorder) and b.se.channels == 8 * block.expansion
    x = torch.randn(2, 8 * block.expansion, 5, 5)
    out = b(x)
    assert seen == [x.shape]
    expected = x if block.pre_activation else torch.relu(x)
    assert torch.allclose(out, expected)
    assert block(8 * block.expansion, 8).se is None


@pytest.mark.parametrize("block", BLOCKS)
def test_drop_path_from_a_rate_or_a_module(block):
    assert block(16, 16 // block.expansion).drop_path is None
    from_rate = block(16, 16 // block.expansion, drop_path=0.2).drop_path
    assert isinstance(from_rate, DropPath) and from_rate.drop_prob == 0.2 and from_rate.mode == "batch"
    given = DropPath(0.1, mode="sample")
    assert block(16, 16 // block.expansion, drop_path=given).drop_path is given


@pytest.mark.parametrize("block", BLOCKS)
def test_dropped_branch_leaves_the_shortcut(block):
    b = block(8 * block.expansion, 8, drop_path=DropPath(0.999)).train()
    x = torch.randn(2, 8 * block.expansion, 4, 4)
    out = b(x)
    assert torch.allclose(out, x if block.pre_activation else torch.relu(x))


@pytest.mark.parametrize("block", BLOCKS)
def test_zero_init_last_starts_as_the_identity(block):
    b = block(8 * block.expansion, 8)
    b.zero_init_last()
    x = torch.randn(2, 8 * block.expansion, 5, 5)
    # Pre-activation: nothing follows the addition, so the whole block is the identity.
    assert torch.allclose(b.eval()(x), x if block.pre_activation else torch.relu(x))


@pytest.mark.parametrize("block", [PreActBasicBlock, PreActBottleneck])
def test_pre_activation_projection_sees_the_activated_input(block):
    b = projected(block, 16, 8).eval()
    inputs = []
    b.downsample.register_forward_pre_hook(lambda module, args: inputs.append(args[0].clone()))
    x = torch.randn(2, 16, 6, 6)
    b(x)
    assert torch.allclose(inputs[0], torch.relu(b.bn1(x)))
    assert isinstance(b.downsample, nn.Conv2d)  # a bare conv: its input is already normalised


def test_pre_activation_block_can_skip_its_input_activation():
    b = PreActBottleneck(64, 64, downsample=PreActBottleneck.projection(64, 256), activate_input=False)
    assert b.bn1 is None
    x = torch.rand(1, 64, 4, 4)
    assert b(x).shape == (1, 256, 4, 4)


@pytest.mark.parametrize("block", [PreActBasicBlock, PreActBottleneck])
def test_dropout_sits_before_the_last_conv_and_only_when_asked(block):
    assert block(16, 16 // block.expansion).dropout is None
    b = block(16, 16 // block.expansion, dropout=0.3)
    assert isinstance(b.dropout, nn.Dropout) and b.dropout.p == 0.3
    names = [name for name, _ in b.named_children()]
    last_conv = "conv3" if block is PreActBottleneck else "conv2"
    assert names.index("dropout") == names.index(last_conv) - 1
    x = torch.randn(2, 16, 4, 4)
    b.eval()
    assert torch.equal(b(x), b(x))


def test_zero_pad_shortcut_subsamples_and_pads_without_parameters():
    shortcut = ZeroPadShortcut(16, 32, stride=2)
    assert sum(p.numel() for p in shortcut.parameters()) == 0
    x = torch.randn(2, 16, 7, 7)
    out = shortcut(x)
    # Same size as a 3x3 stride-2 conv with padding 1 on the branch: ceil(7 / 2) = 4.
    assert out.shape == (2, 32, 4, 4)
    assert torch.equal(out[:, :16], x[:, :, ::2, ::2])
    assert torch.count_nonzero(out[:, 16:]) == 0
    with pytest.raises(ValueError):
        ZeroPadShortcut(32, 16)


def test_basic_block_with_zero_pad_shortcut_adds_to_the_first_channels():
    block = BasicBlock(16, 32, 2, ZeroPadShortcut(16, 32, 2))
    block.zero_init_last()
    x = torch.randn(1, 16, 8, 8)
    out = block.eval()(x)
    assert torch.allclose(out[:, :16], torch.relu(x[:, :, ::2, ::2]))
    assert torch.count_nonzero(out[:, 16:]) == 0
